/**
 * The serving state of one queue of a QueueServer (queue-server.ts): its request pool, what is in
 * flight, the pass flags and the IN_ORDER batch of the round. Kept apart from the server's loop,
 * which is the only code that changes it.
 */
import type { DeviceQueue } from '../queue/types.js';
import type { DirectServer, QueueRequest, RequestHandler } from './queue-request.js';
import type { QueueServer } from './queue-server.js';

/** @internal Per-queue serving state. */
export class ServedQueue {
  free: QueueRequest | null = null;
  /** Slots created so far (at most `limit`). */
  created = 0;
  /** Chain segments the slots of this queue hold (allocated storage). */
  segments = 0;
  /** Every slot created, free or in flight (grows with the pool, never per request). */
  readonly slots: QueueRequest[] = [];
  inFlight = 0;
  epoch = 0;
  stopped = false;
  busy = false;
  again = false;
  starved = false;
  notifyScheduled = false;
  /** Completions pushed with pushDeferred since the last publish. */
  unpublished = 0;
  /** Completions per hand-over in the current round (QueueServer.handOverPoint; 0: no round with hand-overs yet). */
  handOverAt = 0;
  /**
   * IN_ORDER (2.7.9 / 2.8.8): completions of this round held for ONE used entry
   * (DeviceQueue.pushInOrderBatch), the head and written length of the last of them.
   */
  batchCount = 0;
  batchLastId = 0;
  batchWritten = 0;
  /** Pop order of the next request popped, and of the oldest not yet used (IN_ORDER batching). */
  popSeq = 0;
  usedSeq = 0;
  /** Pops left before the direct path is tried again (it declined the last buffer it saw). */
  directIdle = 0;
  /** A pass ended at its bound with buffers left: a setImmediate continues it. */
  continueScheduled = false;
  readonly flushNotify: () => void;
  readonly continuePass: () => void;

  constructor(
    readonly index: number,
    readonly vq: DeviceQueue,
    readonly handler: RequestHandler<QueueRequest> | null,
    readonly limit: number,
    server: QueueServer<QueueRequest>,
    /** The device's direct path for this queue (QueueServerOptions.direct), or null. */
    readonly direct: DirectServer | null = null,
  ) {
    this.flushNotify = () => {
      this.notifyScheduled = false;
      server.notify(this);
    };
    this.continuePass = () => {
      this.continueScheduled = false;
      server.continueServing(this);
    };
  }
}
