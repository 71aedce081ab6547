/**
 * Driver side of a split virtqueue (2.7): a reference driver that follows the driver
 * normative statements of 2.7 and does not trust the device (a used id out of range or not
 * in flight, or a used idx running ahead, is a QueueError USED_ID_INVALID).
 *
 * Bookkeeping (free list, tokens, lengths) lives in driver-private arrays, never in guest
 * memory the device could scribble on. With IN_ORDER the descriptors are used in ring order
 * (2.7.5) and used entries may cover a batch of buffers (2.7.9).
 */
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { DESC_SIZE, DescFlag, SplitLayout, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY, needEvent } from '../spec/ring.js';
import {
  type ResolvedArea,
  type SplitRingAddresses,
  fullFence,
  legacySplitRingLayout,
  loadU16Acquire,
  resolveSplitConfig,
  splitRingLayout,
  storeU16Release,
} from '../queue/split-layout.js';
import { checkBufferSegments } from './segments.js';
import type { DriverQueue, QueueConfig, Segment } from '../queue/types.js';

const U32 = 0x1_0000_0000;
const DEFAULT_INDIRECT_SEGMENTS = 16;

/** Indirect table settings of a SplitDriverQueue. */
export interface SplitDriverQueueOptions {
  /**
   * Guest address of the indirect table area: one slot of `indirectMaxSegments` descriptors
   * per ring descriptor (size * indirectMaxSegments * 16 bytes, 16-aligned, in one region).
   * See `SplitDriverQueue.indirectAreaSize`.
   */
  indirectTableAddr?: number;
  /** Segments per indirect table, 1..size (driver/split-ring/7); default 16 (capped at size). */
  indirectMaxSegments?: number;
}

/**
 * The driver side of a split virtqueue (2.7): adds chains (with indirect tables when negotiated),
 * publishes the available index with event suppression, and takes used entries, checking every id
 * and length the device returns.
 */
export class SplitDriverQueue<T = number> implements DriverQueue<T> {
  readonly size: number;
  readonly packed = false;
  /** The queue's index on the device. */
  readonly index: number;
  /** The guest memory the ring lives in. */
  readonly memory: GuestMemory;
  /** VIRTIO_F_EVENT_IDX was negotiated (2.7.10). */
  readonly eventIdx: boolean;
  /** VIRTIO_F_IN_ORDER was negotiated (2.7.9). */
  readonly inOrder: boolean;
  /** Whether ring fields are little-endian (false only for a legacy big-endian guest). */
  readonly littleEndian: boolean;
  /** Written length of the buffer last returned by `takeUsed`. */
  lastUsedLen = 0;

  private readonly mask: number;
  private readonly desc: ResolvedArea;
  private readonly avail: ResolvedArea;
  private readonly used: ResolvedArea;
  private readonly usedEventOff: number;
  /** Interrupts enabled (driver/split-ring/11..14): takeUsed then keeps used_event current. */
  private interruptsWanted = true;
  private readonly availEventOff: number;
  /**
   * Little-endian fast paths (null for big-endian guests or unaligned regions): the descriptor
   * table and used ring as u32 words and the avail ring as u16 words of their regions, with the
   * word index of entry 0. Typed-array accesses are cheaper than DataView calls.
   */
  private readonly descU32: Uint32Array | null;
  private readonly descW: number;
  private readonly availU16: Uint16Array | null;
  private readonly availRingW: number;
  private readonly usedU32: Uint32Array | null;
  private readonly usedRingW: number;
  /** u16 word indices of avail idx, used idx, used flags and avail_event (with the u16 views). */
  private readonly availIdxW: number;
  private readonly usedU16: Uint16Array | null;
  private readonly usedIdxW: number;
  private readonly usedFlagsW: number;
  private readonly availEventW: number;
  private readonly usedEventW: number;
  /**
   * Both rings have atomic u16 views: avail idx is stored seq-cst and the device's fields are
   * loaded seq-cst, which orders the store before the loads (driver/split-ring/25) without a fence.
   */
  private readonly seqCst: boolean;
  private readonly indirectOk: boolean;
  private readonly indirectMax: number;
  private readonly indirectView: DataView | null = null;
  private readonly indirectOff: number = 0;
  private readonly indirectAddr: number = 0;

  private free: number;
  /** Free list links (not IN_ORDER); an allocated chain keeps its links until freed. */
  private readonly links: Uint16Array;
  private freeHead = 0;
  /** IN_ORDER: the next descriptor to use (descriptors are used and freed in ring order). */
  private orderNext = 0;
  private readonly tokens: (T | undefined)[];
  private readonly descCount: Uint16Array;
  private readonly writableLen: Uint32Array;
  private readonly inFlight: Uint8Array;
  /** IN_ORDER: heads in the order they were made available. */
  private readonly fifo: Uint16Array;
  private fifoHead = 0;
  private fifoCount = 0;
  /** IN_ORDER: a batch being handed out (last id of the batch, its used len), or -1. */
  private batchLastId = -1;
  private batchLen = 0;

  /** Avail idx including buffers added but not yet published by `kick`. */
  private availShadow = 0;
  private published = 0;
  private outstanding = 0;
  private lastUsed = 0;
  private usedIdxSeen = 0;
  /** used_event was stored by takeUsed and no fence has ordered it before a used idx read yet. */
  private usedEventUnfenced = false;
  private brokenErr: QueueError | null = null;

  constructor(memory: GuestMemory, config: QueueConfig, opts: SplitDriverQueueOptions = {}) {
    const r = resolveSplitConfig(memory, config);
    this.memory = memory;
    this.size = r.size;
    this.index = r.index;
    this.mask = r.size - 1;
    this.eventIdx = r.eventIdx;
    this.inOrder = r.inOrder;
    this.littleEndian = r.littleEndian;
    this.desc = r.desc;
    this.avail = r.avail;
    this.used = r.used;
    this.usedEventOff = r.avail.offset + SplitLayout.usedEventOffset(r.size);
    this.availEventOff = r.used.offset + SplitLayout.availEventOffset(r.size);
    const le = r.littleEndian;
    this.descU32 = le && (r.desc.offset & 3) === 0 ? memory.u32Of(r.desc.region) : null;
    this.descW = r.desc.offset >>> 2;
    this.availU16 = le ? r.avail.u16 : null;
    this.availRingW = (r.avail.offset + SplitLayout.AVAIL_RING) >>> 1;
    this.usedU32 = le && (r.used.offset & 3) === 0 ? memory.u32Of(r.used.region) : null;
    this.usedRingW = (r.used.offset + SplitLayout.USED_RING) >>> 2;
    this.availIdxW = (r.avail.offset + SplitLayout.AVAIL_IDX) >>> 1;
    this.usedU16 = le ? r.used.u16 : null;
    this.usedIdxW = (r.used.offset + SplitLayout.USED_IDX) >>> 1;
    this.usedFlagsW = (r.used.offset + SplitLayout.USED_FLAGS) >>> 1;
    this.availEventW = this.availEventOff >>> 1;
    this.usedEventW = this.usedEventOff >>> 1;
    this.seqCst = this.availU16 !== null && this.usedU16 !== null;
    this.indirectMax = opts.indirectMaxSegments ?? Math.min(DEFAULT_INDIRECT_SEGMENTS, r.size);
    if (opts.indirectTableAddr !== undefined) {
      const m = this.indirectMax;
      if (!Number.isInteger(m) || m < 1 || m > r.size) {
        throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `indirectMaxSegments ${m} not in 1..${r.size}`);
      }
      const a = opts.indirectTableAddr;
      const len = SplitDriverQueue.indirectAreaSize(r.size, m);
      const reg = Number.isSafeInteger(a) && a % DESC_SIZE === 0 ? memory.locate(a, len) : -1;
      if (reg < 0) {
        throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `indirect area 0x${a.toString(16)}+${len} is not 16-aligned in one region`);
      }
      this.indirectView = memory.dataViewOf(reg);
      this.indirectOff = a - memory.baseOf(reg);
      this.indirectAddr = a;
    }
    this.indirectOk = r.indirect && this.indirectView !== null;

    this.free = r.size;
    this.links = new Uint16Array(r.size);
    for (let i = 0; i < r.size; i++) this.links[i] = (i + 1) & this.mask;
    this.tokens = new Array<T | undefined>(r.size);
    this.descCount = new Uint16Array(r.size);
    this.writableLen = new Uint32Array(r.size);
    this.inFlight = new Uint8Array(r.size);
    this.fifo = new Uint16Array(r.size);

    // driver/split-ring/17: used flags start at 0; the rest of both rings starts clean too.
    const av = this.avail;
    av.bytes.fill(0, av.offset, av.offset + SplitLayout.availSize(r.size));
    const u = this.used;
    u.bytes.fill(0, u.offset, u.offset + SplitLayout.usedSize(r.size));
  }

  /** 2.7 modern placement of a queue of `size` at `base` (16-aligned). */
  static layout(size: number, base: number): SplitRingAddresses {
    return splitRingLayout(size, base);
  }

  /** 2.7.2 legacy contiguous placement (used ring on the next `align` boundary). */
  static legacyLayout(size: number, base: number, align?: number): SplitRingAddresses {
    return legacySplitRingLayout(size, base, align);
  }

  /** Bytes of the indirect area for `size` slots of `maxSegments` descriptors. */
  static indirectAreaSize(size: number, maxSegments: number): number {
    return size * maxSegments * DESC_SIZE;
  }

  get freeCount(): number {
    return this.free;
  }

  /** Whether `add(..., true)` is possible (INDIRECT_DESC negotiated and an area given). */
  get canIndirect(): boolean {
    return this.indirectOk;
  }

  /** Segments one indirect table holds (0 when indirect tables cannot be used). */
  get maxIndirectSegments(): number {
    return this.indirectOk ? this.indirectMax : 0;
  }

  /** Set once the device broke a ring rule; takeUsed rethrows it. */
  get broken(): QueueError | null {
    return this.brokenErr;
  }

  /** Buffers added and not yet returned by takeUsed. */
  get pending(): number {
    return this.outstanding;
  }

  add(out: readonly Segment[], inn: readonly Segment[], token: T, indirect = false): boolean {
    const nOut = out.length;
    const n = nOut + inn.length;
    const writable = checkBufferSegments(out, inn);
    let ringDescs = n;
    if (indirect) {
      // driver/split-ring/5: only with INDIRECT_DESC.
      if (!this.indirectOk) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'indirect descriptors not negotiated or no indirect area');
      if (n > this.indirectMax) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${n} segments exceed the indirect table (${this.indirectMax})`);
      ringDescs = 1;
    } else if (n > this.size) {
      // driver/split-ring/7: never longer than the queue size; it could never fit.
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${n} segments exceed queue size ${this.size}`);
    }
    if (ringDescs > this.free) return false;

    const le = this.littleEndian;
    const head = this.inOrder ? this.orderNext : this.freeHead;
    if (indirect) {
      const view = this.indirectView!;
      const base = this.indirectOff + head * this.indirectMax * DESC_SIZE;
      for (let i = 0; i < n; i++) {
        const s = i < nOut ? out[i]! : inn[i - nOut]!;
        const more = i + 1 < n;
        // driver/split-ring/6: no INDIRECT inside; driver/split-ring/9: next = i + 1.
        writeDesc(view, base + i * DESC_SIZE, s.addr, s.len, (i >= nOut ? DescFlag.WRITE : 0) | (more ? DescFlag.NEXT : 0), more ? i + 1 : 0, le);
      }
      const table = this.indirectAddr + head * this.indirectMax * DESC_SIZE;
      // driver/split-ring/8: INDIRECT without NEXT.
      writeDesc(this.desc.view, this.desc.offset + head * DESC_SIZE, table, n * DESC_SIZE, DescFlag.INDIRECT, 0, le);
      this.advanceFree(head, 1);
    } else {
      let d = head;
      const u32 = this.descU32;
      for (let i = 0; i < n; i++) {
        const s = i < nOut ? out[i]! : inn[i - nOut]!;
        const more = i + 1 < n;
        // 2.7.5: IN_ORDER next is x + 1, wrapping to 0 (driver/split-ring/4).
        const next = this.inOrder ? (d + 1) & this.mask : this.links[d]!;
        // driver/split-ring/2: readable segments first, then writable ones.
        const flags = (i >= nOut ? DescFlag.WRITE : 0) | (more ? DescFlag.NEXT : 0);
        if (u32 !== null) {
          const w = this.descW + 4 * d;
          const lo = s.addr >>> 0;
          u32[w] = lo;
          u32[w + 1] = (s.addr - lo) / U32;
          u32[w + 2] = s.len;
          u32[w + 3] = flags | ((more ? next : 0) << 16);
        } else writeDesc(this.desc.view, this.desc.offset + d * DESC_SIZE, s.addr, s.len, flags, more ? next : 0, le);
        d = next;
      }
      this.advanceFree(head, n);
    }
    this.tokens[head] = token;
    this.descCount[head] = ringDescs;
    this.writableLen[head] = writable;
    this.inFlight[head] = 1;
    this.outstanding++;
    if (this.inOrder) {
      this.fifo[(this.fifoHead + this.fifoCount) & this.mask] = head;
      this.fifoCount++;
    }
    // 2.7.13.2: the head goes into the next avail ring entry; idx moves at kick().
    const slot = this.availShadow & this.mask;
    const a16 = this.availU16;
    if (a16 !== null) a16[this.availRingW + slot] = head;
    else this.avail.view.setUint16(this.avail.offset + SplitLayout.AVAIL_RING + 2 * slot, head, le);
    this.availShadow = (this.availShadow + 1) & 0xffff;
    return true;
  }

  /** Takes `k` descriptors starting at `head` off the free list. */
  private advanceFree(head: number, k: number): void {
    this.free -= k;
    if (this.inOrder) {
      this.orderNext = (head + k) & this.mask;
      return;
    }
    let d = head;
    for (let i = 0; i < k; i++) d = this.links[d]!;
    this.freeHead = d;
  }

  kick(): boolean {
    const old = this.published;
    const now = this.availShadow;
    if (now === old) return false;
    this.published = now;
    const u = this.used;
    if (this.seqCst) {
      // driver/split-ring/24: descriptors and ring entries are visible before idx (the store
      // is seq-cst, so a release); driver/split-ring/25: seq-cst loads after a seq-cst store
      // are ordered after it, the full barrier between publishing idx and reading the device's
      // suppression fields.
      Atomics.store(this.availU16!, this.availIdxW, now);
      const u16 = this.usedU16!;
      if (this.eventIdx) return needEvent(Atomics.load(u16, this.availEventW), now, old);
      return (Atomics.load(u16, this.usedFlagsW) & VIRTQ_USED_F_NO_NOTIFY) === 0;
    }
    // driver/split-ring/24: descriptors and ring entries are visible before idx (release).
    storeU16Release(this.avail, SplitLayout.AVAIL_IDX, now, this.littleEndian);
    // driver/split-ring/25: idx is published before reading flags or avail_event.
    fullFence();
    if (this.eventIdx) {
      // driver/split-ring/21, 22, 23: flags ignored; notify when idx crossed avail_event.
      return needEvent(u.view.getUint16(this.availEventOff, this.littleEndian), now, old);
    }
    // driver/split-ring/18, 19, 20: avail_event ignored; flags decide.
    return (u.view.getUint16(u.offset + SplitLayout.USED_FLAGS, this.littleEndian) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /**
   * 2.9 "Driver Notifications" with NOTIFICATION_DATA, split ring: vq index in bits 0-15,
   * next_off (avail idx bits 0-14) in bits 16-30 and next_wrap (avail idx bit 15) in bit 31,
   * that is the published avail idx in the high half.
   */
  notificationData(): number {
    return ((this.index & 0xffff) | (this.published << 16)) >>> 0;
  }

  private deviceError(message: string): never {
    const e = new QueueError(QueueFault.USED_ID_INVALID, `queue ${this.index}: ${message}`, this.index);
    this.brokenErr = e;
    throw e;
  }

  /** Acquire load of used idx (an atomic load where there is a view; inline, it is hot). */
  private usedIdx(): number {
    const v = this.loadUsedIdx();
    // 2.7.10: a used_event store must be ordered before a read of used idx that finds nothing
    // new (else the device could miss the new event and we its entry). A read that finds new
    // entries needs no fence: we take them and come back.
    if (!this.usedEventUnfenced || v !== this.lastUsed) return v;
    this.usedEventUnfenced = false;
    fullFence();
    return this.loadUsedIdx();
  }

  private loadUsedIdx(): number {
    const u16 = this.usedU16;
    if (u16 !== null) return Atomics.load(u16, this.usedIdxW);
    return loadU16Acquire(this.used, SplitLayout.USED_IDX, this.littleEndian);
  }

  /** Whether the device has returned buffers not taken yet. */
  hasUsed(): boolean {
    if (this.batchLastId >= 0) return true;
    if (this.lastUsed !== this.usedIdxSeen) return true;
    this.usedIdxSeen = this.usedIdx();
    return this.lastUsed !== this.usedIdxSeen;
  }

  takeUsed(): T | undefined {
    if (this.brokenErr !== null) throw this.brokenErr;
    if (this.batchLastId >= 0) return this.takeFromBatch();
    if (this.lastUsed === this.usedIdxSeen) {
      // 2.7.14: acquire of used idx before reading the entries it covers.
      this.usedIdxSeen = this.usedIdx();
      if (this.lastUsed === this.usedIdxSeen) return undefined;
    }
    const ready = (this.usedIdxSeen - this.lastUsed) & 0xffff;
    if (ready > this.outstanding) {
      this.deviceError(`used idx ${this.usedIdxSeen} is ${ready} ahead of ${this.lastUsed}`);
    }
    const slot = this.lastUsed & this.mask;
    const u32 = this.usedU32;
    let id: number;
    let len: number;
    if (u32 !== null) {
      const w = this.usedRingW + 2 * slot;
      id = u32[w]!;
      len = u32[w + 1]!;
    } else {
      const le = this.littleEndian;
      const u = this.used;
      const o = u.offset + SplitLayout.USED_RING + SplitLayout.USED_ELEM_SIZE * slot;
      id = u.view.getUint32(o, le);
      len = u.view.getUint32(o + 4, le);
    }
    if (id >= this.size || this.inFlight[id] === 0) this.deviceError(`used id ${id} is not a buffer in flight`);
    if (this.inOrder) {
      const front = this.fifo[this.fifoHead]!;
      if (id !== front) {
        // 2.7.9: one entry for a batch ending with buffer `id`; the skipped ones are complete.
        let k = 1;
        while (k < this.fifoCount && this.fifo[(this.fifoHead + k) & this.mask] !== id) k++;
        if (k >= this.fifoCount) this.deviceError(`used id ${id} is not in flight`);
        if (k + 1 > ready) this.deviceError(`in-order batch of ${k + 1} but used idx moved by ${ready}`);
        this.lastUsed = (this.lastUsed + k + 1) & 0xffff;
        if (this.eventIdx && this.interruptsWanted) this.rearmUsedEvent();
        this.batchLastId = id;
        this.batchLen = len;
        return this.takeFromBatch();
      }
      this.fifoHead = (this.fifoHead + 1) & this.mask;
      this.fifoCount--;
    }
    this.lastUsed = (this.lastUsed + 1) & 0xffff;
    if (this.eventIdx && this.interruptsWanted) this.rearmUsedEvent();
    return this.complete(id, len);
  }

  /**
   * 2.7.10 with EVENT_IDX, interrupts wanted: ask for an interrupt at the next entry as each one
   * is taken (as Linux's virtqueue_get_buf does), so a consumer that drains without calling
   * enableInterrupts again is still interrupted for the next buffer. A fence orders the store
   * before the next read of used idx (taken in usedIdx).
   */
  private rearmUsedEvent(): void {
    const a16 = this.availU16;
    if (a16 !== null) a16[this.usedEventW] = this.lastUsed;
    else this.avail.view.setUint16(this.usedEventOff, this.lastUsed, this.littleEndian);
    // The fence is taken in usedIdx, before a read of used idx that finds nothing new, the only
    // read it must precede: one fence per drain instead of one per buffer taken.
    this.usedEventUnfenced = true;
  }

  private takeFromBatch(): T | undefined {
    const h = this.fifo[this.fifoHead]!;
    this.fifoHead = (this.fifoHead + 1) & this.mask;
    this.fifoCount--;
    if (h === this.batchLastId) {
      this.batchLastId = -1;
      return this.complete(h, this.batchLen);
    }
    return this.complete(h, this.writableLen[h]!);
  }

  /** Frees the chain at `head` and hands back its token. */
  private complete(head: number, len: number): T | undefined {
    // driver/split-ring/16: never trust bytes past the writable part; clamp a device overstatement.
    const w = this.writableLen[head]!;
    this.lastUsedLen = len > w ? w : len;
    const token = this.tokens[head];
    this.tokens[head] = undefined;
    this.inFlight[head] = 0;
    this.outstanding--;
    const k = this.descCount[head]!;
    this.free += k;
    if (!this.inOrder) {
      let tail = head;
      for (let i = 1; i < k; i++) tail = this.links[tail]!;
      this.links[tail] = this.freeHead;
      this.freeHead = head;
    }
    return token;
  }

  disableInterrupts(): void {
    const le = this.littleEndian;
    this.interruptsWanted = false;
    if (this.eventIdx) {
      // driver/split-ring/13: flags stay 0; an event just behind lastUsed is not reached
      // before the driver consumes (at most `size` entries can be outstanding).
      this.avail.view.setUint16(this.usedEventOff, (this.lastUsed - 1) & 0xffff, le);
    } else {
      // driver/split-ring/11, 12.
      this.avail.view.setUint16(this.avail.offset + SplitLayout.AVAIL_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT, le);
    }
  }

  enableInterrupts(): boolean {
    const le = this.littleEndian;
    this.interruptsWanted = true;
    if (this.eventIdx) {
      // driver/split-ring/14: interrupt when the device writes the entry at lastUsed.
      this.avail.view.setUint16(this.usedEventOff, this.lastUsed, le);
    } else {
      this.avail.view.setUint16(this.avail.offset + SplitLayout.AVAIL_FLAGS, 0, le);
    }
    // 2.7.14 note: re-check after re-enabling, so a buffer used meanwhile is not missed.
    fullFence();
    return this.hasUsed();
  }
}

function writeDesc(view: DataView, o: number, addr: number, len: number, flags: number, next: number, le: boolean): void {
  const lo = addr >>> 0;
  const hi = Math.floor(addr / U32);
  view.setUint32(le ? o : o + 4, lo, le);
  view.setUint32(le ? o + 4 : o, hi, le);
  view.setUint32(o + 8, len, le);
  view.setUint16(o + 12, flags, le);
  view.setUint16(o + 14, next, le);
}
