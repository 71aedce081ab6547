/**
 * The descriptor walk of SplitQueue.popDirect (direct-batch.ts): the chains of the plainest
 * shape, read straight from a little-endian split ring's typed-array views into a DirectBatch.
 * Kept apart from split-queue.ts, whose general `pop` judges every chain this walk leaves.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import { DescFlag } from '../spec/ring.js';
import { DIRECT_MAX_SEGMENTS, type DirectBatch } from './direct-batch.js';

/** 2^32: a descriptor address's high word's weight. */
export const U32 = 0x1_0000_0000;
/** 2.7.4 / 2.7.5: a chain longer than 2^32 bytes is forbidden to the driver. */
export const MAX_CHAIN_BYTES = 0xffffffff;

/** The guest memory region the last direct buffer was found in (a lookup-free fast path). */
export class DirectRegionCache {
  start = 0;
  end = -1;
  region = -1;

  /** Forgets the region (the ring was bound to other memory). */
  clear(): void {
    this.start = 0;
    this.end = -1;
    this.region = -1;
  }
}

/**
 * Reads up to `limit` available chains from ring position `first` into `b` (heads, segments,
 * bytes, and each segment's region, offset and length): chains of 1 to DIRECT_MAX_SEGMENTS
 * descriptors, none INDIRECT or WRITE, none of length 0, every next index below `size`, every
 * buffer inside one region of `mem`, at most 2^32 - 1 bytes. Stops before the first chain of any
 * other shape (and before a head index out of range) without a trace of it; returns the chains
 * read. Bounded by `limit` chains of DIRECT_MAX_SEGMENTS descriptors (a descriptor loop is a
 * chain too long for this walk). `descW`: the descriptor table's offset in 32-bit words of
 * `u32`; `ringW`: the avail ring's first entry in 16-bit words of `a16`; `mask`: size - 1.
 */
export function walkDirectChains(
  b: DirectBatch,
  mem: GuestMemory,
  u32: Uint32Array,
  descW: number,
  a16: Uint16Array,
  ringW: number,
  size: number,
  mask: number,
  first: number,
  limit: number,
  cache: DirectRegionCache,
): number {
  let start = cache.start;
  let end = cache.end;
  let region = cache.region;
  let pos = first;
  let n = 0;
  chains: for (; n < limit; n++) {
    const head = a16[ringW + (pos & mask)]!;
    if (head >= size) break;
    const base = n * DIRECT_MAX_SEGMENTS;
    let idx = head;
    let segs = 0;
    let total = 0;
    for (;;) {
      // The walk is bounded by DIRECT_MAX_SEGMENTS: a loop is a chain too long for this path.
      if (segs === DIRECT_MAX_SEGMENTS) break chains;
      const w = descW + idx * 4;
      const lo = u32[w]!;
      const hi = u32[w + 1]!;
      const len = u32[w + 2]!;
      const fn = u32[w + 3]!;
      if ((fn & (DescFlag.INDIRECT | DescFlag.WRITE)) !== 0 || len === 0) break chains;
      const addr = hi === 0 ? lo : hi >= 0x20_0000 ? -1 : hi * U32 + lo;
      if (!(addr >= start && addr + len <= end)) {
        const r = addr >= 0 ? mem.locate(addr, len) : -1;
        if (r < 0) break chains;
        region = r;
        start = mem.baseOf(r);
        end = start + mem.bytesOf(r).length;
      }
      const s = base + segs;
      b.region[s] = region;
      b.offset[s] = addr - start;
      b.len[s] = len;
      segs++;
      total += len;
      if ((fn & DescFlag.NEXT) === 0) break;
      idx = fn >>> 16;
      if (idx >= size) break chains;
    }
    if (total > MAX_CHAIN_BYTES) break;
    b.heads[n] = head;
    b.segments[n] = segs;
    b.bytes[n] = total;
    pos = (pos + 1) & 0xffff;
  }
  cache.start = start;
  cache.end = end;
  cache.region = region;
  return n;
}
