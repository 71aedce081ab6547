/**
 * 4.1.2 / 4.1.4 the PCI configuration space of a virtio function: the type 0 header (ids,
 * command, status, BARs with their sizing masks), the MSI-X capability and the virtio vendor
 * capabilities (common, notify, ISR, device, PCI configuration access, shared memory). Bytes
 * and write masks only: what a write means (INTx, MSI-X enable, the access window) is the
 * transport's business.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { hi32, join64, lo32 } from '../bus.js';
import type { PlacedSharedMemoryRegion } from '../shared-memory.js';
import {
  CapField,
  CommonCfg,
  Msix,
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
import type { ModernLayout } from './pci-common-config.js';
import type { MsixTable } from './msix.js';

/** Where each virtio capability sits in configuration space (for tests and the driver). */
export interface PciCapOffsets {
  /** Config space offset of the MSI-X capability, or -1 when the function has no MSI-X (INTx only). */
  msix: number;
  /** Offset of the VIRTIO_PCI_CAP_COMMON_CFG capability (4.1.4.3). */
  common: number;
  /** Offset of the VIRTIO_PCI_CAP_NOTIFY_CFG capability (4.1.4.4), 20 bytes with notify_off_multiplier. */
  notify: number;
  /** Offset of the VIRTIO_PCI_CAP_ISR_CFG capability (4.1.4.5). */
  isr: number;
  /** Offset of the VIRTIO_PCI_CAP_DEVICE_CFG capability (4.1.4.6), or -1 when the device has no configuration space. */
  device: number;
  /** Offset of the VIRTIO_PCI_CAP_PCI_CFG access capability (4.1.4.9), whose bar, offset, length and data are writable. */
  pciCfg: number;
  /** Offsets of the VIRTIO_PCI_CAP_SHARED_MEMORY_CFG capabilities (4.1.4.7), one per region in declaration order; empty when none. */
  shm: number[];
}

interface BarInfo {
  size: number;
  io: boolean;
  is64: boolean;
}

/** What the configuration space describes. */
export interface PciFunctionDescription {
  readonly deviceId: number;
  readonly configSize: number;
  readonly transitional: boolean;
  readonly subsystemVendorId: number | undefined;
  readonly msix: MsixTable | null;
  readonly layout: ModernLayout;
  readonly notifyLen: number;
  readonly notifyOffMultiplier: number;
  /** Size of the legacy I/O BAR (transitional devices). */
  readonly legacyBarSize: number;
  /** Shared memory regions placed in their BAR (4.1.4.7), and the BAR's size. */
  readonly sharedMemory: readonly PlacedSharedMemoryRegion[];
  readonly sharedMemoryBarSize: number;
  /**
   * A PCI Express function: a PCI Express Capability in the capability list says extended
   * configuration space (0x100-0xfff) exists, where the SR-IOV capability lives.
   */
  readonly pciExpress?: boolean;
}

/** [PCIe] 7.5.3: the PCI Express Capability ID, and the bytes of a version 2 endpoint structure. */
export const PCI_CAP_ID_EXP = 0x10;
const PCIE_CAP_LEN = 0x3c;

const CLASS_BY_DEVICE: Readonly<Record<number, number>> = {
  1: 0x020000, // network controller
  2: 0x018000, // mass storage, other
  3: 0x078000, // communication, other
};

/** Bytes of a virtio_pci_cap64 (4.1.4.7). */
const CAP64_LEN = 24;

export class PciConfigSpace {
  readonly bytes = new Uint8Array(PciCfg.SIZE);
  private readonly wmask = new Uint8Array(PciCfg.SIZE);
  private readonly bars: (BarInfo | null)[] = [null, null, null, null, null, null];
  readonly caps: PciCapOffsets;

  constructor(d: PciFunctionDescription) {
    this.caps = this.build(d);
  }

  u16(off: number): number {
    return this.bytes[off]! | (this.bytes[off + 1]! << 8);
  }
  u32(off: number): number {
    return (this.bytes[off]! | (this.bytes[off + 1]! << 8) | (this.bytes[off + 2]! << 16) | (this.bytes[off + 3]! << 24)) >>> 0;
  }
  /** Stores `width` bytes of `v` (little-endian) and, when given, their write mask. */
  put(off: number, width: number, v: number, wm?: number): void {
    for (let i = 0; i < width; i++) {
      this.bytes[off + i] = Math.floor(v / 256 ** i) & 0xff;
      if (wm !== undefined) this.wmask[off + i] = Math.floor(wm / 256 ** i) & 0xff;
    }
  }

  /** Little-endian value of `width` bytes at `off` (the caller checked the range). */
  read(off: number, width: number): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + this.bytes[off + i]!;
    return v;
  }

  /** Writes the writable bits of `width` bytes; returns whether any byte had writable bits. */
  write(off: number, width: number, value: number): boolean {
    let writable = false;
    for (let i = 0; i < width; i++) {
      const wm = this.wmask[off + i]!;
      if (wm) writable = true;
      const b = Math.floor(value / 256 ** i) & 0xff;
      this.bytes[off + i] = (this.bytes[off + i]! & ~wm) | (b & wm);
    }
    return writable;
  }

  barSize(i: number): number {
    return this.bars[i]?.size ?? 0;
  }
  barIsIo(i: number): boolean {
    return this.bars[i]?.io ?? false;
  }
  /** The address the driver programmed into BAR `i`. */
  barAddress(i: number): number {
    const b = this.bars[i];
    if (!b) return 0;
    const off = PciCfg.BAR0 + 4 * i;
    const lo = this.u32(off) & (b.io ? ~3 : ~15);
    return b.is64 ? join64(lo >>> 0, this.u32(off + 4)) : lo >>> 0;
  }

  private setBar(i: number, b: BarInfo): void {
    this.bars[i] = b;
    const off = PciCfg.BAR0 + 4 * i;
    const flags = b.io ? 1 : b.is64 ? 4 : 0;
    const mask = b.io ? ~(b.size - 1) & ~3 : ~(b.size - 1) & ~15;
    this.put(off, 4, flags, mask >>> 0);
    if (b.is64) this.put(off + 4, 4, 0, 0xffffffff);
  }

  private build(d: PciFunctionDescription): PciCapOffsets {
    const id = d.deviceId;
    const transitionalId = TRANSITIONAL_DEVICE_IDS[id];
    const legacyId = d.transitional && transitionalId !== undefined;
    // 4.1.2.1: modern id 0x1040 + id; transitional devices keep their legacy id and put the
    // virtio id in the subsystem id, with revision 0 (4.1.2.3).
    this.put(PciCfg.VENDOR_ID, 2, PCI_VENDOR_VIRTIO);
    this.put(PciCfg.DEVICE_ID, 2, legacyId ? transitionalId : PCI_MODERN_DEVICE_BASE + id);
    this.put(PciCfg.REVISION_ID, 1, d.transitional ? 0 : 1);
    this.put(PciCfg.CLASS_PROG, 3, CLASS_BY_DEVICE[id] ?? 0xff0000);
    this.put(PciCfg.SUBSYSTEM_VENDOR_ID, 2, d.subsystemVendorId ?? PCI_VENDOR_VIRTIO);
    this.put(PciCfg.SUBSYSTEM_ID, 2, d.transitional ? id : 0x40 + id);
    this.put(PciCfg.COMMAND, 2, 0, PciCommand.IO | PciCommand.MEMORY | PciCommand.BUS_MASTER | PciCommand.INTX_DISABLE);
    this.put(PciCfg.STATUS, 2, PciStatus.CAP_LIST);
    this.put(PciCfg.INTERRUPT_LINE, 1, 0, 0xff);
    this.put(PciCfg.INTERRUPT_PIN, 1, 1);

    // BARs.
    if (d.transitional) this.setBar(PciBar.LEGACY_IO, { size: d.legacyBarSize, io: true, is64: false });
    if (d.msix) this.setBar(PciBar.MSIX, { size: d.msix.barSize, io: false, is64: false });
    // 4.1.4.7: the shared memory regions live in a 64-bit memory BAR of their own.
    if (d.sharedMemory.length > 0) this.setBar(PciBar.SHM, { size: d.sharedMemoryBarSize, io: false, is64: true });
    const ml = d.layout;
    this.setBar(PciBar.MODERN, { size: ml.barSize, io: ml.io, is64: !ml.io });

    // Capabilities.
    let at = 0x40;
    let prevNext = PciCfg.CAPABILITIES_POINTER;
    const caps: PciCapOffsets = { msix: -1, common: -1, notify: -1, isr: -1, device: -1, pciCfg: -1, shm: [] };
    const link = (len: number): number => {
      const here = at;
      this.bytes[prevNext] = here;
      prevNext = here + CapField.NEXT;
      at = here + Math.ceil(len / 4) * 4;
      return here;
    };
    if (d.msix) {
      const c = link(Msix.CAP_SIZE);
      caps.msix = c;
      this.put(c, 1, PCI_CAP_ID_MSIX);
      // Message Control: table size - 1; enable and function mask are writable.
      this.put(c + Msix.CTRL, 2, d.msix.size - 1, Msix.CTRL_ENABLE | Msix.CTRL_MASKALL);
      this.put(c + Msix.TABLE, 4, 0 | PciBar.MSIX);
      this.put(c + Msix.PBA, 4, d.msix.pbaOffset | PciBar.MSIX);
    }
    if (d.pciExpress) {
      const c = link(PCIE_CAP_LEN);
      this.put(c, 1, PCI_CAP_ID_EXP);
      this.put(c + 2, 2, 0x0002); // capability version 2, device/port type 0: PCI Express endpoint
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
    caps.notify = vcap(VirtioPciCap.NOTIFY_CFG, PciBar.MODERN, ml.notify, d.notifyLen, 20);
    this.put(caps.notify + CapField.EXTRA, 4, d.notifyOffMultiplier);
    caps.isr = vcap(VirtioPciCap.ISR_CFG, PciBar.MODERN, ml.isr, 1);
    if (d.configSize > 0) caps.device = vcap(VirtioPciCap.DEVICE_CFG, PciBar.MODERN, ml.device, d.configSize);
    // 4.1.4.9: the PCI configuration access capability; bar, offset, length and data are RW.
    caps.pciCfg = vcap(VirtioPciCap.PCI_CFG, 0, 0, 0, 20);
    this.wmask[caps.pciCfg + CapField.BAR] = 0xff;
    for (let k = 0; k < 4; k++) {
      this.wmask[caps.pciCfg + CapField.OFFSET + k] = 0xff;
      this.wmask[caps.pciCfg + CapField.LENGTH + k] = 0xff;
      this.wmask[caps.pciCfg + CapField.EXTRA + k] = 0xff;
    }
    const room = Math.floor((PciCfg.SIZE - at) / CAP64_LEN);
    if (d.sharedMemory.length > room) {
      // No PCI Express extended configuration space here: a region without a capability
      // would be invisible to the driver, so the device cannot be built that way.
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${d.sharedMemory.length} shared memory regions; configuration space has room for ${room}`);
    }
    for (const r of d.sharedMemory) {
      // 4.1.4.7: virtio_pci_cap64, cap.id = shmid; offset and length in two 32-bit halves,
      // the region inside the BAR (device/transport-pci/43), ids unique (device/transport-pci/44).
      const c = vcap(VirtioPciCap.SHARED_MEMORY_CFG, PciBar.SHM, r.offset, r.length, CAP64_LEN, r.id);
      this.put(c + CapField.EXTRA, 4, hi32(r.offset));
      this.put(c + CapField.EXTRA2, 4, hi32(r.length));
      caps.shm.push(c);
    }
    return caps;
  }
}
