/**
 * admin.tex (2.12 Device groups, 2.13 Administration virtqueues) proven on the library: device
 * rules with a hand-built driver that puts arbitrary buffers on the administration queue (bad
 * lengths, unknown opcodes and groups, members out of range, commands not in use, odd chain
 * shapes), driver rules on AdminDriver with a device that records what it received. Both ring
 * layouts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ADMIN_GROUP_SELF,
  ADMIN_GROUP_SRIOV,
  type AdminCommandHandler,
  AdminStatus,
  AdminStatusQualifier,
  adminError,
  adminOk,
} from '../../src/admin/admin-command-handler.js';
import { effectiveAdminQualifier, effectiveAdminStatus } from '../../src/admin/admin-driver.js';
import { SriovDriverControl } from '../../src/admin/sriov-driver.js';
import { ErrorCode } from '../../src/errors.js';
import type { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { DeviceCore } from '../../src/device/device-core.js';
import { AdminOpcode, encodeAdminCmdList, decodeAdminCmdList } from '../../src/spec/admin.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { SriovCapability } from '../../src/transport/pci/sriov-capability.js';
import { CommonCfg, PciBar } from '../../src/transport/pci/constants.js';
import { PciDeviceTransport } from '../../src/transport/pci/pci-device.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { ASYNC_OPCODE, ECHO_OPCODE, EchoHandler, adminRig, startAdminDriver, startVirtio, type AdminRig } from './admin-rig.js';

/** A hand-built driver on the administration queue: any parts, any lengths. */
class RawAdmin {
  private token = 1;
  constructor(
    private readonly rig: AdminRig,
    private readonly virtio: VirtioDriver,
    readonly index = virtio.adminQueueIndices[0]!,
  ) {}

  /** Makes one buffer available (readable parts, writable parts pre-filled with `fill`). */
  post(out: readonly Uint8Array[], inLens: readonly number[], fill = 0xaa): { token: number; ins: number[] } {
    const { mem, dma } = this.rig;
    const outs = out.map((b) => {
      const a = dma.alloc(Math.max(b.length, 1), 8);
      mem.write(a, b);
      return { addr: a, len: b.length };
    });
    const ins = inLens.map((n) => {
      const a = dma.alloc(Math.max(n, 1), 8);
      mem.slice(a, Math.max(n, 1)).fill(fill);
      return { addr: a, len: n };
    });
    const token = this.token++;
    assert.equal(this.virtio.queue(this.index).add(outs, ins, token), true);
    this.virtio.kick(this.index);
    return { token, ins: ins.map((s) => s.addr) };
  }

  /** Waits (bounded) for the next used buffer; returns its token and used length. */
  async used(): Promise<{ token: number; len: number }> {
    const q = this.virtio.queue(this.index);
    for (let i = 0; i < 1000; i++) {
      const t = q.takeUsed();
      if (t !== undefined) return { token: t, len: q.lastUsedLen };
      await new Promise((r) => setImmediate(r));
    }
    throw new Error('no used buffer');
  }

  /** One command: header + data in one readable part, `inLen` writable bytes; status, qualifier, bytes. */
  async cmd(opcode: number, group: number, member: bigint, data: Uint8Array = new Uint8Array(0), inLen = 64, fill = 0xaa): Promise<{ status: number; qualifier: number; len: number; bytes: Uint8Array }> {
    const p = this.post([header(opcode, group, member, data)], [inLen], fill);
    const u = await this.used();
    assert.equal(u.token, p.token);
    const bytes = this.rig.mem.slice(p.ins[0]!, inLen).slice();
    const v = new DataView(bytes.buffer);
    return { status: inLen >= 2 ? v.getUint16(0, true) : -1, qualifier: inLen >= 4 ? v.getUint16(2, true) : -1, len: u.len, bytes };
  }
}

/** struct virtio_admin_cmd's readable part. */
function header(opcode: number, group: number, member: bigint, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const b = new Uint8Array(24 + data.length);
  const v = new DataView(b.buffer);
  v.setUint16(0, opcode, true);
  v.setUint16(2, group, true);
  v.setBigUint64(16, member, true);
  b.set(data, 24);
  return b;
}

const OTHER_OPCODE = 0x30;

/** A second module: opcode 0x30 for the self group, requiring ECHO_OPCODE to be used with it. */
class DependentHandler implements AdminCommandHandler {
  readonly opcodes = [OTHER_OPCODE];
  readonly groupTypes = [ADMIN_GROUP_SELF];
  handle(): ReturnType<AdminCommandHandler['handle']> {
    return adminOk(0);
  }
  acceptsUse(_g: number, used: ReadonlySet<number>): boolean {
    return !used.has(OTHER_OPCODE) || used.has(ECHO_OPCODE);
  }
}

function started(packed: boolean, opts: Parameters<typeof adminRig>[0] = {}, adminQueues = 1): { rig: AdminRig; virtio: VirtioDriver; raw: RawAdmin; handler: EchoHandler } {
  const handler = new EchoHandler();
  const rig = adminRig({ ...opts, admin: { handlers: [handler, new DependentHandler()], ...(opts.admin ?? {}) } });
  const virtio = startVirtio(rig, packed, { adminQueues });
  return { rig, virtio, raw: new RawAdmin(rig, virtio), handler };
}

const use = (ops: number[]): Uint8Array => encodeAdminCmdList(ops);

for (const packed of [false, true]) {
  const ring = packed ? 'packed' : 'split';

  describe(`admin.tex device rules (${ring} ring)`, () => {
    it('device/admin/1: group_type checked first, then opcode, then group_member_id', async () => {
      const { raw } = started(packed);
      let r = await raw.cmd(0x7777, 5, 99n);
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_GROUP]);
      r = await raw.cmd(0x7777, ADMIN_GROUP_SELF, 99n);
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE]);
      r = await raw.cmd(0x8001, ADMIN_GROUP_SELF, 0n);
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE], 'reserved opcode range');
      r = await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([0, 1, ECHO_OPCODE]));
      assert.equal(r.status, AdminStatus.OK);
      r = await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SELF, 1n);
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER], 'the self group has member 0 only');
      r = await raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SELF, 77n);
      assert.equal(r.status, AdminStatus.OK, 'LIST_QUERY does not use group_member_id');
    });

    it('device/admin/2, device/admin/3, device/admin/20: OK with qualifier OK on success, a non-OK status on failure, both always written', async () => {
      const { raw } = started(packed);
      let r = await raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SELF, 0n, undefined, 64, 0xff);
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.OK, AdminStatusQualifier.OK]);
      assert.deepEqual([...r.bytes.subarray(4, 8)], [0, 0, 0, 0], 'reserved2 zeroed');
      r = await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, undefined, 64, 0xff);
      assert.notEqual(r.status, AdminStatus.OK);
      assert.equal(r.qualifier, AdminStatusQualifier.INVALID_OPCODE);
    });

    it('device/admin/4, device/admin/5: an EINVAL command changes nothing: used list, handlers, device status', async () => {
      const { raw, rig, handler } = started(packed);
      assert.equal((await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([0, 1, ECHO_OPCODE]))).status, AdminStatus.OK);
      const status = rig.cores.at(-1)!.status;
      const r = await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([0, 1, 0x55]));
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD]);
      assert.deepEqual(rig.device.dispatcher.used(ADMIN_GROUP_SELF), [0, 1, ECHO_OPCODE], 'used list unchanged');
      await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SELF, 9n);
      assert.equal(handler.seen.length, 0, 'no handler ran for a failed command');
      assert.equal(rig.cores.at(-1)!.status, status, 'no error state');
      assert.equal(rig.cores.at(-1)!.status & Status.DEVICE_NEEDS_RESET, 0);
      assert.equal((await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n)).status, AdminStatus.OK, 'still usable');
    });

    it('device/admin/6: a module refuses a LIST_USE that breaks its dependencies with EINVAL / INVALID_FIELD', async () => {
      const { raw, rig } = started(packed);
      let r = await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([0, 1, OTHER_OPCODE]));
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD]);
      assert.deepEqual(rig.device.dispatcher.used(ADMIN_GROUP_SELF), [0, 1]);
      r = await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([0, 1, ECHO_OPCODE, OTHER_OPCODE]));
      assert.equal(r.status, AdminStatus.OK);
    });

    it('device/admin/8, device/admin/9, device/admin/10: LIST_QUERY/LIST_USE only after reset, then exactly the list used', async () => {
      const { raw, rig, virtio } = started(packed);
      let r = await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n);
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE], 'supported but not used yet');
      assert.equal((await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([0, 1, ECHO_OPCODE]))).status, AdminStatus.OK);
      assert.equal((await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, Uint8Array.of(7))).status, AdminStatus.OK);
      r = await raw.cmd(ASYNC_OPCODE, ADMIN_GROUP_SELF, 0n);
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE], 'supported, not in the list used');
      // The list may leave out LIST_QUERY and LIST_USE: they then fail too.
      assert.equal((await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([ECHO_OPCODE]))).status, AdminStatus.OK);
      assert.equal((await raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SELF, 0n)).qualifier, AdminStatusQualifier.INVALID_OPCODE);
      virtio.reset();
      const raw2 = new RawAdmin(rig, startVirtio(rig, packed));
      assert.equal((await raw2.cmd(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n)).qualifier, AdminStatusQualifier.INVALID_OPCODE, 'after reset: not in use');
      assert.equal((await raw2.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SELF, 0n)).status, AdminStatus.OK, 'after reset: LIST_QUERY usable');
    });

    it('device/admin/11, device/admin/12: the supported list never shrinks; after a reset the same LIST_USE succeeds', async () => {
      const { raw, rig, virtio } = started(packed);
      const first = decodeAdminCmdList((await raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SELF, 0n)).bytes.subarray(8, 16));
      assert.deepEqual(first, [0, 1, ECHO_OPCODE, ASYNC_OPCODE, OTHER_OPCODE].sort((a, b) => a - b));
      const list = use([0, 1, ECHO_OPCODE, ASYNC_OPCODE]);
      assert.equal((await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, list)).status, AdminStatus.OK);
      rig.device.addHandler({ opcodes: [0x41], groupTypes: [ADMIN_GROUP_SELF], handle: () => adminOk(0) });
      virtio.reset();
      const raw2 = new RawAdmin(rig, startVirtio(rig, packed));
      const later = decodeAdminCmdList((await raw2.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SELF, 0n, undefined, 64)).bytes.subarray(8, 24));
      for (const op of first) assert.ok(later.includes(op), `0x${op.toString(16)} still supported`);
      assert.ok(later.includes(0x41), 'and the list grew');
      assert.equal((await raw2.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, list)).status, AdminStatus.OK);
    });

    it('device/admin/15, device/admin/18: short parts: missing readable bytes read as zero, writes stop at the end of the writable part', async () => {
      const { raw, rig } = started(packed);
      // Only opcode + group_type (4 bytes): LIST_QUERY of the self group.
      let p = raw.post([Uint8Array.of(0, 0, 0, 0)], [4]);
      let u = await raw.used();
      assert.equal(u.len, 4, 'only what fits was written');
      assert.deepEqual([...rig.mem.slice(p.ins[0]!, 4)], [0, 0, 0, 0], 'status OK, qualifier OK');
      // A result buffer shorter than the list: status header + 3 bytes of the bitmap.
      const r = await raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SELF, 0n, undefined, 11);
      assert.equal(r.status, AdminStatus.OK, 'not failed because the buffer is short');
      assert.equal(r.len, 11);
      assert.deepEqual([...r.bytes.subarray(8, 11)], [0x03, 0, 0]);
      // A writable part of 1 byte: the low byte of status only.
      p = raw.post([header(0x7777, 0, 0n)], [1], 0xee);
      u = await raw.used();
      assert.equal(u.len, 1);
      assert.equal(rig.mem.slice(p.ins[0]!, 1)[0], AdminStatus.EINVAL);
    });

    it('device/admin/16, device/admin/17, device/admin/19: long and split parts: extra data ignored, the structure written zero-padded to 8 bytes, used length exact', async () => {
      const { raw, rig } = started(packed);
      // LIST_USE split over three readable parts with 64 trailing zero bytes.
      const whole = header(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, new Uint8Array([...use([0, 1, ECHO_OPCODE]), ...new Uint8Array(64)]));
      let p = raw.post([whole.subarray(0, 5), whole.subarray(5, 30), whole.subarray(30)], [3, 5]);
      let u = await raw.used();
      assert.equal(u.len, 8, 'status header only');
      assert.deepEqual(rig.device.dispatcher.used(ADMIN_GROUP_SELF), [0, 1, ECHO_OPCODE]);
      // A 3-byte result in a 4096-byte writable part: 8 + 3 padded to 16, the rest untouched.
      p = raw.post([header(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, Uint8Array.of(1, 2, 3))], [4096], 0xaa);
      u = await raw.used();
      assert.equal(u.len, 16);
      const b = rig.mem.slice(p.ins[0]!, 4096);
      assert.deepEqual([...b.subarray(0, 16)], [0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xfd, 0xfc, 0, 0, 0, 0, 0]);
      assert.ok(b.subarray(16).every((x) => x === 0xaa), 'nothing written past the structure');
    });

    it('device/admin/21: commands on one queue are processed in the order queued, even behind an asynchronous one', async () => {
      const { raw, handler } = started(packed);
      assert.equal((await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([0, 1, ECHO_OPCODE, ASYNC_OPCODE]))).status, AdminStatus.OK);
      const a = raw.post([header(ASYNC_OPCODE, 0, 0n, Uint8Array.of(1))], [16]);
      const b = raw.post([header(ECHO_OPCODE, 0, 0n, Uint8Array.of(2))], [16]);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(handler.seen.map((s) => s.opcode), [ASYNC_OPCODE], 'the second waits for the first');
      handler.waiting.shift()!();
      const first = await raw.used();
      const second = await raw.used();
      assert.deepEqual([first.token, second.token], [a.token, b.token]);
      assert.deepEqual(handler.seen.map((s) => s.opcode), [ASYNC_OPCODE, ECHO_OPCODE]);
    });

    it('device/admin/22: distinct administration queues are processed independently', async () => {
      const { rig, virtio, handler } = started(packed, { admin: { queues: 2 } }, 2);
      assert.equal(virtio.adminQueueIndices.length, 2);
      const q0 = new RawAdmin(rig, virtio, virtio.adminQueueIndices[0]);
      const q1 = new RawAdmin(rig, virtio, virtio.adminQueueIndices[1]);
      assert.equal((await q0.cmd(AdminOpcode.LIST_USE, 0, 0n, use([0, 1, ECHO_OPCODE, ASYNC_OPCODE]))).status, AdminStatus.OK);
      q0.post([header(ASYNC_OPCODE, 0, 0n)], [16]);
      const r = await q1.cmd(ECHO_OPCODE, 0, 0n, Uint8Array.of(9), 16);
      assert.equal(r.status, AdminStatus.OK, 'queue 1 completed while queue 0 waits');
      handler.waiting.shift()!();
      assert.equal((await q0.used()).len, 8);
    });

    it('device/admin/7: each group type has its own supported and used lists', async () => {
      const sriovHandler = new EchoHandler([ADMIN_GROUP_SRIOV]);
      const mem = { core: null as DeviceCore | null };
      const cap = new SriovCapability({ totalVfs: 2, createVf: () => ({ core: mem.core! }) });
      const { raw, rig } = started(packed, { pci: { sriov: cap }, admin: { groups: [cap.group] } });
      rig.device.addHandler({ opcodes: [0x50], groupTypes: [ADMIN_GROUP_SRIOV], handle: (_o, _m, _d, res) => sriovHandler.handle(ECHO_OPCODE, _m, _d, res) });
      mem.core = rig.cores[0]!;
      cap.write(0x10, 2, 2);
      cap.write(0x08, 2, 1);
      const self = decodeAdminCmdList((await raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SELF, 0n)).bytes.subarray(8, 24));
      const sriov = decodeAdminCmdList((await raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SRIOV, 0n)).bytes.subarray(8, 24));
      assert.ok(self.includes(ECHO_OPCODE) && !self.includes(0x50));
      assert.ok(sriov.includes(0x50) && !sriov.includes(ECHO_OPCODE));
      assert.equal((await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SRIOV, 0n, use([0, 1, 0x50]))).status, AdminStatus.OK);
      assert.deepEqual(rig.device.dispatcher.used(ADMIN_GROUP_SELF), [0, 1], 'the self group list is untouched');
      assert.equal((await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SELF, 0n, use([0, 1, 0x50]))).qualifier, AdminStatusQualifier.INVALID_FIELD);
    });
  });
}

/** A PF (AdminDevice over EchoDevice) with the SR-IOV capability; VFs are EchoDevices on their own functions. */
function sriovRig(handlers: AdminCommandHandler[], totalVfs = 4): { rig: AdminRig; cap: SriovCapability; vfCores: DeviceCore[] } {
  const vfCores: DeviceCore[] = [];
  const box: { rig: AdminRig | null } = { rig: null };
  const cap = new SriovCapability({
    totalVfs,
    createVf: () => {
      const r = box.rig!;
      const made: DeviceCore[] = [];
      new PciDeviceTransport(r.bus, deviceCoreFactory(new EchoDevice({ queues: [64, 64] }), r.mem, {}, made));
      vfCores.push(made[0]!);
      return { core: made[0]! };
    },
  });
  box.rig = adminRig({ pci: { sriov: cap }, admin: { groups: [cap.group], handlers } });
  return { rig: box.rig, cap, vfCores };
}

/** Logs the opcode of every command the device's dispatcher runs. */
function recordOpcodes(rig: AdminRig): number[] {
  const log: number[] = [];
  const d = rig.device.dispatcher;
  const orig = d.execute.bind(d);
  d.execute = (op, g, m, data, res) => {
    log.push(op);
    return orig(op, g, m, data, res);
  };
  return log;
}

for (const packed of [false, true]) {
  const ring = packed ? 'packed' : 'split';

  describe(`admin.tex SR-IOV group and VIRTIO_F_SR_IOV (${ring} ring)`, () => {
    it('device/admin/14: SR-IOV group: INVALID_GROUP without the capability or with VF Enable clear, INVALID_MEMBER outside 1..NumVFs', async () => {
      const plain = started(packed);
      assert.equal((await plain.raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SRIOV, 0n)).qualifier, AdminStatusQualifier.INVALID_GROUP, 'no SR-IOV capability');
      const handler = new EchoHandler([ADMIN_GROUP_SELF, ADMIN_GROUP_SRIOV]);
      const { rig, cap, vfCores } = sriovRig([handler]);
      const virtio = startVirtio(rig, packed, { wanted: F.SR_IOV });
      const raw = new RawAdmin(rig, virtio);
      let r = await raw.cmd(AdminOpcode.LIST_QUERY, ADMIN_GROUP_SRIOV, 0n);
      assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_GROUP], 'VF Enable clear');
      const sriov = new SriovDriverControl(rig.driverTransport);
      sriov.observe(virtio);
      sriov.enableVfs(2);
      assert.equal(cap.vfs.length, 2);
      assert.equal((await raw.cmd(AdminOpcode.LIST_USE, ADMIN_GROUP_SRIOV, 0n, use([0, 1, ECHO_OPCODE]))).status, AdminStatus.OK);
      for (const bad of [0n, 3n, 1n << 63n]) {
        r = await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SRIOV, bad);
        assert.deepEqual([r.status, r.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER], `member ${bad}`);
      }
      r = await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SRIOV, 2n, Uint8Array.of(5));
      assert.equal(r.status, AdminStatus.OK);
      assert.equal(handler.seen.at(-1)!.member.core, vfCores[1], 'member 2 is VF 2');
      await sriov.disableVfs();
      assert.equal(cap.vfs.length, 0);
      r = await raw.cmd(ECHO_OPCODE, ADMIN_GROUP_SRIOV, 1n);
      assert.equal(r.qualifier, AdminStatusQualifier.INVALID_GROUP, 'the group is gone with VF Enable');
    });

    it('device/content/27, driver/content/39: SR_IOV offered and accepted only on a PF with the SR-IOV capability', () => {
      const plain = adminRig();
      assert.equal(plain.driverTransport.transportFeatures & F.SR_IOV, 0n);
      const v1 = startVirtio(plain, packed, { wanted: F.SR_IOV });
      assert.equal(plain.cores.at(-1)!.deviceFeatures() & F.SR_IOV, 0n, 'not offered without the capability');
      assert.equal(v1.features & F.SR_IOV, 0n, 'not negotiated');
      const { rig } = sriovRig([]);
      assert.notEqual(rig.cores.at(-1)!.deviceFeatures() & F.SR_IOV, 0n, 'offered with the capability');
      const v2 = startVirtio(rig, packed, { wanted: F.SR_IOV });
      assert.notEqual(v2.features & F.SR_IOV, 0n);
    });

    it('driver/content/38, driver/content/40, driver/content/41: VFs enabled only after SR_IOV was negotiated with FEATURES_OK, and again after a reset', () => {
      const { rig, cap } = sriovRig([]);
      const without = startVirtio(rig, packed);
      const sriov = new SriovDriverControl(rig.driverTransport);
      sriov.observe(without);
      assert.equal(sriov.mayEnable, false);
      assert.throws(() => sriov.enableVfs(1), (e: { code?: string }) => e.code === ErrorCode.FEATURES_REJECTED);
      assert.equal(cap.vfEnabled, false, 'nothing written to the capability');
      without.reset();
      const withIt = startVirtio(rig, packed, { wanted: F.SR_IOV });
      sriov.observe(withIt);
      sriov.enableVfs(3);
      assert.equal(cap.vfs.length, 3);
      assert.equal(cap.numVfs, 3);
      void sriov.disableVfs();
      // driver/content/41: after a reset, enabled again without negotiating SR_IOV again.
      withIt.reset();
      sriov.enableVfs(1);
      assert.equal(cap.vfs.length, 1);
    });

    it('driver/admin/10: SR-IOV commands name a VF in 1..NumVFs, only with VF Enable set; VF Enable stays set while one is outstanding', async () => {
      const handler = new EchoHandler([ADMIN_GROUP_SRIOV]);
      const { rig, cap } = sriovRig([handler]);
      const { virtio, admin } = startAdminDriver(rig, packed, { wanted: F.SR_IOV });
      const sriov = new SriovDriverControl(rig.driverTransport, admin);
      admin.setSriovState(sriov);
      sriov.observe(virtio);
      sriov.enableVfs(2);
      assert.ok(await admin.enableGroup(ADMIN_GROUP_SRIOV, [ECHO_OPCODE, ASYNC_OPCODE]));
      for (const bad of [0n, 3n]) await assert.rejects(admin.send(ECHO_OPCODE, ADMIN_GROUP_SRIOV, bad, new Uint8Array(0), 0), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
      assert.equal(handler.seen.length, 0, 'nothing sent for a member out of range');
      const pending = admin.send(ASYNC_OPCODE, ADMIN_GROUP_SRIOV, 1n, new Uint8Array(0), 0);
      const disabled = sriov.disableVfs();
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      assert.equal(cap.vfEnabled, true, 'VF Enable kept while the command is outstanding');
      handler.waiting.shift()!();
      assert.equal((await pending).status, AdminStatus.OK);
      await disabled;
      assert.equal(cap.vfEnabled, false);
      await assert.rejects(admin.send(ECHO_OPCODE, ADMIN_GROUP_SRIOV, 1n, new Uint8Array(0), 0), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
    });
  });

  describe(`admin.tex driver rules on AdminDriver (${ring} ring)`, () => {
    const setup = (extra: AdminCommandHandler[] = [], queues = 1): { rig: AdminRig; admin: ReturnType<typeof startAdminDriver>['admin']; handler: EchoHandler; log: number[]; allocs: number[][] } => {
      const handler = new EchoHandler();
      const rig = adminRig({ admin: { handlers: [handler, new DependentHandler(), ...extra], queues } });
      const log = recordOpcodes(rig);
      const { admin } = startAdminDriver(rig, packed, { adminQueues: queues });
      const allocs: number[][] = [];
      const alloc = rig.dma.alloc.bind(rig.dma);
      rig.dma.alloc = (len: number, align?: number) => {
        const a = alloc(len, align);
        allocs.push([a, len]);
        return a;
      };
      return { rig, admin, handler, log, allocs };
    };

    it('driver/admin/1: LIST_QUERY tells whether a group type is supported', async () => {
      const { admin } = setup();
      assert.equal(await admin.listQuery(ADMIN_GROUP_SRIOV), null);
      assert.deepEqual(await admin.listQuery(ADMIN_GROUP_SELF), [0, 1, ECHO_OPCODE, ASYNC_OPCODE, OTHER_OPCODE].sort((a, b) => a - b));
    });

    it('driver/admin/2, driver/admin/6: no command before LIST_USE completed with OK; LIST_QUERY and LIST_USE come first', async () => {
      const { admin, log } = setup();
      await assert.rejects(admin.send(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, new Uint8Array(0), 0), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
      assert.deepEqual(log, [], 'nothing reached the device');
      await admin.enableGroup(ADMIN_GROUP_SELF, [ECHO_OPCODE]);
      assert.equal((await admin.send(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, Uint8Array.of(1), 1)).status, AdminStatus.OK);
      assert.deepEqual(log, [AdminOpcode.LIST_QUERY, AdminOpcode.LIST_USE, ECHO_OPCODE]);
    });

    it('driver/admin/3: LIST_USE waits until every other command completed', async () => {
      const { admin, log, handler } = setup();
      await admin.enableGroup(ADMIN_GROUP_SELF, [ECHO_OPCODE, ASYNC_OPCODE]);
      const pending = admin.send(ASYNC_OPCODE, ADMIN_GROUP_SELF, 0n, new Uint8Array(0), 0);
      const again = admin.listUse(ADMIN_GROUP_SELF, [0, 1, ECHO_OPCODE, ASYNC_OPCODE]);
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      assert.deepEqual(log, [0, 1, ASYNC_OPCODE], 'LIST_USE held back');
      handler.waiting.shift()!();
      await pending;
      assert.equal((await again).status, AdminStatus.OK);
      assert.deepEqual(log, [0, 1, ASYNC_OPCODE, AdminOpcode.LIST_USE]);
    });

    it('driver/admin/4, driver/admin/5: only known commands the device reported are used', async () => {
      const { admin, log, rig } = setup();
      assert.deepEqual(await admin.enableGroup(ADMIN_GROUP_SELF, [ECHO_OPCODE, 0x66]), [0, 1, ECHO_OPCODE]);
      assert.deepEqual(rig.device.dispatcher.used(ADMIN_GROUP_SELF), [0, 1, ECHO_OPCODE], 'supported but unknown commands stay unused');
      const before = log.length;
      await assert.rejects(admin.listUse(ADMIN_GROUP_SELF, [0, 1, 0x66]), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
      assert.equal(log.length, before, 'the unreported command was never requested');
    });

    it('driver/admin/7: LIST_USE without LIST_QUERY and LIST_USE blocks them', async () => {
      const { admin, rig } = setup();
      await admin.listQuery(ADMIN_GROUP_SELF);
      assert.equal((await admin.listUse(ADMIN_GROUP_SELF, [ECHO_OPCODE])).status, AdminStatus.OK);
      assert.deepEqual(rig.device.dispatcher.used(ADMIN_GROUP_SELF), [ECHO_OPCODE]);
      await assert.rejects(admin.listQuery(ADMIN_GROUP_SELF), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
      assert.equal((await admin.send(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, new Uint8Array(0), 0)).status, AdminStatus.OK);
    });

    it('driver/admin/8, driver/admin/9: a reserved status is handled as EINVAL, a reserved qualifier as INVALID_COMMAND', async () => {
      const odd: AdminCommandHandler = { opcodes: [0x60], groupTypes: [0], handle: () => ({ status: 99, qualifier: 0x55, written: 0 }) };
      const { admin } = setup([odd]);
      await admin.enableGroup(ADMIN_GROUP_SELF, [0x60]);
      const r = await admin.send(0x60, ADMIN_GROUP_SELF, 0n, new Uint8Array(0), 0);
      assert.deepEqual([r.status, r.qualifier], [99, 0x55], 'the raw values reach the caller');
      assert.equal(effectiveAdminStatus(r.status), AdminStatus.EINVAL);
      assert.equal(effectiveAdminQualifier(r.qualifier), AdminStatusQualifier.INVALID_COMMAND);
      assert.equal(effectiveAdminStatus(AdminStatus.ENOSPC), AdminStatus.ENOSPC);
      assert.equal(effectiveAdminQualifier(AdminStatusQualifier.TRYAGAIN), AdminStatusQualifier.TRYAGAIN);
    });

    it('driver/admin/11, driver/admin/12, driver/admin/13, driver/admin/14, driver/admin/15: both parts non-empty, multiples of 8, the readable one the whole header', async () => {
      const { admin, allocs, handler } = setup();
      await admin.enableGroup(ADMIN_GROUP_SELF, [ECHO_OPCODE]);
      allocs.length = 0;
      await admin.send(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, Uint8Array.of(1, 2, 3), 3);
      await admin.send(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, new Uint8Array(0), 0);
      assert.deepEqual(allocs.map((a) => a[1]), [32, 16, 24, 8]);
      for (const [, len] of allocs) assert.ok(len! > 0 && len! % 8 === 0);
      assert.deepEqual(handler.seen.map((s) => [s.data.length, s.resultLen]), [[8, 8], [0, 0]], 'zero-length data and result allowed');
    });

    it('driver/admin/16: the result past the used length reads as zero', async () => {
      const memBox: { rig: AdminRig | null; allocs: number[][] } = { rig: null, allocs: [] };
      const dirty: AdminCommandHandler = {
        opcodes: [0x61],
        groupTypes: [0],
        handle: () => {
          const inn = memBox.allocs.at(-1)!;
          memBox.rig!.mem.slice(inn[0]!, inn[1]!).fill(0xee);
          return { status: 0, qualifier: 0, written: 0 };
        },
      };
      const { admin, allocs, rig } = setup([dirty]);
      memBox.rig = rig;
      memBox.allocs = allocs;
      await admin.enableGroup(ADMIN_GROUP_SELF, [0x61]);
      const r = await admin.send(0x61, ADMIN_GROUP_SELF, 0n, new Uint8Array(0), 16);
      assert.equal(r.status, AdminStatus.OK);
      assert.deepEqual([...r.result], new Array(16).fill(0), 'bytes the device did not report are zero');
    });

    it('driver/admin/17: with several administration queues the driver keeps its commands on one (ordered by the device)', async () => {
      const { admin, rig } = setup([], 2);
      await admin.enableGroup(ADMIN_GROUP_SELF, [ECHO_OPCODE]);
      for (let i = 0; i < 4; i++) await admin.send(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, Uint8Array.of(i), 1);
      const stats = rig.cores.at(-1)!.stats.snapshot();
      const [a, b] = rig.device.adminQueues.first === 2 ? [2, 3] : [0, 0];
      assert.equal(admin.queueIndex, a);
      assert.equal(stats[a]!.requests, 6);
      assert.equal(stats[b]?.requests ?? 0, 0);
    });

    it('driver/admin/18: a command answered EAGAIN is retried', async () => {
      let calls = 0;
      const busy: AdminCommandHandler = { opcodes: [0x62], groupTypes: [0], handle: () => (++calls < 3 ? adminError(AdminStatus.EAGAIN, AdminStatusQualifier.TRYAGAIN) : adminOk(0)) };
      const { admin } = setup([busy]);
      await admin.enableGroup(ADMIN_GROUP_SELF, [0x62]);
      assert.equal((await admin.send(0x62, ADMIN_GROUP_SELF, 0n, new Uint8Array(0), 0)).status, AdminStatus.OK);
      assert.equal(calls, 3);
    });
  });

  describe(`transport-pci.tex administration queue fields (${ring} ring)`, () => {
    it('device/transport-pci/27: admin_queue_index >= num_queues and every admin queue index fits in 16 bits', () => {
      const rig = adminRig({ admin: { queues: 3 } });
      startVirtio(rig, packed);
      const rd = (f: number): number => rig.pci.barRead(PciBar.MODERN, rig.pci.layout.common + f, 2);
      const num = rd(CommonCfg.NUM_QUEUES);
      const index = rd(CommonCfg.ADMIN_QUEUE_INDEX);
      const count = rd(CommonCfg.ADMIN_QUEUE_NUM);
      assert.deepEqual([num, index, count], [2, 2, 3]);
      assert.ok(index >= num && count <= 0x10000 - index);
    });

    it('driver/transport-pci/23, driver/transport-pci/24: admin queues configured at admin_queue_index onwards, possibly fewer than offered', () => {
      for (const want of [1, 5]) {
        const writes: number[] = [];
        let sel = -1;
        const box: { rig: AdminRig | null } = { rig: null };
        const rig = adminRig({
          admin: { queues: 3 },
          wrap: (fn) => ({
            configRead: (o, w) => fn.configRead(o, w),
            configWrite: (o, w, v) => fn.configWrite(o, w, v),
            barRead: (b, o, w) => fn.barRead(b, o, w),
            barWrite: (b, o, w, v) => {
              const c = box.rig ? o - box.rig.pci.layout.common : -1;
              if (b === PciBar.MODERN && c === CommonCfg.QUEUE_SELECT) sel = v;
              if (b === PciBar.MODERN && c === CommonCfg.QUEUE_ENABLE) writes.push(sel);
              fn.barWrite(b, o, w, v);
            },
          }),
        });
        box.rig = rig;
        const v = startVirtio(rig, packed, { adminQueues: want });
        const admins = writes.filter((q) => q >= 2);
        assert.deepEqual(admins, want === 1 ? [2] : [2, 3, 4]);
        assert.deepEqual(v.adminQueueIndices, admins);
      }
    });
  });
}
