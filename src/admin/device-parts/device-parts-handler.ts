/**
 * Device side of the device parts commands (2.12.1.5): VIRTIO_ADMIN_CMD_DEV_MODE_SET,
 * VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_GET, VIRTIO_ADMIN_CMD_DEV_PARTS_GET and
 * VIRTIO_ADMIN_CMD_DEV_PARTS_SET, for the members of an SR-IOV group (the commands are only
 * defined for that group type). The member is a DeviceCore: it is stopped and resumed through its
 * stopped mode (device/admin-stop.ts), its parts read and staged by member-parts.ts.
 *
 * Every malformed command is answered with a status, never a throw; a failing command changes
 * nothing (2.12.1.5: "the device does not have any side effects").
 */
import {
  ADMIN_GROUP_SRIOV,
  type AdminCommandHandler,
  type AdminCommandOutcome,
  type AdminMember,
  AdminStatus,
  AdminStatusQualifier,
  adminError,
  adminOk,
} from '../admin-command-handler.js';
import {
  DEV_MODE_F_STOPPED,
  DEV_PART_HDR_SIZE,
  type DevicePart,
  DevicePartsGetType,
  DevicePartsMetadataType,
  DevicePartsObjectType,
  DevicePartsOpcode,
  RESOURCE_OBJ_CMD_HDR_SIZE,
  RESOURCE_OBJ_DEV_PARTS,
  decodeHeaderList,
  decodePartList,
  decodeResourceObjectRef,
  encodePartHeader,
  encodePartList,
  encodedPartsSize,
} from './device-part-format.js';
import type { DevicePartsObjectLookup } from './device-parts-objects.js';
import { type StagedParts, type StoppableMemberCore, applyStagedParts, captureMemberParts, emptyStaging, isStoppableMemberCore, stageParts } from './member-parts.js';

/** How a device parts handler is set up. */
export interface DevicePartsHandlerOptions {
  /** What a device parts resource object id is (the resource objects module's store). */
  readonly objects: DevicePartsObjectLookup;
  /** Where a refused command's reason goes (for logs and tests); default nowhere. */
  readonly onRefusal?: (opcode: number, reason: string) => void;
}

/** Size of the metadata and get command data before their lists: resource header, type, reserved[7]. */
const TYPED_DATA_SIZE = RESOURCE_OBJ_CMD_HDR_SIZE + 8;

/** The device parts commands of a group owner. */
export class DevicePartsHandler implements AdminCommandHandler {
  /** METADATA_GET, GET, SET and MODE_SET (device/admin-cmds-device-parts/1: all of them). */
  readonly opcodes: readonly number[] = [DevicePartsOpcode.METADATA_GET, DevicePartsOpcode.GET, DevicePartsOpcode.SET, DevicePartsOpcode.MODE_SET];
  /** 2.12.1.5: "currently only defined for the SR-IOV group type". */
  readonly groupTypes: readonly number[] = [ADMIN_GROUP_SRIOV];
  private readonly staged = new Map<StoppableMemberCore, StagedParts>();
  private readonly stoppedMembers = new Set<StoppableMemberCore>();

  constructor(private readonly opts: DevicePartsHandlerOptions) {}

  handle(opcode: number, member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome | Promise<AdminCommandOutcome> {
    const core = member.core;
    if (!isStoppableMemberCore(core)) return this.refuse(opcode, AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER, 'the member cannot be stopped');
    switch (opcode) {
      case DevicePartsOpcode.MODE_SET:
        return this.modeSet(core, data);
      case DevicePartsOpcode.METADATA_GET:
      case DevicePartsOpcode.GET:
      case DevicePartsOpcode.SET:
        return this.partsCommand(opcode, member, core, data, result);
      default:
        return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE);
    }
  }

  /** Owner reset: members it stopped run again, staged parts are dropped. */
  reset(): void {
    this.staged.clear();
    for (const core of this.stoppedMembers) core.resumeForOwner();
    this.stoppedMembers.clear();
  }

  private refuse(opcode: number, status: number, qualifier: number, reason: string): AdminCommandOutcome {
    this.opts.onRefusal?.(opcode, reason);
    return adminError(status, qualifier);
  }

  private invalid(opcode: number, reason: string): AdminCommandOutcome {
    return this.refuse(opcode, AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD, reason);
  }

  private async modeSet(core: StoppableMemberCore, data: Uint8Array): Promise<AdminCommandOutcome> {
    const op = DevicePartsOpcode.MODE_SET;
    if (data.length < 1) return this.invalid(op, 'no flags');
    const flags = data[0]!;
    if ((flags & ~DEV_MODE_F_STOPPED) !== 0) return this.invalid(op, `unknown mode flags 0x${flags.toString(16)}`);
    if (flags & DEV_MODE_F_STOPPED) {
      try {
        // device/admin-cmds-device-parts/8: completes once nothing is outstanding; a reset of the
        // member meanwhile ends the wait (/10); an already stopped member answers at once (/11).
        await core.stopForOwner();
      } catch (e) {
        return this.refuse(op, AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER, e instanceof Error ? e.message : String(e));
      }
      this.stoppedMembers.add(core);
      return adminOk();
    }
    // Resume (/12: a running member answers OK too). Staged parts take effect now (2.12.1.5).
    const staged = this.staged.get(core);
    this.staged.delete(core);
    this.stoppedMembers.delete(core);
    if (staged !== undefined && staged.seen.size > 0 && staged.epoch === core.epochNow && core.stoppedByOwner) {
      applyStagedParts(core, staged);
      core.resumeForOwner(true);
    } else {
      core.resumeForOwner();
    }
    return adminOk();
  }

  private partsCommand(opcode: number, member: AdminMember, core: StoppableMemberCore, data: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    if (data.length < RESOURCE_OBJ_CMD_HDR_SIZE) return this.invalid(opcode, 'command data shorter than the resource object header');
    const ref = decodeResourceObjectRef(data);
    if (typeof ref === 'string') return this.invalid(opcode, ref);
    if (ref.type !== RESOURCE_OBJ_DEV_PARTS) return this.invalid(opcode, `resource object type 0x${ref.type.toString(16)} is not VIRTIO_RESOURCE_OBJ_DEV_PARTS`);
    const kind = this.opts.objects(member, ref.id);
    if (kind === null) return this.refuse(opcode, AdminStatus.ENXIO, AdminStatusQualifier.INVALID_FIELD, `no device parts object ${ref.id}`);
    const wanted = opcode === DevicePartsOpcode.SET ? DevicePartsObjectType.SET : DevicePartsObjectType.GET;
    if (kind !== wanted) return this.invalid(opcode, `device parts object ${ref.id} is not a ${wanted === DevicePartsObjectType.SET ? 'set' : 'get'} object`);
    if (opcode === DevicePartsOpcode.SET) return this.partsSet(core, data.subarray(RESOURCE_OBJ_CMD_HDR_SIZE));
    if (data.length < TYPED_DATA_SIZE) return this.invalid(opcode, 'command data shorter than its type and reserved bytes');
    const type = data[RESOURCE_OBJ_CMD_HDR_SIZE]!;
    for (let i = RESOURCE_OBJ_CMD_HDR_SIZE + 1; i < TYPED_DATA_SIZE; i++) if (data[i] !== 0) return this.invalid(opcode, 'reserved not zero');
    const parts = captureMemberParts(core);
    if (opcode === DevicePartsOpcode.METADATA_GET) {
      if (data.length !== TYPED_DATA_SIZE) return this.invalid(opcode, 'metadata command data too long');
      return this.metadata(type, parts, result);
    }
    return this.partsGet(type, parts, data.subarray(TYPED_DATA_SIZE), result);
  }

  private metadata(type: number, parts: readonly DevicePart[], result: Uint8Array): AdminCommandOutcome {
    const op = DevicePartsOpcode.METADATA_GET;
    const v = new DataView(result.buffer, result.byteOffset, result.length);
    let need: number;
    switch (type) {
      case DevicePartsMetadataType.SIZE:
      case DevicePartsMetadataType.COUNT:
        need = 8;
        break;
      case DevicePartsMetadataType.LIST:
        need = 8 + parts.length * DEV_PART_HDR_SIZE;
        break;
      default:
        return this.invalid(op, `unknown metadata type ${type}`);
    }
    // 2.12.1.5: ENOMEM when command_specific_result cannot hold the response.
    if (result.length < need) return this.refuse(op, AdminStatus.ENOMEM, AdminStatusQualifier.INVALID_FIELD, `result of ${result.length} bytes, ${need} needed`);
    if (type === DevicePartsMetadataType.SIZE) v.setUint32(0, encodedPartsSize(parts), true);
    else v.setUint32(0, parts.length, true);
    if (type === DevicePartsMetadataType.LIST) {
      for (let i = 0; i < parts.length; i++) encodePartHeader(parts[i]!.header, result, 8 + i * DEV_PART_HDR_SIZE);
    }
    return adminOk(need);
  }

  private partsGet(type: number, parts: readonly DevicePart[], list: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    const op = DevicePartsOpcode.GET;
    let chosen: readonly DevicePart[];
    if (type === DevicePartsGetType.ALL) {
      if (list.length !== 0) return this.invalid(op, 'hdr_list not empty for a get of all parts');
      chosen = parts;
    } else if (type === DevicePartsGetType.SELECTED) {
      const headers = decodeHeaderList(list);
      if (typeof headers === 'string') return this.invalid(op, headers);
      const wanted = new Set(headers.map((h) => `${h.type}:${h.selector}`));
      // device/admin-cmds-device-parts/3: the table order whatever the request's; a part the
      // device does not have is skipped without error (/14).
      chosen = parts.filter((p) => wanted.has(`${p.header.type}:${p.header.selector}`));
    } else {
      return this.invalid(op, `unknown get type ${type}`);
    }
    const need = encodedPartsSize(chosen);
    if (result.length < need) return this.refuse(op, AdminStatus.ENOMEM, AdminStatusQualifier.INVALID_FIELD, `result of ${result.length} bytes, ${need} needed`);
    return adminOk(encodePartList(chosen, result));
  }

  private partsSet(core: StoppableMemberCore, list: Uint8Array): AdminCommandOutcome {
    const op = DevicePartsOpcode.SET;
    // device/admin-cmds-device-parts/4: a running member refuses a set.
    if (!core.stoppedByOwner) return this.refuse(op, AdminStatus.EBUSY, AdminStatusQualifier.INVALID_COMMAND, 'the member is not stopped');
    const parts = decodePartList(list);
    if (typeof parts === 'string') return this.invalid(op, parts);
    let before = this.staged.get(core);
    if (before === undefined || before.epoch !== core.epochNow) before = emptyStaging(core);
    const next = stageParts(core, parts, before);
    if (typeof next === 'string') return this.invalid(op, next);
    this.staged.set(core, next);
    return adminOk();
  }
}
