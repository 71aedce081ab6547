/**
 * UringBackend on real files in a temporary directory: data round trips (alone and through a
 * BlkDevice), the batching of one pass into one io_uring_enter, more operations than ring
 * entries, O_DIRECT with misaligned buffers (bounced) and the open flags, write-through,
 * discard and write zeroes, a file that shrank (a short read is an error, not an ack), close.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkReqType, BlkStatus } from '../../spec/blk.js';
import { BlkF } from '../../spec/blk.js';
import { ioUringSupport } from '../../platform/io-uring.js';
import { RawDriver, header, pattern, setup } from './blk-test-support.js';
import { UringBackend } from './uring-backend.js';
import { UringIoError } from './uring-file-io.js';

const support = ioUringSupport();
// io_uring is part of the platform this backend exists for; on CI its absence is a failure.
const skip = support.ok || process.env['CI'] === 'true' ? false : `io_uring unavailable: ${support.ok ? '' : support.reason}`;

const O_DSYNC = 0o10000;
const O_DIRECT = 0o40000;

/** The open flags of the fds of this process that name `path` (from /proc/self/fdinfo). */
function openFlags(path: string): number[] {
  const out: number[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== path) continue;
    const m = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (m) out.push(parseInt(m[1]!, 8));
  }
  return out;
}

describe('UringBackend (io_uring on a real file)', { skip, timeout: 60_000 }, () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vts-uring-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function image(name: string, bytes: number, fill = 0): string {
    const p = join(dir, name);
    writeFileSync(p, Buffer.alloc(bytes, fill));
    return p;
  }

  it('writes and reads back at offsets, many in flight, more than the ring has entries', async () => {
    const path = image('a.img', 1 << 20);
    const b = await UringBackend.open(path, { entries: 8 });
    try {
      const writes: (Promise<void> | undefined)[] = [];
      // 64 operations on an 8-entry ring: the rest wait for slots.
      for (let i = 0; i < 64; i++) writes.push(b.write(i * 8192, pattern(4096, i)));
      await Promise.all(writes);
      await b.flush();
      const file = readFileSync(path);
      for (let i = 0; i < 64; i++) assert.deepEqual(new Uint8Array(file.subarray(i * 8192, i * 8192 + 4096)), pattern(4096, i), `block ${i}`);
      const dst = new Uint8Array(64 * 4096);
      await Promise.all(Array.from({ length: 64 }, (_, i) => b.read(i * 8192, dst, i * 4096, 4096)));
      for (let i = 0; i < 64; i++) assert.deepEqual(dst.subarray(i * 4096, (i + 1) * 4096), pattern(4096, i));
    } finally {
      await b.close();
    }
  });

  it('submits the operations of one synchronous pass with one io_uring_enter', async () => {
    const path = image('batch.img', 1 << 20, 5);
    const b = await UringBackend.open(path);
    try {
      const before = b.counters;
      const dst = new Uint8Array(32 * 4096);
      const results = Array.from({ length: 32 }, (_, i) => b.read(i * 4096, dst, i * 4096, 4096));
      assert.equal(results[0], undefined, 'the eager read of a page-cache hit completes synchronously');
      await Promise.all(results);
      const after = b.counters;
      assert.equal(after.submitted - before.submitted, 32);
      // The first read goes to the kernel at once (eager), the other 31 in one batch.
      assert.equal(after.batches - before.batches, 2, 'the eager read, then one batch for the other 31 reads of the pass');
      assert.ok(dst.every((x) => x === 5));
    } finally {
      await b.close();
    }
  });

  it('roundEnd submits the round\'s batch at once, and the next round\'s first read is eager again (rounds inside one macrotask, as in a busy-polling episode)', async () => {
    const path = image('rounds.img', 1 << 20, 9);
    const b = await UringBackend.open(path);
    try {
      const dst = new Uint8Array(8 * 4096);
      const c0 = b.counters;
      // Round 1: the eager read and three batched ones; the round's end submits them.
      const round1 = Array.from({ length: 4 }, (_, i) => b.read(i * 4096, dst, i * 4096, 4096));
      assert.equal(round1[0], undefined);
      assert.equal(b.counters.submitted - c0.submitted, 1, 'before roundEnd only the eager read went to the kernel');
      b.roundEnd();
      assert.equal(b.counters.submitted - c0.submitted, 4, 'roundEnd submitted the other three without a microtask');
      assert.equal(b.counters.batches - c0.batches, 2);
      // Round 2, same macrotask: its first read is eager again (done synchronously from the page cache).
      const round2 = Array.from({ length: 4 }, (_, i) => b.read((4 + i) * 4096, dst, (4 + i) * 4096, 4096));
      assert.equal(round2[0], undefined, 'the first read of the next round completed inside its own io_uring_enter');
      b.roundEnd();
      assert.equal(b.counters.submitted - c0.submitted, 8);
      await Promise.all([...round1, ...round2]);
      // The microtask flush found nothing left: no empty io_uring_enter.
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(b.counters.batches - c0.batches, 4, 'two batches per round, none after');
      assert.ok(dst.every((x) => x === 9));
    } finally {
      await b.close();
    }
  });

  it('serves a BlkDevice: OUT, IN, FLUSH with status OK and the data in the file', async () => {
    const path = image('dev.img', 256 * 512);
    const backend = await UringBackend.open(path);
    try {
      const { pair } = setup({}, {}, backend);
      const raw = new RawDriver(pair.ctx);
      const data = pattern(8192, 3);
      assert.equal(await raw.status([header(BlkReqType.OUT, 8), data], [1]), BlkStatus.OK);
      assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
      const r = await raw.send([header(BlkReqType.IN, 8)], [8192, 1]);
      assert.equal(r.ins[1]![0], BlkStatus.OK);
      assert.deepEqual(r.ins[0], data);
      assert.deepEqual(new Uint8Array(readFileSync(path).subarray(8 * 512, 8 * 512 + 8192)), data);
      // Beyond the end: IOERR from the device's own check, the backend untouched.
      assert.equal(await raw.status([header(BlkReqType.IN, 255)], [1024, 1]), BlkStatus.IOERR);
    } finally {
      await backend.close();
    }
  });

  it('a BlkDevice hands its backend the wait gate (its rings\' unpopped requests) and ends each round (roundEnd)', async () => {
    const path = image('gate.img', 256 * 512, 4);
    const backend = await UringBackend.open(path);
    let gate: (() => boolean) | null = null;
    let roundEnds = 0;
    const gateWaits = backend.gateWaits.bind(backend);
    backend.gateWaits = (f) => {
      gate = f;
      gateWaits(f);
    };
    const roundEnd = backend.roundEnd.bind(backend);
    backend.roundEnd = () => {
      roundEnds++;
      roundEnd();
    };
    try {
      const { pair } = setup({}, {}, backend);
      assert.ok(gate !== null, 'the device set the gate when it was built');
      const raw = new RawDriver(pair.ctx);
      const r = await raw.send([header(BlkReqType.IN, 0)], [4096, 1]);
      assert.equal(r.ins[1]![0], BlkStatus.OK);
      assert.ok(r.ins[0]!.every((x) => x === 4));
      assert.ok(roundEnds >= 1, 'the pass over the request ended a round');
      assert.equal((gate as () => boolean)(), false, 'nothing posted now');
    } finally {
      await backend.close();
    }
  });

  it('O_DIRECT: opened with O_DIRECT, misaligned buffers bounced, data intact', async () => {
    const path = image('direct.img', 1 << 20);
    let b: UringBackend;
    try {
      b = await UringBackend.open(path, { direct: true });
    } catch (e) {
      // A filesystem without direct I/O (tmpfs before Linux 6.6) refuses O_DIRECT with EINVAL.
      assert.match((e as Error).message, /EINVAL|Invalid argument/);
      return;
    }
    try {
      assert.ok(openFlags(path).some((f) => (f & O_DIRECT) !== 0), 'an fd with O_DIRECT');
      assert.ok(b.memAlign >= 1 && b.offsetAlign >= 512);
      // A heap buffer one byte past an aligned start is misaligned for any memAlign > 1.
      const src = new Uint8Array(4096 * 3 + 1);
      src.set(pattern(4096 * 3, 9), 1);
      await b.write(0, src, 1, 4096 * 3);
      const dst = new Uint8Array(4096 * 3 + 7);
      await b.read(0, dst, 7, 4096 * 3);
      assert.deepEqual(dst.subarray(7), pattern(4096 * 3, 9));
      // A transfer larger than one bounce chunk (128 KiB) goes through it in pieces.
      const big = new Uint8Array(300 * 1024 + 1);
      big.set(pattern(300 * 1024, 4), 1);
      await b.write(4096 * 4, big, 1, 300 * 1024);
      await b.flush();
      assert.deepEqual(new Uint8Array(readFileSync(path).subarray(4096 * 4, 4096 * 4 + 300 * 1024)), pattern(300 * 1024, 4));
    } finally {
      await b.close();
    }
  });

  it('write-through: O_DSYNC, FLUSH has nothing left to do, the device reads writethrough (WCE 0)', async () => {
    const path = image('wt.img', 256 * 512);
    const backend = await UringBackend.open(path, { writeThrough: true });
    try {
      assert.ok(openFlags(path).some((f) => (f & O_DSYNC) !== 0), 'an fd with O_DSYNC');
      assert.equal(backend.flush(), undefined, 'flush completes at once');
      const { pair, device } = setup({ writeback: false }, {}, backend);
      assert.ok((pair.features & BlkF.CONFIG_WCE) !== 0n);
      assert.equal(device.writeback, 0);
      const raw = new RawDriver(pair.ctx);
      assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 1)], [1]), BlkStatus.OK);
      assert.deepEqual(new Uint8Array(readFileSync(path).subarray(0, 512)), pattern(512, 1));
    } finally {
      await backend.close();
    }
  });

  it('write zeroes and discard: zeroes read back; discard with unmap deallocates', async () => {
    const path = image('z.img', 1 << 20, 0xaa);
    const b = await UringBackend.open(path);
    try {
      const blocksBefore = statSync(path).blocks;
      await b.writeZeroes(0, 65536, false);
      await b.discard(65536, 256 * 1024);
      const dst = new Uint8Array(65536 + 256 * 1024 + 512);
      await b.read(0, dst);
      assert.ok(dst.subarray(0, 65536 + 256 * 1024).every((x) => x === 0));
      assert.ok(dst.subarray(65536 + 256 * 1024).every((x) => x === 0xaa), 'the rest untouched');
      assert.ok(statSync(path).blocks < blocksBefore, 'the punched range is deallocated');
      await b.secureErase(512 * 1024, 4096);
      const after = readFileSync(path).subarray(512 * 1024, 512 * 1024 + 4096);
      assert.ok(after.every((x) => x === 0));
    } finally {
      await b.close();
    }
  });

  it('a file that shrank under it: the read fails (ESHORT), never resolves with stale bytes', async () => {
    const path = image('shrink.img', 64 * 1024, 1);
    const b = await UringBackend.open(path);
    try {
      truncateSync(path, 8192);
      await assert.rejects(async () => b.read(4096, new Uint8Array(8192)), (e: unknown) => e instanceof UringIoError && e.errno === 'ESHORT');
      // Through the device: IOERR.
      const { pair } = setup({}, {}, b);
      const raw = new RawDriver(pair.ctx);
      assert.equal(await raw.status([header(BlkReqType.IN, 64)], [4096, 1]), BlkStatus.IOERR);
    } finally {
      await b.close();
    }
  });

  it('after close: operations refused, fds closed', async () => {
    const path = image('c.img', 65536);
    const b = await UringBackend.open(path, { direct: false });
    assert.equal(openFlags(path).length, 1);
    await b.close();
    await b.close();
    assert.equal(openFlags(path).length, 0);
    assert.throws(() => b.read(0, new Uint8Array(512)), /closed/);
  });
});
