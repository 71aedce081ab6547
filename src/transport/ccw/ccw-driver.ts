/**
 * 4.3 Virtio Over Channel I/O, driver side: negotiates the revision (highest first, 4.3.2.1.2),
 * sets up classic or adapter indicators, and implements DriverTransport for VirtioDriver with
 * channel commands and the notification hypercall. Interrupts arrive through `handleIoInterrupt`
 * (classic indicators, configuration changes) and `handleAdapterInterrupt`.
 *
 * Channel commands need guest buffers: the driver owns a scratch area of `CCW_DRIVER_SCRATCH`
 * bytes plus the configuration size, given at construction.
 */
import type { DriverInterruptHandler, DriverQueueAddresses, DriverTransport } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { F } from '../../spec/features.js';
import { legacySplitLayout } from '../../spec/ring.js';
import { CCW_CONTROL_UNIT_TYPE, CCW_LEGACY_ALIGN, CCW_MAX_REVISION, CcwCmd, type CcwOutcome, CcwSize, CcwStatus } from './constants.js';
import type { CcwChannel } from './ccw-device.js';

/** Scratch bytes the driver needs besides the configuration buffer. */
export const CCW_DRIVER_SCRATCH = 128;
const IND = 0;
const CONF_IND = 8;
const SUMMARY = 16;
const ADAPTER_IND = 24;
const DATA = 64;
const MAX_QUEUES = 64;

/** Options of CcwDriverTransport. */
export interface CcwDriverOptions {
  /** Guest address of the scratch area (8-byte aligned). */
  readonly scratchAddr: number;
  /** Scratch area size: at least CCW_DRIVER_SCRATCH + the device's config size. */
  readonly scratchSize: number;
  /**
   * Highest revision to try (default 2). 0 behaves as a legacy driver: no SET_VIRTIO_REV at all.
   */
  readonly revision?: number;
  /** Use two-stage adapter indicators (default false: classic indicators). */
  readonly adapter?: boolean;
  /** Interruption subclass for adapter interrupts. */
  readonly isc?: number;
  /** Subchannel id passed in GPR2 of the notification hypercall. */
  readonly subchannelId?: number;
  /** Revision 0 only: true for a little-endian guest (default false, as s390 is big-endian). */
  readonly guestLittleEndian?: boolean;
  /**
   * Whether the driver also drives legacy devices (default true). A transitional driver whose
   * revisions are all rejected operates the device at revision 0 (driver/transport-ccw/7); a
   * non-transitional one (false) stops there: the constructor throws TRANSPORT_BAD_ACCESS and
   * issues nothing more (driver/transport-ccw/6).
   */
  readonly transitional?: boolean;
}

/**
 * The driver side of virtio over Channel I/O (4.3): channel programs (CCWs) for features, status,
 * config, queues and indicators, at the revision negotiated.
 */
export class CcwDriverTransport implements DriverTransport {
  readonly deviceId: number;
  /** The virtio-ccw revision negotiated (0 legacy, 1, 2). */
  readonly revision: number;
  readonly legacy: boolean;
  readonly littleEndian: boolean;
  private handler: DriverInterruptHandler | null = null;
  private notificationData = false;
  private status = 0;
  private indicatorsSet = false;
  private readonly active = new Set<number>();
  private cookie = 0;
  private queueCount = -1;
  private readonly base: number;
  private readonly dataSize: number;

  constructor(
    private readonly ch: CcwChannel,
    readonly memory: GuestMemory,
    private readonly opts: CcwDriverOptions,
  ) {
    // 4.3.1.2: match on the control unit type; the control unit model is the virtio device id.
    if (ch.controlUnitType !== CCW_CONTROL_UNIT_TYPE) {
      throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `not a virtio-ccw device (CU type 0x${ch.controlUnitType.toString(16)})`);
    }
    if (opts.scratchSize < CCW_DRIVER_SCRATCH || !memory.isMapped(opts.scratchAddr, opts.scratchSize) || opts.scratchAddr % 8 !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'CCW scratch area missing, unmapped or misaligned');
    }
    this.deviceId = ch.controlUnitModel;
    this.base = opts.scratchAddr;
    this.dataSize = opts.scratchSize - DATA;
    const want = Math.min(opts.revision ?? CCW_MAX_REVISION, CCW_MAX_REVISION);
    let rev = 0;
    if (want > 0) {
      // 4.3.2.1.2: highest revision first, lower ones after a command reject.
      rev = -1;
      for (let r = want; r >= 1 && rev < 0; r--) {
        memory.writeU16(this.base + DATA, r, false);
        memory.writeU16(this.base + DATA + 2, 0, false);
        if (this.exec(CcwCmd.SET_VIRTIO_REV, CcwSize.REV_INFO).status === CcwStatus.OK) rev = r;
      }
      // 4.3.2.1.3: a transitional driver then operates the device at revision 0; a
      // non-transitional one stops trying to operate it (driver/transport-ccw/6).
      if (rev < 0 && opts.transitional === false) {
        throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `the device rejected every virtio-ccw revision from ${want} to 1; a non-transitional driver does not operate it`);
      }
      if (rev < 0) rev = 0;
    }
    this.revision = rev;
    this.legacy = rev === 0;
    this.littleEndian = this.legacy ? (opts.guestLittleEndian ?? false) : true;
  }

  private exec(cmd: number, count: number): CcwOutcome {
    return this.ch.execute(cmd, this.base + DATA, count);
  }

  private must(cmd: number, count: number, what: string): void {
    const r = this.exec(cmd, count);
    if (r.status !== CcwStatus.OK) throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `${what}: ${r.status}`);
  }

  /** Sets up queue and configuration indicators (again after every reset). */
  private ensureIndicators(): void {
    if (this.indicatorsSet) return;
    const m = this.memory;
    m.fill(this.base, DATA, 0);
    if (this.opts.adapter) {
      m.writeAddr(this.base + DATA, this.base + SUMMARY, false);
      m.writeAddr(this.base + DATA + 8, this.base + ADAPTER_IND, false);
      m.writeAddr(this.base + DATA + 16, 0, false);
      m.writeU8(this.base + DATA + 24, this.opts.isc ?? 3);
      this.must(CcwCmd.SET_IND_ADAPTER, CcwSize.THININT_AREA, 'SET_IND_ADAPTER');
    } else {
      m.writeAddr(this.base + DATA, this.base + IND, false);
      this.must(CcwCmd.SET_IND, CcwSize.INDICATOR, 'SET_IND');
    }
    m.writeAddr(this.base + DATA, this.base + CONF_IND, false);
    this.must(CcwCmd.SET_CONF_IND, CcwSize.INDICATOR, 'SET_CONF_IND');
    this.indicatorsSet = true;
  }

  getStatus(): number {
    // 4.3.2.2: READ_STATUS exists from revision 2; before that the driver remembers.
    if (this.revision >= 2) {
      this.must(CcwCmd.READ_STATUS, CcwSize.STATUS, 'READ_STATUS');
      return this.memory.readU8(this.base + DATA);
    }
    return this.status;
  }

  setStatus(value: number): void {
    if (value === 0) {
      // 4.3.3.3: the reset is complete when VDEV_RESET ends; indicators are released.
      this.must(CcwCmd.VDEV_RESET, 0, 'VDEV_RESET');
      this.status = 0;
      this.indicatorsSet = false;
      this.active.clear();
      return;
    }
    this.ensureIndicators();
    this.memory.writeU8(this.base + DATA, value);
    // 4.3.2.2.1: a command reject means the status kept its previous value.
    if (this.exec(CcwCmd.WRITE_STATUS, CcwSize.STATUS).status === CcwStatus.OK) this.status = value;
  }

  getDeviceFeatures(): bigint {
    let f = 0n;
    const words = this.legacy ? 1 : 2;
    for (let w = 0; w < words; w++) {
      this.memory.writeU32(this.base + DATA, 0);
      this.memory.writeU8(this.base + DATA + 4, w);
      this.must(CcwCmd.READ_FEAT, CcwSize.FEATURE_DESC, 'READ_FEAT');
      f |= BigInt(this.memory.readU32(this.base + DATA, true)) << BigInt(32 * w);
    }
    return f;
  }

  setDriverFeatures(features: bigint): void {
    this.notificationData = (features & F.NOTIFICATION_DATA) !== 0n;
    const words = this.legacy ? 1 : 2;
    for (let w = 0; w < words; w++) {
      this.memory.writeU32(this.base + DATA, Number((features >> BigInt(32 * w)) & 0xffff_ffffn), true);
      this.memory.writeU8(this.base + DATA + 4, w);
      this.must(CcwCmd.WRITE_FEAT, CcwSize.FEATURE_DESC, 'WRITE_FEAT');
    }
  }

  configGeneration(): number {
    // CCW has no generation: each READ_CONF transfers the configuration in one piece.
    return 0;
  }

  readConfig(offset: number, dst: Uint8Array): void {
    const n = offset + dst.length;
    if (n > this.dataSize) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'config beyond the CCW scratch area');
    this.must(CcwCmd.READ_CONF, n, 'READ_CONF');
    this.memory.read(this.base + DATA + offset, dst);
  }

  writeConfig(offset: number, src: Uint8Array): void {
    const n = offset + src.length;
    if (n > this.dataSize) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'config beyond the CCW scratch area');
    // The whole prefix travels: read it, patch it, write it back.
    this.must(CcwCmd.READ_CONF, n, 'READ_CONF');
    this.memory.write(this.base + DATA + offset, src);
    this.must(CcwCmd.WRITE_CONF, n, 'WRITE_CONF');
  }

  numQueues(): number {
    if (this.queueCount < 0) {
      let n = 0;
      while (n < MAX_QUEUES && this.queueMaxSize(n) > 0) n++;
      this.queueCount = n;
    }
    return this.queueCount;
  }

  queueMaxSize(index: number): number {
    this.memory.writeU16(this.base + DATA, index, false);
    this.memory.writeU16(this.base + DATA + 2, 0, false);
    if (this.exec(CcwCmd.READ_VQ_CONF, CcwSize.VQ_CONFIG).status !== CcwStatus.OK) return 0;
    return this.memory.readU16(this.base + DATA + 2, false);
  }

  setupQueue(index: number, a: DriverQueueAddresses): void {
    this.ensureIndicators();
    const m = this.memory;
    const d = this.base + DATA;
    if (this.legacy) {
      const l = legacySplitLayout(a.size, CCW_LEGACY_ALIGN);
      if (a.driverAddr !== a.descAddr + l.avail || a.deviceAddr !== a.descAddr + l.used) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'revision 0 needs the contiguous legacy ring layout');
      }
      m.writeAddr(d, a.descAddr, false);
      m.writeU32(d + 8, CCW_LEGACY_ALIGN, false);
      m.writeU16(d + 12, index, false);
      m.writeU16(d + 14, a.size, false);
      this.must(CcwCmd.SET_VQ, CcwSize.VQ_INFO_LEGACY, `SET_VQ ${index}`);
    } else {
      m.writeAddr(d, a.descAddr, false);
      m.writeU32(d + 8, 0, false);
      m.writeU16(d + 12, index, false);
      m.writeU16(d + 14, a.size, false);
      m.writeAddr(d + 16, a.driverAddr, false);
      m.writeAddr(d + 24, a.deviceAddr, false);
      this.must(CcwCmd.SET_VQ, CcwSize.VQ_INFO, `SET_VQ ${index}`);
    }
    this.active.add(index);
  }

  resetQueue(_index: number): void {
    // 4.3.5: RING_RESET is reserved for future use on channel I/O.
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'queue reset is not defined for virtio-ccw');
  }

  notify(index: number, data?: number): void {
    // 4.3.3.2.2: pass back the cookie of the previous notification.
    // 4.3.3.2: the NOTIFICATION_DATA value only when negotiated, else the queue index.
    const r = this.ch.hypercallNotify(this.opts.subchannelId ?? 0, this.notificationData ? (data ?? index) : index, this.cookie);
    if (r >= 0) this.cookie = r;
  }

  setInterruptHandler(h: DriverInterruptHandler): void {
    this.handler = h;
  }

  /** Classic I/O interrupt: consume queue and configuration indicators. */
  handleIoInterrupt(): void {
    const m = this.memory;
    const h = this.handler;
    const conf = m.readU8(this.base + CONF_IND + 7);
    if (conf & 1) {
      m.writeU8(this.base + CONF_IND + 7, conf & ~1);
      h?.configChange();
    }
    if (this.opts.adapter) return;
    for (let q = 0; q < MAX_QUEUES; q++) {
      const a = this.base + IND + 7 - (q >>> 3);
      const b = m.readU8(a);
      const mask = 1 << (q & 7);
      if (b & mask) {
        m.writeU8(a, b & ~mask);
        h?.used(q);
      }
    }
  }

  /** Adapter I/O interrupt: clear the summary indicator first (4.3.3.1.2.2), then the queues. */
  handleAdapterInterrupt(_isc: number): void {
    const m = this.memory;
    m.writeU8(this.base + SUMMARY, 0);
    for (let q = 0; q < MAX_QUEUES; q++) {
      const a = this.base + ADAPTER_IND + (q >>> 3);
      const b = m.readU8(a);
      const mask = 0x80 >>> (q & 7);
      if (b & mask) {
        m.writeU8(a, b & ~mask);
        this.handler?.used(q);
      }
    }
  }
}
