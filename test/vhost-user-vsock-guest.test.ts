/**
 * The `virtio-ts vsock` back-end serving a real Linux guest through QEMU 7.2's vhost-user-vsock-pci
 * (q35) and vhost-user-vsock-device (microvm, virtio-mmio version 2), memfd RAM, the cloud
 * kernel's vsock drivers and socat 1.7.4 in the guest, host side Unix sockets
 * in the hybrid model:
 *  1. the guest runs `socat - VSOCK-CONNECT:2:1234`, which reaches the host listener at P_1234:
 *     bytes compared both ways, half-closes both ways;
 *  2. the guest listens on vsock port 5000; a host program connects to P with `CONNECT 5000`,
 *     reads `OK <port>`, and bytes are compared both ways again;
 *  3. (q35) 50 connections at once, 64 KiB of random bytes each way on each (3.2 MiB each way),
 *     sha256 compared; then SEQPACKET (negotiated by QEMU's seqpacket=auto): socat relays the
 *     messages of one host seqpacket connection to another, and the host checks every message
 *     arrived whole (boundaries kept through the guest's AF_VSOCK SOCK_SEQPACKET sockets).
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { loadNativePlatform } from '../src/platform/native-platform.js';
import { seqpacketSockets } from '../src/platform/seqpacket.js';
import {
  ensureGuestKit,
  guestKitPartsFor,
  isSocket,
  makeTempDir,
  repoRoot,
  runDeviceGuest,
  startProcess,
  waitForPath,
  withConsole,
  type GuestMachine,
  type TempDir,
} from './support/guest.js';

const deps = ensureGuestKit(guestKitPartsFor({ devices: ['vsock'], userspace: ['socat'] }));
const skip = deps.ok ? false : deps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const GUEST_CID = 3;
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

/** What the guest sends in both parts: `seq 1 3000` (busybox), 13893 bytes. */
function seqBytes(n: number): Buffer {
  let s = '';
  for (let i = 1; i <= n; i++) s += `${i}\n`;
  return Buffer.from(s);
}

/** Host bytes: a pattern, large enough to need several credit windows and rx buffers. */
function hostBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed + (i >> 8)) & 0xff;
  return b;
}

const script = `
seq 1 3000 > /tmp/up
socat -t 30 - VSOCK-CONNECT:2:1234 < /tmp/up > /tmp/down 2>/tmp/c.err || fail "socat connect: $(cat /tmp/c.err)"
result down_len "$(wc -c < /tmp/down)"
result down_md5 "$(md5sum /tmp/down | cut -d' ' -f1)"
socat -t 30 VSOCK-LISTEN:5000 - < /tmp/up > /tmp/in 2>/tmp/l.err || fail "socat listen: $(cat /tmp/l.err)"
result in_len "$(wc -c < /tmp/in)"
result in_md5 "$(md5sum /tmp/in | cut -d' ' -f1)"
`;

/** Part 1's host listener: sends `down` at once, collects the guest's bytes, ends after the guest's end. */
function hostListener(path: string, down: Buffer): { server: Server; done: Promise<Buffer> } {
  let resolve!: (b: Buffer) => void;
  const done = new Promise<Buffer>((r) => (resolve = r));
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const parts: Buffer[] = [];
    s.write(down);
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => s.end());
    s.on('close', () => resolve(Buffer.concat(parts)));
    s.on('error', () => undefined);
  });
  server.listen(path);
  return { server, done };
}

/**
 * Part 2: `CONNECT 5000` on the main socket until the guest listens (a refused attempt is closed
 * without OK), bounded by `deadlineMs`. Resolves with the OK line's port and the guest's bytes.
 */
async function connectToGuest(path: string, up: Buffer, deadlineMs: number): Promise<{ port: number; got: Buffer }> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const r = await new Promise<{ port: number; got: Buffer } | null>((resolve) => {
      const c: Socket = connect(path);
      let buf = Buffer.alloc(0);
      let port = -1;
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (port < 0) {
          const nl = buf.indexOf(10);
          if (nl < 0) return;
          const m = /^OK (\d+)$/.exec(buf.subarray(0, nl).toString());
          if (!m) return c.destroy();
          port = Number(m[1]);
          buf = buf.subarray(nl + 1);
          c.end(up);
        }
      });
      c.on('error', () => undefined);
      c.on('close', () => resolve(port < 0 ? null : { port, got: buf }));
      c.write('CONNECT 5000\n');
    });
    if (r !== null) return r;
    if (Date.now() > end) throw new Error('the guest never accepted CONNECT 5000');
    await delay(250); // the guest is not listening yet: try again
  }
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const CONNS = 50;

/** socat's generic address of host (CID 2) vsock port `port`: struct sockaddr_vm after its family, in hex. */
function vsockHostAddr(port: number): string {
  const b = Buffer.alloc(14); // svm_reserved1, svm_port, svm_cid, svm_flags, svm_zero[3]
  b.writeUInt32LE(port, 2);
  b.writeUInt32LE(2, 6);
  return `x${b.toString('hex')}`;
}

/** Part 3's guest script: 50 echo connections at once, then a seqpacket relay 1300 -> 1301. */
const manyScript = `
i=0
while [ $i -lt ${CONNS} ]; do
  dd if=/dev/urandom of=/tmp/u$i bs=65536 count=1 2>/dev/null
  i=$((i+1))
done
# All 50 start at once. Under TCG a connect made while the others stream can miss Linux's 2 s
# connect timeout (ETIMEDOUT, nothing sent): those are started again, at most 3 rounds; the
# number of retried connects is reported.
i=0
while [ $i -lt ${CONNS} ]; do
  (socat -t 60 - VSOCK-CONNECT:2:1400 < /tmp/u$i > /tmp/d$i 2>/tmp/e$i; echo $? > /tmp/rc$i) &
  i=$((i+1))
done
wait
retried=0
round=0
while [ $round -lt 3 ]; do
  i=0
  while [ $i -lt ${CONNS} ]; do
    if [ "$(cat /tmp/rc$i)" != 0 ] && grep -q 'timed out' /tmp/e$i; then
      retried=$((retried+1))
      (socat -t 60 - VSOCK-CONNECT:2:1400 < /tmp/u$i > /tmp/d$i 2>/tmp/e$i; echo $? > /tmp/rc$i) &
    fi
    i=$((i+1))
  done
  wait
  round=$((round+1))
done
result retried "$retried"
i=0
while [ $i -lt ${CONNS} ]; do
  result c$i "$(cat /tmp/rc$i) $(wc -c < /tmp/d$i) $(sha256sum /tmp/u$i | cut -d' ' -f1) $(sha256sum /tmp/d$i | cut -d' ' -f1) $(head -c 120 /tmp/e$i | tr '\n' ' ')"
  i=$((i+1))
done
socat -u -b 65536 SOCKET-CONNECT:40:0:${vsockHostAddr(1300)},type=5 SOCKET-CONNECT:40:0:${vsockHostAddr(1301)},type=5 2>/tmp/s.err
result seq_rc "$? $(head -c 200 /tmp/s.err | tr '\n' ' ')"
`;

/** Part 3's host echo listener: every connection's bytes come back; their sha256s are kept. */
function echoListener(path: string): { server: Server; hashes: string[] } {
  const hashes: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    s.on('data', (d: Buffer) => {
      h.update(d);
      s.write(d);
    });
    s.on('end', () => {
      hashes.push(h.digest('hex'));
      s.end();
    });
    s.on('error', () => undefined);
  });
  server.listen(path);
  return { server, hashes };
}

/** Message sizes the host sends on the seqpacket source connection (each a distinct pattern). */
const SEQ_SIZES = [1, 100, 4096, 4097, 20000, 65536, 7, 60000, 3, 1000];

describe('virtio-ts vsock: vhost-user back-end serving a real Linux guest (QEMU 7.2)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-vuvsock-');
  });
  after(async () => {
    await tmp?.remove();
  });

  async function vsockRun(t: TestContext, machine: GuestMachine, device: string): Promise<void> {
    const sock = tmp.file(`${machine}.sock`);
    const uds = tmp.file(`${machine}-v`);
    const be = startProcess(process.execPath, [CLI, 'vsock', '--socket-path', sock, '--guest-cid', String(GUEST_CID), '--uds-path', uds]);
    const down1 = hostBytes(300_000, 1);
    const down2 = hostBytes(70_000, 2);
    const up = seqBytes(3000);
    const part1 = hostListener(`${uds}_1234`, down1);
    try {
      await waitForPath(sock, { process: be, timeoutMs: 15_000 });
      await waitForPath(uds, { process: be, timeoutMs: 15_000 });
      const part2 = part1.done.then(() => connectToGuest(uds, down2, 120_000));
      part2.catch(() => undefined);
      const res = await runDeviceGuest({
        machine,
        devices: ['vsock'],
        userspace: ['socat'],
        script,
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`],
        qemuDevices: [`${device},chardev=c0`],
        memfd: true,
        timeoutMs: 180_000,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts vsock -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`/init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      await withConsole(res, `----- virtio-ts vsock -----\n${be.output()}`, async () => {
        const got1 = await part1.done;
        assert.equal(got1.length, up.length, 'the host got every guest byte (guest -> host connection)');
        assert.equal(md5(got1), md5(up));
        assert.equal(res.results.get('down_len'), String(down1.length), 'the guest got every host byte');
        assert.equal(res.results.get('down_md5'), md5(down1));
        const p2 = await part2;
        assert.ok(p2.port >= 1024, `OK carries the host port (${p2.port})`);
        assert.equal(md5(p2.got), md5(up), 'host -> guest connection: the host got the guest bytes');
        assert.equal(res.results.get('in_len'), String(down2.length));
        assert.equal(res.results.get('in_md5'), md5(down2), 'the guest got the host bytes');
        const ended = await be.stop(5000);
        assert.deepEqual(ended, { code: 0, signal: null }, 'back-end ends cleanly on SIGTERM');
        assert.equal(isSocket(sock), false, 'back-end removed its socket');
        assert.equal(isSocket(uds), false, 'back-end removed its host-side socket');
      });
    } finally {
      await be.stop();
      await new Promise<void>((r) => part1.server.close(() => r()));
    }
  }

  it('q35: vhost-user-vsock-pci, socat in the guest to and from host Unix sockets, bytes both ways', async (t) => {
    await vsockRun(t, 'q35', 'vhost-user-vsock-pci');
  });

  it('microvm (virtio-mmio version 2): vhost-user-vsock-device, the same both ways', async (t) => {
    await vsockRun(t, 'microvm', 'vhost-user-vsock-device');
  });

  it('q35: 50 connections at once (64 KiB random each way on each, sha256 compared) and SEQPACKET messages relayed whole by the guest', async (t) => {
    const platform = loadNativePlatform();
    const seq = seqpacketSockets();
    const sock = tmp.file('many.sock');
    const uds = tmp.file('many-v');
    const be = startProcess(process.execPath, [CLI, 'vsock', '--socket-path', sock, '--guest-cid', String(GUEST_CID), '--uds-path', uds]);
    const echo = echoListener(`${uds}_1400`);
    // Seqpacket: the source (1300) sends SEQ_SIZES messages then closes; the sink (1301) collects.
    const srcFd = seq.listen(`${uds}_1300`);
    const sinkFd = seq.listen(`${uds}_1301`);
    const fds = [srcFd, sinkFd];
    const got: Uint8Array[] = [];
    let sinkEnded = false;
    let source = -1;
    let sink = -1;
    let nextMsg = 0;
    const buf = new Uint8Array(1 << 17);
    const msg = (i: number): Uint8Array => Buffer.alloc(SEQ_SIZES[i]!, i + 1).map((v, k) => (v * 31 + k) & 0xff);
    const pump = setInterval(() => {
      // Bounded non-blocking polling of four fds (the test's own; nothing here blocks).
      if (source < 0) {
        source = platform.accept(srcFd);
        if (source >= 0) fds.push(source);
      }
      // Messages go out as the socket buffer lets them (a full buffer is -1: next tick).
      while (source >= 0 && nextMsg < SEQ_SIZES.length) {
        const n = seq.send(source, msg(nextMsg));
        if (n < 0) break;
        assert.equal(n, SEQ_SIZES[nextMsg], 'host message sent whole');
        if (++nextMsg === SEQ_SIZES.length) seq.shutdown(source, 1);
      }
      if (sink < 0) {
        sink = platform.accept(sinkFd);
        if (sink >= 0) fds.push(sink);
      }
      if (sink >= 0 && !sinkEnded) {
        for (let n = seq.recv(sink, buf); n !== -1; n = seq.recv(sink, buf)) {
          if (n === 0) {
            sinkEnded = true;
            break;
          }
          got.push(buf.slice(0, n));
        }
      }
    }, 5);
    try {
      await waitForPath(sock, { process: be, timeoutMs: 15_000 });
      const res = await runDeviceGuest({
        machine: 'q35',
        devices: ['vsock'],
        userspace: ['socat'],
        script: manyScript,
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`],
        qemuDevices: ['vhost-user-vsock-pci,chardev=c0'],
        memfd: true,
        timeoutMs: 180_000,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts vsock -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`/init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      await withConsole(res, `----- virtio-ts vsock -----\n${be.output()}`, async () => {
        t.diagnostic(`connects retried after a guest connect timeout: ${res.results.get('retried')}`);
        const sent: string[] = [];
        for (let i = 0; i < CONNS; i++) {
          const [rc, len, up, down] = (res.results.get(`c${i}`) ?? '').split(' ');
          assert.equal(rc, '0', `connection ${i}: socat succeeded`);
          assert.equal(len, '65536', `connection ${i}: the guest got every echoed byte`);
          assert.equal(down, up, `connection ${i}: the echo is what the guest sent (sha256)`);
          sent.push(up!);
        }
        // Each connection's bytes reached the host (sha256); any other host connection is an
        // attempt the guest gave up on while connecting (it sent nothing).
        const host = [...echo.hashes];
        for (const h of sent) {
          const k = host.indexOf(h);
          assert.ok(k >= 0, `the host got a connection's bytes (sha256 ${h})`);
          host.splice(k, 1);
        }
        for (const h of host) assert.equal(h, sha256(new Uint8Array(0)), 'an abandoned attempt carried no bytes');
        assert.match(res.results.get('seq_rc') ?? '', /^0 /, 'socat relayed the seqpacket connection');
        const until = Date.now() + 10_000;
        while (!sinkEnded && Date.now() < until) await delay(10);
        assert.deepEqual(got.map((m) => m.length), SEQ_SIZES, 'every message arrived whole, none merged or split');
        for (let i = 0; i < SEQ_SIZES.length; i++) assert.equal(sha256(got[i]!), sha256(msg(i)), `message ${i}`);
      });
    } finally {
      clearInterval(pump);
      for (const fd of fds) platform.close(fd);
      await be.stop();
      await new Promise<void>((r) => echo.server.close(() => r()));
    }
  });
});
