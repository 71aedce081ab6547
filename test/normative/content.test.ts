/**
 * Normative statements of the basic facilities (content.tex: 2 and 6) proven on the real
 * DeviceCore and the generic VirtioDriver, over the MMIO and PCI transports.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceCore } from '../../src/device/device-core.js';
import type { DeviceContext, InterruptSink, VirtioDevice } from '../../src/device/types.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { TransportKind, createTransportPair, deviceCoreFactory } from '../../src/transport/loopback.js';
import { MmioDeviceTransport } from '../../src/transport/mmio/mmio-device.js';
import { MmioDriverTransport } from '../../src/transport/mmio/mmio-driver.js';
import { MmioReg } from '../../src/transport/mmio/registers.js';
import { RecordingWindow, roundTrip } from './rig.js';

const MEM = 4 << 20;
const DMA_BASE = 0x10_0000;
const ALL = (1n << 128n) - 1n;
const noIrq: InterruptSink = { usedBuffer() {}, configChange() {} };

/** A device with a large configuration space (a pattern of its offsets) and one queue. */
class BigConfigDevice implements VirtioDevice {
  readonly deviceId = 0x3e;
  readonly offeredFeatures = F.VERSION_1;
  readonly queueMaxSizes = [16];
  constructor(readonly configSize: number) {}
  readConfig(offset: number, dst: Uint8Array): void {
    for (let i = 0; i < dst.length; i++) dst[i] = ((offset + i) * 7 + ((offset + i) >> 8)) & 0xff;
  }
  writeConfig(): void {}
  activate(_ctx: DeviceContext): void {}
  onQueueNotify(): void {}
  reset(): void {}
}

function mmioRig(dev: VirtioDevice) {
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const t = new MmioDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores));
  const w = new RecordingWindow(t);
  const d = new MmioDriverTransport(w, mem);
  bus.onIrq = () => d.handleInterrupt();
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  return { mem, t, w, d, core: cores[0]!, dma };
}

describe('2.5 device configuration space', () => {
  it('driver/content/12: the driver does not limit the configuration space size (MMIO and PCI, up to 4 KiB)', () => {
    for (const kind of [TransportKind.MMIO, TransportKind.PCI_MODERN]) {
      for (const size of [8, 0x100, 0xf00]) {
        const mem = GuestMemory.allocate(MEM);
        const dev = new BigConfigDevice(size);
        const pair = createTransportPair(kind, mem, deviceCoreFactory(dev, mem));
        const drv = VirtioDriver.initSync(pair.driver, { wantedFeatures: ALL, dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE), queueSizes: [16] });
        const want = new Uint8Array(size);
        dev.readConfig(0, want);
        // The whole space, and its last word, read as the device presents them.
        assert.deepEqual(drv.readConfig(0, size), want, `${kind} ${size}`);
        assert.deepEqual(drv.readConfig(size - 4, 4), want.subarray(size - 4));
        drv.reset();
      }
    }
  });
});

describe('2.6.1 virtqueue reset', () => {
  it('driver/content/14: after asking for a queue reset the driver verifies it happened before reusing the queue', () => {
    const dev = new EchoDevice({ queues: [32, 32] });
    const r = mmioRig(dev);
    const drv = VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [32] });
    const old = drv.queue(0);
    // A device that never finishes the reset: the driver reports it and does not set the queue up again.
    r.w.onRead = (off, _w, v) => (off === MmioReg.QUEUE_RESET ? 1 : v);
    r.w.clear();
    assert.throws(() => drv.resetQueue(0), { code: 'TIMEOUT' });
    assert.ok(r.w.log.some((a) => a.op === 'r' && a.off === MmioReg.QUEUE_RESET));
    assert.ok(!r.w.log.some((a) => a.op === 'w' && (a.off === MmioReg.QUEUE_READY || a.off === MmioReg.QUEUE_DESC_LOW)));
    assert.equal(drv.queue(0), old);
    // A device that completes it: the queue is set up afresh and works.
    r.w.onRead = null;
    r.w.clear();
    const fresh = drv.resetQueue(0);
    const iReset = r.w.log.findIndex((a) => a.op === 'w' && a.off === MmioReg.QUEUE_RESET);
    const iZero = r.w.log.findIndex((a, i) => i > iReset && a.op === 'r' && a.off === MmioReg.QUEUE_RESET && a.value === 0);
    const iReady = r.w.log.findIndex((a) => a.op === 'w' && a.off === MmioReg.QUEUE_READY);
    assert.ok(iReset >= 0 && iZero > iReset && iReady > iZero);
    const p = Uint8Array.from({ length: 30 }, (_, i) => i + 1);
    assert.deepEqual(roundTrip(r.mem, r.dma, fresh, () => drv.kick(0), p).data, p);
    drv.reset();
  });

  it('driver/content/15: once the queue reset succeeded the driver releases the old ring', () => {
    const r = mmioRig(new EchoDevice({ queues: [32, 32] }));
    const drv = VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [32] });
    const free = r.dma.freeBytes;
    const oldDesc = r.core.queueConfig(1)!.descAddr;
    for (let i = 0; i < 5; i++) drv.resetQueue(1);
    // Five resets, and no ring memory lost: the old rings went back to the allocator (and the
    // first-fit allocator handed the same place out again).
    assert.equal(r.dma.freeBytes, free);
    assert.equal(r.core.queueConfig(1)!.descAddr, oldDesc);
    drv.reset();
  });
});

describe('2.1 / 2.2 / 6 status and feature bits', () => {
  it('device/content/13: the device ignores the SUSPEND bit before it is initialized (a device without suspend hooks: not offered either)', () => {
    const mem = GuestMemory.allocate(MEM);
    const dev = new EchoDevice({ transportFeatures: F.VERSION_1 | F.SUSPEND });
    const core = new DeviceCore(dev, { memory: mem, interrupts: noIrq });
    assert.equal(core.deviceFeatures() & F.SUSPEND, 0n);
    core.setStatus(Status.ACKNOWLEDGE | Status.SUSPEND);
    assert.equal(core.status, Status.ACKNOWLEDGE);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.SUSPEND);
    assert.equal(core.status & Status.SUSPEND, 0);
    core.setDriverFeatures(F.VERSION_1);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.SUSPEND);
    assert.equal(core.status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.equal(dev.activations, 0);
  });

  it('device/content/27: a device that is not a PCI device with an SR-IOV capability never offers VIRTIO_F_SR_IOV', () => {
    const mem = GuestMemory.allocate(MEM);
    const dev = new EchoDevice({ transportFeatures: F.VERSION_1 | F.SR_IOV | F.RING_RESET });
    const core = new DeviceCore(dev, { memory: mem, interrupts: noIrq });
    assert.equal(core.deviceFeatures() & F.SR_IOV, 0n);
    assert.ok((core.deviceFeatures() & F.RING_RESET) !== 0n);
    for (const kind of [TransportKind.MMIO, TransportKind.PCI_MODERN, TransportKind.CCW_REV2]) {
      const pair = createTransportPair(kind, mem, deviceCoreFactory(dev, mem), { ccwScratch: { addr: 0xf000, size: 4096 } });
      pair.driver.setStatus(0);
      pair.driver.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
      assert.equal(pair.driver.getDeviceFeatures() & F.SR_IOV, 0n, kind);
    }
  });

  it('driver/content/33, 35, 36: the driver accepts ACCESS_PLATFORM, RING_PACKED and ORDER_PLATFORM when offered', () => {
    const dev = new EchoDevice({ transportFeatures: F.VERSION_1 | F.ACCESS_PLATFORM | F.RING_PACKED | F.ORDER_PLATFORM });
    const r = mmioRig(dev);
    const drv = VirtioDriver.initSync(r.d, { wantedFeatures: ALL, dma: r.dma, queueSizes: [16] });
    const want = F.VERSION_1 | F.ACCESS_PLATFORM | F.RING_PACKED | F.ORDER_PLATFORM;
    assert.equal(drv.features & want, want);
    assert.equal(r.core.negotiatedFeatures & want, want);
    // The rings are packed and work (the driver passes guest addresses: no IOMMU to program).
    assert.equal(drv.queue(0).packed, true);
    const p = Uint8Array.from({ length: 50 }, (_, i) => 255 - i);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
    drv.reset();
  });

  it('driver/content/39: the driver never negotiates VIRTIO_F_SR_IOV, even when a (non-PCI) device offers it', () => {
    const r = mmioRig(new EchoDevice());
    // Make the device appear to offer SR_IOV (bit 37: word 1, bit 5).
    r.w.onRead = (off, _w, v) => (off === MmioReg.DEVICE_FEATURES && r.t.read(MmioReg.STATUS, 4) !== 0 ? v | (lastSel === 1 ? 1 << 5 : 0) : v);
    let lastSel = 0;
    const inner = r.w.write.bind(r.w);
    r.w.write = (off, width, value) => {
      if (off === MmioReg.DEVICE_FEATURES_SEL) lastSel = value;
      inner(off, width, value);
    };
    assert.ok((r.d.getDeviceFeatures() & F.SR_IOV) === 0n, 'before ACKNOWLEDGE the stand-in does not alter features');
    r.w.clear();
    const drv = VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
    assert.ok(r.w.log.some((a) => a.op === 'r' && a.off === MmioReg.DEVICE_FEATURES && (a.value & (1 << 5)) !== 0), 'SR_IOV was offered');
    assert.equal(drv.features & F.SR_IOV, 0n);
    const hiWrites = r.w.log.filter((a) => a.op === 'w' && a.off === MmioReg.DRIVER_FEATURES);
    assert.equal(hiWrites.length, 2);
    assert.equal(hiWrites[1]!.value & (1 << 5), 0);
    drv.reset();
  });

  it('driver/content/25: the driver never sets SUSPEND (it is not negotiated): not in initialization, queue reset, config change nor reset', () => {
    const dev = new EchoDevice({ queues: [32, 32] });
    const r = mmioRig(dev);
    const drv = VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [32] });
    assert.equal(drv.features & F.SUSPEND, 0n);
    drv.onNeedsReset(() => {});
    dev.bumpConfig();
    drv.resetQueue(1);
    const p = Uint8Array.from({ length: 9 }, (_, i) => i);
    roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p);
    r.core.setNeedsReset('test');
    drv.reset();
    const writes = r.w.log.filter((a) => a.op === 'w' && a.off === MmioReg.STATUS);
    assert.ok(writes.length >= 5);
    assert.deepEqual(
      writes.filter((a) => (a.value & Status.SUSPEND) !== 0),
      [],
    );
  });
});
