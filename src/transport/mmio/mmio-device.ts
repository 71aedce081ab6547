/**
 * 4.2 Virtio Over MMIO, device side: the register window (version 2, and the legacy version 1
 * with GuestPageSize / QueueAlign / QueuePFN), InterruptStatus with a level-triggered IRQ,
 * ConfigGeneration, shared memory regions and QueueReset.
 *
 * The driver is untrusted: `read` and `write` never throw. An access the register map does not
 * define reads as 0 and is otherwise ignored (4.2.2: the driver MUST NOT make it, so the device
 * may answer as it likes), and is reported to `onBadAccess`.
 */
import type { DeviceCoreApi, InterruptSink, QueueRegisters } from '../../device/types.js';
import { F } from '../../spec/features.js';
import { legacySplitLayout } from '../../spec/ring.js';
import { Status } from '../../spec/status.js';
import {
  BadAccess,
  type BadAccessListener,
  type CoreFactory,
  type RegisterWindow,
  type TransportBus,
  hi32,
  join64,
  lo32,
  readConfigValue,
  writeConfigValue,
} from '../bus.js';
import { MMIO_MAGIC, MMIO_VENDOR_ID, MmioInterrupt, MmioReg } from './registers.js';

export interface SharedMemoryRegion {
  readonly id: number;
  /** Guest physical address of the region. */
  readonly base: number;
  readonly length: number;
}

export interface MmioDeviceOptions {
  /** 2 (default, virtio 1.x) or 1 (legacy). */
  readonly version?: 1 | 2;
  /** Legacy only: false for a big-endian guest (rings and config in guest endian). */
  readonly guestLittleEndian?: boolean;
  readonly sharedMemory?: readonly SharedMemoryRegion[];
  readonly vendorId?: number;
  readonly onBadAccess?: BadAccessListener;
}

export class MmioDeviceTransport implements RegisterWindow, InterruptSink {
  readonly version: 1 | 2;
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
  /** Legacy registers. */
  private guestPageSize = 0;
  private readonly queueAlign: number[];
  private readonly queuePfn: number[];
  /** Derived from the negotiated features when the status changes (no BigInt per access). */
  private notificationData = false;
  private notifConfigData = false;
  private ringReset = false;
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
    this.queuePfn = new Array<number>(this.core.numQueues).fill(0);
    this.onBad = opts.onBadAccess;
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

  read(offset: number, width: number): number {
    try {
      return this.readInner(offset, width);
    } catch (e) {
      this.bad(BadAccess.REFUSED, offset, width, false, String(e));
      return 0;
    }
  }

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
        return this.queuePfn[this.queueSel] ?? 0;
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
        const r = this.opts.sharedMemory?.find((s) => s.id === this.shmSel);
        // 4.2.2: a region that does not exist reads as length -1 (all ones).
        if (!r) return 0xffffffff;
        if (offset === MmioReg.SHM_LEN_LOW) return lo32(r.length);
        if (offset === MmioReg.SHM_LEN_HIGH) return hi32(r.length);
        if (offset === MmioReg.SHM_BASE_LOW) return lo32(r.base);
        return hi32(r.base);
      }
      case MmioReg.QUEUE_RESET:
        // The reset completes within the write, so 0 is presented afterwards (4.2.2).
        if (legacy) break;
        return 0;
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
      case MmioReg.QUEUE_SIZE: {
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, offset, width, true);
        if (q.enabled) return this.bad(BadAccess.QUEUE_ENABLED, offset, width, true);
        const max = core.device.queueMaxSizes[this.queueSel] ?? 0;
        // 4.2.2: the driver MUST write a value <= QueueSizeMax; others are refused here.
        if (value === 0 || value > max) return this.bad(BadAccess.VALUE, offset, width, true, `size ${value}`);
        q.size = value;
        return;
      }
      case MmioReg.QUEUE_DESC_LOW:
      case MmioReg.QUEUE_DESC_HIGH:
      case MmioReg.QUEUE_DRIVER_LOW:
      case MmioReg.QUEUE_DRIVER_HIGH:
      case MmioReg.QUEUE_DEVICE_LOW:
      case MmioReg.QUEUE_DEVICE_HIGH: {
        if (legacy) break;
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, offset, width, true);
        // 4.2.2: not while QueueReady is set.
        if (q.enabled) return this.bad(BadAccess.QUEUE_ENABLED, offset, width, true);
        const high = (offset & 4) !== 0;
        const base = offset & ~4;
        const key = base === MmioReg.QUEUE_DESC_LOW ? 'descAddr' : base === MmioReg.QUEUE_DRIVER_LOW ? 'driverAddr' : 'deviceAddr';
        const cur = q[key] < 0 ? 0 : q[key];
        const v = high ? join64(lo32(cur), value) : join64(value, hi32(cur));
        // An address beyond 2^53 cannot be mapped: store -1 so enabling fails cleanly.
        q[key] = v;
        return;
      }
      case MmioReg.QUEUE_READY: {
        if (legacy) break;
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, offset, width, true);
        if ((value & 1) === 1) {
          if (q.enabled) return;
          try {
            core.enableQueue(this.queueSel);
          } catch (e) {
            q.enabled = false;
            this.bad(BadAccess.REFUSED, offset, width, true, String(e));
          }
        } else if (q.enabled) {
          this.stopQueue(this.queueSel, q);
        }
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
        if (!this.ringReset) return this.bad(BadAccess.MODE, offset, width, true, 'RING_RESET not negotiated');
        if (value === 1) {
          // 2.6.1: the reset completes before the write returns; QueueReset and QueueReady read 0.
          core.resetQueue(this.queueSel);
          q.enabled = false;
        }
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
    const sel = this.queueSel;
    const q = this.selQueue();
    if (!q) return this.bad(BadAccess.NO_QUEUE, offset, 4, true);
    if (pfn === 0) {
      this.queuePfn[sel] = 0;
      if (q.enabled) this.stopQueue(sel, q);
      return;
    }
    if (q.enabled) return this.bad(BadAccess.QUEUE_ENABLED, offset, 4, true);
    const page = this.guestPageSize;
    if (page === 0 || (page & (page - 1)) !== 0) return this.bad(BadAccess.VALUE, offset, 4, true, 'GuestPageSize not set');
    const base = pfn * page;
    const layout = legacySplitLayout(q.size, this.queueAlign[sel] ?? 4096);
    q.descAddr = base + layout.desc;
    q.driverAddr = base + layout.avail;
    q.deviceAddr = base + layout.used;
    try {
      this.core.enableQueue(sel);
      this.queuePfn[sel] = pfn;
    } catch (e) {
      q.enabled = false;
      this.bad(BadAccess.REFUSED, offset, 4, true, String(e));
    }
  }

  private stopQueue(index: number, q: QueueRegisters): void {
    try {
      this.core.resetQueue(index);
    } catch {
      // The core may accept queue resets only with RING_RESET; the queue stops either way.
    }
    q.enabled = false;
  }

  private notify(value: number, offset: number): void {
    // 4.2.2 / 2.9: the low 16 bits carry the queue index, or its notification config data.
    const key = value & 0xffff;
    let index = key;
    if (this.notifConfigData) {
      index = -1;
      for (let i = 0; i < this.core.numQueues; i++) {
        if (this.core.queueRegisters(i)?.notifyData === key) {
          index = i;
          break;
        }
      }
    }
    const q = index >= 0 ? this.core.queueRegisters(index) : null;
    if (!q) return this.bad(BadAccess.NO_QUEUE, offset, 4, true, `notify ${value}`);
    if (!q.enabled) return this.bad(BadAccess.QUEUE_DISABLED, offset, 4, true, `notify ${index}`);
    if (this.notificationData) this.core.notifyQueue(index, value);
    else this.core.notifyQueue(index);
  }

  private setStatus(value: number): void {
    this.core.setStatus(value);
    if (value === 0) {
      // 4.2.2: reset clears InterruptStatus and every QueueReady.
      this.interruptStatus = 0;
      this.bus.lowerIrq();
      this.queuePfn.fill(0);
      this.queueAlign.fill(4096);
      this.deviceFeaturesSel = 0;
      this.driverFeaturesSel = 0;
      this.queueSel = 0;
      this.shmSel = 0;
      for (let i = 0; i < this.core.numQueues; i++) {
        const q = this.core.queueRegisters(i);
        if (q) q.enabled = false;
      }
    }
    this.refreshFeatures();
  }

  private refreshFeatures(): void {
    const f = this.core.status & Status.FEATURES_OK || this.version === 1 ? this.core.negotiatedFeatures : 0n;
    this.notificationData = (f & F.NOTIFICATION_DATA) !== 0n;
    this.notifConfigData = (f & F.NOTIF_CONFIG_DATA) !== 0n;
    this.ringReset = (f & F.RING_RESET) !== 0n;
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
