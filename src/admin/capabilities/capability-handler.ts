/**
 * 2.12.1.2 Device and driver capabilities, device side: CAP_ID_LIST_QUERY (the bitmap of
 * supported ids), DEVICE_CAP_GET (what the device offers) and DRIVER_CAP_SET (what the driver
 * will use), for the self group only. The driver capabilities set here are what the resource
 * object store reads its limits from (2.12.1.3: "limit" comes from the driver capability).
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
import {
  capabilityLimit,
  checkDeviceCapability,
  driverCapabilityViolation,
  normalizeCapability,
  sameCapability,
  type CapabilityLayout,
} from './capability-layout.js';

/** 2.12.1 opcodes of the capability commands. */
export const CapabilityOpcode = {
  CAP_ID_LIST_QUERY: AdminOpcode.CAP_ID_LIST_QUERY,
  DEVICE_CAP_GET: AdminOpcode.DEVICE_CAP_GET,
  DRIVER_CAP_SET: AdminOpcode.DRIVER_CAP_SET,
} as const;

/** struct virtio_admin_cmd_cap_get_data / the header of cap_set_data: le16 id, u8 reserved[6]. */
export const CAPABILITY_ID_HEADER_SIZE = 8;

/** One capability a device offers: its layout and its device capability bytes. */
export interface DeviceCapability {
  /** Its structure (and id). */
  readonly layout: CapabilityLayout;
  /** cap_specific_data as DEVICE_CAP_GET returns it. */
  readonly value: Uint8Array;
}

/**
 * Asked before a DRIVER_CAP_SET changes capability `id`: whether resource objects depending on it
 * exist (then the set is refused with EBUSY, device/admin-cmds-capabilities/6).
 */
export type CapabilityInUse = (id: number) => boolean;

/** The capability commands of one owner device. */
export class CapabilityHandler implements AdminCommandHandler {
  /** CAP_ID_LIST_QUERY, DEVICE_CAP_GET, DRIVER_CAP_SET. */
  readonly opcodes: readonly number[] = [CapabilityOpcode.CAP_ID_LIST_QUERY, CapabilityOpcode.DEVICE_CAP_GET, CapabilityOpcode.DRIVER_CAP_SET];
  /** 2.12.1.2: "currently defined for self group type". */
  readonly groupTypes: readonly number[] = [ADMIN_GROUP_SELF];
  private readonly device = new Map<number, DeviceCapability>();
  private readonly driver = new Map<number, Uint8Array>();
  private readonly idBitmap: Uint8Array;
  private readonly inUse: CapabilityInUse[] = [];

  constructor(capabilities: readonly DeviceCapability[]) {
    let maxId = -1;
    for (const cap of capabilities) {
      if (this.device.has(cap.layout.id)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `capability id ${cap.layout.id} offered twice`);
      checkDeviceCapability(cap.layout, cap.value);
      this.device.set(cap.layout.id, { layout: cap.layout, value: cap.value.slice() });
      maxId = Math.max(maxId, cap.layout.id);
    }
    // 2.12.1.2: DIV_ROUND_UP(max_cap_id + 1, 64) le64 words, bit n of the array for id n.
    this.idBitmap = new Uint8Array(Math.ceil((maxId + 1) / 64) * 8);
    for (const id of this.device.keys()) this.idBitmap[id >> 3]! |= 1 << (id & 7);
  }

  /** Registers who knows about resource objects depending on a capability (the object store). */
  addInUseCheck(check: CapabilityInUse): void {
    this.inUse.push(check);
  }

  /** The capability ids the device reports (ascending). */
  get ids(): readonly number[] {
    return [...this.device.keys()].sort((a, b) => a - b);
  }

  /** The layout of capability `id`, or undefined when the device does not offer it. */
  layout(id: number): CapabilityLayout | undefined {
    return this.device.get(id)?.layout;
  }

  /** The device capability bytes of `id`, or null. */
  deviceCapability(id: number): Uint8Array | null {
    return this.device.get(id)?.value.slice() ?? null;
  }

  /** The driver capability of `id` as last set, or null when the driver has not set it. */
  driverCapability(id: number): Uint8Array | null {
    return this.driver.get(id)?.slice() ?? null;
  }

  /**
   * Limit field `field` of the driver capability `id`: 0 while the driver has not set the
   * capability (device/admin-cmds-capabilities/9) or when the device does not offer it.
   */
  driverLimit(id: number, field: string): number {
    const cap = this.device.get(id);
    const set = this.driver.get(id);
    if (!cap || !set) return 0;
    return capabilityLimit(cap.layout, set, field);
  }

  /** The same limit as the device reports it (0 when not offered). */
  deviceLimit(id: number, field: string): number {
    const cap = this.device.get(id);
    return cap ? capabilityLimit(cap.layout, cap.value, field) : 0;
  }

  /** device/admin-cmds-capabilities/8: a device reset forgets every driver capability. */
  reset(): void {
    this.driver.clear();
  }

  handle(opcode: number, member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    // device/admin-cmds-capabilities/4, /5: only the self group, member 0.
    if (member.groupType !== ADMIN_GROUP_SELF) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_GROUP);
    if (member.memberId !== 0n) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER);
    switch (opcode) {
      case CapabilityOpcode.CAP_ID_LIST_QUERY:
        // "This command has no command specific data" (a padded buffer is ignored, device/admin/16).
        return this.copyOut(this.idBitmap, result);
      case CapabilityOpcode.DEVICE_CAP_GET: {
        const cap = this.device.get(readId(fitAdminData(data, CAPABILITY_ID_HEADER_SIZE)));
        // device/admin-cmds-capabilities/7: an id CAP_ID_LIST_QUERY does not report.
        if (!cap) return adminError(AdminStatus.ENXIO, AdminStatusQualifier.INVALID_FIELD);
        return this.copyOut(cap.value, result);
      }
      case CapabilityOpcode.DRIVER_CAP_SET:
        return this.setDriverCapability(data);
      default:
        return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE);
    }
  }

  private setDriverCapability(data: Uint8Array): AdminCommandOutcome {
    const id = readId(fitAdminData(data, CAPABILITY_ID_HEADER_SIZE));
    const cap = this.device.get(id);
    if (!cap) return adminError(AdminStatus.ENXIO, AdminStatusQualifier.INVALID_FIELD);
    // A short capability reads as zeros, bytes past it are padding (device/admin/15, /16).
    const value = normalizeCapability(cap.layout, data.subarray(Math.min(data.length, CAPABILITY_ID_HEADER_SIZE)));
    // device/admin-cmds-capabilities/2, /3: limits at most, bits and entries out of the device's.
    if (value === null || driverCapabilityViolation(cap.layout, cap.value, value) !== null) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
    const current = this.driver.get(id);
    const changes = !current || !sameCapability(current, value);
    // device/admin-cmds-capabilities/6: objects depending on the capability pin it.
    if (changes && this.inUse.some((check) => check(id))) return adminError(AdminStatus.EBUSY, AdminStatusQualifier.OK);
    this.driver.set(id, value.slice());
    return adminOk(0);
  }

  /** 2.12.1: the device writes what fits of the result. */
  private copyOut(bytes: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    const n = Math.min(bytes.length, result.length);
    result.set(bytes.subarray(0, n));
    return adminOk(n);
  }
}

function readId(data: Uint8Array): number {
  return data[0]! | (data[1]! << 8);
}
