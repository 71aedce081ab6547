/**
 * Normative statements of 4.3 (Virtio Over Channel I/O) proven against the real DeviceCore
 * behind the CCW device transport and the library's CCW driver transport, with every channel
 * command and notification hypercall between them recorded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { type CcwChannel, CcwDeviceTransport, type CcwDeviceOptions } from '../../src/transport/ccw/ccw-device.js';
import { CcwDriverTransport } from '../../src/transport/ccw/ccw-driver.js';
import { CcwCmd, type CcwOutcome, CcwSize, CcwStatus } from '../../src/transport/ccw/constants.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { roundTrip } from './rig.js';

const MEM = 4 << 20;
const DMA_BASE = 0x10_0000;
const SCRATCH = 0xf000;
const ALL = (1n << 128n) - 1n;

interface Cmd {
  readonly cmd: number;
  readonly count: number;
  readonly status: CcwStatus;
}

/** A channel in front of the device: records commands and hypercalls. */
class RecordingChannel implements CcwChannel {
  readonly cmds: Cmd[] = [];
  readonly notifies: { gpr2: number; gpr3: number; gpr4: number | undefined; ret: number }[] = [];
  /** Replaces the cookie the device returns (to see that the driver passes it back). */
  cookies: number[] | null = null;
  /** Commands to reject outright (as a device that does not know them would). */
  reject: ((cmd: number, addr: number) => boolean) | null = null;

  constructor(readonly inner: CcwDeviceTransport) {}
  get controlUnitType(): number {
    return this.inner.controlUnitType;
  }
  get controlUnitModel(): number {
    return this.inner.controlUnitModel;
  }
  execute(cmd: number, dataAddr: number, count: number, flags?: number): CcwOutcome {
    const out: CcwOutcome = this.reject?.(cmd, dataAddr) ? { status: CcwStatus.COMMAND_REJECT, residual: count } : this.inner.execute(cmd, dataAddr, count, flags);
    this.cmds.push({ cmd, count, status: out.status });
    return out;
  }
  hypercallNotify(gpr2: number, gpr3: number, gpr4?: number): number {
    let ret = this.inner.hypercallNotify(gpr2, gpr3, gpr4);
    if (this.cookies && ret >= 0) ret = this.cookies.shift() ?? ret;
    this.notifies.push({ gpr2, gpr3, gpr4, ret });
    return ret;
  }
}

function rig(devOpts: CcwDeviceOptions = {}, drvOpts: { revision?: number; adapter?: boolean; transitional?: boolean } = {}, reject?: (cmd: number, addr: number) => boolean) {
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const dev = new EchoDevice({ queues: [32, 32] });
  const t = new CcwDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores), { subchannelId: 0x0001_0000, ...devOpts });
  const ch = new RecordingChannel(t);
  if (reject) ch.reject = reject;
  const d = new CcwDriverTransport(ch, mem, { scratchAddr: SCRATCH, scratchSize: 4096, subchannelId: 0x0001_0000, ...drvOpts });
  bus.onIo = () => d.handleIoInterrupt();
  bus.onAdapter = (isc) => d.handleAdapterInterrupt(isc);
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  return { mem, bus, t, ch, d, dev, core: () => cores.at(-1)!, dma };
}

function start(r: ReturnType<typeof rig>): VirtioDriver {
  return VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
}

/** The count each command's structure needs (4.3.2), READ_CONF / WRITE_CONF aside. */
const EXPECTED_COUNT: Record<number, number> = {
  [CcwCmd.SET_VIRTIO_REV]: CcwSize.REV_INFO,
  [CcwCmd.READ_FEAT]: CcwSize.FEATURE_DESC,
  [CcwCmd.WRITE_FEAT]: CcwSize.FEATURE_DESC,
  [CcwCmd.READ_VQ_CONF]: CcwSize.VQ_CONFIG,
  [CcwCmd.SET_VQ]: CcwSize.VQ_INFO,
  [CcwCmd.SET_IND]: CcwSize.INDICATOR,
  [CcwCmd.SET_CONF_IND]: CcwSize.INDICATOR,
  [CcwCmd.SET_IND_ADAPTER]: CcwSize.THININT_AREA,
  [CcwCmd.WRITE_STATUS]: CcwSize.STATUS,
  [CcwCmd.READ_STATUS]: CcwSize.STATUS,
  [CcwCmd.VDEV_RESET]: 0,
};

describe('4.3.2 CCW: revision negotiation (driver)', () => {
  it('driver/transport-ccw/4, 5: SET_VIRTIO_REV comes first, and once a revision is accepted no other is tried', () => {
    for (const maxRevision of [1, 2]) {
      const r = rig({ maxRevision });
      assert.equal(r.d.revision, maxRevision);
      const drv = start(r);
      const p = Uint8Array.from({ length: 40 }, (_, i) => i * 3);
      assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
      drv.reset();
      start(r).reset();
      const cmds = r.ch.cmds;
      assert.equal(cmds[0]!.cmd, CcwCmd.SET_VIRTIO_REV, 'nothing before the revision');
      const firstOk = cmds.findIndex((c) => c.cmd === CcwCmd.SET_VIRTIO_REV && c.status === CcwStatus.OK);
      assert.ok(cmds.slice(0, firstOk).every((c) => c.cmd === CcwCmd.SET_VIRTIO_REV), 'only revision attempts before success');
      assert.equal(cmds.slice(firstOk + 1).filter((c) => c.cmd === CcwCmd.SET_VIRTIO_REV).length, 0, 'no revision after success');
      assert.equal(firstOk, 2 - maxRevision, 'highest first, one rejection per unsupported revision');
    }
  });

  it('driver/transport-ccw/7: a transitional driver whose revisions are all rejected operates the device at revision 0', () => {
    const r = rig({ transitional: true }, {}, (cmd) => cmd === CcwCmd.SET_VIRTIO_REV);
    assert.equal(r.d.revision, 0);
    assert.equal(r.d.legacy, true);
    r.ch.reject = null;
    const drv = start(r);
    assert.equal(drv.features & F.VERSION_1, 0n, 'legacy: no VERSION_1');
    assert.ok(r.core().legacy);
    const p = Uint8Array.from({ length: 24 }, (_, i) => 100 + i);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(1), () => drv.kick(1), p).data, p);
    // The legacy queue block (16 bytes) was used.
    assert.ok(r.ch.cmds.some((c) => c.cmd === CcwCmd.SET_VQ && c.count === CcwSize.VQ_INFO_LEGACY));
    drv.reset();
  });

  it('driver/transport-ccw/6: a non-transitional driver whose revisions are all rejected stops: nothing but the revision attempts is issued', () => {
    const mem = GuestMemory.allocate(MEM);
    const cores: DeviceCore[] = [];
    const t = new CcwDeviceTransport(new LoopbackBus(mem), deviceCoreFactory(new EchoDevice({ queues: [32] }), mem, {}, cores), { subchannelId: 0x0001_0000 });
    const ch = new RecordingChannel(t);
    ch.reject = (cmd) => cmd === CcwCmd.SET_VIRTIO_REV;
    assert.throws(
      () => new CcwDriverTransport(ch, mem, { scratchAddr: SCRATCH, scratchSize: 4096, subchannelId: 0x0001_0000, transitional: false }),
      (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.TRANSPORT_BAD_ACCESS,
    );
    assert.deepEqual(ch.cmds.map((c) => c.cmd), [CcwCmd.SET_VIRTIO_REV, CcwCmd.SET_VIRTIO_REV], 'revisions 2 and 1 tried, then nothing');
    assert.equal(cores[0]!.status, 0, 'the device was never touched');
    // The same device accepting revision 1: the non-transitional driver operates it.
    const r = rig({ maxRevision: 1 }, { transitional: false });
    assert.equal(r.d.revision, 1);
    const drv = start(r);
    const p = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
    drv.reset();
  });

  it('driver/transport-ccw/2: every channel command carries the correct length for its structure', () => {
    for (const adapter of [false, true]) {
      const r = rig({}, { adapter });
      const drv = start(r);
      drv.readConfig(0, 16);
      drv.readConfig(4, 4);
      drv.context.writeConfig(4, Uint8Array.of(1, 2, 3, 4));
      drv.reset();
      assert.ok(r.ch.cmds.length > 10);
      for (const c of r.ch.cmds) {
        if (c.cmd === CcwCmd.READ_CONF || c.cmd === CcwCmd.WRITE_CONF) {
          assert.ok(c.count >= 1 && c.count <= 16, `config count ${c.count}`);
          continue;
        }
        assert.equal(c.count, EXPECTED_COUNT[c.cmd], `command 0x${c.cmd.toString(16)}`);
        assert.notEqual(c.status, CcwStatus.INCORRECT_LENGTH);
      }
    }
  });
});

describe('4.3.2.2 / 4.3.3 CCW: status, interrupts, notifications (driver)', () => {
  it('driver/transport-ccw/1: the driver takes a device only with control unit type 0x3832, and issues nothing to any other', () => {
    const r = rig();
    r.ch.cmds.length = 0; // the rig's own driver is done; only the new one counts
    let cuType = 0x3088; // a channel-to-channel adapter, not virtio
    Object.defineProperty(r.ch, 'controlUnitType', { get: () => cuType });
    assert.throws(
      () => new CcwDriverTransport(r.ch, r.mem, { scratchAddr: SCRATCH, scratchSize: 4096, subchannelId: 0x0001_0000 }),
      { code: 'TRANSPORT_BAD_ACCESS' },
    );
    assert.deepEqual(r.ch.cmds, [], 'no channel command for a device that is not virtio-ccw');
    cuType = 0x3832;
    const d = new CcwDriverTransport(r.ch, r.mem, { scratchAddr: SCRATCH, scratchSize: 4096, subchannelId: 0x0001_0000 });
    assert.equal(d.deviceId, r.dev.deviceId, 'the virtio device id is the control unit model');
  });

  it('driver/transport-ccw/11: when WRITE_STATUS is rejected the driver takes the status as unchanged', () => {
    // Revision 1: no READ_STATUS, so the driver's own idea of the status is all there is.
    const r = rig({ maxRevision: 1 }, {}, (cmd, addr) => cmd === CcwCmd.WRITE_STATUS && (r.mem.readU8(addr) & Status.FEATURES_OK) !== 0);
    assert.equal(r.d.revision, 1);
    r.d.setStatus(0);
    r.d.setStatus(Status.ACKNOWLEDGE);
    r.d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    r.d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.equal(r.ch.cmds.at(-1)?.status, CcwStatus.COMMAND_REJECT);
    assert.equal(r.d.getStatus(), Status.ACKNOWLEDGE | Status.DRIVER, 'the previous status, not the one written');
    // So the initialization sees FEATURES_OK missing and gives up (3.1.1 step 6).
    assert.throws(() => start(r), { code: 'FEATURES_REJECTED' });
    assert.equal(r.core().status & Status.DRIVER_OK, 0);
  });

  it('driver/transport-ccw/12: at revision 2 the driver reads the status with READ_STATUS after a configuration change', () => {
    const r = rig();
    const drv = start(r);
    let needsReset = 0;
    drv.onNeedsReset(() => needsReset++);
    r.ch.cmds.length = 0;
    r.core().setNeedsReset('test');
    assert.ok(r.ch.cmds.some((c) => c.cmd === CcwCmd.READ_STATUS && c.status === CcwStatus.OK));
    assert.equal(needsReset, 1);
    drv.reset();
  });

  it('driver/transport-ccw/13: below revision 2 the driver never issues READ_STATUS', () => {
    for (const [devOpts, drvOpts] of [
      [{ maxRevision: 1 }, {}],
      [{}, { revision: 1 }],
      [{}, { revision: 0 }],
    ] as const) {
      const r = rig(devOpts, drvOpts);
      assert.ok(r.d.revision < 2);
      const drv = start(r);
      drv.onNeedsReset(() => {});
      drv.onConfigChange(() => {});
      assert.equal(r.d.getStatus() & Status.DRIVER_OK, Status.DRIVER_OK);
      r.t.configChange();
      drv.reset();
      assert.equal(r.ch.cmds.filter((c) => c.cmd === CcwCmd.READ_STATUS).length, 0);
      assert.ok(!r.ch.cmds.some((c) => c.status === CcwStatus.COMMAND_REJECT && c.cmd !== CcwCmd.SET_VIRTIO_REV));
    }
  });

  it('driver/transport-ccw/14: on an adapter interrupt the driver clears the summary indicator before it processes the queue indicators', () => {
    const r = rig({}, { adapter: true });
    const drv = start(r);
    const summaryAt: number[] = [];
    // The summary indicator is the driver's scratch + 16 (see ccw-driver); read it from the callback.
    drv.onUsed(0, () => summaryAt.push(r.mem.readU8(SCRATCH + 16)));
    drv.onUsed(1, () => summaryAt.push(r.mem.readU8(SCRATCH + 16)));
    const p = Uint8Array.from({ length: 8 }, (_, i) => i);
    roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p);
    roundTrip(r.mem, r.dma, drv.queue(1), () => drv.kick(1), p);
    assert.ok(summaryAt.length >= 2);
    assert.ok(summaryAt.every((s) => s === 0), `summary seen ${summaryAt.join()}`);
    drv.reset();
  });

  it('driver/transport-ccw/15: each notification passes back (GPR4) the host cookie returned (GPR2) by the previous one', () => {
    const r = rig();
    const drv = start(r);
    r.ch.cookies = [0x1111, 0x2222, 0x3333, 0x4444];
    const p = Uint8Array.from({ length: 8 }, (_, i) => i);
    for (let i = 0; i < 4; i++) roundTrip(r.mem, r.dma, drv.queue(i & 1), () => drv.kick(i & 1), p);
    const n = r.ch.notifies;
    assert.equal(n.length, 4);
    for (let i = 1; i < n.length; i++) assert.equal(n[i]!.gpr4, n[i - 1]!.ret);
    assert.deepEqual(
      n.map((x) => x.gpr4),
      [0, 0x1111, 0x2222, 0x3333],
    );
    assert.ok(n.every((x) => x.gpr2 === 0x0001_0000));
    drv.reset();
  });

  it('driver/transport-ccw/16: the reset is complete when CCW_CMD_VDEV_RESET ends; READ_STATUS then reads 0', () => {
    const r = rig();
    const drv = start(r);
    r.ch.cmds.length = 0;
    drv.reset();
    assert.deepEqual(
      r.ch.cmds.map((c) => [c.cmd, c.status]),
      [[CcwCmd.VDEV_RESET, CcwStatus.OK]],
    );
    assert.equal(r.core().status, 0);
    assert.equal(r.d.getStatus(), 0);
  });
});

describe('4.3.2.1 CCW: device', () => {
  it('device/transport-ccw/11: res0 of the queue information block is ignored', () => {
    const results: [number, number, number, number, boolean][] = [];
    for (const res0 of [0, 0xdead_beef, 0xffff_ffff]) {
      const r = rig();
      const d = r.d;
      d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
      d.setDriverFeatures(F.VERSION_1);
      d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
      // struct vq_info_block: be64 desc, be32 res0, be16 index, be16 num, be64 driver, be64 device.
      const at = SCRATCH + 0x800;
      r.mem.writeAddr(at, 0x20000, false);
      r.mem.writeU32(at + 8, res0, false);
      r.mem.writeU16(at + 12, 1, false);
      r.mem.writeU16(at + 14, 16, false);
      r.mem.writeAddr(at + 16, 0x21000, false);
      r.mem.writeAddr(at + 24, 0x22000, false);
      const out = r.t.execute(CcwCmd.SET_VQ, at, CcwSize.VQ_INFO);
      assert.equal(out.status, CcwStatus.OK, `res0 0x${res0.toString(16)}`);
      const q = r.core().queueRegisters(1)!;
      results.push([q.size, q.descAddr, q.driverAddr, q.deviceAddr, q.enabled]);
    }
    assert.deepEqual(results[1], results[0]);
    assert.deepEqual(results[2], results[0]);
    assert.deepEqual(results[0], [16, 0x20000, 0x21000, 0x22000, true]);
  });
});
