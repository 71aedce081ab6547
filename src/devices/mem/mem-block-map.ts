/**
 * The state of every memory block of a virtio-mem region (5.15: plugged or unplugged), one bit
 * a block, with the number plugged kept alongside so plugged_size never needs a scan. Used by
 * both sides: the device's truth and the driver's view of what it plugged.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** Blocks a map holds at most (a 512 MiB bitmap): bounds what a region's size can cost. */
export const MAX_MEM_BLOCKS = 2 ** 32;

/** One bit per memory block of a virtio-mem region (5.15): plugged or not, with a running count. */
export class MemBlockMap {
  private readonly bits: Uint8Array;
  private plugged = 0;

  constructor(
    /** Blocks in the region (region_size / block_size), at most MAX_MEM_BLOCKS. */
    readonly blocks: number,
  ) {
    if (!Number.isSafeInteger(blocks) || blocks < 0 || blocks > MAX_MEM_BLOCKS) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: ${blocks} blocks is not in 0..${MAX_MEM_BLOCKS}`);
    }
    this.bits = new Uint8Array(Math.ceil(blocks / 8));
  }

  /** Blocks plugged now. */
  get pluggedBlocks(): number {
    return this.plugged;
  }

  /** Whether block `block` (0 = the first block of the region) is plugged; the caller checked the range. */
  isPlugged(block: number): boolean {
    return (this.bits[block >>> 3]! & (1 << (block & 7))) !== 0;
  }

  /** Plugged blocks in [first, first + count) (the caller checked the range). */
  countPlugged(first: number, count: number): number {
    let n = 0;
    let b = first;
    const end = first + count;
    // Bit by bit up to a byte boundary, then whole bytes: a 65535-block request is ~8 K steps.
    while (b < end && (b & 7) !== 0) n += this.isPlugged(b++) ? 1 : 0;
    while (b + 8 <= end) {
      n += POPCOUNT[this.bits[b >>> 3]!]!;
      b += 8;
    }
    while (b < end) n += this.isPlugged(b++) ? 1 : 0;
    return n;
  }

  /** Sets [first, first + count) plugged or unplugged (the caller checked the range). */
  setRange(first: number, count: number, plugged: boolean): void {
    for (let b = first; b < first + count; b++) {
      const mask = 1 << (b & 7);
      const i = b >>> 3;
      const was = (this.bits[i]! & mask) !== 0;
      if (was === plugged) continue;
      this.bits[i] = plugged ? this.bits[i]! | mask : this.bits[i]! & ~mask;
      this.plugged += plugged ? 1 : -1;
    }
  }

  /** Every block unplugged. */
  clear(): void {
    this.bits.fill(0);
    this.plugged = 0;
  }

  /**
   * Runs of blocks in state `plugged` inside [first, first + count), in address order, each at
   * most `maxRun` long: `fn(start, length)`; stops early when `fn` returns false.
   */
  forEachRun(first: number, count: number, plugged: boolean, maxRun: number, fn: (start: number, length: number) => boolean): void {
    const end = first + count;
    let b = first;
    while (b < end) {
      if (this.isPlugged(b) !== plugged) {
        b++;
        continue;
      }
      const start = b;
      while (b < end && b - start < maxRun && this.isPlugged(b) === plugged) b++;
      if (!fn(start, b - start)) return;
    }
  }
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, v) => {
  let n = 0;
  for (let x = v; x !== 0; x &= x - 1) n++;
  return n;
});
