/**
 * 4.2.3 Virtio Over MMIO, driver side: discovers the device through its register window and
 * implements DriverTransport for VirtioDriver, for version 2 and the legacy version 1.
 */
import type { DriverInterruptHandler, DriverQueueAddresses, DriverTransport, QueueResetWaitOptions } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { F } from '../../spec/features.js';
import { LEGACY_QUEUE_ALIGN, legacySplitLayout } from '../../spec/ring.js';
import { type RegisterWindow, hi32, join64, lo32, readWindowBytes, writeWindowBytes } from '../bus.js';
import { waitForRegister } from '../register-wait.js';
import type { SharedMemoryRegionInfo } from '../shared-memory.js';
import { MMIO_MAGIC, MmioInterrupt, MmioReg } from './registers.js';

/** Shared memory ids probed by `sharedMemoryRegions` unless told otherwise (PCI's cap.id range). */
const DEFAULT_SHM_IDS = 256;

/** Queues probed at most when counting them (MMIO has no queue count register). */
const MAX_PROBED_QUEUES = 1024;
/** Reads of Status / QueueReset while waiting for a reset to finish. */
const RESET_POLLS = 1000;

/** Options of MmioDriverTransport. */
export interface MmioDriverOptions {
  /** Legacy only: false for a big-endian guest. */
  readonly guestLittleEndian?: boolean;
}

/**
 * The driver side of virtio over MMIO at register level (version 2 or legacy), over a register
 * window.
 */
export class MmioDriverTransport implements DriverTransport {
  readonly deviceId: number;
  /** The Version register: 2 modern, 1 legacy. */
  readonly version: number;
  readonly legacy: boolean;
  readonly littleEndian: boolean;
  private handler: DriverInterruptHandler | null = null;
  private notificationData = false;
  private readonly active = new Set<number>();
  private queueCount = -1;

  /**
   * Discovery as 4.2.3.1.1 wants it: null for a placeholder window (DeviceID 0), which the
   * driver ignores without reporting an error (driver/transport-mmio/6) and without writing any
   * register; a transport otherwise. A window that is not virtio-mmio (magic, version) still
   * throws TRANSPORT_BAD_ACCESS, as the constructor does.
   */
  static probe(regs: RegisterWindow, memory: GuestMemory, opts: MmioDriverOptions = {}): MmioDriverTransport | null {
    if (regs.read(MmioReg.MAGIC_VALUE, 4) === MMIO_MAGIC) {
      const v = regs.read(MmioReg.VERSION, 4);
      if ((v === 1 || v === 2) && regs.read(MmioReg.DEVICE_ID, 4) === 0) return null;
    }
    return new MmioDriverTransport(regs, memory, opts);
  }

  /** Throws TRANSPORT_BAD_ACCESS for anything but a virtio-mmio device (use `probe` to skip placeholders). */
  constructor(
    private readonly regs: RegisterWindow,
    readonly memory: GuestMemory,
    opts: MmioDriverOptions = {},
  ) {
    // 4.2.3.1.1: check MagicValue and Version first; DeviceID 0 means no device here.
    const magic = regs.read(MmioReg.MAGIC_VALUE, 4);
    if (magic !== MMIO_MAGIC) {
      throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `not a virtio-mmio device (magic 0x${magic.toString(16)})`);
    }
    this.version = regs.read(MmioReg.VERSION, 4);
    if (this.version !== 1 && this.version !== 2) {
      throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `unsupported virtio-mmio version ${this.version}`);
    }
    this.deviceId = regs.read(MmioReg.DEVICE_ID, 4);
    if (this.deviceId === 0) throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, 'virtio-mmio placeholder (device ID 0)');
    this.legacy = this.version === 1;
    this.littleEndian = this.legacy ? (opts.guestLittleEndian ?? true) : true;
    if (this.legacy) regs.write(MmioReg.GUEST_PAGE_SIZE, 4, LEGACY_QUEUE_ALIGN);
  }

  getStatus(): number {
    return this.regs.read(MmioReg.STATUS, 4) & 0xff;
  }

  setStatus(value: number): void {
    this.regs.write(MmioReg.STATUS, 4, value);
    if (value === 0) {
      this.active.clear();
      for (let i = 0; i < RESET_POLLS && this.getStatus() !== 0; i++);
      if (this.getStatus() !== 0) throw new VirtioError(ErrorCode.TIMEOUT, 'device did not finish its reset');
      // Legacy devices forget GuestPageSize only with the window; write it again anyway.
      if (this.legacy) this.regs.write(MmioReg.GUEST_PAGE_SIZE, 4, LEGACY_QUEUE_ALIGN);
    }
  }

  getDeviceFeatures(): bigint {
    let f = 0n;
    const words = this.legacy ? 1 : 2;
    for (let w = 0; w < words; w++) {
      this.regs.write(MmioReg.DEVICE_FEATURES_SEL, 4, w);
      f |= BigInt(this.regs.read(MmioReg.DEVICE_FEATURES, 4) >>> 0) << BigInt(32 * w);
    }
    return f;
  }

  setDriverFeatures(features: bigint): void {
    this.notificationData = (features & F.NOTIFICATION_DATA) !== 0n;
    const words = this.legacy ? 1 : 2;
    for (let w = 0; w < words; w++) {
      this.regs.write(MmioReg.DRIVER_FEATURES_SEL, 4, w);
      this.regs.write(MmioReg.DRIVER_FEATURES, 4, Number((features >> BigInt(32 * w)) & 0xffff_ffffn));
    }
  }

  configGeneration(): number {
    // Legacy devices have no generation (2.5.4: the driver reads twice instead).
    return this.legacy ? 0 : this.regs.read(MmioReg.CONFIG_GENERATION, 4);
  }

  readConfig(offset: number, dst: Uint8Array): void {
    readWindowBytes(this.regs, MmioReg.CONFIG + offset, dst);
  }

  writeConfig(offset: number, src: Uint8Array): void {
    writeWindowBytes(this.regs, MmioReg.CONFIG + offset, src);
  }

  numQueues(): number {
    if (this.queueCount < 0) {
      let n = 0;
      while (n < MAX_PROBED_QUEUES) {
        this.regs.write(MmioReg.QUEUE_SEL, 4, n);
        if (this.regs.read(MmioReg.QUEUE_SIZE_MAX, 4) === 0) break;
        n++;
      }
      this.queueCount = n;
    }
    return this.queueCount;
  }

  queueMaxSize(index: number): number {
    this.regs.write(MmioReg.QUEUE_SEL, 4, index);
    return this.regs.read(MmioReg.QUEUE_SIZE_MAX, 4);
  }

  setupQueue(index: number, a: DriverQueueAddresses): void {
    const r = this.regs;
    r.write(MmioReg.QUEUE_SEL, 4, index);
    if (this.legacy) {
      // 4.2.4: one contiguous ring at a page, used ring at QueueAlign.
      const l = legacySplitLayout(a.size, LEGACY_QUEUE_ALIGN);
      if (a.descAddr % LEGACY_QUEUE_ALIGN !== 0 || a.driverAddr !== a.descAddr + l.avail || a.deviceAddr !== a.descAddr + l.used) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'legacy MMIO needs the contiguous legacy ring layout');
      }
      r.write(MmioReg.QUEUE_SIZE, 4, a.size);
      r.write(MmioReg.QUEUE_ALIGN, 4, LEGACY_QUEUE_ALIGN);
      r.write(MmioReg.QUEUE_PFN, 4, a.descAddr / LEGACY_QUEUE_ALIGN);
      if (r.read(MmioReg.QUEUE_PFN, 4) === 0) throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `device refused queue ${index}`);
    } else {
      if (r.read(MmioReg.QUEUE_READY, 4) !== 0) throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `queue ${index} already ready`);
      r.write(MmioReg.QUEUE_SIZE, 4, a.size);
      r.write(MmioReg.QUEUE_DESC_LOW, 4, lo32(a.descAddr));
      r.write(MmioReg.QUEUE_DESC_HIGH, 4, hi32(a.descAddr));
      r.write(MmioReg.QUEUE_DRIVER_LOW, 4, lo32(a.driverAddr));
      r.write(MmioReg.QUEUE_DRIVER_HIGH, 4, hi32(a.driverAddr));
      r.write(MmioReg.QUEUE_DEVICE_LOW, 4, lo32(a.deviceAddr));
      r.write(MmioReg.QUEUE_DEVICE_HIGH, 4, hi32(a.deviceAddr));
      r.write(MmioReg.QUEUE_READY, 4, 1);
      if (r.read(MmioReg.QUEUE_READY, 4) !== 1) throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `device refused queue ${index}`);
    }
    this.active.add(index);
  }

  /**
   * 2.6.1 queue reset, waiting synchronously: RESET_POLLS reads of QueueReset, then VirtioError
   * TIMEOUT. A device whose teardown finishes later (an I/O it holds) needs `resetQueueAsync`.
   */
  resetQueue(index: number): void {
    this.startQueueReset(index);
    // 4.2.2: the reset is complete once QueueReset reads 0 (driver/transport-mmio/14).
    let done = false;
    for (let i = 0; i < RESET_POLLS && !done; i++) done = this.regs.read(MmioReg.QUEUE_RESET, 4) === 0;
    if (!done) throw new VirtioError(ErrorCode.TIMEOUT, `queue ${index} reset did not complete`);
    this.active.delete(index);
  }

  /**
   * 2.6.1 queue reset, waiting without blocking the event loop until QueueReset reads 0
   * (driver/transport-mmio/14): a device may keep the reset ongoing while it finishes its
   * teardown (device/transport-mmio/11). Rejects with VirtioError TIMEOUT after
   * `opts.timeoutMs`, the queue then left as it is.
   */
  async resetQueueAsync(index: number, opts: QueueResetWaitOptions = {}): Promise<void> {
    this.startQueueReset(index);
    await waitForRegister(
      () => {
        // QueueSel is shared: other code may have selected another queue meanwhile.
        this.regs.write(MmioReg.QUEUE_SEL, 4, index);
        return this.regs.read(MmioReg.QUEUE_RESET, 4) === 0;
      },
      `queue ${index} reset`,
      opts.timeoutMs,
    );
    this.active.delete(index);
  }

  /** Selects queue `index` and writes 1 to QueueReset. */
  private startQueueReset(index: number): void {
    if (this.legacy) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'no queue reset in legacy MMIO');
    this.regs.write(MmioReg.QUEUE_SEL, 4, index);
    this.regs.write(MmioReg.QUEUE_RESET, 4, 1);
  }

  /**
   * Stops using queue `index` without RING_RESET (4.2.2 QueueReady): writes 0 to QueueReady and
   * reads it back until the device presents 0 (driver/transport-mmio/11), so no access to the
   * ring is in flight once this returns and its memory may be freed. Throws VirtioError TIMEOUT
   * when the device keeps presenting 1, INVALID_ARGUMENT on a legacy device (no QueueReady).
   */
  stopQueue(index: number): void {
    if (this.legacy) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'no QueueReady in legacy MMIO');
    this.regs.write(MmioReg.QUEUE_SEL, 4, index);
    this.regs.write(MmioReg.QUEUE_READY, 4, 0);
    let stopped = false;
    for (let i = 0; i < RESET_POLLS && !stopped; i++) stopped = this.regs.read(MmioReg.QUEUE_READY, 4) === 0;
    if (!stopped) throw new VirtioError(ErrorCode.TIMEOUT, `queue ${index} still ready after writing 0 to QueueReady`);
    this.active.delete(index);
  }

  /**
   * 4.2.2 / 2.10: shared memory region `id` (SHMSel, then SHMLen and SHMBase), or null when the
   * device has none with that id (SHMLen reads -1, all ones). Only a driver that expects shared
   * memory calls this (driver/transport-mmio/19); legacy devices have no such registers.
   */
  sharedMemoryRegion(id: number): SharedMemoryRegionInfo | null {
    if (this.legacy) return null;
    const r = this.regs;
    r.write(MmioReg.SHM_SEL, 4, id);
    const lenLo = r.read(MmioReg.SHM_LEN_LOW, 4) >>> 0;
    const lenHi = r.read(MmioReg.SHM_LEN_HIGH, 4) >>> 0;
    if (lenLo === 0xffff_ffff && lenHi === 0xffff_ffff) return null;
    const length = join64(lenLo, lenHi);
    const base = join64(r.read(MmioReg.SHM_BASE_LOW, 4), r.read(MmioReg.SHM_BASE_HIGH, 4));
    // A region past 2^53 cannot be addressed here: treated as absent.
    if (length < 0 || base < 0) return null;
    return { id, base, length };
  }

  /** The regions with ids 0..maxIds-1 (MMIO has no region count: each id is asked for). */
  sharedMemoryRegions(maxIds = DEFAULT_SHM_IDS): SharedMemoryRegionInfo[] {
    const out: SharedMemoryRegionInfo[] = [];
    for (let id = 0; id < maxIds; id++) {
      const r = this.sharedMemoryRegion(id);
      if (r) out.push(r);
    }
    return out;
  }

  notify(index: number, data?: number): void {
    // 2.9: the NOTIFICATION_DATA value only when negotiated, else the queue index.
    this.regs.write(MmioReg.QUEUE_NOTIFY, 4, this.notificationData ? (data ?? index) : index);
  }

  setInterruptHandler(h: DriverInterruptHandler): void {
    this.handler = h;
  }

  /**
   * The IRQ handler (4.2.3.4): reads InterruptStatus, acknowledges what it saw, then reports a
   * used buffer on every active queue and/or a configuration change.
   */
  handleInterrupt(): void {
    const st = this.regs.read(MmioReg.INTERRUPT_STATUS, 4) & (MmioInterrupt.USED_BUFFER | MmioInterrupt.CONFIG_CHANGE);
    if (st === 0) return;
    this.regs.write(MmioReg.INTERRUPT_ACK, 4, st);
    const h = this.handler;
    if (!h) return;
    if (st & MmioInterrupt.CONFIG_CHANGE) h.configChange();
    if (st & MmioInterrupt.USED_BUFFER) for (const q of this.active) h.used(q);
  }
}
