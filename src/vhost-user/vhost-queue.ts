/**
 * The DeviceQueue a vhost-user device sees: a split or packed queue wrapped with what the
 * protocol adds around it, so devices stay protocol-free:
 *  - inflight tracking (INFLIGHT_SHMFD): mark on pop, clear on push, resubmit after restart;
 *  - dirty logging (LOG_ALL): mark the pages of written buffers and of the used ring;
 *  - ring errors reported to the back-end (QueueError marks the ring broken);
 *  - detachment: once the ring is stopped (GET_VRING_BASE, disconnect) late completions of an
 *    asynchronous device are dropped instead of touching a ring the front-end took back;
 *  - memory changes: the same object goes on over a ring rebuilt on the new memory table
 *    (`rebuild`), so buffers in flight are still returned to the ring; each buffer popped and
 *    not yet used pins the GuestMemory it was popped from (its `chain.memory`), so the mappings
 *    its data lies in stay mapped until it is used (docs/vhost-user-memory-changes.md).
 * No allocation on pop/push unless logging is on (or right after a memory change).
 */
import { ErrorCode, QueueError, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from '../queue/chain.js';
import type { DeviceQueue, QueueState } from '../queue/types.js';
import type { DirectBatch } from '../queue/direct-batch.js';
import { VHOST_LOG_PAGE } from './messages.js';
import { PackedInflight, SplitInflight, readSplitChain } from './inflight.js';

/** The dirty page bitmap of SET_LOG_BASE ("Migration"). */
export class DirtyLog {
  /** Page marks made so far (a page marked twice counts twice): evidence that logging ran. */
  marks = 0;

  constructor(
    /** The log area shared with the front-end: bit `p % 8` of byte `p / 8` is guest page p (VHOST_LOG_PAGE bytes). */
    readonly bytes: Uint8Array,
  ) {}

  /** Marks every page of guest range [addr, addr + len) dirty (atomically: the front-end reads it concurrently). */
  mark(addr: number, len: number): void {
    if (len <= 0 || addr < 0) return;
    const first = Math.floor(addr / VHOST_LOG_PAGE);
    const last = Math.floor((addr + len - 1) / VHOST_LOG_PAGE);
    const b = this.bytes;
    this.marks += last - first + 1;
    for (let p = first; p <= last; p++) {
      const byte = Math.floor(p / 8);
      if (byte >= b.length) return;
      Atomics.or(b, byte, 1 << (p % 8));
    }
  }

  /** Whether the page holding guest address `addr` is marked dirty; false for a page beyond the log. */
  isDirty(addr: number): boolean {
    const p = Math.floor(addr / VHOST_LOG_PAGE);
    const byte = Math.floor(p / 8);
    return byte < this.bytes.length && (this.bytes[byte]! & (1 << (p % 8))) !== 0;
  }
}

export interface VhostQueueOptions {
  readonly index: number;
  readonly memory: GuestMemory;
  readonly packed: boolean;
  readonly indirect: boolean;
  readonly littleEndian: boolean;
  /** Guest address of the descriptor table (split) or descriptor ring (packed). */
  readonly descGuest: number;
  /** Called when the ring reports a driver error; the error is rethrown to the device. */
  readonly onError: (index: number, e: QueueError) => void;
}

/** A device's queue under a vhost-user back-end: the ring plus inflight tracking, dirty logging and detachment (module comment above). */
export class VhostQueue implements DeviceQueue {
  readonly size: number;
  readonly index: number;
  readonly packed: boolean;
  /** The memory the ring lies in now (replaced by `rebuild`). */
  memory: GuestMemory;
  private detached = false;
  private split: SplitInflight | null = null;
  private pk: PackedInflight | null = null;
  private resubmitAt = 0;
  /** Split: free-running used idx. Packed: used and avail ring positions with wrap counters. */
  private usedIdx = 0;
  private usedWrap = true;
  private availPos = 0;
  private availWrap = true;
  /** Buffers taken from the ring (resubmissions included), for the back-end's per-ring log. */
  served = 0;
  /** Dirty logging, set by the back-end while LOG_ALL is on. */
  log: DirtyLog | null = null;
  /** Guest range of the used ring to log (-1: ring logging off). */
  logUsedAddr = -1;
  /** Bytes from `logUsedAddr` marked dirty on each used-ring write (split: the whole used ring; packed: the descriptor ring). */
  logUsedLen = 0;
  /** Guest range the device writes for event suppression (split: in the used ring; packed: device area). */
  logEventAddr = -1;
  /** Bytes from `logEventAddr` marked dirty when the device writes its event suppression field. */
  logEventLen = 0;
  /**
   * Set by the back-end while it polls the ring after a processing pass: the device's
   * enableNotification answers "nothing more" and leaves driver notifications suppressed
   * (EVENT_IDX: avail_event stays behind, so the driver does not kick for buffers added while
   * the back-end is watching anyway). The back-end re-enables them (enableNotificationNow) when
   * its poll window ends, before it sleeps (2.7.10).
   */
  hold = false;
  /** Ring pops (not resubmissions) not undone since the last resubmission: undoPop splits on it. */
  private ringPops = 0;
  /** With inflight tracking: ids of the last `size` ring pops (a ring at recentPos), for undoPop. */
  private recentIds: Uint16Array | null = null;
  private recentPos = 0;
  /**
   * Ring pins: buffers popped and not yet used, counted per GuestMemory they were popped from.
   * The memory of the latest pops in `pinMem` / `pinCount` (the hot path: two field updates),
   * older ones (buffers in flight across a memory change) in `oldPinMems` / `oldPinCounts`,
   * oldest first. Each count is also held as pins on its GuestMemory.
   */
  private pinMem: GuestMemory | null = null;
  private pinCount = 0;
  private oldPinMems: GuestMemory[] = [];
  private oldPinCounts: number[] = [];

  constructor(
    /** The split or packed ring queue this one wraps; replaced by `rebuild` after a memory change. */
    public inner: DeviceQueue,
    private o: VhostQueueOptions,
  ) {
    this.size = inner.size;
    this.index = o.index;
    this.packed = o.packed;
    this.memory = o.memory;
    this.syncPositions();
  }

  get broken(): QueueError | null {
    return this.inner.broken;
  }

  /** True once `detach` ran: pops return nothing and late pushes are dropped. */
  get isDetached(): boolean {
    return this.detached;
  }

  /**
   * Stops the queue: nothing more is popped or pushed. Its ring pins go: buffers in flight are
   * not returned to the ring any more (a device whose own work still writes into them pins
   * their memory itself, see GuestMemory.pin).
   */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    for (let k = 0; k < this.oldPinMems.length; k++) {
      const m = this.oldPinMems[k]!;
      for (let n = this.oldPinCounts[k]!; n > 0; n--) m.unpin();
    }
    this.oldPinMems = [];
    this.oldPinCounts = [];
    const m = this.pinMem;
    if (m !== null) for (; this.pinCount > 0; this.pinCount--) m.unpin();
  }

  /**
   * The memory table (or the ring's addresses) changed: the ring goes on over `inner`, built
   * over `memory` at this queue's position (the caller set its state). The device keeps this
   * object, so the buffers it has in flight are returned to the ring at its new place; their
   * data stays in the memory they were popped from, which their pins keep mapped.
   */
  rebuild(inner: DeviceQueue, memory: GuestMemory, descGuest: number): void {
    this.inner = inner;
    this.memory = memory;
    this.o = { ...this.o, memory, descGuest };
    this.syncPositions();
  }

  get eventIdx(): boolean {
    return this.inner.eventIdx === true;
  }

  /** Buffers popped and not yet used (the ring pins this queue holds). */
  get pinnedBuffers(): number {
    let n = this.pinCount;
    for (const c of this.oldPinCounts) n += c;
    return n;
  }

  /** Pins `m` (`chain.memory`) for a buffer just popped. */
  private pinPopped(m: GuestMemory): void {
    if (m !== this.pinMem) {
      // The first pop, or the first after a memory change (rare: allocation allowed): the
      // buffers still in flight from the previous memory keep their count apart.
      if (this.pinMem !== null && this.pinCount > 0) {
        this.oldPinMems.push(this.pinMem);
        this.oldPinCounts.push(this.pinCount);
      }
      this.pinMem = m;
      this.pinCount = 0;
    }
    this.pinCount++;
    m.pin();
  }

  /** Gives back the pin of a buffer used, popped from `m`; false when none is held there. */
  private unpinUsed(m: GuestMemory): boolean {
    if (m === this.pinMem && this.pinCount > 0) {
      this.pinCount--;
      m.unpin();
      return true;
    }
    const mems = this.oldPinMems;
    for (let k = mems.length - 1; k >= 0; k--) {
      if (mems[k] !== m) continue;
      this.dropOldPins(k, 1);
      return true;
    }
    return false;
  }

  /**
   * Gives back `n` pins without knowing the buffers' memory (pushId, in-order batches, undoPop):
   * oldest first (in-order use returns the oldest buffers first), or newest first (undoPop).
   */
  private unpinCount(n: number, oldestFirst: boolean): void {
    if (!oldestFirst) n = this.unpinLatest(n);
    while (n > 0 && this.oldPinMems.length > 0) {
      const k = oldestFirst ? 0 : this.oldPinMems.length - 1;
      const take = Math.min(n, this.oldPinCounts[k]!);
      this.dropOldPins(k, take);
      n -= take;
    }
    if (oldestFirst) this.unpinLatest(n);
  }

  /** Gives back up to `n` pins of the latest memory; returns how many remain to give. */
  private unpinLatest(n: number): number {
    const m = this.pinMem;
    if (m === null) return n;
    for (; n > 0 && this.pinCount > 0; n--) {
      this.pinCount--;
      m.unpin();
    }
    return n;
  }

  private dropOldPins(k: number, n: number): void {
    const m = this.oldPinMems[k]!;
    const left = this.oldPinCounts[k]! - n;
    if (left === 0) {
      this.oldPinMems.splice(k, 1);
      this.oldPinCounts.splice(k, 1);
    } else this.oldPinCounts[k] = left;
    for (let i = 0; i < n; i++) m.unpin();
  }


  /** Buffers waiting to be resubmitted after a restart. */
  get resubmitPending(): number {
    const list = this.split?.resubmit ?? this.pk?.resubmit;
    return list ? list.length - this.resubmitAt : 0;
  }

  /**
   * Attaches split inflight tracking; recovers the region and repositions the ring after the
   * buffers still in flight (they are resubmitted first). `ringUsedIdx` is the used idx in
   * guest memory.
   */
  attachSplitInflight(t: SplitInflight, ringUsedIdx: number): void {
    const inuse = t.start(ringUsedIdx);
    this.split = t;
    this.resubmitAt = 0;
    this.startTracking();
    const s = this.inner.state();
    this.inner.setState({ ...s, nextUsed: ringUsedIdx, nextAvail: (ringUsedIdx + inuse) & 0xffff });
    this.syncPositions();
  }

  /** Attaches packed inflight tracking (see attachSplitInflight). */
  attachPackedInflight(t: PackedInflight): void {
    const s = this.inner.state();
    const le = this.o.littleEndian;
    const mem = this.o.memory;
    const ring = this.o.descGuest;
    const inflightDescs = t.start(s.nextUsed, s.usedWrap, (pos) => mem.readU16(ring + 16 * pos + 14, le));
    this.pk = t;
    this.resubmitAt = 0;
    this.startTracking();
    if (t.resubmit.length > 0 || t.usedIdx !== s.nextUsed || t.usedWrap !== s.usedWrap) {
      const used = t.usedIdx % this.size;
      const availRaw = used + inflightDescs;
      const wraps = Math.floor(availRaw / this.size) % 2 === 1;
      this.inner.setState({
        nextUsed: used,
        usedWrap: t.usedWrap,
        nextAvail: availRaw % this.size,
        availWrap: wraps ? !t.usedWrap : t.usedWrap,
      });
    }
    this.syncPositions();
  }

  /** Takes over the inflight tracking of the queue this one replaces (memory table change). */
  adoptTracking(old: VhostQueue): void {
    this.split = old.split;
    this.pk = old.pk;
    this.resubmitAt = old.resubmitAt;
    this.served = old.served;
    if (this.split !== null || this.pk !== null) this.startTracking();
  }

  private startTracking(): void {
    this.recentIds = new Uint16Array(this.size);
    this.recentPos = 0;
    this.ringPops = 0;
  }

  private syncPositions(): void {
    const s = this.inner.state();
    this.usedIdx = s.nextUsed;
    this.usedWrap = s.usedWrap;
    this.availPos = s.nextAvail;
    this.availWrap = s.availWrap;
  }

  pop(chain: DescriptorChain): boolean {
    if (this.detached) return false;
    try {
      if (this.split && this.resubmitAt < this.split.resubmit.length) {
        const head = this.split.resubmit[this.resubmitAt++]!;
        readSplitChain(this.o.memory, this.o.descGuest, this.size, head, this.o.indirect, this.o.littleEndian, chain, this.index);
        this.served++;
        this.pinPopped(chain.memory);
        return true;
      }
      if (this.pk && this.resubmitAt < this.pk.resubmit.length) {
        const slot = this.pk.resubmit[this.resubmitAt++]!;
        this.pk.readChain(this.o.memory, slot, this.o.indirect, this.o.littleEndian, chain, this.index);
        this.served++;
        this.pinPopped(chain.memory);
        return true;
      }
      if (!this.inner.pop(chain)) return false;
      this.served++;
      this.ringPops++;
      this.pinPopped(chain.memory);
      // A pop may write the event suppression area too (EVENT_IDX: avail_event / device area).
      if (this.log) this.logEventWrite();
    } catch (e) {
      if (e instanceof QueueError) this.o.onError(this.index, e);
      throw e;
    }
    const ids = this.recentIds;
    if (ids !== null) {
      ids[this.recentPos] = chain.id;
      if (++this.recentPos === this.size) this.recentPos = 0;
    }
    if (this.split) this.split.onPop(chain.id);
    else if (this.pk) {
      this.pk.onPop(this.o.memory, this.o.descGuest, this.availPos, chain.ringDescs, this.o.littleEndian);
    }
    if (this.packed) {
      const p = this.availPos + chain.ringDescs;
      if (p >= this.size) {
        this.availPos = p - this.size;
        this.availWrap = !this.availWrap;
      } else this.availPos = p;
    }
    return true;
  }

  push(chain: DescriptorChain, written: number): void {
    if (this.detached) return;
    if (this.log) this.logChain(chain, written);
    this.complete(chain.id, chain.ringDescs, written, chain);
    if (!this.unpinUsed(chain.memory)) this.unpinCount(1, true);
  }

  /**
   * Like push, but used idx (split) or the first used descriptor's flags (packed) become visible
   * at the next publish() (2.7.8: one idx update may cover several entries). Falls back to push
   * while inflight tracking or dirty logging is on: both record each completion as published.
   */
  pushDeferred(chain: DescriptorChain, written: number): void {
    if (this.split !== null || this.pk !== null || this.log !== null) {
      this.push(chain, written);
      return;
    }
    if (this.detached) return;
    try {
      this.inner.pushDeferred(chain, written);
    } catch (e) {
      if (e instanceof QueueError) this.o.onError(this.index, e);
      throw e;
    }
    this.advanceUsed(chain.ringDescs);
    if (!this.unpinUsed(chain.memory)) this.unpinCount(1, true);
  }

  /**
   * DeviceQueue.popDirect, while nothing this wrapper adds per buffer is on: no inflight
   * tracking (it records each buffer), no dirty logging (LOG_ALL marks each), not detached.
   * No ring pins: the device pushes the chains before it returns to the event loop, where a
   * memory change would be handled.
   */
  popDirect(b: DirectBatch, max: number): number {
    if (this.detached || this.split !== null || this.pk !== null || this.log !== null) return 0;
    const n = this.inner.popDirect?.(b, max) ?? 0;
    this.served += n;
    this.ringPops += n;
    return n;
  }

  /** DeviceQueue.pushDirect (split rings only: popDirect takes nothing from packed ones). */
  pushDirect(b: DirectBatch, n: number): void {
    if (this.detached || this.inner.pushDirect === undefined) return;
    this.inner.pushDirect(b, n);
    this.usedIdx = (this.usedIdx + n) & 0xffff;
  }

  /** Makes the entries of pushDeferred visible to the driver (no-op when none pend). */
  publish(): void {
    if (this.detached) return;
    this.inner.publish();
  }

  /** DeviceQueue: IN_ORDER negotiated and no inflight tracking (which records buffer by buffer). */
  get inOrderBatching(): boolean {
    return this.inner.inOrderBatching === true && this.split === null && this.pk === null && !this.detached;
  }

  /**
   * IN_ORDER batch (see DeviceQueue). Not with inflight tracking: the region records each
   * buffer's completion by its head, which a batch does not name (INVALID_ARGUMENT); a device
   * then pushes buffer by buffer, which IN_ORDER allows as well.
   */
  pushInOrderBatch(lastId: number, count: number, written: number): void {
    if (this.detached) return;
    if (this.split !== null || this.pk !== null) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue ${this.index}: batched in-order push with inflight tracking`);
    }
    try {
      this.inner.pushInOrderBatch(lastId, count, written);
    } catch (e) {
      if (e instanceof QueueError) this.o.onError(this.index, e);
      throw e;
    }
    // The batch covers `count` buffers (split: entries) or their ring descriptors (packed).
    const s = this.inner.state();
    this.usedIdx = s.nextUsed;
    this.usedWrap = s.usedWrap;
    if (this.log && this.logUsedAddr >= 0) this.log.mark(this.logUsedAddr, this.logUsedLen);
    // In-order: the batch is the `count` oldest buffers in flight.
    this.unpinCount(count, true);
  }

  /**
   * Returns the last `count` popped buffers (see DeviceQueue). Resubmitted buffers go back to
   * the resubmission list, ring buffers to the ring; inflight tracking forgets them (they are
   * not in flight any more, and a restart finds them in the ring again).
   */
  undoPop(count: number): void {
    if (this.detached) return;
    if (!Number.isInteger(count) || count < 1 || count > this.ringPops + this.resubmitAt) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `undoPop(${count}) on queue ${this.index}: not that many buffers popped`);
    }
    const fromRing = Math.min(count, this.ringPops);
    if (fromRing > 0) {
      this.inner.undoPop(fromRing); // validates against the buffers in flight first
      const ids = this.recentIds;
      if (ids !== null) {
        for (let i = 0; i < fromRing; i++) {
          this.recentPos = this.recentPos === 0 ? this.size - 1 : this.recentPos - 1;
          const id = ids[this.recentPos]!;
          if (this.split) this.split.onUndoPop(id);
          else this.pk?.onUndoPop(id);
        }
      }
      this.ringPops -= fromRing;
      const s = this.inner.state();
      this.availPos = s.nextAvail;
      this.availWrap = s.availWrap;
    }
    this.resubmitAt -= count - fromRing;
    this.served -= count;
    this.unpinCount(count, false);
  }

  createChain(minSegments?: number): DescriptorChain {
    return this.inner.createChain(minSegments);
  }

  pushId(id: number, ringDescs: number, written: number): void {
    if (this.detached) return;
    this.complete(id, ringDescs, written, null);
    // Without the chain its memory is unknown: the oldest pin goes. Exact unless buffers popped
    // under two memory tables complete out of order through pushId (no device of this project
    // does); a retired table released early then only loses that buffer's late JavaScript
    // writes (its views are detached, nothing reaches unmapped pages); native work pins for itself.
    this.unpinCount(1, true);
  }

  private complete(id: number, ringDescs: number, written: number, chain: DescriptorChain | null): void {
    let slot = 0;
    if (this.split) this.split.beforePush(id);
    else if (this.pk) slot = this.pk.beforePush(id);
    try {
      if (chain) this.inner.push(chain, written);
      else this.inner.pushId(id, ringDescs, written);
    } catch (e) {
      if (e instanceof QueueError) this.o.onError(this.index, e);
      throw e;
    }
    this.advanceUsed(ringDescs);
    if (this.pk) this.pk.afterPush(slot, this.usedIdx, this.usedWrap);
    else if (this.split) this.split.afterPush(id, this.usedIdx);
    if (this.log && this.logUsedAddr >= 0) this.log.mark(this.logUsedAddr, this.logUsedLen);
  }

  private advanceUsed(ringDescs: number): void {
    if (this.packed) {
      const p = this.usedIdx + ringDescs;
      if (p >= this.size) {
        this.usedIdx = p - this.size;
        this.usedWrap = !this.usedWrap;
      } else this.usedIdx = p;
    } else this.usedIdx = (this.usedIdx + 1) & 0xffff;
  }

  private logChain(chain: DescriptorChain, written: number): void {
    const log = this.log!;
    let left = written;
    for (let i = chain.readableCount; i < chain.count && left > 0; i++) {
      const n = Math.min(left, chain.lens[i]!);
      log.mark(chain.addrs[i]!, n);
      left -= n;
    }
  }

  disableNotification(): void {
    if (this.detached) return;
    this.inner.disableNotification();
    this.logEventWrite();
  }

  enableNotification(): boolean {
    if (this.detached) return false;
    // Held: "nothing more" ends the device's pass; the back-end looks for more buffers itself
    // between passes (so a pass stays bounded and the polling budget holds).
    if (this.hold) return false;
    return this.enableNotificationNow();
  }

  /** Re-enables driver notifications even while held, fences and re-checks (2.7.10). */
  enableNotificationNow(): boolean {
    if (this.detached) return false;
    const more = this.inner.enableNotification();
    this.logEventWrite();
    return more || this.resubmitPending > 0;
  }

  /** vhost-user.rst "Migration": the flags / avail_event (split) or device area (packed) writes are logged too. */
  private logEventWrite(): void {
    if (this.log && this.logEventAddr >= 0) this.log.mark(this.logEventAddr, this.logEventLen);
  }

  needsNotification(): boolean {
    return !this.detached && this.inner.needsNotification();
  }

  hasAvailable(): boolean {
    if (this.detached) return false;
    return this.resubmitPending > 0 || this.inner.hasAvailable();
  }

  availableCount(): number {
    if (this.detached) return 0;
    const inner = this.inner.availableCount?.();
    return inner === undefined || inner < 0 ? -1 : this.resubmitPending + inner;
  }

  state(): QueueState {
    return this.inner.state();
  }

  setState(s: QueueState): void {
    this.inner.setState(s);
    this.syncPositions();
  }
}
