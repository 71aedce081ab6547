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

  /** Every object is gone (owner reset: resource objects are destroyed, 2.12.1.3). */
  clear(): void {
    this.objects.clear();
  }

  /** The lookup the device parts handler takes. */
  readonly lookup: DevicePartsObjectLookup = (member, id) => this.objects.get(DevicePartsObjectTable.key(member.groupType, member.memberId, id)) ?? null;
}
