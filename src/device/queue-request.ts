/**
 * What a device gives and gets from its QueueServer (queue-server.ts): the request slot a
 * handler is called with, what a handler returns, and the server's options.
 */
import type { Logger } from '../log.js';
import type { DescriptorChain } from '../queue/chain.js';
import type { DeviceQueue } from '../queue/types.js';
import type { ServedQueue } from './served-queue.js';

/**
 * One slot of a queue's request pool: the chain popped into it and the queue it came from.
 * Devices that keep per-request state extend it (see `QueueServerOptions.newRequest`).
 */
export class QueueRequest {
  /** @internal The served queue this slot belongs to and its epoch when popped. */
  servedBy: ServedQueue | null = null;
  /** @internal */
  epoch = 0;
  /** @internal Pop order within its queue (IN_ORDER batching). */
  seq = 0;
  /** @internal Free-list link. */
  nextFree: QueueRequest | null = null;
  /** @internal Promise settlement callbacks, made once per slot on first use. */
  onResolved: ((written: number) => void) | null = null;
  /** @internal */
  onRejected: ((e: unknown) => void) | null = null;

  constructor(
    /** The chain popped into this slot: the request's buffers. */
    readonly chain: DescriptorChain,
    /** The queue the request came from. */
    readonly queueIndex: number,
  ) {}
}

/**
 * What a queue's handler returns for one request: the bytes written into its writable part
 * (completed now), a Promise of them, or nothing when the device calls `complete` itself later.
 */
export type RequestResult = number | PromiseLike<number> | void;

/** Serves one popped request of a queue. */
export type RequestHandler<R extends QueueRequest> = (req: R) => RequestResult;

/**
 * A device's direct path for a queue (DeviceQueue.popDirect): it serves and completes (with
 * `pushDirect`) up to `max` of the queue's available buffers itself, without requests, and
 * returns how many; 0 leaves the next buffer to the ordinary pop and handler. The server calls
 * it only while none of the queue's requests is in flight, inside its pass (notifications,
 * publication of used idx, pass bound and suspension stay the server's).
 */
export interface DirectServer {
  /** Serves up to `max` available buffers of `queue` (popDirect, pushDirect); returns how many. */
  serve(queue: DeviceQueue, max: number): number;
  /** Device-readable bytes of the buffers the last `serve` used (the queue's byte counter). */
  readonly lastBytes: number;
}

/** How a device configures its QueueServer. */
export interface QueueServerOptions<R extends QueueRequest> {
  /** Prefix of log lines (e.g. 'virtio-blk'). */
  readonly name: string;
  /** The device's queue count (`VirtioDevice.queueMaxSizes.length`). */
  readonly numQueues: number;
  /** Where the server logs a broken queue or a handler that threw. */
  readonly logger?: Logger | undefined;
  /**
   * The handler of queue `index`, asked when the queue starts; null for a queue the device
   * drives itself (the server then only reports it started, stopped and notified).
   */
  handler(index: number): RequestHandler<R> | null;
  /** The direct path of queue `index`, asked when the queue starts (absent or null: none). */
  direct?(index: number): DirectServer | null;
  /** Creates one pool slot (once per slot, never per request). Default: a plain QueueRequest. */
  newRequest?(chain: DescriptorChain, queueIndex: number): R;
  /**
   * Segments a chain must hold beyond what the queue size allows, when the device advertises a
   * larger bound (virtio-blk seg_max + 2 on a queue the driver made smaller than the maximum).
   */
  readonly minChainSegments?: number;
  /** Requests in flight per queue at most (default and ceiling: the queue size). */
  readonly maxInFlight?: number;
  /**
   * Chain segments (12 bytes each) all pool slots of this server may hold before queues with
   * requests in flight stop popping (default DEFAULT_SEGMENT_BUDGET). A queue with nothing in
   * flight always pops, so one chain of any legal length is always served.
   */
  readonly segmentBudget?: number;
  /**
   * Synchronous completions inside a pass published and handed to a driver alongside at a time
   * (vhost-user with EVENT_IDX; see hand-over.ts), default HAND_OVER_EVERY (4). Larger: fewer
   * used-buffer notifications (each a call eventfd write that wakes the driver), but the driver
   * refills later; a device whose driver keeps many requests in flight gains (virtio-fs: 8).
   */
  readonly handOverEvery?: number;
  /** The queue `index` started being served with `queue` (activation, enable, ring start). */
  queueStarted?(index: number, queue: DeviceQueue): void;
  /** The queue `index` stopped (reset, queue reset, replaced): its requests in flight are dropped. */
  queueStopped?(index: number): void;
  /** A notification for a queue without handler. */
  queueNotified?(index: number, queue: DeviceQueue): void;
  /**
   * A round of pops on queue `index` ended (the ring was found empty, or the pass reached its
   * bound) and its completions are about to be published: a device that holds requests back to
   * do them together (virtio-fs READs in one io_uring_enter) completes them now, so that they
   * go out with the round.
   */
  roundEnd?(index: number): void;
}
