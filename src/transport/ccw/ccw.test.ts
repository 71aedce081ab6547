import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GuestMemory } from '../../memory/guest-memory.js';
import { F } from '../../spec/features.js';
import { legacySplitLayout } from '../../spec/ring.js';
import { Status } from '../../spec/status.js';
import { BadAccess, type BadAccessReport, LoopbackBus } from '../bus.js';
import { TestCore, stubDevice } from '../test-core.js';
import { CcwDeviceTransport, type CcwDeviceOptions } from './ccw-device.js';
import { CcwDriverTransport } from './ccw-driver.js';
import { CCW_CONTROL_UNIT_TYPE, CcwCmd, CcwFlag, CcwStatus } from './constants.js';

const D = 0x1000; // CCW data buffer
const IND = 0x2000;

function setup(opts: CcwDeviceOptions = {}, dev = stubDevice()) {
  const mem = GuestMemory.allocate(1 << 20);
  const bus = new LoopbackBus(mem);
  const cores: TestCore[] = [];
  const bad: BadAccessReport[] = [];
  const t = new CcwDeviceTransport(bus, TestCore.factory(dev, mem, cores), { ...opts, onBadAccess: (b) => bad.push(b) });
  const core = () => cores.at(-1)!;
  const run = (cmd: number, count: number, flags = 0) => t.execute(cmd, D, count, flags).status;
  const setRev = (rev: number, len = 0) => {
    mem.writeU16(D, rev, false);
    mem.writeU16(D + 2, len, false);
    return run(CcwCmd.SET_VIRTIO_REV, 4 + len);
  };
  return { mem, bus, t, cores, core, bad, dev, run, setRev };
}

describe('CCW revision negotiation', () => {
  it('the device presents control unit type 0x3832, model = device id', () => {
    const { t } = setup();
    assert.equal(t.controlUnitType, CCW_CONTROL_UNIT_TYPE);
    assert.equal(t.controlUnitModel, 4);
  });

  it('device/transport-ccw/5 /6 /9: unsupported revisions, data with revision 2, and a second SET_VIRTIO_REV are rejected', () => {
    const { setRev, t } = setup({ maxRevision: 1 });
    assert.equal(setRev(2), CcwStatus.COMMAND_REJECT);
    assert.equal(setRev(1, 4), CcwStatus.COMMAND_REJECT);
    assert.equal(setRev(1), CcwStatus.OK);
    assert.equal(t.revision, 1);
    assert.equal(setRev(1), CcwStatus.COMMAND_REJECT);
    assert.equal(setRev(0), CcwStatus.COMMAND_REJECT);
    assert.equal(t.revision, 1);
  });

  it('device/transport-ccw/7 driver/transport-ccw/8: a non-transitional device rejects revision 0 and revision-less commands', () => {
    const { setRev, run, mem } = setup({ transitional: false });
    assert.equal(setRev(0), CcwStatus.COMMAND_REJECT);
    mem.writeU8(D + 4, 0);
    assert.equal(run(CcwCmd.READ_FEAT, 5), CcwStatus.COMMAND_REJECT);
    assert.equal(setRev(2), CcwStatus.OK);
  });

  it('driver/transport-ccw/9 /10: a transitional device treats a revision-less command as revision 0 and then rejects SET_VIRTIO_REV', () => {
    const { setRev, run, mem, t, core } = setup();
    mem.writeU8(D + 4, 0);
    assert.equal(run(CcwCmd.READ_FEAT, 5), CcwStatus.OK);
    assert.equal(t.revision, 0);
    assert.deepEqual(core().mode, { legacy: true, littleEndian: false });
    assert.equal(setRev(2), CcwStatus.COMMAND_REJECT);
  });

  it('device/transport-ccw/10: enabling the subchannel unsets the revision', () => {
    const { setRev, t } = setup();
    assert.equal(setRev(2), CcwStatus.OK);
    t.enableSubchannel();
    assert.equal(t.revision, -1);
    assert.equal(setRev(1), CcwStatus.OK);
  });

  it('device/transport-ccw/1: unknown commands get a command reject', () => {
    const { run, bad } = setup();
    assert.equal(run(0x04, 8), CcwStatus.COMMAND_REJECT);
    assert.equal(run(0xff, 0), CcwStatus.COMMAND_REJECT);
    assert.equal(bad.at(-1)!.reason, BadAccess.OFFSET);
  });

  it('device/transport-ccw/8: READ_STATUS before revision 2 is rejected', () => {
    const { setRev, run } = setup();
    setRev(1);
    assert.equal(run(CcwCmd.READ_STATUS, 1), CcwStatus.COMMAND_REJECT);
  });
});

describe('CCW commands', () => {
  it('device/transport-ccw/2 /3 /4: length checks with and without SLI', () => {
    const { setRev, run, mem, t } = setup();
    setRev(2);
    mem.writeU8(D + 4, 0);
    assert.equal(run(CcwCmd.READ_FEAT, 4), CcwStatus.INCORRECT_LENGTH);
    assert.equal(run(CcwCmd.READ_FEAT, 8), CcwStatus.INCORRECT_LENGTH);
    assert.equal(run(CcwCmd.READ_FEAT, 4, CcwFlag.SLI), CcwStatus.COMMAND_REJECT);
    const r = t.execute(CcwCmd.READ_FEAT, D, 8, CcwFlag.SLI);
    assert.deepEqual(r, { status: CcwStatus.OK, residual: 3 });
  });

  it('READ_FEAT / WRITE_FEAT: little-endian words by index', () => {
    const { setRev, run, mem, core } = setup();
    setRev(2);
    mem.writeU8(D + 4, 1);
    assert.equal(run(CcwCmd.READ_FEAT, 5), CcwStatus.OK);
    assert.equal(mem.readU32(D, true), Number((F.VERSION_1 | F.RING_RESET | F.NOTIFICATION_DATA) >> 32n));
    mem.writeU32(D, 1, true);
    mem.writeU8(D + 4, 1);
    assert.equal(run(CcwCmd.WRITE_FEAT, 5), CcwStatus.OK);
    assert.equal(core().driverFeatures, F.VERSION_1);
  });

  it('revision 0 offers only feature word 0', () => {
    const { setRev, run, mem } = setup();
    setRev(0);
    mem.writeU8(D + 4, 1);
    mem.writeU32(D, 0xdead);
    assert.equal(run(CcwCmd.READ_FEAT, 5), CcwStatus.OK);
    assert.equal(mem.readU32(D, true), 0);
  });

  it('device/transport-ccw/12 /13: WRITE_STATUS refused leaves the status; READ_STATUS returns it', () => {
    const { setRev, run, mem, core } = setup();
    setRev(2);
    mem.writeU8(D, Status.ACKNOWLEDGE | Status.DRIVER);
    assert.equal(run(CcwCmd.WRITE_STATUS, 1), CcwStatus.OK);
    core().refuseFeatures = true;
    mem.writeU8(D, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.equal(run(CcwCmd.WRITE_STATUS, 1), CcwStatus.COMMAND_REJECT);
    assert.equal(run(CcwCmd.READ_STATUS, 1), CcwStatus.OK);
    assert.equal(mem.readU8(D), Status.ACKNOWLEDGE | Status.DRIVER);
  });

  it('READ_CONF / WRITE_CONF: prefixes of the configuration; only changed bytes are written', () => {
    const { setRev, run, mem, core, dev } = setup();
    setRev(1);
    assert.equal(run(CcwCmd.READ_CONF, 6), CcwStatus.OK);
    assert.deepEqual([...mem.slice(D, 6)], [1, 2, 3, 4, 5, 6]);
    assert.equal(run(CcwCmd.READ_CONF, 17), CcwStatus.INCORRECT_LENGTH);
    mem.write(D, new Uint8Array([1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd]));
    assert.equal(run(CcwCmd.WRITE_CONF, 8), CcwStatus.OK);
    assert.deepEqual(core().configWrites, [{ offset: 4, width: 4, value: 0xddccbbaa }]);
    assert.deepEqual([...dev.config.subarray(4, 8)], [0xaa, 0xbb, 0xcc, 0xdd]);
  });

  it('READ_VQ_CONF and SET_VQ (modern layout, res0 ignored)', () => {
    const { setRev, run, mem, core, bad } = setup();
    setRev(1);
    mem.writeU16(D, 1, false);
    assert.equal(run(CcwCmd.READ_VQ_CONF, 4), CcwStatus.OK);
    assert.equal(mem.readU16(D + 2, false), 128);
    mem.writeU16(D, 9, false);
    assert.equal(run(CcwCmd.READ_VQ_CONF, 4), CcwStatus.OK);
    assert.equal(mem.readU16(D + 2, false), 0);
    mem.writeAddr(D, 0x10000, false);
    mem.writeU32(D + 8, 0xffffffff, false); // device/transport-ccw/11: res0 ignored
    mem.writeU16(D + 12, 1, false);
    mem.writeU16(D + 14, 64, false);
    mem.writeAddr(D + 16, 0x11000, false);
    mem.writeAddr(D + 24, 0x12000, false);
    assert.equal(run(CcwCmd.SET_VQ, 32), CcwStatus.OK);
    const r = core().queueRegisters(1)!;
    assert.deepEqual([r.size, r.descAddr, r.driverAddr, r.deviceAddr, r.enabled], [64, 0x10000, 0x11000, 0x12000, true]);
    mem.writeU16(D + 14, 256, false);
    mem.writeU16(D + 12, 0, false);
    assert.equal(run(CcwCmd.SET_VQ, 32), CcwStatus.OK);
    mem.writeU16(D + 12, 1, false);
    assert.equal(run(CcwCmd.SET_VQ, 32), CcwStatus.COMMAND_REJECT, 'size above the maximum');
    mem.writeU16(D + 12, 5, false);
    assert.equal(run(CcwCmd.SET_VQ, 32), CcwStatus.COMMAND_REJECT);
    assert.equal(bad.at(-1)!.reason, BadAccess.NO_QUEUE);
    assert.equal(run(CcwCmd.SET_VQ, 16), CcwStatus.INCORRECT_LENGTH, 'legacy block at revision 1');
    // Address 0 stops the queue.
    mem.writeAddr(D, 0, false);
    mem.writeU16(D + 12, 1, false);
    assert.equal(run(CcwCmd.SET_VQ, 32), CcwStatus.OK);
    assert.equal(r.enabled, false);
  });

  it('SET_VQ revision 0: the legacy block with queue address and alignment', () => {
    const { setRev, run, mem, core } = setup();
    setRev(0);
    mem.writeAddr(D, 0x20000, false);
    mem.writeU32(D + 8, 4096, false);
    mem.writeU16(D + 12, 0, false);
    mem.writeU16(D + 14, 32, false);
    assert.equal(run(CcwCmd.SET_VQ, 16), CcwStatus.OK);
    const l = legacySplitLayout(32, 4096);
    const r = core().queueRegisters(0)!;
    assert.deepEqual([r.descAddr, r.driverAddr, r.deviceAddr], [0x20000, 0x20000 + l.avail, 0x20000 + l.used]);
  });

  it('malformed CCWs: unmapped data addresses end in a program check, never a throw', () => {
    const { t, bad } = setup();
    t.execute(CcwCmd.SET_VIRTIO_REV, 1 << 30, 4);
    assert.equal(t.execute(CcwCmd.SET_VIRTIO_REV, 1 << 30, 4).status, CcwStatus.PROGRAM_CHECK);
    assert.equal(bad.at(-1)!.reason, BadAccess.MEMORY);
    assert.equal(t.execute(CcwCmd.READ_FEAT, (1 << 20) - 2, 5).status, CcwStatus.PROGRAM_CHECK);
  });

  it('never throws for any command (property)', () => {
    const { t, mem } = setup();
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            cmd: fc.oneof(fc.constantFrom(...Object.values(CcwCmd)), fc.integer({ min: 0, max: 255 })),
            addr: fc.oneof(fc.constant(D), fc.integer({ min: 0, max: 2 ** 21 })),
            count: fc.integer({ min: 0, max: 40 }),
            flags: fc.constantFrom(0, CcwFlag.SLI),
            data: fc.uint8Array({ minLength: 32, maxLength: 32 }),
          }),
          { maxLength: 40 },
        ),
        (ops) => {
          for (const o of ops) {
            mem.write(D, o.data);
            const r = t.execute(o.cmd, o.addr, o.count, o.flags);
            assert.ok(Object.values(CcwStatus).includes(r.status));
            t.usedBuffer(o.count % 3);
            t.configChange();
            assert.equal(typeof t.hypercallNotify(0, o.count), 'number');
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('CCW indicators and notifications', () => {
  it('classic indicators: bit per queue in a big-endian u64, config bit 0, I/O interrupts', () => {
    const { setRev, run, mem, t, bus } = setup();
    setRev(1);
    mem.writeAddr(D, IND, false);
    assert.equal(run(CcwCmd.SET_IND, 8), CcwStatus.OK);
    mem.writeAddr(D, IND + 8, false);
    assert.equal(run(CcwCmd.SET_CONF_IND, 8), CcwStatus.OK);
    t.usedBuffer(1);
    t.usedBuffer(9);
    assert.equal(mem.readU64(IND, false), (1n << 1n) | (1n << 9n));
    t.configChange();
    assert.equal(mem.readU64(IND + 8, false), 1n);
    assert.equal(bus.ioInterrupts, 3);
  });

  it('device/transport-ccw/14: SET_IND_ADAPTER after SET_IND is rejected, and SET_IND after SET_IND_ADAPTER', () => {
    const a = setup();
    a.setRev(1);
    a.mem.writeAddr(D, IND, false);
    assert.equal(a.run(CcwCmd.SET_IND, 8), CcwStatus.OK);
    assert.equal(a.run(CcwCmd.SET_IND_ADAPTER, 25), CcwStatus.COMMAND_REJECT);
    const b = setup();
    b.setRev(1);
    b.mem.writeAddr(D, IND, false);
    b.mem.writeAddr(D + 8, IND + 8, false);
    b.mem.writeAddr(D + 16, 0, false);
    b.mem.writeU8(D + 24, 3);
    assert.equal(b.run(CcwCmd.SET_IND_ADAPTER, 25), CcwStatus.OK);
    b.mem.writeAddr(D, IND + 64, false);
    assert.equal(b.run(CcwCmd.SET_IND, 8), CcwStatus.COMMAND_REJECT);
  });

  it('device/transport-ccw/15: adapter indicators count bits from the left; interrupt only when the summary was clear', () => {
    const { setRev, run, mem, t, bus } = setup();
    setRev(1);
    mem.writeAddr(D, IND, false); // summary
    mem.writeAddr(D + 8, IND + 8, false); // indicator area
    mem.writeAddr(D + 16, 5, false); // bit_nr
    mem.writeU8(D + 24, 6);
    assert.equal(run(CcwCmd.SET_IND_ADAPTER, 25), CcwStatus.OK);
    const iscs: number[] = [];
    bus.onAdapter = (isc) => iscs.push(isc);
    t.usedBuffer(0);
    assert.equal(mem.readU8(IND), 1);
    assert.equal(mem.readU8(IND + 8), 0x80 >>> 5);
    t.usedBuffer(1);
    assert.equal(mem.readU8(IND + 8), (0x80 >>> 5) | (0x80 >>> 6));
    assert.deepEqual(iscs, [6], 'second notification while the summary was set: no interrupt');
    mem.writeU8(IND, 0);
    t.usedBuffer(3); // bit 8: second byte, leftmost
    assert.equal(mem.readU8(IND + 9), 0x80);
    assert.deepEqual(iscs, [6, 6]);
  });

  it('device/transport-ccw/16 /17: notification hypercall ignores the high half of GPR2; errors for unknown or disabled queues', () => {
    const { setRev, run, mem, t, core, bad } = setup({ subchannelId: 0x0001_0002 });
    setRev(1);
    assert.equal(t.hypercallNotify(0x1234_0000_0000 + 0x0001_0002, 0), -22);
    assert.equal(bad.at(-1)!.reason, BadAccess.QUEUE_DISABLED);
    mem.writeAddr(D, 0x10000, false);
    mem.writeU16(D + 12, 0, false);
    mem.writeU16(D + 14, 16, false);
    mem.writeAddr(D + 16, 0x11000, false);
    mem.writeAddr(D + 24, 0x12000, false);
    assert.equal(run(CcwCmd.SET_VQ, 32), CcwStatus.OK);
    assert.ok(t.hypercallNotify(0x1234_0000_0000 + 0x0001_0002, 0) >= 0);
    assert.deepEqual(core().notifications, [{ index: 0, data: undefined }]);
    assert.equal(t.hypercallNotify(0x0009_0009, 0), -22, 'other subchannel');
    assert.equal(t.hypercallNotify(0x0001_0002, 7), -22, 'no such queue');
  });

  it('device/transport-ccw/18 /19: VDEV_RESET resets to status 0 and stops notifications (indicators released)', () => {
    const { setRev, run, mem, t, core, bus } = setup();
    setRev(2);
    mem.writeAddr(D, IND, false);
    run(CcwCmd.SET_IND, 8);
    mem.writeU8(D, Status.ACKNOWLEDGE);
    run(CcwCmd.WRITE_STATUS, 1);
    assert.equal(run(CcwCmd.VDEV_RESET, 0), CcwStatus.OK);
    assert.equal(core().status, 0);
    assert.equal(run(CcwCmd.READ_STATUS, 1), CcwStatus.OK);
    assert.equal(mem.readU8(D), 0);
    t.usedBuffer(0);
    assert.equal(bus.ioInterrupts, 0);
    assert.equal(mem.readU64(IND, false), 0n);
  });
});

describe('CCW driver transport', () => {
  function pair(devOpts: CcwDeviceOptions, drvOpts: { revision?: number; adapter?: boolean } = {}) {
    const s = setup(devOpts);
    const d = new CcwDriverTransport(s.t, s.mem, { scratchAddr: 0x8000, scratchSize: 512, ...drvOpts });
    s.bus.onIo = () => d.handleIoInterrupt();
    s.bus.onAdapter = (isc) => d.handleAdapterInterrupt(isc);
    return { ...s, d };
  }

  it('driver/transport-ccw/3: tries the highest revision first and falls back', () => {
    assert.equal(pair({}).d.revision, 2);
    assert.equal(pair({ maxRevision: 1 }).d.revision, 1);
    const legacy = pair({}, { revision: 0 });
    assert.equal(legacy.d.revision, 0);
    assert.equal(legacy.d.legacy, true);
    assert.equal(legacy.d.littleEndian, false);
  });

  it('negotiates, sets up a queue, notifies and receives classic interrupts', () => {
    const { d, core, t } = pair({});
    const seen: string[] = [];
    d.setInterruptHandler({ used: (q) => seen.push(`u${q}`), configChange: () => seen.push('c') });
    d.setStatus(0);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    assert.equal(d.getDeviceFeatures(), F.VERSION_1 | F.RING_RESET | F.NOTIFICATION_DATA);
    d.setDriverFeatures(F.VERSION_1);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.equal(d.getStatus(), Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.equal(d.numQueues(), 2);
    d.setupQueue(1, { size: 64, descAddr: 0x10000, driverAddr: 0x11000, deviceAddr: 0x12000 });
    d.notify(1);
    assert.deepEqual(core().notifications, [{ index: 1, data: undefined }]);
    t.usedBuffer(1);
    t.configChange();
    assert.deepEqual(seen, ['u1', 'c']);
    const cfg = new Uint8Array(3);
    d.readConfig(2, cfg);
    assert.deepEqual([...cfg], [3, 4, 5]);
    d.writeConfig(12, new Uint8Array([9, 9]));
    assert.deepEqual(core().configWrites, [{ offset: 12, width: 2, value: 0x0909 }]);
  });

  it('adapter interrupts: summary cleared by the driver, queues dispatched', () => {
    const { d, t, mem } = pair({}, { adapter: true });
    const seen: number[] = [];
    d.setInterruptHandler({ used: (q) => seen.push(q), configChange: () => {} });
    d.setStatus(Status.ACKNOWLEDGE);
    d.setupQueue(0, { size: 64, descAddr: 0x10000, driverAddr: 0x11000, deviceAddr: 0x12000 });
    t.usedBuffer(0);
    t.usedBuffer(0);
    assert.deepEqual(seen, [0, 0]);
    assert.equal(mem.readU8(0x8000 + 16), 0);
  });

  it('legacy driver: revision 0 with the legacy queue block', () => {
    const { d, core } = pair({}, { revision: 0 });
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    assert.equal(d.getDeviceFeatures(), 0n);
    const l = legacySplitLayout(16, 4096);
    d.setupQueue(0, { size: 16, descAddr: 0x20000, driverAddr: 0x20000 + l.avail, deviceAddr: 0x20000 + l.used });
    assert.equal(core().queueRegisters(0)!.enabled, true);
    assert.equal(core().mode.littleEndian, false);
    assert.equal(d.getStatus(), Status.ACKNOWLEDGE | Status.DRIVER);
  });

  it('refuses a device with another control unit type', () => {
    const mem = GuestMemory.allocate(1 << 16);
    const ch = { controlUnitType: 0x3990, controlUnitModel: 1, execute: () => ({ status: CcwStatus.OK, residual: 0 }), hypercallNotify: () => 0 };
    assert.throws(() => new CcwDriverTransport(ch, mem, { scratchAddr: 0, scratchSize: 512 }), { code: 'TRANSPORT_BAD_ACCESS' });
  });
});
