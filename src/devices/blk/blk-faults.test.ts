/**
 * Faults below the device (issue 17, section 2): a backend that fails a read or a write (EIO,
 * ENOSPC, a file that shrank under it), a flush that fails, and a backend that stalls. The
 * request gets IOERR and never an acknowledgement; a failed flush fails every later flush until
 * the device is reset; a stalled request holds only itself.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkReqType, BlkStatus } from '../../spec/blk.js';
import { BlkDevice } from './blk-device.js';
import { FileBackend } from './file-backend.js';
import { MemoryBackend } from './memory-backend.js';
import { RawDriver, SECTORS, header, pattern, setup, until } from './blk-test-support.js';
import { createTestPair } from './test-pair.js';

/** An errno-style failure, as node:fs reports them. */
function errnoError(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/** A memory disk whose next operations fail as told. */
class FaultyBackend extends MemoryBackend {
  failReads: string | null = null;
  failWrites: string | null = null;
  failFlushes = 0;
  flushCalls = 0;
  /** Sectors whose reads never complete (a stalled device). */
  readonly stalled = new Set<number>();
  readonly stalledOps: (() => void)[] = [];

  override read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> {
    if (this.stalled.has(offset / 512)) return new Promise((resolve) => this.stalledOps.push(() => resolve(super.read(offset, dst, dstOff, len))));
    if (this.failReads) return Promise.reject(errnoError(this.failReads));
    return Promise.resolve(super.read(offset, dst, dstOff, len));
  }
  override write(offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): Promise<void> {
    if (this.failWrites) return Promise.reject(errnoError(this.failWrites));
    return Promise.resolve(super.write(offset, src, srcOff, len));
  }
  override flush(): Promise<void> {
    this.flushCalls++;
    if (this.failFlushes > 0) {
      this.failFlushes--;
      return Promise.reject(errnoError('EIO'));
    }
    return Promise.resolve();
  }
}

describe('blk under backend faults', { timeout: 20_000 }, () => {
  for (const code of ['EIO', 'ENOSPC']) {
    it(`a write that fails with ${code} gets IOERR, never OK`, async () => {
      const backend = new FaultyBackend(SECTORS * 512);
      const { pair } = setup({}, {}, backend);
      const raw = new RawDriver(pair.ctx);
      backend.failWrites = code;
      assert.equal(await raw.status([header(BlkReqType.OUT, 4), pattern(1024, 1)], [1]), BlkStatus.IOERR);
      backend.failWrites = null;
      assert.equal(await raw.status([header(BlkReqType.OUT, 4), pattern(1024, 1)], [1]), BlkStatus.OK, 'the next write is served');
    });

    it(`a read that fails with ${code} gets IOERR, its buffer zeroed and used.len honest`, async () => {
      const backend = new FaultyBackend(SECTORS * 512);
      backend.data.fill(0x5a);
      const { pair } = setup({}, {}, backend);
      const raw = new RawDriver(pair.ctx);
      backend.failReads = code;
      const r = await raw.send([header(BlkReqType.IN, 0)], [1024, 1]);
      assert.equal(r.ins[1]![0], BlkStatus.IOERR);
      assert.ok(r.ins[0]!.every((b) => b === 0), 'no stale guest bytes and no partial disk data');
      assert.equal(r.usedLen, 1025, 'every writable byte was written (zeroes and the status)');
    });
  }

  it('a file that shrank under the backend: the read past its new end gets IOERR', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtio-ts-blk-faults-'));
    try {
      const path = join(dir, 'disk.img');
      writeFileSync(path, new Uint8Array(64 * 1024).fill(7));
      const backend = await FileBackend.open(path);
      try {
        const pair = createTestPair(new BlkDevice(backend));
        const raw = new RawDriver(pair.ctx);
        assert.equal(await raw.status([header(BlkReqType.IN, 100)], [512, 1]), BlkStatus.OK);
        truncateSync(path, 16 * 1024);
        const r = await raw.send([header(BlkReqType.IN, 100)], [512, 1]);
        assert.equal(r.ins[1]![0], BlkStatus.IOERR);
        assert.ok(r.ins[0]!.every((b) => b === 0));
        assert.equal(await raw.status([header(BlkReqType.IN, 0)], [512, 1]), BlkStatus.OK, 'what is still there reads');
      } finally {
        await backend.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a failed flush fails every later flush (and writethrough write) until the device is reset', async () => {
    const backend = new FaultyBackend(SECTORS * 512);
    const { pair, device } = setup({}, {}, backend);
    const raw = new RawDriver(pair.ctx);
    assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 2)], [1]), BlkStatus.OK);
    backend.failFlushes = 1;
    assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.IOERR);
    assert.equal(backend.flushCalls, 1);
    // The backend would succeed now; the device does not believe it (the dirty pages may be gone).
    assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.IOERR);
    assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.IOERR);
    assert.equal(backend.flushCalls, 1, 'not asked again');
    // Writes without a flush are still served.
    assert.equal(await raw.status([header(BlkReqType.OUT, 8), pattern(512, 3)], [1]), BlkStatus.OK);
    // The driver resets the device and starts over: flushes are tried again.
    device.reset();
    const again = createTestPair(device);
    const raw2 = new RawDriver(again.ctx);
    assert.equal(await raw2.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
    assert.equal(backend.flushCalls, 2);
  });

  it('a stalled request holds only itself: later requests on its queue and on other queues complete', async () => {
    const backend = new FaultyBackend(SECTORS * 512);
    backend.stalled.add(10);
    const { pair } = setup({ numQueues: 2 }, {}, backend);
    const raw0 = new RawDriver(pair.ctx, 0);
    const raw1 = new RawDriver(pair.ctx, 1);
    const stalled = raw0.status([header(BlkReqType.IN, 10)], [512, 1]);
    let stalledDone = false;
    void stalled.then(() => (stalledDone = true));
    await until(() => backend.stalledOps.length === 1);
    assert.equal(await raw0.status([header(BlkReqType.IN, 0)], [512, 1]), BlkStatus.OK);
    assert.equal(await raw1.status([header(BlkReqType.OUT, 20), pattern(512, 4)], [1]), BlkStatus.OK);
    assert.equal(stalledDone, false);
    backend.stalledOps[0]!();
    assert.equal(await stalled, BlkStatus.OK);
  });

  it('a backend error is logged with its errno, and the transport sees only the IOERR status', async () => {
    const lines: string[] = [];
    const backend = new FaultyBackend(SECTORS * 512);
    const device = new BlkDevice(backend, {
      logger: { level: 3, debug: () => undefined, info: () => undefined, warn: (m: string) => void lines.push(m), error: (m: string) => void lines.push(m) },
    });
    const pair = createTestPair(device);
    const raw = new RawDriver(pair.ctx);
    backend.failWrites = 'ENOSPC';
    assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 5)], [1]), BlkStatus.IOERR);
    assert.ok(lines.some((l) => l.includes('ENOSPC')), lines.join('\n'));
  });
});
