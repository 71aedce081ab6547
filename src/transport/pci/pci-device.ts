/**
 * 4.1 Virtio Over PCI Bus, device side: one PCI function serving a device core. It composes
 * the configuration space (`pci-config-space.ts`: header, BARs, MSI-X and virtio capabilities),
 * the modern BAR (`pci-common-config.ts`: common configuration, notifications, ISR, device
 * configuration), the MSI-X table BAR, for transitional devices the legacy I/O BAR
 * (`pci-legacy-io.ts`, 4.1.4.8, serving a legacy driver through the same device), and the
 * device's shared memory regions in a BAR of their own (4.1.4.7).
 *
 * The host emulator routes configuration cycles to `configRead/configWrite` and BAR accesses to
 * `barRead/barWrite` (it finds the BAR from `barAddress`). Nothing here throws: an access the
 * transport does not define reads as 0 (configuration space: as the PCI rules say) and is
 * reported to `onBadAccess`.
 */
import type { DeviceCoreApi, InterruptSink } from '../../device/types.js';
import { F } from '../../spec/features.js';
import { BadAccess, type BadAccessListener, type CoreFactory, type CoreMode, type TransportBus, TransportFeatureFlags } from '../bus.js';
import { type PlacedSharedMemoryRegion, SHARED_MEMORY_ALIGN, placeSharedMemory, readLe, sharedMemoryAt, sharedMemorySpan, writeLe } from '../shared-memory.js';
import { CapField, IsrBit, LegacyReg, Msix, NO_VECTOR, PciBar, PciCfg, PciCommand, PciStatus } from './constants.js';
import { MsixTable } from './msix.js';
import { type ModernLayout, PciModernRegisters, type PciRegisterHost, modernLayoutFor, pow2AtLeast } from './pci-common-config.js';
import { type PciCapOffsets, PciConfigSpace } from './pci-config-space.js';
import { PCI_EXT_CONFIG_SIZE, SRIOV_CAP_OFFSET, type SriovCapability } from './sriov-capability.js';
import { PciLegacyRegisters } from './pci-legacy-io.js';

/** What a PCI function offers its bus: configuration cycles and BAR accesses. */
export interface PciFunction {
  /** A configuration space read of `width` bytes at `offset`. */
  configRead(offset: number, width: number): number;
  /** A configuration space write. */
  configWrite(offset: number, width: number, value: number): void;
  /** A read of `width` bytes at `offset` in BAR `bar`. */
  barRead(bar: number, offset: number, width: number): number;
  /** A write of `width` bytes at `offset` in BAR `bar`. */
  barWrite(bar: number, offset: number, width: number, value: number): void;
}

/**
 * The modern interface: little-endian, queue_notif_config_data and admin_queue_index /
 * admin_queue_num in the common configuration.
 */
const MODERN_MODE: CoreMode = { legacy: false, littleEndian: true, transportFeatures: F.NOTIF_CONFIG_DATA | F.ADMIN_VQ };
/** The modern interface of a PF with the SR-IOV capability: VIRTIO_F_SR_IOV too (device/content/27). */
const MODERN_SRIOV_MODE: CoreMode = { ...MODERN_MODE, transportFeatures: MODERN_MODE.transportFeatures! | F.SR_IOV };

/** Options of PciDeviceTransport. */
export interface PciDeviceOptions {
  /** Serve the legacy interface too (I/O BAR0, transitional device id). Default false. */
  readonly transitional?: boolean;
  /** MSI-X table size; 0 leaves out the MSI-X capability. Default: one per queue plus config. */
  readonly msixVectors?: number;
  /** 4.1.4.4: 0 or an even power of two (a multiple of 4 with NOTIFICATION_DATA). Default 4. */
  readonly notifyOffMultiplier?: number;
  /** Legacy interface only: false for a big-endian guest. */
  readonly guestLittleEndian?: boolean;
  /** PCI subsystem vendor id (default the virtio vendor, 0x1af4). */
  readonly subsystemVendorId?: number;
  /** Told of every access the transport refused (a register it does not define, a bad width). */
  readonly onBadAccess?: BadAccessListener;
  /**
   * Put the modern structures (common, ISR, notify, device configuration) in a compact 32-bit
   * I/O BAR (BAR4) instead of the 64-bit memory BAR, for emulators whose PCI bus maps only I/O
   * space (v86). 4.1.4: a capability may point into any BAR, memory or I/O. Default false.
   */
  readonly modernIoBar?: boolean;
  /**
   * A physical function with the PCIe SR-IOV Extended Capability at 0x100 of its extended
   * configuration space: the function then offers VIRTIO_F_SR_IOV and its VFs come and go with
   * VF Enable. Without it there is no extended configuration space.
   */
  readonly sriov?: SriovCapability;
}

export { type ModernLayout, modernLayoutFor } from './pci-common-config.js';
export type { PciCapOffsets } from './pci-config-space.js';

/**
 * The device side of virtio over PCI (4.1) at register level: configuration space with the virtio
 * capabilities, the modern common, notify, ISR and device config structures, MSI-X, shared memory
 * regions, and the legacy I/O BAR of a transitional device. The emulator routes configuration
 * cycles and BAR accesses to it; nothing here throws.
 */
export class PciDeviceTransport implements PciFunction, InterruptSink {
  /** Whether the legacy interface is served too (transitional device id, I/O BAR0). */
  readonly transitional: boolean;
  /** Where each virtio capability sits in configuration space. */
  readonly caps: PciCapOffsets;
  /** notify_off_multiplier of the notify capability (4.1.4.4). */
  readonly notifyOffMultiplier: number;
  /** Where the modern structures sit in the modern BAR. */
  readonly layout: ModernLayout;
  /** 4.1.4.7: the device's shared memory regions, at their offsets in the shared memory BAR. */
  readonly sharedMemoryRegions: readonly PlacedSharedMemoryRegion[];
  /** Refused accesses, for tests and diagnostics. */
  badAccesses = 0;

  private coreRef: DeviceCoreApi;
  private readonly factory: CoreFactory;
  private readonly config: PciConfigSpace;
  private readonly msix: MsixTable | null;
  private readonly modern: PciModernRegisters;
  private readonly legacyIo: PciLegacyRegisters;
  private readonly onBad: BadAccessListener | undefined;
  /** Derived from the negotiated features at each status write (no BigInt per access). */
  private readonly flags = new TransportFeatureFlags();

  private isr = 0;
  private legacyMode = false;
  private configVector = NO_VECTOR;

  constructor(
    private readonly bus: TransportBus,
    factory: CoreFactory,
    private readonly opts: PciDeviceOptions = {},
  ) {
    this.factory = factory;
    this.transitional = opts.transitional ?? false;
    this.onBad = opts.onBadAccess;
    // The legacy interface is chosen by the driver's first access; start modern.
    this.coreRef = factory(this, opts.sriov ? MODERN_SRIOV_MODE : MODERN_MODE);
    const device = this.coreRef.device;
    const nq = this.coreRef.numQueues;
    const mult = opts.notifyOffMultiplier ?? 4;
    this.notifyOffMultiplier = mult;
    // 4.1.4.4: room for every queue's notify address plus a 32-bit write.
    const notifyLen = Math.max(4, mult * Math.max(nq - 1, 0) + 4);
    const vectors = Math.min(opts.msixVectors ?? nq + 1, Msix.MAX_VECTORS);
    this.msix = vectors > 0 ? new MsixTable(vectors, bus) : null;
    this.layout = modernLayoutFor(opts.modernIoBar ?? false, notifyLen, device.configSize);
    // cap.id is 8 bits wide (4.1.4.7).
    this.sharedMemoryRegions = placeSharedMemory(device.sharedMemoryRegions, 0xff);
    this.config = new PciConfigSpace({
      deviceId: device.deviceId,
      configSize: device.configSize,
      transitional: this.transitional,
      subsystemVendorId: opts.subsystemVendorId,
      pciExpress: opts.sriov !== undefined,
      msix: this.msix,
      layout: this.layout,
      notifyLen,
      notifyOffMultiplier: mult,
      legacyBarSize: pow2AtLeast(LegacyReg.CONFIG_MSIX + device.configSize, 32),
      sharedMemory: this.sharedMemoryRegions,
      sharedMemoryBarSize: pow2AtLeast(sharedMemorySpan(this.sharedMemoryRegions), SHARED_MEMORY_ALIGN),
    });
    this.caps = this.config.caps;
    const host = this.registerHost();
    this.modern = new PciModernRegisters(host, this.layout, notifyLen, mult);
    this.legacyIo = new PciLegacyRegisters(host);
  }

  /** What the register blocks see of this function (kept off its public API). */
  private registerHost(): PciRegisterHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      get core() {
        return self.coreRef;
      },
      flags: this.flags,
      get legacy() {
        return self.legacyMode;
      },
      get configVector() {
        return self.configVector;
      },
      set configVector(v: number) {
        self.configVector = v;
      },
      get msixEnabled() {
        return self.msixEnabled;
      },
      bad: (reason, region, offset, width, write, detail) => this.bad(reason, region, offset, width, write, detail),
      setStatus: (v) => this.setStatus(v),
      readIsr: () => this.readIsr(),
      mapVector: (v, region, offset, width) => this.mapVector(v, region, offset, width),
      useInterface: (legacy, region, offset, width, write, resetWrite) => this.useInterface(legacy, region, offset, width, write, resetWrite),
    };
  }

  /**
   * The device core behind the interface in use (a transitional device gets a fresh one when the
   * driver switches interface).
   */
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
    return this.config.barSize(i);
  }
  /** Whether BAR `i` is an I/O BAR (the legacy BAR of a transitional device). */
  barIsIo(i: number): boolean {
    return this.config.barIsIo(i);
  }
  /** The address the driver programmed into BAR `i` (for the emulator's decoding). */
  barAddress(i: number): number {
    return this.config.barAddress(i);
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

  configRead(offset: number, width: number): number {
    try {
      if (!(width === 1 || width === 2 || width === 4) || offset % width !== 0 || offset < 0) {
        this.bad(BadAccess.WIDTH, 'pci-config', offset, width, false);
        return 0;
      }
      const sriov = this.opts.sriov;
      if (sriov && offset >= SRIOV_CAP_OFFSET && offset + width <= PCI_EXT_CONFIG_SIZE) return sriov.read(offset - SRIOV_CAP_OFFSET, width);
      // No PCI Express extended configuration space: it reads as 0 (no capabilities).
      if (offset + width > PciCfg.SIZE) {
        this.bad(BadAccess.OFFSET, 'pci-config', offset, width, false);
        return 0;
      }
      const cfg = this.config.bytes;
      // 4.1.4.5.1: the Interrupt Status bit mirrors ISR while MSI-X is off.
      const intx = this.isr !== 0 && !this.msixEnabled;
      cfg[PciCfg.STATUS] = (cfg[PciCfg.STATUS]! & ~PciStatus.INTERRUPT) | (intx ? PciStatus.INTERRUPT : 0);
      const data = this.caps.pciCfg + CapField.EXTRA;
      if (offset < data + 4 && offset + width > data) this.pciCfgAccess(false);
      return this.config.read(offset, width);
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
      const sriov = this.opts.sriov;
      if (sriov && offset >= SRIOV_CAP_OFFSET && offset + width <= PCI_EXT_CONFIG_SIZE) {
        if (!sriov.write(offset - SRIOV_CAP_OFFSET, width, value)) this.bad(BadAccess.READ_ONLY, 'pci-config', offset, width, true);
        return;
      }
      if (offset + width > PciCfg.SIZE) return this.bad(BadAccess.OFFSET, 'pci-config', offset, width, true);
      const writable = this.config.write(offset, width, value);
      // 4.1.4: writes into the virtio capabilities other than PCI_CFG are the driver's error.
      if (!writable && offset >= 0x40) this.bad(BadAccess.READ_ONLY, 'pci-config', offset, width, true);
      const hits = (start: number, len: number): boolean => offset < start + len && offset + width > start;
      if (hits(PciCfg.COMMAND, 2)) this.updateIntx();
      if (this.msix && hits(this.caps.msix + Msix.CTRL, 2)) {
        const ctrl = this.config.u16(this.caps.msix + Msix.CTRL);
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
    const cfg = this.config;
    const bar = cfg.bytes[c + CapField.BAR]!;
    const off = cfg.u32(c + CapField.OFFSET);
    const len = cfg.u32(c + CapField.LENGTH);
    if (!(len === 1 || len === 2 || len === 4) || off % len !== 0) {
      return this.bad(BadAccess.VALUE, 'pci-cfg-cap', off, len, write, `bar ${bar}`);
    }
    const data = c + CapField.EXTRA;
    if (write) this.barWrite(bar, off, len, cfg.read(data, len));
    else cfg.put(data, len, this.barRead(bar, off, len));
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
          return this.modern.read(offset, width);
        case PciBar.MSIX: {
          const v = this.msix?.read(offset, width) ?? null;
          if (v === null) this.bad(BadAccess.OFFSET, 'msix', offset, width, false);
          return v ?? 0;
        }
        case PciBar.LEGACY_IO:
          if (this.transitional) return this.legacyIo.read(offset, width);
          break;
        case PciBar.SHM:
          if (this.sharedMemoryRegions.length > 0) return this.sharedMemoryAccess(offset, width, false, 0);
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
          return this.modern.write(offset, width, value);
        case PciBar.MSIX:
          if (this.msix && !this.msix.write(offset, width, value)) {
            // Writes to the PBA are ignored by rule; other misfits are reported.
            if (offset < this.msix.pbaOffset) this.bad(BadAccess.WIDTH, 'msix', offset, width, true);
          }
          if (this.msix) return;
          break;
        case PciBar.LEGACY_IO:
          if (this.transitional) return this.legacyIo.write(offset, width, value);
          break;
        case PciBar.SHM:
          if (this.sharedMemoryRegions.length > 0) {
            this.sharedMemoryAccess(offset, width, true, value);
            return;
          }
          break;
      }
      this.bad(BadAccess.OFFSET, `bar${bar}`, offset, width, true);
    } catch (e) {
      this.bad(BadAccess.REFUSED, `bar${bar}`, offset, width, true, String(e));
    }
  }

  /**
   * 4.1.4.7 / 2.10: an access to a shared memory region through its BAR reaches the region's
   * host memory. Widths 1, 2 and 4 (a CPU's accesses; 8 would not fit a number exactly);
   * gaps between regions and regions without host memory here read 0 and are reported.
   */
  private sharedMemoryAccess(offset: number, width: number, write: boolean, value: number): number {
    if (width === 8) {
      this.bad(BadAccess.WIDTH, 'shm', offset, width, write);
      return 0;
    }
    const i = sharedMemoryAt(this.sharedMemoryRegions, offset, width);
    const r = i >= 0 ? this.sharedMemoryRegions[i]! : null;
    if (!r?.memory) {
      this.bad(BadAccess.OFFSET, 'shm', offset, width, write, r ? `region ${r.id} has no host memory here` : undefined);
      return 0;
    }
    if (write) {
      writeLe(r.memory, offset - r.offset, width, value);
      return 0;
    }
    return readLe(r.memory, offset - r.offset, width);
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
    const mode: CoreMode = legacy ? { legacy, littleEndian: this.opts.guestLittleEndian ?? true } : this.opts.sriov ? MODERN_SRIOV_MODE : MODERN_MODE;
    this.coreRef = this.factory(this, mode);
    this.legacyMode = legacy;
    this.afterReset();
    return true;
  }

  /** Whether the current core serves the legacy interface. */
  get legacyActive(): boolean {
    return this.legacyMode;
  }

  /** The function's own registers after a device reset; the core reset the queue registers. */
  private afterReset(): void {
    this.isr = 0;
    // 4.1.5.1.2.1: every event is unmapped on reset (the queue vectors by the core).
    this.configVector = NO_VECTOR;
    this.modern.reset();
    this.legacyIo.reset();
    this.updateIntx();
  }

  private setStatus(value: number): void {
    this.coreRef.setStatus(value);
    if (value === 0) this.afterReset();
    this.flags.refresh(this.coreRef);
  }

  /** 4.1.5.1.2.1: a vector outside the table cannot be mapped; reads then give NO_VECTOR. */
  private mapVector(v: number, region: string, offset: number, width: number): number {
    if (v === NO_VECTOR) return v;
    if (!this.msix || v >= this.msix.size) {
      this.bad(BadAccess.VALUE, region, offset, width, true, `vector ${v}`);
      return NO_VECTOR;
    }
    return v;
  }

  // ---- interrupts ------------------------------------------------------------------------

  private readIsr(): number {
    // 4.1.4.5.1: reading ISR clears it (and deasserts INTx).
    const v = this.isr;
    this.isr = 0;
    this.updateIntx();
    return v;
  }

  private updateIntx(): void {
    const disabled = (this.config.u16(PciCfg.COMMAND) & PciCommand.INTX_DISABLE) !== 0;
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
