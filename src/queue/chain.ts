import { ErrorCode, type QueueFault, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';

/**
 * One buffer popped from a virtqueue: its segments, device-readable first, then
 * device-writable (2.7.4.2 / 2.8.4). Chains are reusable objects: a device gets them from
 * `DeviceQueue.createChain()` once (one per in-flight request) and a queue fills one per `pop`,
 * so the ring walk never allocates.
 *
 * Segment addresses are checked by the queue to lie in mapped guest memory. When one does not,
 * the queue still returns the chain (the ring itself is sound) with `fault` set; the device then
 * fails that single request with its own error status.
 */
export class DescriptorChain {
  /** Id for the used ring: split, the head descriptor index; packed, the buffer id. */
  id = 0;
  /** Packed: descriptors this buffer occupies in the ring (1 when indirect). Split: 1. */
  ringDescs = 1;
  /** Number of segments; segments [0, readableCount) are readable, the rest writable. */
  count = 0;
  /** Number of device-readable segments (they come first). */
  readableCount = 0;
  /** Total length of the device-readable segments. */
  readableBytes = 0;
  /** Total length of the device-writable segments. */
  writableBytes = 0;
  /** Set when a segment is unmapped; the request must fail (the chain is otherwise sound). */
  fault: QueueFault | null = null;
  /**
   * Segment storage. It starts small and grows (doubling) up to `capacity` as longer chains
   * arrive, so a chain costs what it holds, not the longest chain its queue allows: a queue of
   * 32768 entries would otherwise cost 384 KiB per request slot. Read these at use time; a
   * growth replaces them.
   */
  addrs: Float64Array;
  /** Length of each segment, in chain order (see `addrs`). */
  lens: Uint32Array;
  /** The guest memory the segments point into. */
  memory: GuestMemory;
  private readonly maxSegments: number;

  constructor(memory: GuestMemory, maxSegments: number) {
    this.memory = memory;
    this.maxSegments = maxSegments;
    const initial = Math.min(maxSegments, INITIAL_SEGMENTS);
    this.addrs = new Float64Array(initial);
    this.lens = new Uint32Array(initial);
  }

  /** The most segments this chain holds (the queues fail a longer chain with CHAIN_TOO_LONG). */
  get capacity(): number {
    return this.maxSegments;
  }

  /** Segments the storage holds now, without growing (what the chain costs: 12 bytes each). */
  get allocatedSegments(): number {
    return this.addrs.length;
  }

  /** Gives back storage beyond `keep` segments (a pool slot that once held a long chain). */
  trim(keep: number): void {
    const n = Math.max(keep, this.count, Math.min(this.maxSegments, INITIAL_SEGMENTS));
    if (this.addrs.length <= n) return;
    this.addrs = this.addrs.slice(0, n);
    this.lens = this.lens.slice(0, n);
  }

  private grow(need: number): void {
    const n = Math.min(this.maxSegments, Math.max(need, this.addrs.length * 2));
    const addrs = new Float64Array(n);
    const lens = new Uint32Array(n);
    addrs.set(this.addrs.subarray(0, this.count));
    lens.set(this.lens.subarray(0, this.count));
    this.addrs = addrs;
    this.lens = lens;
  }

  /** Number of device-writable segments (after the readable ones). */
  get writableCount(): number {
    return this.count - this.readableCount;
  }

  /** Used by queues: start filling. */
  clear(): void {
    this.count = 0;
    this.readableCount = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
    this.fault = null;
    this.ringDescs = 1;
  }

  /** Used by queues: append a segment (the queue checks order and capacity). */
  addSegment(addr: number, len: number, writable: boolean): void {
    // Rare (a chain longer than any this slot held before): amortised by doubling.
    if (this.count >= this.addrs.length) this.grow(this.count + 1);
    const i = this.count++;
    this.addrs[i] = addr;
    this.lens[i] = len;
    if (writable) this.writableBytes += len;
    else {
      this.readableCount++;
      this.readableBytes += len;
    }
  }

  /** Copies the chain (for a device that keeps a request beyond the pool slot). */
  copyFrom(o: DescriptorChain): void {
    this.id = o.id;
    this.ringDescs = o.ringDescs;
    this.count = o.count;
    this.readableCount = o.readableCount;
    this.readableBytes = o.readableBytes;
    this.writableBytes = o.writableBytes;
    this.fault = o.fault;
    this.memory = o.memory;
    if (this.addrs.length < o.count) this.grow(o.count);
    this.addrs.set(o.addrs.subarray(0, o.count));
    this.lens.set(o.lens.subarray(0, o.count));
  }
}

/**
 * Segments a chain of a queue holds beyond the queue size: a buffer that crosses from one guest
 * memory region into the next (contiguous) one takes a segment per region. The queues split a
 * buffer only while every descriptor that may still follow keeps its room, so a legal chain
 * (at most the queue size of descriptors) always fits; beyond this slack a buffer that crosses
 * regions fails its own request (chain.fault) instead.
 */
export const REGION_SPLIT_SLACK = 8;

/** Segments a new chain's storage holds before its first growth (most requests need 1 to 4). */
const INITIAL_SEGMENTS = 8;

/** A device's own bound on segments (createChain's minSegments) at most: 2^16 (a 1 MiB indirect table). */
const MAX_MIN_SEGMENTS = 0x10000;

/** Capacity of the chains `DeviceQueue.createChain(minSegments)` returns for a queue of `size`. */
export function chainCapacityForQueue(size: number, minSegments = 0): number {
  if (!Number.isInteger(minSegments) || minSegments < 0 || minSegments > MAX_MIN_SEGMENTS) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `chain of ${minSegments} segments: not in 0..${MAX_MIN_SEGMENTS}`);
  }
  return Math.max(size + REGION_SPLIT_SLACK, minSegments);
}

const EMPTY = new Uint8Array(0);

/**
 * Spans up to this long are copied byte by byte: a larger copy between two buffers needs a
 * subarray view (an allocation per copy; Node 20 has no allocation-free copy between
 * ArrayBuffers), and a per-request header (virtio_net_hdr is 12 or 20 bytes, a block request
 * header 16) should cost none. Measured in bench/net-heap.ts (bench/README.md).
 */
const SMALL_COPY = 32;

/**
 * ChainCursor.spans' callback: `len` bytes at `bytes[offset]`, a span of one guest memory region
 * (`bytes` is the whole region, `words` its Uint32Array view or null). Callers that only take
 * the first three arguments stay valid.
 */
export type SpanFn = (bytes: Uint8Array, offset: number, len: number, words: Uint32Array | null) => void;

/**
 * Sequential reader over a chain's readable segments, or writer over its writable ones.
 * Reusable: `reset(chain)` starts over without allocating. Reads past the end return fewer
 * bytes; the device decides what a short request means (usually its IOERR status).
 */
export class ChainCursor {
  private chain: DescriptorChain | null = null;
  private seg = 0;
  private segOff = 0;
  private end = 0;
  /** The span nextSpan last returned. */
  private spanBytes: Uint8Array = EMPTY;
  private spanOff = 0;
  /** Bytes moved since reset. */
  moved = 0;
  /** Bytes left in the segments this cursor covers. */
  remaining = 0;

  constructor(private readonly writable: boolean) {}

  /**
   * Points the cursor at the start of `chain`'s readable (or writable) part; returns the cursor for
   * chaining.
   */
  reset(chain: DescriptorChain): this {
    this.chain = chain;
    this.seg = this.writable ? chain.readableCount : 0;
    this.end = this.writable ? chain.count : chain.readableCount;
    this.segOff = 0;
    this.moved = 0;
    this.remaining = this.writable ? chain.writableBytes : chain.readableBytes;
    return this;
  }

  /**
   * Calls `fn(bytes, offset, len, words)` for the next `len` bytes as spans of guest memory, in
   * order, advancing the cursor; returns the bytes covered. This is the zero-copy path: a
   * backend reads from a file straight into `bytes` (a region of guest memory). `words` is the
   * region's word view (GuestMemory.u32Of, null when the region has none), passed so that a
   * device copying a span out can use copySpan's word copies (src/memory/guest-copy.ts) without
   * looking the region up again.
   */
  spans(len: number, fn: SpanFn): number {
    const c = this.chain!;
    const mem = c.memory;
    let done = 0;
    while (done < len && this.seg < this.end) {
      const segLen = c.lens[this.seg]!;
      const avail = segLen - this.segOff;
      if (avail === 0) {
        this.seg++;
        this.segOff = 0;
        continue;
      }
      const n = Math.min(avail, len - done);
      const addr = c.addrs[this.seg]! + this.segOff;
      const r = mem.locate(addr, n);
      if (r < 0) break; // the queue set chain.fault already; stop short
      fn(mem.bytesOf(r), addr - mem.baseOf(r), n, mem.u32Of(r));
      done += n;
      this.segOff += n;
      if (this.segOff === segLen) {
        this.seg++;
        this.segOff = 0;
      }
    }
    this.moved += done;
    this.remaining -= done;
    return done;
  }

  /**
   * The next span of at most `len` bytes at the cursor, as `spanBytes[spanOff .. spanOff + n)`;
   * returns n (0 at the end, or at an unmapped buffer) and advances past it. read / write /
   * fill / skip loop over it, so moving data allocates nothing (no closure per call).
   */
  private nextSpan(len: number): number {
    const c = this.chain!;
    while (len > 0 && this.seg < this.end) {
      const segLen = c.lens[this.seg]!;
      const avail = segLen - this.segOff;
      if (avail === 0) {
        this.seg++;
        this.segOff = 0;
        continue;
      }
      const n = avail < len ? avail : len;
      const addr = c.addrs[this.seg]! + this.segOff;
      const mem = c.memory;
      const r = mem.locate(addr, n);
      if (r < 0) return 0; // the queue set chain.fault already; stop short
      this.spanBytes = mem.bytesOf(r);
      this.spanOff = addr - mem.baseOf(r);
      this.segOff += n;
      if (this.segOff === segLen) {
        this.seg++;
        this.segOff = 0;
      }
      this.moved += n;
      this.remaining -= n;
      return n;
    }
    return 0;
  }

  /** Reads up to `len` bytes into `dst` at `dstOff`; returns how many were read. */
  read(dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): number {
    if (this.writable) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'ChainCursor: read on a writer');
    let done = 0;
    for (let n = this.nextSpan(len); n > 0; n = this.nextSpan(len - done)) {
      const b = this.spanBytes;
      const o = this.spanOff;
      const at = dstOff + done;
      if (n <= SMALL_COPY) for (let k = 0; k < n; k++) dst[at + k] = b[o + k]!;
      else dst.set(b.subarray(o, o + n), at);
      done += n;
    }
    return done;
  }

  /** Writes up to `len` bytes of `src` from `srcOff`; returns how many were written. */
  write(src: Uint8Array, srcOff = 0, len = src.length - srcOff): number {
    if (!this.writable) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'ChainCursor: write on a reader');
    let done = 0;
    for (let n = this.nextSpan(len); n > 0; n = this.nextSpan(len - done)) {
      const b = this.spanBytes;
      const o = this.spanOff;
      const at = srcOff + done;
      if (n <= SMALL_COPY) for (let k = 0; k < n; k++) b[o + k] = src[at + k]!;
      else b.set(src.subarray(at, at + n), o);
      done += n;
    }
    return done;
  }

  /** Writes `len` copies of `value` (zero-fill of a read past the end of a disk, say). */
  fill(len: number, value = 0): number {
    let done = 0;
    for (let n = this.nextSpan(len); n > 0; n = this.nextSpan(len - done)) {
      this.spanBytes.fill(value, this.spanOff, this.spanOff + n);
      done += n;
    }
    return done;
  }

  /** Advances without moving data. */
  skip(len: number): number {
    let done = 0;
    for (let n = this.nextSpan(len); n > 0; n = this.nextSpan(len - done)) done += n;
    return done;
  }

  /** Writes a single byte (status bytes); false when no writable room is left. */
  writeU8(v: number): boolean {
    const c = this.chain!;
    while (this.seg < this.end) {
      const segLen = c.lens[this.seg]!;
      if (this.segOff < segLen) {
        const addr = c.addrs[this.seg]! + this.segOff;
        const mem = c.memory;
        const r = mem.locate(addr, 1);
        if (r < 0) return false;
        mem.bytesOf(r)[addr - mem.baseOf(r)] = v;
        this.segOff++;
        this.moved++;
        this.remaining--;
        if (this.segOff === segLen) {
          this.seg++;
          this.segOff = 0;
        }
        return true;
      }
      this.seg++;
      this.segOff = 0;
    }
    return false;
  }
}

/**
 * Writes a byte at absolute offset `at` from the start of the writable part (for a trailing
 * status byte located at writableBytes - 1). Returns false if unmapped or out of range.
 */
export function writeWritableByteAt(chain: DescriptorChain, at: number, v: number): boolean {
  let off = at;
  for (let i = chain.readableCount; i < chain.count; i++) {
    const len = chain.lens[i]!;
    if (off < len) {
      const addr = chain.addrs[i]! + off;
      const mem = chain.memory;
      const r = mem.locate(addr, 1);
      if (r < 0) return false;
      mem.bytesOf(r)[addr - mem.baseOf(r)] = v;
      return true;
    }
    off -= len;
  }
  return false;
}

/**
 * Bytes of the writable part, from its first byte, that lie in whole segments inside guest
 * memory: what a device that wrote every reachable writable byte may report as used length
 * (2.7.8.2, device/split-ring/14: at least len bytes written from the first writable buffer).
 */
export function writableMappedPrefix(chain: DescriptorChain): number {
  let n = 0;
  for (let i = chain.readableCount; i < chain.count; i++) {
    const len = chain.lens[i]!;
    if (len > 0 && !chain.memory.isMapped(chain.addrs[i]!, len)) break;
    n += len;
  }
  return n;
}
