/**
 * Capabilities, resource objects and the legacy interface end to end: an AdminDevice on the
 * in-process PCI bus with the three command modules, driven through the real administration
 * virtqueue by VirtioDriver + AdminDriver (split and packed rings), the command modules' drivers
 * on AdminDriver.send. The SR-IOV group here is a test group with one VF (a DeviceCore of a stub
 * device): what the legacy commands need of a member is its core.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADMIN_GROUP_SELF, ADMIN_GROUP_SRIOV, AdminStatus } from '../../src/admin/admin-command-handler.js';
import type { AdminGroup } from '../../src/admin/admin-group.js';
import { AdminCommandStatusError } from '../../src/admin/admin-command-status-error.js';
import { AdminCapabilityDriver } from '../../src/admin/capabilities/capability-driver.js';
import { CapabilityHandler } from '../../src/admin/capabilities/capability-handler.js';
import { LegacyMemberDriver } from '../../src/admin/legacy-interface/legacy-interface-driver.js';
import { LegacyInterfaceHandler } from '../../src/admin/legacy-interface/legacy-interface-handler.js';
import { LegacyNotifyFlags } from '../../src/admin/legacy-interface/legacy-notify-info.js';
import { AdminResourceObjectDriver } from '../../src/admin/resource-objects/resource-object-driver.js';
import { ResourceObjectHandler } from '../../src/admin/resource-objects/resource-object-handler.js';
import { DeviceCore } from '../../src/device/device-core.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { AdminOpcode } from '../../src/spec/admin.js';
import { Status } from '../../src/spec/status.js';
import { LegacyReg } from '../../src/transport/pci/constants.js';
import { stubDevice } from '../../src/transport/test-core.js';
import { SriovDriverControl } from '../../src/admin/sriov-driver.js';
import { F } from '../../src/spec/features.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { PciCfg } from '../../src/transport/pci/constants.js';
import { PciDeviceTransport } from '../../src/transport/pci/pci-device.js';
import { SRIOV_CAP_OFFSET, SriovCapability, SriovReg } from '../../src/transport/pci/sriov-capability.js';
import { adminRig, startAdminDriver, type AdminRig } from '../normative/admin-rig.js';
import {
  TEST_GROUP,
  TEST_RESOURCE_CAP,
  TEST_RULE,
  groupData,
  resourceCapValue,
  ruleData,
  testDeviceCapabilities,
  testGroupType,
  testRuleType,
} from '../support/admin-test-objects.js';

const SELF_OPS = [AdminOpcode.CAP_ID_LIST_QUERY, AdminOpcode.DEVICE_CAP_GET, AdminOpcode.DRIVER_CAP_SET, AdminOpcode.RESOURCE_OBJ_CREATE, AdminOpcode.RESOURCE_OBJ_QUERY, AdminOpcode.RESOURCE_OBJ_MODIFY, AdminOpcode.RESOURCE_OBJ_DESTROY];
const LEGACY_OPS = [AdminOpcode.LEGACY_COMMON_CFG_WRITE, AdminOpcode.LEGACY_COMMON_CFG_READ, AdminOpcode.LEGACY_DEV_CFG_WRITE, AdminOpcode.LEGACY_DEV_CFG_READ, AdminOpcode.LEGACY_NOTIFY_INFO];

function owner() {
  const caps = new CapabilityHandler(testDeviceCapabilities());
  const objects = new ResourceObjectHandler(caps, [testGroupType, testRuleType]);
  const vfDevice = stubDevice({ configSize: 8 });
  const notified: number[] = [];
  vfDevice.onQueueNotify = (i: number) => void notified.push(i);
  const vfCore = new DeviceCore(vfDevice, { memory: GuestMemory.allocate(1 << 20), interrupts: { usedBuffer() {}, configChange() {} } });
  const sriov: AdminGroup = { groupType: ADMIN_GROUP_SRIOV, exists: () => true, member: (id) => (id === 1n ? vfCore : null) };
  const legacy = new LegacyInterfaceHandler({ notifyInfo: () => [{ flags: LegacyNotifyFlags.MEMBER, bar: 2, offset: 0x100 }] });
  const rig = adminRig({ admin: { handlers: [caps, objects, legacy], groups: [sriov] } });
  return { caps, objects, legacy, rig, vfCore, vfDevice, notified };
}

for (const packed of [false, true]) {
  const ring = packed ? 'packed' : 'split';
  describe(`admin capabilities, resource objects and legacy interface through the administration virtqueue (${ring})`, () => {
    it('device/admin-cmds-capabilities/1, device/admin-cmds-capabilities/8, device/admin-cmds-resource-objects/11: LIST_QUERY reports the commands; caps and objects set through the queue; an owner reset clears both', async () => {
      const o = owner();
      const { virtio, admin } = startAdminDriver(o.rig, packed);
      const used = await admin.enableGroup(ADMIN_GROUP_SELF, SELF_OPS);
      assert.deepEqual(used, [0, 1, ...SELF_OPS].sort((a, b) => a - b));
      const capDriver = new AdminCapabilityDriver(admin.send);
      const objDriver = new AdminResourceObjectDriver(admin.send, capDriver, [
        { kind: testGroupType, capability: TEST_RESOURCE_CAP },
        { kind: testRuleType, capability: TEST_RESOURCE_CAP },
      ]);
      assert.deepEqual([...(await capDriver.supportedIds())], [64, 0x800, 0x801]);
      assert.deepEqual([...(await capDriver.deviceCapability(0x800, TEST_RESOURCE_CAP))], [...resourceCapValue(4, 8, 0b101, 7)]);
      await capDriver.setDriverCapability(TEST_RESOURCE_CAP, resourceCapValue(2, 4, 0b1, 0));
      await objDriver.create(TEST_GROUP, 1, groupData(1));
      await objDriver.create(TEST_RULE, 3, ruleData(1, 0xabcdef));
      await objDriver.modify(TEST_RULE, 3, ruleData(1, 0x123456));
      assert.deepEqual([...(await objDriver.query(TEST_RULE, 3))], [...ruleData(1, 0x123456)]);
      // The device's refusal comes back through the queue as the status.
      await assert.rejects(
        admin.send(AdminOpcode.RESOURCE_OBJ_DESTROY, ADMIN_GROUP_SELF, 0n, Uint8Array.of(0x00, 0x02, 0, 0, 1, 0, 0, 0), 0).then((r) => {
          if (r.status !== AdminStatus.OK) throw new AdminCommandStatusError('DESTROY', r.status, r.qualifier);
        }),
        (e: unknown) => e instanceof AdminCommandStatusError && e.status === AdminStatus.EBUSY,
      );
      assert.equal(o.objects.count(TEST_RULE), 1);
      virtio.reset();
      assert.equal(o.caps.driverCapability(0x800), null, 'driver capabilities reset');
      assert.equal(o.objects.count(TEST_GROUP) + o.objects.count(TEST_RULE), 0, 'objects destroyed');
    });

    it('device/admin-cmds-legacy-interface/5, device/admin-cmds-legacy-interface/10: a VF driven through the legacy commands on the SR-IOV group', async () => {
      const o = owner();
      const { admin } = startAdminDriver(o.rig, packed, { admin: { sriov: { numVfs: () => 1, vfEnabled: () => true, vfMigrationCapable: () => false } } });
      assert.equal(await admin.enableGroup(ADMIN_GROUP_SELF, []).then((u) => u !== null), true);
      const used = await admin.enableGroup(ADMIN_GROUP_SRIOV, LEGACY_OPS);
      assert.deepEqual(used, [0, 1, ...LEGACY_OPS]);
      const vf = new LegacyMemberDriver(admin.send, 1n);
      await vf.writeCommon(LegacyReg.STATUS, 1, 0);
      await vf.writeCommon(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER);
      assert.equal(await vf.readCommon(LegacyReg.QUEUE_SIZE, 2), 256);
      await vf.writeCommon(LegacyReg.QUEUE_PFN, 4, 32);
      await vf.writeCommon(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK);
      assert.equal(o.vfCore.legacy, true);
      assert.equal(o.vfCore.queueRegisters(0)!.descAddr, 32 * 4096);
      assert.equal(o.vfCore.queueRegisters(0)!.enabled, true);
      assert.equal(await vf.readDeviceValue(0, 4), 0x04030201);
      await vf.writeDeviceValue(4, 4, 0x11223344);
      assert.deepEqual([...o.vfDevice.config.subarray(4, 8)], [0x44, 0x33, 0x22, 0x11]);
      assert.equal(await vf.notify(0), 'command');
      const entries = await vf.notifyInfo({ owner: [0, 0, 0, 0, 0, 0], member: [0, 0, 0x1000, 0, 0, 0] });
      assert.deepEqual(entries, [{ flags: LegacyNotifyFlags.MEMBER, bar: 2, offset: 0x100 }]);
      const member = { groupType: ADMIN_GROUP_SRIOV, memberId: 1n, core: o.vfCore };
      assert.equal(await vf.notify(0, (_e, v) => void o.legacy.notify(member, v[0]! | (v[1]! << 8))), 'address');
      assert.deepEqual(o.notified, [0, 0]);
      // A VF that does not exist is refused by the dispatcher before the handler.
      const r = await admin.send(AdminOpcode.LEGACY_COMMON_CFG_READ, ADMIN_GROUP_SRIOV, 1n, Uint8Array.of(LegacyReg.STATUS), 1);
      assert.equal(r.status, AdminStatus.OK);
      assert.equal(r.result[0], Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK);
    });
  });
}

/** A PF with the SR-IOV capability whose VFs are stub devices on their own PCI functions. */
function sriovOwner() {
  const vfCores: DeviceCore[] = [];
  const vfFunctions: PciDeviceTransport[] = [];
  const notified: number[] = [];
  const box: { rig: AdminRig | null } = { rig: null };
  const cap = new SriovCapability({
    totalVfs: 2,
    createVf: () => {
      const r = box.rig!;
      const dev = stubDevice({ configSize: 8 });
      dev.onQueueNotify = (i: number) => void notified.push(i);
      const made: DeviceCore[] = [];
      vfFunctions.push(new PciDeviceTransport(r.bus, deviceCoreFactory(dev, r.mem, {}, made)));
      vfCores.push(made[0]!);
      return { core: made[0]! };
    },
  });
  const legacy = new LegacyInterfaceHandler({ notifyInfo: () => [{ flags: LegacyNotifyFlags.OWNER, bar: 4, offset: 0x3000 }] });
  box.rig = adminRig({ pci: { sriov: cap }, admin: { groups: [cap.group], handlers: [legacy] } });
  return { rig: box.rig, cap, legacy, vfCores, vfFunctions, notified };
}

for (const packed of [false, true]) {
  const ring = packed ? 'packed' : 'split';
  describe(`admin legacy interface on the PF's SR-IOV capability (${ring})`, () => {
    it('device/admin-cmds-legacy-interface/9, device/admin-cmds-legacy-interface/10: VFs of the SR-IOV capability driven through the legacy commands; non-transitional ids; VF BAR0 hardwired to zero', async () => {
      const o = sriovOwner();
      const control = new SriovDriverControl(o.rig.driverTransport);
      const { virtio, admin } = startAdminDriver(o.rig, packed, { wanted: F.SR_IOV, admin: { sriov: control } });
      control.observe(virtio);
      control.enableVfs(2);
      assert.equal(o.vfCores.length, 2);
      assert.deepEqual(await admin.enableGroup(ADMIN_GROUP_SRIOV, LEGACY_OPS), [0, 1, ...LEGACY_OPS]);
      const vf2 = new LegacyMemberDriver(admin.send, 2n);
      await vf2.writeCommon(LegacyReg.STATUS, 1, 0);
      await vf2.writeCommon(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER);
      await vf2.writeCommon(LegacyReg.QUEUE_SELECT, 2, 1);
      await vf2.writeCommon(LegacyReg.QUEUE_PFN, 4, 40);
      await vf2.writeCommon(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK);
      assert.equal(o.vfCores[1]!.legacy, true, 'VF 2 serves its legacy interface');
      assert.equal(o.vfCores[0]!.legacy, false, 'VF 1 untouched');
      assert.equal(o.vfCores[1]!.queueRegisters(1)!.descAddr, 40 * 4096);
      assert.equal(await vf2.readDeviceValue(4, 4), 0x08070605);
      // The notification address and the command have the same effect.
      await vf2.notify(1);
      const member = { groupType: ADMIN_GROUP_SRIOV, memberId: 2n, core: o.vfCores[1]! };
      const entries = await vf2.notifyInfo({ owner: [0, 0, 0, 0, 0x4000, 0], member: [0, 0, 0, 0, 0, 0] });
      assert.deepEqual(entries, [{ flags: LegacyNotifyFlags.OWNER, bar: 4, offset: 0x3000 }]);
      assert.equal(await vf2.notify(1, (_e, v) => void o.legacy.notify(member, v[0]! | (v[1]! << 8))), 'address');
      assert.deepEqual(o.notified, [1, 1]);
      // Non-transitional rules (4.1.2): PF and VF device ids 0x1040 + type, revision >= 1, subsystem id >= 0x40.
      const pf = o.rig.pci;
      const type = o.rig.cores.at(-1)!.device.deviceId;
      assert.equal(pf.configRead(PciCfg.DEVICE_ID, 2), 0x1040 + type);
      assert.ok(pf.configRead(PciCfg.REVISION_ID, 1) >= 1);
      assert.ok(pf.configRead(PciCfg.SUBSYSTEM_ID, 2) >= 0x40, 'subsystem device id of a non-transitional device');
      assert.equal(o.vfFunctions[1]!.configRead(PciCfg.DEVICE_ID, 2), 0x1040 + o.vfCores[1]!.device.deviceId);
      assert.ok(o.vfFunctions[1]!.configRead(PciCfg.REVISION_ID, 1) >= 1);
      // VF BAR0 of the SR-IOV capability is hardwired to zero.
      pf.configWrite(SRIOV_CAP_OFFSET + SriovReg.VF_BAR0, 4, 0xffff_ffff);
      assert.equal(pf.configRead(SRIOV_CAP_OFFSET + SriovReg.VF_BAR0, 4), 0);
      assert.equal(o.cap.read(SriovReg.VF_BAR0, 4), 0);
    });
  });
}
