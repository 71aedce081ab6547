/**
 * 2.6.1 queue reset that does not finish within the write: a device whose teardown of a queue
 * waits for a request its back-end still holds. The transports present 1 in queue_reset (PCI) /
 * QueueReset (MMIO) until the device finished, and refuse to enable the queue meanwhile. Also
 * the MMIO driver's way of stopping a queue without RING_RESET (QueueReady 0, read back).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
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
import { PciDeviceTransport } from '../../src/transport/pci/pci-device.js';
import { PciDriverTransport } from '../../src/transport/pci/pci-driver.js';
import { RecordingWindow, roundTrip } from './rig.js';

const MEM = 4 << 20;
const DMA_BASE = 0x10_0000;
const ALL = (1n << 128n) - 1n;

/**
 * An echo device that, like a device whose back-end holds a request of the queue (an I/O in
 * flight), finishes a queue reset only when the request comes back: `release()`.
 */
class HeldResetDevice extends EchoDevice {
  private pending: (() => void) | null = null;

  override resetQueue(index: number): Promise<void> {
    super.resetQueue(index);
    return new Promise<void>((resolve) => {
      this.pending = resolve;
    });
  }

  /** Takes the pending teardown's completion out (to run it later, out of order). */
  takePending(): (() => void) | null {
    const p = this.pending;
    this.pending = null;
    return p;
  }

  /** The held request completed: the queue's teardown is done. */
  release(): void {
    const p = this.pending;
    this.pending = null;
    p?.();
  }
}

/** Lets the promise callbacks of a settled teardown run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function payload(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function pciRig() {
  const dev = new HeldResetDevice({ queues: [64, 64] });
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const t = new PciDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores));
  const d = new PciDriverTransport(t, mem);
  bus.onMsi = (a, v) => d.handleMsi(a, v);
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma, queueSizes: [32] });
  const cr = (f: number, w: number): number => t.barRead(PciBar.MODERN, t.layout.common + f, w);
  const cw = (f: number, w: number, v: number): void => t.barWrite(PciBar.MODERN, t.layout.common + f, w, v);
  return { dev, mem, t, d, dma, drv, cr, cw, core: () => cores.at(-1)! };
}

function mmioRig(dev: EchoDevice = new HeldResetDevice({ queues: [64, 64] })) {
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const t = new MmioDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores));
  const w = new RecordingWindow(t);
  const d = new MmioDriverTransport(w, mem);
  bus.onIrq = () => d.handleInterrupt();
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma, queueSizes: [32] });
  return { dev, mem, t, w, d, dma, drv, core: () => cores.at(-1)! };
}

describe('2.6.1 queue reset ongoing while the device finishes its teardown', () => {
  it('device/transport-pci/23: queue_reset stays 1 while the reset is ongoing, and the queue cannot be enabled until it reads 0', async () => {
    const r = pciRig();
    assert.ok((r.drv.features & F.RING_RESET) !== 0n);
    const p = payload(40, 3);
    assert.deepEqual(roundTrip(r.mem, r.dma, r.drv.queue(1), () => r.drv.kick(1), p).data, p);
    r.cw(CommonCfg.QUEUE_SELECT, 2, 1);
    assert.equal(r.cr(CommonCfg.QUEUE_RESET, 2), 0);
    r.cw(CommonCfg.QUEUE_RESET, 2, 1);
    assert.deepEqual(r.dev.queueResets, [1]);
    // The device stopped using the queue at once, but has not finished: 1, read after read.
    assert.equal(r.core().queue(1), null);
    for (let i = 0; i < 5; i++) assert.equal(r.cr(CommonCfg.QUEUE_RESET, 2), 1);
    await settle();
    assert.equal(r.cr(CommonCfg.QUEUE_RESET, 2), 1, 'still ongoing after the event loop turned');
    // Re-enabling meanwhile is refused (queue_enable stays 0).
    r.cw(CommonCfg.QUEUE_ENABLE, 2, 1);
    assert.equal(r.cr(CommonCfg.QUEUE_ENABLE, 2), 0);
    // The other queue is not affected.
    r.cw(CommonCfg.QUEUE_SELECT, 2, 0);
    assert.equal(r.cr(CommonCfg.QUEUE_RESET, 2), 0);
    r.cw(CommonCfg.QUEUE_SELECT, 2, 1);
    r.dev.release();
    await settle();
    // Completed: queue_reset and queue_enable present 0 (device/transport-pci/24).
    assert.equal(r.cr(CommonCfg.QUEUE_RESET, 2), 0);
    assert.equal(r.cr(CommonCfg.QUEUE_ENABLE, 2), 0);
    r.drv.reset();
  });

  it('device/transport-mmio/11: QueueReset stays 1 while the reset is ongoing, and QueueReady cannot be set until it reads 0', async () => {
    const r = mmioRig();
    const dev = r.dev as HeldResetDevice;
    const p = payload(40, 4);
    assert.deepEqual(roundTrip(r.mem, r.dma, r.drv.queue(0), () => r.drv.kick(0), p).data, p);
    r.t.write(MmioReg.QUEUE_SEL, 4, 0);
    r.t.write(MmioReg.QUEUE_RESET, 4, 1);
    assert.deepEqual(dev.queueResets, [0]);
    assert.equal(r.core().queue(0), null);
    for (let i = 0; i < 5; i++) assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 1);
    await settle();
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 1);
    r.t.write(MmioReg.QUEUE_READY, 4, 1);
    assert.equal(r.t.read(MmioReg.QUEUE_READY, 4), 0, 'not enabled while the reset is ongoing');
    r.t.write(MmioReg.QUEUE_SEL, 4, 1);
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 0, 'another queue is not affected');
    r.t.write(MmioReg.QUEUE_SEL, 4, 0);
    dev.release();
    await settle();
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 0);
    assert.equal(r.t.read(MmioReg.QUEUE_READY, 4), 0);
    r.drv.reset();
  });

  it('a device reset ends an ongoing queue reset; a late teardown of the old one does not end a new one', async () => {
    const r = mmioRig();
    const dev = r.dev as HeldResetDevice;
    r.t.write(MmioReg.QUEUE_SEL, 4, 1);
    r.t.write(MmioReg.QUEUE_RESET, 4, 1);
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 1);
    r.drv.reset();
    r.t.write(MmioReg.QUEUE_SEL, 4, 1);
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 0, 'device reset: nothing ongoing');
    // Initialized again, a new reset of the same queue is ongoing; the old teardown settling
    // late does not end it.
    const again = VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE), queueSizes: [32] });
    const firstTeardown = dev.takePending();
    r.t.write(MmioReg.QUEUE_SEL, 4, 1);
    r.t.write(MmioReg.QUEUE_RESET, 4, 1);
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 1);
    firstTeardown?.();
    await settle();
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 1, 'the new reset is still ongoing');
    dev.release();
    await settle();
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 0);
    again.reset();
  });
});

describe('4.2.2 MMIO: stopping a queue with QueueReady', () => {
  it('driver/transport-mmio/11: to stop a queue the driver writes 0 to QueueReady and reads it back (until 0)', () => {
    const r = mmioRig(new EchoDevice({ queues: [64, 64] }));
    const p = payload(24, 5);
    assert.deepEqual(roundTrip(r.mem, r.dma, r.drv.queue(1), () => r.drv.kick(1), p).data, p);
    // The device takes two reads to present 0: the driver keeps reading.
    let late = 2;
    r.w.onRead = (off, _w, v) => (off === MmioReg.QUEUE_READY && late-- > 0 ? 1 : v);
    r.w.clear();
    r.d.stopQueue(1);
    const log = r.w.log;
    const wIdx = log.findIndex((a) => a.op === 'w' && a.off === MmioReg.QUEUE_READY);
    assert.ok(wIdx > 0);
    assert.deepEqual(log[wIdx - 1], { op: 'w', off: MmioReg.QUEUE_SEL, width: 4, value: 1 });
    assert.equal(log[wIdx]!.value, 0);
    const reads = log.slice(wIdx + 1).filter((a) => a.op === 'r' && a.off === MmioReg.QUEUE_READY);
    assert.deepEqual(reads.map((a) => a.value), [1, 1, 0]);
    assert.equal(r.core().queue(1), null, 'the device stopped the queue');
    // A device that never presents 0: the driver does not claim the queue stopped.
    const s = mmioRig(new EchoDevice({ queues: [64, 64] }));
    s.w.onRead = (off, _w, v) => (off === MmioReg.QUEUE_READY ? 1 : v);
    assert.throws(() => s.d.stopQueue(0), /still ready/);
    s.w.onRead = null;
    s.drv.reset();
    r.w.onRead = null;
    r.drv.reset();
  });
});
