import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GuestMemory } from '../../memory/guest-memory.js';
import { F } from '../../spec/features.js';
import { legacySplitLayout } from '../../spec/ring.js';
import { Status } from '../../spec/status.js';
import { BadAccess, type BadAccessReport, LoopbackBus } from '../bus.js';
import { TestCore, stubDevice } from '../test-core.js';
import { MmioDeviceTransport, type MmioDeviceOptions } from './mmio-device.js';
import { MmioDriverTransport } from './mmio-driver.js';
import { MMIO_MAGIC, MmioReg } from './registers.js';

function setup(opts: MmioDeviceOptions = {}, dev = stubDevice()) {
  const mem = GuestMemory.allocate(1 << 20);
  const bus = new LoopbackBus(mem);
  const cores: TestCore[] = [];
  const bad: BadAccessReport[] = [];
  const t = new MmioDeviceTransport(bus, TestCore.factory(dev, mem, cores), { ...opts, onBadAccess: (b) => bad.push(b) });
  return { mem, bus, t, core: cores[0]!, bad, dev };
}

function negotiate(t: MmioDeviceTransport, features: bigint): void {
  t.write(MmioReg.STATUS, 4, Status.ACKNOWLEDGE | Status.DRIVER);
  t.write(MmioReg.DRIVER_FEATURES_SEL, 4, 0);
  t.write(MmioReg.DRIVER_FEATURES, 4, Number(features & 0xffffffffn));
  t.write(MmioReg.DRIVER_FEATURES_SEL, 4, 1);
  t.write(MmioReg.DRIVER_FEATURES, 4, Number(features >> 32n));
  t.write(MmioReg.STATUS, 4, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
}

describe('MMIO device registers', () => {
  it('device/transport-mmio/1 device/transport-mmio/2: magic, version 2, device and vendor id', () => {
    const { t } = setup();
    assert.equal(t.read(MmioReg.MAGIC_VALUE, 4), MMIO_MAGIC);
    assert.equal(t.read(MmioReg.VERSION, 4), 2);
    assert.equal(t.read(MmioReg.DEVICE_ID, 4), 4);
    assert.notEqual(t.read(MmioReg.VENDOR_ID, 4), 0);
  });

  it('legacy version 1 reports 1 and hides the version 2 registers', () => {
    const { t, bad } = setup({ version: 1 });
    assert.equal(t.read(MmioReg.VERSION, 4), 1);
    assert.equal(t.read(MmioReg.QUEUE_READY, 4), 0);
    assert.equal(t.read(MmioReg.CONFIG_GENERATION, 4), 0);
    assert.deepEqual(
      bad.map((b) => b.reason),
      [BadAccess.OFFSET, BadAccess.OFFSET],
    );
  });

  it('device_feature windows follow DeviceFeaturesSel', () => {
    const { t } = setup();
    t.write(MmioReg.DEVICE_FEATURES_SEL, 4, 1);
    assert.equal(t.read(MmioReg.DEVICE_FEATURES, 4), Number((F.VERSION_1 | F.RING_RESET | F.NOTIFICATION_DATA) >> 32n));
    t.write(MmioReg.DEVICE_FEATURES_SEL, 4, 7);
    assert.equal(t.read(MmioReg.DEVICE_FEATURES, 4), 0);
  });

  it('QueueSize above QueueSizeMax is refused; QueueSizeMax is 0 for absent queues', () => {
    const { t, core, bad } = setup();
    t.write(MmioReg.QUEUE_SEL, 4, 1);
    assert.equal(t.read(MmioReg.QUEUE_SIZE_MAX, 4), 128);
    t.write(MmioReg.QUEUE_SIZE, 4, 256);
    assert.equal(core.queueRegisters(1)!.size, 128);
    assert.equal(bad.at(-1)!.reason, BadAccess.VALUE);
    t.write(MmioReg.QUEUE_SEL, 4, 2);
    assert.equal(t.read(MmioReg.QUEUE_SIZE_MAX, 4), 0);
    t.write(MmioReg.QUEUE_SIZE, 4, 8);
    assert.equal(bad.at(-1)!.reason, BadAccess.NO_QUEUE);
  });

  it('queue registers collect 64-bit addresses and QueueReady enables the queue', () => {
    const { t, core } = setup();
    negotiate(t, F.VERSION_1);
    t.write(MmioReg.QUEUE_SEL, 4, 0);
    t.write(MmioReg.QUEUE_SIZE, 4, 64);
    t.write(MmioReg.QUEUE_DESC_LOW, 4, 0x1000);
    t.write(MmioReg.QUEUE_DESC_HIGH, 4, 1);
    t.write(MmioReg.QUEUE_DRIVER_LOW, 4, 0x2000);
    t.write(MmioReg.QUEUE_DEVICE_LOW, 4, 0x3000);
    t.write(MmioReg.QUEUE_READY, 4, 1);
    const r = core.queueRegisters(0)!;
    assert.equal(r.size, 64);
    assert.equal(r.descAddr, 0x1_0000_1000);
    assert.equal(r.driverAddr, 0x2000);
    assert.equal(r.deviceAddr, 0x3000);
    assert.equal(t.read(MmioReg.QUEUE_READY, 4), 1);
    assert.deepEqual(core.enabled, [0]);
  });

  it('queue fields are frozen while QueueReady is set', () => {
    const { t, core, bad } = setup();
    negotiate(t, F.VERSION_1);
    t.write(MmioReg.QUEUE_READY, 4, 1);
    t.write(MmioReg.QUEUE_SIZE, 4, 2);
    t.write(MmioReg.QUEUE_DESC_LOW, 4, 0x5000);
    assert.equal(core.queueRegisters(0)!.size, 256);
    assert.equal(core.queueRegisters(0)!.descAddr, 0);
    assert.deepEqual(
      bad.map((b) => b.reason),
      [BadAccess.QUEUE_ENABLED, BadAccess.QUEUE_ENABLED],
    );
  });

  it('device/transport-mmio/7: a notification for a queue that is not ready does not reach the device', () => {
    const { t, core, bad } = setup();
    negotiate(t, F.VERSION_1);
    t.write(MmioReg.QUEUE_NOTIFY, 4, 0);
    t.write(MmioReg.QUEUE_NOTIFY, 4, 9);
    assert.deepEqual(core.notifications, []);
    assert.deepEqual(
      bad.map((b) => b.reason),
      [BadAccess.QUEUE_DISABLED, BadAccess.NO_QUEUE],
    );
    t.write(MmioReg.QUEUE_READY, 4, 1);
    t.write(MmioReg.QUEUE_NOTIFY, 4, 0);
    assert.deepEqual(core.notifications, [{ index: 0, data: undefined }]);
  });

  it('NOTIFICATION_DATA passes the whole 32-bit value', () => {
    const { t, core } = setup();
    negotiate(t, F.VERSION_1 | F.NOTIFICATION_DATA);
    t.write(MmioReg.QUEUE_SEL, 4, 1);
    t.write(MmioReg.QUEUE_READY, 4, 1);
    t.write(MmioReg.QUEUE_NOTIFY, 4, 0x8005_0001);
    assert.deepEqual(core.notifications, [{ index: 1, data: 0x8005_0001 }]);
  });

  it('device/transport-mmio/3 device/transport-mmio/4: InterruptStatus holds events until acknowledged', () => {
    const { t, bus } = setup();
    assert.equal(t.read(MmioReg.INTERRUPT_STATUS, 4), 0);
    t.usedBuffer(0);
    assert.equal(t.read(MmioReg.INTERRUPT_STATUS, 4), 1);
    assert.equal(bus.irqLevel, true);
    t.configChange();
    assert.equal(t.read(MmioReg.INTERRUPT_STATUS, 4), 3);
    t.write(MmioReg.INTERRUPT_ACK, 4, 1);
    assert.equal(t.read(MmioReg.INTERRUPT_STATUS, 4), 2);
    assert.equal(bus.irqLevel, true);
    t.write(MmioReg.INTERRUPT_ACK, 4, 0xfffffffe);
    assert.equal(t.read(MmioReg.INTERRUPT_STATUS, 4), 0);
    assert.equal(bus.irqLevel, false);
  });

  it('device/transport-mmio/5: reset clears InterruptStatus and every QueueReady', () => {
    const { t, bus, core } = setup();
    negotiate(t, F.VERSION_1);
    t.write(MmioReg.QUEUE_READY, 4, 1);
    t.usedBuffer(0);
    t.write(MmioReg.STATUS, 4, 0);
    assert.equal(t.read(MmioReg.INTERRUPT_STATUS, 4), 0);
    assert.equal(t.read(MmioReg.QUEUE_READY, 4), 0);
    assert.equal(t.read(MmioReg.STATUS, 4), 0);
    assert.equal(bus.irqLevel, false);
    assert.equal(core.deviceResets, 1);
  });

  it('device/transport-mmio/6: ConfigGeneration reflects the core generation', () => {
    const { t, core } = setup();
    assert.equal(t.read(MmioReg.CONFIG_GENERATION, 4), 0);
    core.configGeneration = 3;
    assert.equal(t.read(MmioReg.CONFIG_GENERATION, 4), 3);
  });

  it('device/transport-mmio/8, /9, /10, /12 (a reset completes within the write, so /11 never arises): QueueReset resets the queue and presents 0 in QueueReset and QueueReady', () => {
    const { t, core, bad } = setup();
    negotiate(t, F.VERSION_1 | F.RING_RESET);
    t.write(MmioReg.QUEUE_SEL, 4, 1);
    assert.equal(t.read(MmioReg.QUEUE_RESET, 4), 0);
    t.write(MmioReg.QUEUE_READY, 4, 1);
    assert.equal(t.read(MmioReg.QUEUE_RESET, 4), 0);
    t.write(MmioReg.QUEUE_RESET, 4, 1);
    assert.deepEqual(core.resets, [1]);
    assert.equal(t.read(MmioReg.QUEUE_RESET, 4), 0);
    assert.equal(t.read(MmioReg.QUEUE_READY, 4), 0);
    // Without RING_RESET the register does nothing.
    t.write(MmioReg.STATUS, 4, 0);
    negotiate(t, F.VERSION_1);
    t.write(MmioReg.QUEUE_READY, 4, 1);
    t.write(MmioReg.QUEUE_RESET, 4, 1);
    assert.equal(t.read(MmioReg.QUEUE_READY, 4), 1);
    assert.equal(bad.at(-1)!.reason, BadAccess.MODE);
  });

  it('shared memory registers: a region by id, all ones when absent', () => {
    const { t } = setup({ sharedMemoryBase: 0x1_2345_6000 }, stubDevice({ sharedMemoryRegions: [{ id: 2, length: 0x20_0000 }] }));
    t.write(MmioReg.SHM_SEL, 4, 2);
    assert.equal(t.read(MmioReg.SHM_LEN_LOW, 4), 0x20_0000);
    assert.equal(t.read(MmioReg.SHM_LEN_HIGH, 4), 0);
    assert.equal(t.read(MmioReg.SHM_BASE_LOW, 4), 0x2345_6000);
    assert.equal(t.read(MmioReg.SHM_BASE_HIGH, 4), 1);
    t.write(MmioReg.SHM_SEL, 4, 0);
    assert.equal(t.read(MmioReg.SHM_LEN_LOW, 4), 0xffffffff);
    assert.equal(t.read(MmioReg.SHM_LEN_HIGH, 4), 0xffffffff);
  });

  it('wrong widths and unaligned accesses are refused without side effects', () => {
    const { t, core, bad } = setup();
    assert.equal(t.read(MmioReg.MAGIC_VALUE, 2), 0);
    assert.equal(t.read(MmioReg.MAGIC_VALUE + 1, 4), 0);
    t.write(MmioReg.STATUS, 1, 1);
    t.write(MmioReg.STATUS, 8, 1);
    assert.equal(core.status, 0);
    assert.ok(bad.every((b) => b.reason === BadAccess.WIDTH));
    assert.equal(bad.length, 4);
  });

  it('read-only writes, write-only reads and undefined offsets are reported, never thrown', () => {
    const { t, bad } = setup();
    t.write(MmioReg.MAGIC_VALUE, 4, 0);
    t.write(MmioReg.INTERRUPT_STATUS, 4, 0);
    assert.equal(t.read(MmioReg.QUEUE_NOTIFY, 4), 0);
    assert.equal(t.read(0x0e8, 4), 0);
    t.write(0x0e8, 4, 1);
    assert.equal(t.read(MmioReg.MAGIC_VALUE, 4), MMIO_MAGIC);
    assert.deepEqual(
      bad.map((b) => b.reason),
      [BadAccess.READ_ONLY, BadAccess.READ_ONLY, BadAccess.WRITE_ONLY, BadAccess.OFFSET, BadAccess.OFFSET],
    );
  });

  it('device configuration space: byte, half and word accesses, bounds', () => {
    const { t, dev, bad } = setup();
    assert.equal(t.read(MmioReg.CONFIG, 1), 1);
    assert.equal(t.read(MmioReg.CONFIG + 2, 2), 0x0403);
    assert.equal(t.read(MmioReg.CONFIG + 4, 4), 0x08070605);
    assert.equal(t.read(MmioReg.CONFIG + 15, 2), 0);
    assert.equal(bad.at(-1)!.reason, BadAccess.OFFSET);
    t.write(MmioReg.CONFIG + 8, 4, 0xa1b2c3d4);
    assert.deepEqual([...dev.config.subarray(8, 12)], [0xd4, 0xc3, 0xb2, 0xa1]);
    t.write(MmioReg.CONFIG + 16, 1, 0);
    assert.equal(bad.at(-1)!.reason, BadAccess.OFFSET);
  });

  it('legacy QueuePFN: contiguous layout from GuestPageSize and QueueAlign; 0 stops the queue', () => {
    const { t, core, bad } = setup({ version: 1 });
    t.write(MmioReg.QUEUE_SEL, 4, 0);
    t.write(MmioReg.QUEUE_SIZE, 4, 16);
    t.write(MmioReg.QUEUE_PFN, 4, 3);
    assert.equal(bad.at(-1)!.reason, BadAccess.VALUE, 'no GuestPageSize yet');
    t.write(MmioReg.GUEST_PAGE_SIZE, 4, 4096);
    t.write(MmioReg.QUEUE_ALIGN, 4, 4096);
    t.write(MmioReg.QUEUE_PFN, 4, 3);
    const r = core.queueRegisters(0)!;
    const l = legacySplitLayout(16, 4096);
    assert.equal(r.descAddr, 3 * 4096);
    assert.equal(r.driverAddr, 3 * 4096 + l.avail);
    assert.equal(r.deviceAddr, 3 * 4096 + l.used);
    assert.equal(t.read(MmioReg.QUEUE_PFN, 4), 3);
    assert.equal(r.enabled, true);
    t.write(MmioReg.QUEUE_PFN, 4, 0);
    assert.equal(r.enabled, false);
    assert.equal(t.read(MmioReg.QUEUE_PFN, 4), 0);
  });

  it('legacy big-endian guests get a big-endian core', () => {
    const { core } = setup({ version: 1, guestLittleEndian: false });
    assert.deepEqual(core.mode, { legacy: true, littleEndian: false });
  });

  it('never throws for any access (property)', () => {
    const { t } = setup();
    fc.assert(
      fc.property(
        fc.array(fc.record({ off: fc.integer({ min: 0, max: 0x130 }), width: fc.constantFrom(0, 1, 2, 3, 4, 8), value: fc.integer({ min: 0, max: 0xffffffff }), write: fc.boolean() }), { maxLength: 60 }),
        (ops) => {
          for (const o of ops) {
            if (o.write) t.write(o.off, o.width, o.value);
            else assert.equal(typeof t.read(o.off, o.width), 'number');
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('MMIO driver transport', () => {
  function pair(opts: MmioDeviceOptions = {}) {
    const s = setup(opts);
    const d = new MmioDriverTransport(s.t, s.mem);
    s.bus.onIrq = () => d.handleInterrupt();
    return { ...s, d };
  }

  it('driver/transport-mmio/6: probe ignores a placeholder (DeviceID 0) without an error and without writing a register', () => {
    const zero = setup({}, stubDevice({ deviceId: 0 }));
    const writes: number[] = [];
    const watched = { read: (o: number, w: number) => zero.t.read(o, w), write: (o: number, w: number, v: number) => (writes.push(o), zero.t.write(o, w, v)) };
    assert.equal(MmioDriverTransport.probe(watched, zero.mem), null);
    assert.deepEqual(writes, [], 'nothing written to the placeholder');
    const real = setup();
    assert.equal(MmioDriverTransport.probe(real.t, real.mem)?.deviceId, 4);
    const junk = { read: () => 0x1234, write: () => {} };
    assert.throws(() => MmioDriverTransport.probe(junk, zero.mem), { code: 'TRANSPORT_BAD_ACCESS' }, 'not virtio-mmio at all: an error');
  });

  it('driver/transport-mmio/4, /5, /17, /18: discovery checks magic, version and device id', () => {
    const { d } = pair();
    assert.equal(d.deviceId, 4);
    assert.equal(d.legacy, false);
    const zero = setup({}, stubDevice({ deviceId: 0 }));
    assert.throws(() => new MmioDriverTransport(zero.t, zero.mem), { code: 'TRANSPORT_BAD_ACCESS' });
    const junk = { read: () => 0x1234, write: () => {} };
    assert.throws(() => new MmioDriverTransport(junk, zero.mem), { code: 'TRANSPORT_BAD_ACCESS' });
  });

  it('negotiates features, counts queues and sets them up', () => {
    const { d, core } = pair();
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    assert.equal(d.getDeviceFeatures(), F.VERSION_1 | F.RING_RESET | F.NOTIFICATION_DATA);
    d.setDriverFeatures(F.VERSION_1 | F.RING_RESET);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.equal(core.negotiatedFeatures, F.VERSION_1 | F.RING_RESET);
    assert.equal(d.numQueues(), 2);
    assert.equal(d.queueMaxSize(1), 128);
    d.setupQueue(1, { size: 64, descAddr: 0x1000, driverAddr: 0x2000, deviceAddr: 0x3000 });
    assert.equal(core.queueRegisters(1)!.enabled, true);
    d.notify(1);
    assert.deepEqual(core.notifications, [{ index: 1, data: undefined }]);
    d.resetQueue(1);
    assert.equal(core.queueRegisters(1)!.enabled, false);
    d.setStatus(0);
    assert.equal(d.getStatus(), 0);
  });

  it('driver/transport-mmio/21 /23: interrupts are read, acknowledged and dispatched', () => {
    const { d, t } = pair();
    const seen: string[] = [];
    d.setInterruptHandler({ used: (q) => seen.push(`u${q}`), configChange: () => seen.push('c') });
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    d.setDriverFeatures(F.VERSION_1);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    d.setupQueue(0, { size: 16, descAddr: 0x1000, driverAddr: 0x2000, deviceAddr: 0x3000 });
    t.usedBuffer(0);
    t.configChange();
    assert.deepEqual(seen, ['u0', 'c']);
    assert.equal(t.interruptStatusValue, 0);
  });

  it('legacy: features are 32 bits, queues use the PFN form', () => {
    const { d, core } = pair({ version: 1 });
    assert.equal(d.legacy, true);
    assert.equal(d.getDeviceFeatures(), 0n);
    const base = 0x4000;
    const l = legacySplitLayout(32);
    d.setupQueue(0, { size: 32, descAddr: base, driverAddr: base + l.avail, deviceAddr: base + l.used });
    const r = core.queueRegisters(0)!;
    assert.equal(r.enabled, true);
    assert.equal(r.deviceAddr, base + l.used);
    assert.throws(() => d.setupQueue(1, { size: 32, descAddr: 0x8000, driverAddr: 0x9000, deviceAddr: 0xa000 }), { code: 'INVALID_ARGUMENT' });
  });
});
