/**
 * 4.1 Virtio Over PCI Bus, device side: the PCI configuration space (header, BARs, the virtio
 * vendor capabilities and MSI-X), the modern BAR (common configuration, ISR, device
 * configuration, notifications), the MSI-X table BAR and, for transitional devices, the legacy
 * I/O BAR (4.1.4.8) serving a legacy driver through the same device.
 *
 * The host emulator routes configuration cycles to `configRead/configWrite` and BAR accesses to
 * `barRead/barWrite` (it finds the BAR from `barAddress`). Nothing here throws: an access the
 * transport does not define reads as 0 (configuration space: as the PCI rules say) and is
 * reported to `onBadAccess`.
 */
import type { DeviceCoreApi, InterruptSink, QueueRegisters } from '../../device/types.js';
import { F } from '../../spec/features.js';
import { legacySplitLayout } from '../../spec/ring.js';
import { Status } from '../../spec/status.js';
import {
  BadAccess,
  type BadAccessListener,
  type CoreFactory,
  type CoreMode,
  type TransportBus,
  hi32,
  join64,
  lo32,
  readConfigValue,
  writeConfigValue,
} from '../bus.js';
import {
  CapField,
  CommonCfg,
  IsrBit,
  LEGACY_PFN_SHIFT,
  LegacyReg,
  ModernBarLayout,
  Msix,
  NO_VECTOR,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_MODERN_DEVICE_BASE,
  PCI_VENDOR_VIRTIO,
  PciBar,
  PciCfg,
  PciCommand,
  PciStatus,
  TRANSITIONAL_DEVICE_IDS,
  VirtioPciCap,
} from './constants.js';
import { MsixTable } from './msix.js';

/** What a PCI function offers its bus: configuration cycles and BAR accesses. */
export interface PciFunction {
  configRead(offset: number, width: number): number;
  configWrite(offset: number, width: number, value: number): void;
  barRead(bar: number, offset: number, width: number): number;
  barWrite(bar: number, offset: number, width: number, value: number): void;
}

export interface PciDeviceOptions {
  /** Serve the legacy interface too (I/O BAR0, transitional device id). Default false. */
  readonly transitional?: boolean;
  /** MSI-X table size; 0 leaves out the MSI-X capability. Default: one per queue plus config. */
  readonly msixVectors?: number;
  /** 4.1.4.4: 0 or an even power of two (a multiple of 4 with NOTIFICATION_DATA). Default 4. */
  readonly notifyOffMultiplier?: number;
  /** Legacy interface only: false for a big-endian guest. */
  readonly guestLittleEndian?: boolean;
  /** Shared memory regions, laid out one after the other in BAR2 (4.1.4.7). */
  readonly sharedMemory?: readonly { readonly id: number; readonly length: number }[];
  readonly subsystemVendorId?: number;
  readonly onBadAccess?: BadAccessListener;
  /**
   * Put the modern structures (common, ISR, notify, device configuration) in a compact 32-bit
   * I/O BAR (BAR4) instead of the 64-bit memory BAR, for emulators whose PCI bus maps only I/O
   * space (v86). 4.1.4: a capability may point into any BAR, memory or I/O. Default false.
   */
  readonly modernIoBar?: boolean;
}

/** Where the modern structures sit in the modern BAR (see `modernLayoutFor`). */
export interface ModernLayout {
  readonly common: number;
  readonly isr: number;
  readonly notify: number;
  readonly device: number;
  /** Bytes reserved for the device configuration (reads past configSize are refused). */
  readonly deviceSpan: number;
  readonly barSize: number;
  readonly io: boolean;
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

interface BarInfo {
  size: number;
  io: boolean;
  is64: boolean;
}

/** Where each virtio capability sits in configuration space (for tests and the driver). */
export interface PciCapOffsets {
  msix: number;
  common: number;
  notify: number;
  isr: number;
  device: number;
  pciCfg: number;
  shm: number[];
}

const CLASS_BY_DEVICE: Readonly<Record<number, number>> = {
  1: 0x020000, // network controller
  2: 0x018000, // mass storage, other
  3: 0x078000, // communication, other
};

function pow2AtLeast(n: number, min: number): number {
  let s = min;
  while (s < n) s *= 2;
  return s;
}

export class PciDeviceTransport implements PciFunction, InterruptSink {
  readonly transitional: boolean;
  readonly caps: PciCapOffsets;
  readonly notifyOffMultiplier: number;
  /** Refused accesses, for tests and diagnostics. */
  badAccesses = 0;

  private coreRef: DeviceCoreApi;
  private readonly factory: CoreFactory;
  private readonly cfg = new Uint8Array(PciCfg.SIZE);
  private readonly wmask = new Uint8Array(PciCfg.SIZE);
  private readonly bars: (BarInfo | null)[] = [null, null, null, null, null, null];
  private readonly msix: MsixTable | null;
  private readonly onBad: BadAccessListener | undefined;
  private readonly scratch = new Uint8Array(8);
  private readonly notifyLen: number;
  /** Where the modern structures sit in BAR4. */
  readonly layout: ModernLayout;
  private readonly shmOffsets: number[] = [];

  private isr = 0;
  private legacyMode = false;
  private configVector = NO_VECTOR;
  private dfSelect = 0;
  private drfSelect = 0;
  private queueSel = 0;
  private readonly legacyPfn: number[];
  /** Derived from negotiated features at each status write (no BigInt per access). */
  private notificationData = false;
  private notifConfigData = false;
  private ringReset = false;
  private packed = false;

  constructor(
    private readonly bus: TransportBus,
    factory: CoreFactory,
    private readonly opts: PciDeviceOptions = {},
  ) {
    this.factory = factory;
    this.transitional = opts.transitional ?? false;
    this.onBad = opts.onBadAccess;
    // The legacy interface is chosen by the driver's first access; start modern.
    this.coreRef = factory(this, { legacy: false, littleEndian: true });
    const core = this.coreRef;
    const nq = core.numQueues;
    this.legacyPfn = new Array<number>(nq).fill(0);
    const mult = opts.notifyOffMultiplier ?? 4;
    this.notifyOffMultiplier = mult;
    // 4.1.4.4: room for every queue's notify address plus a 32-bit write.
    this.notifyLen = Math.max(4, mult * Math.max(nq - 1, 0) + 4);
    const vectors = Math.min(opts.msixVectors ?? nq + 1, Msix.MAX_VECTORS);
    this.msix = vectors > 0 ? new MsixTable(vectors, bus) : null;
    this.layout = modernLayoutFor(opts.modernIoBar ?? false, this.notifyLen, core.device.configSize);
    this.caps = this.buildConfigSpace();
  }

  get core(): DeviceCoreApi {
    return this.coreRef;
  }

  /** Whether the driver turned MSI-X on (Message Control enable). */
  get msixEnabled(): boolean {
    return this.msix?.enabled ?? false;
  }

  /** The MSI-X table (null without MSI-X), for tests. */
  get msixTable(): MsixTable | null {
    return this.msix;
  }

  /** ISR status without reading it (reads clear it), for tests. */
  get isrValue(): number {
    return this.isr;
  }

  /** Size of BAR `i` (0 when absent) and whether it is an I/O BAR. */
  barSize(i: number): number {
    return this.bars[i]?.size ?? 0;
  }
  barIsIo(i: number): boolean {
    return this.bars[i]?.io ?? false;
  }
  /** The address the driver programmed into BAR `i` (for the emulator's decoding). */
  barAddress(i: number): number {
    const b = this.bars[i];
    if (!b) return 0;
    const off = PciCfg.BAR0 + 4 * i;
    const lo = this.u32(off) & (b.io ? ~3 : ~15);
    return b.is64 ? join64(lo >>> 0, this.u32(off + 4)) : lo >>> 0;
  }

  private bad(reason: BadAccess, region: string, offset: number, width: number, write: boolean, detail?: string): void {
    this.badAccesses++;
    try {
      this.onBad?.({ reason, region, offset, width, write, ...(detail === undefined ? {} : { detail }) });
    } catch {
      // A listener must not break the bus.
    }
  }

  // ---- configuration space --------------------------------------------------------------

  private u16(off: number): number {
    return this.cfg[off]! | (this.cfg[off + 1]! << 8);
  }
  private u32(off: number): number {
    return (this.cfg[off]! | (this.cfg[off + 1]! << 8) | (this.cfg[off + 2]! << 16) | (this.cfg[off + 3]! << 24)) >>> 0;
  }
  private put(off: number, width: number, v: number, wm?: number): void {
    for (let i = 0; i < width; i++) {
      this.cfg[off + i] = Math.floor(v / 256 ** i) & 0xff;
      if (wm !== undefined) this.wmask[off + i] = Math.floor(wm / 256 ** i) & 0xff;
    }
  }

  private buildConfigSpace(): PciCapOffsets {
    const core = this.coreRef;
    const id = core.device.deviceId;
    const transitionalId = TRANSITIONAL_DEVICE_IDS[id];
    const legacyId = this.transitional && transitionalId !== undefined;
    // 4.1.2.1: modern id 0x1040 + id; transitional devices keep their legacy id and put the
    // virtio id in the subsystem id, with revision 0 (4.1.2.3).
    this.put(PciCfg.VENDOR_ID, 2, PCI_VENDOR_VIRTIO);
    this.put(PciCfg.DEVICE_ID, 2, legacyId ? transitionalId : PCI_MODERN_DEVICE_BASE + id);
    this.put(PciCfg.REVISION_ID, 1, this.transitional ? 0 : 1);
    const cls = CLASS_BY_DEVICE[id] ?? 0xff0000;
    this.put(PciCfg.CLASS_PROG, 3, cls);
    this.put(PciCfg.SUBSYSTEM_VENDOR_ID, 2, this.opts.subsystemVendorId ?? PCI_VENDOR_VIRTIO);
    this.put(PciCfg.SUBSYSTEM_ID, 2, this.transitional ? id : 0x40 + id);
    this.put(PciCfg.COMMAND, 2, 0, PciCommand.IO | PciCommand.MEMORY | PciCommand.BUS_MASTER | PciCommand.INTX_DISABLE);
    this.put(PciCfg.STATUS, 2, PciStatus.CAP_LIST);
    this.put(PciCfg.INTERRUPT_LINE, 1, 0, 0xff);
    this.put(PciCfg.INTERRUPT_PIN, 1, 1);

    // BARs.
    if (this.transitional) {
      const legacySize = pow2AtLeast(LegacyReg.CONFIG_MSIX + core.device.configSize, 32);
      this.setBar(PciBar.LEGACY_IO, { size: legacySize, io: true, is64: false });
    }
    if (this.msix) this.setBar(PciBar.MSIX, { size: this.msix.barSize, io: false, is64: false });
    const shm = this.opts.sharedMemory ?? [];
    if (shm.length > 0) {
      let off = 0;
      for (const r of shm) {
        this.shmOffsets.push(off);
        off += pow2AtLeast(r.length, 0x1000);
      }
      this.setBar(PciBar.SHM, { size: pow2AtLeast(off, 0x1000), io: false, is64: true });
    }
    const ml = this.layout;
    this.setBar(PciBar.MODERN, { size: ml.barSize, io: ml.io, is64: !ml.io });

    // Capabilities.
    let at = 0x40;
    let prevNext = PciCfg.CAPABILITIES_POINTER;
    const caps: PciCapOffsets = { msix: -1, common: -1, notify: -1, isr: -1, device: -1, pciCfg: -1, shm: [] };
    const link = (len: number): number => {
      const here = at;
      this.cfg[prevNext] = here;
      prevNext = here + CapField.NEXT;
      at = here + Math.ceil(len / 4) * 4;
      return here;
    };
    if (this.msix) {
      const c = link(Msix.CAP_SIZE);
      caps.msix = c;
      this.put(c, 1, PCI_CAP_ID_MSIX);
      // Message Control: table size - 1; enable and function mask are writable.
      this.put(c + Msix.CTRL, 2, this.msix.size - 1, Msix.CTRL_ENABLE | Msix.CTRL_MASKALL);
      this.put(c + Msix.TABLE, 4, 0 | PciBar.MSIX);
      this.put(c + Msix.PBA, 4, this.msix.pbaOffset | PciBar.MSIX);
    }
    const vcap = (type: number, bar: number, offset: number, length: number, len = 16, capId = 0): number => {
      const c = link(len);
      this.put(c + CapField.VNDR, 1, PCI_CAP_ID_VNDR);
      this.put(c + CapField.LEN, 1, len);
      this.put(c + CapField.CFG_TYPE, 1, type);
      this.put(c + CapField.BAR, 1, bar);
      this.put(c + CapField.ID, 1, capId);
      this.put(c + CapField.OFFSET, 4, lo32(offset));
      this.put(c + CapField.LENGTH, 4, lo32(length));
      return c;
    };
    caps.common = vcap(VirtioPciCap.COMMON_CFG, PciBar.MODERN, ml.common, CommonCfg.SIZE);
    caps.notify = vcap(VirtioPciCap.NOTIFY_CFG, PciBar.MODERN, ml.notify, this.notifyLen, 20);
    this.put(caps.notify + CapField.EXTRA, 4, this.notifyOffMultiplier);
    caps.isr = vcap(VirtioPciCap.ISR_CFG, PciBar.MODERN, ml.isr, 1);
    if (core.device.configSize > 0) caps.device = vcap(VirtioPciCap.DEVICE_CFG, PciBar.MODERN, ml.device, core.device.configSize);
    // 4.1.4.9: the PCI configuration access capability; bar, offset, length and data are RW.
    caps.pciCfg = vcap(VirtioPciCap.PCI_CFG, 0, 0, 0, 20);
    this.wmask[caps.pciCfg + CapField.BAR] = 0xff;
    for (let k = 0; k < 4; k++) {
      this.wmask[caps.pciCfg + CapField.OFFSET + k] = 0xff;
      this.wmask[caps.pciCfg + CapField.LENGTH + k] = 0xff;
      this.wmask[caps.pciCfg + CapField.EXTRA + k] = 0xff;
    }
    shm.forEach((r, i) => {
      if (at + 24 > PciCfg.SIZE) return;
      const off = this.shmOffsets[i]!;
      const c = vcap(VirtioPciCap.SHARED_MEMORY_CFG, PciBar.SHM, off, r.length, 24, r.id);
      this.put(c + CapField.EXTRA, 4, hi32(off));
      this.put(c + CapField.EXTRA2, 4, hi32(r.length));
      caps.shm.push(c);
    });
    return caps;
  }

  private setBar(i: number, b: BarInfo): void {
    this.bars[i] = b;
    const off = PciCfg.BAR0 + 4 * i;
    const flags = b.io ? 1 : b.is64 ? 4 : 0;
    const mask = b.io ? ~(b.size - 1) & ~3 : ~(b.size - 1) & ~15;
    this.put(off, 4, flags, mask >>> 0);
    if (b.is64) this.put(off + 4, 4, 0, 0xffffffff);
  }

  configRead(offset: number, width: number): number {
    try {
      if (!(width === 1 || width === 2 || width === 4) || offset % width !== 0 || offset < 0) {
        this.bad(BadAccess.WIDTH, 'pci-config', offset, width, false);
        return 0;
      }
      // No PCI Express extended configuration space: it reads as 0 (no capabilities).
      if (offset + width > PciCfg.SIZE) {
        this.bad(BadAccess.OFFSET, 'pci-config', offset, width, false);
        return 0;
      }
      // 4.1.4.5.1: the Interrupt Status bit mirrors ISR while MSI-X is off.
      const intx = this.isr !== 0 && !this.msixEnabled;
      this.cfg[PciCfg.STATUS] = (this.cfg[PciCfg.STATUS]! & ~PciStatus.INTERRUPT) | (intx ? PciStatus.INTERRUPT : 0);
      const data = this.caps.pciCfg + CapField.EXTRA;
      if (offset < data + 4 && offset + width > data) this.pciCfgAccess(false);
      let v = 0;
      for (let i = width - 1; i >= 0; i--) v = v * 256 + this.cfg[offset + i]!;
      return v;
    } catch (e) {
      this.bad(BadAccess.REFUSED, 'pci-config', offset, width, false, String(e));
      return 0;
    }
  }

  configWrite(offset: number, width: number, value: number): void {
    try {
      if (!(width === 1 || width === 2 || width === 4) || offset % width !== 0 || offset < 0) {
        return this.bad(BadAccess.WIDTH, 'pci-config', offset, width, true);
      }
      if (offset + width > PciCfg.SIZE) return this.bad(BadAccess.OFFSET, 'pci-config', offset, width, true);
      let writable = false;
      for (let i = 0; i < width; i++) {
        const wm = this.wmask[offset + i]!;
        if (wm) writable = true;
        const b = Math.floor(value / 256 ** i) & 0xff;
        this.cfg[offset + i] = (this.cfg[offset + i]! & ~wm) | (b & wm);
      }
      // 4.1.4: writes into the virtio capabilities other than PCI_CFG are the driver's error.
      if (!writable && offset >= 0x40) this.bad(BadAccess.READ_ONLY, 'pci-config', offset, width, true);
      const hits = (start: number, len: number): boolean => offset < start + len && offset + width > start;
      if (hits(PciCfg.COMMAND, 2)) this.updateIntx();
      if (this.msix && hits(this.caps.msix + Msix.CTRL, 2)) {
        const ctrl = this.u16(this.caps.msix + Msix.CTRL);
        const was = this.msix.enabled;
        this.msix.enabled = (ctrl & Msix.CTRL_ENABLE) !== 0;
        this.msix.functionMasked = (ctrl & Msix.CTRL_MASKALL) !== 0;
        if (was !== this.msix.enabled) this.updateIntx();
        this.msix.deliverPending();
      }
      if (hits(this.caps.pciCfg + CapField.EXTRA, 4)) this.pciCfgAccess(true);
    } catch (e) {
      this.bad(BadAccess.REFUSED, 'pci-config', offset, width, true, String(e));
    }
  }

  /** 4.1.4.9: a BAR access through the configuration window. */
  private pciCfgAccess(write: boolean): void {
    const c = this.caps.pciCfg;
    const bar = this.cfg[c + CapField.BAR]!;
    const off = this.u32(c + CapField.OFFSET);
    const len = this.u32(c + CapField.LENGTH);
    if (!(len === 1 || len === 2 || len === 4) || off % len !== 0) {
      return this.bad(BadAccess.VALUE, 'pci-cfg-cap', off, len, write, `bar ${bar}`);
    }
    const data = c + CapField.EXTRA;
    if (write) {
      let v = 0;
      for (let i = len - 1; i >= 0; i--) v = v * 256 + this.cfg[data + i]!;
      this.barWrite(bar, off, len, v);
    } else {
      const v = this.barRead(bar, off, len);
      this.put(data, len, v);
    }
  }

  // ---- BARs -------------------------------------------------------------------------------

  barRead(bar: number, offset: number, width: number): number {
    try {
      if (!(width === 1 || width === 2 || width === 4 || width === 8) || offset < 0) {
        this.bad(BadAccess.WIDTH, `bar${bar}`, offset, width, false);
        return 0;
      }
      switch (bar) {
        case PciBar.MODERN:
          return this.modernRead(offset, width);
        case PciBar.MSIX: {
          const v = this.msix?.read(offset, width) ?? null;
          if (v === null) this.bad(BadAccess.OFFSET, 'msix', offset, width, false);
          return v ?? 0;
        }
        case PciBar.LEGACY_IO:
          if (this.transitional) return this.legacyRead(offset, width);
          break;
      }
      this.bad(BadAccess.OFFSET, `bar${bar}`, offset, width, false);
      return 0;
    } catch (e) {
      this.bad(BadAccess.REFUSED, `bar${bar}`, offset, width, false, String(e));
      return 0;
    }
  }

  barWrite(bar: number, offset: number, width: number, value: number): void {
    try {
      if (!(width === 1 || width === 2 || width === 4 || width === 8) || offset < 0) {
        return this.bad(BadAccess.WIDTH, `bar${bar}`, offset, width, true);
      }
      switch (bar) {
        case PciBar.MODERN:
          return this.modernWrite(offset, width, value);
        case PciBar.MSIX:
          if (this.msix && !this.msix.write(offset, width, value)) {
            // Writes to the PBA are ignored by rule; other misfits are reported.
            if (offset < this.msix.pbaOffset) this.bad(BadAccess.WIDTH, 'msix', offset, width, true);
          }
          if (this.msix) return;
          break;
        case PciBar.LEGACY_IO:
          if (this.transitional) return this.legacyWrite(offset, width, value);
          break;
      }
      this.bad(BadAccess.OFFSET, `bar${bar}`, offset, width, true);
    } catch (e) {
      this.bad(BadAccess.REFUSED, `bar${bar}`, offset, width, true, String(e));
    }
  }

  // ---- interface selection for transitional devices ------------------------------------------

  /**
   * A transitional device serves whichever interface the driver uses; the core is rebuilt for
   * the other one when the device is in reset (status 0). Returns false (access refused) when
   * the driver reaches for the other interface of a live device.
   */
  private useInterface(legacy: boolean, region: string, offset: number, width: number, write: boolean, resetWrite = false): boolean {
    const core = this.coreRef;
    if (this.legacyMode === legacy) return true;
    if (legacy && !this.transitional) return false;
    // A reset write always lands: it is how a driver takes the device back.
    if (resetWrite && core.status !== 0) this.setStatus(0);
    if (core.status !== 0) {
      this.bad(BadAccess.MODE, region, offset, width, write, legacy ? 'legacy access to a modern-driven device' : 'modern access to a legacy-driven device');
      return false;
    }
    core.setStatus(0);
    const mode: CoreMode = { legacy, littleEndian: legacy ? (this.opts.guestLittleEndian ?? true) : true };
    this.coreRef = this.factory(this, mode);
    this.legacyMode = legacy;
    this.afterReset();
    return true;
  }

  /** Whether the current core serves the legacy interface. */
  get legacyActive(): boolean {
    return this.legacyMode;
  }

  private afterReset(): void {
    this.isr = 0;
    this.configVector = NO_VECTOR;
    this.dfSelect = 0;
    this.drfSelect = 0;
    this.queueSel = 0;
    this.legacyPfn.fill(0);
    // 4.1.5.1.2.1: every event is unmapped on reset.
    for (let i = 0; i < this.coreRef.numQueues; i++) {
      const q = this.coreRef.queueRegisters(i);
      if (q) {
        q.msixVector = NO_VECTOR;
        q.enabled = false;
        // 4.1.4.3: queue_size starts at the maximum after reset.
        q.size = this.coreRef.device.queueMaxSizes[i] ?? 0;
      }
    }
    this.updateIntx();
    this.refreshFeatures();
  }

  private setStatus(value: number): void {
    this.coreRef.setStatus(value);
    if (value === 0) this.afterReset();
    else this.refreshFeatures();
  }

  private refreshFeatures(): void {
    const core = this.coreRef;
    const f = core.status & Status.FEATURES_OK || this.legacyMode ? core.negotiatedFeatures : 0n;
    this.notificationData = (f & F.NOTIFICATION_DATA) !== 0n;
    this.notifConfigData = (f & F.NOTIF_CONFIG_DATA) !== 0n;
    this.ringReset = (f & F.RING_RESET) !== 0n;
    this.packed = (f & F.RING_PACKED) !== 0n;
  }

  // ---- modern BAR ------------------------------------------------------------------------

  private modernRead(offset: number, width: number): number {
    const ml = this.layout;
    if (offset >= ml.common && offset < ml.common + CommonCfg.SIZE) {
      if (!this.useInterface(false, 'common', offset, width, false)) return 0;
      return this.commonRead(offset - ml.common, width);
    }
    if (offset >= ml.isr && offset < ml.isr + 4) {
      if (offset !== ml.isr || width !== 1) {
        this.bad(BadAccess.WIDTH, 'isr', offset, width, false);
        return 0;
      }
      return this.readIsr();
    }
    const dev = offset - ml.device;
    if (dev >= 0 && dev < ml.deviceSpan) {
      if (!this.useInterface(false, 'device', offset, width, false)) return 0;
      if (!(width === 1 || width === 2 || width === 4) || dev % width !== 0 || dev + width > this.coreRef.device.configSize) {
        this.bad(dev + width > this.coreRef.device.configSize ? BadAccess.OFFSET : BadAccess.WIDTH, 'device', dev, width, false);
        return 0;
      }
      return readConfigValue(this.coreRef, this.scratch, dev, width);
    }
    const n = offset - ml.notify;
    if (n >= 0 && n < this.notifyLen) {
      this.bad(BadAccess.WRITE_ONLY, 'notify', n, width, false);
      return 0;
    }
    this.bad(BadAccess.OFFSET, 'modern', offset, width, false);
    return 0;
  }

  private modernWrite(offset: number, width: number, value: number): void {
    const ml = this.layout;
    if (offset >= ml.common && offset < ml.common + CommonCfg.SIZE) {
      const c = offset - ml.common;
      const resetWrite = c === CommonCfg.DEVICE_STATUS && width === 1 && (value & 0xff) === 0;
      if (!this.useInterface(false, 'common', c, width, true, resetWrite)) return;
      return this.commonWrite(c, width, value);
    }
    const n = offset - ml.notify;
    if (n >= 0 && n < this.notifyLen) return this.notifyWrite(n, width, value);
    if (offset >= ml.isr && offset < ml.isr + 4) return this.bad(BadAccess.READ_ONLY, 'isr', offset, width, true);
    const dev = offset - ml.device;
    if (dev >= 0 && dev < ml.deviceSpan) {
      if (!this.useInterface(false, 'device', offset, width, true)) return;
      if (!(width === 1 || width === 2 || width === 4) || dev % width !== 0 || dev + width > this.coreRef.device.configSize) {
        return this.bad(dev + width > this.coreRef.device.configSize ? BadAccess.OFFSET : BadAccess.WIDTH, 'device', dev, width, true);
      }
      writeConfigValue(this.coreRef, dev, width, value);
      return;
    }
    this.bad(BadAccess.OFFSET, 'modern', offset, width, true);
  }

  /** Field of the common configuration containing `off`: [start, size]. */
  private static commonField(off: number): [number, number] {
    if (off < 0x10) return [off & ~3, 4];
    if (off < 0x14) return [off & ~1, 2];
    if (off < 0x16) return [off, 1];
    if (off < 0x20) return [off & ~1, 2];
    if (off < 0x38) return [off - ((off - 0x20) % 8), 8];
    return [off & ~1, 2];
  }

  private commonAccessOk(offset: number, width: number, write: boolean): [number, boolean] | null {
    const [start, size] = PciDeviceTransport.commonField(offset);
    // 64-bit fields: whole, or either 32-bit half (4.1.3.1).
    if (width === size && offset === start) return [start, false];
    if (size === 8 && width === 4 && (offset === start || offset === start + 4)) return [start, offset !== start];
    this.bad(BadAccess.WIDTH, 'common', offset, width, write);
    return null;
  }

  private selQueue(): QueueRegisters | null {
    return this.coreRef.queueRegisters(this.queueSel);
  }

  private commonRead(offset: number, width: number): number {
    const ok = this.commonAccessOk(offset, width, false);
    if (!ok) return 0;
    const [field, high] = ok;
    const core = this.coreRef;
    const q = field >= CommonCfg.QUEUE_SIZE ? this.selQueue() : null;
    const part = (v: number): number => (width === 8 ? Math.max(v, 0) : high ? hi32(Math.max(v, 0)) : lo32(Math.max(v, 0)));
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
        return this.configVector;
      case CommonCfg.NUM_QUEUES:
        return core.numQueues;
      case CommonCfg.DEVICE_STATUS:
        return core.status & 0xff;
      case CommonCfg.CONFIG_GENERATION:
        return core.configGeneration & 0xff;
      case CommonCfg.QUEUE_SELECT:
        return this.queueSel;
      case CommonCfg.QUEUE_SIZE:
        // 4.1.4.3.1: 0 for a queue that is unavailable.
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
      case CommonCfg.ADMIN_QUEUE_NUM:
        return 0;
    }
    return 0;
  }

  private vectorOk(v: number, offset: number, width: number): number {
    // 4.1.5.1.2.1: a vector outside the table cannot be mapped; reads then give NO_VECTOR.
    if (v === NO_VECTOR) return v;
    if (!this.msix || v >= this.msix.size) {
      this.bad(BadAccess.VALUE, 'common', offset, width, true, `vector ${v}`);
      return NO_VECTOR;
    }
    return v;
  }

  private commonWrite(offset: number, width: number, value: number): void {
    const ok = this.commonAccessOk(offset, width, true);
    if (!ok) return;
    const [field, high] = ok;
    const core = this.coreRef;
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
        this.configVector = this.vectorOk(v, offset, width);
        return;
      case CommonCfg.DEVICE_STATUS:
        this.setStatus(v);
        return;
      case CommonCfg.QUEUE_SELECT:
        this.queueSel = v;
        return;
      case CommonCfg.QUEUE_MSIX_VECTOR: {
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, 'common', offset, width, true);
        q.msixVector = this.vectorOk(v, offset, width);
        return;
      }
      case CommonCfg.QUEUE_SIZE: {
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, 'common', offset, width, true);
        if (q.enabled) return this.bad(BadAccess.QUEUE_ENABLED, 'common', offset, width, true);
        const max = core.device.queueMaxSizes[this.queueSel] ?? 0;
        // 4.1.4.3.2: never 0; a power of 2 unless RING_PACKED; never above the maximum.
        if (v === 0 || v > max || (!this.packed && (v & (v - 1)) !== 0)) {
          return this.bad(BadAccess.VALUE, 'common', offset, width, true, `size ${v}`);
        }
        q.size = v;
        return;
      }
      case CommonCfg.QUEUE_ENABLE: {
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, 'common', offset, width, true);
        // 4.1.4.3.2: the driver MUST NOT write 0.
        if (v !== 1) return this.bad(BadAccess.VALUE, 'common', offset, width, true, 'queue_enable 0');
        if (q.enabled) return;
        try {
          core.enableQueue(this.queueSel);
        } catch (e) {
          q.enabled = false;
          this.bad(BadAccess.REFUSED, 'common', offset, width, true, String(e));
        }
        return;
      }
      case CommonCfg.QUEUE_DESC:
      case CommonCfg.QUEUE_DRIVER:
      case CommonCfg.QUEUE_DEVICE: {
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, 'common', offset, width, true);
        if (q.enabled) return this.bad(BadAccess.QUEUE_ENABLED, 'common', offset, width, true);
        const key = field === CommonCfg.QUEUE_DESC ? 'descAddr' : field === CommonCfg.QUEUE_DRIVER ? 'driverAddr' : 'deviceAddr';
        const cur = Math.max(q[key], 0);
        q[key] = width === 8 ? v : high ? join64(lo32(cur), v) : join64(v, hi32(cur));
        return;
      }
      case CommonCfg.QUEUE_RESET: {
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, 'common', offset, width, true);
        if (!this.ringReset) return this.bad(BadAccess.MODE, 'common', offset, width, true, 'RING_RESET not negotiated');
        if (v === 1) {
          core.resetQueue(this.queueSel);
          q.enabled = false;
        }
        return;
      }
    }
    // device_feature, num_queues, config_generation, queue_notify_off, queue_notif_config_data,
    // admin fields: 4.1.4.3.2 the driver MUST NOT write them.
    this.bad(BadAccess.READ_ONLY, 'common', offset, width, true);
  }

  /** 4.1.4.4 / 4.1.5.2: an available buffer notification. Hot path: no allocation. */
  private notifyWrite(n: number, width: number, value: number): void {
    if (this.legacyMode) return this.bad(BadAccess.MODE, 'notify', n, width, true);
    if (width !== 2 && width !== 4) return this.bad(BadAccess.WIDTH, 'notify', n, width, true);
    const core = this.coreRef;
    const mult = this.notifyOffMultiplier;
    let index: number;
    const key = value & 0xffff;
    if (mult !== 0) {
      if (n % mult !== 0) return this.bad(BadAccess.OFFSET, 'notify', n, width, true);
      index = n / mult;
    } else if (this.notifConfigData) {
      index = -1;
      for (let i = 0; i < core.numQueues; i++) {
        if (core.queueRegisters(i)?.notifyData === key) {
          index = i;
          break;
        }
      }
    } else {
      index = key;
    }
    const q = index >= 0 ? core.queueRegisters(index) : null;
    if (!q) return this.bad(BadAccess.NO_QUEUE, 'notify', n, width, true);
    if (!q.enabled) return this.bad(BadAccess.QUEUE_DISABLED, 'notify', n, width, true);
    if (this.notificationData) core.notifyQueue(index, value >>> 0);
    else core.notifyQueue(index);
  }

  private readIsr(): number {
    // 4.1.4.5.1: reading ISR clears it (and deasserts INTx).
    const v = this.isr;
    this.isr = 0;
    this.updateIntx();
    return v;
  }

  // ---- legacy I/O BAR --------------------------------------------------------------------

  private legacyConfigBase(): number {
    return this.msixEnabled ? LegacyReg.CONFIG_MSIX : LegacyReg.CONFIG_NO_MSIX;
  }

  private legacyRead(offset: number, width: number): number {
    if (!this.useInterface(true, 'legacy', offset, width, false)) return 0;
    const core = this.coreRef;
    const cfgBase = this.legacyConfigBase();
    if (offset >= cfgBase) {
      const off = offset - cfgBase;
      // 4.1.4.8: any width; results as with natural accesses.
      if (width > 4 || off + width > core.device.configSize) {
        this.bad(BadAccess.OFFSET, 'legacy', offset, width, false);
        return 0;
      }
      return readConfigValue(core, this.scratch, off, width);
    }
    const q = this.selQueue();
    switch (offset) {
      case LegacyReg.HOST_FEATURES:
        if (width === 4) return core.deviceFeatureWord(0) >>> 0;
        break;
      case LegacyReg.GUEST_FEATURES:
        if (width === 4) return Number(core.driverFeatures & 0xffff_ffffn);
        break;
      case LegacyReg.QUEUE_PFN:
        if (width === 4) return this.legacyPfn[this.queueSel] ?? 0;
        break;
      case LegacyReg.QUEUE_SIZE:
        if (width === 2) return q ? (core.device.queueMaxSizes[this.queueSel] ?? 0) : 0;
        break;
      case LegacyReg.QUEUE_SELECT:
        if (width === 2) return this.queueSel;
        break;
      case LegacyReg.QUEUE_NOTIFY:
        if (width === 2) return 0;
        break;
      case LegacyReg.STATUS:
        if (width === 1) return core.status & 0xff;
        break;
      case LegacyReg.ISR:
        if (width === 1) return this.readIsr();
        break;
      case LegacyReg.CONFIG_MSIX_VECTOR:
        if (width === 2) return this.configVector;
        break;
      case LegacyReg.QUEUE_MSIX_VECTOR:
        if (width === 2) return q ? q.msixVector : NO_VECTOR;
        break;
      default:
        this.bad(BadAccess.OFFSET, 'legacy', offset, width, false);
        return 0;
    }
    this.bad(BadAccess.WIDTH, 'legacy', offset, width, false);
    return 0;
  }

  private legacyWrite(offset: number, width: number, value: number): void {
    const resetWrite = offset === LegacyReg.STATUS && width === 1 && (value & 0xff) === 0;
    if (!this.useInterface(true, 'legacy', offset, width, true, resetWrite)) return;
    const core = this.coreRef;
    const cfgBase = this.legacyConfigBase();
    if (offset >= cfgBase) {
      const off = offset - cfgBase;
      if (width > 4 || off + width > core.device.configSize) return this.bad(BadAccess.OFFSET, 'legacy', offset, width, true);
      writeConfigValue(core, off, width, value);
      return;
    }
    const v = value >>> 0;
    switch (offset) {
      case LegacyReg.GUEST_FEATURES:
        if (width !== 4) break;
        core.setDriverFeatureWord(0, v);
        return;
      case LegacyReg.QUEUE_PFN:
        if (width !== 4) break;
        return this.legacyPfnWrite(v);
      case LegacyReg.QUEUE_SELECT:
        if (width !== 2) break;
        this.queueSel = v & 0xffff;
        return;
      case LegacyReg.QUEUE_NOTIFY: {
        if (width !== 2) break;
        const q = core.queueRegisters(v & 0xffff);
        if (!q) return this.bad(BadAccess.NO_QUEUE, 'legacy', offset, width, true);
        if (!q.enabled) return this.bad(BadAccess.QUEUE_DISABLED, 'legacy', offset, width, true);
        core.notifyQueue(v & 0xffff);
        return;
      }
      case LegacyReg.STATUS:
        if (width !== 1) break;
        this.setStatus(v & 0xff);
        return;
      case LegacyReg.CONFIG_MSIX_VECTOR:
        if (width !== 2) break;
        this.configVector = this.vectorOk(v & 0xffff, offset, width);
        return;
      case LegacyReg.QUEUE_MSIX_VECTOR: {
        if (width !== 2) break;
        const q = this.selQueue();
        if (!q) return this.bad(BadAccess.NO_QUEUE, 'legacy', offset, width, true);
        q.msixVector = this.vectorOk(v & 0xffff, offset, width);
        return;
      }
      case LegacyReg.HOST_FEATURES:
      case LegacyReg.QUEUE_SIZE:
      case LegacyReg.ISR:
        return this.bad(BadAccess.READ_ONLY, 'legacy', offset, width, true);
      default:
        return this.bad(BadAccess.OFFSET, 'legacy', offset, width, true);
    }
    this.bad(BadAccess.WIDTH, 'legacy', offset, width, true);
  }

  /** 4.1.5.4 legacy: the ring is contiguous at PFN << 12 with 4096 alignment; 0 stops it. */
  private legacyPfnWrite(pfn: number): void {
    const sel = this.queueSel;
    const q = this.selQueue();
    if (!q) return this.bad(BadAccess.NO_QUEUE, 'legacy', LegacyReg.QUEUE_PFN, 4, true);
    if (pfn === 0) {
      this.legacyPfn[sel] = 0;
      if (q.enabled) {
        try {
          this.coreRef.resetQueue(sel);
        } catch {
          // Stopped either way.
        }
        q.enabled = false;
      }
      return;
    }
    if (q.enabled) return this.bad(BadAccess.QUEUE_ENABLED, 'legacy', LegacyReg.QUEUE_PFN, 4, true);
    const size = this.coreRef.device.queueMaxSizes[sel] ?? 0;
    const base = pfn * 2 ** LEGACY_PFN_SHIFT;
    const l = legacySplitLayout(size, 1 << LEGACY_PFN_SHIFT);
    q.size = size;
    q.descAddr = base + l.desc;
    q.driverAddr = base + l.avail;
    q.deviceAddr = base + l.used;
    try {
      this.coreRef.enableQueue(sel);
      this.legacyPfn[sel] = pfn;
    } catch (e) {
      q.enabled = false;
      this.bad(BadAccess.REFUSED, 'legacy', LegacyReg.QUEUE_PFN, 4, true, String(e));
    }
  }

  // ---- interrupts ------------------------------------------------------------------------

  private updateIntx(): void {
    const disabled = (this.u16(PciCfg.COMMAND) & PciCommand.INTX_DISABLE) !== 0;
    if (this.isr !== 0 && !disabled && !this.msixEnabled) this.bus.raiseIrq();
    else this.bus.lowerIrq();
  }

  usedBuffer(queueIndex: number): void {
    if (this.msix?.enabled) {
      // 4.1.5.1.2.1: NO_VECTOR means no interrupt for this queue.
      const v = this.coreRef.queueRegisters(queueIndex)?.msixVector ?? NO_VECTOR;
      if (v !== NO_VECTOR) this.msix.signal(v);
      return;
    }
    // 4.1.4.5.1: ISR queue bit before the notification.
    this.isr |= IsrBit.QUEUE;
    this.updateIntx();
  }

  configChange(): void {
    // 4.1.4.5.1: ISR config bit is set before any configuration change notification.
    this.isr |= IsrBit.CONFIG;
    if (this.msix?.enabled) {
      if (this.configVector !== NO_VECTOR) this.msix.signal(this.configVector);
      return;
    }
    this.updateIntx();
  }
}
