/**
 * vsock SEQPACKET over the Unix host side: Unix SOCK_SEQPACKET sockets (native/seqpacket.c) keep
 * the message boundaries the guest's VIRTIO_VSOCK_SEQ_EOM flags carry, both ways (5.10.6.6).
 * The guest is virtio-ts's own VsockDriver (the real-guest test is in
 * test/vhost-user-vsock-guest.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadNativePlatform } from '../../../platform/native-platform.js';
import { seqpacketSockets } from '../../../platform/seqpacket.js';
import { VsockType } from '../../../spec/vsock.js';
import { createLoopback } from '../../../testing/loopback.js';
import { VsockDevice } from '../vsock-device.js';
import { VsockDriver } from '../vsock-driver.js';
import type { VsockSocket } from '../vsock-socket.js';
import { UnixVsockBackend } from './unix-backend.js';

const T = { timeout: 20_000 };
const SEQ = VsockType.SEQPACKET;
const platform = loadNativePlatform();
const seq = seqpacketSockets();

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

/** Waits (bounded) for the next message on a non-blocking seqpacket fd; null at the end. */
async function recvMessage(fd: number, max = 1 << 20): Promise<Uint8Array | null> {
  const buf = new Uint8Array(max);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const n = seq.recv(fd, buf);
    if (n === 0) return null;
    if (n > 0) return buf.slice(0, n);
    if (Date.now() > deadline) throw new Error('no message within 10 s');
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function acceptOne(listenFd: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const fd = platform.accept(listenFd);
    if (fd >= 0) return fd;
    if (Date.now() > deadline) throw new Error('no connection within 10 s');
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('vsock SEQPACKET over Unix SOCK_SEQPACKET sockets', () => {
  it('guest -> host: messages keep their boundaries both ways; a missing or stream listener refuses; ends carry over', T, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-vseq-'));
    const uds = join(dir, 'v.sock');
    const backend = await UnixVsockBackend.listen({ udsPath: uds });
    const lb = await createLoopback(new VsockDevice({ guestCid: 3, backend }));
    const vs = new VsockDriver(lb.context, { maxPayload: 4096 });
    const listenFd = seq.listen(`${uds}_1300`);
    const fds: number[] = [listenFd];
    try {
      await assert.rejects(vs.connect(1301, SEQ), /refused/, 'nothing listens on <uds>_1301');
      const s = await vs.connect(1300, SEQ);
      const host = await acceptOne(listenFd);
      fds.push(host);
      const sizes = [1, 4096, 4097, 60000, 3];
      for (const [i, n] of sizes.entries()) await s.sendMessage(bytes(n, i));
      for (const [i, n] of sizes.entries()) assert.deepEqual(await recvMessage(host), bytes(n, i), `guest message ${i} whole`);
      for (const [i, n] of [5, 60000, 1].entries()) assert.equal(seq.send(host, bytes(n, 30 + i)), n);
      for (const [i, n] of [5, 60000, 1].entries()) {
        const m = await s.recvMessage();
        assert.ok(m !== null);
        assert.deepEqual(Buffer.from(m.data), Buffer.from(bytes(n, 30 + i)), `host message ${i} whole`);
      }
      // The guest ends its sending side: the host reads the end; the host closes: the guest hears it.
      await s.shutdownSend();
      assert.equal(await recvMessage(host), null);
      platform.close(fds.pop()!);
      assert.equal(await s.recvMessage(), null);
      await s.close();
    } finally {
      for (const fd of fds) platform.close(fd);
      vs.detach();
      await lb.close();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('host -> guest: CONNECT <port> as the first message on <uds>_seqpacket, OK <host port>, then messages', T, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-vseq-'));
    const uds = join(dir, 'v.sock');
    const backend = await UnixVsockBackend.listen({ udsPath: uds });
    const lb = await createLoopback(new VsockDevice({ guestCid: 3, backend }));
    const vs = new VsockDriver(lb.context);
    let accepted: VsockSocket | null = null;
    vs.listen(7000, (g) => (accepted = g), SEQ);
    let fd = -1;
    try {
      fd = seq.connect(backend.seqpacketPath);
      seq.send(fd, new TextEncoder().encode('CONNECT 7000\n'));
      const ok = new TextDecoder().decode((await recvMessage(fd))!);
      assert.match(ok, /^OK \d+\n$/);
      const g = accepted as VsockSocket | null;
      assert.ok(g !== null && g.type === SEQ);
      seq.send(fd, bytes(10, 1));
      seq.send(fd, bytes(20, 2));
      assert.deepEqual(Buffer.from((await g.recvMessage())!.data), Buffer.from(bytes(10, 1)));
      assert.deepEqual(Buffer.from((await g.recvMessage())!.data), Buffer.from(bytes(20, 2)));
      await g.sendMessage(bytes(99, 3));
      assert.deepEqual(await recvMessage(fd), bytes(99, 3));
      // A port nobody listens on: the host socket is closed.
      const bad = seq.connect(backend.seqpacketPath);
      seq.send(bad, new TextEncoder().encode('CONNECT 7001\n'));
      assert.equal(await recvMessage(bad), null);
      platform.close(bad);
    } finally {
      if (fd >= 0) platform.close(fd);
      vs.detach();
      await lb.close();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
