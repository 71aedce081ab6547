/**
 * 4.2 Virtio Over MMIO, device side: the register window (version 2, and the legacy version 1
 * with GuestPageSize / QueueAlign / QueuePFN), InterruptStatus with a level-triggered IRQ,
 * ConfigGeneration, shared memory regions and QueueReset.
 *
 * The driver is untrusted: `read` and `write` never throw. An access the register map does not
 * define reads as 0 and is otherwise ignored (4.2.2: the driver MUST NOT make it, so the device
 * may answer as it likes), and is reported to `onBadAccess`.
 */
import type { DeviceCoreApi, InterruptSink, QueueArea, QueueRefusal, QueueRegisters } from '../../device/types.js';
import {
  BadAccess,
  type BadAccessListener,
  type CoreFactory,
  type RegisterWindow,
  type TransportBus,
  TransportFeatureFlags,
  badAccessForRefusal,
  hi32,
  join64,
  lo32,
  notifiedQueue,
  readConfigValue,
  writeConfigValue,
} from '../bus.js';
import { placeSharedMemory } from '../shared-memory.js';
import { MMIO_MAGIC, MMIO_VENDOR_ID, MmioInterrupt, MmioReg } from './registers.js';

/** A shared memory region as the MMIO transport presents it: at guest physical `base`. */
export interface MmioSharedMemoryRegion {
  /** The region's shmid (2.10), the value a driver writes to SHMSel (4.2.2) to select it. */
  readonly id: number;
  /** Guest physical address of the region. */
  readonly base: number;
  /** Length of the region in bytes (what SHMLenLow/High report). */
  readonly length: number;
  /** The host memory behind it (the emulator maps it at `base`), when the device has it. */
  readonly memory?: Uint8Array;
}

/** Options of MmioDeviceTransport. */
export interface MmioDeviceOptions {
  /** 2 (default, virtio 1.x) or 1 (legacy). */
  readonly version?: 1 | 2;
  /** Legacy only: false for a big-endian guest (rings and config in guest endian). */
  readonly guestLittleEndian?: boolean;
  /**
   * Guest physical address where the device's shared memory regions (2.10,
   * `VirtioDevice.sharedMemoryRegions`) are presented, one after the other, page-aligned; the
   * emulator maps `sharedMemoryRegions` there. Without it no region is presented.
   */
  readonly sharedMemoryBase?: number;
  /** VendorID register value (default the virtio vendor id). */
  readonly vendorId?: number;
  /** Told of every access the transport refused. */
  readonly onBadAccess?: BadAccessListener;
}

/**
 * The device side of virtio over MMIO (4.2) at register level, version 2 or legacy (1): the
 * emulator calls `read` and `write` for the guest's accesses to the device's window, and the
 * transport drives the device's DeviceCore.
 */
export class MmioDeviceTransport implements RegisterWindow, InterruptSink {
  /** The register layout served: 2 (modern) or 1 (legacy). */
  readonly version: 1 | 2;
  /** The device core the registers drive, made by the factory for the layout `version` selects. */
  readonly core: DeviceCoreApi;
  /** Size of the register window including the device configuration space. */
  readonly windowSize: number;
  /** Count of refused accesses (for tests and diagnostics). */
  badAccesses = 0;

  private interruptStatus = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private queueSel = 0;
  private shmSel = 0;
  /** 4.2.2 / 2.10: the regions presented (ids up to SHMSel's 32 bits). */
  readonly sharedMemoryRegions: readonly MmioSharedMemoryRegion[];
  /** Legacy registers. */
  private guestPageSize = 0;
  private readonly queueAlign: number[];
  /** Derived from the negotiated features when the status changes (no BigInt per access). */
  private readonly flags = new TransportFeatureFlags();
  private readonly scratch = new Uint8Array(8);
  private readonly onBad: BadAccessListener | undefined;

  constructor(
    private readonly bus: TransportBus,
    factory: CoreFactory,
    private readonly opts: MmioDeviceOptions = {},
  ) {
    this.version = opts.version ?? 2;
    const legacy = this.version === 1;
    this.core = factory(this, { legacy, littleEndian: legacy ? (opts.guestLittleEndian ?? true) : true });
    this.windowSize = MmioReg.CONFIG + this.core.device.configSize;
    this.queueAlign = new Array<number>(this.core.numQueues).fill(4096);
    this.onBad = opts.onBadAccess;
    const base = opts.sharedMemoryBase;
    // Legacy devices have no shared memory registers (4.2.4).
    this.sharedMemoryRegions =
      base === undefined || legacy
        ? []
        : placeSharedMemory(this.core.device.sharedMemoryRegions, 0xffff_ffff).map((r) => ({
            id: r.id,
            base: base + r.offset,
            length: r.length,
            ...(r.memory === undefined ? {} : { memory: r.memory }),
          }));
  }

  /** Current InterruptStatus (for tests). */
  get interruptStatusValue(): number {
    return this.interruptStatus;
  }

  private bad(reason: BadAccess, offset: number, width: number, write: boolean, detail?: string): void {
    this.badAccesses++;
    try {
      this.onBad?.({ reason, region: 'mmio', offset, width, write, ...(detail === undefined ? {} : { detail }) });
    } catch {
      // A listener must not break the bus.
    }
  }

  private selQueue(): QueueRegisters | null {
    return this.core.queueRegisters(this.queueSel);
  }

  /** Reports a queue register write the core refused. */
  private refused(refusal: QueueRefusal | null, offset: number, width: number): void {
    if (refusal !== null) this.bad(badAccessForRefusal(refusal), offset, width, true, refusal.message);
  }

  /**
   * A guest read of `width` bytes at `offset` in the window; never throws (undefined registers read
   * 0 and are reported).
   */
  read(offset: number, width: number): number {
    try {
      return this.readInner(offset, width);
    } catch (e) {
      this.bad(BadAccess.REFUSED, offset, width, false, String(e));
      return 0;
    }
  }

  /**
   * A guest write of `width` bytes at `offset` in the window; never throws (refused writes are
   * ignored and reported).
   */
  write(offset: number, width: number, value: number): void {
    try {
      this.writeInner(offset, width, value);
    } catch (e) {
      this.bad(BadAccess.REFUSED, offset, width, true, String(e));
    }
  }

  private readInner(offset: number, width: number): number {
    if (offset >= MmioReg.CONFIG) return this.readConfig(offset - MmioReg.CONFIG, width);
    // 4.2.2: control registers are 32 bits wide and aligned.
    if (width !== 4 || (offset & 3) !== 0) {
      this.bad(BadAccess.WIDTH, offset, width, false);
      return 0;
    }
    const legacy = this.version === 1;
    const core = this.core;
    switch (offset) {
      case MmioReg.MAGIC_VALUE:
        return MMIO_MAGIC;
      case MmioReg.VERSION:
        return this.version;
      case MmioReg.DEVICE_ID:
        return core.device.deviceId;
      case MmioReg.VENDOR_ID:
        return this.opts.vendorId ?? MMIO_VENDOR_ID;
      case MmioReg.DEVICE_FEATURES:
        // Legacy: only bits 0 to 31 exist (4.2.4).
        if (legacy && this.deviceFeaturesSel !== 0) return 0;
        return core.deviceFeatureWord(this.deviceFeaturesSel) >>> 0;
      case MmioReg.QUEUE_SIZE_MAX: {
        // 4.2.2: 0 when the queue is not available.
        return core.queueRegisters(this.queueSel) ? (core.device.queueMaxSizes[this.queueSel] ?? 0) : 0;
      }
      case MmioReg.QUEUE_READY: {
        if (legacy) break;
        return this.selQueue()?.enabled ? 1 : 0;
      }
      case MmioReg.QUEUE_PFN: {
        if (!legacy) break;
        // 4.2.4: the page number of a live queue (the core resets the registers, so 0 after it).
        const q = this.selQueue();
        return q?.enabled && this.guestPageSize > 0 ? Math.floor(q.descAddr / this.guestPageSize) : 0;
      }
      case MmioReg.INTERRUPT_STATUS:
        return this.interruptStatus;
      case MmioReg.STATUS:
        return core.status;
      case MmioReg.SHM_LEN_LOW:
      case MmioReg.SHM_LEN_HIGH:
      case MmioReg.SHM_BASE_LOW:
      case MmioReg.SHM_BASE_HIGH: {
        if (legacy) break;
        const r = this.sharedMemoryRegions.find((s) => s.id === this.shmSel);
        // 4.2.2: a region that does not exist reads as length -1 (all ones).
        if (!r) return 0xffffffff;
        if (offset === MmioReg.SHM_LEN_LOW) return lo32(r.length);
        if (offset === MmioReg.SHM_LEN_HIGH) return hi32(r.length);
        if (offset === MmioReg.SHM_BASE_LOW) return lo32(r.base);
        return hi32(r.base);
      }
      case MmioReg.QUEUE_RESET:
        // device/transport-mmio/11: 1 while the device's teardown of the queue is ongoing,
        // 0 once it completed (most devices finish within the write).
        if (legacy) break;
        return core.queueResetOngoing(this.queueSel) ? 1 : 0;
      case MmioReg.CONFIG_GENERATION:
        if (legacy) break;
        return core.configGeneration >>> 0;
      case MmioReg.QUEUE_DESC_LOW:
      case MmioReg.QUEUE_DESC_HIGH:
      case MmioReg.QUEUE_DRIVER_LOW:
      case MmioReg.QUEUE_DRIVER_HIGH:
      case MmioReg.QUEUE_DEVICE_LOW:
      case MmioReg.QUEUE_DEVICE_HIGH:
      case MmioReg.QUEUE_SIZE:
      case MmioReg.QUEUE_NOTIFY:
      case MmioReg.INTERRUPT_ACK:
      case MmioReg.DEVICE_FEATURES_SEL:
      case MmioReg.DRIVER_FEATURES:
      case MmioReg.DRIVER_FEATURES_SEL:
      case MmioReg.QUEUE_SEL:
      case MmioReg.SHM_SEL:
      case MmioReg.GUEST_PAGE_SIZE:
      case MmioReg.QUEUE_ALIGN:
        this.bad(BadAccess.WRITE_ONLY, offset, width, false);
        return 0;
    }
    this.bad(BadAccess.OFFSET, offset, width, false);
    return 0;
  }

  private writeInner(offset: number, width: number, value: number): void {
    if (offset >= MmioReg.CONFIG) {
      this.writeConfig(offset - MmioReg.CONFIG, width, value);
      return;
    }
    if (width !== 4 || (offset & 3) !== 0) {
      this.bad(BadAccess.WIDTH, offset, width, true);
      return;
    }
    value >>>= 0;
    const legacy = this.version === 1;
    const core = this.core;
    switch (offset) {
      case MmioReg.DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = value;
        return;
      case MmioReg.DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = value;
        return;
      case MmioReg.DRIVER_FEATURES:
        if (legacy && this.driverFeaturesSel !== 0) return;
        core.setDriverFeatureWord(this.driverFeaturesSel, value);
        return;
      case MmioReg.QUEUE_SEL:
        this.queueSel = value;
        return;
      case MmioReg.QUEUE_SIZE:
        // 4.2.2: at most QueueSizeMax (driver/transport-mmio/9), not while ready (/10).
        return this.refused(core.setQueueSize(this.queueSel, value), offset, width);
      case MmioReg.QUEUE_DESC_LOW:
      case MmioReg.QUEUE_DESC_HIGH:
      case MmioReg.QUEUE_DRIVER_LOW:
      case MmioReg.QUEUE_DRIVER_HIGH:
      case MmioReg.QUEUE_DEVICE_LOW:
      case MmioReg.QUEUE_DEVICE_HIGH: {
        if (legacy) break;
        const high = (offset & 4) !== 0;
        const base = offset & ~4;
        const area: QueueArea = base === MmioReg.QUEUE_DESC_LOW ? 'descAddr' : base === MmioReg.QUEUE_DRIVER_LOW ? 'driverAddr' : 'deviceAddr';
        const cur = this.selQueue()?.[area] ?? 0;
        // join64 gives -1 past 2^53 (no guest memory there): the core refuses it as a VALUE.
        const v = high ? join64(lo32(cur), value) : join64(value, hi32(cur));
        return this.refused(core.setQueueAddress(this.queueSel, area, v), offset, width);
      }
      case MmioReg.QUEUE_READY: {
        if (legacy) break;
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, offset, width, true);
        if ((value & 1) === 1) return this.refused(core.setQueueEnabled(this.queueSel), offset, width);
        // driver/transport-mmio/11: writing 0 stops the queue; the core resets its registers.
        if (q.enabled) core.resetQueue(this.queueSel);
        return;
      }
      case MmioReg.QUEUE_NOTIFY:
        this.notify(value, offset);
        return;
      case MmioReg.INTERRUPT_ACK:
        // Undefined bits are ignored (the driver MUST NOT set them).
        this.interruptStatus &= ~value;
        if (this.interruptStatus === 0) this.bus.lowerIrq();
        return;
      case MmioReg.STATUS:
        this.setStatus(value & 0xff);
        return;
      case MmioReg.SHM_SEL:
        if (legacy) break;
        this.shmSel = value;
        return;
      case MmioReg.QUEUE_RESET: {
        if (legacy) break;
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, offset, width, true);
        if (!this.flags.ringReset) return this.bad(BadAccess.MODE, offset, width, true, 'RING_RESET not negotiated');
        // 2.6.1: the reset completes before the write returns; QueueReset and QueueReady read 0.
        if (value === 1) core.resetQueue(this.queueSel);
        return;
      }
      case MmioReg.GUEST_PAGE_SIZE:
        if (!legacy) break;
        this.guestPageSize = value;
        return;
      case MmioReg.QUEUE_ALIGN: {
        if (!legacy) break;
        if (!this.selQueue()) return this.bad(BadAccess.NO_QUEUE, offset, width, true);
        if (value === 0 || (value & (value - 1)) !== 0) return this.bad(BadAccess.VALUE, offset, width, true, 'align');
        this.queueAlign[this.queueSel] = value;
        return;
      }
      case MmioReg.QUEUE_PFN:
        if (!legacy) break;
        this.writePfn(value, offset);
        return;
      case MmioReg.MAGIC_VALUE:
      case MmioReg.VERSION:
      case MmioReg.DEVICE_ID:
      case MmioReg.VENDOR_ID:
      case MmioReg.DEVICE_FEATURES:
      case MmioReg.QUEUE_SIZE_MAX:
      case MmioReg.INTERRUPT_STATUS:
      case MmioReg.SHM_LEN_LOW:
      case MmioReg.SHM_LEN_HIGH:
      case MmioReg.SHM_BASE_LOW:
      case MmioReg.SHM_BASE_HIGH:
      case MmioReg.CONFIG_GENERATION:
        this.bad(BadAccess.READ_ONLY, offset, width, true);
        return;
    }
    this.bad(BadAccess.OFFSET, offset, width, true);
  }

  /** 4.2.4 legacy: QueuePFN names the page of a contiguous ring; 0 stops the queue. */
  private writePfn(pfn: number, offset: number): void {
    const page = this.guestPageSize;
    if (pfn !== 0 && (page === 0 || (page & (page - 1)) !== 0)) return this.bad(BadAccess.VALUE, offset, 4, true, 'GuestPageSize not set');
    this.refused(this.core.setQueueLegacyAddress(this.queueSel, pfn * page, this.queueAlign[this.queueSel] ?? 4096), offset, 4);
  }

  private notify(value: number, offset: number): void {
    // 4.2.2 / 2.9: the low 16 bits carry the queue index, or its notification config data.
    const index = notifiedQueue(this.core, this.flags, value);
    const q = index >= 0 ? this.core.queueRegisters(index) : null;
    if (!q) return this.bad(BadAccess.NO_QUEUE, offset, 4, true, `notify ${value}`);
    if (!q.enabled) return this.bad(BadAccess.QUEUE_DISABLED, offset, 4, true, `notify ${index}`);
    if (this.flags.notificationData) this.core.notifyQueue(index, value);
    else this.core.notifyQueue(index);
  }

  private setStatus(value: number): void {
    this.core.setStatus(value);
    if (value === 0) {
      // 4.2.2: reset clears InterruptStatus; the core clears every QueueReady (device/transport-mmio/5).
      this.interruptStatus = 0;
      this.bus.lowerIrq();
      this.queueAlign.fill(4096);
      this.deviceFeaturesSel = 0;
      this.driverFeaturesSel = 0;
      this.queueSel = 0;
      this.shmSel = 0;
    }
    this.flags.refresh(this.core);
  }

  private readConfig(off: number, width: number): number {
    // 4.2.2: 8, 16 and 32-bit accesses; legacy drivers may use any of them.
    if (!(width === 1 || width === 2 || width === 4)) {
      this.bad(BadAccess.WIDTH, off + MmioReg.CONFIG, width, false);
      return 0;
    }
    if (off + width > this.core.device.configSize) {
      this.bad(BadAccess.OFFSET, off + MmioReg.CONFIG, width, false);
      return 0;
    }
    return readConfigValue(this.core, this.scratch, off, width);
  }

  private writeConfig(off: number, width: number, value: number): void {
    if (!(width === 1 || width === 2 || width === 4)) return this.bad(BadAccess.WIDTH, off + MmioReg.CONFIG, width, true);
    if (off + width > this.core.device.configSize) return this.bad(BadAccess.OFFSET, off + MmioReg.CONFIG, width, true);
    writeConfigValue(this.core, off, width, value);
  }

  // InterruptSink: 4.2.3.4 the device sets InterruptStatus bits and raises its IRQ.
  usedBuffer(_queueIndex: number): void {
    this.interruptStatus |= MmioInterrupt.USED_BUFFER;
    this.bus.raiseIrq();
  }

  configChange(): void {
    this.interruptStatus |= MmioInterrupt.CONFIG_CHANGE;
    this.bus.raiseIrq();
  }
}
