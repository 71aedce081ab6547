/**
 * When the device runs on a vring: on a kick (eventfd readable), on a timer for a ring without
 * a kick fd (SET_VRING_KICK with the no-fd bit), once after a start or enable (work may already
 * wait), and in busy-poll episodes (pollUs). Used-buffer notifications the device asks for
 * during a processing pass are batched into at most one call eventfd write per ring at the end
 * of the pass, except those sent at once (`usedBufferNow`: the queue server hands a completed
 * request to a front-end that asked for it through EVENT_IDX, so both sides work at once).
 */
import { VirtioError } from '../errors.js';
import type { Logger } from '../log.js';
import type { VirtioDevice } from '../device/types.js';
import type { Platform } from '../platform/types.js';
import type { VhostQueue } from './vhost-queue.js';
import { POLL_SUSPEND_MIN, type Vring } from './vring.js';
import type { QueueStats } from '../device/queue-stats.js';

/** Largest accepted pollUs. */
export const MAX_POLL_US = 1000;
/** Longest a polling episode holds the event loop (vhost-user messages, other rings) before yielding. */
export const POLL_BUDGET_US = 2000;
/** Back-to-back passes between two looks at the clock in a busy polling episode. */
const POLL_CLOCK_PASSES = 8;
/** Looks at the avail index between two clock reads while idle-polling. */
const POLL_CHECKS_PER_CLOCK = 32;
/**
 * Polling adapts: after POLL_WASTED_LIMIT episodes in a row whose idle windows found no buffer
 * (the driver is slower than the window, or shares our CPU and cannot run while we spin), the
 * ring is served without polling for POLL_SUSPEND_MIN episodes, doubling up to POLL_SUSPEND_MAX
 * while the probes after a suspension stay fruitless.
 */
const POLL_WASTED_LIMIT = 2;
const POLL_SUSPEND_MAX = 4096;

export interface RingSchedulerHost {
  /** The session ended: nothing runs any more. */
  readonly closed: boolean;
  /** Whether the device may run on `r` now (activating it on the first ring that starts). */
  ready(r: Vring): boolean;
  /** The device or the ring failed while serving `r` (the back-end keeps running). */
  failure(r: Vring, e: unknown): void;
}

export interface RingSchedulerOptions {
  /** Polling period of rings without a kick fd, in ms. */
  readonly pollIntervalMs: number;
  /** Busy-poll window after a processing pass, in microseconds (0: off). */
  readonly pollUs: number;
  /** Counts the kicks read from kick fds. */
  readonly stats: QueueStats;
}

export class RingScheduler {
  private readonly stats: QueueStats;
  /** Busy-poll window in ms (0: no polling). */
  private readonly pollWindowMs: number;
  private readonly pollMs: number;
  private readonly immediates = new Set<ReturnType<typeof setImmediate>>();
  /** Nesting of processing passes (used-buffer calls are deferred while > 0). */
  private passDepth = 0;
  /** Call eventfd writes made (used-buffer notifications actually sent). */
  callsSent = 0;

  constructor(
    private readonly rings: readonly Vring[],
    private readonly device: VirtioDevice,
    private readonly platform: Platform,
    private readonly logger: Logger,
    private readonly host: RingSchedulerHost,
    o: RingSchedulerOptions,
  ) {
    if (!(o.pollUs >= 0 && o.pollUs <= MAX_POLL_US)) throw new VirtioError('INVALID_ARGUMENT', `pollUs ${o.pollUs} not in 0..${MAX_POLL_US}`);
    this.pollWindowMs = o.pollUs / 1000;
    this.pollMs = o.pollIntervalMs;
    this.stats = o.stats;
  }

  /** Starts watching a started ring's kick fd (or polling it without one). */
  watch(r: Vring): void {
    this.stopWatching(r);
    if (r.kickFd >= 0) {
      const fd = r.kickFd;
      r.watcher = this.platform.watchReadable(fd, () => this.onKick(r, fd));
    } else if (r.polling) {
      r.pollTimer = setInterval(() => {
        try {
          if (r.queue && r.enabled && r.queue.hasAvailable()) this.dispatchRing(r);
        } catch (e) {
          this.host.failure(r, e);
        }
      }, this.pollMs);
    }
  }

  stopWatching(r: Vring): void {
    r.watcher?.stop();
    r.watcher = null;
    if (r.pollTimer) clearInterval(r.pollTimer);
    r.pollTimer = null;
  }

  private onKick(r: Vring, fd: number): void {
    if (r.kickFd !== fd) return;
    this.stats.kick(r.index);
    try {
      this.platform.eventfdRead(fd);
    } catch (e) {
      this.logger.warn(`ring ${r.index}: kick read failed: ${(e as Error).message}`);
    }
    this.dispatchRing(r);
  }

  /** Runs the device on a ring with work, outside the message handler (after the reply). */
  scheduleCheck(r: Vring): void {
    const h = setImmediate(() => {
      this.immediates.delete(h);
      if (this.host.closed || !r.queue || !r.enabled) return;
      try {
        if (r.queue.hasAvailable()) this.dispatchRing(r);
      } catch (e) {
        this.host.failure(r, e);
      }
    });
    this.immediates.add(h);
  }

  /** Cancels the checks scheduled (end of session). */
  cancelChecks(): void {
    for (const h of this.immediates) clearImmediate(h);
    this.immediates.clear();
  }

  /**
   * One processing pass over ring `r` (or a polling episode): the device runs, and the
   * used-buffer notifications it asks for are batched into at most one call eventfd write at the
   * end of the pass.
   */
  dispatchRing(r: Vring): void {
    if (this.host.closed || !r.started || !r.enabled || !r.queue || r.broken) return;
    if (!this.host.ready(r)) return;
    if (this.pollWindowMs > 0 && this.passDepth === 0) {
      if (r.pollSuspended === 0) {
        this.pollRing(r, r.queue);
        return;
      }
      r.pollSuspended--;
    }
    this.pass(r);
  }

  /** One device pass over `r`; the calls asked for are sent when the outermost pass ends. */
  private pass(r: Vring): void {
    this.passDepth++;
    try {
      this.device.onQueueNotify(r.index);
    } catch (e) {
      this.host.failure(r, e);
    } finally {
      this.passDepth--;
      if (this.passDepth === 0) this.flushCalls();
    }
  }

  /**
   * Passes over `r` with driver notifications held off (VhostQueue.hold), then busy-polls the
   * avail ring for the poll window after the last buffer found. Bounded: the episode ends after
   * POLL_BUDGET_US, when a pass makes no progress (a device out of request slots waits for its
   * completions, which need the event loop), when buffers it took are still in flight (their
   * completions need the event loop too), or when the ring stops, resets or breaks (message
   * handlers cannot run meanwhile, but a pass can break the ring or the device can fail).
   * Before returning, notifications are re-enabled, fenced and the ring re-checked (2.7.10), so
   * no buffer is left without either a kick to come or a scheduled pass.
   */
  private pollRing(r: Vring, q: VhostQueue): void {
    const budgetEnd = performance.now() + POLL_BUDGET_US / 1000;
    const window = this.pollWindowMs;
    let stalled = false;
    let waitingForDevice = false;
    let busyPasses = 0;
    let hits = 0;
    q.hold = true;
    try {
      // Device-independent: a device that never suppresses notifications itself gets them held too.
      q.disableNotification();
      for (;;) {
        const before = q.served;
        this.pass(r);
        if (!this.live(r, q)) return;
        if (q.served === before) {
          stalled = true; // the device waits for its completions, which need the event loop
          break;
        }
        // Requests of this episode still in flight complete on the event loop (an io_uring
        // eventfd, a promise's microtask), which the episode holds: watching the ring now would
        // only delay them, and the driver waiting on them adds nothing. Not a fruitless episode.
        if (q.pinnedBuffers > 0) {
          waitingForDevice = true;
          break;
        }
        // Buffers already waiting: straight to the next pass, reading the clock (tens of ns)
        // only every POLL_CLOCK_PASSES passes to keep the budget.
        const waiting = q.hasAvailable();
        if (waiting && ++busyPasses < POLL_CLOCK_PASSES) continue;
        busyPasses = 0;
        const t0 = performance.now();
        if (t0 >= budgetEnd) {
          // Busy to the end of the budget with buffers still coming: polling was not wasted.
          // A budget spent with nothing waiting (a slow pass, or this process descheduled on a
          // loaded machine) found nothing by polling and counts as fruitless.
          if (waiting) hits++;
          break;
        }
        // The window starts after the pass: wait for the driver's next buffer this long.
        const idleEnd = t0 + window;
        let found = false;
        for (;;) {
          // Several looks at avail idx per clock read: performance.now() allocates (a boxed
          // number, GC pressure in a tight loop) and costs more than a look.
          for (let i = 0; i < POLL_CHECKS_PER_CLOCK && !found; i++) found = q.hasAvailable();
          if (found) {
            hits++;
            break;
          }
          const t = performance.now();
          if (t >= idleEnd || t >= budgetEnd) break;
        }
        if (!found) break;
      }
    } finally {
      q.hold = false;
    }
    if (hits > 0) {
      r.pollWasted = 0;
      r.pollSuspendLen = POLL_SUSPEND_MIN;
    } else if (!stalled && !waitingForDevice && ++r.pollWasted >= POLL_WASTED_LIMIT) {
      r.pollSuspended = r.pollSuspendLen;
      r.pollSuspendLen = Math.min(r.pollSuspendLen * 2, POLL_SUSPEND_MAX);
      r.pollWasted = POLL_WASTED_LIMIT - 1; // one fruitless probe suspends again
    }
    // Re-enable before sleeping (fenced, re-checked). A buffer that slipped in meanwhile is
    // served now by an ordinary pass, or past the budget on the next turn of the event loop; a
    // stalled device resumes from its completions, as without polling.
    if (q.enableNotificationNow() && !stalled) {
      if (performance.now() < budgetEnd) this.pass(r);
      else this.scheduleCheck(r);
    }
  }

  private live(r: Vring, q: VhostQueue): boolean {
    return !this.host.closed && r.started && r.enabled && r.queue === q && !r.broken && !q.isDetached;
  }

  /**
   * A used-buffer notification for ring `index` (the core checked the queue's event
   * suppression): inside a processing pass it is deferred to the pass's end, else sent now.
   */
  usedBuffer(index: number): void {
    const r = this.rings[index];
    if (!r) return;
    if (this.passDepth > 0) r.callPending = true;
    else this.writeCall(r);
  }

  /**
   * A used-buffer notification for ring `index` sent at once, inside a pass too (the device
   * handed the front-end a buffer it waits for; the core checked event suppression). One
   * deferred for this ring earlier in the pass is covered by it.
   */
  usedBufferNow(index: number): void {
    const r = this.rings[index];
    if (!r) return;
    r.callPending = false;
    this.writeCall(r);
  }

  /** Sends the notifications deferred during a pass (any ring: a device may complete on another). */
  private flushCalls(): void {
    const rings = this.rings;
    for (let i = 0; i < rings.length; i++) {
      const r = rings[i]!;
      if (!r.callPending) continue;
      r.callPending = false;
      this.writeCall(r);
    }
  }

  private writeCall(r: Vring): void {
    if (r.callFd < 0) return;
    this.callsSent++;
    try {
      this.platform.eventfdWrite(r.callFd, 1);
    } catch (e) {
      this.logger.warn(`ring ${r.index}: call write failed: ${(e as Error).message}`);
    }
  }
}
