/**
 * Device side of a packed virtqueue (2.8).
 *
 * The driver is untrusted: every walk is bounded (a chain never takes more ring descriptors
 * than the ring has outside the device's hands, nor more segments than the chain holds), every
 * guest address goes through GuestMemory. A broken ring rule throws a QueueError (kept in
 * `broken`; the device core answers with DEVICE_NEEDS_RESET) and the queue yields nothing more
 * until `reset()`. An unmapped data buffer only fails its own request (`chain.fault`).
 *
 * The three ring parts are resolved to their regions once, at construction, so pop/push read
 * and write ring fields through cached views without a region lookup, without allocation and
 * without BigInt.
 */
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { DESC_SIZE, DescFlag, PackedEvent, PackedLayout } from '../spec/ring.js';
import { DescriptorChain, chainCapacityForQueue } from './chain.js';
import { hexAddress } from './hex-address.js';
import { addUnmappedBuffer } from './unmapped-buffer.js';
import { checkPackedState, checkUndoCount, rewindPackedAvail } from './packed-queue-state.js';
import { offWrap, packedNeedEvent, resolvePackedConfig } from './packed-layout.js';
import { type ResolvedArea, fullFence, loadU16Acquire, storeU16Release } from './split-layout.js';
import type { DeviceQueue, QueueConfig, QueuePeek, QueueState } from './types.js';

const U32 = 0x1_0000_0000;
/** 2.8.4: a buffer longer than 2^32 - 1 bytes cannot be described (len fields are 32-bit). */
const MAX_CHAIN_BYTES = 0xffffffff;
const { NEXT, WRITE, INDIRECT, AVAIL, USED } = DescFlag;

/**
 * The device side of a packed virtqueue (2.8): pops available buffers by their AVAIL/USED flags and
 * wrap counters, writes used descriptors, with event suppression structures (2.8.10), indirect
 * tables, IN_ORDER and saved state. The driver is untrusted: every walk is bounded; a broken ring
 * rule throws QueueError. Nothing is allocated per buffer.
 */
export class PackedQueue implements DeviceQueue {
  readonly size: number;
  readonly index: number;
  readonly packed = true;
  /** The guest memory the ring lies in (replaced by `rebind(memory)`). */
  memory: GuestMemory;
  /** Derived once from the negotiated features. */
  readonly eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC was negotiated: indirect tables are accepted (2.8.7). */
  readonly indirect: boolean;
  /** VIRTIO_F_IN_ORDER was negotiated (2.8.8). */
  readonly inOrder: boolean;
  /** DeviceQueue: batched used descriptors are allowed with IN_ORDER. */
  get inOrderBatching(): boolean {
    return this.inOrder;
  }
  /** Ring fields are little-endian (packed rings always are: VERSION_1 is required). */
  readonly littleEndian: boolean;

  private desc: ResolvedArea;
  /** Driver Event Suppression (read by the device). */
  private drvEvt: ResolvedArea;
  /** Device Event Suppression (written by the device). */
  private devEvt: ResolvedArea;
  /**
   * Little-endian fast path: the descriptor ring as u32 words of its region (null for
   * big-endian guests or an unaligned region) and the word index of descriptor 0.
   */
  private descU32: Uint32Array | null;
  private descW: number;
  /** Driver Event Suppression as u16 words (with the descriptor fast path) and its word index. */
  private drvEvtU16: Uint16Array | null;
  private drvEvtW: number;
  /**
   * `pushDeferred`: ring position and flags of the first used descriptor whose flags are held
   * back (-1: none). The later ones get their flags with plain stores; `publish` stores these
   * flags last, with release, so the driver (which reads used descriptors in ring order) sees
   * the whole batch at once and never a later one before the earlier.
   */
  private heldPos = -1;
  private heldFlags = 0;

  /** Next ring position to read and the Driver Ring Wrap Counter expected there (2.8.1). */
  private nextAvail = 0;
  private availWrap = true;
  /** Next ring position to write a used descriptor and the Device Ring Wrap Counter (2.8.1). */
  private nextUsed = 0;
  private usedWrap = true;
  /** Buffers popped and not yet returned (an in-order batch counts as its size). */
  private inFlightBufs = 0;
  /**
   * Ring descriptors of the last `size` popped buffers (a ring written at `recentPos`), so
   * `undoPop` can step nextAvail back exactly: at most `size` buffers are ever in flight.
   */
  private readonly recentDescs: Uint16Array;
  private recentPos = 0;
  /** IN_ORDER: ring descriptors of the popped buffers, in pop order (a FIFO of `size`). */
  private readonly orderDescs: Uint16Array;
  private orderHead = 0;
  private orderCount = 0;
  /** Guest range of the region the last data buffer was found in (a lookup-free fast path). */
  private dataStart = 0;
  private dataEnd = -1;
  private brokenErr: QueueError | null = null;
  /** Whether the device currently wants available-buffer notifications (2.8.10). */
  private notifyEnabled = true;
  /** Flags this queue last stored in the Device Event Suppression area (-1: not known). */
  private devEvtMode = -1;
  /** Ring descriptors used since `needsNotification` last ran, and whether that count is known. */
  private usedSinceSignal = 0;
  private signalledValid = true;

  private readonly config: QueueConfig;

  constructor(memory: GuestMemory, config: QueueConfig) {
    const r = resolvePackedConfig(memory, config);
    this.memory = memory;
    this.config = config;
    this.size = r.size;
    this.index = r.index;
    this.eventIdx = r.eventIdx;
    this.indirect = r.indirect;
    this.inOrder = r.inOrder;
    this.littleEndian = r.littleEndian;
    this.desc = this.drvEvt = this.devEvt = r.desc;
    this.descU32 = this.drvEvtU16 = null;
    this.descW = this.drvEvtW = 0;
    this.bindViews(r);
    this.orderDescs = new Uint16Array(r.size);
    this.recentDescs = new Uint16Array(r.size);
  }

  /** The views of guest memory the ring is read and written through (derived from `r`). */
  private bindViews(r: ReturnType<typeof resolvePackedConfig>): void {
    this.desc = r.desc;
    this.drvEvt = r.driver;
    this.devEvt = r.device;
    this.descU32 = r.littleEndian && (r.desc.offset & 3) === 0 && r.desc.u16 !== null ? this.memory.u32Of(r.desc.region) : null;
    this.drvEvtU16 = this.descU32 !== null ? r.driver.u16 : null;
    // Offsets within the regions: another GuestMemory may lay them out otherwise (rebind(memory)).
    this.descW = r.desc.offset >>> 2;
    this.drvEvtW = r.driver.offset >>> 1;
    this.dataStart = 0;
    this.dataEnd = -1;
  }

  /**
   * The GuestMemory was rebound in place (its region buffers replaced, addresses unchanged), or
   * replaced by `memory`, another GuestMemory holding the ring at the same guest addresses: the
   * ring views are derived again. Position, buffers in flight and held chains stay. Throws (the
   * queue unchanged) when the ring does not fit `memory`.
   */
  rebind(memory: GuestMemory = this.memory): void {
    const r = resolvePackedConfig(memory, this.config);
    this.memory = memory;
    this.bindViews(r);
  }

  get broken(): QueueError | null {
    return this.brokenErr;
  }

  /** Next ring position the device will read. */
  get lastAvailIdx(): number {
    return this.nextAvail;
  }

  /** Next ring position the device will write a used descriptor at. */
  get usedIdx(): number {
    return this.nextUsed;
  }

  /** Buffers popped and not yet returned (counting an in-order batch as its size). */
  get inFlight(): number {
    return this.inFlightBufs;
  }

  /** Config and position, read-only (QueuePeek): nothing is published or written. */
  peek(): QueuePeek {
    const position = { nextAvail: this.nextAvail, nextUsed: this.nextUsed, availWrap: this.availWrap, usedWrap: this.usedWrap };
    return { config: this.config, position, inFlight: this.inFlightBufs, notifyEnabled: this.notifyEnabled };
  }

  /** Ring descriptors between nextUsed and nextAvail: in the device's hands. */
  private get descsInFlight(): number {
    const d = this.nextAvail - this.nextUsed;
    return this.availWrap === this.usedWrap ? d : d + this.size;
  }

  private fail(fault: QueueFault, message: string): never {
    const e = new QueueError(fault, `queue ${this.index}: ${message}`, this.index);
    this.brokenErr = e;
    throw e;
  }

  /** 2.8.1: a descriptor is available when AVAIL matches the wrap counter and USED does not. */
  private isAvail(flags: number, wrap: boolean): boolean {
    return ((flags & AVAIL) !== 0) === wrap && ((flags & USED) !== 0) !== wrap;
  }

  private flagsAt(pos: number): number {
    // The common case inline (an atomic u16 load is an acquire); else the generic helper.
    const u32 = this.descU32;
    if (u32 !== null) return Atomics.load(this.desc.u16!, 2 * this.descW + 8 * pos + 7);
    return loadU16Acquire(this.desc, pos * DESC_SIZE + PackedLayout.FLAGS, this.littleEndian);
  }

  hasAvailable(): boolean {
    if (this.brokenErr !== null) return false;
    if (this.descsInFlight >= this.size) return false;
    return this.isAvail(this.flagsAt(this.nextAvail), this.availWrap);
  }

  pop(chain: DescriptorChain): boolean {
    if (this.brokenErr !== null) return false;
    const budget = this.size - this.descsInFlight;
    // Every descriptor is in the device's hands: the one at nextAvail is ours, not the driver's.
    if (budget <= 0) return false;
    // device/packed-ring/5, 2.8.21: flags are read (acquire) before the descriptor they expose.
    const flags0 = this.flagsAt(this.nextAvail);
    if (!this.isAvail(flags0, this.availWrap)) return false;
    this.walk(chain, flags0, budget);
    // A buffer takes at most `size` (<= 32768) ring descriptors: it fits a u16.
    this.recentDescs[this.recentPos] = chain.ringDescs;
    if (++this.recentPos === this.size) this.recentPos = 0;
    if (this.inOrder) {
      this.orderDescs[(this.orderHead + this.orderCount) % this.size] = chain.ringDescs;
      this.orderCount++;
    }
    this.inFlightBufs++;
    // 2.8.10 with EVENT_IDX and notifications wanted: ask to be told about the next descriptor.
    if (this.eventIdx && this.notifyEnabled) {
      // Flags already DESC: moving the event position forward is a plain store (as split's
      // avail_event); the flags store with release is for a change of mode.
      if (this.devEvtMode === PackedEvent.DESC_SPECIFIC) {
        const e = this.devEvt;
        const ow = offWrap(this.nextAvail, this.availWrap);
        if (this.littleEndian && e.u16 !== null) e.u16[(e.offset + PackedEvent.DESC) >>> 1] = ow;
        else e.view.setUint16(e.offset + PackedEvent.DESC, ow, this.littleEndian);
      } else this.writeDeviceEvent(PackedEvent.DESC_SPECIFIC);
    }
    return true;
  }

  /**
   * Fills `chain` from the descriptors at nextAvail (device/packed-ring/1, 7: in ring order) and
   * moves nextAvail past them; throws a QueueError on a ring-rule break. `budget` bounds the
   * ring descriptors the chain may take (driver/packed-ring/7, 10: never more than are free).
   */
  private walk(chain: DescriptorChain, flags0: number, budget: number): void {
    const le = this.littleEndian;
    const mem = this.memory;
    const size = this.size;
    const dview = this.desc.view;
    const dbase = this.desc.offset;
    const u32 = this.descU32;
    const dw = this.descW;
    chain.clear();
    chain.memory = mem;
    const capacity = chain.capacity;
    let pos = this.nextAvail;
    let wrap = this.availWrap;
    let descs = 0;
    let seenWritable = false;
    let total = 0;
    let flags = flags0;
    for (;;) {
      if (descs >= budget) {
        this.fail(QueueFault.CHAIN_TOO_LONG, `chain at ${this.nextAvail} takes more than the ${budget} free ring descriptors`);
      }
      descs++;
      const cur = pos;
      const o = dbase + cur * DESC_SIZE;
      let lo: number;
      let hi: number;
      let len: number;
      // Id and flags share the last word; the id is read again (at the list's end) from it.
      if (u32 !== null) {
        const w = dw + 4 * pos;
        lo = u32[w]!;
        hi = u32[w + 1]!;
        len = u32[w + 2]!;
        if (descs > 1) flags = u32[w + 3]! >>> 16;
      } else {
        if (descs > 1) flags = dview.getUint16(o + PackedLayout.FLAGS, le);
        lo = dview.getUint32(le ? o : o + 4, le);
        hi = dview.getUint32(le ? o + 4 : o, le);
        len = dview.getUint32(o + PackedLayout.LEN, le);
      }
      // An address beyond 2^53 cannot be in any region: -1 marks it unmapped. Below 4 GiB no
      // floating-point arithmetic is needed.
      const addr = hi === 0 ? lo : hi >= 0x20_0000 ? -1 : hi * U32 + lo;
      pos++;
      if (pos === size) {
        pos = 0;
        wrap = !wrap;
      }
      if ((flags & INDIRECT) !== 0) {
        // 2.8.7 Indirect Flag. WRITE on this descriptor is reserved and ignored.
        if (!this.indirect) this.fail(QueueFault.INDIRECT_NOT_NEGOTIATED, `indirect descriptor without INDIRECT_DESC (at ${this.nextAvail})`);
        // driver/packed-ring/15: no INDIRECT descriptor in a list linked by NEXT.
        if ((flags & NEXT) !== 0 || descs > 1) this.fail(QueueFault.INDIRECT_WITH_NEXT, `indirect descriptor in a NEXT list (at ${this.nextAvail})`);
        if (len === 0 || len % DESC_SIZE !== 0) this.fail(QueueFault.INDIRECT_BAD_LEN, `indirect table length ${len}`);
        const n = len / DESC_SIZE;
        // device/packed-ring/8: the device limits the list to what a chain holds.
        if (n > capacity) this.fail(QueueFault.INDIRECT_TOO_BIG, `indirect table of ${n} entries exceeds ${capacity}`);
        const r = addr < 0 ? -1 : mem.locate(addr, len);
        if (r < 0) this.fail(QueueFault.RING_UNMAPPED, `indirect table ${hexAddress(hi, lo)}+${len} is not mapped`);
        const id = dview.getUint16(o + PackedLayout.ID, le);
        const tview = mem.dataViewOf(r);
        const tbase = addr - mem.baseOf(r);
        for (let i = 0; i < n; i++) {
          const t = tbase + i * DESC_SIZE;
          const tf = tview.getUint16(t + PackedLayout.FLAGS, le);
          // 2.8.7: WRITE is the only valid flag inside the table; the others (INDIRECT and NEXT
          // included) and the Buffer ID are reserved and ignored by the device: the table length
          // bounds the list.
          const tlo = tview.getUint32(le ? t : t + 4, le);
          const thi = tview.getUint32(le ? t + 4 : t, le);
          const taddr = thi >= 0x20_0000 ? -1 : thi * U32 + tlo;
          const tlen = tview.getUint32(t + PackedLayout.LEN, le);
          const w = (tf & WRITE) !== 0;
          if (w) seenWritable = true;
          else if (seenWritable) this.fail(QueueFault.READABLE_AFTER_WRITABLE, `readable descriptor after a writable one (at ${this.nextAvail})`);
          total += tlen;
          if (total > MAX_CHAIN_BYTES) this.fail(QueueFault.CHAIN_LEN_OVERFLOW, `buffer at ${this.nextAvail} exceeds 2^32 - 1 bytes`);
          this.addData(chain, taddr, tlen, w, n - 1 - i);
        }
        this.finish(chain, id, 1, pos, wrap);
        return;
      }
      const writable = (flags & WRITE) !== 0;
      if (writable) seenWritable = true;
      else if (seenWritable) {
        // driver/packed-ring/8: device-writable elements come after all device-readable ones.
        this.fail(QueueFault.READABLE_AFTER_WRITABLE, `readable descriptor after a writable one (at ${this.nextAvail})`);
      }
      total += len;
      if (total > MAX_CHAIN_BYTES) this.fail(QueueFault.CHAIN_LEN_OVERFLOW, `buffer at ${this.nextAvail} exceeds 2^32 - 1 bytes`);
      if (chain.count >= capacity) this.fail(QueueFault.CHAIN_TOO_LONG, `buffer at ${this.nextAvail} has more than ${capacity} segments`);
      this.addData(chain, addr, len, writable, budget - descs);
      if ((flags & NEXT) === 0) {
        // 2.8.6: the Buffer ID is in the last descriptor of the list.
        const id = u32 !== null ? u32[dw + 4 * cur + 3]! & 0xffff : dview.getUint16(o + PackedLayout.ID, le);
        this.finish(chain, id, descs, pos, wrap);
        return;
      }
    }
  }

  private finish(chain: DescriptorChain, id: number, descs: number, pos: number, wrap: boolean): void {
    chain.id = id;
    chain.ringDescs = descs;
    this.nextAvail = pos;
    this.availWrap = wrap;
  }

  /** Adds a data buffer; `mayFollow`: descriptors that may still follow in this list (see addUnmapped). */
  private addData(chain: DescriptorChain, addr: number, len: number, writable: boolean, mayFollow: number): void {
    if (chain.count >= chain.capacity) this.fail(QueueFault.CHAIN_TOO_LONG, `buffer at ${this.nextAvail} has more than ${chain.capacity} segments`);
    if (addr >= this.dataStart && addr + len <= this.dataEnd) {
      chain.addSegment(addr, len, writable);
      return;
    }
    const mem = this.memory;
    const r = addr >= 0 ? mem.locate(addr, len) : -1;
    if (r >= 0) {
      this.dataStart = mem.baseOf(r);
      this.dataEnd = this.dataStart + mem.bytesOf(r).length;
      chain.addSegment(addr, len, writable);
    } else this.addUnmapped(chain, addr, len, writable, mayFollow);
  }

  /** Slow path for a data buffer not inside one region (unmapped-buffer.ts). */
  private addUnmapped(chain: DescriptorChain, addr: number, len: number, writable: boolean, mayFollow: number): void {
    if (!addUnmappedBuffer(chain, this.memory, addr, len, writable, mayFollow)) this.fail(QueueFault.CHAIN_TOO_LONG, `buffer at ${this.nextAvail} has more than ${chain.capacity} segments`);
  }

  push(chain: DescriptorChain, written: number): void {
    this.pushId(chain.id, chain.ringDescs, written);
  }

  /**
   * Writes one used descriptor {id, len: written} at nextUsed and skips the `ringDescs`
   * descriptors the buffer took (2.8.6: one used descriptor per list). With IN_ORDER the buffer
   * is the oldest in flight.
   */
  pushId(id: number, ringDescs: number, written: number): void {
    if (!Number.isInteger(ringDescs) || ringDescs < 1 || ringDescs > this.size) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `buffer of ${ringDescs} ring descriptors on queue ${this.index} of ${this.size}`);
    }
    if (this.brokenErr !== null) return; // the ring is the driver's to reset; leave it alone
    if (this.inOrder && this.orderCount > 0) {
      this.orderHead = (this.orderHead + 1) % this.size;
      this.orderCount--;
    }
    this.writeUsed(id, written, ringDescs, 1, false);
  }

  /**
   * Like `push`, but the used descriptor becomes visible to the driver only at the next
   * `publish()`, `push`, `needsNotification()` or `state()`: one release store per pass
   * instead of one per buffer (the flags of the pass's first used descriptor go last, as a
   * driver publishes a batch of heads). Never allocates.
   */
  pushDeferred(chain: DescriptorChain, written: number): void {
    const ringDescs = chain.ringDescs;
    if (!Number.isInteger(ringDescs) || ringDescs < 1 || ringDescs > this.size) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `buffer of ${ringDescs} ring descriptors on queue ${this.index} of ${this.size}`);
    }
    if (this.brokenErr !== null) return;
    if (this.inOrder && this.orderCount > 0) {
      this.orderHead = (this.orderHead + 1) % this.size;
      this.orderCount--;
    }
    this.writeUsed(chain.id, written, ringDescs, 1, true);
  }

  /**
   * Makes the used descriptors of `pushDeferred` visible (device/packed-ring/6: flags last,
   * release). Those pushed before the queue broke are still published, as `push` would have done.
   */
  publish(): void {
    const pos = this.heldPos;
    if (pos < 0) return;
    this.heldPos = -1;
    if (this.descU32 !== null) Atomics.store(this.desc.u16!, 2 * this.descW + 8 * pos + 7, this.heldFlags);
    else storeU16Release(this.desc, pos * DESC_SIZE + PackedLayout.FLAGS, this.heldFlags, this.littleEndian);
  }

  /**
   * IN_ORDER (2.8.8 "In-order use of descriptors"): returns the next `count` popped buffers
   * with ONE used descriptor carrying the id `lastId` of the last buffer of the batch and its
   * written length; it goes where the batch's first buffer started and the device skips the
   * ring descriptors of the whole batch. The driver treats the skipped buffers as used
   * completely, so the device must have written all of their writable bytes.
   */
  pushInOrderBatch(lastId: number, count: number, written: number): void {
    if (!this.inOrder) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'batched used descriptors need IN_ORDER');
    if (!Number.isInteger(count) || count < 1 || count > this.orderCount) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `batch of ${count} with ${this.orderCount} buffers in flight`);
    }
    if (this.brokenErr !== null) return;
    let descs = 0;
    for (let i = 0; i < count; i++) {
      descs += this.orderDescs[this.orderHead]!;
      this.orderHead = (this.orderHead + 1) % this.size;
    }
    this.orderCount -= count;
    this.writeUsed(lastId, written, descs, count, false);
  }

  undoPop(count: number): void {
    checkUndoCount(count, this.inFlightBufs);
    if (this.brokenErr !== null) return;
    // Back over the newest `count` buffers (packed-queue-state.ts).
    const r = rewindPackedAvail(this.recentDescs, this.recentPos, this.nextAvail, this.availWrap, this.size, count);
    this.nextAvail = r.nextAvail;
    this.availWrap = r.availWrap;
    this.recentPos = r.recentPos;
    this.inFlightBufs -= count;
    // IN_ORDER: the undone buffers are the newest of the FIFO.
    if (this.inOrder) this.orderCount = Math.max(0, this.orderCount - count);
  }

  createChain(minSegments = 0): DescriptorChain {
    return new DescriptorChain(this.memory, chainCapacityForQueue(this.size, minSegments));
  }

  private writeUsed(id: number, written: number, descs: number, bufs: number, defer: boolean): void {
    if (!(id >= 0 && id <= 0xffff) || (id | 0) !== id) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `buffer id ${id} is not a 16-bit id (queue ${this.index})`);
    }
    const le = this.littleEndian;
    const w = written >>> 0;
    const pos = this.nextUsed;
    const o = pos * DESC_SIZE;
    // 2.8.1: a used descriptor has AVAIL and USED both equal to the Device Ring Wrap Counter;
    // 2.8.3: WRITE says whether anything was written. Flags last, with release (device/packed-ring/6).
    const flags = (this.usedWrap ? AVAIL | USED : 0) | (w > 0 ? WRITE : 0);
    const u32 = this.descU32;
    const held = this.heldPos >= 0;
    if (u32 !== null) {
      const x = this.descW + 4 * pos;
      u32[x + 2] = w;
      // Behind a held first descriptor the flags go with the id in one plain store.
      if (held) u32[x + 3] = id | (flags << 16);
      else this.desc.u16![(this.desc.offset + o + PackedLayout.ID) >>> 1] = id;
    } else {
      const v = this.desc.view;
      v.setUint16(this.desc.offset + o + PackedLayout.ID, id, le);
      v.setUint32(this.desc.offset + o + PackedLayout.LEN, w, le);
      if (held) v.setUint16(this.desc.offset + o + PackedLayout.FLAGS, flags, le);
    }
    if (!held) {
      if (defer) {
        this.heldPos = pos;
        this.heldFlags = flags;
      } else if (u32 !== null) Atomics.store(this.desc.u16!, 2 * this.descW + 8 * pos + 7, flags);
      else storeU16Release(this.desc, o + PackedLayout.FLAGS, flags, le);
    } else if (!defer) this.publish();
    let p = this.nextUsed + descs;
    if (p >= this.size) {
      p -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    this.nextUsed = p;
    this.inFlightBufs = this.inFlightBufs >= bufs ? this.inFlightBufs - bufs : 0;
    this.usedSinceSignal += descs;
  }

  /** Writes the Device Event Suppression area; `desc` first so a DESC flag finds it set. */
  private writeDeviceEvent(mode: number): void {
    const le = this.littleEndian;
    const e = this.devEvt;
    if (mode === PackedEvent.DESC_SPECIFIC) e.view.setUint16(e.offset + PackedEvent.DESC, offWrap(this.nextAvail, this.availWrap), le);
    storeU16Release(e, PackedEvent.FLAGS, mode, le);
    this.devEvtMode = mode;
  }

  disableNotification(): void {
    this.notifyEnabled = false;
    // 2.8.10: RING_EVENT_FLAGS_DISABLE is valid with or without EVENT_IDX.
    this.writeDeviceEvent(PackedEvent.DISABLE);
  }

  enableNotification(): boolean {
    this.notifyEnabled = true;
    // With EVENT_IDX: notify when the descriptor at nextAvail is made available.
    this.writeDeviceEvent(this.eventIdx ? PackedEvent.DESC_SPECIFIC : PackedEvent.ENABLE);
    // Publish the request before re-reading the ring, else a buffer added meanwhile would find
    // notifications off and we would not see it either.
    fullFence();
    return this.hasAvailable();
  }

  needsNotification(): boolean {
    this.publish();
    if (this.brokenErr !== null) return false;
    // Order the used descriptor stores before reading the driver's suppression fields: with
    // the atomic views the publishing flags store was seq-cst and so are the loads below (the
    // full barrier of 2.8.10 without a fence); else a full fence.
    const ev16 = this.drvEvtU16;
    if (ev16 === null) fullFence();
    const moved = this.usedSinceSignal;
    const valid = this.signalledValid;
    this.usedSinceSignal = 0;
    this.signalledValid = true;
    // After setState the last signalled position is unknown: notify (spurious ones are allowed).
    if (!valid) return true;
    if (moved === 0) return false;
    const le = this.littleEndian;
    const e = this.drvEvt;
    const flags = (ev16 !== null ? Atomics.load(ev16, this.drvEvtW + PackedEvent.FLAGS / 2) : e.view.getUint16(e.offset + PackedEvent.FLAGS, le)) & 0x3;
    if (flags === PackedEvent.DISABLE) return false;
    // DESC is only meaningful with EVENT_IDX; otherwise (and for the reserved 3) notify.
    if (flags !== PackedEvent.DESC_SPECIFIC || !this.eventIdx) return true;
    const ow = e.view.getUint16(e.offset + PackedEvent.DESC, le);
    return packedNeedEvent(ow, this.nextUsed, this.usedWrap, moved, this.size);
  }

  state(): QueueState {
    this.publish(); // the saved position is the one the driver sees
    return { nextAvail: this.nextAvail, nextUsed: this.nextUsed, availWrap: this.availWrap, usedWrap: this.usedWrap };
  }

  /**
   * Validates and applies saved ring positions. Buffers in flight at save time can still be
   * returned with `pushId` (their id and ring descriptor count come from the caller's records);
   * an IN_ORDER batch cannot span them.
   */
  setState(s: QueueState): void {
    checkPackedState(s, this.size);
    this.nextAvail = s.nextAvail;
    this.availWrap = s.availWrap;
    this.nextUsed = s.nextUsed;
    this.usedWrap = s.usedWrap;
    this.forgetInFlight();
    this.signalledValid = false;
  }

  /** Back to the state of a freshly enabled queue (2.6.1 / 3.3.1); guest memory is not touched. */
  reset(): void {
    this.nextAvail = 0;
    this.availWrap = true;
    this.nextUsed = 0;
    this.usedWrap = true;
    this.forgetInFlight();
    this.brokenErr = null;
    this.notifyEnabled = true;
    this.signalledValid = true;
  }

  /** Forgets buffers in flight, held flags and the Device Event Suppression mode last stored. */
  private forgetInFlight(): void {
    this.heldPos = -1;
    this.devEvtMode = -1;
    this.orderHead = 0;
    this.orderCount = 0;
    this.recentPos = 0;
    this.inFlightBufs = 0;
    this.usedSinceSignal = 0;
  }
}
