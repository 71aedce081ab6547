import { ErrorCode, VirtioError } from '../errors.js';

/**
 * A first-fit allocator of guest-physical ranges for the driver side (rings, request headers,
 * data buffers). Ranges are handed out aligned; freeing coalesces neighbours. It manages
 * addresses only: the memory itself belongs to a GuestMemory.
 */
export class DmaAllocator {
  /** Free ranges as parallel sorted arrays of [start, end). */
  private starts: number[];
  private ends: number[];
  private readonly sizes = new Map<number, number>();

  constructor(
    /** First guest address the allocator hands out. */
    readonly base: number,
    /** Bytes it manages from `base`. */
    readonly size: number,
  ) {
    this.starts = [base];
    this.ends = [base + size];
  }

  /** Allocates `len` bytes aligned to `align` (a power of two); throws when out of space. */
  alloc(len: number, align = 16): number {
    if (!(len > 0) || !Number.isSafeInteger(len) || align <= 0 || (align & (align - 1)) !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad allocation ${len} align ${align}`);
    }
    for (let i = 0; i < this.starts.length; i++) {
      const s = this.starts[i]!;
      const e = this.ends[i]!;
      const a = Math.ceil(s / align) * align;
      if (a + len > e) continue;
      // Split the free range into [s, a) and [a + len, e).
      const parts: [number, number][] = [];
      if (a > s) parts.push([s, a]);
      if (a + len < e) parts.push([a + len, e]);
      this.starts.splice(i, 1, ...parts.map((p) => p[0]));
      this.ends.splice(i, 1, ...parts.map((p) => p[1]));
      this.sizes.set(a, len);
      return a;
    }
    throw new VirtioError(ErrorCode.QUEUE_FULL, `guest memory allocator exhausted (${len} bytes)`);
  }

  /** Gives back a range `alloc` returned (by its start address); neighbouring free ranges merge. */
  free(addr: number): void {
    const len = this.sizes.get(addr);
    if (len === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `free of unallocated 0x${addr.toString(16)}`);
    this.sizes.delete(addr);
    let i = 0;
    while (i < this.starts.length && this.starts[i]! < addr) i++;
    this.starts.splice(i, 0, addr);
    this.ends.splice(i, 0, addr + len);
    // Coalesce with the following and preceding ranges.
    if (i + 1 < this.starts.length && this.ends[i] === this.starts[i + 1]) {
      this.ends[i] = this.ends[i + 1]!;
      this.starts.splice(i + 1, 1);
      this.ends.splice(i + 1, 1);
    }
    if (i > 0 && this.ends[i - 1] === this.starts[i]) {
      this.ends[i - 1] = this.ends[i]!;
      this.starts.splice(i, 1);
      this.ends.splice(i, 1);
    }
  }

  /** Bytes still free (for tests and diagnostics). */
  get freeBytes(): number {
    let n = 0;
    for (let i = 0; i < this.starts.length; i++) n += this.ends[i]! - this.starts[i]!;
    return n;
  }
}
