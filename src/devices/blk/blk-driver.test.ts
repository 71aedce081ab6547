import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { BlkDevice, type BlkDeviceOptions } from './blk-device.js';
import { MemoryBackend } from './memory-backend.js';
import { createTestPair, type TestPairOptions } from './test-pair.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { DescriptorChain, writeWritableByteAt } from '../../queue/chain.js';
import { BLK_ID_BYTES, BlkF, BlkReqType, BlkStatus } from '../../spec/blk.js';
import { createLoopback } from '../../testing/loopback.js';
import { RequestAbortedError } from '../../driver/request-queue.js';
import { BLK_DRIVER_FEATURES, BlkDriver, BlkRequestError } from './blk-driver.js';

const T = { timeout: 10_000 };
const SECTORS = 256;

interface Seen {
  type: number;
  sector: bigint;
  readable: number[];
  writable: number[];
  /** Bytes of the readable segments after the 16-byte header. */
  payload: Uint8Array;
}

/**
 * A block device stand-in that records each chain the driver sends (type, sector, segment
 * lengths, readable payload) and answers with `answer` as the status byte. Config and features
 * come from a real BlkDevice built with `opts`.
 */
class RecordingDevice implements VirtioDevice {
  readonly real: BlkDevice;
  readonly seen: Seen[] = [];
  answer: number = BlkStatus.OK;
  /** Keep the buffers in the ring, unanswered. */
  hold = false;
  private ctx: DeviceContext | null = null;
  constructor(opts: BlkDeviceOptions = {}) {
    this.real = new BlkDevice(new MemoryBackend(SECTORS * 512), opts);
  }
  get deviceId(): number {
    return this.real.deviceId;
  }
  get offeredFeatures(): bigint {
    return this.real.offeredFeatures;
  }
  get queueMaxSizes(): readonly number[] {
    return this.real.queueMaxSizes;
  }
  get configSize(): number {
    return this.real.configSize;
  }
  readConfig(offset: number, dst: Uint8Array, features: bigint, le: boolean): void {
    this.real.readConfig(offset, dst, features, le);
  }
  writeConfig(offset: number, src: Uint8Array, features: bigint, le: boolean): void {
    this.real.writeConfig(offset, src, features, le);
  }
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  get activeContext(): DeviceContext | null {
    return this.ctx;
  }
  reset(): void {
    this.ctx = null;
  }
  onQueueNotify(index: number): void {
    if (this.hold) return;
    const ctx = this.ctx!;
    const q = ctx.queue(index)!;
    const chain = new DescriptorChain(ctx.memory, q.size);
    while (q.pop(chain)) {
      const readable: number[] = [];
      const writable: number[] = [];
      const bytes: number[] = [];
      for (let i = 0; i < chain.count; i++) {
        const len = chain.lens[i]!;
        if (i < chain.readableCount) {
          readable.push(len);
          const b = new Uint8Array(len);
          ctx.memory.read(chain.addrs[i]!, b);
          bytes.push(...b);
        } else writable.push(len);
      }
      const all = Uint8Array.from(bytes);
      const v = new DataView(all.buffer);
      this.seen.push({ type: v.getUint32(0, true), sector: v.getBigUint64(8, true), readable, writable, payload: all.subarray(16) });
      writeWritableByteAt(chain, chain.writableBytes - 1, this.answer);
      q.push(chain, chain.writableBytes);
    }
    ctx.notifyUsed(index);
  }
}

function recording(opts: BlkDeviceOptions = {}, pairOpts: TestPairOptions = {}) {
  const dev = new RecordingDevice(opts);
  const pair = createTestPair(dev, pairOpts);
  return { dev, pair, drv: new BlkDriver(pair.ctx) };
}

function isInvalid(e: unknown): boolean {
  return e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT;
}

describe('BlkDriver request framing', T, () => {
  it('driver/blk/13, driver/blk/14: FLUSH has sector 0 and no data', async () => {
    const { dev, drv } = recording();
    await drv.flush();
    assert.deepEqual(dev.seen, [{ type: BlkReqType.FLUSH, sector: 0n, readable: [16], writable: [1], payload: new Uint8Array(0) }]);
  });

  it('driver/blk/15: IN and OUT data is a multiple of 512 bytes; anything else is refused before sending', async () => {
    const { dev, drv } = recording();
    await drv.write(3, new Uint8Array(1024).fill(9));
    await drv.read(5, 512);
    assert.deepEqual(
      dev.seen.map((s) => [s.type, s.sector, s.readable, s.writable]),
      [
        [BlkReqType.OUT, 3n, [16, 1024], [1]],
        [BlkReqType.IN, 5n, [16], [512, 1]],
      ],
    );
    assert.deepEqual(dev.seen[0]!.payload, new Uint8Array(1024).fill(9));
    await assert.rejects(drv.write(0, new Uint8Array(100)), isInvalid);
    await assert.rejects(drv.read(0, 513), isInvalid);
    await assert.rejects(drv.read(-1, 512), isInvalid);
    await assert.rejects(drv.read(1.5, 512), isInvalid);
    assert.equal(dev.seen.length, 2, 'nothing else was sent');
  });

  it('driver/blk/16, driver/blk/23: segment requests carry whole 16-byte segments; unmap only on write zeroes', async () => {
    const { dev, drv } = recording();
    await drv.segments(BlkReqType.DISCARD, [
      { sector: 8, numSectors: 8, unmap: true },
      { sector: 2 ** 40, numSectors: 1 },
    ]);
    await drv.writeZeroes(4, 2, true);
    await drv.secureErase(16, 8);
    assert.deepEqual(
      dev.seen.map((s) => [s.type, s.sector, s.readable, s.writable]),
      [
        [BlkReqType.DISCARD, 0n, [16, 32], [1]],
        [BlkReqType.WRITE_ZEROES, 0n, [16, 16], [1]],
        [BlkReqType.SECURE_ERASE, 0n, [16, 16], [1]],
      ],
    );
    const seg = (s: Seen, i: number) => {
      const v = new DataView(s.payload.buffer, s.payload.byteOffset + i * 16, 16);
      return [v.getBigUint64(0, true), v.getUint32(8, true), v.getUint32(12, true)];
    };
    assert.deepEqual(seg(dev.seen[0]!, 0), [8n, 8, 0], 'driver/blk/23: no unmap on discard');
    assert.deepEqual(seg(dev.seen[0]!, 1), [2n ** 40n, 1, 0]);
    assert.deepEqual(seg(dev.seen[1]!, 0), [4n, 2, 1]);
    assert.deepEqual(seg(dev.seen[2]!, 0), [16n, 8, 0]);
    await assert.rejects(drv.segments(BlkReqType.DISCARD, []), isInvalid);
    await assert.rejects(drv.segments(BlkReqType.IN, [{ sector: 0, numSectors: 1 }]), isInvalid);
    await assert.rejects(drv.discard(0, -1), isInvalid);
  });

  it('driver/blk/17: GET_ID offers exactly 20 writable bytes', async () => {
    const { dev, drv } = recording();
    assert.equal(await drv.getId(), '');
    assert.deepEqual(dev.seen[0]!.writable, [BLK_ID_BYTES, 1]);
    assert.equal(dev.seen[0]!.type, BlkReqType.GET_ID);
  });

  it('driver/blk/18, driver/blk/19, driver/blk/20: no more segments or sectors than the device takes', async () => {
    const { dev, drv } = recording({ maxDiscardSegments: 2, maxDiscardSectors: 16 });
    assert.equal(drv.config.maxDiscardSeg, 2);
    const three = [0, 1, 2].map((i) => ({ sector: i * 16, numSectors: 1 }));
    for (const t of [BlkReqType.DISCARD, BlkReqType.WRITE_ZEROES, BlkReqType.SECURE_ERASE]) {
      await assert.rejects(drv.segments(t, three), isInvalid, `type ${t}`);
      await assert.rejects(drv.segments(t, [{ sector: 0, numSectors: 17 }]), isInvalid, `type ${t}`);
      await drv.segments(t, three.slice(0, 2));
    }
    assert.equal(dev.seen.length, 3, 'only the acceptable requests were sent');
  });

  it('SIZE_MAX: data split into segments of at most size_max; seg_max and the ring size bound a request', async () => {
    const { dev, drv } = recording({ sizeMax: 4096, queueSize: 8 }, { queueSize: 8 });
    assert.equal(drv.config.sizeMax, 4096);
    assert.equal(drv.config.segMax, 6);
    await drv.write(0, new Uint8Array(10240));
    await drv.read(0, 8192);
    assert.deepEqual(dev.seen[0]!.readable, [16, 4096, 4096, 2048]);
    assert.deepEqual(dev.seen[1]!.writable, [4096, 4096, 1]);
    // 6 segments of 4096 fit (8 descriptors with header and status); 7 do not.
    await drv.read(0, 6 * 4096);
    await assert.rejects(drv.read(0, 6 * 4096 + 512), isInvalid);
    assert.equal(dev.seen.length, 3);
  });

  it('a non-OK status rejects with BlkRequestError carrying it; raw() returns it', async () => {
    const { dev, drv } = recording();
    dev.answer = BlkStatus.UNSUPP;
    await assert.rejects(drv.flush(), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.UNSUPP && e.requestType === BlkReqType.FLUSH);
    dev.answer = BlkStatus.IOERR;
    const r = await drv.raw(BlkReqType.IN, 0, null, 512);
    assert.equal(r.status, BlkStatus.IOERR);
    assert.equal(r.usedLen, 513);
    assert.equal(drv.inFlight, 0);
  });

  it('driver/blk/11: with checkBounds, requests beyond capacity are refused before sending', async () => {
    const dev = new RecordingDevice();
    const pair = createTestPair(dev);
    const drv = new BlkDriver(pair.ctx, { checkBounds: true });
    await assert.rejects(drv.read(SECTORS, 512), isInvalid);
    await assert.rejects(drv.write(SECTORS - 1, new Uint8Array(1024)), isInvalid);
    await drv.read(SECTORS - 1, 512);
    assert.equal(dev.seen.length, 1);
  });
});

describe('BlkDriver buffers', T, () => {
  it('readInto fills the caller buffer; reused guest buffers carry no stale data into results', async () => {
    const backend = new MemoryBackend(SECTORS * 512);
    const pair = createTestPair(new BlkDevice(backend));
    const drv = new BlkDriver(pair.ctx);
    await drv.write(0, new Uint8Array(4096).fill(1));
    const buf = new Uint8Array(4096).fill(9);
    await drv.readInto(8, buf);
    assert.deepEqual(buf, new Uint8Array(4096), 'sector 8 is zero, not the bytes of the earlier write');
    await drv.readInto(0, buf);
    assert.deepEqual(buf, new Uint8Array(4096).fill(1));
    await assert.rejects(drv.readInto(0, new Uint8Array(100)), isInvalid);
  });

  it('guest memory nearly full: cached buffers are given back and requests of new sizes still fit', async () => {
    const backend = new MemoryBackend(SECTORS * 512);
    // Rings take the first pages; about 90 KiB are left for requests.
    const pair = createTestPair(new BlkDevice(backend, { queueSize: 8 }), { queueSize: 8, memSize: 96 << 10 });
    const drv = new BlkDriver(pair.ctx);
    for (let k = 1; k <= 40; k++) {
      const data = new Uint8Array(k * 2048).fill(k);
      await drv.write(0, data);
      assert.deepEqual(await drv.read(0, data.length), data, `size ${data.length}`);
    }
    assert.equal(drv.inFlight, 0);
  });
});

describe('BlkDriver features and cache mode', T, () => {
  it('driver/blk/5, driver/blk/12: the driver features exclude ZONED and include RO; ZONED negotiated is refused', () => {
    assert.equal(BLK_DRIVER_FEATURES & BlkF.ZONED, 0n);
    assert.notEqual(BLK_DRIVER_FEATURES & BlkF.RO, 0n);
    const dev = new RecordingDevice();
    const pair = createTestPair(dev);
    const zoned = { ...pair.ctx, features: pair.ctx.features | BlkF.ZONED };
    assert.throws(() => new BlkDriver(zoned), isInvalid);
  });

  it('driver/blk/2, driver/blk/3, driver/blk/21: cache mode deduced from the features, switched with CONFIG_WCE only', () => {
    const both = recording().drv;
    assert.equal(both.writebackCache, true);
    both.setWriteback(false);
    assert.equal(both.writebackCache, false);
    both.setWriteback(true);
    assert.equal(both.writebackCache, true);
    const flushOnly = recording({}, { accept: ~BlkF.CONFIG_WCE }).drv;
    assert.equal(flushOnly.writebackCache, true, 'driver/blk/3');
    assert.throws(() => flushOnly.setWriteback(false), isInvalid);
    const neither = recording({}, { accept: ~(BlkF.CONFIG_WCE | BlkF.FLUSH) }).drv;
    assert.equal(neither.writebackCache, false, 'driver/blk/2');
  });

  it('GET_LIFETIME needs LIFETIME negotiated', async () => {
    const { drv, dev } = recording();
    await assert.rejects(drv.getLifetime(), isInvalid);
    assert.equal(dev.seen.length, 0);
  });
});

describe('BlkDriver when the device stops', T, () => {
  for (const how of ['device-reset', 'needs-reset'] as const) {
    it(`requests pending at ${how === 'device-reset' ? 'a device reset' : 'DEVICE_NEEDS_RESET'} fail with RequestAbortedError (ring and overflow); new ones are refused`, async () => {
      const dev = new RecordingDevice();
      dev.hold = true;
      const lb = await createLoopback(dev, { queueSize: 4, indirect: false });
      try {
        const drv = new BlkDriver(lb.context);
        // 3 descriptors each (header, data, status): one fits the ring of 4, the others wait.
        const ps = Array.from({ length: 5 }, (_, i) => drv.read(i, 512).then(() => null, (e: unknown) => e));
        assert.equal(drv.inFlight, 5);
        if (how === 'device-reset') lb.driver.reset();
        else dev.activeContext!.needsReset('test: broken');
        for (const p of ps) {
          const e = await p;
          assert.ok(e instanceof RequestAbortedError && e.reason === how && e.code === ErrorCode.DEVICE_NEEDS_RESET, String(e));
        }
        assert.equal(drv.inFlight, 0);
        await assert.rejects(drv.flush(), RequestAbortedError);
      } finally {
        await lb.close();
      }
    });
  }
});

describe('BlkDriver over the full stack (createLoopback)', T, () => {
  for (const packed of [false, true]) {
    it(`${packed ? 'packed' : 'split'}: read, write, flush, id, discard, write zeroes through DeviceCore and VirtioDriver`, async () => {
      const backend = new MemoryBackend(SECTORS * 512);
      const lb = await createLoopback(new BlkDevice(backend, { serial: 'lb', numQueues: 2 }), { packed, queueSize: 32 });
      try {
        const drv = new BlkDriver(lb.context);
        assert.equal(drv.capacity, SECTORS);
        const data = Uint8Array.from({ length: 4096 }, (_, i) => (i * 31) & 0xff);
        await Promise.all(Array.from({ length: 64 }, (_, i) => drv.write((i * 8) % SECTORS, data)));
        assert.deepEqual(await drv.read(8, 4096), data);
        await drv.flush();
        assert.equal(await drv.getId(), 'lb');
        await drv.writeZeroes(8, 8);
        assert.deepEqual(await drv.read(8, 4096), new Uint8Array(4096));
        await drv.discard(0, 8);
        assert.equal(drv.inFlight, 0);
      } finally {
        await lb.close();
      }
    });
  }
});
