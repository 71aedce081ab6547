/**
 * The last minutes of a device's traffic for the inspector's plots: every sample holds the
 * QueueStats totals over all queues (requests, bytes read, bytes written); rates are the
 * differences between consecutive samples. A fixed ring of samples: memory does not grow.
 */
import type { QueueStats } from '../device/queue-stats.js';

/** Requests and bytes per second between two samples, ending at `t` (ms since the epoch). */
export interface RatePoint {
  /** The later sample's time, in ms since the epoch. */
  readonly t: number;
  /** Requests (chains popped) per second, all queues together. */
  readonly requests: number;
  /** Device-readable bytes popped per second (what the driver sent; QueueStats bytesRead). */
  readonly bytesRead: number;
  /** Bytes the device wrote into returned buffers per second (QueueStats bytesWritten). */
  readonly bytesWritten: number;
}

const FIELDS = 4; // t, requests, bytesRead, bytesWritten

/**
 * A fixed ring of QueueStats totals sampled over time, from which {@link RateHistory.rates}
 * derives per-second rates for the inspector's plots.
 */
export class RateHistory {
  private readonly samples: Float64Array;
  private next = 0;
  private count = 0;

  constructor(
    /** Samples kept (at least 2 are stored); the oldest is overwritten once it is full. */
    readonly capacity: number,
  ) {
    this.samples = new Float64Array(FIELDS * Math.max(2, capacity));
  }

  /** Records the totals of `stats` at time `t`. */
  sample(t: number, stats: QueueStats | undefined): void {
    let requests = 0;
    let bytesRead = 0;
    let bytesWritten = 0;
    if (stats) {
      for (let q = 0; q < stats.queueCount; q++) {
        requests += stats.value(q, 'requests');
        bytesRead += stats.value(q, 'bytesRead');
        bytesWritten += stats.value(q, 'bytesWritten');
      }
    }
    const o = this.next * FIELDS;
    this.samples[o] = t;
    this.samples[o + 1] = requests;
    this.samples[o + 2] = bytesRead;
    this.samples[o + 3] = bytesWritten;
    const cap = this.samples.length / FIELDS;
    this.next = (this.next + 1) % cap;
    this.count = Math.min(this.count + 1, cap);
  }

  /** The rates between consecutive samples, oldest first. */
  rates(): RatePoint[] {
    const cap = this.samples.length / FIELDS;
    const out: RatePoint[] = [];
    const first = (this.next - this.count + cap) % cap;
    for (let k = 1; k < this.count; k++) {
      const a = ((first + k - 1) % cap) * FIELDS;
      const b = ((first + k) % cap) * FIELDS;
      const s = this.samples;
      const dt = (s[b]! - s[a]!) / 1000;
      if (dt <= 0) continue;
      out.push({
        t: s[b]!,
        requests: (s[b + 1]! - s[a + 1]!) / dt,
        bytesRead: (s[b + 2]! - s[a + 2]!) / dt,
        bytesWritten: (s[b + 3]! - s[a + 3]!) / dt,
      });
    }
    return out;
  }
}
