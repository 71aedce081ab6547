/**
 * Driver side of a packed virtqueue (2.8): a reference driver that follows the driver
 * normative statements of 2.8 and does not trust the device (a used buffer id out of range or
 * not in flight is a QueueError USED_ID_INVALID).
 *
 * Bookkeeping (free ids, tokens, lengths, ring descriptors per buffer) lives in driver-private
 * arrays, never in guest memory the device could scribble on. Buffer ids are 0..size-1. The
 * first descriptor of each buffer is made available at `kick` (release order, after the rest
 * of its list: driver/packed-ring/11, 16), so `add` followed by `kick` mirrors the split ring.
 */
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { DESC_SIZE, DescFlag, PackedEvent, PackedLayout } from '../spec/ring.js';
import { type PackedRingAddresses, offWrap, packedNeedEvent, packedRingLayout, resolvePackedConfig } from '../queue/packed-layout.js';
import { type ResolvedArea, fullFence, loadU16Acquire, storeU16Release } from '../queue/split-layout.js';
import { checkBufferSegments } from './segments.js';
import type { DriverQueue, QueueConfig, Segment } from '../queue/types.js';
import type { SplitDriverQueueOptions } from './split-driver-queue.js';

const U32 = 0x1_0000_0000;
const DEFAULT_INDIRECT_SEGMENTS = 16;
const { NEXT, WRITE, INDIRECT, AVAIL, USED } = DescFlag;

/** Same shape as the split driver's options: an indirect table area, one slot per buffer id. */
export type PackedDriverQueueOptions = SplitDriverQueueOptions;

/**
 * The driver side of a packed virtqueue (2.8): writes available descriptors with the wrap counters,
 * event suppression structures, indirect tables, and takes used descriptors, checking every id and
 * length the device returns.
 */
export class PackedDriverQueue<T = number> implements DriverQueue<T> {
  readonly size: number;
  readonly packed = true;
  /** The queue's index on the device. */
  readonly index: number;
  /** The guest memory the ring lives in. */
  readonly memory: GuestMemory;
  /** VIRTIO_F_EVENT_IDX was negotiated (2.8.10). */
  readonly eventIdx: boolean;
  /** VIRTIO_F_IN_ORDER was negotiated (2.8.8). */
  readonly inOrder: boolean;
  /** Always true for a packed ring (VERSION_1 is required). */
  readonly littleEndian: boolean;
  /** Written length of the buffer last returned by `takeUsed`. */
  lastUsedLen = 0;

  private readonly desc: ResolvedArea;
  /** Driver Event Suppression (written here). */
  private readonly drvEvt: ResolvedArea;
  /** Device Event Suppression (read here). */
  private readonly devEvt: ResolvedArea;
  /**
   * Little-endian fast path: the descriptor ring as u32 and u16 words of its region (null for
   * big-endian guests or an unaligned region) and the u32 word index of descriptor 0.
   */
  private readonly descU32: Uint32Array | null;
  private readonly descU16: Uint16Array | null;
  private readonly descW: number;
  /** Device Event Suppression as u16 words (with the descriptor fast path) and its word index. */
  private readonly devEvtU16: Uint16Array | null;
  private readonly devEvtW: number;
  private readonly indirectOk: boolean;
  private readonly indirectMax: number;
  private readonly indirectView: DataView | null = null;
  private readonly indirectOff: number = 0;
  private readonly indirectAddr: number = 0;

  /** Driver Ring Wrap Counter and the next position to fill (2.8.1). */
  private nextAvail = 0;
  private availWrap = true;
  /** Next position a used descriptor is expected at, with the device's wrap counter. */
  private nextUsed = 0;
  private usedWrap = true;
  /** Descriptor-specific interrupts requested (2.8.10): takeUsed keeps the event position current. */
  private descEventArmed = false;
  /** The event position was stored by takeUsed and no fence has ordered it before a flags read. */
  private eventUnfenced = false;
  /** Ring descriptors not in flight. */
  private freeDescs: number;
  /** Free buffer ids (a stack). */
  private readonly freeIds: Uint16Array;
  private freeIdTop: number;
  private readonly tokens: (T | undefined)[];
  private readonly descCount: Uint16Array;
  private readonly writableLen: Uint32Array;
  private readonly inFlight: Uint8Array;
  /** IN_ORDER: ids in the order they were made available. */
  private readonly fifo: Uint16Array;
  private fifoHead = 0;
  private fifoCount = 0;
  /** IN_ORDER: a batch being handed out (last id of the batch, its used len), or -1. */
  private batchLastId = -1;
  private batchLen = 0;
  /** First descriptors whose flags `kick` publishes: ring position and flags value. */
  private readonly pendPos: Uint16Array;
  private readonly pendFlags: Uint16Array;
  private pendCount = 0;
  /** Ring descriptors added since the last kick, and the position/wrap published by it. */
  private addedDescs = 0;
  private publishedPos = 0;
  private publishedWrap = true;
  private outstanding = 0;
  private brokenErr: QueueError | null = null;

  constructor(memory: GuestMemory, config: QueueConfig, opts: PackedDriverQueueOptions = {}) {
    const r = resolvePackedConfig(memory, config);
    this.memory = memory;
    this.size = r.size;
    this.index = r.index;
    this.eventIdx = r.eventIdx;
    this.inOrder = r.inOrder;
    this.littleEndian = r.littleEndian;
    this.desc = r.desc;
    this.drvEvt = r.driver;
    this.devEvt = r.device;
    const fast = r.littleEndian && (r.desc.offset & 3) === 0 && r.desc.u16 !== null;
    this.descU32 = fast ? memory.u32Of(r.desc.region) : null;
    this.descU16 = this.descU32 !== null ? r.desc.u16 : null;
    this.descW = r.desc.offset >>> 2;
    this.devEvtU16 = this.descU16 !== null ? r.device.u16 : null;
    this.devEvtW = r.device.offset >>> 1;
    this.indirectMax = opts.indirectMaxSegments ?? Math.min(DEFAULT_INDIRECT_SEGMENTS, r.size);
    if (opts.indirectTableAddr !== undefined) {
      const m = this.indirectMax;
      if (!Number.isInteger(m) || m < 1 || m > r.size) {
        throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `indirectMaxSegments ${m} not in 1..${r.size}`);
      }
      const a = opts.indirectTableAddr;
      const len = PackedDriverQueue.indirectAreaSize(r.size, m);
      const reg = Number.isSafeInteger(a) && a % DESC_SIZE === 0 ? memory.locate(a, len) : -1;
      if (reg < 0) {
        throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `indirect area 0x${a.toString(16)}+${len} is not 16-aligned in one region`);
      }
      this.indirectView = memory.dataViewOf(reg);
      this.indirectOff = a - memory.baseOf(reg);
      this.indirectAddr = a;
    }
    this.indirectOk = r.indirect && this.indirectView !== null;

    this.freeDescs = r.size;
    this.freeIds = new Uint16Array(r.size);
    // Stack top hands out id 0 first.
    for (let i = 0; i < r.size; i++) this.freeIds[i] = r.size - 1 - i;
    this.freeIdTop = r.size;
    this.tokens = new Array<T | undefined>(r.size);
    this.descCount = new Uint16Array(r.size);
    this.writableLen = new Uint32Array(r.size);
    this.inFlight = new Uint8Array(r.size);
    this.fifo = new Uint16Array(r.size);
    this.pendPos = new Uint16Array(r.size);
    this.pendFlags = new Uint16Array(r.size);

    // 2.8.13: the descriptor ring is zero-initialized; both event areas start at ENABLE (0).
    const d = this.desc;
    d.bytes.fill(0, d.offset, d.offset + PackedLayout.descRingSize(r.size));
    this.drvEvt.bytes.fill(0, this.drvEvt.offset, this.drvEvt.offset + PackedEvent.SIZE);
    this.devEvt.bytes.fill(0, this.devEvt.offset, this.devEvt.offset + PackedEvent.SIZE);
  }

  /** 2.8.10.1 placement of a queue of `size` at `base` (16-aligned). */
  static layout(size: number, base: number): PackedRingAddresses {
    return packedRingLayout(size, base);
  }

  /** Bytes of the indirect area for `size` slots (one per buffer id) of `maxSegments` descriptors. */
  static indirectAreaSize(size: number, maxSegments: number): number {
    return size * maxSegments * DESC_SIZE;
  }

  get freeCount(): number {
    return this.freeIdTop === 0 ? 0 : this.freeDescs;
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

  private availFlags(): number {
    // 2.8.1: AVAIL matches the Driver Ring Wrap Counter, USED its inverse.
    return this.availWrap ? AVAIL : USED;
  }

  private step(): void {
    if (++this.nextAvail === this.size) {
      this.nextAvail = 0;
      this.availWrap = !this.availWrap;
    }
  }

  add(out: readonly Segment[], inn: readonly Segment[], token: T, indirect = false): boolean {
    const nOut = out.length;
    const n = nOut + inn.length;
    const writable = checkBufferSegments(out, inn);
    let ringDescs = n;
    if (indirect) {
      // driver/packed-ring/12: only with INDIRECT_DESC.
      if (!this.indirectOk) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'indirect descriptors not negotiated or no indirect area');
      // driver/packed-ring/14.
      if (n > this.indirectMax) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${n} segments exceed the indirect table (${this.indirectMax})`);
      ringDescs = 1;
    } else if (n > this.size) {
      // driver/packed-ring/7: never longer than the queue size; it could never fit.
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${n} segments exceed queue size ${this.size}`);
    }
    // driver/packed-ring/10: room for the whole list first (and a free buffer id).
    if (ringDescs > this.freeDescs || this.freeIdTop === 0) return false;

    const le = this.littleEndian;
    const id = this.freeIds[--this.freeIdTop]!;
    const dv = this.desc.view;
    const dbase = this.desc.offset;
    const head = this.nextAvail;
    let headFlags: number;
    if (indirect) {
      const view = this.indirectView!;
      const base = this.indirectOff + id * this.indirectMax * DESC_SIZE;
      for (let i = 0; i < n; i++) {
        const s = i < nOut ? out[i]! : inn[i - nOut]!;
        // driver/packed-ring/13: WRITE is the only flag inside an indirect table.
        writeDesc(view, base + i * DESC_SIZE, s.addr, s.len, 0, i >= nOut ? WRITE : 0, le);
      }
      const table = this.indirectAddr + id * this.indirectMax * DESC_SIZE;
      // driver/packed-ring/15: the INDIRECT descriptor stands alone (no NEXT).
      headFlags = INDIRECT | this.availFlags();
      writeDesc(dv, dbase + head * DESC_SIZE, table, n * DESC_SIZE, id, -1, le);
      this.step();
    } else {
      headFlags = 0;
      const u32 = this.descU32;
      for (let i = 0; i < n; i++) {
        const s = i < nOut ? out[i]! : inn[i - nOut]!;
        // driver/packed-ring/8: readable segments first, then writable ones; NEXT on all but the last.
        const f = (i >= nOut ? WRITE : 0) | (i + 1 < n ? NEXT : 0) | this.availFlags();
        // 2.8.6: the buffer id goes in the last descriptor (written in all of them, harmless).
        if (u32 !== null) {
          const w = this.descW + 4 * this.nextAvail;
          const lo = s.addr >>> 0;
          u32[w] = lo;
          u32[w + 1] = (s.addr - lo) / U32;
          u32[w + 2] = s.len;
          // The head's flags wait for kick (driver/packed-ring/11); id and flags share word 3.
          if (i === 0) {
            headFlags = f;
            this.descU16![2 * w + 6] = id;
          } else u32[w + 3] = id | (f << 16);
        } else {
          const o = dbase + this.nextAvail * DESC_SIZE;
          if (i === 0) {
            headFlags = f;
            writeDesc(dv, o, s.addr, s.len, id, -1, le);
          } else writeDesc(dv, o, s.addr, s.len, id, f, le);
        }
        this.step();
      }
    }
    this.freeDescs -= ringDescs;
    this.tokens[id] = token;
    this.descCount[id] = ringDescs;
    this.writableLen[id] = writable;
    this.inFlight[id] = 1;
    this.outstanding++;
    this.addedDescs += ringDescs;
    if (this.inOrder) {
      this.fifo[(this.fifoHead + this.fifoCount) % this.size] = id;
      this.fifoCount++;
    }
    // driver/packed-ring/11: the head is made available at kick, after the rest of its list.
    this.pendPos[this.pendCount] = head;
    this.pendFlags[this.pendCount] = headFlags;
    this.pendCount++;
    return true;
  }

  kick(): boolean {
    if (this.pendCount === 0) return false;
    const le = this.littleEndian;
    const d = this.desc;
    // The later heads first, with plain stores, then the first with release
    // (driver/packed-ring/16): the device reads the ring in order (device/packed-ring/1), so it
    // reaches a later head only after acquiring the first, which makes every store before it
    // visible. One release per kick instead of one per buffer.
    const u16 = this.descU16;
    const ev16 = this.devEvtU16;
    let flags: number;
    if (u16 !== null && ev16 !== null) {
      const fw = 2 * this.descW + 7;
      for (let i = 1; i < this.pendCount; i++) u16[fw + 8 * this.pendPos[i]!] = this.pendFlags[i]!;
      // A seq-cst store (a release), then seq-cst loads: ordered after it, the full barrier
      // of 2.8.21.3.1 between publishing the flags and reading Device Event Suppression.
      Atomics.store(u16, fw + 8 * this.pendPos[0]!, this.pendFlags[0]!);
      flags = Atomics.load(ev16, this.devEvtW + PackedEvent.FLAGS / 2) & 0x3;
    } else {
      for (let i = 1; i < this.pendCount; i++) d.view.setUint16(d.offset + this.pendPos[i]! * DESC_SIZE + PackedLayout.FLAGS, this.pendFlags[i]!, le);
      storeU16Release(d, this.pendPos[0]! * DESC_SIZE + PackedLayout.FLAGS, this.pendFlags[0]!, le);
      // 2.8.21.3.1: the flags are published before reading the Device Event Suppression area.
      fullFence();
      flags = this.devEvt.view.getUint16(this.devEvt.offset + PackedEvent.FLAGS, le) & 0x3;
    }
    this.pendCount = 0;
    const moved = this.addedDescs;
    this.addedDescs = 0;
    this.publishedPos = this.nextAvail;
    this.publishedWrap = this.availWrap;
    const e = this.devEvt;
    if (flags === PackedEvent.DISABLE) return false;
    // DESC is only valid with EVENT_IDX; otherwise (and for the reserved 3) notify.
    if (flags !== PackedEvent.DESC_SPECIFIC || !this.eventIdx) return true;
    return packedNeedEvent(e.view.getUint16(e.offset + PackedEvent.DESC, le), this.nextAvail, this.availWrap, moved, this.size);
  }

  /**
   * 2.9 "Driver Notifications" with NOTIFICATION_DATA, packed ring: vq index in bits 0-15,
   * next_off (the next position not yet made available) in bits 16-30, next_wrap (the Driver
   * Ring Wrap Counter there) in bit 31 (driver/packed-ring/4).
   */
  notificationData(): number {
    return ((this.index & 0xffff) | ((this.publishedPos & 0x7fff) << 16) | (this.publishedWrap ? 0x8000_0000 : 0)) >>> 0;
  }

  private deviceError(message: string): never {
    const e = new QueueError(QueueFault.USED_ID_INVALID, `queue ${this.index}: ${message}`, this.index);
    this.brokenErr = e;
    throw e;
  }

  /** 2.8.1: used when AVAIL and USED both equal the wrap counter expected at nextUsed. */
  private usedFlagsAt(): number {
    const f = this.isUsed(this.loadUsedFlags());
    // 2.8.10: the event position store must be ordered before a flags read that finds nothing
    // (else the device could miss the new event and we its descriptor). A read that finds a
    // used descriptor needs no fence: we take it and come back.
    if (f >= 0 || !this.eventUnfenced) return f;
    this.eventUnfenced = false;
    fullFence();
    return this.isUsed(this.loadUsedFlags());
  }

  private loadUsedFlags(): number {
    const u16 = this.descU16;
    if (u16 !== null) return Atomics.load(u16, 2 * this.descW + 8 * this.nextUsed + 7);
    return loadU16Acquire(this.desc, this.nextUsed * DESC_SIZE + PackedLayout.FLAGS, this.littleEndian);
  }

  /** `f` when AVAIL and USED both equal the used wrap counter, else -1. */
  private isUsed(f: number): number {
    const w = this.usedWrap;
    return ((f & AVAIL) !== 0) === w && ((f & USED) !== 0) === w ? f : -1;
  }

  /** Whether the device has returned buffers not taken yet. */
  hasUsed(): boolean {
    if (this.batchLastId >= 0) return true;
    if (this.outstanding === 0) return false;
    return this.usedFlagsAt() >= 0;
  }

  takeUsed(): T | undefined {
    if (this.brokenErr !== null) throw this.brokenErr;
    if (this.batchLastId >= 0) return this.takeFromBatch();
    // Nothing in flight: whatever sits at nextUsed is stale or our own.
    if (this.outstanding === 0) return undefined;
    // 2.8.21 (driver side): flags with acquire before the id and len they cover.
    const f = this.usedFlagsAt();
    if (f < 0) return undefined;
    const u32 = this.descU32;
    let id: number;
    let len: number;
    // len is read whether or not the used descriptor has WRITE. 2.8.4 calls len reserved
    // without WRITE, but QEMU 7.2 (virtqueue_packed_fill_desc sets only AVAIL and USED) never
    // sets WRITE in a used descriptor, and Linux's driver reads len unconditionally; a
    // driver that dropped it would see every received frame as empty. `complete` clamps len to
    // the buffer's writable part, so a device-readable-only buffer still reads as 0 bytes.
    if (u32 !== null) {
      const w = this.descW + 4 * this.nextUsed;
      id = u32[w + 3]! & 0xffff;
      len = u32[w + 2]!;
    } else {
      const le = this.littleEndian;
      const o = this.desc.offset + this.nextUsed * DESC_SIZE;
      id = this.desc.view.getUint16(o + PackedLayout.ID, le);
      len = this.desc.view.getUint32(o + PackedLayout.LEN, le);
    }
    if (id >= this.size || this.inFlight[id] === 0) this.deviceError(`used buffer id ${id} is not a buffer in flight`);
    if (this.inOrder) {
      const front = this.fifo[this.fifoHead]!;
      if (id !== front) {
        // 2.8.8: one used descriptor for a batch ending with buffer `id`; the skipped ones are complete.
        let k = 1;
        while (k < this.fifoCount && this.fifo[(this.fifoHead + k) % this.size] !== id) k++;
        if (k >= this.fifoCount) this.deviceError(`used buffer id ${id} is not in flight`);
        let descs = 0;
        for (let i = 0; i <= k; i++) descs += this.descCount[this.fifo[(this.fifoHead + i) % this.size]!]!;
        this.skipUsed(descs);
        this.batchLastId = id;
        this.batchLen = len;
        return this.takeFromBatch();
      }
      this.fifoHead = (this.fifoHead + 1) % this.size;
      this.fifoCount--;
    }
    // 2.8.6: skip the list's descriptors to where the next used descriptor goes.
    this.skipUsed(this.descCount[id]!);
    return this.complete(id, len);
  }

  private skipUsed(descs: number): void {
    let p = this.nextUsed + descs;
    if (p >= this.size) {
      p -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    this.nextUsed = p;
    if (this.descEventArmed) {
      // 2.8.10: keep the descriptor event at the next used position as buffers are taken (as
      // Linux's virtqueue_get_buf does), so a consumer that drains without re-enabling is still
      // interrupted for the next one; a fence orders it before a flags read that finds nothing
      // (taken in usedFlagsAt: one per drain instead of one per buffer).
      const e = this.drvEvt;
      const ow = offWrap(p, this.usedWrap);
      if (this.littleEndian && e.u16 !== null) e.u16[(e.offset + PackedEvent.DESC) >>> 1] = ow;
      else e.view.setUint16(e.offset + PackedEvent.DESC, ow, this.littleEndian);
      this.eventUnfenced = true;
    }
  }

  private takeFromBatch(): T | undefined {
    const h = this.fifo[this.fifoHead]!;
    this.fifoHead = (this.fifoHead + 1) % this.size;
    this.fifoCount--;
    if (h === this.batchLastId) {
      this.batchLastId = -1;
      return this.complete(h, this.batchLen);
    }
    return this.complete(h, this.writableLen[h]!);
  }

  /** Frees buffer `id` and hands back its token. */
  private complete(id: number, len: number): T | undefined {
    // Never trust bytes past the writable part: clamp a device overstatement.
    const w = this.writableLen[id]!;
    this.lastUsedLen = len > w ? w : len;
    const token = this.tokens[id];
    this.tokens[id] = undefined;
    this.inFlight[id] = 0;
    this.outstanding--;
    this.freeDescs += this.descCount[id]!;
    this.freeIds[this.freeIdTop++] = id;
    return token;
  }

  disableInterrupts(): void {
    // 2.8.10: DISABLE is valid with or without EVENT_IDX.
    this.descEventArmed = false;
    const e = this.drvEvt;
    e.view.setUint16(e.offset + PackedEvent.FLAGS, PackedEvent.DISABLE, this.littleEndian);
  }

  enableInterrupts(): boolean {
    const le = this.littleEndian;
    const e = this.drvEvt;
    if (this.eventIdx) {
      // Interrupt when the device writes the used descriptor at nextUsed; desc before flags.
      e.view.setUint16(e.offset + PackedEvent.DESC, offWrap(this.nextUsed, this.usedWrap), le);
      storeU16Release(e, PackedEvent.FLAGS, PackedEvent.DESC_SPECIFIC, le);
      this.descEventArmed = true;
    } else {
      storeU16Release(e, PackedEvent.FLAGS, PackedEvent.ENABLE, le);
    }
    // 2.8.22 note: re-check after re-enabling, so a buffer used meanwhile is not missed.
    fullFence();
    return this.hasUsed();
  }
}

/** Writes a packed descriptor; `flags` < 0 leaves the flags field for a later release store. */
function writeDesc(view: DataView, o: number, addr: number, len: number, id: number, flags: number, le: boolean): void {
  const lo = addr >>> 0;
  const hi = Math.floor(addr / U32);
  view.setUint32(le ? o : o + 4, lo, le);
  view.setUint32(le ? o + 4 : o, hi, le);
  view.setUint32(o + PackedLayout.LEN, len, le);
  view.setUint16(o + PackedLayout.ID, id, le);
  if (flags >= 0) view.setUint16(o + PackedLayout.FLAGS, flags, le);
}
