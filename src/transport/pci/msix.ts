/**
 * MSI-X table and pending bit array (PCI Local Bus 6.8.2) as virtio-pci uses them (4.1.5.1.2):
 * a vector fires a message unless it or the whole function is masked, in which case its
 * pending bit is set and the message goes out when it is unmasked.
 */
import type { TransportBus } from '../bus.js';
import { Msix } from './constants.js';

const U32 = 0x1_0000_0000;

/**
 * The device side of one function's MSI-X table and PBA: holds the entries the driver writes,
 * masks and marks vectors pending, and sends the message on the bus when a vector fires.
 */
export class MsixTable {
  /** Four u32 per entry: address low, address high, data, vector control. */
  private readonly table: Uint32Array;
  private readonly pba: Uint8Array;
  /** The MSI-X Enable bit of Message Control: while false, vectors are not delivered. */
  enabled = false;
  /** The Function Mask bit of Message Control: masks every vector at once (they go pending). */
  functionMasked = false;
  /** Messages sent, for tests. */
  sent = 0;

  constructor(
    /** Number of table entries (vectors); Message Control reports it as size - 1. */
    readonly size: number,
    private readonly bus: TransportBus,
  ) {
    this.table = new Uint32Array(size * 4);
    this.pba = new Uint8Array(Math.ceil(size / 8) + 8);
    this.reset();
  }

  /** Table entries start masked (PCI 6.8.2.9). */
  reset(): void {
    this.table.fill(0);
    for (let v = 0; v < this.size; v++) this.table[v * 4 + 3] = Msix.ENTRY_CTRL_MASKED;
    this.pba.fill(0);
    this.enabled = false;
    this.functionMasked = false;
  }

  /** Byte offset of the PBA inside the MSI-X BAR. */
  get pbaOffset(): number {
    return Math.max(0x800, Math.ceil((this.size * Msix.ENTRY_SIZE) / 16) * 16);
  }

  /** Size of the MSI-X BAR (a power of two, at least 4 KiB). */
  get barSize(): number {
    let s = 0x1000;
    while (s < this.pbaOffset + Math.ceil(this.size / 64) * 8) s *= 2;
    return s;
  }

  /** Whether vector `v`'s pending bit is set (it fired while masked); false for a vector beyond `size`. */
  isPending(v: number): boolean {
    return v < this.size && ((this.pba[v >>> 3]! >>> (v & 7)) & 1) === 1;
  }

  private masked(v: number): boolean {
    return this.functionMasked || (this.table[v * 4 + 3]! & Msix.ENTRY_CTRL_MASKED) !== 0;
  }

  /** Fires vector `v` (caller checked MSI-X is enabled and v is not NO_VECTOR). */
  signal(v: number): void {
    if (v >= this.size) return;
    if (this.masked(v)) {
      this.pba[v >>> 3]! |= 1 << (v & 7);
      return;
    }
    this.send(v);
  }

  private send(v: number): void {
    const i = v * 4;
    this.sent++;
    this.bus.msiSend(this.table[i + 1]! * U32 + this.table[i]!, this.table[i + 2]!);
  }

  /** Sends the messages of pending vectors that are no longer masked. */
  deliverPending(): void {
    if (!this.enabled || this.functionMasked) return;
    for (let v = 0; v < this.size; v++) {
      if (this.isPending(v) && !this.masked(v)) {
        this.pba[v >>> 3]! &= ~(1 << (v & 7));
        this.send(v);
      }
    }
  }

  /** Reads the table (dword accesses) or the PBA (dword or qword); null when not defined. */
  read(offset: number, width: number): number | null {
    const pbaOff = this.pbaOffset;
    if (offset >= pbaOff) {
      const o = offset - pbaOff;
      if ((width !== 4 && width !== 8) || o % width !== 0 || o + width > Math.ceil(this.size / 64) * 8) return null;
      let v = 0;
      for (let k = width - 1; k >= 0; k--) v = v * 256 + (this.pba[o + k] ?? 0);
      return v;
    }
    if (width !== 4 || offset % 4 !== 0 || offset >= this.size * Msix.ENTRY_SIZE) return null;
    return this.table[offset / 4]!;
  }

  /** Writes a table dword; false when not defined (PBA writes are ignored by PCI rule). */
  write(offset: number, width: number, value: number): boolean {
    if (width !== 4 || offset % 4 !== 0 || offset >= this.size * Msix.ENTRY_SIZE) return false;
    const i = offset / 4;
    const field = i & 3;
    this.table[i] = field === 3 ? value & Msix.ENTRY_CTRL_MASKED : value >>> 0;
    if (field === 3) this.deliverPending();
    return true;
  }
}
