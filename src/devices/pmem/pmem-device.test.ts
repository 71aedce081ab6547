import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RequestQueue } from '../../driver/request-queue.js';
import { F } from '../../spec/features.js';
import { PMEM_REQ_TYPE_FLUSH, PmemConfig, PmemF, PmemRet } from '../../spec/pmem.js';
import { createTestPair, type TestPairOptions } from '../blk/test-pair.js';
import { type PmemBackend, PmemFileBackend, PmemMemoryBackend } from './pmem-backend.js';
import { PmemDevice, type PmemDeviceOptions } from './pmem-device.js';
import { PmemDriver, PmemFlushError } from './pmem-driver.js';

const T = { timeout: 20_000 };

function pmemPair(backend: PmemBackend, devOpts: PmemDeviceOptions = {}, pairOpts: TestPairOptions = {}) {
  const device = new PmemDevice(backend, { start: 0x2_0000_0000, ...devOpts });
  const pair = createTestPair(device, { queueSize: 16, ...pairOpts });
  return { device, pair };
}

/** A backend whose flushes wait until released. */
class HeldFlushBackend implements PmemBackend {
  readonly bytes = new Uint8Array(8192);
  flushes = 0;
  private waiting: (() => void)[] = [];
  flush(): Promise<void> {
    return new Promise((resolve) =>
      this.waiting.push(() => {
        this.flushes++;
        resolve();
      }),
    );
  }
  get held(): number {
    return this.waiting.length;
  }
  release(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) f();
  }
  close(): void {}
}

/** Submits raw readable bytes and a writable buffer of `respLen` bytes; resolves with the used length and response. */
async function raw(pair: ReturnType<typeof createTestPair>, out: Uint8Array, respLen: number): Promise<{ used: number; resp: Uint8Array }> {
  const q = new RequestQueue(pair.ctx, 0);
  const { dma, memory } = pair.ctx;
  const a = dma.alloc(Math.max(1, out.length), 4);
  const b = dma.alloc(Math.max(1, respLen), 4);
  memory.write(a, out);
  memory.fill(b, Math.max(1, respLen), 0xee);
  try {
    const used = await q.submit(out.length > 0 ? [{ addr: a, len: out.length }] : [], respLen > 0 ? [{ addr: b, len: respLen }] : []);
    return { used, resp: memory.slice(b, Math.max(1, respLen)).slice() };
  } finally {
    dma.free(a);
    dma.free(b);
    q.detach();
  }
}

describe('PmemDevice', T, () => {
  it('device/pmem/4 device/pmem/5 driver/pmem/2: without SHMEM_REGION, start is the absolute address and size the length; the driver takes the range from them', () => {
    const { device, pair } = pmemPair(new PmemMemoryBackend(64 * 1024));
    assert.equal(pair.features & PmemF.SHMEM_REGION, 0n);
    assert.equal(device.sharedMemoryRegions, undefined, 'no region presented');
    const cfg = pair.ctx.readConfig(0, PmemConfig.SIZE);
    const dv = new DataView(cfg.buffer, cfg.byteOffset);
    assert.equal(dv.getBigUint64(0, true), 0x2_0000_0000n);
    assert.equal(dv.getBigUint64(8, true), 65536n);
    assert.deepEqual(new PmemDriver(pair.ctx).range, { base: 0x2_0000_0000, length: 65536 });
  });

  it('device/pmem/1 device/pmem/2 device/pmem/3 driver/pmem/1: with SHMEM_REGION the range is shared memory region 0 (the backend\'s bytes), start and size read 0, and the driver uses region 0 only', () => {
    const backend = new PmemMemoryBackend(16 * 1024);
    const { device, pair } = pmemPair(backend, { shmemRegion: true });
    assert.notEqual(pair.features & PmemF.SHMEM_REGION, 0n);
    assert.equal(device.sharedMemoryRegions?.length, 1);
    const r = device.sharedMemoryRegions![0]!;
    assert.deepEqual([r.id, r.length, r.memory === backend.bytes], [0, 16 * 1024, true]);
    assert.deepEqual([...pair.ctx.readConfig(0, PmemConfig.SIZE)], new Array(16).fill(0));
    // Device side, the config follows the negotiated features.
    const cfg = new Uint8Array(16);
    device.readConfig(0, cfg, 0n, true);
    assert.equal(new DataView(cfg.buffer).getBigUint64(8, true), 16384n, 'without the feature: the length');
    const drv = new PmemDriver(pair.ctx, { regions: [{ id: 1, base: 0x9000_0000, length: 4096 }, { id: 0, base: 0xa000_0000, length: 16 * 1024 }] });
    assert.deepEqual(drv.range, { base: 0xa000_0000, length: 16 * 1024 });
    assert.throws(() => new PmemDriver(pair.ctx), /shared memory region 0/);
  });

  it('device/pmem/6: a flush completes only after the backend\'s flush; the file backend\'s flush is fdatasync and the file holds what was written through the mapping', async () => {
    const held = new HeldFlushBackend();
    const { pair } = pmemPair(held);
    const drv = new PmemDriver(pair.ctx);
    let done = false;
    const p = drv.flush().then(() => (done = true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(held.held, 1, 'the device is flushing');
    assert.equal(done, false, 'not completed before the backend flushed');
    held.release();
    await p;
    assert.equal(held.flushes, 1);

    const dir = mkdtempSync(join(tmpdir(), 'vts-pmem-'));
    try {
      const path = join(dir, 'pmem.img');
      const file = PmemFileBackend.open(path, 1 << 20);
      assert.equal(statSync(path).size, 1 << 20);
      const f = pmemPair(file);
      const data = Uint8Array.from({ length: 8192 }, (_, i) => (i * 13) & 0xff);
      file.bytes.set(data, 300_000);
      await new PmemDriver(f.pair.ctx).flush();
      assert.equal(file.flushes, 1, 'one fdatasync');
      assert.deepEqual(readFileSync(path).subarray(300_000, 308_192), Buffer.from(data));
      file.close();
      // Opened again without a size: the same bytes, mapped.
      const again = PmemFileBackend.open(path);
      assert.deepEqual(again.bytes.subarray(300_000, 308_192), data);
      again.close();
      assert.throws(() => PmemFileBackend.open(join(dir, 'odd.img'), 5000), /multiple of 4096/);
      assert.throws(() => PmemFileBackend.open(join(dir, 'missing.img')), /cannot map/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('device/pmem/7: ret 0 for a flush; -1 for an unknown type, a short request, no request, a failed flush; no room for ret: nothing written; never a throw or DEVICE_NEEDS_RESET', async () => {
    const backend = new PmemMemoryBackend(4096);
    const { pair } = pmemPair(backend);
    const le32 = (v: number): Uint8Array => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, v, true);
      return b;
    };
    const ret = (r: { resp: Uint8Array }): number => new DataView(r.resp.buffer).getInt32(0, true);
    const ok = await raw(pair, le32(PMEM_REQ_TYPE_FLUSH), 4);
    assert.deepEqual([ok.used, ret(ok)], [4, PmemRet.OK]);
    assert.equal(ret(await raw(pair, le32(1), 4)), PmemRet.ERROR, 'unknown type');
    assert.equal(ret(await raw(pair, le32(0xffff_ffff), 4)), PmemRet.ERROR, 'unknown type');
    assert.equal(ret(await raw(pair, Uint8Array.of(0, 0), 4)), PmemRet.ERROR, 'short request');
    assert.equal(ret(await raw(pair, new Uint8Array(0), 4)), PmemRet.ERROR, 'no request');
    const noRoom = await raw(pair, le32(PMEM_REQ_TYPE_FLUSH), 2);
    assert.deepEqual([noRoom.used, noRoom.resp[0]], [0, 0xee]);
    assert.equal(backend.flushes, 2, 'a flush without room for ret still flushes');
    // A longer request: the type is its first 4 bytes.
    assert.equal(ret(await raw(pair, Uint8Array.of(0, 0, 0, 0, 9, 9), 8)), PmemRet.OK);
    backend.failFlush = true;
    assert.equal(ret(await raw(pair, le32(PMEM_REQ_TYPE_FLUSH), 4)), PmemRet.ERROR, 'failed flush');
    await assert.rejects(new PmemDriver(pair.ctx).flush(), (e: unknown) => e instanceof PmemFlushError && e.ret === -1);
    assert.deepEqual(pair.resets, []);
  });

  it('legacy big-endian guest byte order: the config and ret in guest order', async () => {
    const backend = new PmemMemoryBackend(8192);
    const { pair } = pmemPair(backend, { start: 0x1234_5000 }, { accept: ~F.VERSION_1, littleEndian: false });
    const drv = new PmemDriver(pair.ctx);
    assert.deepEqual(drv.range, { base: 0x1234_5000, length: 8192 });
    await drv.flush();
    assert.equal(await drv.request(3), PmemRet.ERROR);
    assert.equal(backend.flushes, 1);
  });

  it('device reset with a flush in flight: its completion is dropped (the data still reaches the backend), the driver\'s request fails', async () => {
    const held = new HeldFlushBackend();
    const { device, pair } = pmemPair(held);
    const drv = new PmemDriver(pair.ctx);
    const p = drv.flush();
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(held.held, 1);
    device.reset();
    held.release();
    drv.detach();
    await assert.rejects(p);
    assert.equal(held.flushes, 1);
  });

  it('options are checked: size a multiple of 4096, start and the range within 2^53', () => {
    assert.throws(() => new PmemMemoryBackend(100), /multiple of 4096/);
    assert.throws(() => new PmemDevice(new PmemMemoryBackend(4096), { start: -1 }), /start/);
    assert.throws(() => new PmemDevice(new PmemMemoryBackend(4096), { start: Number.MAX_SAFE_INTEGER }), /start/);
  });
});
