/**
 * Per-queue counters of a device, for operators (`--stats-interval`, the `--metrics` endpoint)
 * and tests: driver notifications (kicks), used-buffer notifications sent (calls), requests
 * popped and completed, the bytes of both directions, and errors. One object may outlive many
 * activations and connections (a back-end process hands the same one to every front-end), so
 * the counters only grow, as Prometheus counters must.
 *
 * Hot path: every update is an index computation and an add into one Float64Array (exact to
 * 2^53); storage grows only when a queue index is seen for the first time.
 */
import { ErrorCode, VirtioError } from '../errors.js';

/** The counters kept for each queue, in storage order. */
export const QUEUE_COUNTERS = ['kicks', 'calls', 'requests', 'completed', 'dropped', 'bytesRead', 'bytesWritten', 'errors'] as const;
export type QueueCounterName = (typeof QUEUE_COUNTERS)[number];

const KICKS = 0;
const CALLS = 1;
const REQUESTS = 2;
const COMPLETED = 3;
const DROPPED = 4;
const BYTES_READ = 5;
const BYTES_WRITTEN = 6;
const ERRORS = 7;
const STRIDE = QUEUE_COUNTERS.length;

/** 2.6: a queue index is 16 bits at most. */
const MAX_QUEUES = 65536;

/** One queue's counters at a moment. */
export interface QueueCounters {
  /** The queue index. */
  readonly queue: number;
  /** Available-buffer notifications from the driver. */
  readonly kicks: number;
  /** Used-buffer notifications the device sent (interrupts, call eventfd writes). */
  readonly calls: number;
  /** Buffers (descriptor chains) popped. */
  readonly requests: number;
  /** Buffers returned to the used ring. */
  readonly completed: number;
  /** Buffers dropped unreturned because their queue stopped (reset, queue reset, ring restart). */
  readonly dropped: number;
  /** Device-readable bytes of the buffers popped (what the driver sent). */
  readonly bytesRead: number;
  /** Bytes the device wrote into the buffers it returned (the used lengths). */
  readonly bytesWritten: number;
  /** Requests that failed: a malformed ring or chain, or an error status the device reported. */
  readonly errors: number;
  /** Popped and neither completed nor dropped. */
  readonly inFlight: number;
}

/**
 * Per-queue counters of a device (kicks, calls, requests, completions, drops, bytes both ways,
 * errors), only growing, for `--stats-interval`, `--metrics` and tests. The device core counts
 * kicks and calls, the queue server the rest.
 */
export class QueueStats {
  private values: Float64Array<ArrayBufferLike> = new Float64Array(STRIDE * 4);
  private highest = -1;
  /** The SharedArrayBuffer behind `values` when shared between threads (fixed queue count). */
  private shared: SharedArrayBuffer | null = null;

  /** Storage for `numQueues` queues that threads can share (QueueStats.shared). */
  static sharedBuffer(numQueues: number): SharedArrayBuffer {
    return new SharedArrayBuffer(Math.max(1, numQueues) * STRIDE * Float64Array.BYTES_PER_ELEMENT);
  }

  /**
   * Counters over shared storage: every thread holding one over the same buffer sees the same
   * values. Each queue must be counted by one thread at a time (worker-pool.ts: a ring has one
   * owner); every queue of the buffer is listed. Queues beyond it are refused (it cannot grow).
   */
  static shared(buffer: SharedArrayBuffer): QueueStats {
    const s = new QueueStats();
    s.values = new Float64Array(buffer);
    s.highest = s.values.length / STRIDE - 1;
    s.shared = buffer;
    return s;
  }

  /** The shared storage (QueueStats.shared), or null. */
  get sharedStorage(): SharedArrayBuffer | null {
    return this.shared;
  }

  private slot(queue: number): number {
    // One comparison pair on the hot path: `>>> 0` differs for negatives and fractions.
    if (queue > this.highest || queue >>> 0 !== queue) {
      if (!Number.isInteger(queue) || queue < 0 || queue >= MAX_QUEUES) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue index ${queue} out of range`);
      }
      if ((queue + 1) * STRIDE > this.values.length) {
        if (this.shared) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue index ${queue} beyond the shared counters`);
        const grown = new Float64Array(Math.max((queue + 1) * STRIDE, this.values.length * 2));
        grown.set(this.values);
        this.values = grown;
      }
      this.highest = queue;
    }
    return queue * STRIDE;
  }

  /** A driver notification (kick) arrived for `queue`. */
  kick(queue: number): void {
    this.values[this.slot(queue) + KICKS]! += 1;
  }

  /** A used-buffer notification (call) was sent for `queue`. */
  call(queue: number): void {
    this.values[this.slot(queue) + CALLS]! += 1;
  }

  /** A buffer was popped carrying `readBytes` device-readable bytes. */
  popped(queue: number, readBytes: number): void {
    const s = this.slot(queue);
    this.values[s + REQUESTS]! += 1;
    this.values[s + BYTES_READ]! += readBytes;
  }

  /** A buffer went to the used ring with `written` bytes. */
  completed(queue: number, written: number): void {
    const s = this.slot(queue);
    this.values[s + COMPLETED]! += 1;
    this.values[s + BYTES_WRITTEN]! += written;
  }

  /** `n` buffers carrying `readBytes` device-readable bytes were popped and used with nothing written (a direct path). */
  served(queue: number, n: number, readBytes: number): void {
    const s = this.slot(queue);
    this.values[s + REQUESTS]! += n;
    this.values[s + BYTES_READ]! += readBytes;
    this.values[s + COMPLETED]! += n;
  }

  /** A popped buffer was dropped without completion (its queue was reset or replaced). */
  dropped(queue: number): void {
    this.values[this.slot(queue) + DROPPED]! += 1;
  }

  /** A request failed (counted once, whatever the device answered it with). */
  error(queue: number): void {
    this.values[this.slot(queue) + ERRORS]! += 1;
  }

  /** Queues seen so far: indices 0..count-1 (a queue never used reads all zeros). */
  get queueCount(): number {
    return this.highest + 1;
  }

  /** One counter of one queue (0 for a queue never seen). */
  value(queue: number, counter: QueueCounterName): number {
    if (queue < 0 || queue > this.highest) return 0;
    return this.values[queue * STRIDE + QUEUE_COUNTERS.indexOf(counter)]!;
  }

  /** Every queue's counters (allocates: for reports, not for hot paths). */
  snapshot(): QueueCounters[] {
    const out: QueueCounters[] = [];
    for (let q = 0; q <= this.highest; q++) {
      const v = this.values.subarray(q * STRIDE, (q + 1) * STRIDE);
      out.push({
        queue: q,
        kicks: v[KICKS]!,
        calls: v[CALLS]!,
        requests: v[REQUESTS]!,
        completed: v[COMPLETED]!,
        dropped: v[DROPPED]!,
        bytesRead: v[BYTES_READ]!,
        bytesWritten: v[BYTES_WRITTEN]!,
        errors: v[ERRORS]!,
        inFlight: v[REQUESTS]! - v[COMPLETED]! - v[DROPPED]!,
      });
    }
    return out;
  }
}
