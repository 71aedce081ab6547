/**
 * The owner driver's side of `createAdminOwner`, on an AdminDriver: enables the commands of the
 * self and SR-IOV groups (LIST_QUERY / LIST_USE, driver/admin/4), sets VIRTIO_DEV_PARTS_CAP
 * (DRIVER_CAP_SET, at most the device's limits, driver/admin-cmds-capabilities/2) before any
 * device parts object is created (driver/admin-cmds-resource-objects/6), creates and destroys the
 * device parts objects through RESOURCE_OBJ_CREATE / DESTROY, and migrates a member with objects
 * it creates for the move and destroys after.
 */
import { ADMIN_GROUP_SELF, ADMIN_GROUP_SRIOV } from './admin-command-handler.js';
import { expectAdminOk } from './admin-command-status-error.js';
import type { AdminDriver } from './admin-driver.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { AdminOpcode } from '../spec/admin.js';
import { AdminCapabilityDriver } from './capabilities/capability-driver.js';
import { CapabilityOpcode } from './capabilities/capability-handler.js';
import { ResourceObjectOpcode } from './resource-objects/resource-object-handler.js';
import { encodeResourceObjectCommand } from './resource-objects/resource-object-driver.js';
import { VIRTIO_RESOURCE_OBJ_DEV_PARTS } from './resource-objects/resource-object-type.js';
import { LegacyOpcode } from './legacy-interface/legacy-interface-handler.js';
import { type DevicePart, DevicePartsObjectType, DevicePartsOpcode } from './device-parts/device-part-format.js';
import { DevicePartsDriver, type MigrateMemberOptions, migrateMember } from './device-parts/device-parts-driver.js';
import { DEV_PARTS_CAP_LAYOUT, DEV_PARTS_GET_LIMIT, DEV_PARTS_SET_LIMIT, devPartsCapabilityValue, devPartsObjectData } from './device-parts/dev-parts-resource-type.js';

/** What `AdminOwnerDriver.open` asks for. */
export interface AdminOwnerDriverOptions {
  /** Get objects the driver wants at most (capped at the device's limit); default the device's. */
  readonly getLimit?: number;
  /** Set objects the driver wants at most (capped at the device's limit); default the device's. */
  readonly setLimit?: number;
}

/** One device parts object the driver created. */
export interface OwnedDevicePartsObject {
  /** The VF it was created for. */
  readonly memberId: bigint;
  /** A get or a set object. */
  readonly type: DevicePartsObjectType;
}

/** The owner driver of an owner built by `createAdminOwner`. */
export class AdminOwnerDriver {
  /** The device parts commands (stop, resume, metadata, get, set). */
  readonly parts: DevicePartsDriver;
  /** The capability commands, with the driver's rules. */
  readonly capabilities: AdminCapabilityDriver;
  private readonly objects = new Map<number, OwnedDevicePartsObject>();

  private constructor(
    /** The AdminDriver the commands go through. */
    readonly admin: AdminDriver,
    /** The driver's get_parts_resource_objects_limit (what it set). */
    readonly getLimit: number,
    /** The driver's set_parts_resource_objects_limit (what it set). */
    readonly setLimit: number,
    capabilities: AdminCapabilityDriver,
  ) {
    this.capabilities = capabilities;
    this.parts = new DevicePartsDriver(admin.send);
  }

  /**
   * LIST_QUERY / LIST_USE of the capability and resource object commands (self group) and of the
   * resource object, device parts and legacy commands (SR-IOV group), then DEVICE_CAP_GET and
   * DRIVER_CAP_SET of VIRTIO_DEV_PARTS_CAP. Throws when the device lacks the device parts
   * commands or the capability.
   */
  static async open(admin: AdminDriver, opts: AdminOwnerDriverOptions = {}): Promise<AdminOwnerDriver> {
    const objectOps = Object.values(ResourceObjectOpcode);
    const self = await admin.enableGroup(ADMIN_GROUP_SELF, [...Object.values(CapabilityOpcode), ...objectOps]);
    const sriov = await admin.enableGroup(ADMIN_GROUP_SRIOV, [...objectOps, ...Object.values(DevicePartsOpcode), ...Object.values(LegacyOpcode)]);
    const need = (ops: number[] | null, wanted: readonly number[], group: string): void => {
      for (const op of wanted) if (!ops?.includes(op)) throw new VirtioError(ErrorCode.REQUEST_FAILED, `the owner does not support opcode 0x${op.toString(16)} on the ${group} group`);
    };
    need(self, [AdminOpcode.CAP_ID_LIST_QUERY, AdminOpcode.DEVICE_CAP_GET, AdminOpcode.DRIVER_CAP_SET], 'self');
    need(sriov, [...objectOps, ...Object.values(DevicePartsOpcode)], 'SR-IOV');
    const capabilities = new AdminCapabilityDriver(admin.send);
    if (!(await capabilities.supportedIds()).has(DEV_PARTS_CAP_LAYOUT.id)) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'the owner does not offer VIRTIO_DEV_PARTS_CAP');
    const device = await capabilities.deviceCapability(DEV_PARTS_CAP_LAYOUT.id, DEV_PARTS_CAP_LAYOUT);
    const getLimit = Math.min(opts.getLimit ?? 0xff, device[0] ?? 0);
    const setLimit = Math.min(opts.setLimit ?? 0xff, device[1] ?? 0);
    await capabilities.setDriverCapability(DEV_PARTS_CAP_LAYOUT, devPartsCapabilityValue(getLimit, setLimit));
    return new AdminOwnerDriver(admin, getLimit, setLimit, capabilities);
  }

  /** Device parts objects this driver holds (id -> member and kind). */
  get liveObjects(): ReadonlyMap<number, OwnedDevicePartsObject> {
    return this.objects;
  }

  /**
   * RESOURCE_OBJ_CREATE of a device parts object of `type` for VF `memberId`, at the lowest free
   * id of 0..getLimit+setLimit-1. Refused before sending beyond the limit the driver set
   * (driver/admin-cmds-resource-objects/2). Returns the id.
   */
  async createObject(memberId: bigint, type: DevicePartsObjectType): Promise<number> {
    const limit = type === DevicePartsObjectType.GET ? this.getLimit : this.setLimit;
    let n = 0;
    for (const o of this.objects.values()) if (o.type === type) n++;
    if (n >= limit) {
      const field = type === DevicePartsObjectType.GET ? DEV_PARTS_GET_LIMIT : DEV_PARTS_SET_LIMIT;
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${n} device parts objects of this kind already: ${field} is ${limit}`);
    }
    let id = 0;
    while (this.objects.has(id)) id++;
    await this.createObjectAt(memberId, type, id);
    return id;
  }

  /** RESOURCE_OBJ_CREATE at a chosen id, without the driver's limit check (the device decides). */
  async createObjectAt(memberId: bigint, type: DevicePartsObjectType, id: number): Promise<void> {
    const data = encodeResourceObjectCommand(VIRTIO_RESOURCE_OBJ_DEV_PARTS, id, 0, devPartsObjectData(type));
    expectAdminOk('RESOURCE_OBJ_CREATE', await this.admin.send(ResourceObjectOpcode.CREATE, ADMIN_GROUP_SRIOV, memberId, data, 0));
    this.objects.set(id, { memberId, type });
  }

  /** RESOURCE_OBJ_DESTROY of a device parts object this driver created (driver/admin-cmds-resource-objects/3). */
  async destroyObject(id: number): Promise<void> {
    const obj = this.objects.get(id);
    if (!obj) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `device parts object ${id} was not created by this driver`);
    const data = encodeResourceObjectCommand(VIRTIO_RESOURCE_OBJ_DEV_PARTS, id, null);
    expectAdminOk('RESOURCE_OBJ_DESTROY', await this.admin.send(ResourceObjectOpcode.DESTROY, ADMIN_GROUP_SRIOV, obj.memberId, data, 0));
    this.objects.delete(id);
  }

  /** Forgets every object (after an owner reset, which destroyed them on the device, 2.12.1.3). */
  forgetObjects(): void {
    this.objects.clear();
  }

  /**
   * Moves VF `from`'s state to VF `to` (`migrateMember`: stop, get parts, stop, set parts,
   * `beforeResume`, resume) with a get object on `from` and a set object on `to` created for the
   * move and destroyed after it, also when it fails. Returns the parts moved.
   */
  async migrateMember(from: bigint, to: bigint, opts: MigrateMemberOptions = {}): Promise<DevicePart[]> {
    const getId = await this.createObject(from, DevicePartsObjectType.GET);
    try {
      const setId = await this.createObject(to, DevicePartsObjectType.SET);
      try {
        return await migrateMember(this.parts, { memberId: from, objectId: getId }, { memberId: to, objectId: setId }, opts);
      } finally {
        await this.destroyObject(setId);
      }
    } finally {
      await this.destroyObject(getId);
    }
  }
}
