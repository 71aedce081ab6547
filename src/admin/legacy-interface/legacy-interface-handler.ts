/**
 * 2.12.1.1 Legacy Interfaces, device side: LEGACY_COMMON_CFG_WRITE / READ and LEGACY_DEV_CFG_WRITE /
 * READ (all four, device/admin-cmds-legacy-interface/1) and optionally LEGACY_NOTIFY_INFO, for
 * SR-IOV members. Each access goes through the member's legacy registers (the legacy I/O BAR
 * logic of pci-legacy-io.ts over the member's DeviceCore), so it has the same effect as the same
 * access through a legacy interface (device/admin-cmds-legacy-interface/5..8). Values are
 * little-endian whatever the member's guest (/2); an access that is not one field, or not
 * completely inside its structure, fails with EINVAL and changes nothing (/3, /4).
 */
import {
  ADMIN_GROUP_SRIOV,
  AdminStatus,
  AdminStatusQualifier,
  adminError,
  adminOk,
  type AdminCommandHandler,
  type AdminCommandOutcome,
  type AdminMember,
} from '../admin-command-handler.js';
import type { DeviceCoreApi } from '../../device/types.js';
import { AdminOpcode } from '../../spec/admin.js';
import type { ConfigLayout } from '../../spec/config-layout.js';
import { LegacyReg, NO_VECTOR } from '../../transport/pci/constants.js';
import { MemberLegacyRegisters, type MemberLegacyOptions } from './legacy-register-host.js';
import { encodeLegacyNotifyInfo, type LegacyNotifyEntry } from './legacy-notify-info.js';
import { legacyCommonFieldWidth } from './legacy-common-fields.js';

/** 2.12.1 opcodes of the legacy interface commands. */
export const LegacyOpcode = {
  COMMON_CFG_WRITE: AdminOpcode.LEGACY_COMMON_CFG_WRITE,
  COMMON_CFG_READ: AdminOpcode.LEGACY_COMMON_CFG_READ,
  DEV_CFG_WRITE: AdminOpcode.LEGACY_DEV_CFG_WRITE,
  DEV_CFG_READ: AdminOpcode.LEGACY_DEV_CFG_READ,
  NOTIFY_INFO: AdminOpcode.LEGACY_NOTIFY_INFO,
} as const;

/** The write commands' header: u8 offset, u8 reserved[7], then data. */
export const LEGACY_WRITE_HEADER_SIZE = 8;
/**
 * The legacy common configuration as these commands see it: the header with the MSI-X vector
 * registers (4.1.4.8: 24 bytes); the device configuration is addressed from 0 by the DEV_CFG commands.
 */
export const LEGACY_COMMON_CFG_SIZE = LegacyReg.CONFIG_MSIX;

/** Options of the legacy interface commands. */
export interface LegacyInterfaceHandlerOptions {
  /**
   * The member device type's configuration layout: a DEV_CFG access must lie inside one of its
   * fields. Without it an access must be 1, 2, 4 or 8 bytes, naturally aligned, and a write a
   * driver padded to 8 bytes is taken at the largest such width at its offset (with a layout: to
   * the end of the field), so give the member type's layout where writable fields exist.
   */
  readonly configLayout?: ConfigLayout;
  /**
   * The notification addresses LEGACY_NOTIFY_INFO reports for a member (at most 3, in order of
   * preference); without it the command is not supported. Where they are, notifications go to
   * `notify()`.
   */
  readonly notifyInfo?: (member: AdminMember) => readonly LegacyNotifyEntry[];
  /** Per-member function details (MSI-X vectors, ISR). */
  readonly memberOptions?: (member: AdminMember) => MemberLegacyOptions;
}

interface MemberState {
  readonly core: DeviceCoreApi;
  readonly registers: MemberLegacyRegisters;
}

/** The legacy interface commands of one SR-IOV owner. */
export class LegacyInterfaceHandler implements AdminCommandHandler {
  /** The four configuration commands, and LEGACY_NOTIFY_INFO when configured. */
  readonly opcodes: readonly number[];
  /** 2.12.1.1: "currently only defined for the SR-IOV group type". */
  readonly groupTypes: readonly number[] = [ADMIN_GROUP_SRIOV];
  /** One entry per member id the dispatcher resolved (bounded by NumVFs). */
  private readonly members = new Map<bigint, MemberState>();

  constructor(private readonly options: LegacyInterfaceHandlerOptions = {}) {
    const ops: number[] = [LegacyOpcode.COMMON_CFG_WRITE, LegacyOpcode.COMMON_CFG_READ, LegacyOpcode.DEV_CFG_WRITE, LegacyOpcode.DEV_CFG_READ];
    if (options.notifyInfo) ops.push(LegacyOpcode.NOTIFY_INFO);
    this.opcodes = ops;
  }

  /** The member's legacy registers (rebuilt when the member's core changed). */
  registersOf(member: AdminMember): MemberLegacyRegisters {
    const known = this.members.get(member.memberId);
    if (known && known.core === member.core) return known.registers;
    const registers = new MemberLegacyRegisters(member.core, this.options.memberOptions?.(member));
    this.members.set(member.memberId, { core: member.core, registers });
    return registers;
  }

  // No reset(): a device reset of the owner does not reset its members; a member's legacy state
  // (queue selector, config vector) goes with its own status writes and with its core (VFs
  // brought up again get new cores, and registersOf() new registers).

  /**
   * A driver notification written to one of the NOTIFY_INFO addresses of `member`: the 16-bit
   * little-endian queue index, with the effect of COMMON_CFG_WRITE at Queue Notify
   * (device/admin-cmds-legacy-interface/9). False when the member refused it (no such queue).
   */
  notify(member: AdminMember, queueIndex: number): boolean {
    return this.registersOf(member).write(LegacyReg.QUEUE_NOTIFY, 2, queueIndex & 0xffff);
  }

  handle(opcode: number, member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    if (member.groupType !== ADMIN_GROUP_SRIOV) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_GROUP);
    switch (opcode) {
      case LegacyOpcode.COMMON_CFG_WRITE:
        return this.commonWrite(member, data);
      case LegacyOpcode.COMMON_CFG_READ:
        return this.commonRead(member, data, result);
      case LegacyOpcode.DEV_CFG_WRITE:
        return this.deviceWrite(member, data);
      case LegacyOpcode.DEV_CFG_READ:
        return this.deviceRead(member, data, result);
      case LegacyOpcode.NOTIFY_INFO:
        return this.notifyInfo(member, data, result);
      default:
        return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE);
    }
  }

  private commonWrite(member: AdminMember, data: Uint8Array): AdminCommandOutcome {
    const offset = data[0] ?? 0;
    const width = legacyCommonFieldWidth(offset);
    const len = accessLength(data.length - LEGACY_WRITE_HEADER_SIZE, width, true);
    if (len === 0 || !paddingIsZero(data, LEGACY_WRITE_HEADER_SIZE + len)) return invalid();
    const value = readLe(data, LEGACY_WRITE_HEADER_SIZE, len);
    const regs = this.registersOf(member);
    // A vector outside the member's table is refused before the register maps it to NO_VECTOR (no side effect).
    if ((offset === LegacyReg.CONFIG_MSIX_VECTOR || offset === LegacyReg.QUEUE_MSIX_VECTOR) && value !== NO_VECTOR && value >= regs.msixVectors) return invalid();
    return regs.write(offset, len, value) ? adminOk(0) : invalid();
  }

  private commonRead(member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    // struct virtio_admin_cmd_legacy_common_cfg_rd_data is the offset (more is padding); the length read is the result's.
    const offset = data[0] ?? 0;
    const len = accessLength(result.length, legacyCommonFieldWidth(offset), true);
    if (len === 0) return invalid();
    const v = this.registersOf(member).read(offset, len);
    if (v === null) return invalid();
    writeLe(result, 0, len, v);
    return adminOk(len);
  }

  /**
   * The bytes from `offset` to the end of the device configuration field containing it (with a
   * layout), or the largest natural width (8, 4, 2, 1) aligned there and inside the configuration.
   */
  private deviceFieldRest(core: DeviceCoreApi, offset: number): number {
    const size = core.device.configSize;
    const layout = this.options.configLayout;
    if (layout) {
      const f = layout.fields.find((x) => offset >= x.offset && offset < x.offset + x.width);
      return f && f.offset + f.width <= size ? f.offset + f.width - offset : 0;
    }
    for (const w of [8, 4, 2, 1]) if (offset % w === 0 && offset + w <= size) return w;
    return 0;
  }

  /** Length of a device configuration access of `requested` bytes at `offset` (0: refused). */
  private deviceAccess(core: DeviceCoreApi, offset: number, requested: number): number {
    const rest = this.deviceFieldRest(core, offset);
    // Without a layout, fields are taken to be naturally aligned powers of two.
    return accessLength(requested, rest, this.options.configLayout !== undefined || (requested & (requested - 1)) === 0);
  }

  private deviceWrite(member: AdminMember, data: Uint8Array): AdminCommandOutcome {
    const offset = data[0] ?? 0;
    const len = this.deviceAccess(member.core, offset, data.length - LEGACY_WRITE_HEADER_SIZE);
    if (len === 0 || !paddingIsZero(data, LEGACY_WRITE_HEADER_SIZE + len)) return invalid();
    const regs = this.registersOf(member);
    // Through the legacy BAR's device configuration window, in the widths it takes (at most 4).
    for (const [at, width] of chunks(offset, len)) {
      if (!regs.write(LegacyReg.CONFIG_MSIX + at, width, readLe(data, LEGACY_WRITE_HEADER_SIZE + at - offset, width))) return invalid();
    }
    return adminOk(0);
  }

  private deviceRead(member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    const offset = data[0] ?? 0;
    const len = this.deviceAccess(member.core, offset, result.length);
    if (len === 0) return invalid();
    const regs = this.registersOf(member);
    for (const [at, width] of chunks(offset, len)) {
      const v = regs.read(LegacyReg.CONFIG_MSIX + at, width);
      if (v === null) return invalid();
      writeLe(result, at - offset, width, v);
    }
    return adminOk(len);
  }

  private notifyInfo(member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    // "This command does not use command_specific_data."
    if (!this.options.notifyInfo) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE);
    void data;
    const encoded = encodeLegacyNotifyInfo(this.options.notifyInfo(member));
    const n = Math.min(encoded.length, result.length);
    result.set(encoded.subarray(0, n));
    return adminOk(n);
  }
}

/**
 * The length of an access of `requested` bytes to a field with `rest` bytes left from its offset:
 * `requested` itself when it stays inside the field (and `exactOk`), else `rest` when `requested`
 * is `rest` rounded up to 8 (a buffer padded to a multiple of 8 bytes, as drivers must supply,
 * 2.13); 0 when neither (the access is refused: device/admin-cmds-legacy-interface/3, /4).
 */
function accessLength(requested: number, rest: number, exactOk: boolean): number {
  if (requested < 1 || rest < 1) return 0;
  if (requested <= rest && exactOk) return requested;
  if (requested % 8 === 0 && requested === Math.ceil(rest / 8) * 8) return rest;
  return 0;
}

/** Whether the bytes of `data` from `from` on (padding) are all zero. */
function paddingIsZero(data: Uint8Array, from: number): boolean {
  for (let i = from; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

function invalid(): AdminCommandOutcome {
  return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
}

/** Splits [offset, offset + len) into naturally aligned accesses of at most 4 bytes. */
function chunks(offset: number, len: number): [number, number][] {
  const out: [number, number][] = [];
  let at = offset;
  const end = offset + len;
  while (at < end) {
    let width = 4;
    while (width > 1 && (at % width !== 0 || at + width > end)) width >>= 1;
    out.push([at, width]);
    at += width;
  }
  return out;
}

/** 2.12.1.1: data is little-endian unconditionally (device/admin-cmds-legacy-interface/2). */
function readLe(bytes: Uint8Array, at: number, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + bytes[at + i]!;
  return v;
}

function writeLe(bytes: Uint8Array, at: number, width: number, value: number): void {
  let v = value;
  for (let i = 0; i < width; i++) {
    bytes[at + i] = v % 256;
    v = Math.floor(v / 256);
  }
}
