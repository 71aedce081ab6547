/**
 * 2.12 / 2.13, driver side: sends group administration commands on an administration virtqueue
 * set up by VirtioDriver (`adminQueues` option, VIRTIO_F_ADMIN_VQ negotiated) and keeps the
 * rules the driver must follow: LIST_QUERY then LIST_USE before any other command of a group
 * type (driver/admin/2, /6), only commands the device reported (driver/admin/5), no LIST_USE
 * while other commands are outstanding (driver/admin/3), both parts of every command non-empty
 * and a multiple of 8 bytes (driver/admin/13, /14), the result read only within the used length
 * (driver/admin/16), EAGAIN retried (driver/admin/18).
 */
import { ErrorCode, VirtioError } from '../errors.js';
import { RequestQueue } from '../driver/request-queue.js';
import type { VirtioDriver } from '../driver/virtio-driver.js';
import { AdminCmdHeader, AdminCmdStatus, AdminOpcode, decodeAdminCmdList, encodeAdminCmdList } from '../spec/admin.js';
import { F } from '../spec/features.js';
import {
  ADMIN_GROUP_SRIOV,
  type AdminCommandReply,
  type AdminCommandSender,
  AdminStatus,
  AdminStatusQualifier,
} from './admin-command-handler.js';

const KNOWN_STATUS: ReadonlySet<number> = new Set(Object.values(AdminStatus));

/**
 * driver/admin/8: a status value the specification reserves is handled as EINVAL; a known one is
 * returned as it is.
 */
export function effectiveAdminStatus(status: number): number {
  return KNOWN_STATUS.has(status) ? status : AdminStatus.EINVAL;
}

/**
 * driver/admin/9: a reserved status_qualifier (0x08 and up) is handled as INVALID_COMMAND.
 */
export function effectiveAdminQualifier(qualifier: number): number {
  return qualifier <= AdminStatusQualifier.TRYAGAIN ? qualifier : AdminStatusQualifier.INVALID_COMMAND;
}

/**
 * The state of the owner's SR-IOV capability as the driver sees it, for commands of the SR-IOV
 * group (driver/admin/10: member 1..NumVFs, VF Enable set, VF Migration Capable clear while a
 * command is outstanding). `SriovDriverControl` implements it.
 */
export interface AdminSriovState {
  /** NumVFs. */
  numVfs(): number;
  /** VF Enable. */
  vfEnabled(): boolean;
  /** VF Migration Capable (from the capability's control register). */
  vfMigrationCapable(): boolean;
}

/** Options of AdminDriver.attach. */
export interface AdminDriverOptions {
  /** Administration queue to use (default the first one set up). */
  readonly queueIndex?: number;
  /** Times an EAGAIN answer is retried (driver/admin/18; default 8). */
  readonly eagainRetries?: number;
  /** The SR-IOV capability's state (required for commands of the SR-IOV group type). */
  readonly sriov?: AdminSriovState;
}

/** The driver-side owner of one administration virtqueue. */
export class AdminDriver {
  /** The queue index commands go on. */
  readonly queueIndex: number;
  private readonly rq: RequestQueue;
  private readonly used = new Map<number, Set<number>>();
  private readonly supported = new Map<number, Set<number>>();
  private outstanding = 0;
  /** Commands per group type not yet completed (SR-IOV: VF Enable must stay set meanwhile). */
  private readonly perGroup = new Map<number, number>();
  private drainWaiters: (() => void)[] = [];
  /** A LIST_USE waiting for the queue to drain, or in flight: other commands wait behind it. */
  private gate: Promise<void> | null = null;
  private readonly retries: number;
  private sriovState: AdminSriovState | null;

  private constructor(
    /** The VirtioDriver whose administration queue this is. */
    readonly virtio: VirtioDriver,
    opts: AdminDriverOptions,
  ) {
    if ((virtio.features & F.ADMIN_VQ) === 0n) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'VIRTIO_F_ADMIN_VQ was not negotiated');
    const idx = opts.queueIndex ?? virtio.adminQueueIndices[0];
    if (idx === undefined || !virtio.adminQueueIndices.includes(idx)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'no administration queue set up (VirtioDriver option adminQueues)');
    this.queueIndex = idx;
    this.rq = new RequestQueue(virtio.context, idx);
    this.retries = opts.eagainRetries ?? 8;
    this.sriovState = opts.sriov ?? null;
  }

  /**
   * Attaches to `virtio`'s administration queue. Throws FEATURES_REJECTED without ADMIN_VQ and
   * INVALID_ARGUMENT when no administration queue was set up.
   */
  static attach(virtio: VirtioDriver, opts: AdminDriverOptions = {}): AdminDriver {
    return new AdminDriver(virtio, opts);
  }

  /** Sets (or replaces) the SR-IOV capability state used to check SR-IOV group commands. */
  setSriovState(state: AdminSriovState | null): void {
    this.sriovState = state;
  }

  /** Commands submitted and not completed. */
  get inFlight(): number {
    return this.outstanding;
  }

  /** Commands of `groupType` submitted and not completed. */
  inFlightFor(groupType: number): number {
    return this.perGroup.get(groupType) ?? 0;
  }

  /** Resolves once no command is outstanding. */
  drained(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** The opcodes LIST_USE last enabled for `groupType` (LIST_QUERY and LIST_USE before any). */
  usedCommands(groupType: number): number[] {
    return [...(this.used.get(groupType) ?? [AdminOpcode.LIST_QUERY, AdminOpcode.LIST_USE])].sort((a, b) => a - b);
  }

  /** The opcodes LIST_QUERY last reported for `groupType` (empty before it). */
  supportedCommands(groupType: number): number[] {
    return [...(this.supported.get(groupType) ?? [])].sort((a, b) => a - b);
  }

  /**
   * The command sender command modules use (AdminCommandSender). Throws (rejects with)
   * INVALID_ARGUMENT for a command not enabled by LIST_USE for its group type.
   */
  readonly send: AdminCommandSender = (opcode, groupType, memberId, data, resultCapacity) => this.command(opcode, groupType, memberId, data, resultCapacity);

  /**
   * VIRTIO_ADMIN_CMD_LIST_QUERY for `groupType` (driver/admin/1: also how the driver learns
   * whether the group type exists). Returns the supported opcodes, or null when the device
   * failed the command (an unsupported group type: INVALID_GROUP).
   */
  async listQuery(groupType: number): Promise<number[] | null> {
    const r = await this.command(AdminOpcode.LIST_QUERY, groupType, 0n, new Uint8Array(0), 8 * 512);
    if (effectiveAdminStatus(r.status) !== AdminStatus.OK) return null;
    const ops = decodeAdminCmdList(r.result);
    this.supported.set(groupType, new Set(ops));
    return ops;
  }

  /**
   * VIRTIO_ADMIN_CMD_LIST_USE: tells the device the driver uses `opcodes` for `groupType`. Each
   * must have been reported by LIST_QUERY (driver/admin/5: INVALID_ARGUMENT otherwise). Waits for
   * outstanding commands first (driver/admin/3). Returns the reply; the used list changes only
   * on OK.
   */
  async listUse(groupType: number, opcodes: readonly number[]): Promise<AdminCommandReply> {
    const sup = this.supported.get(groupType);
    for (const op of opcodes) {
      if (!sup?.has(op)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `opcode 0x${op.toString(16)} was not reported by LIST_QUERY for group type ${groupType}`);
    }
    const r = await this.command(AdminOpcode.LIST_USE, groupType, 0n, encodeAdminCmdList(opcodes), 0);
    if (effectiveAdminStatus(r.status) === AdminStatus.OK) this.used.set(groupType, new Set(opcodes));
    return r;
  }

  /**
   * LIST_QUERY then LIST_USE of the commands in `known` the device supports (driver/admin/4: only
   * commands the caller knows), plus LIST_QUERY and LIST_USE themselves. Returns the opcodes in
   * use, or null when the group type is not supported or the device refused the list.
   */
  async enableGroup(groupType: number, known: readonly number[]): Promise<number[] | null> {
    const sup = await this.listQuery(groupType);
    if (sup === null) return null;
    const want = [...new Set([AdminOpcode.LIST_QUERY, AdminOpcode.LIST_USE, ...known])].filter((o) => sup.includes(o));
    const r = await this.listUse(groupType, want);
    return effectiveAdminStatus(r.status) === AdminStatus.OK ? this.usedCommands(groupType) : null;
  }

  /** One command, with the driver-side rules checked; EAGAIN retried. */
  private async command(opcode: number, groupType: number, memberId: bigint, data: Uint8Array, resultCapacity: number): Promise<AdminCommandReply> {
    if (!Number.isInteger(opcode) || opcode < 0 || opcode > 0xffff || !Number.isInteger(groupType) || groupType < 0 || groupType > 0xffff) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad opcode ${opcode} or group type ${groupType}`);
    }
    if (memberId < 0n || memberId >= 1n << 64n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad group_member_id ${memberId}`);
    if (!Number.isInteger(resultCapacity) || resultCapacity < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad result capacity ${resultCapacity}`);
    const isList = opcode === AdminOpcode.LIST_QUERY || opcode === AdminOpcode.LIST_USE;
    // driver/admin/2, /6: nothing but the list commands before LIST_USE enabled it.
    const used = this.used.get(groupType);
    if (used ? !used.has(opcode) : !isList) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `opcode 0x${opcode.toString(16)} is not in use for group type ${groupType} (LIST_QUERY and LIST_USE first)`);
    }
    if (groupType === ADMIN_GROUP_SRIOV && !isList) this.checkSriov(memberId);
    if (opcode === AdminOpcode.LIST_USE) return this.exclusive(() => this.retrying(opcode, groupType, memberId, data, resultCapacity));
    while (this.gate !== null) await this.gate;
    return this.retrying(opcode, groupType, memberId, data, resultCapacity);
  }

  /** driver/admin/10: member 1..NumVFs, VF Enable set and VF Migration Capable clear. */
  private checkSriov(memberId: bigint): void {
    const s = this.sriovState;
    if (s === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'SR-IOV group command without the SR-IOV capability state');
    if (!s.vfEnabled() || s.vfMigrationCapable()) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'SR-IOV group commands need VF Enable set and VF Migration Capable clear');
    if (memberId < 1n || memberId > BigInt(s.numVfs())) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `VF ${memberId} not in 1..${s.numVfs()}`);
  }

  /** driver/admin/3: LIST_USE only once every other command completed; others wait behind it. */
  private async exclusive(run: () => Promise<AdminCommandReply>): Promise<AdminCommandReply> {
    while (this.gate !== null) await this.gate;
    let open!: () => void;
    this.gate = new Promise<void>((r) => (open = r));
    try {
      await this.drained();
      return await run();
    } finally {
      this.gate = null;
      open();
    }
  }

  private async retrying(opcode: number, groupType: number, memberId: bigint, data: Uint8Array, resultCapacity: number): Promise<AdminCommandReply> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.once(opcode, groupType, memberId, data, resultCapacity);
      // driver/admin/18 (device/admin/23: an EAGAIN command had no side effects).
      if (r.status !== AdminStatus.EAGAIN || attempt >= this.retries) return r;
    }
  }

  /** Builds the two parts in guest memory, submits, and reads the answer within the used length. */
  private async once(opcode: number, groupType: number, memberId: bigint, data: Uint8Array, resultCapacity: number): Promise<AdminCommandReply> {
    const ctx = this.virtio.context;
    const mem = ctx.memory;
    // driver/admin/12, /13, /14: the whole readable header, both parts multiples of 8, never empty.
    const outLen = Math.ceil((AdminCmdHeader.SIZE + data.length) / 8) * 8;
    const inLen = Math.ceil((AdminCmdStatus.SIZE + resultCapacity) / 8) * 8;
    const out = ctx.dma.alloc(outLen, 8);
    let inn = -1;
    this.outstanding++;
    this.perGroup.set(groupType, (this.perGroup.get(groupType) ?? 0) + 1);
    try {
      inn = ctx.dma.alloc(inLen, 8);
      const hdr = new Uint8Array(outLen);
      const v = new DataView(hdr.buffer);
      v.setUint16(AdminCmdHeader.OPCODE, opcode, true);
      v.setUint16(AdminCmdHeader.GROUP_TYPE, groupType, true);
      v.setBigUint64(AdminCmdHeader.GROUP_MEMBER_ID, memberId, true);
      hdr.set(data, AdminCmdHeader.DATA);
      mem.write(out, hdr);
      mem.fill(inn, inLen);
      const usedLen = await this.rq.submit([{ addr: out, len: outLen }], [{ addr: inn, len: inLen }]);
      // driver/admin/16: what the device did not write reads as zero.
      const got = Math.min(usedLen, inLen);
      const answer = new Uint8Array(inLen);
      answer.set(mem.slice(inn, got));
      const a = new DataView(answer.buffer);
      const result = answer.slice(AdminCmdStatus.RESULT, AdminCmdStatus.RESULT + resultCapacity);
      return { status: a.getUint16(AdminCmdStatus.STATUS, true), qualifier: a.getUint16(AdminCmdStatus.STATUS_QUALIFIER, true), result };
    } finally {
      ctx.dma.free(out);
      if (inn >= 0) ctx.dma.free(inn);
      this.outstanding--;
      this.perGroup.set(groupType, (this.perGroup.get(groupType) ?? 1) - 1);
      if (this.outstanding === 0) {
        const w = this.drainWaiters;
        this.drainWaiters = [];
        for (const f of w) f();
      }
    }
  }
}
