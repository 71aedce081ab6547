/**
 * The device parts capability and resource object type wired into the generic modules (2.12.1.5
 * "VIRTIO_DEV_PARTS_CAP", "VIRTIO_RESOURCE_OBJ_DEV_PARTS"): the capability's layout for the
 * capabilities module, and a `ResourceObjectType` for the resource objects module whose
 * RESOURCE_OBJ_CREATE / DESTROY fill the `DevicePartsObjectTable` the device parts handler reads.
 */
import { ADMIN_GROUP_SRIOV } from '../admin-command-handler.js';
import { VirtioError, ErrorCode } from '../../errors.js';
import { type CapabilityLayout, VIRTIO_DEV_PARTS_CAP, defineCapabilityLayout } from '../capabilities/capability-layout.js';
import type { DeviceCapability } from '../capabilities/capability-handler.js';
import { type ResourceObjectKind, type ResourceObjectType, VIRTIO_RESOURCE_OBJ_DEV_PARTS } from '../resource-objects/resource-object-type.js';
import { DevicePartsObjectType } from './device-part-format.js';
import { DEV_PARTS_OBJECT_DATA_SIZE, type DevicePartsObjectTable, decodeDevicePartsObjectData } from './device-parts-objects.js';

/** Field name of get_parts_resource_objects_limit. */
export const DEV_PARTS_GET_LIMIT = 'get_parts_resource_objects_limit';
/** Field name of set_parts_resource_objects_limit. */
export const DEV_PARTS_SET_LIMIT = 'set_parts_resource_objects_limit';

/** `struct virtio_dev_parts_cap`: u8 get_parts_resource_objects_limit, u8 set_parts_resource_objects_limit. */
export const DEV_PARTS_CAP_LAYOUT: CapabilityLayout = defineCapabilityLayout({
  id: VIRTIO_DEV_PARTS_CAP,
  name: 'VIRTIO_DEV_PARTS_CAP',
  size: 2,
  fields: [
    { kind: 'limit', name: DEV_PARTS_GET_LIMIT, offset: 0, width: 1 },
    { kind: 'limit', name: DEV_PARTS_SET_LIMIT, offset: 1, width: 1 },
  ],
});

/** The cap_specific_data of VIRTIO_DEV_PARTS_CAP with these limits (each 0..255). */
export function devPartsCapabilityValue(getLimit: number, setLimit: number): Uint8Array {
  for (const v of [getLimit, setLimit]) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `device parts object limit ${v} not in 0..255 (u8)`);
  }
  return Uint8Array.of(getLimit, setLimit);
}

/** The device's VIRTIO_DEV_PARTS_CAP for a CapabilityHandler. */
export function devPartsDeviceCapability(getLimit: number, setLimit: number): DeviceCapability {
  return { layout: DEV_PARTS_CAP_LAYOUT, value: devPartsCapabilityValue(getLimit, setLimit) };
}

/** `struct virtio_resource_obj_dev_parts` for a get or a set object. */
export function devPartsObjectData(type: DevicePartsObjectType): Uint8Array {
  const data = new Uint8Array(DEV_PARTS_OBJECT_DATA_SIZE);
  data[0] = type;
  return data;
}

/** The limit field bounding an object with this (validated) data: its get or set limit. */
function limitFieldOf(data: Uint8Array): string {
  return data[0] === DevicePartsObjectType.SET ? DEV_PARTS_SET_LIMIT : DEV_PARTS_GET_LIMIT;
}

/**
 * What both sides know of VIRTIO_RESOURCE_OBJ_DEV_PARTS: created for SR-IOV members (the device
 * parts commands exist only for that group type), bounded per subtype by the two limits of
 * VIRTIO_DEV_PARTS_CAP; ids run over 0..get limit + set limit - 1 (the chapter names no single
 * limit, so the id space holds both kinds).
 */
export const DEV_PARTS_OBJECT_KIND: ResourceObjectKind = {
  type: VIRTIO_RESOURCE_OBJ_DEV_PARTS,
  name: 'VIRTIO_RESOURCE_OBJ_DEV_PARTS',
  capabilityId: VIRTIO_DEV_PARTS_CAP,
  limitField: DEV_PARTS_GET_LIMIT,
  subtypeLimits: { fields: [DEV_PARTS_GET_LIMIT, DEV_PARTS_SET_LIMIT], fieldOf: limitFieldOf },
  dataLength: DEV_PARTS_OBJECT_DATA_SIZE,
  groupTypes: [ADMIN_GROUP_SRIOV],
};

/**
 * The device's VIRTIO_RESOURCE_OBJ_DEV_PARTS type: data checked by `decodeDevicePartsObjectData`,
 * objects entered into `table` on create and removed on destroy (and on owner reset, when the
 * store destroys everything). Build `table` without limits of its own (`new
 * DevicePartsObjectTable(Infinity, Infinity)`): the store enforces the capability's.
 */
export function devPartsResourceObjectType(table: DevicePartsObjectTable): ResourceObjectType {
  return {
    ...DEV_PARTS_OBJECT_KIND,
    maxDataLength: DEV_PARTS_OBJECT_DATA_SIZE,
    validate(data, _flags, _member, current) {
      const decoded = decodeDevicePartsObjectData(data);
      if (typeof decoded === 'string') return decoded;
      // 2.12.1.5: the purpose is fixed "at the time of creating" the object.
      if (current !== null && current[0] !== decoded) return 'a device parts object keeps the kind (get or set) it was created with';
      return null;
    },
    onCreate(id, data, member) {
      table.create(member.groupType, member.memberId, id, data[0] === DevicePartsObjectType.SET ? DevicePartsObjectType.SET : DevicePartsObjectType.GET);
    },
    onDestroy(id) {
      table.destroyId(id);
    },
  };
}
