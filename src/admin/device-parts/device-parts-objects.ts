/**
 * Device parts resource objects (VIRTIO_RESOURCE_OBJ_DEV_PARTS): the device parts commands name
 * one in their header, and a get object serves only gets, a set object only sets (2.12.1.5). The
 * resource object commands that create and destroy them (RESOURCE_OBJ_CREATE / DESTROY) belong to
 * the resource objects module; the device parts handler only asks what an id is, through
 * `DevicePartsObjectLookup`. `DevicePartsObjectTable` is a small table that answers it, for a
 * resource object store to fill (or for tests).
 */
import type { AdminMember } from '../admin-command-handler.js';
import { DevicePartsObjectType } from './device-part-format.js';

/**
 * What the device parts object `id` of `member` is for: DevicePartsObjectType.GET or .SET, or
 * null when no such object exists.
 */
export type DevicePartsObjectLookup = (member: AdminMember, id: number) => DevicePartsObjectType | null;

/**
 * Device parts objects per member, bounded by the limits of VIRTIO_DEV_PARTS_CAP
 * (get_parts_resource_objects_limit, set_parts_resource_objects_limit).
 */
export class DevicePartsObjectTable {
  private readonly objects = new Map<string, DevicePartsObjectType>();

  constructor(
    /** get_parts_resource_objects_limit. */
    readonly getLimit = 1,
    /** set_parts_resource_objects_limit. */
    readonly setLimit = 1,
  ) {}

  private static key(groupType: number, memberId: bigint, id: number): string {
    return `${groupType}:${memberId}:${id}`;
  }

  /**
   * Creates object `id` of `type` for a member; false when the id is taken or the limit of that
   * type is reached.
   */
  create(groupType: number, memberId: bigint, id: number, type: DevicePartsObjectType): boolean {
    const k = DevicePartsObjectTable.key(groupType, memberId, id);
    if (this.objects.has(k)) return false;
    let n = 0;
    for (const t of this.objects.values()) if (t === type) n++;
    if (n >= (type === DevicePartsObjectType.GET ? this.getLimit : this.setLimit)) return false;
    this.objects.set(k, type);
    return true;
  }

  /** Destroys object `id` of a member; false when there is none. */
  destroy(groupType: number, memberId: bigint, id: number): boolean {
    return this.objects.delete(DevicePartsObjectTable.key(groupType, memberId, id));
  }

  /** Destroys object `id` whoever it belongs to (a store whose ids are unique per type); false when none. */
  destroyId(id: number): boolean {
    let found = false;
    for (const k of [...this.objects.keys()]) {
      if (k.endsWith(`:${id}`)) found = this.objects.delete(k) || found;
    }
    return found;
  }

  /** Every object is gone (owner reset: resource objects are destroyed, 2.12.1.3). */
  clear(): void {
    this.objects.clear();
  }

  /** The lookup the device parts handler takes. */
  readonly lookup: DevicePartsObjectLookup = (member, id) => this.objects.get(DevicePartsObjectTable.key(member.groupType, member.memberId, id)) ?? null;
}

/** Size of `struct virtio_resource_obj_dev_parts`. */
export const DEV_PARTS_OBJECT_DATA_SIZE = 8;

/**
 * Checks `struct virtio_resource_obj_dev_parts` (resource_obj_specific_data of a create): a type
 * of GET or SET and zero reserved bytes. Answers the object type, or why the data is invalid
 * (for a resource object store's validate hook).
 */
export function decodeDevicePartsObjectData(data: Uint8Array): DevicePartsObjectType | string {
  if (data.length !== DEV_PARTS_OBJECT_DATA_SIZE) return `device parts object data of ${data.length} bytes, ${DEV_PARTS_OBJECT_DATA_SIZE} expected`;
  const type = data[0]!;
  if (type !== DevicePartsObjectType.GET && type !== DevicePartsObjectType.SET) return `device parts object type ${type} is neither GET nor SET`;
  for (let i = 1; i < DEV_PARTS_OBJECT_DATA_SIZE; i++) if (data[i] !== 0) return 'device parts object: reserved not zero';
  return type;
}
