/**
 * Used-buffer notification coalescing (5.1.6.5.9, VIRTIO_NET_F_NOTF_COAL and
 * VIRTIO_NET_F_VQ_NOTF_COAL): per receive and transmit queue, max_packets and max_usecs. With
 * both non-zero the device counts packets from the first one after a notification and notifies
 * when max_packets have gone by or max_usecs elapsed, whichever comes first; with either 0 it
 * notifies after every packet (the kit's ordinary behaviour).
 *
 * The kit's QueueServer notifies through `DeviceContext.notifyUsed`; the device hands the
 * server a context whose notifyUsed comes here (`CoalescingContext`), and counts packets with
 * `packet(index)`. A notification held back is sent by a per-queue timer, made once and
 * re-armed with `refresh()`, so coalescing allocates nothing per packet. Event suppression
 * still applies on top: the transport's notifyUsed does not notify a queue whose driver
 * suppressed notifications (device/net/108).
 */
import type { DeviceContext } from '../../device/types.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DeviceQueue } from '../../queue/types.js';
import { type NetQueueCounters, NetRxCounter } from './net-stats.js';
import type { QueueStats } from '../../device/queue-stats.js';

/** Parameters of one queue: both non-zero to coalesce. */
export interface CoalescingParams {
  /** max_packets: packets the device may complete before it notifies; 0: notify after each. */
  maxPackets: number;
  /** max_usecs: microseconds the device may wait before it notifies; 0: notify after each. */
  maxUsecs: number;
}

class QueueCoalescing {
  maxPackets = 0;
  maxUsecs = 0;
  /** Packets since the last notification. */
  packets = 0;
  /** A notification is owed (used buffers were published since the last one). */
  owed = false;
  timer: NodeJS.Timeout | null = null;
  timerMs = -1;
  armed = false;
}

/**
 * A virtio-net device's notification coalescing (5.1.6.5.9): per data queue, the used-buffer
 * notification held until max_packets packets or max_usecs elapsed (see the file comment).
 */
export class NetCoalescing {
  /** Parameters TX_SET / RX_SET gave (used again when a queue is re-enabled: device/net/105, /106). */
  readonly tx: CoalescingParams = { maxPackets: 0, maxUsecs: 0 };
  /** RX_SET's parameters (the receive queues'), kept as `tx` is. */
  readonly rx: CoalescingParams = { maxPackets: 0, maxUsecs: 0 };
  /** Notifications sent, and held back to be sent later. */
  notifications = 0;
  /** Notifications held back by coalescing (sent later by the packet count or the timer). */
  deferred = 0;
  private readonly queues: QueueCoalescing[];
  private ctx: DeviceContext | null = null;

  constructor(
    /** Number of data queues (2 x pairs); the control queue is never coalesced. */
    readonly dataQueues: number,
    /** Per-queue STATS counters: rx_interrupts / tx_interrupts count the notifications asked of the transport. */
    private readonly counters: NetQueueCounters | null = null,
  ) {
    this.queues = Array.from({ length: dataQueues }, () => new QueueCoalescing());
  }

  /** The context notifications go to (null: detached, timers stopped). */
  attach(ctx: DeviceContext | null): void {
    this.ctx = ctx;
    if (ctx === null) for (const q of this.queues) this.stop(q);
  }

  /** device/net/109: every parameter 0 on reset. */
  reset(): void {
    this.tx.maxPackets = this.tx.maxUsecs = this.rx.maxPackets = this.rx.maxUsecs = 0;
    for (const q of this.queues) {
      this.stop(q);
      q.maxPackets = q.maxUsecs = q.packets = 0;
      q.owed = false;
    }
  }

  /** A queue (re)started: its parameters are the class ones (device/net/105, /106). */
  queueStarted(index: number): void {
    const q = this.queues[index];
    if (q === undefined) return;
    const c = (index & 1) === 0 ? this.rx : this.tx;
    this.disarm(q);
    q.maxPackets = c.maxPackets;
    q.maxUsecs = c.maxUsecs;
    q.packets = 0;
    q.owed = false;
  }

  /** TX_SET (transmit: true) or RX_SET: every queue of that direction. */
  setClass(transmit: boolean, maxPackets: number, maxUsecs: number): void {
    const c = transmit ? this.tx : this.rx;
    c.maxPackets = maxPackets;
    c.maxUsecs = maxUsecs;
    for (let i = transmit ? 1 : 0; i < this.dataQueues; i += 2) this.set(i, maxPackets, maxUsecs);
  }

  /** VQ_SET for one data queue. */
  set(index: number, maxPackets: number, maxUsecs: number): void {
    const q = this.queues[index]!;
    q.maxPackets = maxPackets;
    q.maxUsecs = maxUsecs;
    // 5.1.6.5.9.4: with new parameters the conditions are checked again at once.
    if (q.owed && (!coalesces(q) || q.packets >= q.maxPackets)) this.flush(index, q);
    else if (q.owed && coalesces(q)) this.arm(index, q);
  }

  /** VQ_GET. */
  get(index: number): CoalescingParams {
    const q = this.queues[index]!;
    return { maxPackets: q.maxPackets, maxUsecs: q.maxUsecs };
  }

  /** One packet went through data queue `index` (received into it, or sent from it). */
  packet(index: number): void {
    const q = this.queues[index];
    if (q !== undefined) q.packets++;
  }

  /** The device (or its queue server) would notify `index` now. */
  notify(index: number): void {
    const ctx = this.ctx;
    if (ctx === null) return;
    const q = this.queues[index];
    if (q === undefined || !coalesces(q) || q.packets >= q.maxPackets) {
      if (q !== undefined) this.flush(index, q);
      else {
        this.notifications++;
        this.counters?.inc(index, NetRxCounter.INTERRUPTS);
        ctx.notifyUsed(index);
      }
      return;
    }
    q.owed = true;
    this.deferred++;
    this.arm(index, q);
  }

  private flush(index: number, q: QueueCoalescing): void {
    this.disarm(q);
    q.packets = 0;
    q.owed = false;
    this.notifications++;
    this.counters?.inc(index, NetRxCounter.INTERRUPTS);
    this.ctx?.notifyUsed(index);
  }

  private arm(index: number, q: QueueCoalescing): void {
    if (q.armed) return;
    q.armed = true;
    const ms = q.maxUsecs / 1000;
    if (q.timer !== null && q.timerMs === ms) {
      q.timer.refresh(); // the same timer object re-armed: nothing allocated
      return;
    }
    if (q.timer !== null) clearTimeout(q.timer);
    q.timerMs = ms;
    q.timer = setTimeout(() => {
      // A disarmed timer may still fire once: it then does nothing.
      if (!q.armed) return;
      q.armed = false;
      if (q.owed) this.flush(index, q);
    }, ms);
  }

  private disarm(q: QueueCoalescing): void {
    q.armed = false;
  }

  private stop(q: QueueCoalescing): void {
    q.armed = false;
    if (q.timer !== null) clearTimeout(q.timer);
    q.timer = null;
  }
}

function coalesces(q: QueueCoalescing): boolean {
  return q.maxPackets !== 0 && q.maxUsecs !== 0;
}

/**
 * The DeviceContext the net device's queue server sees: everything passes through except
 * notifyUsed of a data queue, which goes through the coalescing state.
 */
export class CoalescingContext implements DeviceContext {
  constructor(
    private readonly inner: DeviceContext,
    private readonly coalescing: NetCoalescing,
  ) {}
  get memory(): GuestMemory {
    return this.inner.memory;
  }
  get features(): bigint {
    return this.inner.features;
  }
  get littleEndian(): boolean {
    return this.inner.littleEndian;
  }
  /** The transport's queue counters pass through (the queue server counts into them). */
  get stats(): QueueStats | undefined {
    return this.inner.stats;
  }
  queue(index: number): DeviceQueue | null {
    return this.inner.queue(index);
  }
  notifyUsed(index: number): void {
    if (index < this.coalescing.dataQueues) this.coalescing.notify(index);
    else this.inner.notifyUsed(index);
  }
  notifyConfigChange(): void {
    this.inner.notifyConfigChange();
  }
  needsReset(reason: string, cause?: unknown): void {
    this.inner.needsReset(reason, cause);
  }
}
