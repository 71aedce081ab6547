/**
 * Test capabilities and resource object types for the generic machinery of 2.12.1.2 / 2.12.1.3.
 * virtio 1.4 defines one generic resource object type (VIRTIO_RESOURCE_OBJ_DEV_PARTS, the device
 * parts helper's) and device-specific ones for the net flow filter, which the net device here
 * does not implement; these stand in: a "group" (0x200) and a "rule" (0x201) that depends on a
 * group, with their limits in one resource capability, as the flow filter's are.
 */
import { ADMIN_GROUP_SELF, type AdminMember } from '../../src/admin/admin-command-handler.js';
import { CapabilityHandler, type DeviceCapability } from '../../src/admin/capabilities/capability-handler.js';
import { defineCapabilityLayout, writeCapabilityUint } from '../../src/admin/capabilities/capability-layout.js';
import type { ResourceObjectType } from '../../src/admin/resource-objects/resource-object-type.js';
import { ResourceObjectHandler, type ResourceObjectHandlerOptions } from '../../src/admin/resource-objects/resource-object-handler.js';
import type { DeviceCoreApi } from '../../src/device/types.js';

/** A resource limits capability (device type specific range): limits and a flags bitmap. */
export const TEST_RESOURCE_CAP = defineCapabilityLayout({
  id: 0x800,
  name: 'TEST_RESOURCE_CAP',
  size: 12,
  fields: [
    { kind: 'limit', name: 'groups', offset: 0, width: 4 },
    { kind: 'limit', name: 'rules', offset: 4, width: 4 },
    { kind: 'bitmap', name: 'modes', offset: 8, width: 2 },
    { kind: 'limit', name: 'priority', offset: 10, width: 1 },
  ],
});

/** An array capability: u8 count, u8 reserved[3], then 4-byte entries. */
export const TEST_SELECTOR_CAP = defineCapabilityLayout({
  id: 0x801,
  name: 'TEST_SELECTOR_CAP',
  size: 4,
  fields: [{ kind: 'array', name: 'selectors', offset: 0, countWidth: 1, entrySize: 4, maxEntries: 16 }],
});

/** A generic capability with id 64 (the second le64 word of the id bitmap). */
export const TEST_GENERIC_CAP = defineCapabilityLayout({ id: 64, name: 'TEST_GENERIC_CAP', size: 2, fields: [{ kind: 'limit', name: 'depth', offset: 0, width: 2 }] });

export function resourceCapValue(groups: number, rules: number, modes: number, priority: number): Uint8Array {
  const v = new Uint8Array(TEST_RESOURCE_CAP.size);
  writeCapabilityUint(v, 0, 4, groups);
  writeCapabilityUint(v, 4, 4, rules);
  writeCapabilityUint(v, 8, 2, modes);
  v[10] = priority;
  return v;
}

export function selectorCapValue(entries: readonly number[]): Uint8Array {
  const v = new Uint8Array(4 + entries.length * 4);
  v[0] = entries.length;
  entries.forEach((e, i) => writeCapabilityUint(v, 4 + i * 4, 4, e));
  return v;
}

/** The device's capabilities: 4 groups, 8 rules, modes 0b101, priority 7; selectors 0x11, 0x22, 0x33. */
export function testDeviceCapabilities(): DeviceCapability[] {
  return [
    { layout: TEST_RESOURCE_CAP, value: resourceCapValue(4, 8, 0b101, 7) },
    { layout: TEST_SELECTOR_CAP, value: selectorCapValue([0x11, 0x22, 0x33]) },
    { layout: TEST_GENERIC_CAP, value: Uint8Array.of(9, 0) },
  ];
}

export const TEST_GROUP = 0x200;
export const TEST_RULE = 0x201;

/** group data: u8 mode (a bit presented in the capability's modes), u8 reserved[3]. */
export const testGroupType: ResourceObjectType = {
  type: TEST_GROUP,
  name: 'TEST_GROUP',
  capabilityId: TEST_RESOURCE_CAP.id,
  limitField: 'groups',
  dataLength: 4,
  maxDataLength: 4,
  validate: (data) => (data.length === 4 && (data[0] === 1 || data[0] === 4) && data[1] === 0 ? null : 'bad group'),
};

/** rule data: le32 group id, le32 value. Depends on its group. */
export const testRuleType: ResourceObjectType = {
  type: TEST_RULE,
  name: 'TEST_RULE',
  capabilityId: TEST_RESOURCE_CAP.id,
  limitField: 'rules',
  dataLength: 8,
  maxDataLength: 8,
  validate: (data) => (data.length === 8 ? null : 'rule data is 8 bytes'),
  dependencies: (data) => [{ type: TEST_GROUP, id: new DataView(data.buffer, data.byteOffset, 8).getUint32(0, true) }],
};

export function groupData(mode: number): Uint8Array {
  return Uint8Array.of(mode, 0, 0, 0);
}

export function ruleData(group: number, value: number): Uint8Array {
  const d = new Uint8Array(8);
  const v = new DataView(d.buffer);
  v.setUint32(0, group, true);
  v.setUint32(4, value, true);
  return d;
}

export function selfMember(core: DeviceCoreApi = {} as DeviceCoreApi): AdminMember {
  return { groupType: ADMIN_GROUP_SELF, memberId: 0n, core };
}

/** An owner's capability and resource object handlers wired together. */
export function testOwnerHandlers(options?: ResourceObjectHandlerOptions): { caps: CapabilityHandler; objects: ResourceObjectHandler } {
  const caps = new CapabilityHandler(testDeviceCapabilities());
  const objects = new ResourceObjectHandler(caps, [testGroupType, testRuleType], options);
  return { caps, objects };
}
