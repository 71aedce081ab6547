/**
 * READ and WRITE on the thread pool (FsDeviceOptions.asyncIo): the data is the file's, many
 * transfers in flight at once over split and packed rings; a RELEASE while a READ runs keeps
 * the descriptor open till it completes; a reset while a READ runs drops the request with
 * nothing written into its buffers (the pool thread never had guest memory: a bounce buffer).
 */
import assert from 'node:assert/strict';
import { fstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FuseOpcode } from '../../spec/fs.js';
import { FsClient, FuseError } from '../../vhost-user/peers/fs-client.js';
import { createTestPair } from '../blk/test-pair.js';
import { FsDevice } from './fs-device.js';

const T = { timeout: 120_000 };
const dirs: string[] = [];
const devices: FsDevice[] = [];

function setup(packed = false, opts: { readOnly?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vts-fsaio-'));
  dirs.push(dir);
  const data = Buffer.alloc(1 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
  writeFileSync(join(dir, 'data.bin'), data);
  const device = new FsDevice({ sharedDir: dir, tag: 't', queueSize: 64, asyncIo: true, ...opts });
  devices.push(device);
  const pair = createTestPair(device, { packed, memSize: 32 << 20 });
  return { dir, data, device, pair };
}

/** Waits (bounded) until the device has no transfer on the thread pool. */
async function drained(device: FsDevice): Promise<void> {
  for (let i = 0; i < 10_000 && device.asyncIoPending > 0; i++) await new Promise((r) => setImmediate(r));
  assert.equal(device.asyncIoPending, 0, 'the thread pool finished');
}

describe('FsDevice asyncIo (READ/WRITE on the thread pool)', T, () => {
  after(() => {
    for (const d of devices) d.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  for (const packed of [false, true]) {
    it(`READs and WRITEs, 24 in flight, move the file's bytes; short READ at the end of the file (${packed ? 'packed' : 'split'})`, async () => {
      const { dir, data, device, pair } = setup(packed);
      const fs = new FsClient(pair.ctx);
      await fs.init();
      const e = await fs.lookup(1n, 'data.bin');
      const fh = await fs.open(e.nodeid, 0);
      const reads = Array.from({ length: 24 }, (_, i) => ({ off: (i * 40_961) % data.length, len: 1 + ((i * 9_973) % 131_072) }));
      const got = await Promise.all(reads.map((r) => fs.read(e.nodeid, fh, r.off, r.len)));
      for (let i = 0; i < reads.length; i++) {
        const r = reads[i]!;
        assert.deepEqual(Buffer.from(got[i]!), data.subarray(r.off, Math.min(r.off + r.len, data.length)), `read ${i}`);
      }
      assert.equal((await fs.read(e.nodeid, fh, data.length - 10, 4096)).length, 10, 'short READ at the end');
      assert.equal((await fs.read(e.nodeid, fh, data.length + 10, 4096)).length, 0, 'READ past the end: no data');
      await fs.release(e.nodeid, fh);
      const c = await fs.create(1n, 'out.bin', 0o644, 2);
      const chunks = Array.from({ length: 20 }, (_, i) => data.subarray(i * 50_000, i * 50_000 + 50_000));
      const written = await Promise.all(chunks.map((chunk, i) => fs.write(c.entry.nodeid, c.fh, i * 50_000, chunk)));
      assert.deepEqual(written, chunks.map((x) => x.length));
      await fs.release(c.entry.nodeid, c.fh);
      assert.deepEqual(readFileSync(join(dir, 'out.bin')), data.subarray(0, 1_000_000));
      await drained(device);
      assert.equal(device.malformed, 0);
      assert.deepEqual(pair.resets, []);
    });
  }

  it('errors are checked before the pool: an fh never opened is EBADF, WRITE on a read-only share EROFS', async () => {
    const { pair } = setup(false, { readOnly: true });
    const fs = new FsClient(pair.ctx);
    await fs.init();
    const e = await fs.lookup(1n, 'data.bin');
    await assert.rejects(fs.read(e.nodeid, 99n, 0, 10), (err: unknown) => err instanceof FuseError && err.errno === 9);
    const fh = await fs.open(e.nodeid, 0);
    await assert.rejects(fs.write(e.nodeid, fh, 0, Buffer.from('x')), (err: unknown) => err instanceof FuseError && err.errno === 30);
  });

  it('a RELEASE while READs run closes the descriptor only after they complete; the READs get the data', async () => {
    const { dir, data, device, pair } = setup();
    const fs = new FsClient(pair.ctx);
    await fs.init();
    const e = await fs.lookup(1n, 'data.bin');
    const fh = await fs.open(e.nodeid, 0);
    const fd = device.host.handle(Number(fh)).fd;
    const reads = [0, 1, 2, 3].map((i) => fs.read(e.nodeid, fh, i * 200_000, 200_000));
    const released = fs.release(e.nodeid, fh);
    await released;
    const got = await Promise.all(reads);
    for (let i = 0; i < 4; i++) assert.deepEqual(Buffer.from(got[i]!), data.subarray(i * 200_000, (i + 1) * 200_000));
    assert.equal(device.host.handleCount, 0);
    await drained(device);
    // The descriptor is closed now (or its number reused for something that is not the file).
    const file = statSync(join(dir, 'data.bin'));
    let same = false;
    try {
      const st = fstatSync(fd);
      same = st.ino === file.ino && st.dev === file.dev;
    } catch {
      same = false;
    }
    assert.equal(same, false, 'the released descriptor is closed');
  });

  it('a reset while a READ runs: the request is dropped, nothing is written into its buffers', async () => {
    const { device, pair } = setup();
    const fs = new FsClient(pair.ctx);
    await fs.init();
    const e = await fs.lookup(1n, 'data.bin');
    const fh = await fs.open(e.nodeid, 0);
    // A READ by hand: its reply area is filled with a pattern first.
    const ctx = pair.ctx;
    const args = Buffer.alloc(40);
    args.writeBigUInt64LE(fh, 0);
    args.writeUInt32LE(65_536, 16);
    const msg = Buffer.alloc(40 + args.length);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt32LE(FuseOpcode.READ, 4);
    msg.writeBigUInt64LE(77n, 8);
    msg.writeBigUInt64LE(e.nodeid, 16);
    args.copy(msg, 40);
    const outAddr = ctx.dma.alloc(msg.length);
    ctx.memory.write(outAddr, msg);
    const inLen = 16 + 65_536;
    const inAddr = ctx.dma.alloc(inLen);
    ctx.memory.write(inAddr, Buffer.alloc(inLen, 0xaa));
    const q = ctx.queue(1);
    assert.ok(q.add([{ addr: outAddr, len: msg.length }], [{ addr: inAddr, len: inLen }], 1));
    ctx.kick(1);
    for (let i = 0; i < 1000 && device.asyncIoPending === 0; i++) await Promise.resolve();
    assert.equal(device.asyncIoPending, 1, 'the READ is on the thread pool');
    device.reset();
    await drained(device);
    await new Promise((r) => setImmediate(r));
    assert.equal(q.takeUsed(), undefined, 'the dropped request was not used');
    const reply = Buffer.alloc(inLen);
    ctx.memory.read(inAddr, reply);
    assert.ok(reply.every((b) => b === 0xaa), 'its buffer is untouched');
  });
});
