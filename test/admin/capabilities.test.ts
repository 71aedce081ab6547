/**
 * 2.12.1.2 Device and driver capabilities: the device handler (direct handle() calls and the
 * loopback sender) and the driver's rules (AdminCapabilityDriver).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADMIN_GROUP_SELF, ADMIN_GROUP_SRIOV, AdminStatus, AdminStatusQualifier, type AdminCommandHandler, type AdminMember } from '../../src/admin/admin-command-handler.js';
import { AdminCommandStatusError } from '../../src/admin/admin-command-status-error.js';
import { AdminCapabilityDriver, decodeCapabilityIds, getDeviceCapability, queryCapabilityIds, sendDriverCapability } from '../../src/admin/capabilities/capability-driver.js';
import { CapabilityHandler, CapabilityOpcode } from '../../src/admin/capabilities/capability-handler.js';
import { AdminResourceObjectDriver } from '../../src/admin/resource-objects/resource-object-driver.js';
import { ResourceObjectOpcode } from '../../src/admin/resource-objects/resource-object-handler.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { adminLoopback } from '../support/admin-loopback.js';
import {
  TEST_GENERIC_CAP,
  TEST_GROUP,
  TEST_RESOURCE_CAP,
  TEST_RULE,
  TEST_SELECTOR_CAP,
  groupData,
  resourceCapValue,
  ruleData,
  selectorCapValue,
  selfMember,
  testDeviceCapabilities,
  testGroupType,
  testOwnerHandlers,
  testRuleType,
} from '../support/admin-test-objects.js';

const SELF = selfMember();

function run(h: AdminCommandHandler, opcode: number, data: Uint8Array, capacity = 512, member: AdminMember = SELF) {
  const result = new Uint8Array(capacity);
  const out = h.handle(opcode, member, data, result);
  assert.ok(!(out instanceof Promise));
  return { ...out, result: result.subarray(0, out.written) };
}

function idData(id: number, extra: Uint8Array = new Uint8Array(0)): Uint8Array {
  const d = new Uint8Array(8 + extra.length);
  d[0] = id & 0xff;
  d[1] = id >> 8;
  d.set(extra, 8);
  return d;
}

const get = (h: AdminCommandHandler, id: number, capacity = 512) => run(h, CapabilityOpcode.DEVICE_CAP_GET, idData(id), capacity);
const set = (h: AdminCommandHandler, id: number, value: Uint8Array) => run(h, CapabilityOpcode.DRIVER_CAP_SET, idData(id, value), 0);

function driverSide() {
  const { caps, objects } = testOwnerHandlers();
  const lb = adminLoopback([caps, objects], (g, m) => (g === ADMIN_GROUP_SELF && m === 0n ? SELF : null));
  const capDriver = new AdminCapabilityDriver(lb.send);
  const objDriver = new AdminResourceObjectDriver(lb.send, capDriver, [
    { kind: testGroupType, capability: TEST_RESOURCE_CAP },
    { kind: testRuleType, capability: TEST_RESOURCE_CAP },
  ]);
  return { caps, objects, lb, capDriver, objDriver };
}

async function refused(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
}

describe('admin capabilities, device side (2.12.1.2)', () => {
  it('device/admin-cmds-capabilities/1: a device with capabilities serves CAP_ID_LIST_QUERY, DEVICE_CAP_GET and DRIVER_CAP_SET', async () => {
    const h = new CapabilityHandler(testDeviceCapabilities());
    assert.deepEqual([...h.opcodes].sort(), [0x7, 0x8, 0x9]);
    assert.deepEqual(h.groupTypes, [ADMIN_GROUP_SELF]);
    const lb = adminLoopback([h], () => SELF);
    // ids 64, 0x800, 0x801: DIV_ROUND_UP(0x801 + 1, 64) = 33 le64 words.
    const q = run(h, CapabilityOpcode.CAP_ID_LIST_QUERY, new Uint8Array(0), 4096);
    assert.equal(q.status, AdminStatus.OK);
    assert.equal(q.written, 33 * 8);
    const words = new DataView(q.result.buffer, q.result.byteOffset, q.written);
    assert.equal(words.getBigUint64(8, true), 1n, 'supported_caps[1] bit 0: id 64');
    assert.equal(words.getBigUint64(32 * 8, true), 0b11n, 'supported_caps[32] bits 0, 1: ids 0x800, 0x801');
    assert.equal(words.getBigUint64(0, true), 0n);
    assert.deepEqual(await queryCapabilityIds(lb.send), [64, 0x800, 0x801]);
    assert.deepEqual([...(await getDeviceCapability(lb.send, 0x800))], [...resourceCapValue(4, 8, 0b101, 7)]);
    await sendDriverCapability(lb.send, 64, Uint8Array.of(9, 0));
    assert.deepEqual([...h.driverCapability(64)!], [9, 0]);
    // A shorter result buffer gets what fits (2.12.1).
    assert.equal(run(h, CapabilityOpcode.CAP_ID_LIST_QUERY, new Uint8Array(0), 16).written, 16);
    assert.equal(get(h, 0x800, 5).written, 5);
    assert.deepEqual(decodeCapabilityIds(Uint8Array.of(0x3, 0, 0, 0, 0, 0, 0, 0, 0x1)), [0, 1, 64], 'the spec example: 0x3 and 0x1');
  });

  it('device/admin-cmds-capabilities/2: limits set to the device value or smaller, flag bits all or fewer, array entries out of the device\'s are accepted', () => {
    const h = new CapabilityHandler(testDeviceCapabilities());
    for (const v of [resourceCapValue(4, 8, 0b101, 7), resourceCapValue(0, 3, 0b100, 0), resourceCapValue(2, 8, 0, 7)]) {
      assert.equal(set(h, 0x800, v).status, AdminStatus.OK);
      assert.deepEqual([...h.driverCapability(0x800)!], [...v]);
    }
    assert.equal(h.driverLimit(0x800, 'groups'), 2);
    for (const v of [selectorCapValue([]), selectorCapValue([0x33, 0x11]), selectorCapValue([0x11, 0x22, 0x33])]) {
      assert.equal(set(h, 0x801, v).status, AdminStatus.OK);
    }
  });

  it('device/admin-cmds-capabilities/3: DRIVER_CAP_SET above a limit, with a bit or an entry the device did not present, or malformed, is EINVAL and changes nothing', () => {
    const h = new CapabilityHandler(testDeviceCapabilities());
    assert.equal(set(h, 0x800, resourceCapValue(1, 1, 1, 1)).status, AdminStatus.OK);
    const bad = [
      [0x800, resourceCapValue(5, 8, 0b101, 7)],
      [0x800, resourceCapValue(4, 9, 0b101, 7)],
      [0x800, resourceCapValue(4, 8, 0b111, 7)],
      [0x800, resourceCapValue(4, 8, 0b101, 8)],
      [0x800, Uint8Array.of(...resourceCapValue(1, 1, 1, 1).subarray(0, 8), 0, 0, 9)], // priority 9
      [0x801, selectorCapValue([0x44])],
      [0x801, selectorCapValue([0x11, 0x11])],
      [0x801, selectorCapValue([0x11, 0x22, 0x33, 0x11])],
      [0x801, Uint8Array.of(1, 0, 0, 0)],
      [0x801, Uint8Array.of(200, 0, 0, 0)],
    ] as const;
    for (const [id, v] of bad) {
      const r = set(h, id, v);
      assert.equal(r.status, AdminStatus.EINVAL, `${id}: ${[...v]}`);
      assert.equal(r.qualifier, AdminStatusQualifier.INVALID_FIELD);
    }
    assert.deepEqual([...h.driverCapability(0x800)!], [...resourceCapValue(1, 1, 1, 1)]);
    assert.equal(h.driverCapability(0x801), null);
  });

  it('short command data reads as zeros, data past the structure (a driver\'s padding to 8 bytes) is ignored (2.13)', () => {
    const h = new CapabilityHandler(testDeviceCapabilities());
    // A capability cut short: the missing fields are zero.
    assert.equal(set(h, 0x800, resourceCapValue(3, 2, 1, 0).subarray(0, 5)).status, AdminStatus.OK);
    assert.deepEqual([...h.driverCapability(0x800)!], [...resourceCapValue(3, 2, 0, 0)]);
    // Padded to a multiple of 8 bytes: the padding is not part of the capability.
    assert.equal(set(h, 0x800, Uint8Array.of(...resourceCapValue(4, 8, 0b101, 7), 0, 0, 0, 0)).status, AdminStatus.OK);
    assert.deepEqual([...h.driverCapability(0x800)!], [...resourceCapValue(4, 8, 0b101, 7)]);
    assert.equal(set(h, 0x801, Uint8Array.of(...selectorCapValue([0x22]), 0, 0, 0, 0, 0, 0, 0, 0)).status, AdminStatus.OK);
    assert.deepEqual([...h.driverCapability(0x801)!], [...selectorCapValue([0x22])]);
    // A header cut short reads as id 0x0800 with an all-zero capability.
    assert.equal(run(h, CapabilityOpcode.DRIVER_CAP_SET, Uint8Array.of(0, 8, 0), 0).status, AdminStatus.OK);
    assert.deepEqual([...h.driverCapability(0x800)!], [...resourceCapValue(0, 0, 0, 0)]);
    assert.equal(run(h, CapabilityOpcode.DEVICE_CAP_GET, idData(0x800, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0))).written, TEST_RESOURCE_CAP.size);
    assert.equal(run(h, CapabilityOpcode.DEVICE_CAP_GET, Uint8Array.of(0, 8)).status, AdminStatus.OK);
    assert.equal(run(h, CapabilityOpcode.CAP_ID_LIST_QUERY, new Uint8Array(8)).status, AdminStatus.OK);
  });

  it('device/admin-cmds-capabilities/4, device/admin-cmds-capabilities/5: the three commands for a group type other than self complete with EINVAL', () => {
    const h = new CapabilityHandler(testDeviceCapabilities());
    const vf: AdminMember = { groupType: ADMIN_GROUP_SRIOV, memberId: 1n, core: SELF.core };
    for (const [op, data] of [
      [CapabilityOpcode.CAP_ID_LIST_QUERY, new Uint8Array(0)],
      [CapabilityOpcode.DEVICE_CAP_GET, idData(0x800)],
      [CapabilityOpcode.DRIVER_CAP_SET, idData(64, Uint8Array.of(1, 0))],
    ] as const) {
      const r = run(h, op, data, 512, vf);
      assert.equal(r.status, AdminStatus.EINVAL);
      assert.equal(r.qualifier, AdminStatusQualifier.INVALID_GROUP);
      assert.equal(r.written, 0);
      assert.equal(run(h, op, data, 512, { ...SELF, memberId: 1n }).qualifier, AdminStatusQualifier.INVALID_MEMBER, 'self group: member 0 only');
    }
    assert.equal(h.driverCapability(64), null);
  });

  it('device/admin-cmds-capabilities/6: DRIVER_CAP_SET changing a capability that live resource objects depend on is EBUSY', () => {
    const { caps, objects } = testOwnerHandlers();
    assert.equal(set(caps, 0x800, resourceCapValue(2, 2, 1, 0)).status, AdminStatus.OK);
    const create = (type: number, id: number, data: Uint8Array) => {
      const d = new Uint8Array(16 + data.length);
      new DataView(d.buffer).setUint16(0, type, true);
      new DataView(d.buffer).setUint32(4, id, true);
      d.set(data, 16);
      return run(objects, ResourceObjectOpcode.CREATE, d, 0);
    };
    assert.equal(create(TEST_GROUP, 0, groupData(1)).status, AdminStatus.OK);
    const r = set(caps, 0x800, resourceCapValue(0, 0, 0, 0));
    assert.equal(r.status, AdminStatus.EBUSY);
    assert.equal(caps.driverLimit(0x800, 'groups'), 2, 'unchanged');
    assert.equal(set(caps, 0x800, resourceCapValue(2, 2, 1, 0)).status, AdminStatus.OK, 'the same value changes nothing');
    assert.equal(set(caps, 64, Uint8Array.of(3, 0)).status, AdminStatus.OK, 'an unrelated capability is free');
    const destroy = new Uint8Array(8);
    new DataView(destroy.buffer).setUint16(0, TEST_GROUP, true);
    assert.equal(run(objects, ResourceObjectOpcode.DESTROY, destroy, 0).status, AdminStatus.OK);
    assert.equal(set(caps, 0x800, resourceCapValue(0, 0, 0, 0)).status, AdminStatus.OK);
  });

  it('device/admin-cmds-capabilities/7: DEVICE_CAP_GET and DRIVER_CAP_SET of an id CAP_ID_LIST_QUERY does not report are ENXIO', () => {
    const h = new CapabilityHandler(testDeviceCapabilities());
    for (const id of [0, 1, 63, 65, 0x802, 0xffff]) {
      assert.equal(get(h, id).status, AdminStatus.ENXIO);
      assert.equal(set(h, id, Uint8Array.of(0, 0)).status, AdminStatus.ENXIO);
    }
    assert.equal(get(h, 0x801).status, AdminStatus.OK);
  });

  it('device/admin-cmds-capabilities/8: a device reset resets every driver capability', () => {
    const h = new CapabilityHandler(testDeviceCapabilities());
    set(h, 0x800, resourceCapValue(3, 3, 1, 1));
    set(h, 64, Uint8Array.of(2, 0));
    h.reset();
    assert.equal(h.driverCapability(0x800), null);
    assert.equal(h.driverCapability(64), null);
    assert.equal(h.driverLimit(0x800, 'rules'), 0);
    assert.deepEqual([...get(h, 0x800).result], [...resourceCapValue(4, 8, 0b101, 7)], 'the device capability stays');
  });

  it('device/admin-cmds-capabilities/9: resource limits the driver has not set count as zero (no object can be created)', () => {
    const { caps, objects } = testOwnerHandlers();
    assert.equal(caps.driverLimit(0x800, 'groups'), 0);
    assert.equal(caps.deviceLimit(0x800, 'groups'), 4);
    assert.equal(objects.limit(TEST_GROUP), 0);
    const d = new Uint8Array(20);
    new DataView(d.buffer).setUint16(0, TEST_GROUP, true);
    d.set(groupData(1), 16);
    assert.equal(run(objects, ResourceObjectOpcode.CREATE, d, 0).status, AdminStatus.EINVAL);
    assert.equal(objects.count(TEST_GROUP), 0);
  });
});

describe('admin capabilities, driver side (2.12.1.2)', () => {
  it('driver/admin-cmds-capabilities/1, driver/admin-cmds-resource-objects/6: the driver sends DRIVER_CAP_SET before creating objects that depend on it', async () => {
    const { lb, capDriver, objDriver, objects } = driverSide();
    await refused(objDriver.create(TEST_GROUP, 0, groupData(1)));
    assert.equal(lb.sent.filter((c) => c.opcode === ResourceObjectOpcode.CREATE).length, 0, 'nothing sent');
    await capDriver.setDriverCapability(TEST_RESOURCE_CAP, resourceCapValue(1, 1, 1, 0));
    await objDriver.create(TEST_GROUP, 0, groupData(1));
    const ops = lb.sent.map((c) => c.opcode);
    assert.ok(ops.indexOf(CapabilityOpcode.DRIVER_CAP_SET) < ops.indexOf(ResourceObjectOpcode.CREATE));
    assert.equal(objects.count(TEST_GROUP), 1);
  });

  it('driver/admin-cmds-capabilities/2: the driver never sets a limit above, a bit or an array entry not reported by DEVICE_CAP_GET', async () => {
    const { lb, capDriver, caps } = driverSide();
    await refused(capDriver.setDriverCapability(TEST_RESOURCE_CAP, resourceCapValue(5, 1, 1, 0)));
    await refused(capDriver.setDriverCapability(TEST_RESOURCE_CAP, resourceCapValue(1, 1, 0b10, 0)));
    await refused(capDriver.setDriverCapability(TEST_SELECTOR_CAP, selectorCapValue([0x44])));
    assert.equal(lb.sent.filter((c) => c.opcode === CapabilityOpcode.DRIVER_CAP_SET).length, 0, 'nothing sent');
    assert.ok(lb.sent.some((c) => c.opcode === CapabilityOpcode.DEVICE_CAP_GET), 'checked against DEVICE_CAP_GET');
    await capDriver.setDriverCapability(TEST_SELECTOR_CAP, selectorCapValue([0x22]));
    assert.deepEqual([...caps.driverCapability(0x801)!], [...selectorCapValue([0x22])]);
    // An id the device does not list is not set either.
    await refused(capDriver.setDriverCapability({ ...TEST_GENERIC_CAP, id: 65 }, Uint8Array.of(0, 0)));
    // A device refusal reaches the caller as the status.
    await assert.rejects(sendDriverCapability(lb.send, 0x800, resourceCapValue(9, 9, 9, 9)), (e: unknown) => e instanceof AdminCommandStatusError && e.status === AdminStatus.EINVAL);
  });

  it('driver/admin-cmds-capabilities/3, driver/admin-cmds-resource-objects/5: the driver does not set a capability while objects depending on it exist', async () => {
    const { lb, capDriver, objDriver } = driverSide();
    await capDriver.setDriverCapability(TEST_RESOURCE_CAP, resourceCapValue(2, 2, 1, 0));
    await objDriver.create(TEST_GROUP, 1, groupData(1));
    await objDriver.create(TEST_RULE, 0, ruleData(1, 5));
    const before = lb.sent.length;
    await refused(capDriver.setDriverCapability(TEST_RESOURCE_CAP, resourceCapValue(0, 0, 0, 0)));
    assert.equal(lb.sent.length, before, 'nothing sent');
    await capDriver.setDriverCapability(TEST_GENERIC_CAP, Uint8Array.of(1, 0));
    await objDriver.destroyAll();
    await capDriver.setDriverCapability(TEST_RESOURCE_CAP, resourceCapValue(0, 0, 0, 0));
  });
});
