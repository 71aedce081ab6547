/**
 * The contract between the administration virtqueue's dispatcher (2.12.1 Group administration
 * commands) and the modules that implement groups of commands (device and driver capabilities,
 * resource objects, the legacy interface, device parts). The dispatcher parses
 * `struct virtio_admin_cmd`, checks the opcode is in use (LIST_USE) and the group type and
 * member id exist, then hands the command-specific data to the handler that claims the opcode
 * and writes `status`, `status_qualifier` and the result the handler produced.
 *
 * A handler never throws for anything a driver sends: every malformed command becomes a status
 * (VIRTIO_ADMIN_STATUS_EINVAL with a qualifier, usually INVALID_FIELD), as 2.12.1 asks.
 */
import type { DeviceCoreApi } from '../device/types.js';

/** 2.12.1 group_type: the self group (the owner is its own member 0). */
export const ADMIN_GROUP_SELF = 0x0;
/** 2.12.1 group_type: SR-IOV, the PF owns VFs 1..NumVFs. */
export const ADMIN_GROUP_SRIOV = 0x1;

/** 2.12.1 status values (Linux errno numbers). */
export const AdminStatus = {
  OK: 0,
  ENXIO: 6,
  EAGAIN: 11,
  ENOMEM: 12,
  EBUSY: 16,
  EINVAL: 22,
  ENOSPC: 28,
} as const;

/** 2.12.1 status_qualifier values. */
export const AdminStatusQualifier = {
  OK: 0x00,
  INVALID_COMMAND: 0x01,
  INVALID_OPCODE: 0x02,
  INVALID_FIELD: 0x03,
  INVALID_GROUP: 0x04,
  INVALID_MEMBER: 0x05,
  NORESOURCE: 0x06,
  TRYAGAIN: 0x07,
} as const;

/** The group member a command addresses, as the dispatcher resolved it. */
export interface AdminMember {
  /** group_type of the command. */
  readonly groupType: number;
  /** group_member_id of the command (0 for the self group, the VF number for SR-IOV). */
  readonly memberId: bigint;
  /**
   * The member device's core: its status, features, configuration space and queues, as its own
   * transport drives them. For the self group this is the owner's core.
   */
  readonly core: DeviceCoreApi;
}

/** What a handler answers. `written` bytes of `result` become command_specific_result. */
export interface AdminCommandOutcome {
  /** status (AdminStatus; OK on success). */
  readonly status: number;
  /** status_qualifier (AdminStatusQualifier; OK on success). */
  readonly qualifier: number;
  /** Bytes of the result buffer the handler filled (0 on error: unused fields stay zero). */
  readonly written: number;
}

/**
 * One module's commands. `opcodes` are the opcodes it serves (reported by LIST_QUERY for the
 * group types in `groupTypes`).
 */
export interface AdminCommandHandler {
  /** The opcodes this module serves (0x0002..0x7fff; LIST_QUERY and LIST_USE are the dispatcher's). */
  readonly opcodes: readonly number[];
  /** The group types these commands apply to (e.g. the legacy interface: SR-IOV only). */
  readonly groupTypes: readonly number[];
  /**
   * Runs one command. `data` is command_specific_data exactly as the driver sent it (its length
   * is the device-readable length minus the 24-byte header); `result` is the device-writable
   * space after the 8-byte status header, zero-filled, and may be shorter than the full result
   * (2.12.1: the device writes what fits). May complete asynchronously (a device part set that
   * waits for a backend).
   */
  handle(
    opcode: number,
    member: AdminMember,
    data: Uint8Array,
    result: Uint8Array,
  ): AdminCommandOutcome | Promise<AdminCommandOutcome>;
  /** The owner device was reset: forget driver capabilities, resource objects, modes set. */
  reset?(): void;
  /**
   * Optional dependency check on a LIST_USE for a group type this handler serves
   * (device/admin/6): false fails the LIST_USE with EINVAL / INVALID_FIELD (the used list then
   * stays as it was). `used` is the complete list the driver asked for.
   */
  acceptsUse?(groupType: number, used: ReadonlySet<number>): boolean;
}

/** Shorthand for an error outcome that wrote nothing. */
export function adminError(status: number, qualifier: number): AdminCommandOutcome {
  return { status, qualifier, written: 0 };
}

/** Shorthand for success with `written` result bytes. */
export function adminOk(written = 0): AdminCommandOutcome {
  return { status: AdminStatus.OK, qualifier: AdminStatusQualifier.OK, written };
}

/** What a driver gets back for one administration command. */
export interface AdminCommandReply {
  /** status as the device wrote it (AdminStatus). */
  readonly status: number;
  /** status_qualifier as the device wrote it (AdminStatusQualifier). */
  readonly qualifier: number;
  /** command_specific_result: the bytes the device wrote after the 8-byte status header. */
  readonly result: Uint8Array;
}

/**
 * The driver side's way to send one command on an administration virtqueue (the AdminDriver
 * implements it; command modules build their driver helpers on it). `resultCapacity` is the
 * size of the device-writable command_specific_result buffer to offer.
 */
export type AdminCommandSender = (
  opcode: number,
  groupType: number,
  memberId: bigint,
  data: Uint8Array,
  resultCapacity: number,
) => Promise<AdminCommandReply>;
