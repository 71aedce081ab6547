/**
 * 2.12.1.3 Device resource objects: what a device registers for each resource object type it
 * supports. The generic store (resource-object-handler.ts) keeps ids, limits, dependencies and
 * the last resource_obj_specific_data; the type only says what data is valid and which other
 * objects an object depends on, and may act on create / modify / destroy.
 */
import type { AdminMember } from '../admin-command-handler.js';

/** 2.12.1.3 generic resource object type: the device parts object (VIRTIO_RESOURCE_OBJ_DEV_PARTS). */
export const VIRTIO_RESOURCE_OBJ_DEV_PARTS = 0x000;

/** 2.12.1.3 resource object type ranges: 0x000-0x1ff generic, 0x200-0x4ff device type specific. */
export const RESOURCE_OBJECT_TYPE_LIMIT = 0x500;

/** One resource object another depends on. */
export interface ResourceObjectRef {
  /** Its resource object type. */
  readonly type: number;
  /** Its resource object id. */
  readonly id: number;
}

/** What both sides know about a type: where its limit comes from and its dependencies. */
export interface ResourceObjectKind {
  /** The resource object type (2.12.1.3 table). */
  readonly type: number;
  /** Name for messages (the spec's name). */
  readonly name: string;
  /** The capability whose limit field bounds the ids of this type ("maximum resource id = limit - 1"). */
  readonly capabilityId: number;
  /** The limit field of that capability. */
  readonly limitField: string;
  /**
   * For a type whose objects come in subtypes each bounded by its own limit field of the same
   * capability (VIRTIO_DEV_PARTS_CAP: get_parts_resource_objects_limit and
   * set_parts_resource_objects_limit): `fields` lists them all (`limitField` among them), the ids
   * run over 0..(their sum)-1, and `fieldOf(data)` names the field bounding objects with that
   * (validated) data; the device refuses an object beyond it with ENOSPC.
   */
  readonly subtypeLimits?: {
    /** Every subtype's limit field. */
    readonly fields: readonly string[];
    /** The limit field of the subtype `data` creates. */
    fieldOf(data: Uint8Array): string;
  };
  /**
   * Size of resource_obj_specific_data when the type's data has a fixed size: the device reads
   * shorter data as zero-extended and ignores bytes past it (a driver's padding to 8 bytes,
   * device/admin/15, /16); the driver queries that many bytes. Variable-size types leave it out.
   */
  readonly dataLength?: number;
  /** The group types objects of this type may be created for (default: the self group). */
  readonly groupTypes?: readonly number[];
  /**
   * The objects an object with this resource_obj_specific_data depends on (2.12.1.3: "by
   * referring to the unique resource ID"); none when absent. Called on validated data only.
   */
  dependencies?(data: Uint8Array): readonly ResourceObjectRef[];
}

/** A type as a device registers it. */
export interface ResourceObjectType extends ResourceObjectKind {
  /** Longest resource_obj_specific_data accepted (bounds the memory an untrusted driver can pin). */
  readonly maxDataLength: number;
  /** flags bits this type defines (2.12.1.3: "reserved ... set to 0" unless the type says). */
  readonly flagsMask?: number;
  /**
   * null when `data` (with `flags`) is valid for a new object (`current` null) or as the new
   * attributes of an existing one (`current` its data); otherwise the reason (EINVAL).
   */
  validate(data: Uint8Array, flags: number, member: AdminMember, current: Uint8Array | null): string | null;
  /** The device starts using a created object (called after validation, may not fail). */
  onCreate?(id: number, data: Uint8Array, member: AdminMember): void;
  /** The device applies modified attributes. */
  onModify?(id: number, data: Uint8Array, member: AdminMember): void;
  /** The device stops using a destroyed object (also on device reset). */
  onDestroy?(id: number): void;
}
