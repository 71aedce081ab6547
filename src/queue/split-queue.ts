/**
 * Device side of a split virtqueue (2.7).
 *
 * The driver is untrusted: every index it writes is range-checked, every walk is bounded, and
 * every guest address goes through GuestMemory. A broken ring rule throws a QueueError (kept in
 * `broken`; the device core answers with DEVICE_NEEDS_RESET) and the queue yields nothing more
 * until `reset()`. An unmapped data buffer only fails its own request (`chain.fault`).
 *
 * The three ring parts are resolved to their regions once, at construction, so pop/push read
 * and write ring fields through cached DataViews without a region lookup, without allocation
 * and without BigInt.
 */
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { DESC_SIZE, DescFlag, SplitLayout, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY, needEvent } from '../spec/ring.js';
import { DescriptorChain, chainCapacityForQueue } from './chain.js';
import { DIRECT_BATCH, type DirectBatch } from './direct-batch.js';
import { hexAddress } from './hex-address.js';
import { DirectRegionCache, MAX_CHAIN_BYTES, U32, walkDirectChains } from './split-direct.js';
import { addUnmappedBuffer } from './unmapped-buffer.js';
import { type ResolvedArea, fullFence, loadU16Acquire, resolveSplitConfig, storeU16Release } from './split-layout.js';
import type { DeviceQueue, QueueConfig, QueuePeek, QueueState } from './types.js';


/**
 * The device side of a split virtqueue (2.7): pops available descriptor chains (indirect tables
 * included) and pushes used entries, with event suppression (2.7.10), IN_ORDER and saved state. The
 * driver is untrusted: every index is range-checked, every walk bounded; a broken ring rule throws
 * QueueError and the queue yields nothing more until reset. Nothing is allocated per chain.
 */
export class SplitQueue implements DeviceQueue {
  readonly size: number;
  readonly index: number;
  readonly packed = false;
  /** The guest memory the ring lies in (replaced by `rebind(memory)`). */
  memory: GuestMemory;
  /** Derived once from the negotiated features. */
  readonly eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC was negotiated: indirect tables are accepted (2.7.5.3). */
  readonly indirect: boolean;
  /** VIRTIO_F_IN_ORDER was negotiated (2.7.9). */
  readonly inOrder: boolean;
  /** DeviceQueue: batched used entries are allowed with IN_ORDER. */
  get inOrderBatching(): boolean {
    return this.inOrder;
  }
  /** Ring fields are little-endian (false only for a legacy big-endian guest). */
  readonly littleEndian: boolean;
  private readonly notifyOnEmpty: boolean;

  private readonly mask: number;
  private desc: ResolvedArea;
  private avail: ResolvedArea;
  private used: ResolvedArea;
  private usedEventOff: number;
  private availEventOff: number;
  /** The descriptor table's region as u32 words (null when the region is not 4-aligned). */
  private descU32: Uint32Array | null;
  /**
   * Little-endian fast paths: the avail ring as u16 words and the used ring as u32 words of
   * their regions (null for big-endian guests or unaligned regions), with the word index of
   * ring entry 0. Typed-array loads and stores are cheaper than DataView calls.
   */
  private availU16: Uint16Array | null;
  private availRingW: number;
  private usedU32: Uint32Array | null;
  private usedRingW: number;
  /** u16 word indices of avail idx, avail flags, used_event and used idx (with availU16/usedU16). */
  private availIdxW: number;
  private availFlagsW: number;
  private usedEventW: number;
  private usedU16: Uint16Array | null;
  private usedIdxW: number;
  private availEventW: number;
  /**
   * Both rings have atomic u16 views: used idx is stored seq-cst and the driver's fields are
   * loaded seq-cst, which orders the store before the loads (the mb of 2.7.10) without a fence.
   */
  private seqCst: boolean;

  private nextAvail = 0;
  /** Next used entry to write; `publishedUsed` is the idx in guest memory (behind after pushDeferred). */
  private nextUsed = 0;
  private publishedUsed = 0;
  /** Last avail idx read from the ring (validated), so a batch of pops reads it once. */
  private availCache = 0;
  /** Guest range of the region the last data buffer was found in (a lookup-free fast path). */
  private dataStart = 0;
  private dataEnd = -1;
  /** The same for popDirect, with the region's index. */
  private readonly directRegion = new DirectRegionCache();
  private brokenErr: QueueError | null = null;
  /** Whether the device currently wants available-buffer notifications (2.7.10). */
  private notifyEnabled = true;
  /** Used idx when `needsNotification` last ran, and whether that value is meaningful. */
  private signalledUsed = 0;
  private signalledValid = true;

  private readonly config: QueueConfig;

  constructor(memory: GuestMemory, config: QueueConfig) {
    const r = resolveSplitConfig(memory, config);
    this.memory = memory;
    this.config = config;
    this.size = r.size;
    this.index = r.index;
    this.mask = r.size - 1;
    this.eventIdx = r.eventIdx;
    this.indirect = r.indirect;
    this.inOrder = r.inOrder;
    this.littleEndian = r.littleEndian;
    this.notifyOnEmpty = r.notifyOnEmpty;
    this.desc = this.avail = this.used = r.desc;
    this.descU32 = this.availU16 = this.usedU32 = this.usedU16 = null;
    this.seqCst = false;
    this.usedEventOff = this.availEventOff = this.availRingW = this.usedRingW = 0;
    this.availIdxW = this.availFlagsW = this.usedEventW = this.usedIdxW = this.availEventW = 0;
    this.bindViews(r);
  }

  /** The views of guest memory the ring is read and written through (derived from `r`). */
  private bindViews(r: ReturnType<typeof resolveSplitConfig>): void {
    const memory = this.memory;
    this.desc = r.desc;
    this.avail = r.avail;
    this.used = r.used;
    // The table is 16-aligned in guest space (2.7); its offset in the region must be too.
    this.descU32 = (r.desc.offset & 3) === 0 ? memory.u32Of(r.desc.region) : null;
    this.availU16 = r.littleEndian ? r.avail.u16 : null;
    // 2.7: the used ring is 4-aligned in guest space; its offset in the region must be too.
    this.usedU32 = r.littleEndian && (r.used.offset & 3) === 0 ? memory.u32Of(r.used.region) : null;
    this.usedU16 = r.littleEndian ? r.used.u16 : null;
    this.seqCst = this.availU16 !== null && this.usedU16 !== null;
    // Offsets within the regions: another GuestMemory may lay the same guest addresses out
    // in other regions (rebind(memory)).
    this.usedEventOff = r.avail.offset + SplitLayout.usedEventOffset(r.size);
    this.availEventOff = r.used.offset + SplitLayout.availEventOffset(r.size);
    this.availRingW = (r.avail.offset + SplitLayout.AVAIL_RING) >>> 1;
    this.usedRingW = (r.used.offset + SplitLayout.USED_RING) >>> 2;
    this.availIdxW = (r.avail.offset + SplitLayout.AVAIL_IDX) >>> 1;
    this.availFlagsW = (r.avail.offset + SplitLayout.AVAIL_FLAGS) >>> 1;
    this.usedEventW = this.usedEventOff >>> 1;
    this.usedIdxW = (r.used.offset + SplitLayout.USED_IDX) >>> 1;
    this.availEventW = this.availEventOff >>> 1;
    this.dataStart = 0;
    this.dataEnd = -1;
    this.directRegion.clear();
  }

  /**
   * The GuestMemory was rebound in place (its region buffers replaced, addresses unchanged: a
   * JavaScript emulator whose RAM buffer grew), or replaced by `memory`, another GuestMemory
   * holding the ring at the same guest addresses: the ring views are derived again. Position,
   * buffers in flight and chains the device holds stay as they are. Throws (the queue
   * unchanged) when the ring does not fit `memory`.
   */
  rebind(memory: GuestMemory = this.memory): void {
    const r = resolveSplitConfig(memory, this.config);
    this.memory = memory;
    this.bindViews(r);
  }

  get broken(): QueueError | null {
    return this.brokenErr;
  }

  /** Next available ring position the device will read (free-running, modulo 2^16). */
  get lastAvailIdx(): number {
    return this.nextAvail;
  }

  /** Next used ring position the device will write (free-running, modulo 2^16). */
  get usedIdx(): number {
    return this.nextUsed;
  }

  /** Buffers popped and not yet returned (counting an in-order batch as its size). */
  get inFlight(): number {
    return (this.nextAvail - this.nextUsed) & 0xffff;
  }

  /** Config and position, read-only (QueuePeek): nothing is published or written. */
  peek(): QueuePeek {
    const position = { nextAvail: this.nextAvail, nextUsed: this.nextUsed, availWrap: true, usedWrap: true };
    return { config: this.config, position, inFlight: this.inFlight, notifyEnabled: this.notifyEnabled };
  }

  private fail(fault: QueueFault, message: string): never {
    const e = new QueueError(fault, `queue ${this.index}: ${message}`, this.index);
    this.brokenErr = e;
    throw e;
  }

  private availIdx(): number {
    const a16 = this.availU16;
    // An atomic load is an acquire (2.7.13.3.1); inline, as the helper is not always inlined.
    if (a16 !== null) return Atomics.load(a16, this.availIdxW);
    return loadU16Acquire(this.avail, SplitLayout.AVAIL_IDX, this.littleEndian);
  }

  hasAvailable(): boolean {
    if (this.brokenErr !== null) return false;
    if (this.availCache !== this.nextAvail) return true;
    return this.availIdx() !== this.nextAvail;
  }

  availableCount(): number {
    if (this.brokenErr !== null) return 0;
    // avail idx - next to pop, modulo 2^16; a driver cannot have more than `size` out (a
    // larger difference is its error, found by pop), so the hint is bounded by the size.
    return Math.min((this.availIdx() - this.nextAvail) & 0xffff, this.size);
  }

  pop(chain: DescriptorChain): boolean {
    if (this.brokenErr !== null) return false;
    const le = this.littleEndian;
    if (this.availCache === this.nextAvail) {
      // 2.7.13: read idx (acquire) before the ring entries and descriptors it publishes.
      const availIdx = this.availIdx();
      const pending = (availIdx - this.nextAvail) & 0xffff;
      if (pending === 0) return false;
      // 2.7.6: idx never decrements and the ring holds at most `size` heads.
      if (pending > this.size) {
        this.fail(QueueFault.AVAIL_IDX_JUMP, `avail idx ${availIdx} is ${pending} ahead of ${this.nextAvail} (size ${this.size})`);
      }
      this.availCache = availIdx;
    }
    const slot = this.nextAvail & this.mask;
    const a16 = this.availU16;
    const head = a16 !== null ? a16[this.availRingW + slot]! : this.avail.view.getUint16(this.avail.offset + SplitLayout.AVAIL_RING + 2 * slot, le);
    if (head >= this.size) this.fail(QueueFault.HEAD_OUT_OF_RANGE, `head ${head} >= size ${this.size}`);
    this.walk(chain, head);
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    // 2.7.10: with EVENT_IDX and notifications wanted, ask to be told about the next buffer.
    if (this.eventIdx && this.notifyEnabled) {
      const u16 = this.usedU16;
      if (u16 !== null) u16[this.availEventW] = this.nextAvail;
      else this.used.view.setUint16(this.availEventOff, this.nextAvail, le);
    }
    return true;
  }

  /** Fills `chain` from the descriptor chain at `head`; throws a QueueError on a ring-rule break. */
  private walk(chain: DescriptorChain, head: number): void {
    const le = this.littleEndian;
    const mem = this.memory;
    chain.clear();
    chain.memory = mem;
    chain.id = head;
    const capacity = chain.capacity;
    let view = this.desc.view;
    let base = this.desc.offset;
    // Little-endian guests (all but legacy big-endian ones): one aligned u32 view reads a
    // descriptor in four loads, cheaper than DataView calls on this, the hottest path.
    let u32 = le ? this.descU32 : null;
    let tableSize = this.size;
    let inIndirect = false;
    // Descriptors visited in the current table: at most its size, which also ends any loop.
    let visited = 0;
    let idx = head;
    let seenWritable = false;
    let total = 0;
    for (;;) {
      if (visited >= tableSize) {
        this.fail(QueueFault.CHAIN_TOO_LONG, `chain from head ${head} visits more than ${tableSize} descriptors (loop?)`);
      }
      visited++;
      const o = base + idx * DESC_SIZE;
      let lo: number;
      let hi: number;
      let len: number;
      let flags: number;
      let nextField: number;
      if (u32 !== null) {
        const w = o >>> 2;
        lo = u32[w]!;
        hi = u32[w + 1]!;
        len = u32[w + 2]!;
        const fn = u32[w + 3]!;
        flags = fn & 0xffff;
        nextField = fn >>> 16;
      } else {
        lo = view.getUint32(le ? o : o + 4, le);
        hi = view.getUint32(le ? o + 4 : o, le);
        len = view.getUint32(o + 8, le);
        flags = view.getUint16(o + 12, le);
        nextField = view.getUint16(o + 14, le);
      }
      // An address beyond 2^53 cannot be in any region: -1 marks it unmapped. Below 4 GiB no
      // floating-point arithmetic is needed.
      const addr = hi === 0 ? lo : hi >= 0x20_0000 ? -1 : hi * U32 + lo;
      if ((flags & DescFlag.INDIRECT) !== 0) {
        // 2.7.5.3.1 / 2.7.5.3.2. The WRITE flag of this descriptor is ignored (device/split-ring/5).
        if (inIndirect) this.fail(QueueFault.INDIRECT_NESTED, `indirect descriptor inside an indirect table (head ${head})`);
        if (!this.indirect) this.fail(QueueFault.INDIRECT_NOT_NEGOTIATED, `indirect descriptor without INDIRECT_DESC (head ${head})`);
        if ((flags & DescFlag.NEXT) !== 0) this.fail(QueueFault.INDIRECT_WITH_NEXT, `indirect descriptor with NEXT (head ${head})`);
        if (len === 0 || len % DESC_SIZE !== 0) this.fail(QueueFault.INDIRECT_BAD_LEN, `indirect table length ${len}`);
        // The spec bounds the chain (driver/split-ring/7), not the table: a large table holding a
        // short chain is legal. The walk below stays bounded by the chain capacity (each step adds
        // a segment) and by the table size (loops).
        const n = len / DESC_SIZE;
        const r = addr < 0 ? -1 : mem.locate(addr, len);
        if (r < 0) this.fail(QueueFault.RING_UNMAPPED, `indirect table ${hexAddress(hi, lo)}+${len} is not mapped`);
        view = mem.dataViewOf(r);
        base = addr - mem.baseOf(r);
        u32 = le && (base & 3) === 0 ? mem.u32Of(r) : null;
        tableSize = n;
        inIndirect = true;
        visited = 0;
        idx = 0;
        continue;
      }
      const writable = (flags & DescFlag.WRITE) !== 0;
      if (writable) seenWritable = true;
      else if (seenWritable) {
        // 2.7.4.2: device-writable elements come after all device-readable ones.
        this.fail(QueueFault.READABLE_AFTER_WRITABLE, `readable descriptor after a writable one (head ${head})`);
      }
      total += len;
      if (total > MAX_CHAIN_BYTES) this.fail(QueueFault.CHAIN_LEN_OVERFLOW, `chain from head ${head} exceeds 2^32 - 1 bytes`);
      if (chain.count >= capacity) this.fail(QueueFault.CHAIN_TOO_LONG, `chain from head ${head} has more than ${capacity} segments`);
      if (addr >= this.dataStart && addr + len <= this.dataEnd) chain.addSegment(addr, len, writable);
      else {
        const r = addr >= 0 ? mem.locate(addr, len) : -1;
        if (r >= 0) {
          this.dataStart = mem.baseOf(r);
          this.dataEnd = this.dataStart + mem.bytesOf(r).length;
          chain.addSegment(addr, len, writable);
        } else this.addUnmapped(chain, addr, len, writable, tableSize - visited);
      }
      if ((flags & DescFlag.NEXT) === 0) return;
      const next = nextField;
      if (next >= tableSize) {
        this.fail(QueueFault.NEXT_OUT_OF_RANGE, `next ${next} >= ${inIndirect ? 'indirect table size' : 'queue size'} ${tableSize} (head ${head})`);
      }
      idx = next;
    }
  }

  /**
   * DeviceQueue.popDirect (direct-batch.ts): up to `max` available chains of 1 to
   * DIRECT_MAX_SEGMENTS device-readable descriptors, located in guest memory, into `b`; stops
   * before the first chain of another shape, which the ordinary `pop` then takes (and judges,
   * 2.7.5 / 2.7.4.2: indirect, writable, out-of-range next, unmapped, zero-length, too long).
   * Reads avail idx once per batch (acquire, 2.7.13) and only what it bounds; throws nothing:
   * a ring-rule break is left for `pop` to report. Little-endian rings only, not with IN_ORDER
   * (the queue server batches those completions itself). Never allocates.
   */
  popDirect(b: DirectBatch, max: number): number {
    const u32 = this.descU32;
    const a16 = this.availU16;
    const u16 = this.usedU16;
    if (this.brokenErr !== null || this.inOrder || u32 === null || a16 === null || u16 === null) return 0;
    if (this.availCache === this.nextAvail) {
      const availIdx = Atomics.load(a16, this.availIdxW);
      const pending = (availIdx - this.nextAvail) & 0xffff;
      // 2.7.6: more than `size` ahead is a ring-rule break: `pop` reads idx again and reports it.
      if (pending === 0 || pending > this.size) return 0;
      this.availCache = availIdx;
    }
    const avail = (this.availCache - this.nextAvail) & 0xffff;
    const limit = Math.min(max, avail, DIRECT_BATCH);
    const n = walkDirectChains(b, this.memory, u32, this.desc.offset >>> 2, a16, this.availRingW, this.size, this.mask, this.nextAvail, limit, this.directRegion);
    b.memory = this.memory;
    const pos = (this.nextAvail + n) & 0xffff;
    if (n === 0) return 0;
    this.nextAvail = pos;
    // 2.7.10: as `pop`, with EVENT_IDX and notifications wanted, ask about the next buffer.
    if (this.eventIdx && this.notifyEnabled) u16[this.availEventW] = pos;
    return n;
  }

  /**
   * DeviceQueue.pushDirect: the first `n` chains of `b` (popped by popDirect, in that order) as
   * used elements with nothing written (device-readable chains), published at the next
   * `publish()` (2.7.8, as pushDeferred). Never allocates.
   */
  pushDirect(b: DirectBatch, n: number): void {
    if (this.brokenErr !== null) return;
    const u32 = this.usedU32;
    const heads = b.heads;
    if (u32 === null) {
      for (let k = 0; k < n; k++) this.writeUsed(heads[k]!, 0, 1);
      return;
    }
    const mask = this.mask;
    const ringW = this.usedRingW;
    let used = this.nextUsed;
    for (let k = 0; k < n; k++) {
      const w = ringW + 2 * (used & mask);
      u32[w] = heads[k]!;
      u32[w + 1] = 0;
      used = (used + 1) & 0xffff;
    }
    this.nextUsed = used;
  }

  /** Slow path for a data buffer not inside one region (unmapped-buffer.ts). */
  private addUnmapped(chain: DescriptorChain, addr: number, len: number, writable: boolean, mayFollow: number): void {
    if (!addUnmappedBuffer(chain, this.memory, addr, len, writable, mayFollow)) this.fail(QueueFault.CHAIN_TOO_LONG, `chain from head ${chain.id} has more than ${chain.capacity} segments`);
  }

  push(chain: DescriptorChain, written: number): void {
    this.pushId(chain.id, chain.ringDescs, written);
  }

  /**
   * Writes used element {id, written} and publishes it (2.7.8). `ringDescs` is unused by split
   * rings (the driver knows the chain from its head).
   */
  pushId(id: number, _ringDescs: number, written: number): void {
    if (this.brokenErr !== null) return; // the ring is the driver's to reset; leave it alone
    this.writeUsed(id, written, 1);
    this.publish();
  }

  /**
   * Like `push`, but leaves used idx where it is: the entry becomes visible to the driver at
   * the next `publish()`, `push`, `needsNotification()` or `state()`. For devices that process
   * in passes: one release store of idx per pass instead of one per buffer (2.7.8 allows the
   * device to update idx once for several entries). Never allocates.
   */
  pushDeferred(chain: DescriptorChain, written: number): void {
    if (this.brokenErr !== null) return;
    this.writeUsed(chain.id, written, 1);
  }

  /**
   * Publishes used entries written by `pushDeferred` with one release store of used idx
   * (device/split-ring/13: the entries are written before idx moves). No-op when none pend.
   * Entries pushed before the queue broke are still published, as `push` would have done.
   */
  publish(): void {
    const now = this.nextUsed;
    if (now === this.publishedUsed) return;
    this.publishedUsed = now;
    const u16 = this.usedU16;
    if (u16 !== null) Atomics.store(u16, this.usedIdxW, now);
    else storeU16Release(this.used, SplitLayout.USED_IDX, now, this.littleEndian);
  }

  /**
   * IN_ORDER (2.7.9 "In-order use of descriptors"): returns the next `count` popped buffers
   * with ONE used entry carrying the head `lastId` of the last buffer of the batch and its
   * written length; the entry goes where the batch's first buffer would have gone and used idx
   * moves by `count`. The driver treats the skipped buffers as used completely, so the device
   * must have written all of their writable bytes.
   */
  pushInOrderBatch(lastId: number, count: number, written: number): void {
    if (!this.inOrder) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'batched used entries need IN_ORDER');
    if (!Number.isInteger(count) || count < 1 || count > this.inFlight) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `batch of ${count} with ${this.inFlight} buffers in flight`);
    }
    if (this.brokenErr !== null) return;
    this.writeUsed(lastId, written, count);
    this.publish();
  }

  undoPop(count: number): void {
    // In flight = popped and not yet used; the caller vouches none of the last `count` was used.
    if (!Number.isInteger(count) || count < 1 || count > this.inFlight) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `undoPop(${count}) with ${this.inFlight} buffers in flight`);
    }
    if (this.brokenErr !== null) return;
    // The avail ring entries between the new nextAvail and avail idx are the driver's published
    // heads (it does not rewrite them before they are used, 2.7.6), so the next pops re-walk the
    // same chains. avail_event stays ahead: the driver is still asked to notify only for buffers
    // the device has not seen (2.7.10), which is what a device waiting for more buffers needs.
    this.nextAvail = (this.nextAvail - count) & 0xffff;
  }

  createChain(minSegments = 0): DescriptorChain {
    return new DescriptorChain(this.memory, chainCapacityForQueue(this.size, minSegments));
  }

  private writeUsed(id: number, written: number, advance: number): void {
    if (!(id >= 0 && id < this.size) || (id | 0) !== id) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `used id ${id} is not a descriptor index of queue ${this.index}`);
    }
    const slot = this.nextUsed & this.mask;
    const u32 = this.usedU32;
    // device/split-ring/13: id and len are set before idx moves (in `publish`).
    if (u32 !== null) {
      const w = this.usedRingW + 2 * slot;
      u32[w] = id;
      u32[w + 1] = written >>> 0;
    } else {
      const le = this.littleEndian;
      const u = this.used;
      const o = u.offset + SplitLayout.USED_RING + SplitLayout.USED_ELEM_SIZE * slot;
      u.view.setUint32(o, id, le);
      u.view.setUint32(o + 4, written >>> 0, le);
    }
    this.nextUsed = (this.nextUsed + advance) & 0xffff;
  }

  disableNotification(): void {
    this.notifyEnabled = false;
    // With EVENT_IDX flags stay 0 (device/split-ring/18); avail_event simply stops following
    // nextAvail, so the driver notifies again only when told to by enableNotification.
    if (!this.eventIdx) this.used.view.setUint16(this.used.offset + SplitLayout.USED_FLAGS, VIRTQ_USED_F_NO_NOTIFY, this.littleEndian);
  }

  enableNotification(): boolean {
    this.notifyEnabled = true;
    const u = this.used;
    if (this.eventIdx) u.view.setUint16(this.availEventOff, this.nextAvail, this.littleEndian);
    else u.view.setUint16(u.offset + SplitLayout.USED_FLAGS, 0, this.littleEndian);
    // 2.7.10: publish the request before re-reading idx, else a buffer added meanwhile would
    // find notifications off and we would not see it either.
    fullFence();
    return this.hasAvailable();
  }

  needsNotification(): boolean {
    this.publish();
    if (this.brokenErr !== null) return false;
    // Order the used idx store before reading the driver's suppression fields (2.7.10): the
    // last used idx store was seq-cst and so are the loads below, else a full fence.
    const seqCst = this.seqCst;
    if (!seqCst) fullFence();
    const newUsed = this.nextUsed;
    const old = this.signalledUsed;
    const valid = this.signalledValid;
    this.signalledUsed = newUsed;
    this.signalledValid = true;
    // Legacy NOTIFY_ON_EMPTY (6.3): notify when everything is used and nothing is pending.
    if (this.notifyOnEmpty && this.inFlight === 0 && !this.hasAvailable()) return true;
    // After setState the last signalled position is unknown: notify (spurious ones are allowed).
    if (!valid) return true;
    if (old === newUsed) return false; // nothing used since the last check
    const le = this.littleEndian;
    const av = this.avail;
    if (this.eventIdx) {
      // device/split-ring/10, 11: flags ignored; notify when used idx crossed used_event.
      return needEvent(seqCst ? Atomics.load(this.availU16!, this.usedEventW) : av.view.getUint16(this.usedEventOff, le), newUsed, old);
    }
    // device/split-ring/7, 8, 9: used_event ignored; flags decide.
    const flags = seqCst ? Atomics.load(this.availU16!, this.availFlagsW) : av.view.getUint16(av.offset + SplitLayout.AVAIL_FLAGS, le);
    return (flags & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  state(): QueueState {
    this.publish(); // the saved position is the one the driver sees
    return { nextAvail: this.nextAvail, nextUsed: this.nextUsed, availWrap: true, usedWrap: true };
  }

  setState(s: QueueState): void {
    const ok = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffff;
    if (!ok(s.nextAvail) || !ok(s.nextUsed) || ((s.nextAvail - s.nextUsed) & 0xffff) > this.size) {
      throw new VirtioError(
        ErrorCode.QUEUE_BAD_STATE,
        `split state avail ${s.nextAvail} used ${s.nextUsed} does not fit a queue of ${this.size}`,
      );
    }
    this.nextAvail = s.nextAvail;
    this.availCache = s.nextAvail;
    this.nextUsed = s.nextUsed;
    this.publishedUsed = s.nextUsed;
    this.signalledValid = false;
  }

  /** Back to the state of a freshly enabled queue (2.6.1 / 3.3.1); guest memory is not touched. */
  reset(): void {
    this.nextAvail = 0;
    this.availCache = 0;
    this.nextUsed = 0;
    this.publishedUsed = 0;
    this.brokenErr = null;
    this.notifyEnabled = true;
    this.signalledUsed = 0;
    this.signalledValid = true;
  }
}
