/**
 * virtio-fs READs batched through io_uring (fs-read-batch.ts): the batch is read when full, in
 * a microtask after the callback that queued it, when the queue server ends a round, and before
 * any other request; each reply carries its data, length and unique; errors, short reads, a ring
 * that fails and a kernel without io_uring fall back to pread; the device batches only READs
 * whose reply data area is one guest buffer.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { QueueRequest } from '../../device/queue-server.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { PlatformError } from '../../platform/platform-error.js';
import { loadFsAt } from '../../platform/fs-at.js';
import { DescriptorChain } from '../../queue/chain.js';
import { FuseOpcode } from '../../spec/fs.js';
import { createTestPair } from '../blk/test-pair.js';
import { FsDevice, type FsDeviceOptions } from './fs-device.js';
import { FsReadBatch, READ_BATCH, type FsReadBatchOwner, type ReadRing } from './fs-read-batch.js';
import { Raw, fuseRequest } from './fs-test-support.js';

const T = { timeout: 20_000 };
const FILE_LEN = 20_000;
const dirs: string[] = [];
const fds: number[] = [];
const devices: FsDevice[] = [];
const fsAt = loadFsAt();

function pattern(len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}
const CONTENT = pattern(FILE_LEN);

function shareDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'vts-fsbatch-'));
  dirs.push(d);
  writeFileSync(join(d, 'f.bin'), CONTENT);
  return d;
}

function openFile(): number {
  const fd = openSync(join(shareDir(), 'f.bin'), 'r');
  fds.push(fd);
  return fd;
}

/** One request: a chain of one writable buffer (16-byte header + `len` data) at `addr`. */
function request(mem: GuestMemory, addr: number, len: number): QueueRequest {
  const chain = new DescriptorChain(mem, 4);
  chain.addSegment(addr, 16 + len, true);
  return new QueueRequest(chain, 1);
}

function inHeader(unique: bigint): Uint8Array {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(unique, 8);
  return b;
}

interface Answer {
  req: QueueRequest;
  written: number;
}

function owner(answers: Answer[], extra: Partial<FsReadBatchOwner> = {}): FsReadBatchOwner & { preads: number } {
  const o = {
    preads: 0,
    complete: (req: QueueRequest, written: number) => void answers.push({ req, written }),
    pread: (fd: number, bytes: Uint8Array, at: number, len: number, pos: number) => {
      o.preads++;
      return fsAt.pread(fd, bytes, at, len, pos);
    },
    ...extra,
  };
  return o;
}

/** The reply at `addr`: header fields and the data after it. */
function replyAt(mem: GuestMemory, addr: number, dataLen: number, le = true): { len: number; error: number; unique: bigint; data: Buffer } {
  const h = Buffer.alloc(16);
  mem.read(addr, h);
  const data = Buffer.alloc(dataLen);
  mem.read(addr + 16, data);
  return le ? { len: h.readUInt32LE(0), error: h.readInt32LE(4), unique: h.readBigUInt64LE(8), data } : { len: h.readUInt32BE(0), error: h.readInt32BE(4), unique: h.readBigUInt64LE(8), data };
}

describe('FsReadBatch', T, () => {
  after(() => {
    for (const fd of fds.splice(0)) closeSync(fd);
    for (const d of devices.splice(0)) d.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it(`READ_BATCH (${READ_BATCH}) READs are read in one batch as the batch fills: each reply holds its data, length and unique; a short read at the end of the file and one past it`, () => {
    const fd = openFile();
    const mem = GuestMemory.allocate(0x40000);
    const answers: Answer[] = [];
    const o = owner(answers);
    const batch = new FsReadBatch(o);
    const asks = [
      { pos: 0, len: 4096 },
      { pos: 5000, len: 4096 },
      { pos: FILE_LEN - 100, len: 4096 }, // 100 bytes left
      { pos: FILE_LEN + 10, len: 4096 }, // past the end: 0 bytes
      { pos: 1, len: 512 },
      { pos: 8191, len: 4096 },
      { pos: 12_000, len: 1 },
      { pos: 16_384, len: 3000 },
    ].slice(0, READ_BATCH);
    assert.equal(asks.length, READ_BATCH);
    const reqs = asks.map((a, i) => request(mem, 0x1000 + i * 0x2000, a.len));
    for (let i = 0; i < asks.length; i++) {
      assert.equal(answers.length, 0, 'nothing answered before the batch is full');
      assert.ok(batch.queue(reqs[i]!, fd, mem.bytesOf(0), 0x1000 + i * 0x2000 + 16, asks[i]!.len, asks[i]!.pos, inHeader(100n + BigInt(i)), true));
    }
    assert.equal(answers.length, asks.length, 'the full batch was read and answered at once');
    assert.equal(batch.batches, 1);
    assert.equal(o.preads, 0, 'no pread');
    for (let i = 0; i < asks.length; i++) {
      const { pos, len } = asks[i]!;
      const n = Math.max(0, Math.min(len, FILE_LEN - pos));
      assert.equal(answers[i]!.req, reqs[i]);
      assert.equal(answers[i]!.written, 16 + n);
      const r = replyAt(mem, 0x1000 + i * 0x2000, n);
      assert.deepEqual({ len: r.len, error: r.error, unique: r.unique }, { len: 16 + n, error: 0, unique: 100n + BigInt(i) });
      assert.ok(r.data.equals(CONTENT.subarray(pos, pos + n)), `data of READ ${i}`);
    }
    batch.close();
  });

  it("the owner's batchLimit (the queue server's hand-over point) reads the batch sooner; above READ_BATCH it is READ_BATCH", () => {
    const fd = openFile();
    const mem = GuestMemory.allocate(0x40000);
    for (const [limit, at] of [[3, 3], [5, 5], [READ_BATCH + 4, READ_BATCH]] as const) {
      const answers: Answer[] = [];
      const asked: number[] = [];
      const batch = new FsReadBatch(owner(answers, { batchLimit: (q) => (asked.push(q), limit) }));
      for (let i = 0; i < at; i++) {
        assert.equal(answers.length, 0, `limit ${limit}: nothing answered before ${at} are queued`);
        const req = request(mem, 0x1000 + i * 0x2000, 1024);
        assert.ok(batch.queue(req, fd, mem.bytesOf(0), 0x1000 + i * 0x2000 + 16, 1024, i * 1024, inHeader(BigInt(i + 1)), true));
      }
      assert.equal(answers.length, at, `limit ${limit}: read and answered at ${at}`);
      assert.equal(batch.batches, 1);
      assert.ok(asked.every((q) => q === 1), 'asked for the request\'s queue');
      for (let i = 0; i < at; i++) assert.ok(replyAt(mem, 0x1000 + i * 0x2000, 1024).data.equals(CONTENT.subarray(i * 1024, i * 1024 + 1024)));
      batch.close();
    }
  });

  it('fewer READs are read in a microtask after the callback that queued them, or at once by flush(), a lone one by pread; a big-endian driver gets big-endian headers', async () => {
    const fd = openFile();
    const mem = GuestMemory.allocate(0x40000);
    const answers: Answer[] = [];
    const o = owner(answers);
    const batch = new FsReadBatch(o);
    assert.ok(batch.queue(request(mem, 0x1000, 512), fd, mem.bytesOf(0), 0x1010, 512, 64, inHeader(1n), true));
    assert.ok(batch.queue(request(mem, 0x3000, 512), fd, mem.bytesOf(0), 0x3010, 512, 128, inHeader(2n), false));
    assert.equal(batch.pending, 2);
    assert.equal(answers.length, 0);
    await Promise.resolve();
    assert.equal(answers.length, 2, 'read in the microtask');
    assert.equal(o.preads, 0, 'two READs: through io_uring');
    assert.equal(batch.pending, 0);
    assert.ok(replyAt(mem, 0x1000, 512).data.equals(CONTENT.subarray(64, 576)));
    const be = replyAt(mem, 0x3000, 512, false);
    assert.equal(be.len, 16 + 512, 'length in the big-endian driver order');
    assert.ok(be.data.equals(CONTENT.subarray(128, 640)));
    assert.ok(batch.queue(request(mem, 0x5000, 100), fd, mem.bytesOf(0), 0x5010, 100, 0, inHeader(3n), true));
    batch.flush();
    assert.equal(answers.length, 3, 'flush() reads at once');
    assert.equal(o.preads, 1, 'a lone READ: by pread, cheaper than io_uring for one');
    assert.equal(answers[2]!.written, 16 + 100);
    assert.ok(replyAt(mem, 0x5000, 100).data.equals(CONTENT.subarray(0, 100)));
    assert.equal(batch.batches, 2);
    batch.close();
  });

  it('a completion that serves more requests at once (a queue out of slots resuming) finds the batch flushing: their READs are not queued (read by pread), every READ of the batch is answered once', () => {
    const fd = openFile();
    const mem = GuestMemory.allocate(0x40000);
    const answers: Answer[] = [];
    let batch: FsReadBatch | null = null;
    const refused: boolean[] = [];
    const o = owner(answers, {
      complete: (req: QueueRequest, written: number) => {
        answers.push({ req, written });
        // Re-entered from the answer, as QueueServer.complete serving a starved queue would.
        refused.push(batch!.queue(request(mem, 0x20000, 64), fd, mem.bytesOf(0), 0x20010, 64, 0, inHeader(99n), true));
        batch!.flush(); // nothing to do while flushing
      },
    });
    batch = new FsReadBatch(o);
    const reqs = [0, 1, 2].map((i) => request(mem, 0x1000 + i * 0x1000, 128));
    reqs.forEach((r, i) => batch!.queue(r, fd, mem.bytesOf(0), 0x1010 + i * 0x1000, 128, i * 128, inHeader(BigInt(i)), true));
    batch.flush();
    assert.deepEqual(answers.map((a) => a.req), reqs, 'each request of the batch answered once, in order');
    assert.deepEqual(refused, [false, false, false], 'not queued while the batch is answered');
    assert.equal(batch.pending, 0);
    for (let i = 0; i < 3; i++) assert.ok(replyAt(mem, 0x1000 + i * 0x1000, 128).data.equals(CONTENT.subarray(i * 128, i * 128 + 128)));
    assert.ok(batch.queue(request(mem, 0x20000, 64), fd, mem.bytesOf(0), 0x20010, 64, 0, inHeader(5n), true), 'queued again after the flush');
    batch.flush();
    batch.close();
  });

  it('a READ of a descriptor that is not open answers -EBADF in its header, the others of the batch their data', () => {
    const fd = openFile();
    const closed = 999_999; // never open here (a closed number could be reused by the ring's own descriptors)
    const mem = GuestMemory.allocate(0x40000);
    const answers: Answer[] = [];
    const batch = new FsReadBatch(owner(answers));
    batch.queue(request(mem, 0x1000, 64), closed, mem.bytesOf(0), 0x1010, 64, 0, inHeader(9n), true);
    batch.queue(request(mem, 0x2000, 64), fd, mem.bytesOf(0), 0x2010, 64, 0, inHeader(10n), true);
    batch.flush();
    assert.equal(answers[0]!.written, 16);
    const bad = replyAt(mem, 0x1000, 0);
    assert.deepEqual({ len: bad.len, error: bad.error, unique: bad.unique }, { len: 16, error: -9, unique: 9n });
    assert.equal(answers[1]!.written, 16 + 64);
    assert.ok(replyAt(mem, 0x2000, 64).data.equals(CONTENT.subarray(0, 64)));
    batch.close();
  });

  it('a ring that fails mid-batch: what it completed stays, the rest is read by pread, and later READs are not queued', () => {
    const fd = openFile();
    const mem = GuestMemory.allocate(0x40000);
    const answers: Answer[] = [];
    // A ring whose first submission completes entry 0 only and whose wait fails.
    let prepared = 0;
    let reaped = false;
    const ring: ReadRing = {
      prepRw: (_op, f, bytes, at, len, pos, userData) => {
        prepared++;
        if (userData === 0) bytes.set(CONTENT.subarray(pos, pos + len), at);
        void f;
        return 1;
      },
      submit: () => prepared,
      submitWait: () => {
        throw new PlatformError('EIO', 'io_uring_enter: EIO');
      },
      pending: () => 0,
      reap: (out) => {
        if (reaped) return 0;
        reaped = true;
        out[0] = 0;
        out[1] = 32;
        return 1;
      },
      close: () => {},
    };
    const o = owner(answers, { openRing: () => ring });
    const batch = new FsReadBatch(o);
    batch.queue(request(mem, 0x1000, 32), fd, mem.bytesOf(0), 0x1010, 32, 0, inHeader(1n), true);
    batch.queue(request(mem, 0x2000, 32), fd, mem.bytesOf(0), 0x2010, 32, 1000, inHeader(2n), true);
    batch.flush();
    assert.equal(o.preads, 1, 'only the entry the ring did not complete was read by pread');
    assert.deepEqual(answers.map((a) => a.written), [48, 48]);
    assert.ok(replyAt(mem, 0x1000, 32).data.equals(CONTENT.subarray(0, 32)));
    assert.ok(replyAt(mem, 0x2000, 32).data.equals(CONTENT.subarray(1000, 1032)));
    assert.match(batch.unavailableReason ?? '', /EIO/);
    assert.equal(batch.queue(request(mem, 0x3000, 32), fd, mem.bytesOf(0), 0x3010, 32, 0, inHeader(3n), true), false, 'not queued any more');
  });

  it('io_uring unavailable (the ring cannot be set up): READs are not queued, the caller reads them with pread', () => {
    const mem = GuestMemory.allocate(0x10000);
    const batch = new FsReadBatch(
      owner([], {
        openRing: () => {
          throw new PlatformError('EPERM', 'io_uring_setup: EPERM');
        },
      }),
    );
    assert.equal(batch.queue(request(mem, 0x1000, 32), 0, mem.bytesOf(0), 0x1010, 32, 0, inHeader(1n), true), false);
    assert.match(batch.unavailableReason ?? '', /EPERM/);
    assert.equal(batch.pending, 0);
  });
});

/** LOOKUP f.bin and OPEN it read-only on a fresh device: the handle. */
async function openOnDevice(raw: Raw, ctx: ReturnType<typeof createTestPair>['ctx']): Promise<bigint> {
  assert.equal(await raw.add(1, fuseRequest(FuseOpcode.LOOKUP, 1, Buffer.from('f.bin\0')), [16 + 128]), 16 + 128);
  const open = raw.addMany(1, [fuseRequest(FuseOpcode.OPEN, 2, new Uint8Array(8))], [16 + 16]);
  assert.equal(await open.done, 32);
  const out = Buffer.alloc(8);
  ctx.memory.read(open.inAddrs[0]! + 16, out);
  return out.readBigUInt64LE(0);
}

function readIn(fh: bigint, offset: number, size: number): Buffer {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(fh, 0);
  b.writeBigUInt64LE(BigInt(offset), 8);
  b.writeUInt32LE(size, 16);
  return b;
}

function setup(opts: Partial<FsDeviceOptions> = {}) {
  const device = new FsDevice({ sharedDir: shareDir(), tag: 't', queueSize: 64, ...opts });
  devices.push(device);
  const pair = createTestPair(device);
  return { device, pair, raw: new Raw(pair.ctx) };
}

describe('FsDevice READs through the io_uring batch', T, () => {
  after(() => {
    for (const d of devices.splice(0)) d.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it(`READ_BATCH + 2 (${READ_BATCH + 2}) READs made available at once are read in two batches: one when it fills, the rest at the end of the round`, async () => {
    const { device, pair, raw } = setup();
    await raw.init();
    const fh = await openOnDevice(raw, pair.ctx);
    const before = device.readBatchCounts!;
    const offsets = [...Array.from({ length: READ_BATCH + 1 }, (_, i) => i * 1500), FILE_LEN - 50];
    // Header and data in two buffers, or in one: the data area is one guest buffer either way.
    const reads = offsets.map((off, i) => raw.addMany(1, [fuseRequest(FuseOpcode.READ, 2, readIn(fh, off, 4096))], i % 2 === 0 ? [16, 4096] : [16 + 4096], { kick: false }));
    pair.ctx.kick(1);
    const lens = await Promise.all(reads.map((r) => r.done));
    for (let i = 0; i < offsets.length; i++) {
      const n = Math.min(4096, FILE_LEN - offsets[i]!);
      assert.equal(lens[i], 16 + n, `READ ${i} length`);
      const data = Buffer.alloc(n);
      const at = reads[i]!.inAddrs.length === 2 ? reads[i]!.inAddrs[1]! : reads[i]!.inAddrs[0]! + 16;
      pair.ctx.memory.read(at, data);
      assert.ok(data.equals(CONTENT.subarray(offsets[i]!, offsets[i]! + n)), `READ ${i} data`);
    }
    const c = device.readBatchCounts!;
    assert.equal(c.reads - before.reads, offsets.length, 'every READ went through the batch');
    assert.equal(c.batches - before.batches, 2);
    assert.deepEqual(pair.resets, []);
  });

  it('queued READs are read before the next request that is not a READ: a RELEASE popped after two READs of its handle runs after them, a READ after it finds the handle gone (EBADF)', async () => {
    const { device, pair, raw } = setup();
    await raw.init();
    const fh = await openOnDevice(raw, pair.ctx);
    const reads = [0, 300].map((off) => raw.addMany(1, [fuseRequest(FuseOpcode.READ, 2, readIn(fh, off, 200))], [16 + 200], { kick: false }));
    const release = Buffer.alloc(24);
    release.writeBigUInt64LE(fh, 0);
    const rel = raw.add(1, fuseRequest(FuseOpcode.RELEASE, 2, release), [16], { kick: false });
    const late = raw.addMany(1, [fuseRequest(FuseOpcode.READ, 2, readIn(fh, 0, 200))], [16 + 200], { kick: false });
    pair.ctx.kick(1);
    for (const [i, off] of [0, 300].entries()) {
      assert.equal(await reads[i]!.done, 16 + 200);
      const data = Buffer.alloc(200);
      pair.ctx.memory.read(reads[i]!.inAddrs[0]! + 16, data);
      assert.ok(data.equals(CONTENT.subarray(off, off + 200)), `READ at ${off}: the file's data, read before the RELEASE`);
    }
    assert.equal(await rel, 16);
    assert.equal(await late.done, 16, 'an error header only');
    const h = Buffer.alloc(16);
    pair.ctx.memory.read(late.inAddrs[0]!, h);
    assert.equal(h.readInt32LE(4), -9, 'EBADF: the handle was released');
    assert.deepEqual(device.readBatchCounts, { reads: 2, batches: 1 });
  });

  it('a READ whose data area spans several guest buffers is read at once by preadv, not batched; with ioUring false no READ is batched', async () => {
    for (const ioUring of [true, false]) {
      const { device, pair, raw } = setup({ ioUring });
      await raw.init();
      const fh = await openOnDevice(raw, pair.ctx);
      const r = raw.addMany(1, [fuseRequest(FuseOpcode.READ, 2, readIn(fh, 100, 3000))], [16, 1000, 2000]);
      assert.equal(await r.done, 16 + 3000);
      const data = Buffer.alloc(3000);
      pair.ctx.memory.read(r.inAddrs[1]!, data.subarray(0, 1000));
      pair.ctx.memory.read(r.inAddrs[2]!, data.subarray(1000));
      assert.ok(data.equals(CONTENT.subarray(100, 3100)));
      const one = raw.addMany(1, [fuseRequest(FuseOpcode.READ, 2, readIn(fh, 0, 512))], [16 + 512]);
      assert.equal(await one.done, 16 + 512);
      if (ioUring) assert.deepEqual(device.readBatchCounts, { reads: 1, batches: 1 }, 'only the one-buffer READ was batched');
      else assert.equal(device.readBatchCounts, null);
    }
  });
});
