/**
 * 2.6.1 queue reset, driver side, against a device whose teardown of the queue finishes later
 * (it waits for a request its back-end still holds, so queue_reset / QueueReset stays 1:
 * device/transport-pci/23, device/transport-mmio/11). The driver's `resetQueueAsync` waits for
 * the reset without blocking the event loop, reads 0 before it considers it done, and only then
 * frees the old rings and sets the queue up again; a reset that never finishes is reported with
 * VirtioError TIMEOUT after the timeout, the queue left alone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import type { DriverTransport } from '../../src/driver/types.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { MmioDeviceTransport } from '../../src/transport/mmio/mmio-device.js';
import { MmioDriverTransport } from '../../src/transport/mmio/mmio-driver.js';
import { MmioReg } from '../../src/transport/mmio/registers.js';
import { CommonCfg, PciBar } from '../../src/transport/pci/constants.js';
import { type PciFunction, PciDeviceTransport } from '../../src/transport/pci/pci-device.js';
import { PciDriverTransport } from '../../src/transport/pci/pci-driver.js';
import { RecordingWindow, roundTrip } from './rig.js';

const MEM = 4 << 20;
const DMA_BASE = 0x10_0000;
const ALL = (1n << 128n) - 1n;

/** An echo device whose queue teardown finishes only at `release()` (a held I/O coming back). */
class SlowTeardownDevice extends EchoDevice {
  private pending: (() => void) | null = null;
  /** False: the teardown finishes within the reset write, as most devices'. */
  slow = true;

  override resetQueue(index: number): Promise<void> | void {
    super.resetQueue(index);
    if (!this.slow) return;
    return new Promise<void>((resolve) => (this.pending = resolve));
  }

  get teardownPending(): boolean {
    return this.pending !== null;
  }

  release(): void {
    const p = this.pending;
    this.pending = null;
    p?.();
  }
}

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
};

function payload(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);
}

interface Rig {
  readonly dev: SlowTeardownDevice;
  readonly mem: GuestMemory;
  readonly dma: DmaAllocator;
  readonly drv: VirtioDriver;
  readonly transport: DriverTransport;
  readonly core: () => DeviceCore;
  /** Reads the reset register of queue `index` as the device presents it. */
  readonly resetRegister: (index: number) => number;
  /** Register writes the driver made to set a queue up (QueueReady / queue_enable = 1). */
  readonly enableWrites: () => number;
}

function pciRig(): Rig {
  const dev = new SlowTeardownDevice({ queues: [64, 64] });
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const t = new PciDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores));
  let enables = 0;
  const common = (): number => t.layout.common;
  const fn: PciFunction = {
    configRead: (o, w) => t.configRead(o, w),
    configWrite: (o, w, v) => t.configWrite(o, w, v),
    barRead: (b, o, w) => t.barRead(b, o, w),
    barWrite: (b, o, w, v) => {
      if (b === PciBar.MODERN && o === common() + CommonCfg.QUEUE_ENABLE && v === 1) enables++;
      t.barWrite(b, o, w, v);
    },
  };
  const d = new PciDriverTransport(fn, mem);
  bus.onMsi = (a, v) => d.handleMsi(a, v);
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma, queueSizes: [32] });
  const resetRegister = (index: number): number => {
    t.barWrite(PciBar.MODERN, common() + CommonCfg.QUEUE_SELECT, 2, index);
    return t.barRead(PciBar.MODERN, common() + CommonCfg.QUEUE_RESET, 2);
  };
  return { dev, mem, dma, drv, transport: d, core: () => cores.at(-1)!, resetRegister, enableWrites: () => enables };
}

function mmioRig(): Rig {
  const dev = new SlowTeardownDevice({ queues: [64, 64] });
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const t = new MmioDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores));
  const w = new RecordingWindow(t);
  const d = new MmioDriverTransport(w, mem);
  bus.onIrq = () => d.handleInterrupt();
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma, queueSizes: [32] });
  const resetRegister = (index: number): number => {
    t.write(MmioReg.QUEUE_SEL, 4, index);
    return t.read(MmioReg.QUEUE_RESET, 4);
  };
  const enableWrites = (): number => w.log.filter((a) => a.op === 'w' && a.off === MmioReg.QUEUE_READY && a.value === 1).length;
  return { dev, mem, dma, drv, transport: d, core: () => cores.at(-1)!, resetRegister, enableWrites };
}

const RIGS = [
  { name: 'PCI', ids: 'driver/transport-pci/20', make: pciRig },
  { name: 'MMIO', ids: 'driver/transport-mmio/14', make: mmioRig },
] as const;

describe('2.6.1 the driver waits for a queue reset the device finishes later', () => {
  for (const { name, ids, make } of RIGS) {
    it(`${ids}, driver/content/14, driver/content/15: ${name} resetQueueAsync waits, without blocking the event loop, until the reset reads 0, then frees the old rings and sets the queue up again`, async () => {
      const r = make();
      const p = payload(40, 1);
      assert.deepEqual(roundTrip(r.mem, r.dma, r.drv.queue(1), () => r.drv.kick(1), p).data, p);
      const old = r.drv.queue(1);
      const freeBefore = r.dma.freeBytes;
      const enablesBefore = r.enableWrites();
      let settled = false;
      const pending = r.drv.resetQueueAsync(1, { timeoutMs: 10_000 }).then((q) => {
        settled = true;
        return q;
      });
      // The device stopped the queue at once but keeps the reset ongoing: the driver waits,
      // and the event loop runs meanwhile (these turns are taken while the reset is pending).
      await turns(40);
      assert.ok(r.dev.teardownPending, 'the device has not finished its teardown');
      assert.equal(settled, false, 'the driver does not consider the reset complete');
      assert.equal(r.resetRegister(1), 1, 'the device presents 1');
      assert.equal(r.drv.queue(1), old, 'the old queue is kept');
      assert.equal(r.dma.freeBytes, freeBefore, 'the old rings are not released yet');
      assert.equal(r.enableWrites(), enablesBefore, 'the queue is not enabled again yet');
      // Another queue works meanwhile.
      const q0 = payload(24, 2);
      assert.deepEqual(roundTrip(r.mem, r.dma, r.drv.queue(0), () => r.drv.kick(0), q0).data, q0);
      r.dev.release();
      const fresh = await pending;
      assert.equal(r.resetRegister(1), 0, 'the reset completed');
      assert.notEqual(fresh, old);
      assert.equal(r.drv.queue(1), fresh);
      assert.equal(r.enableWrites(), enablesBefore + 1, 'enabled again once, after the reset read 0');
      // The old rings went back to the allocator and the fresh queue works.
      assert.equal(r.dma.freeBytes, freeBefore);
      const p2 = payload(33, 3);
      assert.deepEqual(roundTrip(r.mem, r.dma, fresh, () => r.drv.kick(1), p2).data, p2);
      r.drv.reset();
    });

    it(`${ids}, driver/content/14: ${name} a queue reset that never completes rejects with VirtioError TIMEOUT after the timeout; the queue is left alone`, async () => {
      const r = make();
      const old = r.drv.queue(1);
      const freeBefore = r.dma.freeBytes;
      const enablesBefore = r.enableWrites();
      const t0 = performance.now();
      await assert.rejects(r.drv.resetQueueAsync(1, { timeoutMs: 60 }), (e: unknown) => (e as { code?: string }).code === 'TIMEOUT' && /queue 1 reset/.test((e as Error).message));
      assert.ok(performance.now() - t0 >= 55, 'it waited for the timeout');
      assert.equal(r.drv.queue(1), old);
      assert.equal(r.dma.freeBytes, freeBefore, 'nothing released');
      assert.equal(r.enableWrites(), enablesBefore, 'not enabled again');
      assert.equal(r.resetRegister(1), 1, 'still ongoing on the device');
      r.dev.release();
      r.drv.reset();
    });

    it(`${ids}: ${name} resetQueueAsync resolves without an event-loop turn when the device finishes within the write, and re-selects the queue it polls when other code moved the selector`, async () => {
      const r = make();
      r.dev.slow = false;
      let fresh: unknown = null;
      void r.drv.resetQueueAsync(0).then((q) => (fresh = q));
      for (let i = 0; i < 4; i++) await null; // microtasks only
      assert.notEqual(fresh, null, 'done at once');
      assert.equal(r.resetRegister(0), 0);
      const p = payload(20, 4);
      assert.deepEqual(roundTrip(r.mem, r.dma, r.drv.queue(0), () => r.drv.kick(0), p).data, p);
      // The transport's wait alone, with queue 0 selected by other code between its polls.
      r.dev.slow = true;
      let done = false;
      const waiting = r.transport.resetQueueAsync!(1, { timeoutMs: 10_000 }).then(() => (done = true));
      await turns(3);
      assert.equal(r.resetRegister(0), 0, 'queue 0 is not being reset');
      await turns(3);
      assert.equal(done, false, 'queue 1 polled, not the selected queue 0');
      r.dev.release();
      await waiting;
      assert.equal(r.resetRegister(1), 0);
      r.drv.reset();
    });
  }
});
