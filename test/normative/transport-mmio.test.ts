/**
 * Normative statements of 4.2 (Virtio Over MMIO) proven against the real DeviceCore and the
 * library's MMIO driver transport, with every register access between the two recorded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { BlkDriver } from '../../src/devices/blk/blk-driver.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { createDriverQueue } from '../../src/driver/create-queue.js';
import { splitRingLayout } from '../../src/queue/split-layout.js';
import { BlkF } from '../../src/spec/blk.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { type BadAccessReport, LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { MmioDeviceTransport } from '../../src/transport/mmio/mmio-device.js';
import { MmioDriverTransport } from '../../src/transport/mmio/mmio-driver.js';
import { MMIO_MAGIC, MmioInterrupt, MmioReg } from '../../src/transport/mmio/registers.js';
import { RecordingWindow, blkFieldAccessProblem, roundTrip } from './rig.js';

const MEM = 4 << 20;
const DMA_BASE = 0x10_0000;
const ALL = (1n << 128n) - 1n;

function deviceOnly(dev: EchoDevice) {
  const mem = GuestMemory.allocate(MEM);
  const cores: DeviceCore[] = [];
  const t = new MmioDeviceTransport(new LoopbackBus(mem), deviceCoreFactory(dev, mem, {}, cores));
  return { mem, t, core: cores[0]! };
}

function rig<D extends EchoDevice | BlkDevice = EchoDevice>(given?: D) {
  const dev = (given ?? new EchoDevice({ queues: [64, 64] })) as D;
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const bad: BadAccessReport[] = [];
  const t = new MmioDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores), { onBadAccess: (b) => bad.push(b) });
  const w = new RecordingWindow(t);
  const d = new MmioDriverTransport(w, mem);
  bus.onIrq = () => d.handleInterrupt();
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  return { mem, bus, t, w, d, dev, core: cores[0]!, bad, dma };
}

function start(r: ReturnType<typeof rig>, wanted = ALL & ~F.RING_PACKED): VirtioDriver {
  return VirtioDriver.initSync(r.d, { wantedFeatures: wanted, dma: r.dma, queueSizes: [32] });
}

function payload(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed) & 0xff;
  return b;
}

describe('4.2 MMIO: queue reset (RING_RESET)', () => {
  it('device/transport-mmio/9, 10, 12: QueueReset reads 0 once enabled; writing 1 resets the queue; then QueueReset and QueueReady read 0', () => {
    const r = rig();
    const drv = start(r);
    assert.ok((drv.features & F.RING_RESET) !== 0n);
    const q0 = drv.queue(0);
    const p = payload(40, 1);
    assert.deepEqual(roundTrip(r.mem, r.dma, q0, () => drv.kick(0), p).data, p);
    // device/transport-mmio/9: enabled with QueueReady, QueueReset presents 0.
    r.t.write(MmioReg.QUEUE_SEL, 4, 0);
    assert.equal(r.t.read(MmioReg.QUEUE_READY, 4), 1);
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 0);
    assert.ok(r.core.queue(0), 'the device queue is live');
    // device/transport-mmio/10: writing 1 resets the queue (the device forgets it).
    r.t.write(MmioReg.QUEUE_RESET, 4, 1);
    assert.deepEqual(r.dev.queueResets, [0]);
    assert.equal(r.core.queue(0), null);
    // device/transport-mmio/12: completed, both registers read 0.
    assert.equal(r.t.read(MmioReg.QUEUE_RESET, 4), 0);
    assert.equal(r.t.read(MmioReg.QUEUE_READY, 4), 0);
    // The other queue is untouched.
    r.t.write(MmioReg.QUEUE_SEL, 4, 1);
    assert.equal(r.t.read(MmioReg.QUEUE_READY, 4), 1);
    // A notification for the reset queue reaches nothing.
    const served = r.dev.served;
    r.t.write(MmioReg.QUEUE_NOTIFY, 4, 0);
    assert.equal(r.dev.served, served);
    assert.equal(r.bad.length, 1);
    assert.equal(r.bad[0]!.offset, MmioReg.QUEUE_NOTIFY);
    drv.reset();
  });

  it('driver/transport-mmio/14: the driver does not consider the queue reset complete until QueueReset reads back 0', () => {
    const r = rig();
    const drv = start(r);
    let busy = 3;
    r.w.onRead = (off, _w, v) => (off === MmioReg.QUEUE_RESET && busy-- > 0 ? 1 : v);
    r.w.clear();
    r.d.resetQueue(1);
    const resetReads = r.w.log.filter((a) => a.op === 'r' && a.off === MmioReg.QUEUE_RESET);
    assert.deepEqual(
      resetReads.map((a) => a.value),
      [1, 1, 1, 0],
    );
    // A reset that never completes is reported, not assumed.
    r.w.onRead = (off, _w, v) => (off === MmioReg.QUEUE_RESET ? 1 : v);
    assert.throws(() => r.d.resetQueue(0), { code: 'TIMEOUT' });
    r.w.onRead = null;
    drv.reset();
  });

  it('driver/transport-mmio/15, 16: after a queue reset the driver re-enables the queue with a different size and ring addresses', () => {
    const r = rig();
    const drv = start(r);
    r.d.resetQueue(0);
    assert.equal(r.core.queue(0), null);
    const size = 16;
    const base = r.dma.alloc(splitRingLayout(size, 0).total, 4096);
    const a = splitRingLayout(size, base);
    assert.notEqual(a.descAddr, r.core.queueConfig(1)!.descAddr);
    r.mem.fill(a.descAddr, a.deviceAddr + 4096 - a.descAddr);
    r.d.setupQueue(0, { size, descAddr: a.descAddr, driverAddr: a.driverAddr, deviceAddr: a.deviceAddr });
    const cfg = r.core.queueConfig(0)!;
    assert.equal(cfg.size, size);
    assert.equal(cfg.descAddr, a.descAddr);
    assert.equal(cfg.driverAddr, a.driverAddr);
    assert.equal(cfg.deviceAddr, a.deviceAddr);
    assert.ok(r.core.queue(0), 'the device uses the re-enabled queue at once');
    const q = createDriverQueue<number>(r.mem, { size, descAddr: a.descAddr, driverAddr: a.driverAddr, deviceAddr: a.deviceAddr, features: drv.features, littleEndian: true, index: 0 });
    const p = payload(24, 9);
    const got = roundTrip(r.mem, r.dma, q, () => (q.kick() ? r.d.notify(0, q.notificationData()) : undefined), p);
    assert.equal(got.len, p.length);
    assert.deepEqual(got.data, p);
    drv.reset();
  });
});

describe('4.2.3 MMIO driver requirements', () => {
  it('driver/transport-mmio/17, 18: discovery reads MagicValue and Version first; DeviceID 0 aborts with no further access', () => {
    const r = deviceOnly(new EchoDevice({ deviceId: 0 }));
    const w = new RecordingWindow(r.t);
    assert.throws(() => new MmioDriverTransport(w, r.mem), { code: 'TRANSPORT_BAD_ACCESS' });
    assert.deepEqual(
      w.log.map((a) => [a.op, a.off]),
      [
        ['r', MmioReg.MAGIC_VALUE],
        ['r', MmioReg.VERSION],
        ['r', MmioReg.DEVICE_ID],
      ],
    );
    // With a real device id the same three reads come first.
    const ok = rig();
    const w2 = new RecordingWindow(ok.t);
    const d2 = new MmioDriverTransport(w2, ok.mem);
    assert.equal(d2.deviceId, 0x3f);
    assert.deepEqual(
      w2.log.slice(0, 3).map((a) => a.off),
      [MmioReg.MAGIC_VALUE, MmioReg.VERSION, MmioReg.DEVICE_ID],
    );
  });

  it('driver/transport-mmio/5: a device whose Version is not 2 (nor the legacy 1) is ignored', () => {
    for (const version of [0, 3, 0x100]) {
      const r = deviceOnly(new EchoDevice());
      const w = new RecordingWindow(r.t);
      w.onRead = (off, _w, v) => (off === MmioReg.VERSION ? version : v);
      assert.throws(() => new MmioDriverTransport(w, r.mem), { code: 'TRANSPORT_BAD_ACCESS' });
      // Ignored: nothing after the Version read, the device state is untouched.
      assert.deepEqual(
        w.log.map((a) => a.off),
        [MmioReg.MAGIC_VALUE, MmioReg.VERSION],
      );
      assert.equal(r.core.status, 0);
    }
    const r = rig();
    const w = new RecordingWindow(r.t);
    w.onRead = (off, _w, v) => (off === MmioReg.MAGIC_VALUE ? MMIO_MAGIC ^ 1 : v);
    assert.throws(() => new MmioDriverTransport(w, r.mem), { code: 'TRANSPORT_BAD_ACCESS' });
    assert.equal(w.log.length, 1);
  });

  it('driver/transport-mmio/7, 8: every DeviceFeatures read and DriverFeatures write is preceded by a write of its select register', () => {
    const r = rig();
    r.w.clear();
    const drv = start(r);
    let devSel = -1;
    let drvSel = -1;
    const devSels: number[] = [];
    const drvSels: number[] = [];
    for (const a of r.w.log) {
      if (a.op === 'w' && a.off === MmioReg.DEVICE_FEATURES_SEL) devSel = a.value;
      if (a.op === 'w' && a.off === MmioReg.DRIVER_FEATURES_SEL) drvSel = a.value;
      if (a.off === MmioReg.DEVICE_FEATURES) {
        assert.equal(a.op, 'r');
        assert.notEqual(devSel, -1, 'DeviceFeaturesSel written before DeviceFeatures is read');
        devSels.push(devSel);
      }
      if (a.off === MmioReg.DRIVER_FEATURES) {
        assert.equal(a.op, 'w');
        assert.notEqual(drvSel, -1, 'DriverFeaturesSel written before DriverFeatures');
        drvSels.push(drvSel);
      }
    }
    assert.deepEqual(devSels, [0, 1]);
    assert.deepEqual(drvSels, [0, 1]);
    // The words went where the select said: the device negotiated what the driver accepted.
    assert.equal(r.core.negotiatedFeatures, drv.features);
    assert.ok((drv.features & F.VERSION_1) !== 0n);
    drv.reset();
  });

  it('driver/transport-mmio/20: initialization follows 3.1.1 (reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK re-read, queues, DRIVER_OK)', () => {
    const r = rig();
    r.w.clear();
    const drv = start(r);
    const log = r.w.log;
    const statusWrites = log.filter((a) => a.op === 'w' && a.off === MmioReg.STATUS).map((a) => a.value);
    const A = Status.ACKNOWLEDGE;
    const D = Status.DRIVER;
    const FO = Status.FEATURES_OK;
    const DO = Status.DRIVER_OK;
    assert.deepEqual(statusWrites, [0, A, A | D, A | D | FO, A | D | FO | DO]);
    const idx = (pred: (a: (typeof log)[number]) => boolean): number => log.findIndex(pred);
    const lastIdx = (pred: (a: (typeof log)[number]) => boolean): number => {
      for (let i = log.length - 1; i >= 0; i--) if (pred(log[i]!)) return i;
      return -1;
    };
    const iDriver = idx((a) => a.op === 'w' && a.off === MmioReg.STATUS && a.value === (A | D));
    const iFeatOk = idx((a) => a.op === 'w' && a.off === MmioReg.STATUS && a.value === (A | D | FO));
    const iDrvOk = idx((a) => a.op === 'w' && a.off === MmioReg.STATUS && (a.value & DO) !== 0);
    const iFirstFeatRead = idx((a) => a.off === MmioReg.DEVICE_FEATURES);
    const iLastFeatWrite = lastIdx((a) => a.off === MmioReg.DRIVER_FEATURES);
    const iReread = log.findIndex((a, i) => i > iFeatOk && a.op === 'r' && a.off === MmioReg.STATUS);
    const iFirstReady = idx((a) => a.op === 'w' && a.off === MmioReg.QUEUE_READY);
    // Reset completes (status reads 0) before ACKNOWLEDGE.
    const iAck = idx((a) => a.op === 'w' && a.off === MmioReg.STATUS && a.value === A);
    assert.ok(log.slice(0, iAck).some((a) => a.op === 'r' && a.off === MmioReg.STATUS && a.value === 0));
    assert.ok(iDriver < iFirstFeatRead && iFirstFeatRead < iLastFeatWrite && iLastFeatWrite < iFeatOk);
    assert.ok(iFeatOk < iReread && iReread < iFirstReady && iFirstReady < iDrvOk);
    assert.equal(log[iReread]!.value & FO, FO);
    assert.ok(r.core.active);
    drv.reset();
  });

  it('driver/transport-mmio/12, 13: undefined InterruptStatus bits are ignored; InterruptACK carries exactly the handled events', () => {
    const r = rig();
    const drv = start(r);
    const seen: string[] = [];
    drv.onUsed(0, () => seen.push('u0'));
    drv.onUsed(1, () => seen.push('u1'));
    drv.onConfigChange(() => seen.push('c'));
    r.w.onRead = (off, _w, v) => (off === MmioReg.INTERRUPT_STATUS && v !== 0 ? v | 0xffff_fff0 : v);
    r.w.clear();
    r.t.usedBuffer(0);
    assert.deepEqual(seen, ['u0', 'u1']);
    assert.deepEqual(
      r.w.log.filter((a) => a.op === 'w').map((a) => [a.off, a.value]),
      [[MmioReg.INTERRUPT_ACK, MmioInterrupt.USED_BUFFER]],
    );
    assert.equal(r.t.interruptStatusValue, 0);
    assert.equal(r.bus.irqLevel, false);
    seen.length = 0;
    r.w.clear();
    r.t.configChange();
    assert.deepEqual(seen, ['c']);
    assert.deepEqual(
      r.w.log.filter((a) => a.op === 'w').map((a) => [a.off, a.value]),
      [[MmioReg.INTERRUPT_ACK, MmioInterrupt.CONFIG_CHANGE]],
    );
    // Only undefined bits set: nothing is handled and nothing acknowledged.
    seen.length = 0;
    r.w.clear();
    r.w.onRead = (off, _w, v) => (off === MmioReg.INTERRUPT_STATUS ? v | 0x8000_0004 : v);
    r.d.handleInterrupt();
    assert.deepEqual(seen, []);
    assert.equal(r.w.log.filter((a) => a.op === 'w').length, 0);
    r.w.onRead = null;
    drv.reset();
  });

  it('driver/transport-mmio/22: a used buffer notification bit is taken as a notification for every active queue', () => {
    const r = rig(new EchoDevice({ queues: [32, 32, 32] }));
    const drv = VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [32], numQueues: 2 });
    const seen: number[] = [];
    drv.onUsed(0, () => seen.push(0));
    drv.onUsed(1, () => seen.push(1));
    r.t.usedBuffer(1);
    assert.deepEqual(seen.sort(), [0, 1]);
    // After a queue reset, that queue is no longer active and gets no notification.
    seen.length = 0;
    r.d.resetQueue(0);
    r.t.usedBuffer(1);
    assert.deepEqual(seen, [1]);
    drv.reset();
  });

  it('driver/transport-mmio/19: a driver not expecting shared memory never touches the shared memory registers', () => {
    const r = rig();
    r.w.clear();
    const drv = start(r);
    const p = payload(100, 3);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
    drv.readConfig(0, 16);
    drv.resetQueue(1);
    drv.reset();
    const shm = [MmioReg.SHM_SEL, MmioReg.SHM_LEN_LOW, MmioReg.SHM_LEN_HIGH, MmioReg.SHM_BASE_LOW, MmioReg.SHM_BASE_HIGH];
    assert.ok(r.w.log.length > 40);
    assert.deepEqual(
      r.w.log.filter((a) => shm.includes(a.off as (typeof shm)[number])),
      [],
    );
  });

  it('driver/transport-mmio/3: device configuration fields are accessed with their own width (blk driver: read, config change, writeback write)', () => {
    const blk = new BlkDevice(new MemoryBackend(64 * 512), { writeback: true });
    const r = rig(blk);
    const vd = start(r);
    r.w.clear();
    const drv = new BlkDriver(vd.context);
    assert.ok((vd.features & BlkF.CONFIG_WCE) !== 0n);
    assert.equal(drv.capacity, 64);
    drv.setWriteback(false);
    assert.equal(drv.config.writeback, 0);
    r.core.configChanged();
    const cfg = r.w.log.filter((a) => a.off >= MmioReg.CONFIG);
    assert.ok(cfg.some((a) => a.op === 'w'));
    assert.ok(cfg.length > 20);
    assert.deepEqual(
      cfg.map((a) => blkFieldAccessProblem(a.off - MmioReg.CONFIG, a.width)).filter((x) => x !== null),
      [],
    );
    // The generic driver too: a u32 and a u64 field of the echo device's configuration.
    const e = rig();
    const ve = start(e);
    e.w.clear();
    ve.readConfig(0, 4);
    ve.readConfig(8, 8);
    assert.deepEqual(
      e.w.log.filter((a) => a.off >= MmioReg.CONFIG).map((a) => [a.off - MmioReg.CONFIG, a.width]),
      [
        [0, 4],
        [8, 4],
        [12, 4],
      ],
    );
    vd.reset();
    ve.reset();
  });
});
