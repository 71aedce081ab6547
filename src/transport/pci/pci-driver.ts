/**
 * 4.1.3 / 4.1.5 Virtio Over PCI Bus, driver side: matches the PCI ids, walks the capability
 * list to find the virtio structures (modern), or drives the legacy I/O BAR of a transitional
 * device (4.1.4.8), and implements DriverTransport for VirtioDriver. Interrupts arrive through
 * `handleMsi` (MSI-X) or `handleIntx` (INTx, reads ISR).
 */
import type { AdminQueueRange } from '../../device/types.js';
import type { DriverInterruptHandler, DriverQueueAddresses, DriverTransport, QueueResetWaitOptions } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { F } from '../../spec/features.js';
import { legacySplitLayout } from '../../spec/ring.js';
import { type RegisterWindow, hi32, join64, lo32, readWindowBytes, writeWindowBytes } from '../bus.js';
import { waitForRegister } from '../register-wait.js';
import type { SharedMemoryRegionInfo } from '../shared-memory.js';
import {
  CapField,
  CommonCfg,
  IsrBit,
  LEGACY_PFN_SHIFT,
  LegacyReg,
  Msix,
  NO_VECTOR,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_VENDOR_VIRTIO,
  PciBar,
  PciCfg,
  PciCommand,
  VirtioPciCap,
  virtioIdFromPciDeviceId,
} from './constants.js';
import type { PciFunction } from './pci-device.js';
import { PCI_CAP_ID_EXP } from './pci-config-space.js';
import { PCI_EXT_CAP_ID_SRIOV, SRIOV_CAP_OFFSET } from './sriov-capability.js';

/** Capability list walk bound: 256 bytes hold at most 48 four-byte-aligned capabilities. */
const MAX_CAPS = 48;
const RESET_POLLS = 1000;
const MAX_PROBED_QUEUES = 1024;
/** MSI address the driver programs (x86 local APIC window), vector in the data. */
const MSI_ADDRESS = 0xfee0_0000;

/** Options of PciDriverTransport. */
export interface PciDriverOptions {
  /** Drive the legacy interface through I/O BAR0 (transitional devices only). */
  readonly legacy?: boolean;
  /** Use MSI-X when the device has it (default true); otherwise INTx and ISR. */
  readonly useMsix?: boolean;
  /**
   * driver/transport-pci/31: use INTx instead of MSI-X when the device's table has a single
   * vector (Table Size 0): one vector shared by every event gains nothing over INTx, and INTx
   * leaves the MSI-X table alone. Default false (MSI-X with the one vector).
   */
  readonly intxWhenOneVector?: boolean;
  /** Legacy only: false for a big-endian guest. */
  readonly guestLittleEndian?: boolean;
}

interface CapRef {
  bar: number;
  offset: number;
  length: number;
}

/** 4.1.4.7: a shared memory region found through its VIRTIO_PCI_CAP_SHARED_MEMORY_CFG capability. */
export interface PciSharedMemoryRegion extends SharedMemoryRegionInfo {
  /** The BAR holding it and its offset there; `base` is that BAR's address plus the offset. */
  readonly bar: number;
  /** Byte offset of the region within BAR `bar` (the capability's 64-bit offset). */
  readonly offset: number;
}

/** Bytes of a struct virtio_pci_cap64 (4.1.4.7). */
const CAP64_LEN = 24;

/** A BAR seen as a register window. */
class BarWindow implements RegisterWindow {
  constructor(
    private readonly fn: PciFunction,
    private readonly bar: number,
    private readonly base: number,
  ) {}
  read(offset: number, width: number): number {
    return this.fn.barRead(this.bar, this.base + offset, width);
  }
  write(offset: number, width: number, value: number): void {
    this.fn.barWrite(this.bar, this.base + offset, width, value);
  }
}

/**
 * The driver side of virtio over PCI at register level: walks the capabilities, programs the common
 * configuration structure (or the legacy I/O BAR), rings notifications and takes MSI-X or INTx
 * interrupts, over any PciFunction (a PciDeviceTransport in process, QEMU's device over x-remote).
 */
export class PciDriverTransport implements DriverTransport {
  readonly deviceId: number;
  /** The PCI device id read from configuration space. */
  readonly pciDeviceId: number;
  readonly legacy: boolean;
  readonly littleEndian: boolean;
  /** MSI-X table size (0 without MSI-X) and whether the driver turned it on. */
  readonly msixSize: number;
  /** Whether MSI-X is in use (else INTx with the ISR). */
  readonly msixActive: boolean;

  private readonly common: BarWindow | null = null;
  private readonly deviceCfg: BarWindow | null = null;
  /** The device configuration capability's length (0 without one). */
  private readonly deviceCfgLength: number = 0;
  private readonly isr: BarWindow | null = null;
  private readonly notifyCap: CapRef | null = null;
  private readonly notifyMult: number = 0;
  private readonly legacyIo: BarWindow | null = null;
  private readonly msixCap: number = -1;
  private handler: DriverInterruptHandler | null = null;
  /** Queue index -> vector, and the notify offset of each set-up queue. */
  private readonly queueVector = new Map<number, number>();
  private readonly notifyAddr = new Map<number, number>();
  private notificationData32 = false;
  /** VIRTIO_F_NOTIF_CONFIG_DATA negotiated: queues are named by their queue_notif_config_data. */
  private notifConfigData = false;
  /** The 16-bit value naming each set-up queue in its notifications. */
  private readonly notifyValue = new Map<number, number>();
  private queueCount = -1;
  /** 4.1.4.7 regions by shmid (the first capability of each id). */
  private readonly shm = new Map<number, CapRef>();
  /**
   * Offset of the PCIe SR-IOV Extended Capability in extended configuration space, or -1 (no
   * PCI Express Capability, or no SR-IOV capability at 0x100).
   */
  readonly sriovCapOffset: number = -1;

  constructor(
    private readonly fn: PciFunction,
    readonly memory: GuestMemory,
    opts: PciDriverOptions = {},
  ) {
    // 4.1.2.2: vendor 0x1af4; modern ids 0x1040..0x107f, transitional 0x1000..0x103f.
    const vendor = fn.configRead(PciCfg.VENDOR_ID, 2);
    const dev = fn.configRead(PciCfg.DEVICE_ID, 2);
    if (vendor !== PCI_VENDOR_VIRTIO) throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `not a virtio PCI function (vendor 0x${vendor.toString(16)})`);
    const id = virtioIdFromPciDeviceId(dev, fn.configRead(PciCfg.SUBSYSTEM_ID, 2));
    if (id <= 0) throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `not a virtio PCI device id 0x${dev.toString(16)}`);
    this.deviceId = id;
    this.pciDeviceId = dev;
    this.legacy = opts.legacy ?? false;
    this.littleEndian = this.legacy ? (opts.guestLittleEndian ?? true) : true;
    if (this.legacy && dev >= 0x1040) throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, 'a non-transitional device has no legacy interface');

    // Walk the capability list (bounded; a loop in the list cannot hang the driver).
    let ptr = fn.configRead(PciCfg.CAPABILITIES_POINTER, 1) & 0xfc;
    const found = new Map<number, CapRef>();
    let msixCap = -1;
    let pciExpress = false;
    for (let n = 0; n < MAX_CAPS && ptr >= 0x40; n++) {
      const capId = fn.configRead(ptr, 1);
      if (capId === PCI_CAP_ID_MSIX && msixCap < 0) msixCap = ptr;
      if (capId === PCI_CAP_ID_EXP) pciExpress = true;
      if (capId === PCI_CAP_ID_VNDR) {
        const type = fn.configRead(ptr + CapField.CFG_TYPE, 1);
        const bar = fn.configRead(ptr + CapField.BAR, 1);
        // 4.1.4.1: ignore reserved types and BARs; use the first instance of each type.
        if (bar <= 5 && !found.has(type) && type >= VirtioPciCap.COMMON_CFG && type <= VirtioPciCap.DEVICE_CFG) {
          found.set(type, { bar, offset: fn.configRead(ptr + CapField.OFFSET, 4), length: fn.configRead(ptr + CapField.LENGTH, 4) });
          if (type === VirtioPciCap.NOTIFY_CFG) this.notifyMult = fn.configRead(ptr + CapField.EXTRA, 4);
        }
        if (type === VirtioPciCap.SHARED_MEMORY_CFG && bar <= 5 && fn.configRead(ptr + CapField.LEN, 1) >= CAP64_LEN) {
          // virtio_pci_cap64: 64-bit offset and length in two halves; cap.id is the shmid.
          const id = fn.configRead(ptr + CapField.ID, 1);
          const offset = join64(fn.configRead(ptr + CapField.OFFSET, 4), fn.configRead(ptr + CapField.EXTRA, 4));
          const length = join64(fn.configRead(ptr + CapField.LENGTH, 4), fn.configRead(ptr + CapField.EXTRA2, 4));
          if (!this.shm.has(id) && offset >= 0 && length > 0) this.shm.set(id, { bar, offset, length });
        }
      }
      ptr = fn.configRead(ptr + CapField.NEXT, 1) & 0xfc;
    }
    this.msixCap = msixCap;
    // [PCIe] 7.6: extended configuration space exists only for a PCI Express function; its first
    // extended capability is at 0x100 (the SR-IOV one is all this driver looks for).
    if (pciExpress && (fn.configRead(SRIOV_CAP_OFFSET, 4) & 0xffff) === PCI_EXT_CAP_ID_SRIOV) this.sriovCapOffset = SRIOV_CAP_OFFSET;
    this.msixSize = msixCap >= 0 ? (fn.configRead(msixCap + Msix.CTRL, 2) & Msix.CTRL_SIZE_MASK) + 1 : 0;

    const cmd = fn.configRead(PciCfg.COMMAND, 2);
    fn.configWrite(PciCfg.COMMAND, 2, cmd | PciCommand.IO | PciCommand.MEMORY | PciCommand.BUS_MASTER);

    if (this.legacy) {
      this.legacyIo = new BarWindow(fn, PciBar.LEGACY_IO, 0);
    } else {
      const c = found.get(VirtioPciCap.COMMON_CFG);
      const nt = found.get(VirtioPciCap.NOTIFY_CFG);
      const is = found.get(VirtioPciCap.ISR_CFG);
      if (!c || !nt || !is) throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, 'virtio PCI capabilities missing');
      this.common = new BarWindow(fn, c.bar, c.offset);
      this.notifyCap = nt;
      this.isr = new BarWindow(fn, is.bar, is.offset);
      const d = found.get(VirtioPciCap.DEVICE_CFG);
      if (d) {
        this.deviceCfg = new BarWindow(fn, d.bar, d.offset);
        this.deviceCfgLength = d.length;
      }
    }

    // MSI-X: vector v sends data v; all entries unmasked; the function turned on.
    this.msixActive = (opts.useMsix ?? true) && this.msixSize > (opts.intxWhenOneVector === true ? 1 : 0);
    this.programMsix();
  }

  /**
   * MSI-X is the driver's to set up (4.1.4.5): vector v sends data v, all entries unmasked, the
   * function turned on. Done at start and again at every device reset, so whatever else wrote
   * the table or the control register meanwhile, the driver's view (where the legacy device
   * config starts, which vectors exist) is true again before it reinitializes the device.
   */
  private programMsix(): void {
    if (!this.msixActive) return;
    const fn = this.fn;
    for (let v = 0; v < this.msixSize; v++) {
      const e = v * Msix.ENTRY_SIZE;
      fn.barWrite(PciBar.MSIX, e + Msix.ENTRY_ADDR_LO, 4, MSI_ADDRESS);
      fn.barWrite(PciBar.MSIX, e + Msix.ENTRY_ADDR_HI, 4, 0);
      fn.barWrite(PciBar.MSIX, e + Msix.ENTRY_DATA, 4, v);
      fn.barWrite(PciBar.MSIX, e + Msix.ENTRY_CTRL, 4, 0);
    }
    fn.configWrite(this.msixCap + Msix.CTRL, 2, Msix.CTRL_ENABLE);
  }

  // ---- shared memory regions (2.10, 4.1.4.7) -----------------------------------------------

  /** The guest physical address the BAR was given (64-bit memory BARs read as two halves). */
  private barBase(bar: number): number {
    const lo = this.fn.configRead(PciCfg.BAR0 + 4 * bar, 4);
    if (lo & 1) return lo & ~3; // I/O BAR
    const is64 = (lo & 6) === 4 && bar < 5;
    return is64 ? join64(lo & ~15, this.fn.configRead(PciCfg.BAR0 + 4 * bar + 4, 4)) : (lo & ~15) >>> 0;
  }

  /** Every shared memory region the device presents, by id. */
  sharedMemoryRegions(): PciSharedMemoryRegion[] {
    return [...this.shm.keys()].sort((a, b) => a - b).map((id) => this.sharedMemoryRegion(id)!);
  }

  /** Shared memory region `id`, or null when the device has none with that id. */
  sharedMemoryRegion(id: number): PciSharedMemoryRegion | null {
    const c = this.shm.get(id);
    return c ? { id, bar: c.bar, offset: c.offset, length: c.length, base: this.barBase(c.bar) + c.offset } : null;
  }

  /** Reads `dst.length` bytes at `offset` of region `id` through its BAR. Throws INVALID_ARGUMENT out of range. */
  readSharedMemory(id: number, offset: number, dst: Uint8Array): void {
    const c = this.shmRange(id, offset, dst.length);
    const at = c.offset + offset;
    // Naturally aligned 32-bit accesses where they fit, bytes elsewhere (as a CPU copy would).
    for (let i = 0; i < dst.length; ) {
      const w = (at + i) % 4 === 0 && dst.length - i >= 4 ? 4 : 1;
      let v = this.fn.barRead(c.bar, at + i, w);
      for (let k = 0; k < w; k++, v >>>= 8) dst[i + k] = v & 0xff;
      i += w;
    }
  }

  /** Writes `src` at `offset` of region `id` through its BAR. Throws INVALID_ARGUMENT out of range. */
  writeSharedMemory(id: number, offset: number, src: Uint8Array): void {
    const c = this.shmRange(id, offset, src.length);
    const at = c.offset + offset;
    for (let i = 0; i < src.length; ) {
      const w = (at + i) % 4 === 0 && src.length - i >= 4 ? 4 : 1;
      let v = 0;
      for (let k = w - 1; k >= 0; k--) v = v * 256 + src[i + k]!;
      this.fn.barWrite(c.bar, at + i, w, v);
      i += w;
    }
  }

  private shmRange(id: number, offset: number, len: number): CapRef {
    const c = this.shm.get(id);
    if (!c) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no shared memory region ${id}`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + len > c.length) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `shared memory region ${id}: ${offset}+${len} outside its ${c.length} bytes`);
    }
    return c;
  }

  // ---- register helpers ------------------------------------------------------------------

  private cc(): BarWindow {
    return this.common!;
  }
  private io(): BarWindow {
    return this.legacyIo!;
  }

  getStatus(): number {
    return this.legacy ? this.io().read(LegacyReg.STATUS, 1) : this.cc().read(CommonCfg.DEVICE_STATUS, 1);
  }

  setStatus(value: number): void {
    if (this.legacy) this.io().write(LegacyReg.STATUS, 1, value);
    else this.cc().write(CommonCfg.DEVICE_STATUS, 1, value);
    if (value === 0) {
      // 4.1.4.3.2: wait for device_status to read 0 before reinitializing.
      let ok = false;
      for (let i = 0; i < RESET_POLLS && !ok; i++) ok = this.getStatus() === 0;
      if (!ok) throw new VirtioError(ErrorCode.TIMEOUT, 'device did not finish its reset');
      this.programMsix();
      this.queueVector.clear();
      this.notifyAddr.clear();
      this.notifyValue.clear();
      this.notificationData32 = false;
      this.notifConfigData = false;
    }
    if (value !== 0 && this.msixActive && (value & 0x3) !== 0) this.mapConfigVector();
  }

  /**
   * Config changes go to vector 0 (mapping is lost at every reset, 4.1.5.1.2.1). Each mapping
   * is read back (driver/transport-pci/34); NO_VECTOR there means the device refused it, and
   * configuration changes then go unsignalled (status and config can still be read).
   */
  private mapConfigVector(): void {
    if (this.legacy) {
      const io = this.io();
      if (io.read(LegacyReg.CONFIG_MSIX_VECTOR, 2) !== 0) {
        io.write(LegacyReg.CONFIG_MSIX_VECTOR, 2, 0);
        io.read(LegacyReg.CONFIG_MSIX_VECTOR, 2);
      }
    } else if (this.cc().read(CommonCfg.CONFIG_MSIX_VECTOR, 2) !== 0) {
      this.cc().write(CommonCfg.CONFIG_MSIX_VECTOR, 2, 0);
      this.cc().read(CommonCfg.CONFIG_MSIX_VECTOR, 2);
    }
  }

  getDeviceFeatures(): bigint {
    if (this.legacy) return BigInt(this.io().read(LegacyReg.HOST_FEATURES, 4) >>> 0);
    let f = 0n;
    for (let w = 0; w < 2; w++) {
      this.cc().write(CommonCfg.DEVICE_FEATURE_SELECT, 4, w);
      f |= BigInt(this.cc().read(CommonCfg.DEVICE_FEATURE, 4) >>> 0) << BigInt(32 * w);
    }
    return f;
  }

  /**
   * The modern interface has queue_notif_config_data (4.1.4.3): NOTIF_CONFIG_DATA can be used;
   * VIRTIO_F_SR_IOV only with the SR-IOV capability (driver/content/39).
   */
  get transportFeatures(): bigint {
    if (this.legacy) return 0n;
    return F.NOTIF_CONFIG_DATA | (this.sriovCapOffset >= 0 ? F.SR_IOV : 0n);
  }

  /** A configuration space read of the function (for capabilities this transport does not own: SR-IOV). */
  configRead(offset: number, width: number): number {
    return this.fn.configRead(offset, width);
  }

  /** A configuration space write of the function. */
  configWrite(offset: number, width: number, value: number): void {
    this.fn.configWrite(offset, width, value);
  }

  setDriverFeatures(features: bigint): void {
    // 2.9 / 4.1.5.2: NOTIFICATION_DATA makes notifications 32 bits wide.
    this.notificationData32 = (features & F.NOTIFICATION_DATA) !== 0n;
    this.notifConfigData = !this.legacy && (features & F.NOTIF_CONFIG_DATA) !== 0n;
    if (this.legacy) {
      this.io().write(LegacyReg.GUEST_FEATURES, 4, Number(features & 0xffff_ffffn));
      return;
    }
    for (let w = 0; w < 2; w++) {
      this.cc().write(CommonCfg.DRIVER_FEATURE_SELECT, 4, w);
      this.cc().write(CommonCfg.DRIVER_FEATURE, 4, Number((features >> BigInt(32 * w)) & 0xffff_ffffn));
    }
  }

  configGeneration(): number {
    return this.legacy ? 0 : this.cc().read(CommonCfg.CONFIG_GENERATION, 1);
  }

  private legacyConfigBase(): number {
    return this.msixActive ? LegacyReg.CONFIG_MSIX : LegacyReg.CONFIG_NO_MSIX;
  }

  /** The modern interface: the device configuration capability's length; legacy: unknown (null). */
  configSize(): number | null {
    return this.legacy ? null : this.deviceCfgLength;
  }

  readConfig(offset: number, dst: Uint8Array): void {
    if (this.legacy) readWindowBytes(this.io(), this.legacyConfigBase() + offset, dst);
    else if (this.deviceCfg) readWindowBytes(this.deviceCfg, offset, dst);
    else dst.fill(0);
  }

  writeConfig(offset: number, src: Uint8Array): void {
    if (this.legacy) writeWindowBytes(this.io(), this.legacyConfigBase() + offset, src);
    else if (this.deviceCfg) writeWindowBytes(this.deviceCfg, offset, src);
  }

  /** 4.1.4.3 admin_queue_index and admin_queue_num (valid once VIRTIO_F_ADMIN_VQ was negotiated). */
  adminQueueRange(): AdminQueueRange | null {
    if (this.legacy) return null;
    const count = this.cc().read(CommonCfg.ADMIN_QUEUE_NUM, 2);
    return count === 0 ? null : { first: this.cc().read(CommonCfg.ADMIN_QUEUE_INDEX, 2), count };
  }

  numQueues(): number {
    if (!this.legacy) return this.cc().read(CommonCfg.NUM_QUEUES, 2);
    if (this.queueCount < 0) {
      let n = 0;
      while (n < MAX_PROBED_QUEUES) {
        this.io().write(LegacyReg.QUEUE_SELECT, 2, n);
        if (this.io().read(LegacyReg.QUEUE_SIZE, 2) === 0) break;
        n++;
      }
      this.queueCount = n;
    }
    return this.queueCount;
  }

  queueMaxSize(index: number): number {
    if (this.legacy) {
      this.io().write(LegacyReg.QUEUE_SELECT, 2, index);
      return this.io().read(LegacyReg.QUEUE_SIZE, 2);
    }
    this.cc().write(CommonCfg.QUEUE_SELECT, 2, index);
    return this.cc().read(CommonCfg.QUEUE_SIZE, 2);
  }

  /** Maps queue `index` to a vector and checks the device took it (4.1.5.1.2). */
  private pickVector(index: number, read: () => number, write: (v: number) => void): void {
    if (!this.msixActive) return;
    const wanted = this.msixSize > 1 ? 1 + (index % (this.msixSize - 1)) : 0;
    write(wanted);
    let got = read();
    if (got !== wanted) {
      // 4.1.5.1.2.1: NO_VECTOR means the mapping failed; share the config vector instead.
      write(0);
      got = read();
    }
    if (got !== NO_VECTOR) this.queueVector.set(index, got);
  }

  setupQueue(index: number, a: DriverQueueAddresses): void {
    if (this.legacy) return this.setupLegacyQueue(index, a);
    const c = this.cc();
    c.write(CommonCfg.QUEUE_SELECT, 2, index);
    if (c.read(CommonCfg.QUEUE_ENABLE, 2) !== 0) throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `queue ${index} already enabled`);
    c.write(CommonCfg.QUEUE_SIZE, 2, a.size);
    if (c.read(CommonCfg.QUEUE_SIZE, 2) !== a.size) throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `device refused size ${a.size} for queue ${index}`);
    this.pickVector(
      index,
      () => c.read(CommonCfg.QUEUE_MSIX_VECTOR, 2),
      (v) => c.write(CommonCfg.QUEUE_MSIX_VECTOR, 2, v),
    );
    c.write(CommonCfg.QUEUE_DESC, 4, lo32(a.descAddr));
    c.write(CommonCfg.QUEUE_DESC + 4, 4, hi32(a.descAddr));
    c.write(CommonCfg.QUEUE_DRIVER, 4, lo32(a.driverAddr));
    c.write(CommonCfg.QUEUE_DRIVER + 4, 4, hi32(a.driverAddr));
    c.write(CommonCfg.QUEUE_DEVICE, 4, lo32(a.deviceAddr));
    c.write(CommonCfg.QUEUE_DEVICE + 4, 4, hi32(a.deviceAddr));
    const off = c.read(CommonCfg.QUEUE_NOTIFY_OFF, 2);
    const nc = this.notifyCap!;
    // 4.1.4.4: cap.offset + queue_notify_off * notify_off_multiplier.
    const addr = nc.offset + off * this.notifyMult;
    if (addr + 2 > nc.offset + nc.length) throw new VirtioError(ErrorCode.TRANSPORT_BAD_ACCESS, `notify address of queue ${index} outside the capability`);
    this.notifyAddr.set(index, addr);
    // driver/transport-pci/40, /41: with NOTIF_CONFIG_DATA the queue is named in notifications
    // by the value the device put in queue_notif_config_data, not by its index.
    this.notifyValue.set(index, this.notifConfigData ? c.read(CommonCfg.QUEUE_NOTIF_CONFIG_DATA, 2) : index);
    c.write(CommonCfg.QUEUE_ENABLE, 2, 1);
    if (c.read(CommonCfg.QUEUE_ENABLE, 2) !== 1) throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `device refused queue ${index}`);
  }

  private setupLegacyQueue(index: number, a: DriverQueueAddresses): void {
    const io = this.io();
    io.write(LegacyReg.QUEUE_SELECT, 2, index);
    const max = io.read(LegacyReg.QUEUE_SIZE, 2);
    const align = 1 << LEGACY_PFN_SHIFT;
    const l = legacySplitLayout(a.size, align);
    // 4.1.5.4 legacy: the size is the device's, the ring contiguous and page-aligned.
    if (a.size !== max || a.descAddr % align !== 0 || a.driverAddr !== a.descAddr + l.avail || a.deviceAddr !== a.descAddr + l.used) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `legacy PCI needs a contiguous ring of the device's size ${max}`);
    }
    this.pickVector(
      index,
      () => io.read(LegacyReg.QUEUE_MSIX_VECTOR, 2),
      (v) => io.write(LegacyReg.QUEUE_MSIX_VECTOR, 2, v),
    );
    io.write(LegacyReg.QUEUE_PFN, 4, a.descAddr / align);
    if (io.read(LegacyReg.QUEUE_PFN, 4) === 0) throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `device refused queue ${index}`);
    this.notifyAddr.set(index, LegacyReg.QUEUE_NOTIFY);
  }

  /**
   * 2.6.1 queue reset, waiting synchronously: RESET_POLLS reads of queue_reset, then VirtioError
   * TIMEOUT. A device whose teardown finishes later (an I/O it holds) needs `resetQueueAsync`.
   */
  resetQueue(index: number): void {
    const c = this.startQueueReset(index);
    // 4.1.4.3.2: the reset is complete once queue_reset reads 0 (driver/transport-pci/20).
    let done = false;
    for (let i = 0; i < RESET_POLLS && !done; i++) done = c.read(CommonCfg.QUEUE_RESET, 2) === 0;
    if (!done) throw new VirtioError(ErrorCode.TIMEOUT, `queue ${index} reset did not complete`);
    this.forgetQueue(index);
  }

  /**
   * 2.6.1 queue reset, waiting without blocking the event loop until queue_reset reads 0
   * (driver/transport-pci/20): a device may keep the reset ongoing while it finishes its
   * teardown (device/transport-pci/23). Rejects with VirtioError TIMEOUT after
   * `opts.timeoutMs`, the queue then left as it is.
   */
  async resetQueueAsync(index: number, opts: QueueResetWaitOptions = {}): Promise<void> {
    const c = this.startQueueReset(index);
    await waitForRegister(
      () => {
        // queue_select is shared: other code may have selected another queue meanwhile.
        c.write(CommonCfg.QUEUE_SELECT, 2, index);
        return c.read(CommonCfg.QUEUE_RESET, 2) === 0;
      },
      `queue ${index} reset`,
      opts.timeoutMs,
    );
    this.forgetQueue(index);
  }

  /** Selects queue `index` and writes 1 to its queue_reset. */
  private startQueueReset(index: number): BarWindow {
    if (this.legacy) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'no queue reset through the legacy interface');
    const c = this.cc();
    c.write(CommonCfg.QUEUE_SELECT, 2, index);
    c.write(CommonCfg.QUEUE_RESET, 2, 1);
    return c;
  }

  /** The reset completed: the queue's notification and vector set-up are gone with it. */
  private forgetQueue(index: number): void {
    this.notifyAddr.delete(index);
    this.notifyValue.delete(index);
    this.queueVector.delete(index);
  }

  notify(index: number, data?: number): void {
    if (this.legacy) {
      this.fn.barWrite(PciBar.LEGACY_IO, LegacyReg.QUEUE_NOTIFY, 2, index);
      return;
    }
    const addr = this.notifyAddr.get(index);
    if (addr === undefined) return;
    const nc = this.notifyCap!;
    const name = this.notifyValue.get(index) ?? index;
    // 4.1.5.2: 16 bits (the queue's name) without NOTIFICATION_DATA; 32 bits with it, the name in
    // the low half (vq_index or vq_notif_config_data, 2.9) beside next_off / next_wrap.
    if (this.notificationData32) this.fn.barWrite(nc.bar, addr, 4, ((((data ?? index) & 0xffff0000) | name) >>> 0));
    else this.fn.barWrite(nc.bar, addr, 2, name);
  }

  setInterruptHandler(h: DriverInterruptHandler): void {
    this.handler = h;
  }

  /** An MSI-X message arrived (data = vector). */
  handleMsi(_address: number, data: number): void {
    const h = this.handler;
    if (!h) return;
    // 4.1.5.1.2: one vector may serve the configuration and queues alike.
    if (data === 0) h.configChange();
    for (const [q, v] of this.queueVector) if (v === data) h.used(q);
  }

  /** INTx: reading ISR says what happened and deasserts the line (4.1.4.5). */
  handleIntx(): void {
    const isr = this.legacy ? this.io().read(LegacyReg.ISR, 1) : this.isr!.read(0, 1);
    const h = this.handler;
    if (!h || isr === 0) return;
    if (isr & IsrBit.CONFIG) h.configChange();
    if (isr & IsrBit.QUEUE) for (const q of this.notifyAddr.keys()) h.used(q);
  }
}
