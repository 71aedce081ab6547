/**
 * The one request queue every device-type driver uses over a driver queue: a request is a chain
 * of device-readable then device-writable segments (2.6.4); `submit` resolves with the number of
 * bytes the device wrote (the used length, 2.7.8 / 2.8.7).
 *
 * - Token map without allocation per request: the ring token is a slot index; slots live in
 *   parallel arrays recycled through a free stack (they grow only when more requests are
 *   outstanding than ever before).
 * - Overflow: when the ring has no room, requests wait in a FIFO and go in, in order, as used
 *   buffers free descriptors. A request that cannot fit even an empty ring is refused.
 * - The used-buffer loop handles the re-enable race: after draining, re-enabling interrupts
 *   reports buffers that arrived meanwhile (2.7.10 with EVENT_IDX publishes used_event; without
 *   it the flag is cleared), and the loop polls again, bounded by the ring size.
 * - Stop: on device reset or DEVICE_NEEDS_RESET every pending request fails with a
 *   RequestAbortedError and later submits fail too; on a queue reset (2.6.1) the pending
 *   requests fail and the queue goes on with the fresh ring.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { DriverQueue, Segment } from '../queue/types.js';
import { type DriverContext, type DriverStopEvent, DriverStopReason } from './types.js';

/** Why a request failed without an answer from the device. */
export const RequestAbortReason = {
  ...DriverStopReason,
  /** The driver detached from the queue (close). */
  DETACHED: 'detached',
} as const;
export type RequestAbortReason = (typeof RequestAbortReason)[keyof typeof RequestAbortReason];

/** A request that will never be answered: the device or its queue was reset, or the driver detached. */
export class RequestAbortedError extends VirtioError {
  constructor(
    /** Why the request will never be answered. */
    readonly reason: RequestAbortReason,
    /** The queue the request was on. */
    readonly queueIndex: number,
  ) {
    super(ErrorCode.DEVICE_NEEDS_RESET, `request on queue ${queueIndex} aborted: ${reason}`);
  }
}

const FREE = 0;
const WAITING = 1;
const IN_RING = 2;

const NO_SEGMENTS: readonly Segment[] = [];

/** How a RequestQueue sizes its request slots. */
export interface RequestQueueOptions {
  /** Slots allocated up front (default: the queue size); more are added when needed. */
  initialSlots?: number;
}

/**
 * The request/response loop every device-type driver uses on one queue: `submit(out, in)` makes a
 * buffer available and resolves with the used length; it waits for room when the ring is full, runs
 * the used-buffer loop, and fails pending requests with RequestAbortedError when the device or
 * queue is reset or needs a reset.
 */
export class RequestQueue {
  private q: DriverQueue<number>;
  private readonly unsubscribe: (() => void) | null;
  // Slot arrays, indexed by token.
  private state: Uint8Array;
  private outs: (readonly Segment[] | null)[];
  private ins: (readonly Segment[] | null)[];
  private resolves: (((usedLen: number) => void) | null)[];
  private rejects: (((e: VirtioError) => void) | null)[];
  private freeStack: Int32Array;
  private freeTop: number;
  // FIFO of waiting slots (ring buffer).
  private waitRing: Int32Array;
  private waitHead = 0;
  private waitCount = 0;
  private inRingCount = 0;
  private stopError: VirtioError | null = null;

  constructor(
    /** The driver context the queue belongs to. */
    readonly context: DriverContext,
    /** The queue index. */
    readonly index: number,
    opts: RequestQueueOptions = {},
  ) {
    this.q = context.queue(index);
    const n = Math.max(1, opts.initialSlots ?? this.q.size);
    this.state = new Uint8Array(n);
    this.outs = new Array<readonly Segment[] | null>(n).fill(null);
    this.ins = new Array<readonly Segment[] | null>(n).fill(null);
    this.resolves = new Array<((usedLen: number) => void) | null>(n).fill(null);
    this.rejects = new Array<((e: VirtioError) => void) | null>(n).fill(null);
    this.freeStack = new Int32Array(n);
    for (let i = 0; i < n; i++) this.freeStack[i] = n - 1 - i;
    this.freeTop = n;
    this.waitRing = new Int32Array(n);
    context.onUsed(index, () => this.poll());
    this.unsubscribe = context.onStop?.((e) => this.onStop(e)) ?? null;
  }

  /** Requests submitted and not yet answered (in the ring or waiting for room). */
  get inFlight(): number {
    return this.inRingCount + this.waitCount;
  }
  /** Requests waiting for room in the ring. */
  get waiting(): number {
    return this.waitCount;
  }
  /** Slots allocated: grows only with the peak of outstanding requests. */
  get slotCapacity(): number {
    return this.state.length;
  }
  /** Whether the queue stopped (device reset, DEVICE_NEEDS_RESET, detach): submits fail. */
  get stopped(): boolean {
    return this.stopError !== null;
  }

  /**
   * Makes a request available: `out` segments device-readable, then `inn` device-writable
   * (2.6.4.2: readable before writable). Resolves with the used length. The segment arrays are
   * kept until the request is in the ring; the caller must not change them meanwhile.
   */
  submit(out: readonly Segment[], inn: readonly Segment[] = NO_SEGMENTS): Promise<number> {
    if (this.stopError) return Promise.reject(this.stopError);
    if (out.length === 0 && inn.length === 0) return Promise.reject(new VirtioError(ErrorCode.INVALID_ARGUMENT, 'empty request'));
    // driver/content/27: no buffer is made available while the device is suspended.
    if (this.context.suspended === true) return Promise.reject(new VirtioError(ErrorCode.DEVICE_SUSPENDED, `queue ${this.index}: the device is suspended`));
    const slot = this.takeSlot();
    this.outs[slot] = out;
    this.ins[slot] = inn;
    const done = new Promise<number>((resolve, reject) => {
      this.resolves[slot] = resolve;
      this.rejects[slot] = reject;
    });
    if (this.waitCount > 0) {
      this.pushWaiting(slot);
      // Requests held back while the device was suspended go in now, in order.
      this.drainWaiting();
    } else if (!this.addToRing(slot)) {
      if (this.inRingCount === 0) this.refuse(slot);
      else this.pushWaiting(slot);
    } else this.context.kick(this.index);
    return done;
  }

  /**
   * The used-buffer loop (the queue's interrupt handler; also callable by a poller): completes
   * every used buffer, re-enables interrupts and polls again when more arrived meanwhile, then
   * moves waiting requests into the room freed.
   */
  poll(): void {
    if (this.stopError) return;
    const q = this.q;
    // Bounded: a device cannot keep the loop going for more passes than the ring has entries.
    for (let pass = 0; pass <= q.size; pass++) {
      for (;;) {
        const token = q.takeUsed();
        if (token === undefined) break;
        this.complete(token, q.lastUsedLen);
      }
      if (!q.enableInterrupts()) break;
    }
    if (this.waitCount > 0) this.drainWaiting();
  }

  /** Fails every pending request with `error`; with `stop`, later submits fail with it too. */
  failAll(error: VirtioError, stop: boolean): void {
    if (stop && !this.stopError) this.stopError = error;
    for (let slot = 0; slot < this.state.length; slot++) {
      if (this.state[slot] === FREE) continue;
      const reject = this.rejects[slot]!;
      this.releaseSlot(slot);
      reject(error);
    }
    this.waitCount = 0;
    this.waitHead = 0;
    this.inRingCount = 0;
  }

  /** Stops using the queue: pending requests fail with RequestAbortedError('detached'). */
  detach(): void {
    this.failAll(new RequestAbortedError(RequestAbortReason.DETACHED, this.index), true);
    this.unsubscribe?.();
    this.context.onUsed(this.index, () => {});
  }

  private onStop(e: DriverStopEvent): void {
    if (e.queueIndex !== -1 && e.queueIndex !== this.index) return;
    const queueReset = e.reason === DriverStopReason.QUEUE_RESET;
    this.failAll(new RequestAbortedError(e.reason, this.index), !queueReset);
    // 2.6.1: after a queue reset the driver queue is a new one with an empty ring.
    if (queueReset) this.q = this.context.queue(this.index);
  }

  private addToRing(slot: number): boolean {
    if (!this.q.add(this.outs[slot]!, this.ins[slot]!, slot)) return false;
    this.state[slot] = IN_RING;
    this.outs[slot] = null;
    this.ins[slot] = null;
    this.inRingCount++;
    return true;
  }

  /** Waiting requests go in, in order, while there is room; one notification for all of them. */
  private drainWaiting(): void {
    if (this.context.suspended === true) return; // driver/content/27: they wait for resume
    let added = 0;
    while (this.waitCount > 0) {
      const slot = this.waitRing[this.waitHead]!;
      if (!this.addToRing(slot)) {
        if (this.inRingCount > 0) break;
        // Does not fit an empty ring: it never will.
        this.shiftWaiting();
        this.refuse(slot);
        continue;
      }
      this.shiftWaiting();
      added++;
    }
    if (added > 0) this.context.kick(this.index);
  }

  private complete(token: number, usedLen: number): void {
    // A token that is not one of ours in the ring (stale or forged) is ignored.
    if (!(token >= 0 && token < this.state.length) || this.state[token] !== IN_RING) return;
    const resolve = this.resolves[token]!;
    this.inRingCount--;
    this.releaseSlot(token);
    resolve(usedLen);
  }

  private refuse(slot: number): void {
    const reject = this.rejects[slot]!;
    this.releaseSlot(slot);
    reject(new VirtioError(ErrorCode.QUEUE_FULL, `request does not fit queue ${this.index} of ${this.q.size} descriptors even when empty`));
  }

  private takeSlot(): number {
    if (this.freeTop === 0) this.grow();
    return this.freeStack[--this.freeTop]!;
  }

  private releaseSlot(slot: number): void {
    this.state[slot] = FREE;
    this.outs[slot] = null;
    this.ins[slot] = null;
    this.resolves[slot] = null;
    this.rejects[slot] = null;
    this.freeStack[this.freeTop++] = slot;
  }

  private pushWaiting(slot: number): void {
    this.state[slot] = WAITING;
    if (this.waitCount === this.waitRing.length) {
      const bigger = new Int32Array(this.waitRing.length * 2);
      for (let i = 0; i < this.waitCount; i++) bigger[i] = this.waitRing[(this.waitHead + i) % this.waitRing.length]!;
      this.waitRing = bigger;
      this.waitHead = 0;
    }
    this.waitRing[(this.waitHead + this.waitCount) % this.waitRing.length] = slot;
    this.waitCount++;
  }

  private shiftWaiting(): void {
    this.waitHead = (this.waitHead + 1) % this.waitRing.length;
    this.waitCount--;
  }

  /** Doubles the slot arrays (all slots taken: more outstanding requests than ever before). */
  private grow(): void {
    const old = this.state.length;
    const n = old * 2;
    const state = new Uint8Array(n);
    state.set(this.state);
    this.state = state;
    for (const arr of [this.outs, this.ins, this.resolves, this.rejects] as unknown[][]) {
      for (let i = old; i < n; i++) arr.push(null);
    }
    const stack = new Int32Array(n);
    stack.set(this.freeStack.subarray(0, this.freeTop));
    for (let i = n - 1; i >= old; i--) stack[this.freeTop++] = i;
    this.freeStack = stack;
  }
}
