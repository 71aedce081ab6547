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
import type { ConfigLayout } from '../../spec/config-layout.js';
import { LegacyReg, NO_VECTOR } from '../../transport/pci/constants.js';
import { MemberLegacyRegisters, type MemberLegacyOptions } from './legacy-register-host.js';
import { encodeLegacyNotifyInfo, type LegacyNotifyEntry } from './legacy-notify-info.js';

/** 2.12.1 opcodes of the legacy interface commands. */
export const LegacyOpcode = {
  COMMON_CFG_WRITE: 0x2,
  COMMON_CFG_READ: 0x3,
  DEV_CFG_WRITE: 0x4,
  DEV_CFG_READ: 0x5,
  NOTIFY_INFO: 0x6,
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
   * fields. Without it an access must be 1, 2, 4 or 8 bytes, naturally aligned.
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

  /** The owner was reset: the members' legacy register state (selector, vector) starts over. */
  reset(): void {
    this.members.clear();
  }

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
    const len = data.length - LEGACY_WRITE_HEADER_SIZE;
    const offset = data[0] ?? 0;
    if (!this.commonAccessFits(offset, len)) return invalid();
    const value = readLe(data, LEGACY_WRITE_HEADER_SIZE, len);
    const regs = this.registersOf(member);
    // A vector outside the member's table is refused before the register maps it to NO_VECTOR (no side effect).
    if ((offset === LegacyReg.CONFIG_MSIX_VECTOR || offset === LegacyReg.QUEUE_MSIX_VECTOR) && len === 2 && value !== NO_VECTOR && value >= regs.msixVectors) return invalid();
    return regs.write(offset, len, value) ? adminOk(0) : invalid();
  }

  private commonRead(member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    // struct virtio_admin_cmd_legacy_common_cfg_rd_data is the offset alone; the length read is the result's.
    if (data.length !== 1) return invalid();
    const offset = data[0]!;
    const len = result.length;
    if (!this.commonAccessFits(offset, len)) return invalid();
    const v = this.registersOf(member).read(offset, len);
    if (v === null) return invalid();
    writeLe(result, 0, len, v);
    return adminOk(len);
  }

  /** 1, 2 or 4 bytes completely inside the common configuration (the register decides the field). */
  private commonAccessFits(offset: number, len: number): boolean {
    return (len === 1 || len === 2 || len === 4) && offset + len <= LEGACY_COMMON_CFG_SIZE;
  }

  /** An access inside one field of the member's device configuration. */
  private deviceAccessFits(core: DeviceCoreApi, offset: number, len: number): boolean {
    if (len < 1 || len > 8 || offset + len > core.device.configSize) return false;
    const layout = this.options.configLayout;
    if (!layout) return (len === 1 || len === 2 || len === 4 || len === 8) && offset % len === 0;
    return layout.fields.some((f) => offset >= f.offset && offset + len <= f.offset + f.width);
  }

  private deviceWrite(member: AdminMember, data: Uint8Array): AdminCommandOutcome {
    const len = data.length - LEGACY_WRITE_HEADER_SIZE;
    const offset = data[0] ?? 0;
    if (!this.deviceAccessFits(member.core, offset, len)) return invalid();
    const regs = this.registersOf(member);
    // Through the legacy BAR's device configuration window, in the widths it takes (at most 4).
    for (const [at, width] of chunks(offset, len)) {
      if (!regs.write(LegacyReg.CONFIG_MSIX + at, width, readLe(data, LEGACY_WRITE_HEADER_SIZE + at - offset, width))) return invalid();
    }
    return adminOk(0);
  }

  private deviceRead(member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome {
    if (data.length !== 1) return invalid();
    const offset = data[0]!;
    const len = result.length;
    if (!this.deviceAccessFits(member.core, offset, len)) return invalid();
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
    if (data.length !== 0) return invalid();
    const encoded = encodeLegacyNotifyInfo(this.options.notifyInfo(member));
    const n = Math.min(encoded.length, result.length);
    result.set(encoded.subarray(0, n));
    return adminOk(n);
  }
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
