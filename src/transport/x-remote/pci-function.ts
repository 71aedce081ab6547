/**
 * A QEMU device model behind an x-remote link seen as a `PciFunction`, so the existing PCI
 * driver transport (pci-driver.ts) drives it unchanged: config space accesses become
 * PCI_CFGREAD / PCI_CFGWRITE, BAR accesses BAR_READ / BAR_WRITE at the bus address this side
 * assigned to the BAR.
 *
 * There is no firmware in an x-remote machine: `assignBars` does what a BIOS would (size each
 * BAR by writing all ones, place it in a window of the remote machine's memory or I/O space,
 * enable decoding). The remote machine's system memory holds the guest RAM shared with
 * SYNC_SYSMEM, so the memory window must not overlap it.
 *
 * QEMU ends its whole process on an access it refuses (a config offset beyond the space, a BAR
 * address nothing decodes), so accesses are checked here first: a bad one is answered as a PCI
 * bus answers an access nothing claims (reads all ones, writes dropped) and counted in
 * `badAccesses`, and never reaches QEMU.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { PciFunction } from '../pci/pci-device.js';
import { PciCfg, PciCommand } from '../pci/constants.js';
import type { XRemoteConnection } from './connection.js';
import { PCI_CONFIG_SIZE } from './messages.js';

/** Where BARs are placed by default: memory below 4 GiB (32-bit BARs must fit), I/O above the legacy ports. */
export const DEFAULT_MEMORY_WINDOW = 0xe000_0000;
/** Default end (exclusive) of the memory BAR window: the start of the x86 IOAPIC/LAPIC range. */
export const DEFAULT_MEMORY_WINDOW_END = 0xfec0_0000;
/** Default first I/O port for I/O BARs, above the legacy PC ports. */
export const DEFAULT_IO_WINDOW = 0xc000;
/** End (exclusive) of the 16-bit I/O port space; an I/O BAR must end at or below it. */
export const IO_WINDOW_END = 0x1_0000;

const BAR_COUNT = 6;
const BAR_IO = 0x1;
const BAR_MEM_TYPE_64 = 0x4;

/** One implemented BAR as assigned. */
export interface XRemoteBar {
  /** BAR number, 0..5 (a 64-bit BAR also occupies `index + 1`). */
  readonly index: number;
  /** True for an I/O port BAR, false for a memory BAR. */
  readonly io: boolean;
  /** True for a 64-bit memory BAR (type 10b), whose upper half is the next BAR register. */
  readonly is64: boolean;
  /** Bytes the BAR decodes (a power of two, from the all-ones probe). */
  readonly size: number;
  /** Bus address (memory) or port (I/O) assigned to the BAR, naturally aligned to `size`. */
  readonly base: number;
}

/** Where `XRemotePciFunction.assignBars` may place BARs; each field falls back to its default. */
export interface BarWindows {
  /** First bus address for memory BARs (default 0xe000_0000), and the end of the window. */
  readonly memoryBase?: number;
  /** End (exclusive) of the memory BAR window (default 0xfec0_0000); keep it clear of shared guest RAM. */
  readonly memoryEnd?: number;
  /** First I/O port for I/O BARs (default 0xc000). */
  readonly ioBase?: number;
}

function ones(width: number): number {
  return width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
}

/** Lowest set bit of a 32-bit value (0 for 0): a BAR's size from its read-back mask. */
function lowestBit(v: number): number {
  return (v & -v) >>> 0;
}

export class XRemotePciFunction implements PciFunction {
  /** Accesses refused here (bad width, outside config space or every BAR). */
  badAccesses = 0;
  private readonly barTable: (XRemoteBar | null)[] = new Array<XRemoteBar | null>(BAR_COUNT).fill(null);

  constructor(
    /** The open connection to the remote QEMU device process; every access goes through it. */
    readonly link: XRemoteConnection,
  ) {}

  /** The BARs `assignBars` found, by index. */
  get bars(): readonly (XRemoteBar | null)[] {
    return this.barTable;
  }

  /**
   * Sizes every BAR, places it (naturally aligned) in its window and turns on I/O and memory
   * decoding. Throws INVALID_ARGUMENT when a BAR does not fit its window.
   */
  assignBars(windows: BarWindows = {}): void {
    let mem = windows.memoryBase ?? DEFAULT_MEMORY_WINDOW;
    const memEnd = windows.memoryEnd ?? DEFAULT_MEMORY_WINDOW_END;
    let io = windows.ioBase ?? DEFAULT_IO_WINDOW;
    const l = this.link;
    for (let i = 0; i < BAR_COUNT; i++) {
      const reg = PciCfg.BAR0 + 4 * i;
      l.configWrite(reg, 4, 0xffff_ffff);
      const probe = l.configRead(reg, 4);
      if (probe === 0) continue;
      const isIo = (probe & BAR_IO) !== 0;
      const is64 = !isIo && (probe & 0x6) === BAR_MEM_TYPE_64 && i + 1 < BAR_COUNT;
      let size = lowestBit(isIo ? probe & ~0x3 : probe & ~0xf);
      if (is64) {
        l.configWrite(reg + 4, 4, 0xffff_ffff);
        const upper = l.configRead(reg + 4, 4);
        if (size === 0) size = lowestBit(upper) * 2 ** 32;
      }
      if (size === 0) continue;
      let base: number;
      if (isIo) {
        base = Math.ceil(io / size) * size;
        if (base + size > IO_WINDOW_END) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `I/O BAR${i} of ${size} bytes does not fit below 0x10000`);
        io = base + size;
      } else {
        base = Math.ceil(mem / size) * size;
        if (base + size > memEnd) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `BAR${i} of ${size} bytes does not fit the memory window`);
        mem = base + size;
      }
      l.configWrite(reg, 4, base % 2 ** 32);
      if (is64) l.configWrite(reg + 4, 4, Math.floor(base / 2 ** 32));
      this.barTable[i] = { index: i, io: isIo, is64, size, base };
      if (is64) i++;
    }
    const cmd = l.configRead(PciCfg.COMMAND, 2);
    l.configWrite(PciCfg.COMMAND, 2, cmd | PciCommand.IO | PciCommand.MEMORY);
  }

  configRead(offset: number, width: number): number {
    if (!this.configOk(offset, width)) return ones(width);
    return this.link.configRead(offset, width);
  }

  configWrite(offset: number, width: number, value: number): void {
    if (this.configOk(offset, width)) this.link.configWrite(offset, width, value);
  }

  barRead(bar: number, offset: number, width: number): number {
    const b = this.barFor(bar, offset, width);
    if (!b) return width === 8 ? Number.MAX_SAFE_INTEGER : ones(width);
    return this.link.barRead(b.base + offset, width, !b.io);
  }

  barWrite(bar: number, offset: number, width: number, value: number): void {
    const b = this.barFor(bar, offset, width);
    if (b) this.link.barWrite(b.base + offset, width, !b.io, value);
  }

  /** QEMU checks addr + 4 (not + width) against the config space size. */
  private configOk(offset: number, width: number): boolean {
    const ok = (width === 1 || width === 2 || width === 4) && Number.isInteger(offset) && offset >= 0 && offset + 4 <= PCI_CONFIG_SIZE;
    if (!ok) this.badAccesses++;
    return ok;
  }

  private barFor(bar: number, offset: number, width: number): XRemoteBar | null {
    const b = Number.isInteger(bar) ? this.barTable[bar] : undefined;
    const ok = b && (width === 1 || width === 2 || width === 4 || width === 8) && Number.isInteger(offset) && offset >= 0 && offset + width <= b.size;
    if (!ok) {
      this.badAccesses++;
      return null;
    }
    return b;
  }
}
