/**
 * The NBD backend against real NBD servers: qemu-nbd serving a qcow2 image (checked afterwards
 * with `qemu-img compare`), and nbdkit (memory plugin; its error filter injecting EIO, which
 * the guest sees as VIRTIO_BLK_S_IOERR; the file plugin killed with SIGKILL and restarted in the
 * middle of a write stream: every write is acknowledged once, none is lost). Also the CLI's
 * one-line errors for a missing export, an unreachable server and a bad URI.
 *
 * Virtio requests come from a driver in process (RawDriver over a BlkDevice); every server is a
 * child process ended by the test with a time bound. Under CI a missing qemu-nbd or nbdkit fails
 * the test; elsewhere it skips with the reason.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { BlkDevice } from '../src/devices/blk/blk-device.js';
import { RawDriver, header, pattern, segment } from '../src/devices/blk/blk-test-support.js';
import { NbdBackend } from '../src/devices/blk/nbd/nbd-backend.js';
import { NbdError, NbdFault } from '../src/devices/blk/nbd/nbd-error.js';
import { createTestPair } from '../src/devices/blk/test-pair.js';
import { runMain } from '../src/cli/cli-test-helpers.js';
import { BlkReqType, BlkStatus } from '../src/spec/blk.js';
import { makeTempDir, startProcess, waitForPath, type ManagedProcess, type TempDir } from './support/guest-process.js';
import { nbdServerAccepting, nbdToolsMissing } from './support/nbd-servers.js';

const TOOLS = ['qemu-nbd', 'qemu-img', 'nbdkit'] as const;

const skip = nbdToolsMissing(TOOLS);
const MiB = 1 << 20;

async function startServer(cmd: string, args: readonly string[], sock: string): Promise<ManagedProcess> {
  const p = startProcess(cmd, args);
  try {
    await waitForPath(sock, { process: p, timeoutMs: 15_000 });
    await nbdServerAccepting({ path: sock }, p);
  } catch (e) {
    await p.stop();
    throw new Error(`${cmd} did not start: ${(e as Error).message}\n${p.output()}`, { cause: e });
  }
  return p;
}

/** A BlkDevice on the backend, driven by raw virtio requests. */
function virtioDisk(be: NbdBackend): RawDriver {
  const h = be.hints;
  const pair = createTestPair(new BlkDevice(be, { blockSize: h.blockSize, optIoSize: h.optIoSizeBytes / h.blockSize }), { memSize: 16 * MiB });
  return new RawDriver(pair.ctx);
}

describe('virtio-ts blk over NBD: qemu-nbd and nbdkit', { skip, timeout: 120_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-nbd-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('qemu-nbd, qcow2: virtio writes, write-zeroes and flush over two connections (CAN_MULTI_CONN); qemu-img compare with the expected image', async () => {
    const img = tmp.file('disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, String(8 * MiB)], { timeout: 30_000 });
    const sock = tmp.file('qemu-nbd.sock');
    const srv = await startServer('qemu-nbd', ['--socket', sock, '--format', 'qcow2', '--persistent', '--shared=4', img], sock);
    const expected = Buffer.alloc(8 * MiB);
    try {
      const be = await NbdBackend.open(`nbd+unix:///?socket=${sock}`, { connections: 2 });
      try {
        assert.equal(be.size, 8 * MiB);
        assert.equal(be.client.connectionCount, 2, 'qemu-nbd offers CAN_MULTI_CONN: both connections open');
        const raw = virtioDisk(be);
        // Disjoint ranges: concurrent writes over two connections complete in any order, so
        // overlapping ones would have no defined result.
        const writes = [0, 256, 1000, 4096, 8000, 16000].map((sector, i) => ({ sector, data: pattern(64 * 1024, i + 1) }));
        const statuses = await Promise.all(writes.map((w) => raw.status([header(BlkReqType.OUT, w.sector), w.data], [1])));
        assert.deepEqual(statuses, writes.map(() => BlkStatus.OK));
        for (const w of writes) expected.set(w.data, w.sector * 512);
        // Zero part of the first pattern without unmapping (NO_HOLE), then flush.
        assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(8, 16, 0)], [1]), BlkStatus.OK);
        expected.fill(0, 8 * 512, 24 * 512);
        assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
        for (const w of writes) {
          const r = await raw.send([header(BlkReqType.IN, w.sector)], [64 * 1024, 1]);
          assert.equal(r.ins[1]![0], BlkStatus.OK);
          assert.deepEqual(Buffer.from(r.ins[0]!), expected.subarray(w.sector * 512, w.sector * 512 + 64 * 1024));
        }
      } finally {
        await be.close();
      }
    } finally {
      assert.deepEqual(await srv.stop(5000), { code: 0, signal: null }, `qemu-nbd ends cleanly\n${srv.output()}`);
    }
    const raw = tmp.file('expected.raw');
    await writeFile(raw, expected);
    // Exit 0: identical contents (1 would be a difference, 2 an error).
    execFileSync('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', img, raw], { timeout: 30_000 });
  });

  it('qemu-nbd: a missing export, an unreachable server and a bad URI are one-line CLI errors (exit 1, 1, 2)', async () => {
    const img = tmp.file('small.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, String(MiB)], { timeout: 30_000 });
    const sock = tmp.file('qemu-nbd-2.sock');
    const srv = await startServer('qemu-nbd', ['--socket', sock, '--format', 'qcow2', '--persistent', img], sock);
    try {
      const noExport = await runMain(['blk', '--socket-path', tmp.file('b1.sock'), '--nbd', `nbd+unix:///nope?socket=${sock}`]);
      assert.equal(noExport.code, 1);
      assert.match(noExport.err, /^virtio-ts: nbd: the server has no export "nope".*\(BACKEND_IO\)\n$/);
    } finally {
      await srv.stop(5000);
    }
    const unreachable = await runMain(['blk', '--socket-path', tmp.file('b2.sock'), '--nbd', `nbd+unix:///?socket=${tmp.file('none.sock')}`]);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.err, /^virtio-ts: nbd: cannot connect to .*none\.sock: connect ENOENT.*\n$/);
    const badUri = await runMain(['blk', '--socket-path', tmp.file('b3.sock'), '--nbd', 'nbd+unix:///x']);
    assert.equal(badUri.code, 2);
    assert.match(badUri.err, /^virtio-ts blk: --nbd: bad URI "nbd\+unix:\/\/\/x": nbd\+unix needs \?socket=PATH\n/);
  });

  it('nbdkit memory plugin: virtio round trip, DISCARD as TRIM, all connections used', async () => {
    const sock = tmp.file('nbdkit-mem.sock');
    const srv = await startServer('nbdkit', ['--foreground', '--exit-with-parent', '--unix', sock, 'memory', String(16 * MiB)], sock);
    try {
      const be = await NbdBackend.open(`nbd+unix:///?socket=${sock}`, { connections: 3 });
      try {
        assert.equal(be.client.connectionCount, 3);
        const raw = virtioDisk(be);
        const data = pattern(256 * 1024, 11);
        const all = await Promise.all(Array.from({ length: 16 }, (_, i) => raw.status([header(BlkReqType.OUT, i * 512), data], [1])));
        assert.ok(all.every((s) => s === BlkStatus.OK));
        for (let i = 0; i < 16; i += 5) {
          const r = await raw.send([header(BlkReqType.IN, i * 512)], [256 * 1024, 1]);
          assert.deepEqual(r.ins[0], data);
        }
        assert.equal(await raw.status([header(BlkReqType.DISCARD, 0), segment(0, 512)], [1]), BlkStatus.OK);
      } finally {
        await be.close();
      }
    } finally {
      await srv.stop(5000);
    }
  });

  it('nbdkit error filter: injected EIO on pwrite and pread gives VIRTIO_BLK_S_IOERR; without the trigger the same requests succeed', async () => {
    const sock = tmp.file('nbdkit-err.sock');
    const wTrigger = tmp.file('fail-writes');
    const rTrigger = tmp.file('fail-reads');
    const srv = await startServer(
      'nbdkit',
      ['--foreground', '--exit-with-parent', '--unix', sock, '--filter=error', 'memory', String(4 * MiB), 'error=EIO',
        'error-pwrite-rate=100%', `error-pwrite-file=${wTrigger}`, 'error-pread-rate=100%', `error-pread-file=${rTrigger}`],
      sock,
    );
    try {
      const be = await NbdBackend.open(`nbd+unix:///?socket=${sock}`);
      try {
        const raw = virtioDisk(be);
        const data = pattern(4096, 2);
        await writeFile(wTrigger, '');
        assert.equal(await raw.status([header(BlkReqType.OUT, 8), data], [1]), BlkStatus.IOERR, 'EIO on write: IOERR');
        await rm(wTrigger);
        assert.equal(await raw.status([header(BlkReqType.OUT, 8), data], [1]), BlkStatus.OK);
        await writeFile(rTrigger, '');
        const bad = await raw.send([header(BlkReqType.IN, 8)], [4096, 1]);
        assert.equal(bad.ins[1]![0], BlkStatus.IOERR, 'EIO on read: IOERR');
        assert.ok(bad.ins[0]!.every((b) => b === 0), 'no partial data handed to the guest');
        await rm(rTrigger);
        const good = await raw.send([header(BlkReqType.IN, 8)], [4096, 1]);
        assert.equal(good.ins[1]![0], BlkStatus.OK);
        assert.deepEqual(good.ins[0], data);
        assert.equal(be.client.reconnects, 0, 'errors are answers, not broken connections');
      } finally {
        await be.close();
      }
    } finally {
      await srv.stop(5000);
    }
  });

  it('nbdkit killed (SIGKILL) and restarted in the middle of a write stream: every write succeeds once, none is lost; a server that stays away gives IOERR after the retry time', async () => {
    const img = tmp.file('restart.img');
    const SIZE = 16 * MiB;
    await writeFile(img, Buffer.alloc(SIZE));
    const sock = tmp.file('nbdkit-file.sock');
    const args = ['--foreground', '--exit-with-parent', '--unix', sock, 'file', img];
    let srv = await startServer('nbdkit', args, sock);
    try {
      const be = await NbdBackend.open(`nbd+unix:///?socket=${sock}`, { retryTimeoutMs: 1500 });
      try {
        const raw = virtioDisk(be);
        const WRITES = 256;
        const LEN = 32 * 1024;
        let next = 0;
        let acked = 0;
        let restarted: Promise<void> | null = null;
        const worker = async (): Promise<void> => {
          while (next < WRITES) {
            const i = next++;
            const st = await raw.status([header(BlkReqType.OUT, (i * LEN) / 512), pattern(LEN, i)], [1]);
            assert.equal(st, BlkStatus.OK, `write ${i}`);
            acked++;
            if (acked === 64 && restarted === null) {
              // Kill the server with writes in flight, restart it a little later on the same socket.
              restarted = (async () => {
                srv.child.kill('SIGKILL');
                await srv.exited;
                await new Promise((r) => setTimeout(r, 300));
                if (existsSync(sock)) await rm(sock);
                srv = await startServer('nbdkit', args, sock);
              })();
            }
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        await restarted;
        assert.equal(acked, WRITES);
        assert.ok(be.client.reconnects >= 1, `reconnected (${be.client.reconnects})`);
        assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
        const file = await readFile(img);
        for (let i = 0; i < WRITES; i++) {
          assert.ok(file.subarray(i * LEN, (i + 1) * LEN).equals(pattern(LEN, i)), `write ${i} is in the image`);
        }
        // Now the server goes away for good: a request fails with IOERR once the retry time passed.
        await srv.stop(5000);
        const t0 = Date.now();
        const r = await raw.send([header(BlkReqType.IN, 0)], [4096, 1]);
        assert.equal(r.ins[1]![0], BlkStatus.IOERR);
        assert.ok(Date.now() - t0 >= 1000, 'not before the retry time');
      } finally {
        await be.close();
      }
    } finally {
      await srv.stop(5000);
    }
  });

  it('the typed error for a refused connection names the fault', async () => {
    await assert.rejects(
      NbdBackend.open(`nbd+unix:///?socket=${tmp.file('nothing.sock')}`),
      (e: unknown) => e instanceof NbdError && e.fault === NbdFault.UNREACHABLE,
    );
  });
});
