/**
 * Driver side of the device parts commands (2.12.1.5), on an `AdminCommandSender` of the group
 * owner: stop and resume a member, read its parts metadata and parts, set parts on a stopped
 * member, and `migrateMember`, which moves a running member's state to another member.
 *
 * The driver's rules are kept here: a set only on a member this driver stopped
 * (driver/admin-cmds-device-parts/1), parts sent in the table order (/2), result buffers sized from the
 * metadata the device reports (/4, /5), and no access to the member's configuration space while it
 * is stopped (/3: nothing here reads it).
 */
import { ADMIN_GROUP_SRIOV, type AdminCommandReply, type AdminCommandSender, AdminStatus } from '../admin-command-handler.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  DEV_MODE_F_STOPPED,
  DEV_PART_HDR_SIZE,
  type DevicePart,
  type DevicePartHeader,
  DevicePartsGetType,
  DevicePartsMetadataType,
  DevicePartsOpcode,
  RESOURCE_OBJ_CMD_HDR_SIZE,
  RESOURCE_OBJ_DEV_PARTS,
  decodeHeaderList,
  decodePartList,
  encodePartHeader,
  encodePartList,
  encodeResourceObjectRef,
  encodedPartsSize,
  partOrderRank,
} from './device-part-format.js';

/** A device parts command the device answered with an error status (code REQUEST_FAILED). */
export class DevicePartsCommandError extends VirtioError {
  constructor(
    /** The command's opcode. */
    readonly opcode: number,
    /** status the device wrote (AdminStatus). */
    readonly status: number,
    /** status_qualifier the device wrote (AdminStatusQualifier). */
    readonly qualifier: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `device parts command 0x${opcode.toString(16)} failed: status ${status}, qualifier ${qualifier}`);
  }
}

/** What VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_GET reports of a member. */
export interface DevicePartsMetadata {
  /** parts_size.size: the most bytes all parts take. */
  readonly size: number;
  /** hdr_list.count: how many parts there are. */
  readonly count: number;
  /** hdr_list.hdrs: the header of each part. */
  readonly headers: readonly DevicePartHeader[];
}

/** A member and the device parts resource object (created beforehand) a command uses. */
export interface DevicePartsMember {
  /** group_member_id (the VF number). */
  readonly memberId: bigint;
  /** id of a VIRTIO_RESOURCE_OBJ_DEV_PARTS object of the right kind (get or set) for it. */
  readonly objectId: number;
}

/** The owner driver's device parts commands for the members of its SR-IOV group. */
export class DevicePartsDriver {
  /** Members this driver stopped and has not resumed. */
  private readonly stopped = new Set<bigint>();

  constructor(private readonly send: AdminCommandSender) {}

  /** Whether this driver stopped `memberId` (and did not resume it). */
  isStopped(memberId: bigint): boolean {
    return this.stopped.has(memberId);
  }

  private async command(opcode: number, memberId: bigint, data: Uint8Array, resultCapacity: number): Promise<AdminCommandReply> {
    const reply = await this.send(opcode, ADMIN_GROUP_SRIOV, memberId, data, resultCapacity);
    if (reply.status !== AdminStatus.OK) throw new DevicePartsCommandError(opcode, reply.status, reply.qualifier);
    return reply;
  }

  /** VIRTIO_ADMIN_CMD_DEV_MODE_SET with STOPPED: the member initiates no transport request. */
  async stop(memberId: bigint): Promise<void> {
    await this.command(DevicePartsOpcode.MODE_SET, memberId, Uint8Array.of(DEV_MODE_F_STOPPED), 0);
    this.stopped.add(memberId);
  }

  /** VIRTIO_ADMIN_CMD_DEV_MODE_SET with flags 0: the member runs again (with the parts set). */
  async resume(memberId: bigint): Promise<void> {
    await this.command(DevicePartsOpcode.MODE_SET, memberId, Uint8Array.of(0), 0);
    this.stopped.delete(memberId);
  }

  private typedData(objectId: number, type: number, extra = 0): Uint8Array {
    const data = new Uint8Array(RESOURCE_OBJ_CMD_HDR_SIZE + 8 + extra);
    encodeResourceObjectRef({ type: RESOURCE_OBJ_DEV_PARTS, id: objectId }, data);
    data[RESOURCE_OBJ_CMD_HDR_SIZE] = type;
    return data;
  }

  /**
   * VIRTIO_ADMIN_CMD_DEV_PARTS_METADATA_GET: size and count first, then the header list in a
   * buffer sized from the count (driver/admin-cmds-device-parts/4).
   */
  async metadata(m: DevicePartsMember): Promise<DevicePartsMetadata> {
    const u32 = (r: AdminCommandReply): number => {
      if (r.result.length < 4) throw new VirtioError(ErrorCode.DEVICE_ERROR, 'metadata result shorter than 4 bytes');
      return new DataView(r.result.buffer, r.result.byteOffset, r.result.length).getUint32(0, true);
    };
    const op = DevicePartsOpcode.METADATA_GET;
    const size = u32(await this.command(op, m.memberId, this.typedData(m.objectId, DevicePartsMetadataType.SIZE), 8));
    const count = u32(await this.command(op, m.memberId, this.typedData(m.objectId, DevicePartsMetadataType.COUNT), 8));
    const list = await this.command(op, m.memberId, this.typedData(m.objectId, DevicePartsMetadataType.LIST), 8 + count * DEV_PART_HDR_SIZE);
    const n = u32(list);
    const headers = decodeHeaderList(list.result.subarray(8, 8 + Math.min(n, count) * DEV_PART_HDR_SIZE));
    if (typeof headers === 'string') throw new VirtioError(ErrorCode.DEVICE_ERROR, `metadata header list: ${headers}`);
    return { size, count, headers };
  }

  /**
   * VIRTIO_ADMIN_CMD_DEV_PARTS_GET of every part, or of the `selected` ones, into a buffer of the
   * size the device reports (driver/admin-cmds-device-parts/5).
   */
  async get(m: DevicePartsMember, selected?: readonly DevicePartHeader[]): Promise<DevicePart[]> {
    const sizeReply = await this.command(DevicePartsOpcode.METADATA_GET, m.memberId, this.typedData(m.objectId, DevicePartsMetadataType.SIZE), 8);
    const size = new DataView(sizeReply.result.buffer, sizeReply.result.byteOffset, 8).getUint32(0, true);
    let data: Uint8Array;
    if (selected === undefined) {
      data = this.typedData(m.objectId, DevicePartsGetType.ALL);
    } else {
      data = this.typedData(m.objectId, DevicePartsGetType.SELECTED, selected.length * DEV_PART_HDR_SIZE);
      selected.forEach((h, i) => encodePartHeader(h, data, RESOURCE_OBJ_CMD_HDR_SIZE + 8 + i * DEV_PART_HDR_SIZE));
    }
    const reply = await this.command(DevicePartsOpcode.GET, m.memberId, data, size);
    const parts = decodePartList(reply.result);
    if (typeof parts === 'string') throw new VirtioError(ErrorCode.DEVICE_ERROR, `device parts: ${parts}`);
    // Copies: the reply buffer is the transport's.
    return parts.map((p) => ({ header: p.header, value: p.value.slice() }));
  }

  /**
   * VIRTIO_ADMIN_CMD_DEV_PARTS_SET on a member this driver stopped (driver/admin-cmds-device-parts/1:
   * refused with STATUS_INVALID otherwise, nothing sent), the parts in the table order (/2: a
   * stable sort; an unknown part keeps its place after the known ones).
   */
  async set(m: DevicePartsMember, parts: readonly DevicePart[]): Promise<void> {
    if (!this.stopped.has(m.memberId)) {
      throw new VirtioError(ErrorCode.STATUS_INVALID, `member ${m.memberId} is not stopped: stop it before setting its parts`);
    }
    const rank = (p: DevicePart): number => {
      const r = partOrderRank(p.header.type);
      return r < 0 ? Number.MAX_SAFE_INTEGER : r;
    };
    const ordered = [...parts].sort((a, b) => rank(a) - rank(b));
    const data = new Uint8Array(RESOURCE_OBJ_CMD_HDR_SIZE + encodedPartsSize(ordered));
    encodeResourceObjectRef({ type: RESOURCE_OBJ_DEV_PARTS, id: m.objectId }, data);
    encodePartList(ordered, data, RESOURCE_OBJ_CMD_HDR_SIZE);
    await this.command(DevicePartsOpcode.SET, m.memberId, data, 0);
  }
}

/** Hooks of `migrateMember`. */
export interface MigrateMemberOptions {
  /**
   * Runs once the destination holds the parts, before it resumes: where the member's driver is
   * moved to the destination (its notifications now reach it).
   */
  readonly beforeResume?: () => void | Promise<void>;
}

/**
 * Moves a running member's state to another member: stops `from` (its outstanding buffers are
 * finished and written back), reads all its parts, stops `to`, sets the parts on it and resumes
 * it. `from` is left stopped (the caller resets or reuses it). `from.objectId` names a get object,
 * `to.objectId` a set object. Returns the parts moved.
 */
export async function migrateMember(driver: DevicePartsDriver, from: DevicePartsMember, to: DevicePartsMember, opts: MigrateMemberOptions = {}): Promise<DevicePart[]> {
  await driver.stop(from.memberId);
  const parts = await driver.get(from);
  await driver.stop(to.memberId);
  await driver.set(to, parts);
  await opts.beforeResume?.();
  await driver.resume(to.memberId);
  return parts;
}
