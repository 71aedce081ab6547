/**
 * The pieces of the x-remote transport around the link, without QEMU: the INTx line (eventfd
 * pair, ISR handler, resample), the shared guest RAM and the QMP client against an in-process
 * QMP server on a Unix socket.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '../src/errors.js';
import { FakePlatform } from '../src/platform/fake-platform.js';
import {
  HEADER_SIZE,
  MAX_MESSAGE,
  QmpClient,
  QmpError,
  XRemoteCmd,
  XRemoteConnection,
  XRemoteGuestRam,
  XRemoteIntxLine,
  decodeRequest,
  startXRemoteDevice,
} from '../src/transport/x-remote/index.js';
import { loadNativePlatform } from '../src/platform/native-platform.js';

/** Receives one request on the peer end; returns it with the fds that came along (caller owns them). */
function recvRequest(p: FakePlatform, peer: number): { cmd: number; fds: number[]; bytes: Uint8Array } {
  const buf = new Uint8Array(MAX_MESSAGE);
  const h = p.recvmsg(peer, buf, 0, HEADER_SIZE, 8);
  assert.equal(h.bytes, HEADER_SIZE);
  const size = new DataView(buf.buffer).getUint32(8, true);
  if (size > 0) assert.equal(p.recvmsg(peer, buf, HEADER_SIZE, size, 0).bytes, size);
  const bytes = buf.slice(0, HEADER_SIZE + size);
  return { cmd: decodeRequest(bytes, h.fds.length).cmd, fds: h.fds, bytes };
}

/** Resolves once `cond` holds, checking on each turn of the event loop (bounded). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), what);
}

describe('x-remote INTx line', () => {
  it('hands the device both eventfds; each interrupt runs the handler once, then signals resample', async () => {
    const p = new FakePlatform();
    const [mine, peer] = p.socketpair();
    const link = new XRemoteConnection(p, mine);
    const line = new XRemoteIntxLine(p);
    let handled = 0;
    line.connect(link, () => handled++);
    const req = recvRequest(p, peer);
    assert.equal(req.cmd, XRemoteCmd.SET_IRQFD);
    const [irq, resample] = req.fds as [number, number];
    // The device raises the line twice before this side looks: one interrupt (an eventfd counts).
    p.eventfdWrite(irq, 1);
    p.eventfdWrite(irq, 1);
    await until(() => handled === 1, 'the handler ran');
    assert.equal(line.interrupts, 1);
    assert.equal(p.eventfdRead(resample), 1, 'resample signalled after the handler');
    p.eventfdWrite(irq, 1);
    await until(() => handled === 2, 'the handler ran again');
    line.close();
    line.close();
    p.eventfdWrite(irq, 1);
    await new Promise((r) => setImmediate(r));
    assert.equal(handled, 2, 'no delivery after close');
    for (const fd of [irq, resample, peer]) p.close(fd);
    link.close();
  });

  it('a handler that throws (link gone) stops the line instead of throwing out of the event loop', async () => {
    const p = new FakePlatform();
    const [mine, peer] = p.socketpair();
    const link = new XRemoteConnection(p, mine);
    const line = new XRemoteIntxLine(p);
    let calls = 0;
    line.connect(link, () => {
      calls++;
      throw new Error('link broke');
    });
    const { fds } = recvRequest(p, peer);
    p.eventfdWrite(fds[0]!, 1);
    await until(() => line.failure !== null, 'failure recorded');
    p.eventfdWrite(fds[0]!, 1);
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 1);
    assert.equal(p.eventfdRead(fds[1]!), 0, 'no resample after a failed handler');
    line.close();
    for (const fd of [...fds, peer]) p.close(fd);
    link.close();
  });
});

describe('x-remote guest RAM', () => {
  it('is one memfd: what the device process maps is what the driver memory views', () => {
    const p = new FakePlatform();
    const [mine, peer] = p.socketpair();
    const link = new XRemoteConnection(p, mine);
    const before = p.openFdCount();
    const ram = new XRemoteGuestRam(p, { size: 1 << 20, guestBase: 0x40_0000 });
    assert.equal(ram.end, 0x50_0000);
    ram.share(link);
    const req = recvRequest(p, peer);
    assert.deepEqual(decodeRequest(req.bytes, 1), { cmd: XRemoteCmd.SYNC_SYSMEM, regions: [{ gpa: 0x40_0000, size: 1 << 20, offset: 0 }] });
    const theirs = p.mmap(req.fds[0]!, 0, 1 << 20);
    const addr = ram.dma.alloc(64);
    assert.ok(addr >= 0x40_0000 && addr + 64 <= 0x50_0000, 'the allocator hands out addresses inside the RAM');
    ram.memory.writeU32(addr, 0xdead_beef);
    assert.equal(new DataView(theirs.bytes.buffer, theirs.bytes.byteOffset).getUint32(addr - 0x40_0000, true), 0xdead_beef);
    theirs.unmap();
    p.close(req.fds[0]!);
    ram.close();
    ram.close();
    assert.equal(p.openFdCount(), before);
    assert.equal(p.mappings, 0);
    assert.throws(() => new XRemoteGuestRam(p, { size: 1000 }), (e: unknown) => (e as { code?: string }).code === ErrorCode.INVALID_ARGUMENT);
    p.close(peer);
    link.close();
  });
});

describe('QMP client', () => {
  async function withServer(handle: (sock: Socket, line: string) => void, body: (path: string) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'vts-qmp-'));
    const path = join(dir, 'qmp.sock');
    const sockets: Socket[] = [];
    const server: Server = createServer((sock) => {
      sockets.push(sock);
      sock.write('{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}\r\n');
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          handle(sock, line);
        }
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      await body(path);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('negotiates, runs commands in order, keeps events, turns errors into QmpError', async () => {
    const seen: string[] = [];
    await withServer(
      (sock, line) => {
        const m = JSON.parse(line) as { execute: string; arguments?: { value?: number } };
        seen.push(m.execute);
        if (m.execute === 'qmp_capabilities') sock.write('{"return": {}}\n');
        else if (m.execute === 'balloon') sock.write('{"event": "BALLOON_CHANGE", "data": {"actual": 1}}\n{"return": {}}\n');
        else if (m.execute === 'query-status') sock.write(`{"return": {"status": "running", "n": ${seen.length}}}\n`);
        else sock.write(`{"error": {"class": "CommandNotFound", "desc": "The command ${m.execute} has not been found"}}\n`);
      },
      async (path) => {
        const q = await QmpClient.connect(path, 5000);
        try {
          const [a, b, c] = await Promise.all([q.execute('query-status'), q.execute('balloon', { value: 1 }), q.execute('query-status')]);
          assert.deepEqual(a, { status: 'running', n: 2 });
          assert.deepEqual(b, {});
          assert.deepEqual(c, { status: 'running', n: 4 });
          assert.deepEqual(q.events, [{ event: 'BALLOON_CHANGE', data: { actual: 1 } }]);
          await assert.rejects(q.execute('nope'), (e: unknown) => e instanceof QmpError && e.qmpClass === 'CommandNotFound');
          assert.deepEqual(await q.execute('query-status'), { status: 'running', n: 6 }, 'an error does not derail later commands');
        } finally {
          q.close();
        }
        assert.deepEqual(seen.slice(0, 2), ['qmp_capabilities', 'query-status']);
        await assert.rejects(q.execute('query-status'), (e: unknown) => (e as { code?: string }).code === ErrorCode.BACKEND_IO);
      },
    );
  });

  it('a server that never answers: connect fails with TIMEOUT, bounded', async () => {
    await withServer(
      () => undefined,
      async (path) => {
        const t0 = Date.now();
        await assert.rejects(QmpClient.connect(path, 200), (e: unknown) => (e as { code?: string }).code === ErrorCode.TIMEOUT);
        assert.ok(Date.now() - t0 < 3000);
      },
    );
  });
});

describe('startXRemoteDevice: a QEMU that does not answer', () => {
  let nativeMissing: string | false = false;
  try {
    loadNativePlatform();
  } catch (e) {
    nativeMissing = `native addon: ${(e as Error).message}`;
  }
  if (nativeMissing && process.env.CI === 'true') throw new Error(nativeMissing);

  /** A stand-in for qemu-system-x86_64: records each start's pid, then runs `body`. */
  async function fakeQemu(body: string): Promise<{ bin: string; starts: () => Promise<number[]>; dir: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'vts-fake-qemu-'));
    const bin = join(dir, 'qemu');
    await writeFile(bin, `#!/bin/sh\necho $$ >> '${dir}/starts'\n${body}\n`);
    await chmod(bin, 0o755);
    const starts = async () => (await readFile(join(dir, 'starts'), 'utf8')).trim().split('\n').map(Number);
    return { bin, starts, dir };
  }

  const gone = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  };

  it('alive but silent: started again up to startAttempts, each one ended, then TIMEOUT naming every attempt', { skip: nativeMissing }, async () => {
    const q = await fakeQemu('exec sleep 60');
    try {
      const t0 = Date.now();
      await assert.rejects(startXRemoteDevice({ device: 'virtio-rng-pci', qemuBinary: q.bin, startTimeoutMs: 300, startAttempts: 3, graceMs: 100 }), (e: unknown) => {
        const err = e as { code?: string; message: string };
        assert.equal(err.code, ErrorCode.TIMEOUT);
        assert.match(err.message, /attempt 1 of 3/);
        assert.match(err.message, /attempt 2 of 3/);
        return true;
      });
      assert.ok(Date.now() - t0 < 10_000, 'bounded');
      const pids = await q.starts();
      assert.equal(pids.length, 3, 'three start-ups');
      for (const pid of pids) assert.ok(gone(pid), `start-up ${pid} ended`);
    } finally {
      await rm(q.dir, { recursive: true, force: true });
    }
  });

  it('one that exits is not started again: its exit is the error', { skip: nativeMissing }, async () => {
    const q = await fakeQemu("echo 'qemu: bad option' >&2; exit 3");
    try {
      await assert.rejects(startXRemoteDevice({ device: 'virtio-rng-pci', qemuBinary: q.bin, startTimeoutMs: 5000, graceMs: 100 }), (e: unknown) => {
        const err = e as { code?: string; message: string };
        assert.equal(err.code, ErrorCode.BACKEND_IO);
        assert.match(err.message, /QEMU exited \(code 3/);
        assert.match(err.message, /bad option/);
        return true;
      });
      assert.equal((await q.starts()).length, 1);
    } finally {
      await rm(q.dir, { recursive: true, force: true });
    }
  });

  it('startAttempts below 1 is refused', async () => {
    await assert.rejects(startXRemoteDevice({ device: 'virtio-rng-pci', startAttempts: 0 }), (e: unknown) => (e as { code?: string }).code === ErrorCode.INVALID_ARGUMENT);
  });
});
