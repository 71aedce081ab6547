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
import { ASYNC_OPCODE, ECHO_OPCODE, EchoHandler, adminRig, startAdminDriver, startVirtio, type AdminRig } from './admin-rig.js';

const SEG = 0x1000;

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
