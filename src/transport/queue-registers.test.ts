/**
 * Queue registers through PCI, MMIO and Channel I/O against the real DeviceCore: the core's
 * setters are the one rule set, so the same write gets the same answer (refusal reason and
 * message) on every bus; the fields of an enabled queue are frozen; a device or queue reset
 * puts every register back to its default, done by the core, whatever the transport.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../device/device-core.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { packedRingLayout } from '../queue/packed-layout.js';
import { legacySplitRingLayout, splitRingLayout } from '../queue/split-layout.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { EchoDevice } from '../testing/echo-device.js';
import { BadAccess, type BadAccessReport } from './bus.js';
import { CcwDeviceTransport } from './ccw/ccw-device.js';
import { CcwCmd, CcwStatus } from './ccw/constants.js';
import { TransportKind, type TransportPair, createTransportPair, deviceCoreFactory } from './loopback.js';
import { MmioDeviceTransport } from './mmio/mmio-device.js';
import { MmioReg } from './mmio/registers.js';
import { CommonCfg, NO_VECTOR, PciBar } from './pci/constants.js';
import { PciDeviceTransport } from './pci/pci-device.js';

const MEM = 1 << 20;
const RING = 0x1_0000;
/** CCW data areas (below the driver's scratch at 0xf000). */
const CCW_DATA = 0xe000;
const MAX = 64;
const ACK_DRIVER = Status.ACKNOWLEDGE | Status.DRIVER;

interface Rig {
  readonly kind: TransportKind;
  readonly pair: TransportPair;
  readonly mem: GuestMemory;
  readonly cores: DeviceCore[];
  readonly bad: BadAccessReport[];
}

function rig(kind: TransportKind): Rig {
  const mem = GuestMemory.allocate(MEM);
  const cores: DeviceCore[] = [];
  const bad: BadAccessReport[] = [];
  // Device id 4 (entropy) has a transitional PCI id, so the PCI legacy interface works too.
  const pair = createTransportPair(kind, mem, deviceCoreFactory(new EchoDevice({ deviceId: 4, queues: [MAX, MAX] }), mem, {}, cores), {
    ccwScratch: { addr: 0xf000, size: 4096 },
    onBadAccess: (b) => bad.push(b),
  });
  return { kind, pair, mem, cores, bad };
}

function core(r: Rig): DeviceCore {
  return r.cores.at(-1)!;
}

/** 3.1.1 up to FEATURES_OK, with the ring format asked for. */
function negotiate(r: Rig, extra: bigint): void {
  const d = r.pair.driver;
  d.setStatus(0);
  d.setStatus(Status.ACKNOWLEDGE);
  d.setStatus(ACK_DRIVER);
  if (d.legacy) {
    d.setDriverFeatures(0n);
    return;
  }
  d.setDriverFeatures(d.getDeviceFeatures() & (F.VERSION_1 | extra));
  d.setStatus(ACK_DRIVER | Status.FEATURES_OK);
  assert.equal(d.getStatus() & Status.FEATURES_OK, Status.FEATURES_OK, 'features accepted');
}

/** The refusals reported since the last call, as reason and message (the region differs per bus). */
function refusals(r: Rig): { reason: string; detail: string | undefined }[] {
  return r.bad.splice(0).map((b) => ({ reason: b.reason, detail: b.detail }));
}

/** Sets queue `index` up the transport's own way: size, then the three ring addresses, enable. */
function programQueue(r: Rig, index: number, size: number, ring: { descAddr: number; driverAddr: number; deviceAddr: number }, enable = true): void {
  const dev = r.pair.device;
  if (dev instanceof PciDeviceTransport) {
    const c = (off: number, w: number, v: number): void => dev.barWrite(PciBar.MODERN, dev.layout.common + off, w, v);
    c(CommonCfg.QUEUE_SELECT, 2, index);
    c(CommonCfg.QUEUE_SIZE, 2, size);
    c(CommonCfg.QUEUE_DESC, 8, ring.descAddr);
    c(CommonCfg.QUEUE_DRIVER, 8, ring.driverAddr);
    c(CommonCfg.QUEUE_DEVICE, 8, ring.deviceAddr);
    if (enable) c(CommonCfg.QUEUE_ENABLE, 2, 1);
  } else if (dev instanceof MmioDeviceTransport) {
    dev.write(MmioReg.QUEUE_SEL, 4, index);
    dev.write(MmioReg.QUEUE_SIZE, 4, size);
    dev.write(MmioReg.QUEUE_DESC_LOW, 4, ring.descAddr);
    dev.write(MmioReg.QUEUE_DRIVER_LOW, 4, ring.driverAddr);
    dev.write(MmioReg.QUEUE_DEVICE_LOW, 4, ring.deviceAddr);
    if (enable) dev.write(MmioReg.QUEUE_READY, 4, 1);
  } else {
    // 4.3.2.5: SET_VQ carries everything and enables the queue at once.
    assert.ok(dev instanceof CcwDeviceTransport);
    const m = r.mem;
    m.writeAddr(CCW_DATA, ring.descAddr, false);
    m.writeU32(CCW_DATA + 8, 0, false);
    m.writeU16(CCW_DATA + 12, index, false);
    m.writeU16(CCW_DATA + 14, size, false);
    m.writeAddr(CCW_DATA + 16, ring.driverAddr, false);
    m.writeAddr(CCW_DATA + 24, ring.deviceAddr, false);
    const st = dev.execute(CcwCmd.SET_VQ, CCW_DATA, 32).status;
    assert.ok(st === CcwStatus.OK || st === CcwStatus.COMMAND_REJECT, st);
  }
}

/** Writes only the queue size (CCW: a whole SET_VQ with that size). */
function writeSize(r: Rig, index: number, size: number): void {
  const dev = r.pair.device;
  if (dev instanceof PciDeviceTransport) {
    dev.barWrite(PciBar.MODERN, dev.layout.common + CommonCfg.QUEUE_SELECT, 2, index);
    dev.barWrite(PciBar.MODERN, dev.layout.common + CommonCfg.QUEUE_SIZE, 2, size);
  } else if (dev instanceof MmioDeviceTransport) {
    dev.write(MmioReg.QUEUE_SEL, 4, index);
    dev.write(MmioReg.QUEUE_SIZE, 4, size);
  } else {
    programQueue(r, index, size, splitRingLayout(32, RING + 0x4000));
  }
}

const MODERN = [TransportKind.PCI_MODERN, TransportKind.MMIO, TransportKind.CCW_REV1, TransportKind.CCW_REV2] as const;
const DEFAULTS = (index: number) => ({ size: MAX, descAddr: 0, driverAddr: 0, deviceAddr: 0, enabled: false, msixVector: NO_VECTOR, notifyData: index });

describe('queue registers: one rule set on every transport (real DeviceCore)', () => {
  it('driver/transport-pci/16 driver/transport-mmio/9: the same invalid sizes are refused identically on PCI, MMIO and CCW (split ring: 0, above the maximum, not a power of two)', () => {
    const seen = new Map<TransportKind, { reason: string; detail: string | undefined }[]>();
    for (const kind of MODERN) {
      const r = rig(kind);
      negotiate(r, 0n);
      for (const size of [0, MAX + 1, 48, 0xffff]) writeSize(r, 0, size);
      const got = refusals(r);
      assert.equal(got.length, 4, `${kind}: four refusals`);
      assert.ok(got.every((g) => g.reason === BadAccess.VALUE));
      seen.set(kind, got);
      assert.deepEqual({ ...core(r).queueRegisters(0)! }, DEFAULTS(0), `${kind}: registers untouched`);
    }
    const pci = seen.get(TransportKind.PCI_MODERN)!;
    assert.match(pci[2]!.detail ?? '', /size 48 is not a power of two/);
    assert.match(pci[1]!.detail ?? '', /size 65 not in 1\.\.64/);
    for (const kind of MODERN) assert.deepEqual(seen.get(kind), pci, `${kind} answers as PCI does`);
  });

  it('2.8: with RING_PACKED a size that is no power of two is taken on every transport; above the maximum still refused', () => {
    for (const kind of MODERN) {
      const r = rig(kind);
      negotiate(r, F.RING_PACKED);
      programQueue(r, 0, 48, packedRingLayout(48, RING));
      assert.deepEqual(refusals(r), [], `${kind}: size 48 taken`);
      const q = core(r).queueRegisters(0)!;
      assert.equal(q.size, 48);
      assert.equal(q.enabled, true, `${kind}: enabled with 48 entries`);
      writeSize(r, 1, MAX + 1);
      assert.deepEqual(refusals(r), [{ reason: BadAccess.VALUE, detail: 'queue 1 size 65 not in 1..64' }], kind);
    }
  });

  it('driver/transport-mmio/10: the fields of an enabled queue are frozen, refused with the same reason on every transport', () => {
    const seen: { reason: string; detail: string | undefined }[][] = [];
    for (const kind of MODERN) {
      const r = rig(kind);
      negotiate(r, 0n);
      programQueue(r, 0, 16, splitRingLayout(16, RING));
      assert.deepEqual(refusals(r), [], `${kind}: queue set up`);
      const before = { ...core(r).queueRegisters(0)! };
      assert.equal(before.enabled, true);
      writeSize(r, 0, 32);
      const got = refusals(r);
      assert.deepEqual(
        got.map((g) => g.reason),
        [BadAccess.QUEUE_ENABLED],
        kind,
      );
      seen.push(got);
      // The ring addresses of an enabled queue (PCI and MMIO write them one by one).
      const dev = r.pair.device;
      if (dev instanceof PciDeviceTransport) dev.barWrite(PciBar.MODERN, dev.layout.common + CommonCfg.QUEUE_DESC, 4, 0x2000);
      if (dev instanceof MmioDeviceTransport) dev.write(MmioReg.QUEUE_DESC_LOW, 4, 0x2000);
      if (!(dev instanceof CcwDeviceTransport)) assert.deepEqual(refusals(r), [{ reason: BadAccess.QUEUE_ENABLED, detail: 'queue 0 descAddr written while the queue is enabled' }], kind);
      assert.deepEqual({ ...core(r).queueRegisters(0)! }, before, `${kind}: nothing changed`);
    }
    for (const s of seen) assert.deepEqual(s, seen[0]);
  });

  it('device/transport-pci/19 device/transport-mmio/5: a device reset puts every queue register back to its default, through the core', () => {
    for (const kind of MODERN) {
      const r = rig(kind);
      negotiate(r, 0n);
      const d = r.pair.driver;
      d.setupQueue(0, splitRingLayout(16, RING));
      d.setupQueue(1, splitRingLayout(32, RING + 0x4000));
      d.setStatus(ACK_DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
      assert.equal(core(r).queueRegisters(1)!.enabled, true);
      if (kind === TransportKind.PCI_MODERN) assert.notEqual(core(r).queueRegisters(1)!.msixVector, NO_VECTOR, 'the driver mapped a vector');
      d.setStatus(0);
      for (const i of [0, 1]) assert.deepEqual({ ...core(r).queueRegisters(i)! }, DEFAULTS(i), `${kind}: queue ${i}`);
      // What the driver reads back on the bus says the same.
      const dev = r.pair.device;
      if (dev instanceof PciDeviceTransport) {
        const c = (off: number, w: number): number => dev.barRead(PciBar.MODERN, dev.layout.common + off, w);
        dev.barWrite(PciBar.MODERN, dev.layout.common + CommonCfg.QUEUE_SELECT, 2, 1);
        assert.deepEqual([c(CommonCfg.QUEUE_ENABLE, 2), c(CommonCfg.QUEUE_SIZE, 2), c(CommonCfg.QUEUE_MSIX_VECTOR, 2), c(CommonCfg.QUEUE_DESC, 8)], [0, MAX, NO_VECTOR, 0]);
      }
      if (dev instanceof MmioDeviceTransport) {
        dev.write(MmioReg.QUEUE_SEL, 4, 1);
        assert.equal(dev.read(MmioReg.QUEUE_READY, 4), 0);
      }
      assert.deepEqual(refusals(r), []);
    }
  });

  it('device/transport-pci/24 device/transport-mmio/12: a queue reset (RING_RESET) returns that queue, and only it, to its defaults; CCW stops a queue with a zero address', () => {
    for (const kind of MODERN) {
      const r = rig(kind);
      negotiate(r, F.RING_RESET);
      const d = r.pair.driver;
      d.setupQueue(0, splitRingLayout(16, RING));
      d.setupQueue(1, splitRingLayout(32, RING + 0x4000));
      d.setStatus(ACK_DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
      const q0 = { ...core(r).queueRegisters(0)! };
      if (r.pair.device instanceof CcwDeviceTransport) programQueue(r, 1, 32, { descAddr: 0, driverAddr: 0, deviceAddr: 0 });
      else d.resetQueue(1);
      assert.deepEqual({ ...core(r).queueRegisters(1)! }, DEFAULTS(1), kind);
      assert.deepEqual({ ...core(r).queueRegisters(0)! }, q0, `${kind}: queue 0 untouched`);
      assert.deepEqual(refusals(r), []);
    }
  });

  it('legacy MMIO (QueueNum) and CCW revision 0 (SET_VQ num) refuse the same size the same way; PCI legacy takes no size at all', () => {
    const seen: { reason: string; detail: string | undefined }[][] = [];
    for (const kind of [TransportKind.MMIO_LEGACY, TransportKind.CCW_REV0]) {
      const r = rig(kind);
      negotiate(r, 0n);
      const dev = r.pair.device;
      if (dev instanceof MmioDeviceTransport) {
        dev.write(MmioReg.QUEUE_SEL, 4, 0);
        dev.write(MmioReg.QUEUE_SIZE, 4, 48);
      } else {
        const m = r.mem;
        m.writeAddr(CCW_DATA, RING, false);
        m.writeU32(CCW_DATA + 8, 4096, false);
        m.writeU16(CCW_DATA + 12, 0, false);
        m.writeU16(CCW_DATA + 14, 48, false);
        assert.equal((dev as CcwDeviceTransport).execute(CcwCmd.SET_VQ, CCW_DATA, 16).status, CcwStatus.COMMAND_REJECT);
      }
      seen.push(refusals(r));
      assert.equal(core(r).queueRegisters(0)!.enabled, false);
    }
    assert.deepEqual(seen[0], [{ reason: BadAccess.VALUE, detail: 'queue 0 size 48 is not a power of two (split ring, 2.7)' }]);
    assert.deepEqual(seen[1], seen[0]);
    // The legacy contiguous ring itself is placed by the core the same way for the three.
    const l = legacySplitRingLayout(MAX, RING);
    for (const kind of [TransportKind.PCI_LEGACY, TransportKind.MMIO_LEGACY, TransportKind.CCW_REV0]) {
      const r = rig(kind);
      negotiate(r, 0n);
      r.pair.driver.setupQueue(0, l);
      const q = core(r).queueRegisters(0)!;
      assert.deepEqual([q.size, q.descAddr, q.driverAddr, q.deviceAddr, q.enabled], [MAX, l.descAddr, l.driverAddr, l.deviceAddr, true], kind);
      assert.deepEqual(refusals(r), []);
    }
  });
});
