/**
 * Inflight I/O tracking (vhost-user.rst "Inflight I/O tracking"): a shared buffer, one region
 * per queue, in which the back-end marks each buffer it took from the ring and clears it once
 * used, so a restarted back-end can resubmit what was in flight, in the order it was fetched.
 *
 * Region layouts (the C structs of the rst, little-endian, natural alignment):
 *   split:  features u64 @0, version u16 @8, desc_num u16 @10, last_batch_head u16 @12,
 *           used_idx u16 @14, desc[] @16 of 16 bytes: inflight u8 @0, next u16 @6, counter u64 @8
 *   packed: features u64 @0, version u16 @8, desc_num @10, free_head @12, old_free_head @14,
 *           used_idx @16, old_used_idx @18, used_wrap_counter u8 @20, old_used_wrap_counter @21,
 *           desc[] @32 of 32 bytes: inflight u8 @0, next u16 @2, last u16 @4, num u16 @6,
 *           counter u64 @8, id u16 @16, flags u16 @18, len u32 @20, addr u64 @24
 * Each queue region is sized for the larger (packed) form and 64-byte aligned, so the buffer can
 * be handed out before the ring layout is negotiated.
 */
import { QueueError, QueueFault } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from '../queue/chain.js';
import { DescFlag } from '../spec/ring.js';

/** Alignment in bytes of each queue's region in the inflight buffer. */
export const INFLIGHT_ALIGN = 64;
/** The region layout version this code writes and recognises. */
export const INFLIGHT_VERSION = 1;

/** Bytes of one queue's region for a queue of `queueSize` entries (packed layout, 64-byte aligned). */
export function inflightQueueRegionSize(queueSize: number): number {
  const raw = 32 + 32 * queueSize;
  return Math.ceil(raw / INFLIGHT_ALIGN) * INFLIGHT_ALIGN;
}

const U32 = 0x1_0000_0000;

function getCounter(dv: DataView, off: number): number {
  return dv.getUint32(off + 4, true) * U32 + dv.getUint32(off, true);
}
function setCounter(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / U32) >>> 0, true);
}

/** Adds one descriptor to `chain`, expanding an indirect table (2.7.5.3 / 2.8.7). */
function addDescriptor(
  mem: GuestMemory,
  chain: DescriptorChain,
  addr: number,
  len: number,
  flags: number,
  indirectOk: boolean,
  le: boolean,
  nested: boolean,
  q: number,
  packed: boolean,
): void {
  if ((flags & DescFlag.INDIRECT) !== 0) {
    if (!indirectOk) throw new QueueError(QueueFault.INDIRECT_NOT_NEGOTIATED, 'indirect descriptor', q);
    if (nested) throw new QueueError(QueueFault.INDIRECT_NESTED, 'nested indirect descriptor', q);
    if (len === 0 || len % 16 !== 0) throw new QueueError(QueueFault.INDIRECT_BAD_LEN, `indirect table of ${len} bytes`, q);
    const n = len / 16;
    // Packed: the whole table is the list, bounded like a chain (device/packed-ring/8). Split:
    // the chain inside it is bounded (by the capacity check of each descriptor), not the table.
    if (packed && n > chain.capacity) throw new QueueError(QueueFault.INDIRECT_TOO_BIG, `indirect table of ${n} entries`, q);
    if (!mem.isMapped(addr, len)) throw new QueueError(QueueFault.DESC_UNMAPPED, 'indirect table unmapped', q);
    if (packed) {
      // 2.8.7: a packed table holds packed descriptors (flags at 14, not 12), read in order:
      // the table length bounds the list and NEXT inside it is ignored.
      for (let k = 0; k < n; k++) {
        const d = addr + 16 * k;
        // Flags other than WRITE are reserved inside a packed table and ignored (2.8.7).
        const f = mem.readU16(d + 14, le) & DescFlag.WRITE;
        addDescriptor(mem, chain, mem.readAddr(d, le), mem.readU32(d + 8, le), f, indirectOk, le, true, q, true);
      }
      return;
    }
    let i = 0;
    for (let hops = 0; hops < n; hops++) {
      const d = addr + 16 * i;
      const f = mem.readU16(d + 12, le);
      addDescriptor(mem, chain, mem.readAddr(d, le), mem.readU32(d + 8, le), f, indirectOk, le, true, q, false);
      if ((f & DescFlag.NEXT) === 0) return;
      i = mem.readU16(d + 14, le);
      if (i >= n) throw new QueueError(QueueFault.NEXT_OUT_OF_RANGE, `indirect next ${i}`, q);
    }
    throw new QueueError(QueueFault.CHAIN_TOO_LONG, 'indirect chain loops', q);
  }
  const writable = (flags & DescFlag.WRITE) !== 0;
  if (!writable && chain.count > chain.readableCount) {
    throw new QueueError(QueueFault.READABLE_AFTER_WRITABLE, 'readable descriptor after a writable one', q);
  }
  if (chain.count >= chain.capacity) throw new QueueError(QueueFault.CHAIN_TOO_LONG, 'chain longer than the chain capacity', q);
  if (chain.readableBytes + chain.writableBytes + len > 0xffff_ffff) throw new QueueError(QueueFault.CHAIN_LEN_OVERFLOW, 'chain length overflows', q);
  if (addr < 0 || !mem.isMapped(addr, len)) chain.fault = QueueFault.DESC_UNMAPPED;
  chain.addSegment(addr < 0 ? 0 : addr, len, writable);
}

/** Rebuilds a split chain from its head in the descriptor table (for resubmission). */
export function readSplitChain(
  mem: GuestMemory,
  descAddr: number,
  qsize: number,
  head: number,
  indirectOk: boolean,
  le: boolean,
  chain: DescriptorChain,
  q: number,
): void {
  chain.clear();
  chain.memory = mem;
  chain.id = head;
  chain.ringDescs = 1;
  if (!mem.isMapped(descAddr, 16 * qsize)) throw new QueueError(QueueFault.RING_UNMAPPED, 'descriptor table unmapped', q);
  let i = head;
  for (let hops = 0; hops < qsize; hops++) {
    if (i >= qsize) throw new QueueError(QueueFault.NEXT_OUT_OF_RANGE, `next ${i}`, q);
    const d = descAddr + 16 * i;
    const f = mem.readU16(d + 12, le);
    if ((f & DescFlag.INDIRECT) !== 0 && (f & DescFlag.NEXT) !== 0) throw new QueueError(QueueFault.INDIRECT_WITH_NEXT, 'indirect with next', q);
    addDescriptor(mem, chain, mem.readAddr(d, le), mem.readU32(d + 8, le), f, indirectOk, le, false, q, false);
    if ((f & DescFlag.NEXT) === 0) return;
    i = mem.readU16(d + 14, le);
  }
  throw new QueueError(QueueFault.CHAIN_TOO_LONG, 'chain loops', q);
}

/** A queue's view of the shared inflight buffer. */
abstract class InflightQueue {
  /** The fetch counter the next popped buffer gets (one more than the largest in the region after `start`). */
  protected counter = 0;
  /** Heads (split) or head slots (packed) to resubmit, in fetch order. */
  resubmit: number[] = [];
  constructor(
    /** View of the whole shared inflight buffer (all queues' regions). */
    protected readonly dv: DataView,
    /** Byte offset of this queue's region in `dv`. */
    protected readonly base: number,
    /** Queue size: the number of desc[] entries in the region (its desc_num). */
    readonly size: number,
  ) {}

  /** The region's version field; anything but INFLIGHT_VERSION means an uninitialised region. */
  protected get version(): number {
    return this.dv.getUint16(this.base + 8, true);
  }
}

/** Split ring tracking ("For split virtqueue"). */
export class SplitInflight extends InflightQueue {
  private d(i: number): number {
    return this.base + 16 + 16 * i;
  }

  /**
   * Prepares the region for a ring whose used idx in guest memory is `ringUsedIdx`: initialises
   * an empty region, or recovers a used one (resubmit list in counter order). Returns the number
   * of buffers in flight (the caller resumes the avail ring after them).
   */
  start(ringUsedIdx: number): number {
    const dv = this.dv;
    const b = this.base;
    if (this.version !== INFLIGHT_VERSION || dv.getUint16(b + 10, true) !== this.size) {
      new Uint8Array(dv.buffer, dv.byteOffset + b, 16 + 16 * this.size).fill(0);
      dv.setUint16(b + 8, INFLIGHT_VERSION, true);
      dv.setUint16(b + 10, this.size, true);
      dv.setUint16(b + 14, ringUsedIdx, true);
      this.counter = 0;
      this.resubmit = [];
      return 0;
    }
    const regionUsed = dv.getUint16(b + 14, true);
    if (regionUsed !== ringUsedIdx) {
      // The last batch reached the used ring but its inflight flags were not cleared yet.
      let batch = (ringUsedIdx - regionUsed) & 0xffff;
      let i = dv.getUint16(b + 12, true);
      for (let hops = 0; batch > 0 && hops < this.size && i < this.size; hops++, batch--) {
        dv.setUint8(this.d(i), 0);
        i = dv.getUint16(this.d(i) + 6, true);
      }
      dv.setUint16(b + 14, ringUsedIdx, true);
    }
    const heads: number[] = [];
    let max = 0;
    for (let i = 0; i < this.size; i++) {
      if (dv.getUint8(this.d(i)) === 1) heads.push(i);
      max = Math.max(max, getCounter(dv, this.d(i) + 8));
    }
    heads.sort((x, y) => getCounter(dv, this.d(x) + 8) - getCounter(dv, this.d(y) + 8));
    this.resubmit = heads;
    this.counter = max + 1;
    return heads.length;
  }

  /** The buffer at `head` was taken from the avail ring: mark it in flight with the next counter. */
  onPop(head: number): void {
    const o = this.d(head);
    setCounter(this.dv, o + 8, this.counter++);
    this.dv.setUint8(o, 1);
  }

  /** Before the used entry is published: link the head into the last batch. */
  beforePush(head: number): void {
    const b = this.base;
    this.dv.setUint16(this.d(head) + 6, this.dv.getUint16(b + 12, true), true);
    this.dv.setUint16(b + 12, head, true);
  }

  /** After the used idx moved to `usedIdx`. */
  afterPush(head: number, usedIdx: number): void {
    this.dv.setUint8(this.d(head), 0);
    this.dv.setUint16(this.base + 14, usedIdx & 0xffff, true);
  }

  /** The buffer at `head` went back to the avail ring unused (undoPop): no longer in flight. */
  onUndoPop(head: number): void {
    this.dv.setUint8(this.d(head), 0);
  }
}

/** Packed ring tracking ("For packed virtqueue"). */
export class PackedInflight extends InflightQueue {
  /** Buffer id -> head slot of its entry list. */
  private readonly idToSlot: Uint16Array;

  constructor(dv: DataView, base: number, size: number) {
    super(dv, base, size);
    this.idToSlot = new Uint16Array(size);
  }

  private d(i: number): number {
    return this.base + 32 + 32 * i;
  }
  private h16(off: number): number {
    return this.dv.getUint16(this.base + off, true);
  }
  private s16(off: number, v: number): void {
    this.dv.setUint16(this.base + off, v, true);
  }

  /** The region's used_idx: the next used ring position the back-end will write. */
  get usedIdx(): number {
    return this.h16(16);
  }
  /** The region's used_wrap_counter: the wrap counter that goes with `usedIdx` (2.8.1). */
  get usedWrap(): boolean {
    return this.dv.getUint8(this.base + 20) !== 0;
  }

  /**
   * Prepares the region. `ringFlagsAt(pos)` reads the flags of the descriptor ring entry at
   * `pos` (for the half-committed batch check). Returns the ring descriptors in flight.
   */
  start(nextUsed: number, usedWrap: boolean, ringFlagsAt: (pos: number) => number): number {
    const dv = this.dv;
    const b = this.base;
    const n = this.size;
    if (this.version !== INFLIGHT_VERSION || this.h16(10) !== n) {
      new Uint8Array(dv.buffer, dv.byteOffset + b, 32 + 32 * n).fill(0);
      dv.setUint16(b + 8, INFLIGHT_VERSION, true);
      this.s16(10, n);
      // A free list of every slot, ended by n (no more than n descriptors can be in flight).
      for (let i = 0; i < n; i++) dv.setUint16(this.d(i) + 2, i + 1, true);
      this.s16(12, 0);
      this.s16(14, 0);
      this.s16(16, nextUsed);
      this.s16(18, nextUsed);
      dv.setUint8(b + 20, usedWrap ? 1 : 0);
      dv.setUint8(b + 21, usedWrap ? 1 : 0);
      this.counter = 0;
      this.resubmit = [];
      return 0;
    }
    if (this.h16(16) !== this.h16(18)) {
      const oldUsed = this.h16(18) % n;
      const oldWrap = dv.getUint8(b + 21) !== 0;
      const availFlags = oldWrap ? DescFlag.AVAIL : DescFlag.USED;
      const f = ringFlagsAt(oldUsed) & (DescFlag.AVAIL | DescFlag.USED);
      if (f !== availFlags) {
        // The used descriptor reached the ring: commit the in-progress update.
        this.s16(14, this.h16(12));
        this.s16(18, this.h16(16));
        dv.setUint8(b + 21, dv.getUint8(b + 20));
      }
    }
    // Roll back anything in progress.
    this.s16(12, this.h16(14));
    this.s16(16, this.h16(18));
    dv.setUint8(b + 20, dv.getUint8(b + 21));
    // Entries on the free list are not in flight.
    let i = this.h16(12);
    for (let hops = 0; hops < n && i < n; hops++) {
      dv.setUint8(this.d(i), 0);
      i = dv.getUint16(this.d(i) + 2, true);
    }
    const heads: number[] = [];
    let max = 0;
    let ringDescs = 0;
    for (let k = 0; k < n; k++) {
      if (dv.getUint8(this.d(k)) === 1) {
        heads.push(k);
        ringDescs += dv.getUint16(this.d(k) + 6, true);
        const last = Math.min(dv.getUint16(this.d(k) + 4, true), n - 1);
        this.idToSlot[dv.getUint16(this.d(last) + 16, true) % n] = k;
      }
      max = Math.max(max, getCounter(dv, this.d(k) + 8));
    }
    heads.sort((x, y) => getCounter(dv, this.d(x) + 8) - getCounter(dv, this.d(y) + 8));
    this.resubmit = heads;
    this.counter = max + 1;
    return ringDescs;
  }

  /**
   * Records a buffer just popped: its `count` ring descriptors start at ring position `pos`
   * of the descriptor ring at guest address `ring`.
   */
  onPop(mem: GuestMemory, ring: number, pos: number, count: number, le: boolean): void {
    const dv = this.dv;
    const n = this.size;
    const head = this.h16(14);
    let free = this.h16(12);
    // More descriptors in flight than slots: only a corrupted region gets here; stop tracking.
    if (head >= n || free >= n) return;
    dv.setUint16(this.d(head) + 6, 0, true);
    setCounter(dv, this.d(head) + 8, this.counter++);
    dv.setUint8(this.d(head), 1);
    let id = 0;
    for (let k = 0; k < count && free < n; k++) {
      const at = ring + 16 * ((pos + k) % n);
      if (k === count - 1) dv.setUint16(this.d(head) + 4, free, true);
      dv.setUint16(this.d(head) + 6, dv.getUint16(this.d(head) + 6, true) + 1, true);
      const e = this.d(free);
      id = mem.readU16(at + 12, le);
      dv.setUint16(e + 16, id, true);
      dv.setUint16(e + 18, mem.readU16(at + 14, le), true);
      dv.setUint32(e + 20, mem.readU32(at + 8, le), true);
      const a = mem.readAddr(at, le);
      setCounter(dv, e + 24, a < 0 ? 0 : a);
      free = dv.getUint16(e + 2, true);
    }
    this.s16(12, free);
    this.s16(14, free);
    this.idToSlot[id % n] = head;
  }

  /** Before the used descriptor of buffer `id` is written: return its entries to the free list. */
  beforePush(id: number): number {
    const dv = this.dv;
    const e = this.idToSlot[id % this.size]!;
    const last = dv.getUint16(this.d(e) + 4, true) % this.size;
    dv.setUint16(this.d(last) + 2, this.h16(12), true);
    this.s16(12, e);
    return e;
  }

  /** After the used descriptor was written: the used position moved to (nextUsed, wrap). */
  afterPush(slot: number, nextUsed: number, wrap: boolean): void {
    const dv = this.dv;
    this.s16(16, nextUsed);
    dv.setUint8(this.base + 20, wrap ? 1 : 0);
    dv.setUint8(this.d(slot), 0);
    this.s16(14, this.h16(12));
    this.s16(18, nextUsed);
    dv.setUint8(this.base + 21, wrap ? 1 : 0);
  }

  /**
   * The buffer `id` went back to the ring unused (undoPop): its entries return to the free list
   * as at a push, without a used descriptor (the used position does not move).
   */
  onUndoPop(id: number): void {
    const dv = this.dv;
    const e = this.beforePush(id);
    dv.setUint8(this.d(e), 0);
    this.s16(14, this.h16(12));
  }

  /** Rebuilds the chain of head slot `slot` from the region (for resubmission). */
  readChain(mem: GuestMemory, slot: number, indirectOk: boolean, le: boolean, chain: DescriptorChain, q: number): void {
    const dv = this.dv;
    const n = this.size;
    chain.clear();
    chain.memory = mem;
    const num = Math.min(dv.getUint16(this.d(slot) + 6, true), n);
    chain.ringDescs = Math.max(1, num);
    let i = slot;
    let id = 0;
    for (let k = 0; k < num; k++) {
      const e = this.d(i % n);
      id = dv.getUint16(e + 16, true);
      const f = dv.getUint16(e + 18, true);
      addDescriptor(mem, chain, getCounter(dv, e + 24), dv.getUint32(e + 20, true), f, indirectOk, le, false, q, true);
      i = dv.getUint16(e + 2, true);
    }
    chain.id = id;
    this.idToSlot[id % n] = slot;
  }
}
