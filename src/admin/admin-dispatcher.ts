/**
 * 2.12.1 Group administration commands, device side, independent of the queue carrying them:
 * validates group_type, opcode and group_member_id in the order device/admin/1 gives, keeps the
 * list of commands the driver used per group type (LIST_USE), serves LIST_QUERY and LIST_USE
 * itself, and routes every other command to the handler that claims its opcode for the group
 * type. It never throws for anything a driver sends: every failure is a status and qualifier.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { ADMIN_OPCODE_LIMIT, AdminOpcode, adminCmdListBytes, encodeAdminCmdList } from '../spec/admin.js';
import {
  type AdminCommandHandler,
  type AdminCommandOutcome,
  type AdminMember,
  AdminStatus,
  AdminStatusQualifier,
  adminError,
  adminOk,
} from './admin-command-handler.js';
import type { AdminGroup } from './admin-group.js';

/** The two commands every supported group type has, and the initial used list (device/admin/8). */
const LIST_COMMANDS: readonly number[] = [AdminOpcode.LIST_QUERY, AdminOpcode.LIST_USE];

/** Per group type: the commands supported (never shrinking, device/admin/11) and in use. */
interface GroupState {
  readonly group: AdminGroup;
  /** opcode -> handler (LIST_QUERY / LIST_USE are the dispatcher's own). */
  readonly handlers: Map<number, AdminCommandHandler>;
  /** Commands the driver may use now (device/admin/8, /9). */
  used: Set<number>;
}

/** Options of AdminDispatcher. */
export interface AdminDispatcherOptions {
  /** The groups this owner controls (at most one per group type, 2.12). */
  readonly groups: readonly AdminGroup[];
  /** The command modules (each claims opcodes for some group types). */
  readonly handlers?: readonly AdminCommandHandler[];
  /** Where handler failures are logged. */
  readonly logger?: Logger;
}

/**
 * The device side's command logic: group and member resolution, LIST_QUERY / LIST_USE and the
 * used lists, routing to handlers. `AdminQueueServer` feeds it from the administration queues.
 */
export class AdminDispatcher {
  private readonly groups = new Map<number, GroupState>();
  private readonly handlerList: AdminCommandHandler[] = [];
  private readonly log: Logger;

  constructor(opts: AdminDispatcherOptions) {
    this.log = opts.logger ?? silentLogger;
    for (const g of opts.groups) {
      if (this.groups.has(g.groupType)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `two groups of type ${g.groupType}`);
      this.groups.set(g.groupType, { group: g, handlers: new Map(), used: new Set(LIST_COMMANDS) });
    }
    for (const h of opts.handlers ?? []) this.addHandler(h);
  }

  /**
   * Registers a command module. Supported lists only grow (device/admin/11), so a handler can be
   * added at any time but never removed. Throws INVALID_ARGUMENT when an opcode is out of range
   * or already claimed for one of its group types.
   */
  addHandler(h: AdminCommandHandler): void {
    for (const op of h.opcodes) {
      if (!Number.isInteger(op) || op <= AdminOpcode.LIST_USE || op >= ADMIN_OPCODE_LIMIT) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `admin handler opcode ${op} not in 0x0002..0x7fff`);
      }
      for (const t of h.groupTypes) {
        const g = this.groups.get(t);
        if (g?.handlers.has(op)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `opcode 0x${op.toString(16)} claimed twice for group type ${t}`);
      }
    }
    for (const t of h.groupTypes) {
      const g = this.groups.get(t);
      if (!g) continue; // a group type this owner does not have: its commands are never reached
      for (const op of h.opcodes) g.handlers.set(op, h);
    }
    this.handlerList.push(h);
  }

  /** The group types this owner supports. */
  get groupTypes(): number[] {
    return [...this.groups.keys()];
  }

  /** Opcodes supported for `groupType` (LIST_QUERY's answer), ascending; empty when unsupported. */
  supported(groupType: number): number[] {
    const g = this.groups.get(groupType);
    if (!g) return [];
    return [...LIST_COMMANDS, ...g.handlers.keys()].sort((a, b) => a - b);
  }

  /** Opcodes the driver currently uses for `groupType` (after LIST_USE), ascending. */
  used(groupType: number): number[] {
    const g = this.groups.get(groupType);
    return g ? [...g.used].sort((a, b) => a - b) : [];
  }

  /**
   * The owner device was reset: every group's used list is back to LIST_QUERY and LIST_USE
   * (device/admin/8) and every handler forgets its state.
   */
  reset(): void {
    for (const g of this.groups.values()) g.used = new Set(LIST_COMMANDS);
    for (const h of this.handlerList) {
      try {
        h.reset?.();
      } catch (e) {
        this.log.error(`admin handler reset threw: ${String(e)}`);
      }
    }
  }

  /**
   * Runs one command. `data` is command_specific_data as the driver sent it, `result` the
   * zero-filled command_specific_result space. Never throws and never rejects.
   */
  execute(opcode: number, groupType: number, memberId: bigint, data: Uint8Array, result: Uint8Array): AdminCommandOutcome | Promise<AdminCommandOutcome> {
    // device/admin/1: group_type first, then opcode, then group_member_id.
    const g = this.groups.get(groupType);
    // device/admin/14: the SR-IOV group exists only with the capability and VF Enable set.
    if (!g || !g.group.exists()) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_GROUP);
    const isList = opcode === AdminOpcode.LIST_QUERY || opcode === AdminOpcode.LIST_USE;
    const handler = isList ? null : g.handlers.get(opcode);
    // device/admin/1 (unsupported opcode) and /10 (not in the used list): INVALID_OPCODE.
    if ((!isList && !handler) || !g.used.has(opcode)) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_OPCODE);
    if (opcode === AdminOpcode.LIST_QUERY) return this.listQuery(g, result);
    if (opcode === AdminOpcode.LIST_USE) return this.listUse(g, data);
    // Every other command names a member (2.12.1: the self group's is 0, SR-IOV's 1..NumVFs).
    const core = g.group.member(memberId);
    if (core === null) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER);
    const member: AdminMember = { groupType, memberId, core };
    try {
      const out = handler!.handle(opcode, member, data, result);
      if (out instanceof Promise) return out.then((o) => this.checked(o, result), (e: unknown) => this.failed(opcode, e));
      return this.checked(out, result);
    } catch (e) {
      return this.failed(opcode, e);
    }
  }

  /** An outcome within the result buffer; `written` 0 on failure (unused fields stay zero). */
  private checked(o: AdminCommandOutcome, result: Uint8Array): AdminCommandOutcome {
    const written = Number.isInteger(o.written) && o.written > 0 ? Math.min(o.written, result.length) : 0;
    // device/admin/2, /3: OK with qualifier OK; a failure never reads as OK.
    if (o.status === AdminStatus.OK) return adminOk(written);
    return { status: o.status & 0xffff, qualifier: o.qualifier & 0xffff, written };
  }

  /** A handler broke its contract by throwing: the command fails, the device carries on. */
  private failed(opcode: number, e: unknown): AdminCommandOutcome {
    this.log.error(`admin command 0x${opcode.toString(16)}: handler threw: ${String(e)}`);
    return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_COMMAND);
  }

  /** LIST_QUERY: struct virtio_admin_cmd_list of the supported commands, as much as fits. */
  private listQuery(g: GroupState, result: Uint8Array): AdminCommandOutcome {
    const list = encodeAdminCmdList(this.supportedOf(g));
    const n = Math.min(list.length, result.length);
    result.set(list.subarray(0, n));
    return adminOk(n);
  }

  private supportedOf(g: GroupState): number[] {
    return [...LIST_COMMANDS, ...g.handlers.keys()];
  }

  /**
   * LIST_USE: every opcode set must be supported for this group type, else EINVAL with
   * INVALID_FIELD and the list in use is unchanged (device/admin/4); on success the list becomes
   * exactly the one sent (device/admin/9), which may leave out LIST_QUERY and LIST_USE
   * themselves (driver/admin/7).
   */
  private listUse(g: GroupState, data: Uint8Array): AdminCommandOutcome {
    const next = new Set<number>();
    const limit = adminCmdListBytes(ADMIN_OPCODE_LIMIT - 1);
    for (let i = 0; i < data.length; i++) {
      const b = data[i]!;
      if (b === 0) continue;
      if (i >= limit) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
      for (let k = 0; k < 8; k++) {
        if (!(b & (1 << k))) continue;
        const op = i * 8 + k;
        if (op !== AdminOpcode.LIST_QUERY && op !== AdminOpcode.LIST_USE && !g.handlers.has(op)) {
          return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
        }
        next.add(op);
      }
    }
    // device/admin/6: a module may refuse a list that breaks its dependencies.
    for (const h of new Set(g.handlers.values())) {
      let ok = true;
      try {
        ok = h.acceptsUse?.(g.group.groupType, next) ?? true;
      } catch (e) {
        this.log.error(`admin handler acceptsUse threw: ${String(e)}`);
        ok = false;
      }
      if (!ok) return adminError(AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD);
    }
    g.used = next;
    return adminOk(0);
  }
}
