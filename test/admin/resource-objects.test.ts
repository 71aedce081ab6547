/**
 * 2.12.1.3 Device resource objects: the generic store with the test types of
 * test/support/admin-test-objects.ts (a group and a rule that depends on a group), device side by
 * direct handle() calls, driver side through AdminResourceObjectDriver on the loopback sender.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADMIN_GROUP_SELF, ADMIN_GROUP_SRIOV, AdminStatus, AdminStatusQualifier, type AdminMember } from '../../src/admin/admin-command-handler.js';
import { AdminCapabilityDriver } from '../../src/admin/capabilities/capability-driver.js';
import { CapabilityOpcode } from '../../src/admin/capabilities/capability-handler.js';
import { AdminResourceObjectDriver, encodeResourceObjectCommand } from '../../src/admin/resource-objects/resource-object-driver.js';
import { ADMIN_STATUS_EEXIST, ResourceObjectHandler, ResourceObjectOpcode } from '../../src/admin/resource-objects/resource-object-handler.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { adminLoopback } from '../support/admin-loopback.js';
import {
  TEST_GROUP,
  TEST_RESOURCE_CAP,
  TEST_RULE,
  groupData,
  resourceCapValue,
  ruleData,
  selfMember,
  testGroupType,
  testOwnerHandlers,
  testRuleType,
} from '../support/admin-test-objects.js';

const SELF = selfMember();

function owner(groups = 4, rules = 8, byteBudget?: number) {
  const { caps, objects } = testOwnerHandlers(byteBudget === undefined ? {} : { byteBudget });
  const capData = new Uint8Array(8 + TEST_RESOURCE_CAP.size);
  capData[0] = 0x00;
  capData[1] = 0x08;
  capData.set(resourceCapValue(groups, rules, 1, 0), 8);
  assert.equal(caps.handle(CapabilityOpcode.DRIVER_CAP_SET, SELF, capData, new Uint8Array(0)).status, AdminStatus.OK);
  const call = (opcode: number, data: Uint8Array, capacity = 64, member: AdminMember = SELF) => {
    const result = new Uint8Array(capacity);
    const out = objects.handle(opcode, member, data, result);
    assert.ok(!(out instanceof Promise));
    return { ...out, result: result.subarray(0, out.written) };
  };
  const create = (type: number, id: number, data: Uint8Array, flags = 0) => call(ResourceObjectOpcode.CREATE, encodeResourceObjectCommand(type, id, flags, data), 0);
  const modify = (type: number, id: number, data: Uint8Array, flags = 0) => call(ResourceObjectOpcode.MODIFY, encodeResourceObjectCommand(type, id, flags, data), 0);
  const query = (type: number, id: number, capacity = 64) => call(ResourceObjectOpcode.QUERY, encodeResourceObjectCommand(type, id, 0), capacity);
  const destroy = (type: number, id: number) => call(ResourceObjectOpcode.DESTROY, encodeResourceObjectCommand(type, id, null), 0);
  return { caps, objects, call, create, modify, query, destroy };
}

async function refused(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
}

describe('admin resource objects, device side (2.12.1.3)', () => {
  it('serves CREATE/MODIFY/QUERY/DESTROY for the self group; bad types, flags, data and ids are EINVAL; short data reads as zeros, padding is ignored', () => {
    const o = owner();
    assert.deepEqual([...o.objects.opcodes].sort(), [0xa, 0xb, 0xc, 0xd]);
    assert.equal(ResourceObjectOpcode.QUERY, 0xb, 'the 2.12.1 opcode table');
    assert.equal(ResourceObjectOpcode.MODIFY, 0xc);
    assert.deepEqual(o.objects.groupTypes, [ADMIN_GROUP_SELF]);
    const einval = (r: { status: number; qualifier: number }) => {
      assert.equal(r.status, AdminStatus.EINVAL);
      assert.equal(r.qualifier, AdminStatusQualifier.INVALID_FIELD);
    };
    einval(o.call(ResourceObjectOpcode.CREATE, Uint8Array.of(0, 2, 0, 0, 0, 0), 0)); // cut short: a group of mode 0
    einval(o.call(ResourceObjectOpcode.CREATE, encodeResourceObjectCommand(TEST_GROUP, 0, null), 0)); // no flags, no data: mode 0
    einval(o.create(0x1ff, 0, groupData(1))); // unknown type
    einval(o.create(TEST_GROUP, 0, groupData(1), 1)); // flags the type does not define
    const highFlags = encodeResourceObjectCommand(TEST_GROUP, 0, 0, groupData(1));
    highFlags[15] = 0x80;
    einval(o.call(ResourceObjectOpcode.CREATE, highFlags, 0));
    einval(o.create(TEST_GROUP, 0, groupData(2))); // the type refuses the data
    einval(o.create(TEST_GROUP, 0, Uint8Array.of(1, 1, 0, 0))); // reserved byte set
    einval(o.create(TEST_GROUP, 4, groupData(1))); // id = limit
    einval(o.create(TEST_GROUP, 0xffffffff, groupData(1)));
    // Data padded to a multiple of 8 bytes: the padding is not part of the object.
    assert.equal(o.create(TEST_GROUP, 0, Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0)).status, AdminStatus.OK);
    assert.deepEqual([...o.objects.object(TEST_GROUP, 0)!], [...groupData(1)]);
    einval(o.call(ResourceObjectOpcode.QUERY, encodeResourceObjectCommand(TEST_GROUP, 0, 2), 8)); // flags the type does not define
    assert.equal(o.call(ResourceObjectOpcode.QUERY, encodeResourceObjectCommand(TEST_GROUP, 0, null), 8).written, 4, 'flags cut short read as 0');
    assert.equal(o.call(ResourceObjectOpcode.QUERY, Uint8Array.of(...encodeResourceObjectCommand(TEST_GROUP, 0, 0), 0, 0, 0, 0, 0, 0, 0, 0), 8).status, AdminStatus.OK, 'padding ignored');
    const vf: AdminMember = { groupType: ADMIN_GROUP_SRIOV, memberId: 1n, core: SELF.core };
    assert.equal(o.create(TEST_GROUP, 1, groupData(1)).status, AdminStatus.OK);
    assert.equal(o.call(ResourceObjectOpcode.QUERY, encodeResourceObjectCommand(TEST_GROUP, 1, 0), 8, vf).qualifier, AdminStatusQualifier.INVALID_GROUP);
    assert.equal(o.call(ResourceObjectOpcode.DESTROY, encodeResourceObjectCommand(TEST_GROUP, 0, 0), 0).status, AdminStatus.OK, 'DESTROY ignores what follows its header');
    assert.equal(o.objects.count(TEST_GROUP), 1);
  });

  it('device/admin-cmds-resource-objects/1: CREATE of an id that exists for the type is EEXIST (17); the same id of another type is free', () => {
    const o = owner();
    assert.equal(o.create(TEST_GROUP, 2, groupData(1)).status, AdminStatus.OK);
    const r = o.create(TEST_GROUP, 2, groupData(4));
    assert.equal(r.status, ADMIN_STATUS_EEXIST);
    assert.equal(ADMIN_STATUS_EEXIST, 17);
    assert.deepEqual([...o.query(TEST_GROUP, 2).result], [...groupData(1)], 'the first object is untouched');
    assert.equal(o.create(TEST_RULE, 2, ruleData(2, 0)).status, AdminStatus.OK);
  });

  it('device/admin-cmds-resource-objects/2: MODIFY, QUERY and DESTROY of an object that does not exist are ENXIO', () => {
    const o = owner();
    for (const id of [0, 3, 7, 0xffffffff]) {
      assert.equal(o.modify(TEST_GROUP, id, groupData(1)).status, AdminStatus.ENXIO);
      assert.equal(o.query(TEST_GROUP, id).status, AdminStatus.ENXIO);
      assert.equal(o.destroy(TEST_GROUP, id).status, AdminStatus.ENXIO);
    }
    assert.equal(o.create(TEST_GROUP, 0, groupData(1)).status, AdminStatus.OK);
    assert.equal(o.destroy(TEST_GROUP, 0).status, AdminStatus.OK);
    assert.equal(o.query(TEST_GROUP, 0).status, AdminStatus.ENXIO, 'destroyed');
    // A rule naming a group that does not exist cannot be created either.
    assert.equal(o.create(TEST_RULE, 0, ruleData(3, 0)).status, AdminStatus.ENXIO);
  });

  it('device/admin-cmds-resource-objects/3, device/admin-cmds-resource-objects/7: CREATE beyond the device\'s internal limit is ENOSPC, before the capability limit', () => {
    // 4 groups allowed by the capability, but 10 bytes of object data fit: two 4-byte groups.
    const o = owner(4, 8, 10);
    assert.equal(o.create(TEST_GROUP, 0, groupData(1)).status, AdminStatus.OK);
    assert.equal(o.create(TEST_GROUP, 1, groupData(1)).status, AdminStatus.OK);
    const r = o.create(TEST_GROUP, 2, groupData(1));
    assert.equal(r.status, AdminStatus.ENOSPC);
    assert.equal(r.qualifier, AdminStatusQualifier.NORESOURCE);
    assert.equal(o.objects.count(TEST_GROUP), 2);
    assert.equal(o.destroy(TEST_GROUP, 0).status, AdminStatus.OK);
    assert.equal(o.create(TEST_GROUP, 2, groupData(1)).status, AdminStatus.OK, 'space released by DESTROY');
    // The object count is the other internal limit.
    const { caps, objects } = testOwnerHandlers({ maxObjects: 1 });
    const capData = new Uint8Array(8 + TEST_RESOURCE_CAP.size);
    capData[1] = 0x08;
    capData.set(resourceCapValue(4, 8, 1, 0), 8);
    caps.handle(CapabilityOpcode.DRIVER_CAP_SET, SELF, capData, new Uint8Array(0));
    const first = objects.handle(ResourceObjectOpcode.CREATE, SELF, encodeResourceObjectCommand(TEST_GROUP, 0, 0, groupData(1)), new Uint8Array(0));
    const second = objects.handle(ResourceObjectOpcode.CREATE, SELF, encodeResourceObjectCommand(TEST_GROUP, 1, 0, groupData(1)), new Uint8Array(0));
    assert.equal((first as { status: number }).status, AdminStatus.OK);
    assert.equal((second as { status: number }).status, AdminStatus.ENOSPC);
  });

  it('device/admin-cmds-resource-objects/4: MODIFY or DESTROY of an object others depend on is EBUSY', () => {
    const o = owner();
    o.create(TEST_GROUP, 0, groupData(1));
    o.create(TEST_RULE, 0, ruleData(0, 1));
    o.create(TEST_RULE, 1, ruleData(0, 2));
    assert.equal(o.destroy(TEST_GROUP, 0).status, AdminStatus.EBUSY);
    assert.equal(o.modify(TEST_GROUP, 0, groupData(4)).status, AdminStatus.EBUSY);
    assert.deepEqual([...o.query(TEST_GROUP, 0).result], [...groupData(1)]);
    assert.equal(o.destroy(TEST_RULE, 1).status, AdminStatus.OK);
    assert.equal(o.destroy(TEST_GROUP, 0).status, AdminStatus.EBUSY, 'one rule left');
    assert.equal(o.destroy(TEST_RULE, 0).status, AdminStatus.OK);
    assert.equal(o.modify(TEST_GROUP, 0, groupData(4)).status, AdminStatus.OK);
    assert.equal(o.destroy(TEST_GROUP, 0).status, AdminStatus.OK);
  });

  it('device/admin-cmds-resource-objects/5, device/admin-cmds-resource-objects/6: a destroyed object is created again without a reset, with any id in range in any order', () => {
    const o = owner();
    for (const id of [3, 0, 2, 1]) assert.equal(o.create(TEST_GROUP, id, groupData(1)).status, AdminStatus.OK, `id ${id}`);
    for (let round = 0; round < 3; round++) {
      assert.equal(o.destroy(TEST_GROUP, 2).status, AdminStatus.OK);
      assert.equal(o.create(TEST_GROUP, 2, groupData(round % 2 ? 1 : 4)).status, AdminStatus.OK);
    }
    assert.equal(o.objects.count(TEST_GROUP), 4);
  });

  it('device/admin-cmds-resource-objects/8: as many objects as the driver capability says can be created', () => {
    const o = owner(4, 8);
    for (let id = 0; id < 4; id++) assert.equal(o.create(TEST_GROUP, id, groupData(1)).status, AdminStatus.OK);
    for (let id = 0; id < 8; id++) assert.equal(o.create(TEST_RULE, id, ruleData(id % 4, id)).status, AdminStatus.OK);
    assert.equal(o.objects.count(TEST_GROUP), 4);
    assert.equal(o.objects.count(TEST_RULE), 8);
  });

  it('device/admin-cmds-resource-objects/9: a MODIFY that fails has no effect on the object', () => {
    const o = owner();
    o.create(TEST_GROUP, 0, groupData(1));
    o.create(TEST_GROUP, 1, groupData(1));
    o.create(TEST_RULE, 0, ruleData(0, 7));
    const before = [...o.query(TEST_RULE, 0).result];
    assert.equal(o.modify(TEST_GROUP, 1, groupData(2)).status, AdminStatus.EINVAL, 'data the type refuses');
    assert.deepEqual([...o.query(TEST_GROUP, 1).result], [...groupData(1)]);
    assert.equal(o.modify(TEST_RULE, 0, ruleData(3, 9)).status, AdminStatus.ENXIO, 'a dependency that does not exist');
    assert.equal(o.modify(TEST_RULE, 0, ruleData(1, 9), 4).status, AdminStatus.EINVAL, 'flags');
    assert.deepEqual([...o.query(TEST_RULE, 0).result], before);
    assert.equal(o.destroy(TEST_GROUP, 1).status, AdminStatus.OK, 'the failed modify did not make group 1 a dependency');
    assert.equal(o.destroy(TEST_GROUP, 0).status, AdminStatus.EBUSY, 'rule 0 still depends on group 0');
  });

  it('device/admin-cmds-resource-objects/10: QUERY returns the data of the last CREATE or MODIFY', () => {
    const o = owner();
    o.create(TEST_GROUP, 0, groupData(1));
    o.create(TEST_GROUP, 1, groupData(1));
    o.create(TEST_RULE, 5, ruleData(0, 0x01020304));
    assert.deepEqual([...o.query(TEST_RULE, 5).result], [...ruleData(0, 0x01020304)]);
    assert.equal(o.modify(TEST_RULE, 5, ruleData(1, 0xa0b0c0d)).status, AdminStatus.OK);
    assert.deepEqual([...o.query(TEST_RULE, 5).result], [...ruleData(1, 0xa0b0c0d)]);
    assert.equal(o.destroy(TEST_GROUP, 0).status, AdminStatus.OK, 'the modified rule moved to group 1');
    assert.equal(o.query(TEST_RULE, 5, 3).written, 3, 'a short result buffer gets what fits');
  });

  it('device/admin-cmds-resource-objects/11: a device reset destroys every object', () => {
    const destroyed: number[] = [];
    const { caps, objects } = testOwnerHandlers();
    void objects;
    const tracked = new ResourceObjectHandler(caps, [{ ...testGroupType, type: 0x300, onDestroy: (id) => destroyed.push(id) }]);
    const capData = new Uint8Array(8 + TEST_RESOURCE_CAP.size);
    capData[1] = 0x08;
    capData.set(resourceCapValue(4, 8, 1, 0), 8);
    caps.handle(CapabilityOpcode.DRIVER_CAP_SET, SELF, capData, new Uint8Array(0));
    for (const id of [0, 1, 2]) tracked.handle(ResourceObjectOpcode.CREATE, SELF, encodeResourceObjectCommand(0x300, id, 0, groupData(1)), new Uint8Array(0));
    assert.equal(tracked.count(0x300), 3);
    tracked.reset();
    caps.reset();
    assert.equal(tracked.count(0x300), 0);
    assert.deepEqual(destroyed.sort(), [0, 1, 2]);
    assert.equal(tracked.object(0x300, 1), null);
    caps.handle(CapabilityOpcode.DRIVER_CAP_SET, SELF, capData, new Uint8Array(0));
    const again = tracked.handle(ResourceObjectOpcode.CREATE, SELF, encodeResourceObjectCommand(0x300, 1, 0, groupData(1)), new Uint8Array(0));
    assert.equal((again as { status: number }).status, AdminStatus.OK, 'the id is free after the reset');
  });
});

describe('admin resource objects, driver side (2.12.1.3)', () => {
  async function driver() {
    const { caps, objects } = testOwnerHandlers();
    const lb = adminLoopback([caps, objects], (g, m) => (g === ADMIN_GROUP_SELF && m === 0n ? SELF : null));
    const capDriver = new AdminCapabilityDriver(lb.send);
    const d = new AdminResourceObjectDriver(lb.send, capDriver, [
      { kind: testGroupType, capability: TEST_RESOURCE_CAP },
      { kind: testRuleType, capability: TEST_RESOURCE_CAP },
    ]);
    await capDriver.setDriverCapability(TEST_RESOURCE_CAP, resourceCapValue(2, 3, 1, 0));
    const creates = () => lb.sent.filter((c) => c.opcode === ResourceObjectOpcode.CREATE).length;
    return { objects, lb, d, creates };
  }

  it('driver/admin-cmds-resource-objects/1: the driver does not create an id of a type twice before destroying it', async () => {
    const { d, creates, objects } = await driver();
    await d.create(TEST_GROUP, 0, groupData(1));
    await refused(d.create(TEST_GROUP, 0, groupData(4)));
    assert.equal(creates(), 1);
    await d.destroy(TEST_GROUP, 0);
    await d.create(TEST_GROUP, 0, groupData(4));
    assert.deepEqual([...objects.object(TEST_GROUP, 0)!], [...groupData(4)]);
  });

  it('driver/admin-cmds-resource-objects/2: the driver creates no more objects of a type than the limit of its driver capability', async () => {
    const { d, creates } = await driver();
    await d.create(TEST_GROUP, 0, groupData(1));
    await d.create(TEST_GROUP, 1, groupData(1));
    await refused(d.create(TEST_GROUP, 2, groupData(1)));
    await refused(d.create(TEST_GROUP, -1, groupData(1)));
    assert.equal(creates(), 2);
  });

  it('driver/admin-cmds-resource-objects/3: the driver does not modify, query or destroy an object it destroyed', async () => {
    const { d, lb } = await driver();
    await d.create(TEST_GROUP, 1, groupData(1));
    assert.deepEqual([...(await d.query(TEST_GROUP, 1))], [...groupData(1)]);
    await d.modify(TEST_GROUP, 1, groupData(4));
    assert.deepEqual([...(await d.query(TEST_GROUP, 1))], [...groupData(4)]);
    await d.destroy(TEST_GROUP, 1);
    const n = lb.sent.length;
    await refused(d.modify(TEST_GROUP, 1, groupData(1)));
    await refused(d.query(TEST_GROUP, 1));
    await refused(d.destroy(TEST_GROUP, 1));
    assert.equal(lb.sent.length, n, 'nothing sent');
  });

  it('driver/admin-cmds-resource-objects/4: the driver destroys dependents first and never an object others depend on', async () => {
    const { d, lb, objects } = await driver();
    await d.create(TEST_GROUP, 0, groupData(1));
    await d.create(TEST_RULE, 0, ruleData(0, 1));
    await d.create(TEST_RULE, 2, ruleData(0, 2));
    await refused(d.destroy(TEST_GROUP, 0));
    await refused(d.create(TEST_RULE, 1, ruleData(1, 0)));
    await d.destroyAll();
    const order = lb.sent.filter((c) => c.opcode === ResourceObjectOpcode.DESTROY).map((c) => [c.data[0]! | (c.data[1]! << 8), c.data[4]]);
    assert.deepEqual(order, [
      [TEST_RULE, 2],
      [TEST_RULE, 0],
      [TEST_GROUP, 0],
    ]);
    assert.ok(lb.sent.every((c) => c.reply.status === AdminStatus.OK));
    assert.equal(objects.count(TEST_GROUP) + objects.count(TEST_RULE), 0);
  });
});
