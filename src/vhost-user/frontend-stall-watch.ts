/**
 * The front-end's stall watch (VhostUserTransportOptions.stallKickMs): a periodic look at every
 * started split ring that re-sends the available-buffer notification (and runs the driver's
 * used-buffer handling) when the driver has buffers out and the back-end used none of them for a
 * whole period.
 *
 * Why: a back-end that loses a notification leaves the front-end waiting forever. QEMU 7.2's C
 * virtiofsd does, with EVENT_IDX: libvhost-user's vu_queue_pop stores avail_event with a plain
 * store and then reads avail idx with no barrier in between, and virtiofsd's queue thread never
 * re-enables notifications through vu_queue_set_notification (which has the smp_mb). On x86 the
 * load may pass the store (store-buffer reordering): virtiofsd reads the old avail idx and goes
 * back to poll(2) while this driver, which fences between its idx store and its avail_event load
 * (driver/split-ring/25), reads the old avail_event and correctly sends no notification (2.7.10).
 * Both sides then wait. Sending one more notification is always allowed: the device MUST handle
 * spurious notifications (2.7.10, device side), so the watch is a safe net, never a protocol change.
 *
 * Cost: one timer per transport (unref'd: it keeps no process alive), two u16 reads per started
 * ring per period; nothing on the request path. Packed rings are not watched: no back-end known to
 * lose notifications offers them (QEMU 7.2's libvhost-user has split rings only).
 */
import type { DriverQueueAddresses } from '../driver/types.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { SplitLayout } from '../spec/ring.js';

/** What the watch needs of one ring of the transport. */
export interface WatchedRing {
  /** Whether the back-end has the ring (SET_VRING_* sent, not stopped). */
  readonly started: boolean;
  /** Where the ring lives (null: not set up). */
  readonly addrs: DriverQueueAddresses | null;
}

/** The transport's side of the watch: its rings, their layout, and the two ways to wake them. */
export interface StallWatchHost {
  /** The shared memory the rings live in. */
  readonly memory: GuestMemory;
  /** The transport's rings, by queue index. */
  rings(): readonly WatchedRing[];
  /** Whether the rings are packed (not watched). */
  packed(): boolean;
  /** Writes ring `index`'s kick eventfd (a notification the back-end cannot miss). */
  kick(index: number): void;
  /** Runs the driver's used-buffer handling of ring `index` (in case a call was lost too). */
  deliverUsed(index: number): void;
}

const NONE = -1;

/** Re-notifies split rings whose back-end made no progress for a whole period; counts it. */
export class FrontendStallWatch {
  /** Notifications re-sent because a ring stalled with buffers out (each one a rescued stall or a slow request). */
  kicks = 0;
  private readonly timer: ReturnType<typeof setInterval>;
  /** Used idx seen at the previous look, per ring (NONE: nothing was outstanding). */
  private lastUsed: number[] = [];
  private readonly bytes = new Uint8Array(2);

  constructor(
    private readonly host: StallWatchHost,
    periodMs: number,
  ) {
    this.timer = setInterval(() => this.look(), periodMs);
    this.timer.unref();
  }

  /** One look at every started split ring (public for tests that drive it without the timer). */
  look(): void {
    const rings = this.host.rings();
    if (this.host.packed()) return;
    for (let i = 0; i < rings.length; i++) {
      const r = rings[i]!;
      const a = r.addrs;
      if (!r.started || a === null) {
        this.lastUsed[i] = NONE;
        continue;
      }
      // Ring fields are little-endian (VERSION_1, the only layout a vhost-user front-end speaks).
      const avail = this.u16(a.driverAddr + SplitLayout.AVAIL_IDX);
      const used = this.u16(a.deviceAddr + SplitLayout.USED_IDX);
      if (avail === used) {
        this.lastUsed[i] = NONE; // nothing outstanding
        continue;
      }
      if (this.lastUsed[i] === used) {
        // Buffers out and none used for a whole period: notify again and look for used ones.
        this.kicks++;
        this.host.kick(i);
        this.host.deliverUsed(i);
      }
      this.lastUsed[i] = used;
    }
  }

  private u16(addr: number): number {
    this.host.memory.read(addr, this.bytes);
    return this.bytes[0]! | (this.bytes[1]! << 8);
  }

  /** Stops the timer. Idempotent. */
  stop(): void {
    clearInterval(this.timer);
  }
}

/** `periodMs` when it is a period in ms (0: off); else INVALID_ARGUMENT. */
export function checkStallPeriod(periodMs: number): number {
  if (!(Number.isFinite(periodMs) && periodMs >= 0)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `stallKickMs ${periodMs} is not a period in ms`);
  return periodMs;
}

/** A stall watch over `host` every `periodMs` ms, or null when `periodMs` is 0 (off). */
export function startStallWatch(periodMs: number, host: StallWatchHost): FrontendStallWatch | null {
  return checkStallPeriod(periodMs) > 0 ? new FrontendStallWatch(host, periodMs) : null;
}
