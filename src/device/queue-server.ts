/**
 * The serving loop every request-driven device shares, so a device only says what one request
 * means. Per queue the server:
 *  - pops with driver notifications off and re-enables them, fenced and re-checked, before it
 *    stops (2.7.10 / 2.8.10: a buffer added meanwhile is never left behind); a notification
 *    that arrives while it serves (a synchronous completion path) only makes it loop again;
 *  - keeps a pool of requests, each with a chain of the queue (`DeviceQueue.createChain`),
 *    created as concurrency first needs them and never more than the queue size: nothing is
 *    allocated per request. With every request in flight it stops popping and resumes when one
 *    completes. Chains grow as long chains arrive; the segments all chains hold are bounded
 *    (`segmentBudget`): above it a queue with requests in flight stops popping, and completed
 *    chains give their storage back, so a driver posting long chains that the device holds
 *    cannot grow the device's memory without bound;
 *  - completes a request synchronously (the handler returns the bytes written), by Promise, or
 *    later through `complete(req, written)`. Completions inside a pass go to the used ring with
 *    one used idx publication per round (2.7.8 / 2.8.6 `pushDeferred` + `publish`); completions
 *    outside one are pushed at once, with one used-buffer notification per microtask batch.
 *    With IN_ORDER (2.7.9 / 2.8.8) the round's completions made in pop order with every
 *    writable byte written go back as ONE used entry for the batch (`pushInOrderBatch`).
 *    Where the driver runs alongside the device (a vhost-user front-end) and EVENT_IDX is on,
 *    completions inside a pass are handed over in groups (hand-over.ts);
 *  - lets a device serve plain buffers itself first (`QueueServerOptions.direct`,
 *    DeviceQueue.popDirect: no request per buffer; the virtio-net transmit queues), while none
 *    of the queue's requests is in flight; the buffers it leaves go the way above;
 *  - bounds a pass: after PASS_QUEUE_SIZES times the queue size of requests popped in one go
 *    (a driver refilling as fast as the device serves), it yields to the event loop (other
 *    queues, vhost-user messages) and goes on from a setImmediate, notifications still off;
 *  - cancels on device reset, queue reset (2.6.1) and queue replacement (a queue enabled again,
 *    a vhost-user ring restarted): requests in flight then are dropped when they complete,
 *    without touching the ring or guest memory through the server (device/content/8);
 *  - turns a QueueError (the driver broke a ring rule) into DEVICE_NEEDS_RESET (2.1.2).
 * The device hears `queueStarted(index, queue)` / `queueStopped(index)`, as libvhost-user's
 * queue_set_started, because queues come and go without the device being told otherwise.
 */
import { QueueError, isVirtioError } from '../errors.js';
import type { DescriptorChain } from '../queue/chain.js';
import type { DeviceQueue } from '../queue/types.js';
import type { DeviceContext } from './types.js';
import type { QueueStats } from './queue-stats.js';
import { QueueRequest, type QueueServerOptions, type RequestHandler, type RequestResult } from './queue-request.js';
import { ServedQueue } from './served-queue.js';
import { handOverCap, handOverPoint } from './hand-over.js';

export { type DirectServer, QueueRequest, type QueueServerOptions, type RequestHandler, type RequestResult } from './queue-request.js';
export { ServedQueue } from './served-queue.js';
export { HAND_OVER_EVERY } from './hand-over.js';


/** The server serving each live context, for inspectors (queueServerOf). */
const servers = new WeakMap<DeviceContext, QueueServer<QueueRequest>>();

/**
 * The QueueServer a device activated on `ctx` (null when the device serves its queues some
 * other way): inspectors reach the requests in flight through it without the device's help.
 */
export function queueServerOf(ctx: DeviceContext): QueueServer<QueueRequest> | null {
  return servers.get(ctx) ?? null;
}

/** Pops through the ordinary path after the direct path declined a buffer, before it is tried again. */
export const DIRECT_RETRY_AFTER = 8;

/**
 * Requests one pass pops at most, in queue sizes, before it yields to the event loop. A driver
 * cannot make more than a queue size available at a time, so this only ends a pass whose driver
 * refills while the device serves it (see the module comment).
 */
export const PASS_QUEUE_SIZES = 4;

/** Default `segmentBudget`: 2^17 segments, 1.5 MiB of chain storage per device. */
export const DEFAULT_SEGMENT_BUDGET = 1 << 17;

/**
 * The serving loop every request-driven device shares (see the module comment above for what it
 * does per queue): the device gives a handler per queue and the server pops, pools, completes,
 * notifies and cancels.
 */
export class QueueServer<R extends QueueRequest = QueueRequest> {
  private ctx: DeviceContext | null = null;
  private queues: (ServedQueue | null)[] = [];
  private readonly o: QueueServerOptions<R>;
  /** Bumped at every stop, so a request popped before it never matches a live queue again. */
  private epochs = 0;
  /** Device handlers running now (a completion inside one must not start another pass). */
  private dispatching = 0;
  /** Suspending or suspended: no pops (a device's `suspend`). */
  private suspended = false;
  /** Resolves the pending `suspend` once the last request in flight completed. */
  private suspendDone: (() => void) | null = null;
  /** Chain segments held by the slots of every live queue, against `segmentBudget`. */
  private segmentsHeld = 0;
  private readonly segmentBudget: number;
  /** Completions per hand-over (QueueServerOptions.handOverEvery). */
  private readonly handOverEvery: number;
  /** The context's counters (kept after a reset: requests still in flight complete into them). */
  private stats: QueueStats | null = null;

  constructor(options: QueueServerOptions<R>) {
    this.o = options;
    this.segmentBudget = options.segmentBudget ?? DEFAULT_SEGMENT_BUDGET;
    this.handOverEvery = handOverCap(options.handOverEvery);
  }

  /**
   * Completions per hand-over to the driver in queue `index`'s current round (see
   * QueueServerOptions.handOverEvery): a device that holds completions back to do them together
   * (virtio-fs READs) keeps its batches no larger, or the hand-over waits for the batch.
   */
  handOverAt(index: number): number {
    const q = this.queues[index];
    return q !== null && q !== undefined && q.handOverAt > 0 ? q.handOverAt : this.handOverEvery;
  }

  /** Chain segments the request pools hold now (for tests and stats). */
  get chainSegments(): number {
    return this.segmentsHeld;
  }

  /** The context of the current activation (null before activation and after reset). */
  get context(): DeviceContext | null {
    return this.ctx;
  }

  /** The served queue `index` now (null when not started). */
  queue(index: number): DeviceQueue | null {
    return this.queues[index]?.vq ?? null;
  }

  /**
   * Whether any served queue has buffers the device has not popped yet (a backend deciding
   * whether the request it starts is the only work there is, e.g. to wait for it in place).
   */
  hasAvailable(): boolean {
    for (const q of this.queues) if (q !== null && !q.stopped && q.vq.hasAvailable()) return true;
    return false;
  }

  /** Requests of queue `index` in flight now, and pool slots created so far (for tests and stats). */
  inFlight(index: number): number {
    return this.queues[index]?.inFlight ?? 0;
  }
  /** Pool slots created so far for queue `index` (never more than its size). */
  poolSize(index: number): number {
    return this.queues[index]?.created ?? 0;
  }

  /**
   * The chains of queue `index` in flight now, oldest slot first (an inspector's read-only
   * view: the chains stay the server's, do not keep them). Allocates the list.
   */
  inFlightChains(index: number): DescriptorChain[] {
    const q = this.queues[index];
    if (!q) return [];
    return q.slots.filter((r) => r.servedBy === q && r.epoch === q.epoch).map((r) => r.chain);
  }

  /** DRIVER_OK (or a vhost-user ring start): serves every enabled queue, buffers already there first. */
  activate(ctx: DeviceContext): void {
    this.stopAll();
    this.ctx = ctx;
    servers.set(ctx, this as unknown as QueueServer<QueueRequest>);
    this.stats = ctx.stats ?? null;
    this.queues = new Array<ServedQueue | null>(this.o.numQueues).fill(null);
    for (let i = 0; i < this.o.numQueues; i++) {
      const vq = ctx.queue(i);
      if (vq !== null) this.start(i, vq);
    }
    for (let i = 0; i < this.queues.length; i++) if (this.queues[i]) this.onQueueNotify(i);
  }

  /** Device reset: every queue stops, requests in flight are dropped when they complete. */
  reset(): void {
    this.stopAll();
    this.queues = [];
    this.ctx = null;
    this.suspended = false;
    this.suspendDone = null;
  }

  /**
   * Device Suspend (a device's `suspend` hook): stop consuming buffers; resolves once every
   * request in flight has been used and its notification sent (device/content/19). At once
   * when nothing is in flight.
   */
  suspend(): Promise<void> | void {
    this.suspended = true;
    if (this.inFlightTotal() === 0) return;
    return new Promise<void>((resolve) => (this.suspendDone = resolve));
  }

  /** Resume after `suspend`: serve every queue again (buffers already there first). */
  resume(): void {
    this.suspended = false;
    this.suspendDone = null;
    for (const q of this.queues) if (q && !q.stopped) this.serve(q);
  }

  /**
   * While suspending: once nothing is in flight, the used-buffer notifications go out now (the
   * context applies event suppression) and the pending `suspend` resolves, after which the core presents the device suspended
   * (device/content/19).
   */
  private finishSuspendIfIdle(): void {
    if (this.suspendDone === null || this.inFlightTotal() !== 0) return;
    const done = this.suspendDone;
    this.suspendDone = null;
    for (const q of this.queues) if (q && !q.stopped) this.notify(q);
    done();
  }

  private inFlightTotal(): number {
    let n = 0;
    for (const q of this.queues) if (q) n += q.inFlight;
    return n;
  }

  /** 2.6.1 queue reset of `index`: that queue stops; its requests in flight are dropped. */
  resetQueue(index: number): void {
    const q = this.queues[index];
    if (q) this.stop(q);
  }

  /** An available-buffer notification for `index` (or a pass the transport asks for). */
  onQueueNotify(index: number): void {
    const ctx = this.ctx;
    if (ctx === null || !(index >= 0 && index < this.o.numQueues)) return;
    let q = this.queues[index] ?? null;
    // The queue the context has now: another object after a queue reset and re-enable, a
    // vhost-user ring restart or a memory change; null once stopped.
    const vq = ctx.queue(index);
    if (q === null || q.vq !== vq) {
      if (q !== null) this.stop(q);
      if (vq === null) return;
      q = this.start(index, vq);
    }
    if (q.handler === null) {
      this.o.queueNotified?.(index, q.vq);
      return;
    }
    this.serve(q);
  }

  /**
   * Completes `req` with `written` bytes in its writable part. Inside a pass of its queue the
   * used entry is published at the end of the round; otherwise at once, with a used-buffer
   * notification coalesced per microtask. Dropped (false) when the queue stopped meanwhile.
   */
  complete(req: R, written: number): boolean {
    const q = req.servedBy;
    if (q === null) return false;
    req.servedBy = null;
    if (req.epoch !== q.epoch) {
      this.stats?.dropped(q.index);
      return false;
    }
    q.inFlight--;
    if (this.segmentsHeld > this.segmentBudget) {
      // Over budget: this slot gives back what a long chain made it grow to (it keeps the
      // segments of the chain it still holds until the push below).
      const before = req.chain.allocatedSegments;
      req.chain.trim(0);
      const freed = before - req.chain.allocatedSegments;
      q.segments -= freed;
      this.segmentsHeld -= freed;
    }
    req.nextFree = q.free;
    q.free = req;
    // IN_ORDER: the oldest request in flight, completed inside a pass with every writable byte
    // written, joins the round's batch (the driver takes the buffers a batch entry skips as
    // wholly written, 2.7.9); anything else is pushed on its own, after the batch so far.
    const oldest = req.seq === q.usedSeq;
    q.usedSeq = req.seq + 1;
    try {
      if (q.busy && oldest && written === req.chain.writableBytes && q.vq.inOrderBatching === true) {
        q.batchCount++;
        q.batchLastId = req.chain.id;
        q.batchWritten = written;
        q.unpublished++;
      } else {
        if (q.batchCount > 0) this.pushBatch(q);
        if (q.busy) {
          q.vq.pushDeferred(req.chain, written);
          q.unpublished++;
        } else q.vq.push(req.chain, written);
      }
    } catch (e) {
      this.stats?.error(q.index);
      this.broken(e);
      return false;
    }
    this.stats?.completed(q.index, written);
    if (!q.busy) {
      if (this.suspended) {
        // Suspending: no more pops, but what completes is notified (device/content/19).
        if (!q.notifyScheduled) {
          q.notifyScheduled = true;
          queueMicrotask(q.flushNotify);
        }
        this.finishSuspendIfIdle();
      } else if (q.starved) {
        // A pass ended for want of a slot: this one resumes it (and it notifies). Not from inside
        // another request's handler (a device completing this queue's request while it serves
        // one of another queue, e.g. virtio-fs's READ batch): the resumed pass would re-enter
        // the device's handler mid-request. Then it resumes from a microtask.
        q.starved = false;
        if (this.dispatching === 0) this.serve(q);
        else if (!q.continueScheduled) {
          q.continueScheduled = true;
          queueMicrotask(q.continuePass);
        }
      } else if (!q.notifyScheduled) {
        q.notifyScheduled = true;
        queueMicrotask(q.flushNotify);
      }
    }
    return true;
  }

  /** Whether `req` still belongs to a live queue (else the device must not write its buffers). */
  isLive(req: R): boolean {
    const q = req.servedBy;
    return q !== null && req.epoch === q.epoch;
  }

  /** @internal Sends the used-buffer notification of `q` (the context applies suppression). */
  notify(q: ServedQueue): void {
    if (q.stopped) return;
    this.ctx?.notifyUsed(q.index);
  }

  /** @internal A pass that stopped at its bound goes on (unless the queue stopped meanwhile). */
  continueServing(q: ServedQueue): void {
    if (!q.stopped) this.serve(q);
  }

  private start(index: number, vq: DeviceQueue): ServedQueue {
    const handler = this.o.handler(index) as RequestHandler<QueueRequest> | null;
    const cap = this.o.maxInFlight;
    const limit = cap !== undefined && cap >= 1 && cap < vq.size ? Math.floor(cap) : vq.size;
    const direct = handler !== null && vq.popDirect !== undefined ? (this.o.direct?.(index) ?? null) : null;
    const q = new ServedQueue(index, vq, handler, limit, this as unknown as QueueServer<QueueRequest>, direct);
    q.epoch = ++this.epochs;
    while (this.queues.length <= index) this.queues.push(null);
    this.queues[index] = q;
    this.o.queueStarted?.(index, vq);
    return q;
  }

  private stop(q: ServedQueue): void {
    q.stopped = true;
    // Its slots (free and in flight) are dropped with it.
    this.segmentsHeld -= q.segments;
    q.segments = 0;
    q.epoch = ++this.epochs; // requests in flight no longer match
    q.free = null;
    if (this.queues[q.index] === q) this.queues[q.index] = null;
    try {
      this.o.queueStopped?.(q.index);
    } catch (e) {
      this.o.logger?.error(`${this.o.name}: queueStopped threw: ${String(e)}`);
    }
  }

  private stopAll(): void {
    for (const q of this.queues) if (q) this.stop(q);
  }

  private serve(q: ServedQueue): void {
    if (q.busy) {
      q.again = true; // re-entered from a synchronous path: the outer loop re-polls
      return;
    }
    q.busy = true;
    try {
      this.drain(q);
    } finally {
      q.busy = false;
      this.publish(q);
    }
    this.notify(q);
  }

  /**
   * Pops and dispatches until the ring is empty (or no slot is free, or the pass bound is
   * reached: then a setImmediate goes on).
   */
  private drain(q: ServedQueue): void {
    const vq = q.vq;
    // Completed requests go to a driver that runs alongside at once (hand-over.ts); only with
    // EVENT_IDX, where a notification is sent only for the index the driver waits on.
    const handOver = vq.eventIdx === true ? this.ctx?.notifyUsedNow : undefined;
    let handOverEvery = 0; // set per round where handOver is defined, read only then
    let popLeft = vq.size * PASS_QUEUE_SIZES;
    const direct = q.direct;
    for (;;) {
      q.again = false;
      vq.disableNotification();
      if (handOver !== undefined) handOverEvery = q.handOverAt = handOverPoint(this.handOverEvery, vq);
      for (;;) {
        if (q.stopped) return;
        if (this.suspended) break;
        let declined = false;
        if (direct !== null && q.inFlight === 0 && q.directIdle > 0) q.directIdle--;
        else if (direct !== null && q.inFlight === 0) {
          // The device's direct path first (QueueServerOptions.direct): it leaves the first
          // buffer it does not serve to the pop below. With hand-overs, no more than the next one is due after (the same cadence as below).
          const max = handOver !== undefined ? Math.min(popLeft, Math.max(1, handOverEvery - q.unpublished)) : popLeft;
          let n: number;
          try {
            n = direct.serve(vq, max);
          } catch (e) {
            this.stats?.error(q.index);
            this.broken(e);
            return;
          }
          if (n > 0) {
            this.stats?.served(q.index, n, direct.lastBytes);
            q.unpublished += n;
            q.popSeq += n;
            q.usedSeq = q.popSeq;
            if (q.stopped) return;
            if (handOver !== undefined && q.unpublished >= handOverEvery) {
              this.publish(q);
              if (q.stopped) return;
              handOver(q.index);
            }
            popLeft -= n;
            if (popLeft <= 0) {
              this.endBoundedPass(q);
              return;
            }
            continue;
          }
          declined = true;
        }
        if (this.segmentsHeld > this.segmentBudget && q.inFlight > 0) {
          q.starved = true; // resumed by a completion, which gives storage back
          return;
        }
        let req = q.free;
        if (req === null) {
          if (q.created >= q.limit) {
            q.starved = true; // resumed by a completion
            return;
          }
          req = this.newSlot(q);
        } else q.free = req.nextFree;
        const allocated = req.chain.allocatedSegments;
        let got: boolean;
        try {
          got = vq.pop(req.chain);
        } catch (e) {
          req.nextFree = q.free;
          q.free = req;
          this.stats?.error(q.index);
          this.broken(e);
          return;
        }
        if (!got) {
          req.nextFree = q.free;
          q.free = req;
          break;
        }
        // The direct path declined this buffer (a ring or chain it does not take): not tried
        // again for the next few, so a queue of such buffers pays for the attempt seldom.
        if (declined) q.directIdle = DIRECT_RETRY_AFTER;
        if (req.chain.allocatedSegments !== allocated) {
          const grown = req.chain.allocatedSegments - allocated;
          q.segments += grown;
          this.segmentsHeld += grown;
        }
        req.nextFree = null;
        req.servedBy = q;
        req.epoch = q.epoch;
        req.seq = q.popSeq++;
        q.inFlight++;
        this.stats?.popped(q.index, req.chain.readableBytes);
        this.dispatch(q, req as R);
        if (handOver !== undefined && q.unpublished >= handOverEvery) {
          this.publish(q);
          if (q.stopped) return;
          handOver(q.index);
        }
        if (--popLeft === 0) {
          this.endBoundedPass(q);
          return;
        }
      }
      // This round's completions become visible at once, before notifications are re-enabled.
      if (!this.endRound(q)) return;
      this.publish(q);
      if (this.suspended) {
        // Completions of this round are published; nothing more is popped until resume.
        this.finishSuspendIfIdle();
        return;
      }
      if (!vq.enableNotification() && !q.again) return;
    }
  }

  /**
   * A pass reached its bound: this round's completions are published by serve; notifications
   * stay off (the continuation, from a setImmediate, looks at the ring itself).
   */
  private endBoundedPass(q: ServedQueue): void {
    if (!this.endRound(q)) return;
    if (!q.continueScheduled) {
      q.continueScheduled = true;
      setImmediate(q.continuePass);
    }
  }

  /** The device's roundEnd; false when it failed (the device is then broken) or the queue stopped. */
  private endRound(q: ServedQueue): boolean {
    const roundEnd = this.o.roundEnd;
    if (roundEnd === undefined) return true;
    try {
      roundEnd(q.index);
    } catch (e) {
      this.stats?.error(q.index);
      this.broken(e);
      return false;
    }
    return !q.stopped;
  }

  private newSlot(q: ServedQueue): QueueRequest {
    const chain = q.vq.createChain(this.o.minChainSegments);
    const req = this.o.newRequest ? this.o.newRequest(chain, q.index) : new QueueRequest(chain, q.index);
    q.created++;
    q.slots.push(req);
    q.segments += chain.allocatedSegments;
    this.segmentsHeld += chain.allocatedSegments;
    return req;
  }

  private dispatch(q: ServedQueue, req: R): void {
    let r: RequestResult;
    this.dispatching++;
    try {
      r = (q.handler as RequestHandler<R>)(req);
    } catch (e) {
      this.dispatching--;
      this.stats?.error(q.index);
      // A handler must answer a bad request with the device's status; a throw is a device bug
      // (or a QueueError from the ring): the device cannot go on safely.
      this.broken(e);
      return;
    }
    this.dispatching--;
    if (typeof r === 'number') this.complete(req, r);
    else if (r !== undefined && r !== null) this.await(req, r);
  }

  private await(req: R, p: PromiseLike<number>): void {
    if (req.onResolved === null) {
      req.onResolved = (written: number) => void this.complete(req, written);
      req.onRejected = (e: unknown) => {
        // The device gave no answer: the buffer goes back with nothing written (no leak).
        this.o.logger?.warn(`${this.o.name}: request failed: ${describe(e)}`);
        const q = req.servedBy;
        if (q !== null && req.epoch === q.epoch) this.stats?.error(q.index);
        this.complete(req, 0);
      };
    }
    p.then(req.onResolved, req.onRejected);
  }

  /** The round's IN_ORDER batch as one used entry (published with it). */
  private pushBatch(q: ServedQueue): void {
    const n = q.batchCount;
    q.batchCount = 0;
    q.vq.pushInOrderBatch(q.batchLastId, n, q.batchWritten);
  }

  private publish(q: ServedQueue): void {
    if (q.stopped) return;
    q.unpublished = 0;
    try {
      if (q.batchCount > 0) this.pushBatch(q);
      q.vq.publish();
    } catch (e) {
      this.broken(e);
    }
  }

  /** The ring is broken (or the device failed): DEVICE_NEEDS_RESET with the reason. */
  private broken(e: unknown): void {
    const reason = e instanceof QueueError ? e.message : `unexpected: ${describe(e)}`;
    this.o.logger?.error(`${this.o.name}: ${reason}`);
    this.ctx?.needsReset(reason);
  }
}

function describe(e: unknown): string {
  return isVirtioError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
}
