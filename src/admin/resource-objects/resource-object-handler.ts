/**
 * 2.12.1.3 Device resource objects, device side: RESOURCE_OBJ_CREATE / MODIFY / QUERY / DESTROY
 * over a generic store. Ids are driver-assigned in 0..limit-1 where limit is the driver
 * capability's (0 until the driver set it, device/admin-cmds-capabilities/9); objects may depend
 * on others (EBUSY while depended on); an internal budget of bytes bounds what an untrusted driver
 * can make the device keep (ENOSPC, device/admin-cmds-resource-objects/3, /7); a device reset
 * destroys everything (device/admin-cmds-resource-objects/11).
 */
import {
  ADMIN_GROUP_SELF,
  AdminStatus,
  AdminStatusQualifier,
  adminError,
  adminOk,
  type AdminCommandHandler,
  type AdminCommandOutcome,
  type AdminMember,
} from '../admin-command-handler.js';
import { VirtioError, ErrorCode } from '../../errors.js';
import { AdminOpcode } from '../../spec/admin.js';
import { fitAdminData } from '../admin-data-fit.js';
import type { CapabilityHandler } from '../capabilities/capability-handler.js';
import { RESOURCE_OBJECT_TYPE_LIMIT, type ResourceObjectType } from './resource-object-type.js';

/**
 * 2.12.1 opcodes of the resource object commands. virtio 1.4 contradicts itself here: the
 * paragraphs of 2.12.1.3 give MODIFY 0xb and QUERY 0xc, the opcode table of 2.12.1 (the one
 * LIST_QUERY's bitmap is read against) gives QUERY 0xb and MODIFY 0xc. The table wins, as in
 * `AdminOpcode` and other implementations (bhyve's).
 */
export const ResourceObjectOpcode = {
  CREATE: AdminOpcode.RESOURCE_OBJ_CREATE,
  QUERY: AdminOpcode.RESOURCE_OBJ_QUERY,
  MODIFY: AdminOpcode.RESOURCE_OBJ_MODIFY,
  DESTROY: AdminOpcode.RESOURCE_OBJ_DESTROY,
} as const;

/**
 * VIRTIO_ADMIN_STATUS_EEXIST: device/admin-cmds-resource-objects/1 names it but the 2.12.1 status
 * table does not list it; the table's values are Linux errno numbers, where EEXIST is 17.
 */
export const ADMIN_STATUS_EEXIST = 17;

/** struct virtio_admin_cmd_resource_obj_cmd_hdr: le16 type, u8 reserved[2], le32 id. */
export const RESOURCE_OBJ_HEADER_SIZE = 8;
/** The header plus le64 flags (create, modify, query data). */
export const RESOURCE_OBJ_FLAGS_END = 16;

/** Options of the object store. */
export interface ResourceObjectHandlerOptions {
  /**
   * Bytes of resource_obj_specific_data the device keeps at most over all objects, its internal
   * limit (device/admin-cmds-resource-objects/7). Default 1 MiB.
   */
  readonly byteBudget?: number;
  /** Objects the device keeps at most over all types (its other internal limit). Default 65536. */
  readonly maxObjects?: number;
}

interface StoredObject {
  data: Uint8Array;
  readonly groupType: number;
  readonly memberId: bigint;
  /** Objects this one depends on, as keys of the store. */
  deps: number[];
  /** How many objects depend on this one. */
  dependents: number;
}

/** Objects of all types in one map: type * 2^32 + id is an exact safe integer. */
function keyOf(type: number, id: number): number {
  return type * 0x1_0000_0000 + id;
}

/** The resource object commands of one owner device. */
export class ResourceObjectHandler implements AdminCommandHandler {
  /** RESOURCE_OBJ_CREATE, QUERY, MODIFY, DESTROY. */
  readonly opcodes: readonly number[] = [ResourceObjectOpcode.CREATE, ResourceObjectOpcode.QUERY, ResourceObjectOpcode.MODIFY, ResourceObjectOpcode.DESTROY];
  /** The self group, and the group types registered types allow. */
  readonly groupTypes: readonly number[];
  private readonly types = new Map<number, ResourceObjectType>();
  private readonly objects = new Map<number, StoredObject>();
  private readonly counts = new Map<number, number>();
  private readonly byteBudget: number;
  private readonly maxObjects: number;
  private bytesUsed = 0;

  constructor(
    private readonly capabilities: CapabilityHandler,
    types: readonly ResourceObjectType[],
    options: ResourceObjectHandlerOptions = {},
  ) {
    this.byteBudget = options.byteBudget ?? 1 << 20;
    this.maxObjects = options.maxObjects ?? 1 << 16;
    const groups = new Set<number>([ADMIN_GROUP_SELF]);
    for (const t of types) {
      if (!Number.isInteger(t.type) || t.type < 0 || t.type >= RESOURCE_OBJECT_TYPE_LIMIT || this.types.has(t.type)) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `resource object type ${t.type} (${t.name}) invalid or registered twice`);
      }
      const layout = capabilities.layout(t.capabilityId);
      for (const field of [t.limitField, ...(t.subtypeLimits?.fields ?? [])]) {
        if (!layout || !layout.fields.some((f) => f.name === field && f.kind === 'limit')) {
          throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `resource object type ${t.name}: capability ${t.capabilityId} has no limit ${field}`);
        }
      }
      this.types.set(t.type, t);
      for (const g of t.groupTypes ?? [ADMIN_GROUP_SELF]) groups.add(g);
    }
    this.groupTypes = [...groups];
    // device/admin-cmds-capabilities/6: a capability bounding live objects is pinned.
    capabilities.addInUseCheck((id) => this.capabilityInUse(id));
  }

  /** Whether objects of a type whose limit comes from capability `id` exist. */
  capabilityInUse(id: number): boolean {
    for (const t of this.types.values()) if (t.capabilityId === id && (this.counts.get(t.type) ?? 0) > 0) return true;
    return false;
  }

  /** Number of live objects of `type`. */
  count(type: number): number {
    return this.counts.get(type) ?? 0;
  }

  /** The data of object (type, id) as the device keeps it, or null. */
  object(type: number, id: number): Uint8Array | null {
    return this.objects.get(keyOf(type, id))?.data.slice() ?? null;
  }

  /**
   * The id bound of `type`: the driver capability's limit (ids 0..limit-1); for a type with
   * subtype limits, the sum of them.
   */
  limit(type: number): number {
    const t = this.types.get(type);
    if (!t) return 0;
    const fields = t.subtypeLimits?.fields ?? [t.limitField];
    return fields.reduce((sum, f) => sum + this.capabilities.driverLimit(t.capabilityId, f), 0);
  }

  /** Whether one more object with `data` stays within its subtype's limit (always, without subtypes). */
  private subtypeRoom(type: ResourceObjectType, data: Uint8Array): boolean {
    const sub = type.subtypeLimits;
    if (!sub) return true;
    const field = sub.fieldOf(data);
    let n = 0;
    for (const [key, obj] of this.objects) {
      if (Math.floor(key / 0x1_0000_0000) === type.type && sub.fieldOf(obj.data) === field) n++;
    }
    return n < this.capabilities.driverLimit(type.capabilityId, field);
  }

  /** device/admin-cmds-resource-objects/11: a device reset destroys every object. */
  reset(): void {
    for (const [key] of this.objects) this.types.get(Math.floor(key / 0x1_0000_0000))?.onDestroy?.(key % 0x1_0000_0000);
    this.objects.clear();
    this.counts.clear();
    this.bytesUsed = 0;
  }

  handle(opcode: number, member: AdminMember, raw: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    // The header and flags as zero-extended when cut short (device/admin/15); QUERY and DESTROY
    // ignore anything after their structure (a padded buffer, device/admin/16).
    const data = raw.length >= RESOURCE_OBJ_FLAGS_END ? raw : fitAdminData(raw, RESOURCE_OBJ_FLAGS_END);
    const typeId = data[0]! | (data[1]! << 8);
    const id = (data[4]! | (data[5]! << 8) | (data[6]! << 16) | (data[7]! << 24)) >>> 0;
    const type = this.types.get(typeId);
    if (!type) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
    if (!(type.groupTypes ?? [ADMIN_GROUP_SELF]).includes(member.groupType)) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_GROUP);
    if (member.groupType === ADMIN_GROUP_SELF && member.memberId !== 0n) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER);
    switch (opcode) {
      case ResourceObjectOpcode.CREATE:
        return this.create(type, id, member, data);
      case ResourceObjectOpcode.MODIFY:
        return this.modify(type, id, member, data);
      case ResourceObjectOpcode.QUERY:
        if (this.flagsOf(type, data) === null) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
        return this.query(typeId, id, member, result);
      case ResourceObjectOpcode.DESTROY:
        // DESTROY's data is the header alone.
        return this.destroy(type, id, member);
      default:
        return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE);
    }
  }

  /** The flags (low 32 bits) when `data` carries them and only bits the type defines; else null. */
  private flagsOf(type: ResourceObjectType, data: Uint8Array): number | null {
    const low = (data[8]! | (data[9]! << 8) | (data[10]! << 16) | (data[11]! << 24)) >>> 0;
    const high = data[12]! | data[13]! | data[14]! | data[15]!;
    if (high !== 0 || (low & ~(type.flagsMask ?? 0)) !== 0) return null;
    return low;
  }

  /** resource_obj_specific_data: at the type's fixed size, or as sent up to its maximum. */
  private specificOf(type: ResourceObjectType, data: Uint8Array): Uint8Array {
    const specific = data.subarray(RESOURCE_OBJ_FLAGS_END);
    return type.dataLength === undefined ? specific : fitAdminData(specific, type.dataLength);
  }

  /** Keys of the objects `data` depends on when all exist for this member; else null. */
  private dependencyKeys(type: ResourceObjectType, data: Uint8Array, member: AdminMember, self: number): number[] | null {
    const keys: number[] = [];
    for (const ref of type.dependencies?.(data) ?? []) {
      const key = keyOf(ref.type, ref.id);
      const dep = this.objects.get(key);
      if (!dep || key === self || !this.sameOwner(dep, member)) return null;
      keys.push(key);
    }
    return keys;
  }

  private sameOwner(obj: StoredObject, member: AdminMember): boolean {
    return obj.groupType === member.groupType && obj.memberId === member.memberId;
  }

  private create(type: ResourceObjectType, id: number, member: AdminMember, data: Uint8Array): AdminCommandOutcome {
    const flags = this.flagsOf(type, data);
    if (flags === null) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
    const specific = this.specificOf(type, data);
    // 2.12.1.3: "a driver-assigned number in the range of 0 to limit - 1" of the driver capability.
    if (id >= this.limit(type.type)) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
    const key = keyOf(type.type, id);
    // device/admin-cmds-resource-objects/1.
    if (this.objects.has(key)) return adminError(ADMIN_STATUS_EEXIST, AdminStatusQualifier.OK);
    if (specific.length > type.maxDataLength || type.validate(specific, flags, member, null) !== null) {
      return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
    }
    const deps = this.dependencyKeys(type, specific, member, key);
    if (deps === null) return adminError(AdminStatus.ENXIO, AdminStatusQualifier.INVALID_FIELD);
    // device/admin-cmds-resource-objects/3, /7: the subtype's limit and the device's own limit.
    if (!this.subtypeRoom(type, specific) || this.bytesUsed + specific.length > this.byteBudget || this.objects.size >= this.maxObjects) {
      return adminError(AdminStatus.ENOSPC, AdminStatusQualifier.NORESOURCE);
    }
    const copy = specific.slice();
    this.objects.set(key, { data: copy, groupType: member.groupType, memberId: member.memberId, deps, dependents: 0 });
    for (const d of deps) this.objects.get(d)!.dependents++;
    this.counts.set(type.type, this.count(type.type) + 1);
    this.bytesUsed += copy.length;
    type.onCreate?.(id, copy, member);
    return adminOk(0);
  }

  /** The object (type, id) when it exists and belongs to this member. */
  private existing(typeId: number, id: number, member: AdminMember): StoredObject | null {
    const obj = this.objects.get(keyOf(typeId, id));
    return obj && this.sameOwner(obj, member) ? obj : null;
  }

  private modify(type: ResourceObjectType, id: number, member: AdminMember, data: Uint8Array): AdminCommandOutcome {
    const flags = this.flagsOf(type, data);
    if (flags === null) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
    const obj = this.existing(type.type, id, member);
    // device/admin-cmds-resource-objects/2.
    if (!obj) return adminError(AdminStatus.ENXIO, AdminStatusQualifier.INVALID_FIELD);
    // device/admin-cmds-resource-objects/4.
    if (obj.dependents > 0) return adminError(AdminStatus.EBUSY, AdminStatusQualifier.OK);
    const specific = this.specificOf(type, data);
    // Everything is checked before anything changes (device/admin-cmds-resource-objects/9).
    if (specific.length > type.maxDataLength || type.validate(specific, flags, member, obj.data) !== null) {
      return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
    }
    const key = keyOf(type.type, id);
    const deps = this.dependencyKeys(type, specific, member, key);
    if (deps === null) return adminError(AdminStatus.ENXIO, AdminStatusQualifier.INVALID_FIELD);
    if (this.bytesUsed - obj.data.length + specific.length > this.byteBudget) return adminError(AdminStatus.ENOSPC, AdminStatusQualifier.NORESOURCE);
    for (const d of obj.deps) this.objects.get(d)!.dependents--;
    for (const d of deps) this.objects.get(d)!.dependents++;
    this.bytesUsed += specific.length - obj.data.length;
    obj.data = specific.slice();
    obj.deps = deps;
    type.onModify?.(id, obj.data, member);
    return adminOk(0);
  }

  private query(typeId: number, id: number, member: AdminMember, result: Uint8Array): AdminCommandOutcome {
    const obj = this.existing(typeId, id, member);
    if (!obj) return adminError(AdminStatus.ENXIO, AdminStatusQualifier.INVALID_FIELD);
    // device/admin-cmds-resource-objects/10: the data of the last CREATE or MODIFY (what fits).
    const n = Math.min(obj.data.length, result.length);
    result.set(obj.data.subarray(0, n));
    return adminOk(n);
  }

  private destroy(type: ResourceObjectType, id: number, member: AdminMember): AdminCommandOutcome {
    const obj = this.existing(type.type, id, member);
    if (!obj) return adminError(AdminStatus.ENXIO, AdminStatusQualifier.INVALID_FIELD);
    if (obj.dependents > 0) return adminError(AdminStatus.EBUSY, AdminStatusQualifier.OK);
    for (const d of obj.deps) this.objects.get(d)!.dependents--;
    this.objects.delete(keyOf(type.type, id));
    this.counts.set(type.type, this.count(type.type) - 1);
    this.bytesUsed -= obj.data.length;
    type.onDestroy?.(id);
    return adminOk(0);
  }
}
