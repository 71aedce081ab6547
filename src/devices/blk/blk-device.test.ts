import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlkDriver, BlkRequestError } from './blk-driver.js';
import { ErrorCode, isVirtioError } from '../../errors.js';
import { BlkConfig, BlkF, BlkReqType, BlkStatus, BLK_ID_BYTES } from '../../spec/blk.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import type { BlkLifetimeInfo } from './backend.js';
import { BlkDevice } from './blk-device.js';
import { MemoryBackend } from './memory-backend.js';
import { RawDriver, SECTORS, header, pattern, segment, setup, until } from './blk-test-support.js';

const T = { timeout: 10_000 };

for (const packed of [false, true]) {
  const ring = packed ? 'packed' : 'split';
  describe(`BlkDevice + BlkDriver over a ${ring} ring`, T, () => {
    it('writes, reads back, flushes and reads the id', async () => {
      const { pair, backend } = setup({ serial: 'disk-1' }, { packed });
      const drv = new BlkDriver(pair.ctx);
      assert.equal(drv.capacity, SECTORS);
      const data = pattern(8192, 1);
      await drv.write(10, data);
      assert.deepEqual((backend as MemoryBackend).data.subarray(10 * 512, 10 * 512 + 8192), data);
      assert.deepEqual(await drv.read(10, 8192), data);
      await drv.flush();
      assert.equal(await drv.getId(), 'disk-1');
      assert.deepEqual(pair.resets, []);
    });

    it('many requests in flight at once', async () => {
      const { pair } = setup({}, { packed, queueSize: 16 });
      const drv = new BlkDriver(pair.ctx);
      // More requests than the ring holds: the driver waits for room.
      await Promise.all(Array.from({ length: 40 }, (_, i) => drv.write(i * 2, pattern(1024, i))));
      const back = await Promise.all(Array.from({ length: 40 }, (_, i) => drv.read(i * 2, 1024)));
      back.forEach((b, i) => assert.deepEqual(b, pattern(1024, i)));
      assert.equal(drv.inFlight, 0);
    });

    it('device/blk/20, device/blk/21, device/blk/22: write zeroes (with and without UNMAP), discard and secure erase', async () => {
      const { pair, backend } = setup({}, { packed });
      const drv = new BlkDriver(pair.ctx);
      const mem = (backend as MemoryBackend).data;
      mem.fill(0xaa);
      await drv.writeZeroes(4, 2);
      assert.ok(mem.subarray(4 * 512, 6 * 512).every((b) => b === 0));
      assert.equal(mem[6 * 512], 0xaa);
      await drv.writeZeroes(8, 1, true);
      assert.ok(mem.subarray(8 * 512, 9 * 512).every((b) => b === 0));
      await drv.discard(16, 4);
      await drv.secureErase(32, 8);
      assert.ok(mem.subarray(32 * 512, 40 * 512).every((b) => b === 0));
      await drv.segments(BlkReqType.WRITE_ZEROES, [
        { sector: 50, numSectors: 1 },
        { sector: 60, numSectors: 2 },
      ]);
      assert.ok(mem.subarray(50 * 512, 51 * 512).every((b) => b === 0));
      assert.ok(mem.subarray(60 * 512, 62 * 512).every((b) => b === 0));
      assert.equal(mem[51 * 512], 0xaa);
    });

    it('5.2.6.1: a read past the end fails with IOERR', async () => {
      const { pair } = setup({}, { packed });
      const drv = new BlkDriver(pair.ctx);
      await assert.rejects(drv.read(SECTORS, 512), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR && e.code === ErrorCode.REQUEST_FAILED);
      await assert.rejects(drv.read(SECTORS - 1, 1024), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR);
      assert.deepEqual(await drv.read(SECTORS - 1, 512), new Uint8Array(512));
    });

    it('multiqueue: requests spread over every queue', async () => {
      const { pair } = setup({ numQueues: 3 }, { packed });
      assert.ok((pair.features & BlkF.MQ) !== 0n);
      const drv = new BlkDriver(pair.ctx);
      assert.equal(drv.config.numQueues, 3);
      await Promise.all(Array.from({ length: 9 }, (_, i) => drv.write(i, pattern(512, i))));
      for (let i = 0; i < 9; i++) assert.deepEqual(await drv.read(i, 512), pattern(512, i));
      assert.ok(pair.usedNotifications.every((n) => n > 0), `notifications ${pair.usedNotifications}`);
    });
  });
}

describe('BlkDevice request decoding', T, () => {
  it('every request type and its answer (header, data, status last)', async () => {
    const { pair } = setup({ serial: 'abc' });
    const raw = new RawDriver(pair.ctx);
    const data = pattern(1024, 3);
    assert.equal(await raw.status([header(BlkReqType.OUT, 3), data], [1]), BlkStatus.OK);
    const r = await raw.send([header(BlkReqType.IN, 3)], [1024, 1]);
    assert.deepEqual(r.ins[0], data);
    assert.equal(r.ins[1]![0], BlkStatus.OK);
    assert.equal(r.usedLen, 1025);
    assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
    const id = await raw.send([header(BlkReqType.GET_ID, 0)], [BLK_ID_BYTES, 1]);
    assert.deepEqual(id.ins[0], Uint8Array.of(0x61, 0x62, 0x63, ...new Array<number>(17).fill(0)));
    assert.equal(id.ins[1]![0], BlkStatus.OK);
    assert.equal(await raw.status([header(BlkReqType.DISCARD, 0), segment(0, 1)], [1]), BlkStatus.OK);
    assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(0, 1, 1)], [1]), BlkStatus.OK);
    assert.equal(await raw.status([header(BlkReqType.SECURE_ERASE, 0), segment(0, 1)], [1]), BlkStatus.OK);
    // No LIFETIME from a RAM disk (device/blk/28), so GET_LIFETIME is unsupported.
    assert.equal(await raw.status([header(BlkReqType.GET_LIFETIME, 0)], [6, 1]), BlkStatus.UNSUPP);
    assert.deepEqual(pair.resets, []);
  });

  it('any framing: header, data and status split across descriptors anywhere (5.2.6.3)', async () => {
    const { pair, backend } = setup();
    const raw = new RawDriver(pair.ctx);
    const h = header(BlkReqType.OUT, 7);
    const data = pattern(1024, 9);
    const all = new Uint8Array([...h, ...data]);
    assert.equal(await raw.status([all.subarray(0, 5), all.subarray(5, 600), all.subarray(600)], [1]), BlkStatus.OK);
    assert.deepEqual((backend as MemoryBackend).data.subarray(7 * 512, 9 * 512), data);
    // IN with the data and the status byte in one writable descriptor.
    const r = await raw.send([header(BlkReqType.IN, 7)], [300, 725]);
    const got = new Uint8Array([...r.ins[0]!, ...r.ins[1]!]);
    assert.deepEqual(got.subarray(0, 1024), data);
    assert.equal(got[1024], BlkStatus.OK);
  });

  it('big-endian legacy headers', async () => {
    const { pair, backend } = setup({}, { littleEndian: false, accept: ~F.VERSION_1 });
    const raw = new RawDriver(pair.ctx);
    const data = pattern(512, 4);
    assert.equal(await raw.status([header(BlkReqType.OUT, 5, false), data], [1]), BlkStatus.OK);
    assert.deepEqual((backend as MemoryBackend).data.subarray(5 * 512, 6 * 512), data);
    const drv = new BlkDriver(pair.ctx);
    assert.equal(drv.capacity, SECTORS);
    assert.deepEqual(await drv.read(5, 512), data);
  });

  it('device/blk/30: bad requests (zoned types without ZONED, short header, range, direction): never a throw, always a status', async () => {
    const { pair, backend } = setup();
    const raw = new RawDriver(pair.ctx);
    const mem = (backend as MemoryBackend).data;
    // Short header.
    assert.equal(await raw.status([header(BlkReqType.IN, 0).subarray(0, 15)], [512, 1]), BlkStatus.IOERR);
    // Out-of-range sectors, including ones whose byte offset overflows 2^53.
    assert.equal(await raw.status([header(BlkReqType.IN, SECTORS)], [512, 1]), BlkStatus.IOERR);
    assert.equal(await raw.status([header(BlkReqType.OUT, 2 ** 52), pattern(512, 1)], [1]), BlkStatus.IOERR);
    const huge = header(BlkReqType.IN, 0);
    new DataView(huge.buffer).setUint32(12, 0xffffffff, true);
    assert.equal(await raw.status([huge], [512, 1]), BlkStatus.IOERR);
    // Unknown type, legacy SCSI, zoned requests without ZONED (device/blk/30).
    for (const t of [3, 7, 99, 0xffffffff, BlkReqType.SCSI_CMD, BlkReqType.ZONE_REPORT, BlkReqType.ZONE_APPEND, BlkReqType.ZONE_OPEN, BlkReqType.ZONE_RESET_ALL]) {
      assert.equal(await raw.status([header(t, 0)], [1]), BlkStatus.UNSUPP, `type ${t}`);
    }
    // Data in the wrong direction: readable data on IN, writable data on OUT.
    assert.equal(await raw.status([header(BlkReqType.IN, 0), pattern(512, 1)], [512, 1]), BlkStatus.IOERR);
    assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 1)], [512, 1]), BlkStatus.IOERR);
    assert.ok(mem.every((b) => b === 0), 'nothing was written');
    // Not a multiple of 512 bytes (driver/blk/15).
    assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(100, 1)], [1]), BlkStatus.IOERR);
    const r = await raw.send([header(BlkReqType.IN, 0)], [100, 1]);
    assert.equal(r.ins[1]![0], BlkStatus.IOERR);
    assert.ok(r.ins[0]!.every((b) => b === 0), 'unwritten data is zeroed, not left as it was');
    // Missing status byte: the buffer comes back with nothing written.
    const none = await raw.send([header(BlkReqType.IN, 0)], []);
    assert.equal(none.usedLen, 0);
    const noneOut = await raw.send([header(BlkReqType.OUT, 0), pattern(512, 2)], []);
    assert.equal(noneOut.usedLen, 0);
    assert.ok(mem.every((b) => b === 0));
    // Segment requests: partial segment, too many segments, no segment.
    assert.equal(await raw.status([header(BlkReqType.DISCARD, 0), segment(0, 1).subarray(0, 12)], [1]), BlkStatus.IOERR);
    assert.equal(await raw.status([header(BlkReqType.DISCARD, 0)], [1]), BlkStatus.IOERR);
    const many = Array.from({ length: 33 }, (_, i) => segment(i, 1));
    assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), ...many], [1]), BlkStatus.UNSUPP);
    assert.deepEqual(pair.resets, []);
  });

  it('device/blk/18, device/blk/19: unknown flags and unmap on discard are UNSUPP; sector limits IOERR', async () => {
    const { pair, backend } = setup({ maxDiscardSectors: 8 });
    const raw = new RawDriver(pair.ctx);
    const mem = (backend as MemoryBackend).data;
    mem.fill(0x55);
    assert.equal(await raw.status([header(BlkReqType.DISCARD, 0), segment(0, 1, 1)], [1]), BlkStatus.UNSUPP);
    assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(0, 1, 2)], [1]), BlkStatus.UNSUPP);
    assert.equal(await raw.status([header(BlkReqType.SECURE_ERASE, 0), segment(0, 1, 4)], [1]), BlkStatus.UNSUPP);
    assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(0, 9)], [1]), BlkStatus.IOERR);
    assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(SECTORS - 1, 2)], [1]), BlkStatus.IOERR);
    // A bad segment after a good one: nothing is done (all segments are checked first).
    assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(0, 1), segment(SECTORS, 1)], [1]), BlkStatus.IOERR);
    assert.ok(mem.every((b) => b === 0x55));
  });

  it('segment requests not negotiated are UNSUPP', async () => {
    const { pair } = setup({}, { accept: ~(BlkF.DISCARD | BlkF.WRITE_ZEROES | BlkF.SECURE_ERASE) });
    const raw = new RawDriver(pair.ctx);
    for (const t of [BlkReqType.DISCARD, BlkReqType.WRITE_ZEROES, BlkReqType.SECURE_ERASE]) {
      assert.equal(await raw.status([header(t, 0), segment(0, 1)], [1]), BlkStatus.UNSUPP);
    }
  });

  it('GET_LIFETIME with a backend that has metrics (device/blk/27)', async () => {
    const b = new MemoryBackend(SECTORS * 512) as MemoryBackend & { lifetime(): BlkLifetimeInfo };
    b.lifetime = () => ({ preEolInfo: 1, deviceLifetimeEstTypA: 2, deviceLifetimeEstTypB: 3 });
    const { pair, device } = setup({}, {}, b);
    assert.ok((device.offeredFeatures & BlkF.LIFETIME) !== 0n);
    const drv = new BlkDriver(pair.ctx);
    assert.deepEqual(await drv.getLifetime(), { preEolInfo: 1, deviceLifetimeEstTypA: 2, deviceLifetimeEstTypB: 3 });
    const raw = new RawDriver(pair.ctx, 0);
    assert.equal(await raw.status([header(BlkReqType.GET_LIFETIME, 0)], [5, 1]), BlkStatus.IOERR);
  });

  it('a broken ring sets DEVICE_NEEDS_RESET instead of throwing', async () => {
    const { pair, device } = setup();
    // Publish an available index far ahead of the ring (split: avail idx at driverAddr + 2).
    const q = pair.devQueues[0]!;
    assert.equal(q.packed, false);
    const drvq = pair.drvQueues[0]!;
    void drvq;
    // Find the avail ring: the test pair lays queue 0 at 0x1000 with size 64.
    const availIdx = 0x1000 + 64 * 16 + 2;
    pair.memory.writeU16(availIdx, 200);
    assert.doesNotThrow(() => device.onQueueNotify(0));
    assert.equal(pair.resets.length, 1);
  });
});

describe('BlkDevice read-only, cache modes, config', T, () => {
  it('device/blk/17: RO offered, writes fail with IOERR and write nothing', async () => {
    const backend = new MemoryBackend(SECTORS * 512);
    backend.data.fill(7);
    const { pair, device } = setup({ readOnly: true }, {}, backend);
    assert.ok((device.offeredFeatures & BlkF.RO) !== 0n);
    assert.equal(device.offeredFeatures & (BlkF.DISCARD | BlkF.WRITE_ZEROES | BlkF.SECURE_ERASE), 0n);
    const drv = new BlkDriver(pair.ctx);
    assert.equal(drv.readOnly, true);
    await assert.rejects(drv.write(0, pattern(512, 1)), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR);
    // (No RawDriver here: DriverContext.onUsed holds one callback per queue, and a second
    // driver on queue 0 would take the BlkDriver's completions away.)
    assert.ok(backend.data.every((b) => b === 7));
    assert.deepEqual(await drv.read(0, 512), new Uint8Array(512).fill(7));
  });

  it('device/blk/17: RO also when the driver did not accept the RO bit', async () => {
    const backend = new MemoryBackend(SECTORS * 512);
    const { pair } = setup({ readOnly: true }, { accept: ~BlkF.RO }, backend);
    const raw = new RawDriver(pair.ctx);
    assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 1)], [1]), BlkStatus.IOERR);
    assert.ok(backend.data.every((b) => b === 0));
  });

  it('device/blk/1, device/blk/3, device/blk/4, device/blk/5: config fields match the offer', () => {
    const device = new BlkDevice(new MemoryBackend(1000 * 512 + 100), { blockSize: 4096, numQueues: 2, queueSize: 128 });
    assert.equal(device.deviceId, DeviceId.BLOCK);
    const f = device.offeredFeatures;
    for (const m of [BlkF.FLUSH, BlkF.CONFIG_WCE, BlkF.SEG_MAX, BlkF.BLK_SIZE, BlkF.TOPOLOGY, BlkF.MQ, BlkF.DISCARD, BlkF.WRITE_ZEROES, F.VERSION_1]) {
      assert.notEqual(f & m, 0n);
    }
    assert.equal(f & (BlkF.ZONED | BlkF.LIFETIME | BlkF.BARRIER | BlkF.SCSI | F.IN_ORDER), 0n, 'device/blk/4');
    assert.deepEqual(device.queueMaxSizes, [128, 128]);
    const cfg = new Uint8Array(BlkConfig.SIZE);
    device.readConfig(0, cfg, f, true);
    const v = new DataView(cfg.buffer);
    assert.equal(v.getBigUint64(BlkConfig.CAPACITY, true), 1000n);
    assert.equal(v.getUint32(BlkConfig.SEG_MAX, true), 126);
    assert.equal(v.getUint32(BlkConfig.BLK_SIZE, true), 4096);
    assert.equal(cfg[BlkConfig.TOPOLOGY_PHYSICAL_BLOCK_EXP], 3);
    assert.equal(cfg[BlkConfig.WRITEBACK], 1);
    assert.equal(cfg[BlkConfig.UNUSED0], 0);
    assert.deepEqual([...cfg.subarray(BlkConfig.UNUSED1, BlkConfig.UNUSED1 + 3)], [0, 0, 0]);
    assert.equal(v.getUint16(BlkConfig.NUM_QUEUES, true), 2);
    assert.equal(v.getUint32(BlkConfig.DISCARD_SECTOR_ALIGNMENT, true), 8);
    assert.equal(cfg[BlkConfig.WRITE_ZEROES_MAY_UNMAP], 0, 'device/blk/23');
    // Partial reads at any offset agree with the whole.
    const part = new Uint8Array(5);
    device.readConfig(30, part, f, true);
    assert.deepEqual(part, cfg.subarray(30, 35));
    // Big-endian legacy config.
    const be = new Uint8Array(8);
    device.readConfig(0, be, f & ~F.VERSION_1, false);
    assert.equal(new DataView(be.buffer).getBigUint64(0, false), 1000n);
  });

  it('device/blk/2: CONFIG_WCE without FLUSH reads writeback 0; writes toggle it only with CONFIG_WCE', async () => {
    const device = new BlkDevice(new MemoryBackend(SECTORS * 512));
    const b = new Uint8Array(1);
    device.readConfig(BlkConfig.WRITEBACK, b, BlkF.CONFIG_WCE, true);
    assert.equal(b[0], 0);
    device.readConfig(BlkConfig.WRITEBACK, b, BlkF.CONFIG_WCE | BlkF.FLUSH, true);
    assert.equal(b[0], 1);
    device.writeConfig(BlkConfig.WRITEBACK, Uint8Array.of(0), BlkF.FLUSH, true);
    device.readConfig(BlkConfig.WRITEBACK, b, BlkF.CONFIG_WCE | BlkF.FLUSH, true);
    assert.equal(b[0], 1, 'ignored without CONFIG_WCE');
    device.writeConfig(BlkConfig.CAPACITY, new Uint8Array(8), BlkF.CONFIG_WCE | BlkF.FLUSH, true);
    device.writeConfig(BlkConfig.WRITEBACK, Uint8Array.of(5), BlkF.CONFIG_WCE | BlkF.FLUSH, true);
    const cap = new Uint8Array(8);
    device.readConfig(BlkConfig.CAPACITY, cap, BlkF.CONFIG_WCE | BlkF.FLUSH, true);
    assert.equal(new DataView(cap.buffer).getBigUint64(0, true), BigInt(SECTORS), 'capacity is read-only');
    device.readConfig(BlkConfig.WRITEBACK, b, BlkF.CONFIG_WCE | BlkF.FLUSH, true);
    assert.equal(b[0], 1, 'values other than 0 and 1 are ignored');
  });

  it('device/blk/25: writethrough writes flush before completing; writeback ones do not', async () => {
    const backend = new CountingBackend(SECTORS * 512);
    const { pair } = setup({}, {}, backend);
    const drv = new BlkDriver(pair.ctx);
    assert.equal(drv.writebackCache, true);
    await drv.write(0, pattern(512, 1));
    assert.equal(backend.flushes, 0);
    drv.setWriteback(false);
    assert.equal(drv.config.writeback, 0);
    assert.equal(drv.writebackCache, false);
    await drv.write(0, pattern(512, 2));
    assert.equal(backend.flushes, 1);
    // Without FLUSH negotiated, every write is writethrough.
    const b2 = new CountingBackend(SECTORS * 512);
    const p2 = setup({}, { accept: ~(BlkF.FLUSH | BlkF.CONFIG_WCE) }, b2).pair;
    const d2 = new BlkDriver(p2.ctx);
    assert.equal(d2.writebackCache, false, 'driver/blk/2');
    await d2.write(0, pattern(512, 3));
    assert.equal(b2.flushes, 1);
  });
});

class CountingBackend extends MemoryBackend {
  flushes = 0;
  override flush(): void {
    this.flushes++;
  }
}

/** A backend whose operations finish when the test says, to complete requests out of order. */
class DeferredBackend extends MemoryBackend {
  readonly ops: { kind: string; offset: number; run: () => void; fail: (e: Error) => void }[] = [];
  override read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> {
    return this.defer('read', offset, () => super.read(offset, dst, dstOff, len));
  }
  override write(offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): Promise<void> {
    return this.defer('write', offset, () => super.write(offset, src, srcOff, len));
  }
  private defer(kind: string, offset: number, fn: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ops.push({
        kind,
        offset,
        run: () => {
          fn();
          resolve();
        },
        fail: reject,
      });
    });
  }
}

describe('BlkDevice asynchronous backends', T, () => {
  it('requests complete out of order, each when its backend operation finishes', async () => {
    const backend = new DeferredBackend(SECTORS * 512);
    const { pair } = setup({}, {}, backend);
    const drv = new BlkDriver(pair.ctx);
    const order: number[] = [];
    const ps = [0, 1, 2].map((i) => drv.write(i, pattern(512, i)).then(() => order.push(i)));
    await until(() => backend.ops.length === 3);
    backend.ops[2]!.run();
    await until(() => order.length === 1);
    backend.ops[0]!.run();
    await until(() => order.length === 2);
    backend.ops[1]!.run();
    await Promise.all(ps);
    assert.deepEqual(order, [2, 0, 1]);
    const r = drv.read(1, 512);
    await until(() => backend.ops.length === 4);
    backend.ops[3]!.run();
    assert.deepEqual(await r, pattern(512, 1));
  });

  it('a failing backend operation answers IOERR', async () => {
    const backend = new DeferredBackend(SECTORS * 512);
    const { pair } = setup({}, {}, backend);
    const drv = new BlkDriver(pair.ctx);
    const p = drv.read(0, 512);
    await until(() => backend.ops.length === 1);
    backend.ops[0]!.fail(new Error('disk on fire'));
    await assert.rejects(p, (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR);
  });

  it('completions after a device reset are dropped', async () => {
    const backend = new DeferredBackend(SECTORS * 512);
    const { pair, device } = setup({}, {}, backend);
    const drv = new BlkDriver(pair.ctx);
    void drv.write(0, pattern(512, 1)).catch(() => {});
    await until(() => backend.ops.length === 1);
    device.reset();
    backend.ops[0]!.run();
    await until(() => true);
    assert.equal(drv.inFlight, 1, 'no used buffer after reset');
    assert.equal(pair.usedNotifications[0], 0);
  });
});

/** A RAM disk whose visible size the test changes (the data array is as large as it may grow). */
class ResizableBackend extends MemoryBackend {
  visible: number;
  constructor(max: number, visible: number) {
    super(max);
    this.visible = visible;
  }
  override get size(): number {
    return this.visible;
  }
}

describe('BlkDevice config fields and features', T, () => {
  it('SIZE_MAX, GEOMETRY and TOPOLOGY: offered when configured, fields as set', () => {
    const plain = new BlkDevice(new MemoryBackend(SECTORS * 512));
    assert.equal(plain.offeredFeatures & (BlkF.SIZE_MAX | BlkF.GEOMETRY), 0n);
    const device = new BlkDevice(new MemoryBackend(SECTORS * 512), { sizeMax: 4096, geometry: { cylinders: 300, heads: 16, sectors: 63 } });
    const f = device.offeredFeatures;
    assert.notEqual(f & BlkF.SIZE_MAX, 0n);
    assert.notEqual(f & BlkF.GEOMETRY, 0n);
    const cfg = new Uint8Array(BlkConfig.SIZE);
    device.readConfig(0, cfg, f, true);
    const v = new DataView(cfg.buffer);
    assert.equal(v.getUint32(BlkConfig.SIZE_MAX, true), 4096);
    assert.equal(v.getUint16(BlkConfig.GEOMETRY_CYLINDERS, true), 300);
    assert.equal(cfg[BlkConfig.GEOMETRY_HEADS], 16);
    assert.equal(cfg[BlkConfig.GEOMETRY_SECTORS], 63);
    assert.equal(cfg[BlkConfig.TOPOLOGY_PHYSICAL_BLOCK_EXP], 0);
    assert.equal(cfg[BlkConfig.TOPOLOGY_ALIGNMENT_OFFSET], 0);
    assert.equal(v.getUint16(BlkConfig.TOPOLOGY_MIN_IO_SIZE, true), 1);
    assert.equal(v.getUint32(BlkConfig.TOPOLOGY_OPT_IO_SIZE, true), 0);
    assert.equal(v.getUint32(BlkConfig.MAX_DISCARD_SEG, true), 32);
    assert.equal(v.getUint32(BlkConfig.MAX_WRITE_ZEROES_SEG, true), 32);
    assert.equal(v.getUint32(BlkConfig.MAX_SECURE_ERASE_SEG, true), 32);
    assert.equal(v.getUint32(BlkConfig.MAX_DISCARD_SECTORS, true), 1 << 22);
    // Zoned fields stay 0 (not a zoned device).
    assert.ok(cfg.subarray(BlkConfig.ZONED_ZONE_SECTORS).every((b) => b === 0));
    assert.throws(() => new BlkDevice(new MemoryBackend(512), { sizeMax: 100 }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => new BlkDevice(new MemoryBackend(512), { geometry: { cylinders: 70000, heads: 1, sectors: 1 } }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => new BlkDevice(new MemoryBackend(512), { blockSize: 1000 }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.equal(device.validateFeatures(f), null);
    assert.notEqual(device.validateFeatures(f | BlkF.ZONED), null, 'ZONED was not offered');
  });

  it('device/blk/17: a read-only backend makes the device offer RO', async () => {
    const backend = new MemoryBackend(SECTORS * 512, { readOnly: true });
    const { pair, device } = setup({}, {}, backend);
    assert.notEqual(device.offeredFeatures & BlkF.RO, 0n);
    const raw = new RawDriver(pair.ctx);
    assert.equal(await raw.status([header(BlkReqType.OUT, 0), pattern(512, 1)], [1]), BlkStatus.IOERR);
    // Segment requests were not offered: UNSUPP, nothing written.
    assert.equal(await raw.status([header(BlkReqType.WRITE_ZEROES, 0), segment(0, 1)], [1]), BlkStatus.UNSUPP);
    assert.ok(backend.data.every((b) => b === 0));
    assert.equal(await raw.status([header(BlkReqType.IN, 0)], [512, 1]), BlkStatus.OK);
  });

  it('device/blk/15, device/blk/16, driver/blk/10: a capacity change notifies, the driver re-reads it', async () => {
    const backend = new ResizableBackend(SECTORS * 512, 100 * 512);
    const { pair, device } = setup({}, {}, backend);
    const drv = new BlkDriver(pair.ctx);
    assert.equal(drv.capacity, 100);
    await assert.rejects(drv.read(150, 512), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR);
    assert.equal(device.refreshCapacity(), false, 'unchanged: no notification');
    backend.visible = 200 * 512 + 3;
    assert.equal(device.refreshCapacity(), true);
    await until(() => pair.configChanges === 1);
    assert.equal(drv.capacity, 200);
    assert.deepEqual(await drv.read(150, 512), new Uint8Array(512));
    backend.visible = 50 * 512;
    device.refreshCapacity();
    await until(() => pair.configChanges === 2);
    assert.equal(drv.capacity, 50);
    await assert.rejects(drv.read(60, 512), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR);
  });

  it('device/blk/29: lifetime values out of range are sent as 0 (undefined), never reserved values', async () => {
    const b = new MemoryBackend(SECTORS * 512) as MemoryBackend & { lifetime(): BlkLifetimeInfo };
    b.lifetime = () => ({ preEolInfo: 4, deviceLifetimeEstTypA: 0x0c, deviceLifetimeEstTypB: 0x0b });
    const { pair } = setup({}, {}, b);
    const drv = new BlkDriver(pair.ctx);
    assert.deepEqual(await drv.getLifetime(), { preEolInfo: 0, deviceLifetimeEstTypA: 0, deviceLifetimeEstTypB: 0x0b });
    b.lifetime = () => {
      throw new Error('no metrics today');
    };
    await assert.rejects(drv.getLifetime(), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR);
  });

  it('GET_ID: 20 bytes, no NUL when the serial fills them; a longer serial is cut', async () => {
    const { pair } = setup({ serial: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' });
    const raw = new RawDriver(pair.ctx);
    const r = await raw.send([header(BlkReqType.GET_ID, 0)], [BLK_ID_BYTES, 1]);
    assert.equal(new TextDecoder().decode(r.ins[0]), 'ABCDEFGHIJKLMNOPQRST');
    assert.equal(r.usedLen, BLK_ID_BYTES + 1);
    const drv = new BlkDriver(pair.ctx);
    assert.equal(await drv.getId(), 'ABCDEFGHIJKLMNOPQRST');
  });

  it('FLUSH calls the backend flush; secure erase without backend support zeroes then flushes', async () => {
    const backend = new CountingBackend(SECTORS * 512);
    backend.data.fill(0x33);
    const { pair } = setup({}, {}, backend);
    const raw = new RawDriver(pair.ctx);
    assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
    assert.equal(backend.flushes, 1);
    assert.equal(await raw.status([header(BlkReqType.SECURE_ERASE, 0), segment(8, 8)], [1]), BlkStatus.OK);
    assert.equal(backend.flushes, 2);
    assert.ok(backend.data.subarray(8 * 512, 16 * 512).every((b) => b === 0));
    assert.equal(backend.data[16 * 512], 0x33);
    // Unknown type with data: UNSUPP and the data stays as it was.
    const r = await raw.send([header(42, 0)], [512, 1]);
    assert.equal(r.ins[1]![0], BlkStatus.UNSUPP);
    assert.ok(r.ins[0]!.every((b) => b === 0), 'writable bytes before the status are zeroed, not left stale');
  });

  it('an unmapped data segment fails that request with IOERR; the queue goes on', async () => {
    const { pair, backend } = setup();
    const { ctx } = pair;
    const hdr = ctx.dma.alloc(17);
    ctx.memory.write(hdr, header(BlkReqType.OUT, 0));
    ctx.memory.fill(hdr + 16, 1, 0xee);
    let done = false;
    ctx.onUsed(0, () => {
      // Take everything and re-arm (with EVENT_IDX this publishes used_event).
      do {
        while (ctx.queue(0).takeUsed() !== undefined) done = true;
      } while (ctx.queue(0).enableInterrupts());
    });
    assert.ok(ctx.queue(0).add([{ addr: hdr, len: 16 }, { addr: 0x7000_0000_0000, len: 512 }], [{ addr: hdr + 16, len: 1 }], 1));
    ctx.kick(0);
    await until(() => done);
    assert.equal(ctx.memory.readU8(hdr + 16), BlkStatus.IOERR);
    assert.ok((backend as MemoryBackend).data.every((b) => b === 0));
    assert.deepEqual(pair.resets, []);
    const raw = new RawDriver(ctx);
    assert.equal(await raw.status([header(BlkReqType.IN, 0)], [512, 1]), BlkStatus.OK);
  });

  it('device/split-ring/14: a read whose data lies partly or wholly outside guest memory fails with IOERR, and used.len counts only the bytes written', async () => {
    const { pair } = setup();
    const { ctx } = pair;
    const lens: number[] = [];
    ctx.onUsed(0, () => {
      do {
        while (ctx.queue(0).takeUsed() !== undefined) lens.push(ctx.queue(0).lastUsedLen);
      } while (ctx.queue(0).enableInterrupts());
    });
    const hdr = ctx.dma.alloc(16);
    ctx.memory.write(hdr, header(BlkReqType.IN, 0));
    const data = ctx.dma.alloc(1024);
    const status = ctx.dma.alloc(1);
    const OUTSIDE = 0x7000_0000_0000;
    // Partly: 1024 mapped bytes, then 4096 outside, then the status byte.
    ctx.memory.fill(data, 1024, 0xee);
    ctx.memory.fill(status, 1, 0xee);
    assert.ok(ctx.queue(0).add([{ addr: hdr, len: 16 }], [{ addr: data, len: 1024 }, { addr: OUTSIDE, len: 4096 }, { addr: status, len: 1 }], 1));
    ctx.kick(0);
    await until(() => lens.length === 1);
    assert.equal(ctx.memory.readU8(status), BlkStatus.IOERR);
    assert.equal(lens[0], 1024, 'the written prefix, not 1024 + 4096 + 1');
    assert.ok(ctx.memory.slice(data, 1024).every((b) => b === 0), 'the mapped part is zeroed, as the length says');
    // Wholly: the first writable buffer is outside, so nothing from its start was written.
    ctx.memory.fill(status, 1, 0xee);
    assert.ok(ctx.queue(0).add([{ addr: hdr, len: 16 }], [{ addr: OUTSIDE, len: 4096 }, { addr: status, len: 1 }], 2));
    ctx.kick(0);
    await until(() => lens.length === 2);
    assert.equal(ctx.memory.readU8(status), BlkStatus.IOERR);
    assert.equal(lens[1], 0);
    assert.deepEqual(pair.resets, []);
  });

  it('multiqueue: each queue served on its own, requests in flight on several at once', async () => {
    const backend = new DeferredBackend(SECTORS * 512);
    const { pair } = setup({ numQueues: 4 }, {}, backend);
    const raws = [0, 1, 2, 3].map((q) => new RawDriver(pair.ctx, q));
    const ps = raws.map((r, q) => r.status([header(BlkReqType.OUT, q * 2), pattern(1024, q)], [1]));
    await until(() => backend.ops.length === 4); // all four in flight at once
    for (const op of [...backend.ops].reverse()) op.run();
    assert.deepEqual(await Promise.all(ps), [0, 0, 0, 0]);
    for (let q = 0; q < 4; q++) assert.deepEqual(backend.data.subarray(q * 1024, q * 1024 + 1024), pattern(1024, q));
    assert.ok(pair.usedNotifications.every((n) => n >= 1), `notifications ${pair.usedNotifications}`);
  });
});
