/**
 * 4.1.4.3 - 4.1.4.6 the modern virtio structures of a PCI function, device side: the common
 * configuration (features, status, queue registers), the notification area, the ISR status
 * and the device-specific configuration, all in one modern BAR. Queue registers go to the
 * device core's setters, which apply the same rules as every other transport.
 */
import type { DeviceCoreApi, QueueArea, QueueRefusal, QueueRegisters } from '../../device/types.js';
import { BadAccess, type TransportFeatureFlags, badAccessForRefusal, hi32, join64, lo32, notifiedQueue, readConfigValue, writeConfigValue } from '../bus.js';
import { CommonCfg, ModernBarLayout, NO_VECTOR } from './constants.js';

/** Where the modern structures sit in the modern BAR (see `modernLayoutFor`). */
export interface ModernLayout {
  /** Byte offset in the BAR of the common configuration structure (4.1.4.3). */
  readonly common: number;
  /** Byte offset in the BAR of the one-byte ISR status (4.1.4.5). */
  readonly isr: number;
  /** Byte offset in the BAR of the notification area (4.1.4.4). */
  readonly notify: number;
  /** Byte offset in the BAR of the device-specific configuration (4.1.4.6). */
  readonly device: number;
  /** Bytes reserved for the device configuration (reads past configSize are refused). */
  readonly deviceSpan: number;
  /** Size of the modern BAR in bytes, a power of two (at least 16 KiB for memory, 128 bytes for I/O). */
  readonly barSize: number;
  /** True when the structures are in an I/O BAR (packed), false for a memory BAR (one 4 KiB page each). */
  readonly io: boolean;
}

export function pow2AtLeast(n: number, min: number): number {
  let s = min;
  while (s < n) s *= 2;
  return s;
}

/**
 * The modern BAR's layout: one 4 KiB page per structure in a memory BAR (as QEMU does), or,
 * for an I/O BAR, the structures packed one after the other: common at 0, ISR at 0x40, the
 * notification area at 0x48, the device configuration 8-aligned after it.
 */
export function modernLayoutFor(io: boolean, notifyLen: number, configSize: number): ModernLayout {
  if (!io) {
    return {
      common: ModernBarLayout.COMMON,
      isr: ModernBarLayout.ISR,
      notify: ModernBarLayout.NOTIFY,
      device: ModernBarLayout.DEVICE,
      deviceSpan: ModernBarLayout.PAGE,
      barSize: pow2AtLeast(ModernBarLayout.NOTIFY + notifyLen, 0x4000),
      io: false,
    };
  }
  const notify = 0x48;
  const device = Math.ceil((notify + notifyLen) / 8) * 8;
  return { common: 0, isr: 0x40, notify, device, deviceSpan: configSize, barSize: pow2AtLeast(device + configSize, 0x80), io: true };
}

/** What the register blocks of a PCI function share with the function (its transport). */
export interface PciRegisterHost {
  /** The current core (a transitional function rebuilds it when the driver switches interface). */
  readonly core: DeviceCoreApi;
  readonly flags: TransportFeatureFlags;
  /** Whether the legacy interface is being served (transitional function). */
  readonly legacy: boolean;
  /** MSI-X vector for configuration changes (config_msix_vector). */
  configVector: number;
  /** Whether the function has MSI-X turned on. */
  readonly msixEnabled: boolean;
  bad(reason: BadAccess, region: string, offset: number, width: number, write: boolean, detail?: string): void;
  /** A device_status write (0 resets the device and the function's registers). */
  setStatus(value: number): void;
  /** Reads and clears ISR (4.1.4.5.1). */
  readIsr(): number;
  /** 4.1.5.1.2.1: the vector if the MSI-X table has it, else NO_VECTOR (reported). */
  mapVector(v: number, region: string, offset: number, width: number): number;
  /** Serves the modern (false) or legacy (true) interface; false when refused (reported). */
  useInterface(legacy: boolean, region: string, offset: number, width: number, write: boolean, resetWrite?: boolean): boolean;
}

/** Field of the common configuration containing `off`: [start, size]. */
function commonField(off: number): [number, number] {
  if (off < 0x10) return [off & ~3, 4];
  if (off < 0x14) return [off & ~1, 2];
  if (off < 0x16) return [off, 1];
  if (off < 0x20) return [off & ~1, 2];
  if (off < 0x38) return [off - ((off - 0x20) % 8), 8];
  return [off & ~1, 2];
}

export class PciModernRegisters {
  private dfSelect = 0;
  private drfSelect = 0;
  private queueSel = 0;
  /** Scratch for device configuration reads (no allocation per access). */
  private readonly scratch = new Uint8Array(8);

  constructor(
    private readonly host: PciRegisterHost,
    readonly layout: ModernLayout,
    readonly notifyLen: number,
    readonly notifyOffMultiplier: number,
  ) {}

  /** Device reset: the selectors return to 0. */
  reset(): void {
    this.dfSelect = 0;
    this.drfSelect = 0;
    this.queueSel = 0;
  }

  read(offset: number, width: number): number {
    const ml = this.layout;
    const host = this.host;
    if (offset >= ml.common && offset < ml.common + CommonCfg.SIZE) {
      if (!host.useInterface(false, 'common', offset, width, false)) return 0;
      return this.commonRead(offset - ml.common, width);
    }
    if (offset >= ml.isr && offset < ml.isr + 4) {
      if (offset !== ml.isr || width !== 1) {
        host.bad(BadAccess.WIDTH, 'isr', offset, width, false);
        return 0;
      }
      return host.readIsr();
    }
    const dev = offset - ml.device;
    if (dev >= 0 && dev < ml.deviceSpan) {
      if (!host.useInterface(false, 'device', offset, width, false)) return 0;
      const size = host.core.device.configSize;
      if (!(width === 1 || width === 2 || width === 4) || dev % width !== 0 || dev + width > size) {
        host.bad(dev + width > size ? BadAccess.OFFSET : BadAccess.WIDTH, 'device', dev, width, false);
        return 0;
      }
      return readConfigValue(host.core, this.scratch, dev, width);
    }
    const n = offset - ml.notify;
    if (n >= 0 && n < this.notifyLen) {
      host.bad(BadAccess.WRITE_ONLY, 'notify', n, width, false);
      return 0;
    }
    host.bad(BadAccess.OFFSET, 'modern', offset, width, false);
    return 0;
  }

  write(offset: number, width: number, value: number): void {
    const ml = this.layout;
    const host = this.host;
    if (offset >= ml.common && offset < ml.common + CommonCfg.SIZE) {
      const c = offset - ml.common;
      const resetWrite = c === CommonCfg.DEVICE_STATUS && width === 1 && (value & 0xff) === 0;
      if (!host.useInterface(false, 'common', c, width, true, resetWrite)) return;
      return this.commonWrite(c, width, value);
    }
    const n = offset - ml.notify;
    if (n >= 0 && n < this.notifyLen) return this.notifyWrite(n, width, value);
    if (offset >= ml.isr && offset < ml.isr + 4) return host.bad(BadAccess.READ_ONLY, 'isr', offset, width, true);
    const dev = offset - ml.device;
    if (dev >= 0 && dev < ml.deviceSpan) {
      if (!host.useInterface(false, 'device', offset, width, true)) return;
      const size = host.core.device.configSize;
      if (!(width === 1 || width === 2 || width === 4) || dev % width !== 0 || dev + width > size) {
        return host.bad(dev + width > size ? BadAccess.OFFSET : BadAccess.WIDTH, 'device', dev, width, true);
      }
      writeConfigValue(host.core, dev, width, value);
      return;
    }
    host.bad(BadAccess.OFFSET, 'modern', offset, width, true);
  }

  private commonAccessOk(offset: number, width: number, write: boolean): [number, boolean] | null {
    const [start, size] = commonField(offset);
    // 64-bit fields: whole, or either 32-bit half (4.1.3.1).
    if (width === size && offset === start) return [start, false];
    if (size === 8 && width === 4 && (offset === start || offset === start + 4)) return [start, offset !== start];
    this.host.bad(BadAccess.WIDTH, 'common', offset, width, write);
    return null;
  }

  private selQueue(): QueueRegisters | null {
    return this.host.core.queueRegisters(this.queueSel);
  }

  private commonRead(offset: number, width: number): number {
    const ok = this.commonAccessOk(offset, width, false);
    if (!ok) return 0;
    const [field, high] = ok;
    const host = this.host;
    const core = host.core;
    const q = field >= CommonCfg.QUEUE_SIZE ? this.selQueue() : null;
    const part = (v: number): number => (width === 8 ? v : high ? hi32(v) : lo32(v));
    switch (field) {
      case CommonCfg.DEVICE_FEATURE_SELECT:
        return this.dfSelect;
      case CommonCfg.DEVICE_FEATURE:
        return core.deviceFeatureWord(this.dfSelect) >>> 0;
      case CommonCfg.DRIVER_FEATURE_SELECT:
        return this.drfSelect;
      case CommonCfg.DRIVER_FEATURE:
        // 4.1.4.3.1: the valid bits the driver wrote.
        return this.drfSelect > 0x10000 ? 0 : Number((core.driverFeatures >> BigInt(32 * this.drfSelect)) & 0xffff_ffffn);
      case CommonCfg.CONFIG_MSIX_VECTOR:
        return host.configVector;
      case CommonCfg.NUM_QUEUES:
        // 4.1.4.3: num_queues excludes the administration queues.
        return core.device.adminQueues?.first ?? core.numQueues;
      case CommonCfg.DEVICE_STATUS:
        return core.status & 0xff;
      case CommonCfg.CONFIG_GENERATION:
        return core.configGeneration & 0xff;
      case CommonCfg.QUEUE_SELECT:
        return this.queueSel;
      case CommonCfg.QUEUE_SIZE:
        // 4.1.4.3.1: 0 for a queue that is unavailable (device/transport-pci/25).
        return q ? q.size : 0;
      case CommonCfg.QUEUE_MSIX_VECTOR:
        return q ? q.msixVector : NO_VECTOR;
      case CommonCfg.QUEUE_ENABLE:
        return q?.enabled ? 1 : 0;
      case CommonCfg.QUEUE_NOTIFY_OFF:
        return q ? this.queueSel : 0;
      case CommonCfg.QUEUE_DESC:
        return q ? part(q.descAddr) : 0;
      case CommonCfg.QUEUE_DRIVER:
        return q ? part(q.driverAddr) : 0;
      case CommonCfg.QUEUE_DEVICE:
        return q ? part(q.deviceAddr) : 0;
      case CommonCfg.QUEUE_NOTIF_CONFIG_DATA:
        return q ? q.notifyData & 0xffff : 0;
      case CommonCfg.QUEUE_RESET:
        // The reset completes within the write (4.1.4.3.1: 0 once done).
        return 0;
      case CommonCfg.ADMIN_QUEUE_INDEX:
        // device/transport-pci/27: admin_queue_index >= num_queues, all indices within 16 bits.
        return core.device.adminQueues?.first ?? 0;
      case CommonCfg.ADMIN_QUEUE_NUM:
        return core.device.adminQueues?.count ?? 0;
    }
    return 0;
  }

  /** Reports a queue register write the core refused. */
  private refused(refusal: QueueRefusal | null, offset: number, width: number): void {
    if (refusal !== null) this.host.bad(badAccessForRefusal(refusal), 'common', offset, width, true, refusal.message);
  }

  private commonWrite(offset: number, width: number, value: number): void {
    const ok = this.commonAccessOk(offset, width, true);
    if (!ok) return;
    const [field, high] = ok;
    const host = this.host;
    const core = host.core;
    const sel = this.queueSel;
    const v = width === 8 ? value : value >>> 0;
    switch (field) {
      case CommonCfg.DEVICE_FEATURE_SELECT:
        this.dfSelect = v;
        return;
      case CommonCfg.DRIVER_FEATURE_SELECT:
        this.drfSelect = v;
        return;
      case CommonCfg.DRIVER_FEATURE:
        core.setDriverFeatureWord(this.drfSelect, v);
        return;
      case CommonCfg.CONFIG_MSIX_VECTOR:
        host.configVector = host.mapVector(v, 'common', offset, width);
        return;
      case CommonCfg.DEVICE_STATUS:
        host.setStatus(v);
        return;
      case CommonCfg.QUEUE_SELECT:
        this.queueSel = v;
        return;
      case CommonCfg.QUEUE_MSIX_VECTOR:
        if (!this.selQueue()) return host.bad(BadAccess.NO_QUEUE, 'common', offset, width, true);
        return this.refused(core.setQueueMsixVector(sel, host.mapVector(v, 'common', offset, width)), offset, width);
      case CommonCfg.QUEUE_SIZE:
        // 4.1.4.3.2: never 0, a power of 2 unless RING_PACKED, never above the maximum.
        return this.refused(core.setQueueSize(sel, v), offset, width);
      case CommonCfg.QUEUE_ENABLE:
        if (!this.selQueue()) return host.bad(BadAccess.NO_QUEUE, 'common', offset, width, true);
        // 4.1.4.3.2: the driver MUST NOT write 0 (driver/transport-pci/19).
        if (v !== 1) return host.bad(BadAccess.VALUE, 'common', offset, width, true, 'queue_enable 0');
        return this.refused(core.setQueueEnabled(sel), offset, width);
      case CommonCfg.QUEUE_DESC:
      case CommonCfg.QUEUE_DRIVER:
      case CommonCfg.QUEUE_DEVICE: {
        const area: QueueArea = field === CommonCfg.QUEUE_DESC ? 'descAddr' : field === CommonCfg.QUEUE_DRIVER ? 'driverAddr' : 'deviceAddr';
        const cur = this.selQueue()?.[area] ?? 0;
        // join64 gives -1 past 2^53 (no guest memory there): the core refuses it as a VALUE.
        const next = width === 8 ? v : high ? join64(lo32(cur), v) : join64(v, hi32(cur));
        return this.refused(core.setQueueAddress(sel, area, next), offset, width);
      }
      case CommonCfg.QUEUE_RESET:
        if (!this.selQueue()) return host.bad(BadAccess.NO_QUEUE, 'common', offset, width, true);
        if (!host.flags.ringReset) return host.bad(BadAccess.MODE, 'common', offset, width, true, 'RING_RESET not negotiated');
        // device/transport-pci/22 /24: the reset is done (queue_enable 0) when the write returns.
        if (v === 1) core.resetQueue(sel);
        return;
    }
    // device_feature, num_queues, config_generation, queue_notify_off, queue_notif_config_data,
    // admin fields: 4.1.4.3.2 the driver MUST NOT write them.
    host.bad(BadAccess.READ_ONLY, 'common', offset, width, true);
  }

  /** 4.1.4.4 / 4.1.5.2: an available buffer notification. Hot path: no allocation. */
  private notifyWrite(n: number, width: number, value: number): void {
    const host = this.host;
    if (host.legacy) return host.bad(BadAccess.MODE, 'notify', n, width, true);
    if (width !== 2 && width !== 4) return host.bad(BadAccess.WIDTH, 'notify', n, width, true);
    const core = host.core;
    const mult = this.notifyOffMultiplier;
    let index: number;
    if (mult !== 0) {
      if (n % mult !== 0) return host.bad(BadAccess.OFFSET, 'notify', n, width, true);
      index = n / mult;
    } else {
      // One address for all queues: the value names the queue (2.9).
      index = notifiedQueue(core, host.flags, value);
    }
    const q = index >= 0 ? core.queueRegisters(index) : null;
    if (!q) return host.bad(BadAccess.NO_QUEUE, 'notify', n, width, true);
    if (!q.enabled) return host.bad(BadAccess.QUEUE_DISABLED, 'notify', n, width, true);
    if (host.flags.notificationData) core.notifyQueue(index, value >>> 0);
    else core.notifyQueue(index);
  }
}
