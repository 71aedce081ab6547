/**
 * 4.3 Virtio Over Channel I/O, device side: decodes the virtio-ccw channel commands of one
 * subchannel (revision negotiation, features, configuration, status, virtqueues, classic and
 * adapter indicators, reset) and the diagnose 0x500 notification hypercall; sends used-buffer
 * and configuration notifications through indicators and I/O interrupts.
 *
 * Revision 0 is the legacy interface of a big-endian guest (s390): rings and configuration in
 * guest endian. CCW payload structures are big-endian except the feature words (4.3.2.3).
 *
 * `execute` never throws: every malformed command ends with a unit check (command reject), an
 * incorrect-length status or a program check, as the spec and the architecture say.
 */
import type { DeviceCoreApi, InterruptSink, QueueRefusal } from '../../device/types.js';
import { BadAccess, type BadAccessListener, type CoreFactory, type TransportBus, TransportFeatureFlags, badAccessForRefusal, writeConfigValue } from '../bus.js';
import { CCW_CONTROL_UNIT_TYPE, CCW_MAX_REVISION, CcwCmd, CcwFlag, type CcwOutcome, CcwSize, CcwStatus } from './constants.js';

/** What a channel subsystem emulator (or a driver in-process) calls on a virtio-ccw device. */
export interface CcwChannel {
  /** Sense ID: control unit type 0x3832 (4.3.1). */
  readonly controlUnitType: number;
  /** Sense ID: the control unit model is the virtio device id. */
  readonly controlUnitModel: number;
  /** Executes one channel command: `count` bytes at guest address `dataAddr`. */
  execute(cmd: number, dataAddr: number, count: number, flags?: number): CcwOutcome;
  /** 4.3.3.2 diagnose 0x500 subcode 3: returns the host cookie (GPR2), negative on error. */
  hypercallNotify(gpr2: number, gpr3: number, gpr4?: number): number;
}

/** Options of CcwDeviceTransport. */
export interface CcwDeviceOptions {
  /** Accept revision 0 and legacy drivers (no SET_VIRTIO_REV). Default true. */
  readonly transitional?: boolean;
  /** Highest revision offered (1 or 2). Default 2. */
  readonly maxRevision?: number;
  /** Revision 0 only: false (default) for a big-endian guest. */
  readonly guestLittleEndian?: boolean;
  /** Subchannel id checked against the hypercall's GPR2 (low 32 bits); unchecked when absent. */
  readonly subchannelId?: number;
  /** Told of every channel command the transport rejected. */
  readonly onBadAccess?: BadAccessListener;
}

const EINVAL = -22;
const KNOWN_COMMANDS: ReadonlySet<number> = new Set(Object.values(CcwCmd));
const OK: CcwOutcome = { status: CcwStatus.OK, residual: 0 };

function outcome(status: CcwStatus, residual = 0): CcwOutcome {
  return status === CcwStatus.OK && residual === 0 ? OK : { status, residual };
}

export class CcwDeviceTransport implements CcwChannel, InterruptSink {
  readonly controlUnitType = CCW_CONTROL_UNIT_TYPE;
  /** Whether revision 0 (legacy) is served. */
  readonly transitional: boolean;
  /** The highest virtio-ccw revision offered (SET_VIRTIO_REV). */
  readonly maxRevision: number;
  /** Channel commands rejected so far. */
  badAccesses = 0;

  private coreRef: DeviceCoreApi;
  private readonly factory: CoreFactory;
  private rev = -1;
  /** Classic queue indicators and configuration indicators: guest addresses of a u64, or -1. */
  private indicators = -1;
  private configIndicators = -1;
  /** Two-stage (adapter) indicators. */
  private summaryIndicator = -1;
  private adapterIndicators = -1;
  private adapterBit = 0;
  private isc = 0;
  /** Derived from the negotiated features at each status write (no BigInt per notification). */
  private readonly flags = new TransportFeatureFlags();
  private readonly buf = new Uint8Array(64);
  private readonly onBad: BadAccessListener | undefined;

  constructor(
    private readonly bus: TransportBus,
    factory: CoreFactory,
    private readonly opts: CcwDeviceOptions = {},
  ) {
    this.factory = factory;
    this.transitional = opts.transitional ?? true;
    this.maxRevision = Math.min(opts.maxRevision ?? CCW_MAX_REVISION, CCW_MAX_REVISION);
    this.onBad = opts.onBadAccess;
    this.coreRef = factory(this, { legacy: false, littleEndian: true });
  }

  /** The device core behind the revision in use. */
  get core(): DeviceCoreApi {
    return this.coreRef;
  }

  /** The control unit model SENSE ID reports: the virtio device ID (4.3.1). */
  get controlUnitModel(): number {
    return this.coreRef.device.deviceId;
  }

  /** The revision the driver selected (SET_VIRTIO_REV, 4.3.2.1.1), or -1 while unset. */
  get revision(): number {
    return this.rev;
  }

  /** Whether classic (true), adapter (false) or no (null) queue indicators are set up. */
  get indicatorMode(): 'classic' | 'adapter' | null {
    return this.indicators >= 0 ? 'classic' : this.adapterIndicators >= 0 ? 'adapter' : null;
  }

  /**
   * 4.3.2.1.1: the revision is unset from the time the subchannel is enabled until the driver
   * sets one; the emulator calls this when the guest enables the subchannel.
   */
  enableSubchannel(): void {
    this.reset();
    this.rev = -1;
  }

  private bad(reason: BadAccess, cmd: number, count: number, detail?: string): void {
    this.badAccesses++;
    try {
      this.onBad?.({ reason, region: 'ccw', offset: cmd, width: count, write: true, ...(detail === undefined ? {} : { detail }) });
    } catch {
      // A listener must not break the channel.
    }
  }

  private reject(cmd: number, count: number, reason: BadAccess, detail?: string): CcwOutcome {
    this.bad(reason, cmd, count, detail);
    return outcome(CcwStatus.COMMAND_REJECT);
  }

  /** Device reset: status 0, indicators released (the driver sets them up again). */
  private reset(): void {
    this.coreRef.setStatus(0);
    this.indicators = -1;
    this.configIndicators = -1;
    this.summaryIndicator = -1;
    this.adapterIndicators = -1;
    this.adapterBit = 0;
    this.flags.refresh(this.coreRef);
  }

  private selectRevision(rev: number): void {
    this.rev = rev;
    const legacy = rev === 0;
    this.coreRef.setStatus(0);
    this.coreRef = this.factory(this, { legacy, littleEndian: legacy ? (this.opts.guestLittleEndian ?? false) : true });
  }

  /**
   * Length rules (4.3.1): without SLI the count must match; with SLI a short buffer is a check
   * condition and a long one is accepted. Returns null when the command may proceed.
   */
  private lengthCheck(cmd: number, expected: number, count: number, flags: number): CcwOutcome | null {
    if (count === expected) return null;
    if ((flags & CcwFlag.SLI) === 0) {
      this.bad(BadAccess.WIDTH, cmd, count, `expected ${expected}`);
      return outcome(CcwStatus.INCORRECT_LENGTH, Math.max(count - expected, 0));
    }
    if (count < expected) return this.reject(cmd, count, BadAccess.WIDTH, `short buffer, expected ${expected}`);
    return null;
  }

  execute(cmd: number, dataAddr: number, count: number, flags = 0): CcwOutcome {
    try {
      return this.executeInner(cmd & 0xff, dataAddr, count >>> 0, flags);
    } catch (e) {
      // Guest memory faults land here: the data address was not mapped.
      this.bad(BadAccess.MEMORY, cmd, count, String(e));
      return outcome(CcwStatus.PROGRAM_CHECK, count);
    }
  }

  private executeInner(cmd: number, addr: number, count: number, flags: number): CcwOutcome {
    // 4.3.1.1: unsupported commands get a command reject.
    if (!KNOWN_COMMANDS.has(cmd)) return this.reject(cmd, count, BadAccess.OFFSET, 'unknown command');
    if (cmd === CcwCmd.SET_VIRTIO_REV) return this.setRevision(addr, count, flags);
    if (this.rev < 0) {
      // 4.3.2.1.2: a command before SET_VIRTIO_REV comes from a legacy driver; only a
      // transitional device serves it, as revision 0.
      if (!this.transitional) return this.reject(cmd, count, BadAccess.MODE, 'no revision set');
      this.selectRevision(0);
    }
    const mem = this.bus.memory;
    const core = this.coreRef;
    switch (cmd) {
      case CcwCmd.READ_FEAT:
      case CcwCmd.WRITE_FEAT: {
        const bad = this.lengthCheck(cmd, CcwSize.FEATURE_DESC, count, flags);
        if (bad) return bad;
        const index = mem.readU8(addr + 4);
        if (cmd === CcwCmd.READ_FEAT) {
          // 4.3.2.3: little-endian feature words; revision 0 knows only word 0.
          const word = this.rev === 0 && index > 0 ? 0 : core.deviceFeatureWord(index);
          mem.writeU32(addr, word >>> 0, true);
        } else {
          const word = mem.readU32(addr, true);
          if (!(this.rev === 0 && index > 0)) core.setDriverFeatureWord(index, word);
        }
        return outcome(CcwStatus.OK, count - CcwSize.FEATURE_DESC);
      }
      case CcwCmd.READ_CONF:
      case CcwCmd.WRITE_CONF:
        return this.configCommand(cmd, addr, count, flags);
      case CcwCmd.WRITE_STATUS: {
        const bad = this.lengthCheck(cmd, CcwSize.STATUS, count, flags);
        if (bad) return bad;
        const v = mem.readU8(addr);
        if (v === 0) {
          this.reset();
          return outcome(CcwStatus.OK, count - 1);
        }
        core.setStatus(v);
        this.flags.refresh(core);
        // 4.3.2.2: a status the device did not take is answered with a command reject.
        if ((core.status & v) !== v) return this.reject(cmd, count, BadAccess.REFUSED, `status 0x${v.toString(16)} not accepted`);
        return outcome(CcwStatus.OK, count - 1);
      }
      case CcwCmd.READ_STATUS: {
        // 4.3.2.2: revision 2 only.
        if (this.rev < 2) return this.reject(cmd, count, BadAccess.MODE, 'READ_STATUS needs revision 2');
        const bad = this.lengthCheck(cmd, CcwSize.STATUS, count, flags);
        if (bad) return bad;
        mem.writeU8(addr, core.status & 0xff);
        return outcome(CcwStatus.OK, count - 1);
      }
      case CcwCmd.READ_VQ_CONF: {
        const bad = this.lengthCheck(cmd, CcwSize.VQ_CONFIG, count, flags);
        if (bad) return bad;
        const index = mem.readU16(addr, false);
        const max = core.queueRegisters(index) ? (core.device.queueMaxSizes[index] ?? 0) : 0;
        mem.writeU16(addr + 2, max, false);
        return outcome(CcwStatus.OK, count - CcwSize.VQ_CONFIG);
      }
      case CcwCmd.SET_VQ:
        return this.setVq(addr, count, flags);
      case CcwCmd.SET_IND:
      case CcwCmd.SET_CONF_IND: {
        const bad = this.lengthCheck(cmd, CcwSize.INDICATOR, count, flags);
        if (bad) return bad;
        const ind = mem.readAddr(addr, false);
        if (ind < 0 || !mem.isMapped(ind, 8)) return this.reject(cmd, count, BadAccess.MEMORY, 'indicators not in guest memory');
        if (cmd === CcwCmd.SET_CONF_IND) {
          this.configIndicators = ind;
        } else {
          // 4.3.2.6.1: classic and adapter indicators exclude each other.
          if (this.adapterIndicators >= 0) return this.reject(cmd, count, BadAccess.MODE, 'adapter indicators already set');
          if (core.numQueues > 64) return this.reject(cmd, count, BadAccess.VALUE, 'more than 64 queues');
          this.indicators = ind;
        }
        return outcome(CcwStatus.OK, count - CcwSize.INDICATOR);
      }
      case CcwCmd.SET_IND_ADAPTER: {
        const bad = this.lengthCheck(cmd, CcwSize.THININT_AREA, count, flags);
        if (bad) return bad;
        // 4.3.2.6.3: command reject once classic indicators are set.
        if (this.indicators >= 0) return this.reject(cmd, count, BadAccess.MODE, 'classic indicators already set');
        const summary = mem.readAddr(addr, false);
        const area = mem.readAddr(addr + 8, false);
        const bitNr = mem.readAddr(addr + 16, false);
        const isc = mem.readU8(addr + 24);
        const lastByte = bitNr < 0 ? -1 : Math.floor((bitNr + core.numQueues - 1) / 8);
        if (summary < 0 || area < 0 || lastByte < 0 || !mem.isMapped(summary, 1) || !mem.isMapped(area, lastByte + 1)) {
          return this.reject(cmd, count, BadAccess.MEMORY, 'adapter indicators not in guest memory');
        }
        this.summaryIndicator = summary;
        this.adapterIndicators = area;
        this.adapterBit = bitNr;
        this.isc = isc;
        return outcome(CcwStatus.OK, count - CcwSize.THININT_AREA);
      }
      case CcwCmd.VDEV_RESET: {
        const bad = this.lengthCheck(cmd, 0, count, flags);
        if (bad) return bad;
        // 4.3.3.3: the reset is complete (status 0) when the command ends.
        this.reset();
        return OK;
      }
    }
    return this.reject(cmd, count, BadAccess.OFFSET, 'unknown command');
  }

  private setRevision(addr: number, count: number, flags: number): CcwOutcome {
    const cmd = CcwCmd.SET_VIRTIO_REV;
    // 4.3.2.1.1: once set (or implied by a legacy driver), the revision cannot change.
    if (this.rev >= 0) return this.reject(cmd, count, BadAccess.MODE, `revision ${this.rev} already set`);
    const mem = this.bus.memory;
    // struct virtio_rev_info: be16 revision, be16 length, then `length` bytes of data.
    const head = count >= CcwSize.REV_INFO;
    const revision = head ? mem.readU16(addr, false) : 0;
    const length = head ? mem.readU16(addr + 2, false) : 0;
    const bad = this.lengthCheck(cmd, CcwSize.REV_INFO + length, count, flags);
    if (bad) return bad;
    if (revision > this.maxRevision) return this.reject(cmd, count, BadAccess.VALUE, `revision ${revision} not supported`);
    // 4.3.2.1.1: a non-transitional device rejects revision 0.
    if (revision === 0 && !this.transitional) return this.reject(cmd, count, BadAccess.VALUE, 'revision 0 on a non-transitional device');
    // Revisions 0 to 2 carry no data.
    if (length !== 0) return this.reject(cmd, count, BadAccess.VALUE, `revision ${revision} with length ${length}`);
    this.selectRevision(revision);
    return outcome(CcwStatus.OK, count - CcwSize.REV_INFO - length);
  }

  private configCommand(cmd: number, addr: number, count: number, flags: number): CcwOutcome {
    const core = this.coreRef;
    const size = core.device.configSize;
    // 4.3.2.4: the configuration is transmitted from its start; drivers may transfer a prefix.
    if (count > size && (flags & CcwFlag.SLI) === 0) {
      this.bad(BadAccess.WIDTH, cmd, count, `config is ${size} bytes`);
      return outcome(CcwStatus.INCORRECT_LENGTH, count - size);
    }
    const n = Math.min(count, size);
    const mem = this.bus.memory;
    // The CCW's own data address unmapped: a channel program check, as for every other command.
    if (n > 0 && !mem.isMapped(addr, n)) {
      this.bad(BadAccess.MEMORY, cmd, count, 'config buffer not in guest memory');
      return outcome(CcwStatus.PROGRAM_CHECK, count);
    }
    const cur = new Uint8Array(n);
    core.readConfigBytes(0, cur);
    if (cmd === CcwCmd.READ_CONF) {
      mem.write(addr, cur);
    } else {
      const next = mem.slice(addr, n);
      // Write only what changed, in naturally aligned pieces, so read-only fields stay quiet.
      let i = 0;
      while (i < n) {
        if (next[i] === cur[i]) {
          i++;
          continue;
        }
        let w = 1;
        for (const cand of [4, 2]) {
          if (i % cand === 0 && i + cand <= n) {
            w = cand;
            break;
          }
        }
        let v = 0;
        for (let k = w - 1; k >= 0; k--) v = v * 256 + next[i + k]!;
        writeConfigValue(core, i, w, v);
        i += w;
      }
    }
    return outcome(CcwStatus.OK, count - n);
  }

  private setVq(addr: number, count: number, flags: number): CcwOutcome {
    const cmd = CcwCmd.SET_VQ;
    const legacy = this.rev === 0;
    const bad = this.lengthCheck(cmd, legacy ? CcwSize.VQ_INFO_LEGACY : CcwSize.VQ_INFO, count, flags);
    if (bad) return bad;
    const mem = this.bus.memory;
    const core = this.coreRef;
    let refusal: QueueRefusal | null;
    let index: number;
    if (legacy) {
      // struct vq_info_block_legacy: be64 queue, be32 align, be16 index, be16 num.
      const queue = mem.readAddr(addr, false);
      const align = mem.readU32(addr + 8, false);
      index = mem.readU16(addr + 12, false);
      const size = mem.readU16(addr + 14, false);
      if (!core.queueRegisters(index)) return this.reject(cmd, count, BadAccess.NO_QUEUE, `queue ${index}`);
      if (queue === 0) return this.stopQueue(index);
      if (queue < 0) return this.reject(cmd, count, BadAccess.VALUE, `queue ${index} address`);
      // 4.3.2.5.1: one contiguous legacy ring at `queue`, the used ring aligned to `align`.
      refusal = core.setQueueSize(index, size) ?? core.setQueueLegacyAddress(index, queue, align);
    } else {
      // struct vq_info_block: be64 desc, be32 res0 (ignored), be16 index, be16 size, be64 driver, be64 device.
      const desc = mem.readAddr(addr, false);
      index = mem.readU16(addr + 12, false);
      const size = mem.readU16(addr + 14, false);
      const driver = mem.readAddr(addr + 16, false);
      const device = mem.readAddr(addr + 24, false);
      if (!core.queueRegisters(index)) return this.reject(cmd, count, BadAccess.NO_QUEUE, `queue ${index}`);
      if (desc === 0) return this.stopQueue(index);
      refusal =
        core.setQueueSize(index, size) ??
        core.setQueueAddress(index, 'descAddr', desc) ??
        core.setQueueAddress(index, 'driverAddr', driver) ??
        core.setQueueAddress(index, 'deviceAddr', device) ??
        core.setQueueEnabled(index);
    }
    if (refusal !== null) return this.reject(cmd, count, badAccessForRefusal(refusal), refusal.message);
    return outcome(CcwStatus.OK, count - (legacy ? CcwSize.VQ_INFO_LEGACY : CcwSize.VQ_INFO));
  }

  /** 4.3.2.5: a zero address stops the queue; the core resets its registers. */
  private stopQueue(index: number): CcwOutcome {
    if (this.coreRef.queueRegisters(index)?.enabled) this.coreRef.resetQueue(index);
    return OK;
  }

  hypercallNotify(gpr2: number, gpr3: number, _gpr4 = 0): number {
    try {
      // 4.3.3.2.1: bits 0-31 (the high half) of GPR2 are ignored.
      const schid = gpr2 % 0x1_0000_0000 >>> 0;
      if (this.opts.subchannelId !== undefined && schid !== this.opts.subchannelId >>> 0) {
        this.bad(BadAccess.VALUE, 0x500, 0, `subchannel 0x${schid.toString(16)}`);
        return EINVAL;
      }
      const data = gpr3 % 0x1_0000_0000 >>> 0;
      const index = this.flags.notificationData ? data & 0xffff : data;
      const q = this.coreRef.queueRegisters(index);
      if (!q) {
        this.bad(BadAccess.NO_QUEUE, 0x500, 0, `queue ${index}`);
        return EINVAL;
      }
      if (!q.enabled) {
        this.bad(BadAccess.QUEUE_DISABLED, 0x500, 0, `queue ${index}`);
        return EINVAL;
      }
      if (this.flags.notificationData) this.coreRef.notifyQueue(index, data);
      else this.coreRef.notifyQueue(index);
      // 4.3.3.2.1: the cookie is optional; this device needs none.
      return 0;
    } catch (e) {
      this.bad(BadAccess.REFUSED, 0x500, 0, String(e));
      return EINVAL;
    }
  }

  // ---- InterruptSink: indicators and interrupts ---------------------------------------------

  usedBuffer(queueIndex: number): void {
    const mem = this.bus.memory;
    try {
      if (this.adapterIndicators >= 0) {
        // 4.3.3.1.2: bit numbers count from the left (MSB of the first byte is bit 0).
        const bit = this.adapterBit + queueIndex;
        const a = this.adapterIndicators + Math.floor(bit / 8);
        mem.writeU8(a, mem.readU8(a) | (0x80 >>> (bit & 7)));
        // Only interrupt when the summary indicator was not already set (4.3.3.1.2.1).
        const was = mem.readU8(this.summaryIndicator);
        mem.writeU8(this.summaryIndicator, 1);
        if (was === 0) this.bus.adapterInterrupt?.(this.isc);
        return;
      }
      if (this.indicators >= 0) {
        // 4.3.3.1.1: bit `queueIndex` of the big-endian 64-bit indicator value.
        const a = this.indicators + 7 - (queueIndex >>> 3);
        mem.writeU8(a, mem.readU8(a) | (1 << (queueIndex & 7)));
        this.bus.ioInterrupt?.();
      }
    } catch (e) {
      this.bad(BadAccess.MEMORY, 0, 0, `indicator write: ${String(e)}`);
    }
  }

  configChange(): void {
    if (this.configIndicators < 0) return;
    const mem = this.bus.memory;
    try {
      // 4.3.3.1.1: bit 0 of the configuration indicators, then an I/O interrupt.
      const a = this.configIndicators + 7;
      mem.writeU8(a, mem.readU8(a) | 1);
      this.bus.ioInterrupt?.();
    } catch (e) {
      this.bad(BadAccess.MEMORY, 0, 0, `config indicator write: ${String(e)}`);
    }
  }
}
