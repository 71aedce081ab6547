/**
 * The `virtio-ts vsock` back-end serving a real Linux guest through QEMU 7.2's vhost-user-vsock-pci
 * (q35) and vhost-user-vsock-device (microvm, virtio-mmio version 2), memfd RAM, the cloud
 * kernel's vsock drivers and socat 1.7.4 in the guest, host side Unix sockets
 * in the hybrid model:
 *  1. the guest runs `socat - VSOCK-CONNECT:2:1234`, which reaches the host listener at P_1234:
 *     bytes compared both ways, half-closes both ways;
 *  2. the guest listens on vsock port 5000; a host program connects to P with `CONNECT 5000`,
 *     reads `OK <port>`, and bytes are compared both ways again.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
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
});
