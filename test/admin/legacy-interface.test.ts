/**
 * 2.12.1.1 Legacy Interfaces: the commands against a member DeviceCore, compared access for access
 * with a transitional PCI function's legacy I/O BAR over an identical device (the "same effect"
 * statements), their refusals, NOTIFY_INFO, and the driver side on the loopback sender.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADMIN_GROUP_SELF, ADMIN_GROUP_SRIOV, AdminStatus, AdminStatusQualifier, type AdminMember } from '../../src/admin/admin-command-handler.js';
import { LegacyMemberDriver } from '../../src/admin/legacy-interface/legacy-interface-driver.js';
import { LEGACY_COMMON_CFG_SIZE, LegacyInterfaceHandler, LegacyOpcode } from '../../src/admin/legacy-interface/legacy-interface-handler.js';
import { decodeLegacyNotifyInfo, encodeLegacyNotifyInfo, LegacyNotifyFlags, type LegacyNotifyEntry } from '../../src/admin/legacy-interface/legacy-notify-info.js';
import { DeviceCore } from '../../src/device/device-core.js';
import type { VirtioDevice } from '../../src/device/types.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { BLK_CONFIG_LAYOUT } from '../../src/spec/blk.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { LegacyReg, Msix, PciBar } from '../../src/transport/pci/constants.js';
import { PciDeviceTransport } from '../../src/transport/pci/pci-device.js';
import { stubDevice } from '../../src/transport/test-core.js';
import { adminLoopback } from '../support/admin-loopback.js';

const NO_INTERRUPTS = { usedBuffer() {}, configChange() {} };

/** A stub device (config bytes 1, 2, 3...) that records notifications; feature bits in the low word. */
function recordingDevice(configSize = 16): VirtioDevice & { config: Uint8Array; notified: number[] } {
  const base = stubDevice({ configSize, features: F.VERSION_1 | (1n << 0n) | (1n << 5n) | (1n << 9n) });
  const notified: number[] = [];
  return { ...base, config: base.config, notified, onQueueNotify: (i: number) => void notified.push(i) };
}

function member(configSize = 16, memberId = 1n) {
  const dev = recordingDevice(configSize);
  const memory = GuestMemory.allocate(1 << 20);
  const core = new DeviceCore(dev, { memory, interrupts: NO_INTERRUPTS });
  const m: AdminMember = { groupType: ADMIN_GROUP_SRIOV, memberId, core };
  return { dev, core, member: m };
}

function call(h: LegacyInterfaceHandler, m: AdminMember, opcode: number, data: Uint8Array, capacity = 0) {
  const result = new Uint8Array(capacity);
  const out = h.handle(opcode, m, data, result);
  assert.ok(!(out instanceof Promise));
  return { ...out, result: result.subarray(0, out.written) };
}

function writeCmd(offset: number, bytes: Uint8Array): Uint8Array {
  const d = new Uint8Array(8 + bytes.length);
  d[0] = offset;
  d.set(bytes, 8);
  return d;
}

function le(value: number, width: number): Uint8Array {
  const out = new Uint8Array(width);
  for (let i = 0; i < width; i++) out[i] = Math.floor(value / 256 ** i) % 256;
  return out;
}

function fromLe(b: Uint8Array): number {
  let v = 0;
  for (let i = b.length - 1; i >= 0; i--) v = v * 256 + b[i]!;
  return v;
}

/** The same legacy accesses, through a transitional PCI function (MSI-X on) and through the commands. */
function twins() {
  const refDev = recordingDevice();
  const mem = GuestMemory.allocate(1 << 20);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const pci = new PciDeviceTransport(
    bus,
    (sink, mode) => {
      const c = new DeviceCore(refDev, { memory: mem, interrupts: sink, legacy: mode.legacy, littleEndian: mode.littleEndian, ...(mode.transportFeatures === undefined ? {} : { transportFeatures: mode.transportFeatures }) });
      cores.push(c);
      return c;
    },
    { transitional: true, msixVectors: 3 },
  );
  pci.configWrite(pci.caps.msix + Msix.CTRL, 2, Msix.CTRL_ENABLE);
  const m = member();
  const h = new LegacyInterfaceHandler({ memberOptions: () => ({ msixVectors: 3 }) });
  const viaPci = {
    common: (off: number, w: number, v?: number) => (v === undefined ? pci.barRead(PciBar.LEGACY_IO, off, w) : (pci.barWrite(PciBar.LEGACY_IO, off, w, v), 0)),
    device: (off: number, w: number, v?: number) => (v === undefined ? pci.barRead(PciBar.LEGACY_IO, LegacyReg.CONFIG_MSIX + off, w) : (pci.barWrite(PciBar.LEGACY_IO, LegacyReg.CONFIG_MSIX + off, w, v), 0)),
  };
  const viaAdmin = {
    common: (off: number, w: number, v?: number) => {
      const r = v === undefined ? call(h, m.member, LegacyOpcode.COMMON_CFG_READ, Uint8Array.of(off), w) : call(h, m.member, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(off, le(v, w)));
      assert.equal(r.status, AdminStatus.OK, `common ${off}/${w}`);
      return v === undefined ? fromLe(r.result) : 0;
    },
    device: (off: number, w: number, v?: number) => {
      const r = v === undefined ? call(h, m.member, LegacyOpcode.DEV_CFG_READ, Uint8Array.of(off), w) : call(h, m.member, LegacyOpcode.DEV_CFG_WRITE, writeCmd(off, le(v, w)));
      assert.equal(r.status, AdminStatus.OK, `device ${off}/${w}`);
      return v === undefined ? fromLe(r.result) : 0;
    },
  };
  return { refDev, refCore: () => cores.at(-1)!, pci, m, h, viaPci, viaAdmin };
}

describe('admin legacy interface commands, device side (2.12.1.1)', () => {
  it('device/admin-cmds-legacy-interface/1: all four configuration commands are served together, for the SR-IOV group only', () => {
    const h = new LegacyInterfaceHandler();
    assert.deepEqual([...h.opcodes], [0x2, 0x3, 0x4, 0x5]);
    assert.deepEqual(h.groupTypes, [ADMIN_GROUP_SRIOV]);
    const { member: m } = member();
    const self: AdminMember = { ...m, groupType: ADMIN_GROUP_SELF, memberId: 0n };
    const r = call(h, self, LegacyOpcode.COMMON_CFG_READ, Uint8Array.of(LegacyReg.STATUS), 1);
    assert.equal(r.status, AdminStatus.EINVAL);
    assert.equal(r.qualifier, AdminStatusQualifier.INVALID_GROUP);
    assert.equal(call(h, m, LegacyOpcode.NOTIFY_INFO, new Uint8Array(0), 64).qualifier, AdminStatusQualifier.INVALID_OPCODE, 'NOTIFY_INFO only when configured');
  });

  it('device/admin-cmds-legacy-interface/5, device/admin-cmds-legacy-interface/6, device/admin-cmds-legacy-interface/7, device/admin-cmds-legacy-interface/8: every access has the effect it has through a legacy I/O BAR', () => {
    const { refDev, refCore, m, viaPci, viaAdmin } = twins();
    const reads: [string, number, number][] = [];
    for (const [name, io] of [
      ['pci', viaPci],
      ['admin', viaAdmin],
    ] as const) {
      const r = (label: string, v: number) => reads.push([`${name}:${label}`, label.length, v]);
      io.common(LegacyReg.STATUS, 1, 0);
      r('host features', io.common(LegacyReg.HOST_FEATURES, 4));
      io.common(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER);
      io.common(LegacyReg.GUEST_FEATURES, 4, 0x221);
      r('guest features', io.common(LegacyReg.GUEST_FEATURES, 4));
      io.common(LegacyReg.QUEUE_SELECT, 2, 1);
      r('queue select', io.common(LegacyReg.QUEUE_SELECT, 2));
      r('queue size', io.common(LegacyReg.QUEUE_SIZE, 2));
      io.common(LegacyReg.QUEUE_PFN, 4, 7);
      r('queue pfn', io.common(LegacyReg.QUEUE_PFN, 4));
      io.common(LegacyReg.QUEUE_MSIX_VECTOR, 2, 2);
      r('queue vector', io.common(LegacyReg.QUEUE_MSIX_VECTOR, 2));
      io.common(LegacyReg.CONFIG_MSIX_VECTOR, 2, 0);
      r('config vector', io.common(LegacyReg.CONFIG_MSIX_VECTOR, 2));
      io.common(LegacyReg.QUEUE_SELECT, 2, 0);
      r('queue 0 pfn', io.common(LegacyReg.QUEUE_PFN, 4));
      io.common(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK);
      r('status', io.common(LegacyReg.STATUS, 1));
      io.common(LegacyReg.QUEUE_NOTIFY, 2, 1);
      r('cfg 0/4', io.device(0, 4));
      r('cfg 6/2', io.device(6, 2));
      r('cfg 15/1', io.device(15, 1));
      io.device(8, 4, 0xdeadbeef);
      r('cfg 8/4 after write', io.device(8, 4));
      r('cfg 8/1', io.device(8, 1));
    }
    const half = reads.length / 2;
    for (let i = 0; i < half; i++) {
      assert.equal(reads[half + i]![2], reads[i]![2], `${reads[half + i]![0]} = ${reads[i]![0]}`);
    }
    assert.equal(reads.find((x) => x[0] === 'admin:queue pfn')![2], 7);
    assert.equal(reads.find((x) => x[0] === 'admin:cfg 8/4 after write')![2], 0xdeadbeef);
    const a = m.core;
    const b = refCore();
    assert.equal(a.legacy, true, 'the member serves its legacy interface');
    assert.equal(a.status, b.status);
    assert.equal(a.driverFeatures, b.driverFeatures);
    assert.deepEqual(a.queueRegisters(1), b.queueRegisters(1));
    assert.deepEqual(m.dev.config, refDev.config);
    assert.deepEqual(m.dev.notified, refDev.notified);
    assert.deepEqual(m.dev.notified, [1]);
  });

  it('device/admin-cmds-legacy-interface/2: data is decoded and encoded little-endian', () => {
    const { core, dev, member: m } = member();
    const h = new LegacyInterfaceHandler();
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.STATUS, Uint8Array.of(0))).status, AdminStatus.OK);
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.STATUS, Uint8Array.of(Status.ACKNOWLEDGE | Status.DRIVER))).status, AdminStatus.OK);
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.GUEST_FEATURES, Uint8Array.of(0x21, 0x02, 0, 0))).status, AdminStatus.OK);
    assert.equal(core.driverFeatures, 0x221n);
    const hf = call(h, m, LegacyOpcode.COMMON_CFG_READ, Uint8Array.of(LegacyReg.HOST_FEATURES), 4);
    assert.deepEqual([...hf.result], [0x21, 0x02, 0, 0]);
    const cfg = call(h, m, LegacyOpcode.DEV_CFG_READ, Uint8Array.of(4), 4);
    assert.deepEqual([...cfg.result], [...dev.config.subarray(4, 8)], 'byte i of the data is byte i of the configuration');
    call(h, m, LegacyOpcode.DEV_CFG_WRITE, writeCmd(0, Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 0x11, 0x22, 0x33, 0x44)));
    assert.deepEqual([...dev.config.subarray(0, 8)], [0xaa, 0xbb, 0xcc, 0xdd, 0x11, 0x22, 0x33, 0x44]);
    assert.deepEqual([...call(h, m, LegacyOpcode.DEV_CFG_READ, Uint8Array.of(0), 8).result], [0xaa, 0xbb, 0xcc, 0xdd, 0x11, 0x22, 0x33, 0x44]);
  });

  it('device/admin-cmds-legacy-interface/3: a common configuration access that is not one field or leaves the header fails and changes nothing', () => {
    const { core, member: m } = member();
    const h = new LegacyInterfaceHandler();
    call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.STATUS, Uint8Array.of(Status.ACKNOWLEDGE)));
    const bad: [number, Uint8Array][] = [
      [LegacyReg.GUEST_FEATURES, Uint8Array.of(1, 2)], // half a field
      [LegacyReg.GUEST_FEATURES + 1, Uint8Array.of(1, 2, 3, 4)], // misaligned, across fields
      [LegacyReg.STATUS, Uint8Array.of(0, 0)], // status and ISR together
      [LegacyReg.QUEUE_SIZE, Uint8Array.of(0, 1)], // read-only
      [LegacyReg.HOST_FEATURES, Uint8Array.of(0xff, 0xff, 0xff, 0xff)], // read-only
      [LEGACY_COMMON_CFG_SIZE, Uint8Array.of(0)], // the device configuration
      [LEGACY_COMMON_CFG_SIZE - 1, Uint8Array.of(0, 0)], // crosses into it
      [LegacyReg.CONFIG_MSIX_VECTOR, Uint8Array.of(9, 0)], // a vector outside the member's table
      [0, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)], // 8 bytes
      [LegacyReg.STATUS, new Uint8Array(0)], // no data
      [200, Uint8Array.of(0)],
    ];
    for (const [off, data] of bad) {
      const r = call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(off, data));
      assert.equal(r.status, AdminStatus.EINVAL, `write ${off}/${data.length}`);
      assert.equal(r.qualifier, AdminStatusQualifier.INVALID_FIELD);
    }
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, Uint8Array.of(LegacyReg.STATUS, 0, 0)).status, AdminStatus.EINVAL, 'header cut short');
    for (const [off, len] of [
      [LegacyReg.HOST_FEATURES, 2],
      [LegacyReg.STATUS, 2],
      [LEGACY_COMMON_CFG_SIZE, 1],
      [22, 4],
      [LegacyReg.QUEUE_SIZE, 0],
      [LegacyReg.QUEUE_SIZE, 3],
    ] as const) {
      assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_READ, Uint8Array.of(off), len).status, AdminStatus.EINVAL, `read ${off}/${len}`);
    }
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_READ, new Uint8Array(0), 1).status, AdminStatus.EINVAL, 'no data: offset 0, a 4-byte field read with 1 byte');
    // A padded write of a 1-byte field whose padding is not zero is not one field.
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.STATUS, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1))).status, AdminStatus.EINVAL);
    assert.equal(core.status, Status.ACKNOWLEDGE);
    assert.equal(core.driverFeatures, 0n);
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_READ, Uint8Array.of(LegacyReg.CONFIG_MSIX_VECTOR), 2).result[0], 0xff, 'still NO_VECTOR');
  });

  it('device/admin-cmds-legacy-interface/4: a device configuration access outside it or across fields fails and changes nothing', () => {
    const { dev, member: m } = member(60);
    const before = dev.config.slice();
    const generic = new LegacyInterfaceHandler();
    const blk = new LegacyInterfaceHandler({ configLayout: BLK_CONFIG_LAYOUT });
    for (const [h, off, len] of [
      [generic, 58, 4], // past the end
      [generic, 60, 1],
      [generic, 1, 2], // unaligned without a layout
      [generic, 0, 3],
      [generic, 0, 16],
      [blk, 0, 0],
      [blk, 6, 4], // capacity (0..7) and size_max (8..11)
      [blk, 14, 4], // size_max's neighbours: seg_max (12..15) and geometry (16..)
    ] as const) {
      assert.equal(call(h, m, LegacyOpcode.DEV_CFG_READ, Uint8Array.of(off), len).status, AdminStatus.EINVAL, `read ${off}/${len}`);
      assert.equal(call(h, m, LegacyOpcode.DEV_CFG_WRITE, writeCmd(off, new Uint8Array(len).fill(0xee))).status, AdminStatus.EINVAL, `write ${off}/${len}`);
    }
    assert.deepEqual(dev.config, before);
    // Inside one field: the whole of it or a part (a legacy driver reads capacity in halves).
    assert.equal(call(blk, m, LegacyOpcode.DEV_CFG_READ, Uint8Array.of(0), 8).status, AdminStatus.OK);
    assert.equal(call(blk, m, LegacyOpcode.DEV_CFG_READ, Uint8Array.of(4), 4).status, AdminStatus.OK);
    assert.equal(call(blk, m, LegacyOpcode.DEV_CFG_READ, Uint8Array.of(1), 3).status, AdminStatus.OK);
    assert.equal(call(generic, m, LegacyOpcode.DEV_CFG_READ, Uint8Array.of(56), 4).status, AdminStatus.OK);
  });

  it('buffers padded to 8 bytes (as drivers supply them, 2.13) address the field at the offset', () => {
    const { core, dev, member: m } = member(60);
    const h = new LegacyInterfaceHandler({ configLayout: BLK_CONFIG_LAYOUT });
    const pad = (b: number[]) => Uint8Array.of(...b, ...new Array<number>(8 - b.length).fill(0));
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.STATUS, pad([0]))).status, AdminStatus.OK);
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.STATUS, pad([Status.ACKNOWLEDGE | Status.DRIVER]))).status, AdminStatus.OK);
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.GUEST_FEATURES, pad([0x21, 0x02, 0, 0]))).status, AdminStatus.OK);
    assert.equal(core.driverFeatures, 0x221n);
    const r = call(h, m, LegacyOpcode.COMMON_CFG_READ, pad([LegacyReg.QUEUE_SIZE]), 8);
    assert.equal(r.written, 2);
    assert.deepEqual([...r.result], [0, 1], 'queue size 256');
    const c = call(h, m, LegacyOpcode.DEV_CFG_READ, pad([20]), 8);
    assert.equal(c.written, 4, 'the rest of blk_size');
    assert.deepEqual([...c.result], [...dev.config.subarray(20, 24)]);
    assert.equal(call(h, m, LegacyOpcode.DEV_CFG_READ, pad([20]), 16).status, AdminStatus.EINVAL, 'more than padding');
  });

  it('a member a modern driver is driving refuses legacy accesses (as a transitional function does); a status reset takes it', () => {
    const { core, member: m } = member();
    const h = new LegacyInterfaceHandler();
    core.setStatus(Status.ACKNOWLEDGE);
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_READ, Uint8Array.of(LegacyReg.STATUS), 1).status, AdminStatus.EINVAL);
    assert.equal(core.legacy, false);
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.STATUS, Uint8Array.of(0))).status, AdminStatus.OK);
    assert.equal(core.legacy, true);
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_READ, Uint8Array.of(LegacyReg.HOST_FEATURES), 4).result[3]! & 0x1, 0, 'no VERSION_1 bit in a 32-bit legacy word');
  });

  it('device/admin-cmds-legacy-interface/9: a notification written to a NOTIFY_INFO address acts as COMMON_CFG_WRITE at Queue Notify', () => {
    const { dev, member: m } = member();
    const h = new LegacyInterfaceHandler({ notifyInfo: () => [{ flags: LegacyNotifyFlags.MEMBER, bar: 2, offset: 0x40 }] });
    const w = (off: number, v: number, width: number) => assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(off, le(v, width))).status, AdminStatus.OK);
    w(LegacyReg.STATUS, 0, 1);
    w(LegacyReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER, 1);
    for (const q of [0, 1]) {
      w(LegacyReg.QUEUE_SELECT, q, 2);
      w(LegacyReg.QUEUE_PFN, 16 + q * 8, 4);
    }
    w(LegacyReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK, 1);
    w(LegacyReg.QUEUE_NOTIFY, 1, 2);
    assert.equal(h.notify(m, 1), true);
    w(LegacyReg.QUEUE_NOTIFY, 0, 2);
    assert.equal(h.notify(m, 0), true);
    assert.deepEqual(dev.notified, [1, 1, 0, 0]);
    assert.equal(h.notify(m, 7), false, 'no such queue: refused like the command');
    assert.equal(call(h, m, LegacyOpcode.COMMON_CFG_WRITE, writeCmd(LegacyReg.QUEUE_NOTIFY, le(7, 2))).status, AdminStatus.EINVAL);
  });

  it('device/admin-cmds-legacy-interface/10: with NOTIFY_INFO all four configuration commands are served; entries end with flags 0, use BARs 1-5 and 2-byte aligned offsets', () => {
    const entries: LegacyNotifyEntry[] = [
      { flags: LegacyNotifyFlags.OWNER, bar: 4, offset: 0x1000 },
      { flags: LegacyNotifyFlags.MEMBER, bar: 1, offset: 0x22 },
      { flags: LegacyNotifyFlags.MEMBER, bar: 5, offset: 0 },
    ];
    const h = new LegacyInterfaceHandler({ notifyInfo: () => entries });
    assert.deepEqual([...h.opcodes].sort(), [0x2, 0x3, 0x4, 0x5, 0x6]);
    const { member: m } = member();
    const r = call(h, m, LegacyOpcode.NOTIFY_INFO, new Uint8Array(0), 64);
    assert.equal(r.status, AdminStatus.OK);
    assert.equal(r.written, 64);
    const v = new DataView(r.result.buffer, r.result.byteOffset, 64);
    for (let i = 0; i < 3; i++) {
      assert.equal(r.result[i * 16], entries[i]!.flags);
      assert.equal(r.result[i * 16 + 1], entries[i]!.bar);
      assert.ok(r.result[i * 16 + 1]! >= 1 && r.result[i * 16 + 1]! <= 5);
      assert.equal(Number(v.getBigUint64(i * 16 + 8, true)), entries[i]!.offset);
      assert.equal(Number(v.getBigUint64(i * 16 + 8, true)) % 2, 0);
    }
    assert.equal(r.result[48], 0, 'the last entry has flags 0');
    assert.equal(call(h, m, LegacyOpcode.NOTIFY_INFO, new Uint8Array(8), 64).status, AdminStatus.OK, 'no command data: padding ignored');
    // A device configured with entries breaking the rules is refused when it would report them.
    for (const bad of [
      [{ flags: 1, bar: 0, offset: 0 }],
      [{ flags: 2, bar: 6, offset: 0 }],
      [{ flags: 1, bar: 1, offset: 3 }],
      [{ flags: 3, bar: 1, offset: 0 }],
      [...entries, entries[0]!],
    ]) {
      assert.throws(() => encodeLegacyNotifyInfo(bad), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    }
  });
});

describe('admin legacy interface commands, driver side (2.12.1.1)', () => {
  function setup(configLayout = BLK_CONFIG_LAYOUT, notifyInfo?: () => readonly LegacyNotifyEntry[]) {
    const m = member(60);
    const h = new LegacyInterfaceHandler({ configLayout, ...(notifyInfo ? { notifyInfo } : {}) });
    const lb = adminLoopback([h], (g, id) => (g === ADMIN_GROUP_SRIOV && id === 1n ? m.member : null));
    const d = new LegacyMemberDriver(lb.send, 1n, configLayout);
    return { ...m, h, lb, d };
  }

  it('driver/admin-cmds-legacy-interface/1: the driver encodes and decodes data little-endian', async () => {
    const { d, lb, core, dev } = setup();
    await d.writeCommon(LegacyReg.STATUS, 1, 0);
    await d.writeCommon(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER);
    await d.writeCommon(LegacyReg.GUEST_FEATURES, 4, 0x00000221);
    assert.deepEqual([...lb.sent.at(-1)!.data.subarray(8)], [0x21, 0x02, 0x00, 0x00]);
    assert.equal(core.driverFeatures, 0x221n);
    assert.equal(await d.readCommon(LegacyReg.GUEST_FEATURES, 4), 0x221);
    await d.writeDeviceValue(0, 8, 0x0102030405);
    assert.deepEqual([...lb.sent.at(-1)!.data.subarray(8)], [5, 4, 3, 2, 1, 0, 0, 0]);
    assert.deepEqual([...dev.config.subarray(0, 8)], [5, 4, 3, 2, 1, 0, 0, 0]);
    assert.equal(await d.readDeviceValue(0, 8), 0x0102030405);
    assert.equal(await d.readDeviceValue(20, 4), 0x18171615, 'blk_size bytes 21..24 of the stub config, little-endian');
  });

  it('driver/admin-cmds-legacy-interface/2, driver/admin-cmds-legacy-interface/3: the driver accesses one field at a time', async () => {
    const { d, lb } = setup();
    const refusedCall = (p: Promise<unknown>) => assert.rejects(p, (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    await refusedCall(d.readCommon(LegacyReg.HOST_FEATURES, 2));
    await refusedCall(d.writeCommon(LegacyReg.STATUS, 2, 0));
    await refusedCall(d.readCommon(LegacyReg.CONFIG_MSIX, 1));
    await refusedCall(d.readDevice(6, 4));
    await refusedCall(d.writeDevice(0, new Uint8Array(9)));
    await refusedCall(d.readDevice(0, 0));
    assert.equal(lb.sent.length, 0, 'nothing sent');
    assert.equal(await d.readCommon(LegacyReg.QUEUE_SIZE, 2), 256);
    assert.equal((await d.readDevice(4, 4)).length, 4, 'half of capacity is inside one field');
  });

  it('driver/admin-cmds-legacy-interface/4: with NOTIFY_INFO the driver sends notifications to the notification address', async () => {
    const { d, lb, dev, h, member: m } = setup(BLK_CONFIG_LAYOUT, () => [{ flags: LegacyNotifyFlags.MEMBER, bar: 2, offset: 0x10 }]);
    await d.writeCommon(LegacyReg.STATUS, 1, 0);
    await d.writeCommon(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER);
    await d.writeCommon(LegacyReg.QUEUE_PFN, 4, 16);
    await d.writeCommon(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK);
    assert.equal(await d.notify(0), 'command', 'before NOTIFY_INFO: COMMON_CFG_WRITE at Queue Notify');
    const entries = await d.notifyInfo({ owner: [0, 0, 0, 0, 0, 0], member: [0, 0, 0x100, 0, 0, 0] });
    assert.deepEqual(entries, [{ flags: LegacyNotifyFlags.MEMBER, bar: 2, offset: 0x10 }]);
    const writes: [LegacyNotifyEntry, number[]][] = [];
    const before = lb.sent.length;
    const path = await d.notify(0, (entry, value) => {
      writes.push([entry, [...value]]);
      h.notify(m, fromLe(value));
    });
    assert.equal(path, 'address');
    assert.equal(lb.sent.length, before, 'no command for the notification');
    assert.deepEqual(writes, [[entries[0], [0, 0]]]);
    assert.deepEqual(dev.notified, [0, 0]);
  });

  it('driver/admin-cmds-legacy-interface/5, driver/admin-cmds-legacy-interface/6: the driver stops at flags 0 and ignores entries with bad flags, BARs or offsets', () => {
    const result = new Uint8Array(64);
    const v = new DataView(result.buffer);
    const put = (i: number, flags: number, bar: number, offset: bigint) => {
      result[i * 16] = flags;
      result[i * 16 + 1] = bar;
      v.setBigUint64(i * 16 + 8, offset, true);
    };
    const bars = { owner: [0, 0x1000, 0, 0, 0, 0], member: [0, 0, 0x100, 0, 0, 0] };
    put(0, 3, 1, 0n); // reserved flags
    put(1, 1, 2, 0n); // owner BAR2 absent
    put(2, 2, 2, 0x10n); // valid
    put(3, 1, 1, 0x20n); // valid
    assert.deepEqual(decodeLegacyNotifyInfo(result, bars), [
      { flags: 2, bar: 2, offset: 0x10 },
      { flags: 1, bar: 1, offset: 0x20 },
    ]);
    put(1, 0, 0, 0n); // end of list: entries 2 and 3 are ignored
    assert.deepEqual(decodeLegacyNotifyInfo(result, bars), []);
    put(0, 2, 2, 0x11n); // odd offset
    put(1, 2, 2, 0xffn); // odd and the 16-bit write would leave the BAR
    put(2, 2, 2, 0xfen); // last 2 bytes of the BAR: valid
    put(3, 1, 0, 0n); // BAR0 is not 1..5
    assert.deepEqual(decodeLegacyNotifyInfo(result, bars), [{ flags: 2, bar: 2, offset: 0xfe }]);
    put(2, 2, 2, 0x100n); // just outside
    assert.deepEqual(decodeLegacyNotifyInfo(result, bars), []);
    put(0, 1, 6, 0n);
    put(1, 2, 2, 1n << 62n);
    assert.deepEqual(decodeLegacyNotifyInfo(result, bars), []);
  });
});
