/**
 * Normative statements of 5.2 (block device, not zoned) proven on the library's BlkDevice and
 * BlkDriver, over the in-process loopback and over MMIO with every register access recorded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import type { BlkBackend, BlkLifetimeInfo } from '../../src/devices/blk/backend.js';
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { BlkDriver, BlkRequestError } from '../../src/devices/blk/blk-driver.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { BlkF, BlkReqType, BlkStatus } from '../../src/spec/blk.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { createLoopback } from '../../src/testing/loopback.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { MmioDeviceTransport } from '../../src/transport/mmio/mmio-device.js';
import { MmioDriverTransport } from '../../src/transport/mmio/mmio-driver.js';
import { MmioReg } from '../../src/transport/mmio/registers.js';
import { RecordingWindow } from './rig.js';

const T = { timeout: 10_000 };
const SIZE = 256 * 512;

/** A RAM disk that counts flushes and may claim it can unmap and report lifetime metrics. */
class Backend implements BlkBackend {
  readonly ram = new MemoryBackend(SIZE);
  flushes = 0;
  readonly zeroed: { offset: number; len: number; unmap: boolean }[] = [];
  lifetime?: () => BlkLifetimeInfo;
  constructor(readonly canUnmap: boolean, withLifetime = false) {
    if (withLifetime) this.lifetime = () => ({ preEolInfo: 1, deviceLifetimeEstTypA: 2, deviceLifetimeEstTypB: 3 });
  }
  get size(): number {
    return this.ram.size;
  }
  read(offset: number, dst: Uint8Array, dstOff?: number, len?: number): void {
    this.ram.read(offset, dst, dstOff, len);
  }
  write(offset: number, src: Uint8Array, srcOff?: number, len?: number): void {
    this.ram.write(offset, src, srcOff, len);
  }
  flush(): void {
    this.flushes++;
  }
  discard(offset: number, len: number): void {
    this.ram.discard(offset, len);
  }
  writeZeroes(offset: number, len: number, unmap: boolean): void {
    this.zeroed.push({ offset, len, unmap });
    this.ram.writeZeroes(offset, len);
  }
  close(): void {}
}

describe('5.2 block device', () => {
  it('device/blk/23: write_zeroes_may_unmap is set exactly when a write zeroes request can deallocate', T, async () => {
    for (const canUnmap of [false, true]) {
      const lb = await createLoopback(new BlkDevice(new Backend(canUnmap)));
      try {
        assert.ok((lb.driver.features & BlkF.WRITE_ZEROES) !== 0n);
        const drv = new BlkDriver(lb.context);
        assert.equal(drv.config.writeZeroesMayUnmap, canUnmap ? 1 : 0);
      } finally {
        await lb.close();
      }
    }
  });

  it('device/blk/28: VIRTIO_BLK_F_LIFETIME is offered only when the storage has lifetime metrics', T, async () => {
    assert.equal(new BlkDevice(new Backend(false)).offeredFeatures & BlkF.LIFETIME, 0n);
    assert.equal(new BlkDevice(new MemoryBackend(SIZE)).offeredFeatures & BlkF.LIFETIME, 0n);
    const dev = new BlkDevice(new Backend(false, true));
    assert.equal(dev.offeredFeatures & BlkF.LIFETIME, BlkF.LIFETIME);
    const lb = await createLoopback(dev);
    try {
      const drv = new BlkDriver(lb.context);
      assert.deepEqual(await drv.getLifetime(), { preEolInfo: 1, deviceLifetimeEstTypA: 2, deviceLifetimeEstTypB: 3 });
    } finally {
      await lb.close();
    }
  });

  it('driver/blk/1: the driver negotiates VIRTIO_BLK_F_FLUSH and does send VIRTIO_BLK_T_FLUSH', T, async () => {
    const be = new Backend(false);
    const lb = await createLoopback(new BlkDevice(be));
    try {
      assert.ok((lb.driver.features & BlkF.FLUSH) !== 0n);
      const drv = new BlkDriver(lb.context);
      await drv.write(0, new Uint8Array(512).fill(7));
      await drv.flush();
      assert.equal(be.flushes, 1);
    } finally {
      await lb.close();
    }
  });

  it('driver/blk/22: after switching writeback to 0 the driver still flushes earlier volatile writes', T, async () => {
    const be = new Backend(false);
    const lb = await createLoopback(new BlkDevice(be, { writeback: true }));
    try {
      const drv = new BlkDriver(lb.context);
      assert.equal(drv.writebackCache, true);
      await drv.write(8, new Uint8Array(1024).fill(3));
      drv.setWriteback(false);
      assert.equal(drv.config.writeback, 0);
      assert.equal(drv.writebackCache, false);
      // Switching did not flush; the driver does not take the earlier writes as committed.
      assert.equal(be.flushes, 0);
      await drv.flush();
      assert.equal(be.flushes, 1);
    } finally {
      await lb.close();
    }
  });

  it('driver/blk/4: the driver reads no configuration field (writeback included) before FEATURES_OK is set', T, () => {
    const mem = GuestMemory.allocate(4 << 20);
    const bus = new LoopbackBus(mem);
    const cores: DeviceCore[] = [];
    const t = new MmioDeviceTransport(bus, deviceCoreFactory(new BlkDevice(new Backend(false)), mem, {}, cores));
    const w = new RecordingWindow(t);
    const d = new MmioDriverTransport(w, mem);
    bus.onIrq = () => d.handleInterrupt();
    const vd = VirtioDriver.initSync(d, { wantedFeatures: ((1n << 128n) - 1n) & ~F.RING_PACKED, dma: new DmaAllocator(0x10_0000, 3 << 20), queueSizes: [16] });
    const drv = new BlkDriver(vd.context);
    assert.ok((vd.features & BlkF.CONFIG_WCE) !== 0n);
    assert.equal(drv.capacity, SIZE / 512);
    const iFeaturesOk = w.log.findIndex((a) => a.op === 'w' && a.off === MmioReg.STATUS && (a.value & Status.FEATURES_OK) !== 0);
    const configReads = w.log.map((a, i) => [a, i] as const).filter(([a]) => a.op === 'r' && a.off >= MmioReg.CONFIG);
    assert.ok(iFeaturesOk > 0);
    assert.ok(configReads.length > 0);
    assert.ok(configReads.every(([, i]) => i > iFeaturesOk));
    vd.reset();
  });

  it('driver/blk/25: a multi-segment DISCARD that fails with IOERR fails as a whole; no segment is reported done', T, async () => {
    const be = new Backend(false);
    // The second range cannot be discarded.
    be.discard = (offset: number, len: number): void => {
      if (offset >= 64 * 512) throw new Error('media error');
      be.ram.discard(offset, len);
    };
    const lb = await createLoopback(new BlkDevice(be));
    try {
      const drv = new BlkDriver(lb.context);
      const err = await drv.segments(BlkReqType.DISCARD, [
        { sector: 0, numSectors: 8 },
        { sector: 64, numSectors: 8 },
      ]).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(err instanceof BlkRequestError, String(err));
      assert.equal(err.status, BlkStatus.IOERR);
      assert.equal(drv.inFlight, 0);
    } finally {
      await lb.close();
    }
  });

  it('driver/blk/24: after a discard the driver returns what each read brings back, assuming neither the old data nor zeros', T, async () => {
    const be = new Backend(false);
    // Discarded bytes read as anything (5.2.6.2): here a different pattern on every read.
    const discarded = new Set<number>();
    const served: Uint8Array[] = [];
    let reads = 0;
    be.discard = (offset: number, len: number): void => {
      for (let i = 0; i < len; i++) discarded.add(offset + i);
    };
    be.write = (offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): void => {
      for (let i = 0; i < len; i++) discarded.delete(offset + i);
      be.ram.write(offset, src, srcOff, len);
    };
    be.read = (offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): void => {
      be.ram.read(offset, dst, dstOff, len);
      reads++;
      for (let i = 0; i < len; i++) if (discarded.has(offset + i)) dst[dstOff + i] = (reads * 37 + i) & 0xff;
      served.push(dst.slice(dstOff, dstOff + len));
    };
    const lb = await createLoopback(new BlkDevice(be));
    try {
      assert.ok((lb.driver.features & BlkF.DISCARD) !== 0n);
      const drv = new BlkDriver(lb.context);
      const old = new Uint8Array(1024).fill(0x5a);
      await drv.write(4, old);
      assert.deepEqual(await drv.read(4, 1024), old);
      await drv.discard(4, 2);
      // What the backend handed out for one driver read (however the device split it).
      const readServed = async (): Promise<{ got: Uint8Array; fromDevice: Uint8Array }> => {
        const mark = served.length;
        const got = await drv.read(4, 1024);
        return { got, fromDevice: Buffer.concat(served.slice(mark)) };
      };
      const r1 = await readServed();
      const r2 = await readServed();
      const first = r1.got;
      const second = r2.got;
      assert.deepEqual(Buffer.from(first), r1.fromDevice, 'the first read after the discard is what the device returned');
      assert.deepEqual(Buffer.from(second), r2.fromDevice, 'and so is the second: nothing cached from before');
      assert.notDeepEqual(first, old);
      assert.notDeepEqual(first, second);
      assert.ok(first.some((b) => b !== 0), 'not zeros either');
    } finally {
      await lb.close();
    }
  });
});
