/**
 * 2.12.1.3 Device resource objects, driver side: create, modify, query and destroy, with the
 * driver's rules kept before anything is sent. The driver tracks the objects it created, so it
 * never creates an id twice (driver/admin-cmds-resource-objects/1), never beyond the limit of the
 * driver capability it set, which it must have set first (driver/admin-cmds-resource-objects/2,
 * /6, driver/admin-cmds-capabilities/1), never touches a destroyed object (/3) and never destroys
 * one others depend on (/4); it also tells the capability driver which capabilities are pinned
 * (/5).
 */
import { ADMIN_GROUP_SELF, type AdminCommandSender } from '../admin-command-handler.js';
import { expectAdminOk } from '../admin-command-status-error.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { AdminCapabilityDriver } from '../capabilities/capability-driver.js';
import type { CapabilityLayout } from '../capabilities/capability-layout.js';
import { RESOURCE_OBJ_FLAGS_END, RESOURCE_OBJ_HEADER_SIZE, ResourceObjectOpcode } from './resource-object-handler.js';
import type { ResourceObjectKind } from './resource-object-type.js';

/** Result space offered for RESOURCE_OBJ_QUERY by default. */
const DEFAULT_QUERY_CAPACITY = 4096;

/** Encodes struct virtio_admin_cmd_resource_obj_cmd_hdr, then le64 flags and the data when given. */
export function encodeResourceObjectCommand(type: number, id: number, flags: number | null, specific: Uint8Array = new Uint8Array(0)): Uint8Array {
  const size = flags === null ? RESOURCE_OBJ_HEADER_SIZE : RESOURCE_OBJ_FLAGS_END + specific.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint16(0, type, true);
  view.setUint32(4, id, true);
  if (flags !== null) {
    view.setUint32(8, flags >>> 0, true);
    out.set(specific, RESOURCE_OBJ_FLAGS_END);
  }
  return out;
}

/** Where one kind of object lives for the driver: its kind and the capability layout giving its limit. */
export interface DriverResourceObjectKind {
  /** The type, its limit field and dependencies. */
  readonly kind: ResourceObjectKind;
  /** The layout of the capability holding its limit. */
  readonly capability: CapabilityLayout;
}

interface DriverObject {
  readonly deps: readonly string[];
  /** The limit field bounding it (its subtype's, or the type's). */
  readonly limitField: string;
  dependents: number;
}

function objKey(type: number, id: number): string {
  return `${type}:${id}`;
}

/** A driver's resource objects of one owner device. */
export class AdminResourceObjectDriver {
  private readonly kinds = new Map<number, DriverResourceObjectKind>();
  private readonly objects = new Map<string, DriverObject>();

  constructor(
    private readonly send: AdminCommandSender,
    private readonly capabilities: AdminCapabilityDriver,
    kinds: readonly DriverResourceObjectKind[],
    private readonly groupType = ADMIN_GROUP_SELF,
    private readonly memberId = 0n,
  ) {
    for (const k of kinds) this.kinds.set(k.kind.type, k);
    capabilities.addInUseCheck((capId) => this.capabilityInUse(capId));
  }

  /** Whether objects of a kind bounded by capability `capId` exist. */
  capabilityInUse(capId: number): boolean {
    for (const [key] of this.objects) {
      const k = this.kinds.get(Number(key.split(':')[0]));
      if (k?.kind.capabilityId === capId) return true;
    }
    return false;
  }

  /** Whether the driver holds object (type, id). */
  has(type: number, id: number): boolean {
    return this.objects.has(objKey(type, id));
  }

  private kindOf(type: number): DriverResourceObjectKind {
    const k = this.kinds.get(type);
    if (!k) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `resource object type ${type} is not known to this driver`);
    return k;
  }

  private refuse(message: string): never {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, message);
  }

  /** RESOURCE_OBJ_CREATE of (type, id) with `specific` data. */
  async create(type: number, id: number, specific: Uint8Array, flags = 0): Promise<void> {
    const k = this.kindOf(type);
    const name = `${k.kind.name} ${id}`;
    if (this.objects.has(objKey(type, id))) this.refuse(`${name} exists; destroy it before creating it again`);
    if (this.capabilities.driverCapability(k.capability.id) === null) this.refuse(`${name}: set driver capability ${k.capability.name} first`);
    // A type with subtypes (device parts: get and set) has ids over the sum of their limits and
    // each subtype bounded by its own (ResourceObjectKind.subtypeLimits).
    const fields = k.kind.subtypeLimits?.fields ?? [k.kind.limitField];
    const idLimit = fields.reduce((sum, f) => sum + this.capabilities.driverLimit(k.capability, f), 0);
    if (!Number.isInteger(id) || id < 0 || id >= idLimit) this.refuse(`${name}: id outside 0..${idLimit - 1} (the driver capability's ${fields.join(' + ')})`);
    const field = k.kind.subtypeLimits?.fieldOf(specific) ?? k.kind.limitField;
    const limit = this.capabilities.driverLimit(k.capability, field);
    let count = 0;
    for (const [key, obj] of this.objects) if (key.startsWith(`${type}:`) && obj.limitField === field) count++;
    if (count >= limit) this.refuse(`${name}: ${count} objects already, ${field} is ${limit}`);
    const deps = (k.kind.dependencies?.(specific) ?? []).map((r) => objKey(r.type, r.id));
    for (const d of deps) if (!this.objects.has(d)) this.refuse(`${name} depends on ${d}, which does not exist`);
    expectAdminOk('RESOURCE_OBJ_CREATE', await this.send(ResourceObjectOpcode.CREATE, this.groupType, this.memberId, encodeResourceObjectCommand(type, id, flags, specific), 0));
    for (const d of deps) this.objects.get(d)!.dependents++;
    this.objects.set(objKey(type, id), { deps, limitField: field, dependents: 0 });
  }

  private live(type: number, id: number, what: string): DriverObject {
    this.kindOf(type);
    const obj = this.objects.get(objKey(type, id));
    // driver/admin-cmds-resource-objects/3.
    if (!obj) this.refuse(`${what} of resource object ${type}:${id}, which was never created or is destroyed`);
    return obj;
  }

  /** RESOURCE_OBJ_MODIFY of an object the driver created (its dependencies unchanged). */
  async modify(type: number, id: number, specific: Uint8Array, flags = 0): Promise<void> {
    const obj = this.live(type, id, 'MODIFY');
    const k = this.kindOf(type);
    const deps = (k.kind.dependencies?.(specific) ?? []).map((r) => objKey(r.type, r.id));
    if (deps.length !== obj.deps.length || deps.some((d, i) => d !== obj.deps[i])) this.refuse(`MODIFY of ${type}:${id} would change its dependencies`);
    expectAdminOk('RESOURCE_OBJ_MODIFY', await this.send(ResourceObjectOpcode.MODIFY, this.groupType, this.memberId, encodeResourceObjectCommand(type, id, flags, specific), 0));
  }

  /**
   * RESOURCE_OBJ_QUERY: the object's resource_obj_specific_data as the device keeps it, in a
   * result buffer of `capacity` bytes (default the kind's dataLength; a transport may pad it).
   */
  async query(type: number, id: number, capacity?: number): Promise<Uint8Array> {
    this.live(type, id, 'QUERY');
    capacity ??= this.kindOf(type).kind.dataLength ?? DEFAULT_QUERY_CAPACITY;
    const reply = await this.send(ResourceObjectOpcode.QUERY, this.groupType, this.memberId, encodeResourceObjectCommand(type, id, 0), capacity);
    return expectAdminOk('RESOURCE_OBJ_QUERY', reply).slice(0, capacity);
  }

  /** RESOURCE_OBJ_DESTROY, refused while other objects depend on it (driver/admin-cmds-resource-objects/4). */
  async destroy(type: number, id: number): Promise<void> {
    const obj = this.live(type, id, 'DESTROY');
    if (obj.dependents > 0) this.refuse(`DESTROY of ${type}:${id}: ${obj.dependents} objects depend on it; destroy them first`);
    expectAdminOk('RESOURCE_OBJ_DESTROY', await this.send(ResourceObjectOpcode.DESTROY, this.groupType, this.memberId, encodeResourceObjectCommand(type, id, null), 0));
    for (const d of obj.deps) this.objects.get(d)!.dependents--;
    this.objects.delete(objKey(type, id));
  }

  /** Destroys every object, dependents first (the reverse order of creation, 2.12.1.3). */
  async destroyAll(): Promise<void> {
    const keys = [...this.objects.keys()].reverse();
    for (const key of keys) {
      const [type, id] = key.split(':').map(Number) as [number, number];
      await this.destroy(type, id);
    }
  }

  /** After a device reset the device destroyed every object (2.12.1.3); the driver forgets them. */
  reset(): void {
    this.objects.clear();
  }
}
