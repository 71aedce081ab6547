/**
 * 5.23.6.5 Alarm Operation, device side: one alarm a clock (time, enabled), the expiration
 * events and their notifications on the alarmq. Alarm times and enabled states are retained
 * across device resets (device/rtc/53); an enabled alarm whose time has passed expires at the
 * reset (device/rtc/62). The device checks alarms from one timer a clock, each wait bounded
 * (MAX_ALARM_WAIT_MS) so a clock that steps is seen within that bound (or at once when the host
 * calls `RtcDevice.checkAlarms`).
 */
import type { QueueServer, QueueRequest } from '../../device/queue-server.js';
import { ChainCursor } from '../../queue/chain.js';
import { RtcMsg, RtcNotif } from '../../spec/rtc.js';
import { type RtcClockReader, type RtcClockSpec, U64 } from './rtc-clocks.js';

/** The longest a timer waits before it looks at the clock again. */
export const MAX_ALARM_WAIT_MS = 10_000;

/** Timers (tests inject their own). */
export interface RtcTimers {
  /** Runs `fn` after `ms` milliseconds; returns a handle for `clear`. */
  set(fn: () => void, ms: number): unknown;
  /** Cancels the timer `handle` from `set` (fired or not). */
  clear(handle: unknown): void;
}

/**
 * Node's timers. They keep the process alive while an alarm is enabled (an alarm someone waits
 * for must fire); `RtcDevice.close()` stops them.
 */
export const HOST_TIMERS: RtcTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

class ClockAlarm {
  readonly time = new U64();
  enabled = false;
  /** Serving an expiration event: a notification is owed (device/rtc/63, /64). */
  pending = false;
  /** The clock was at or past the alarm time when last looked at. */
  reached = false;
  timer: unknown = null;
}

export class RtcAlarms {
  private readonly alarms: (ClockAlarm | null)[];
  /** alarmq buffers waiting for a notification (at most the queue size). */
  private buffers: QueueRequest[] = [];
  private le = true;
  /** ALARM negotiated and the device live: notifications can be sent. */
  private live = false;
  private readonly now = new U64();
  private readonly out = new Uint8Array(RtcNotif.SIZE);
  private readonly view = new DataView(this.out.buffer);
  private readonly writer = new ChainCursor(true);
  /** Notifications sent so far. */
  notificationsSent = 0;
  private closed = false;
  /** The alarmq handler: the buffer waits for a notification. */
  readonly serve = (req: QueueRequest): number | void => this.take(req);

  constructor(
    private readonly clocks: readonly RtcClockSpec[],
    private readonly reader: RtcClockReader,
    private readonly timers: RtcTimers,
    private readonly server: QueueServer,
  ) {
    this.alarms = clocks.map((c) => (c.alarm === true ? new ClockAlarm() : null));
  }

  /** alarmq buffers waiting for a notification. */
  get buffersWaiting(): number {
    return this.buffers.length;
  }

  /** Whether clock `id` has an alarm. */
  supports(id: number): boolean {
    return this.alarms[id] != null;
  }

  /** The alarm of clock `id` (time into `out`); its enabled flag. */
  read(id: number, out: U64): boolean {
    const a = this.alarms[id]!;
    out.copy(a.time);
    return a.enabled;
  }

  /** Whether clock `id` is serving an expiration event (a notification is owed). */
  isPending(id: number): boolean {
    return this.alarms[id]?.pending === true;
  }

  /**
   * SET_ALARM: the time and enabled state. Any previous expiration stops being served
   * (device/rtc/68 when disabling, /69 allowed otherwise); one that is due expires now (/60).
   */
  set(id: number, hi: number, lo: number, enabled: boolean): void {
    const a = this.alarms[id]!;
    a.time.hi = hi;
    a.time.lo = lo;
    a.enabled = enabled;
    a.pending = false;
    a.reached = false;
    this.check(id, enabled);
  }

  /** SET_ALARM_ENABLED: the time is kept (device/rtc/83); enabling a due alarm expires it (/61). */
  setEnabled(id: number, enabled: boolean): void {
    const a = this.alarms[id]!;
    if (!enabled) a.pending = false; // device/rtc/68: before the response is used
    const was = a.enabled;
    a.enabled = enabled;
    if (enabled && !was) this.check(id, true);
    else if (!enabled) this.disarm(a);
  }

  /** The device went live (DRIVER_OK) with `alarmq` serving, or not (ALARM not negotiated). */
  activate(littleEndian: boolean, alarmNegotiated: boolean): void {
    this.le = littleEndian;
    this.live = alarmNegotiated;
    this.deliver();
  }

  /** Device reset: buffers go back to the driver, alarms stay (device/rtc/53). */
  reset(): void {
    this.buffers = [];
    this.live = false;
    // device/rtc/62: a retained, enabled alarm that is due expires at the reset.
    for (let id = 0; id < this.alarms.length; id++) if (this.alarms[id]?.enabled) this.check(id, true);
  }

  /** The alarmq stopped (queue reset): its buffers are gone. */
  queueStopped(): void {
    this.buffers = [];
  }

  /** Stops every timer for good (the device is dropped). */
  close(): void {
    this.closed = true;
    for (const a of this.alarms) if (a) this.disarm(a);
  }

  /** Looks at every enabled alarm now (after a clock step the host knows of, and from reads). */
  checkAll(): void {
    for (let id = 0; id < this.alarms.length; id++) if (this.alarms[id]?.enabled) this.check(id);
  }

  /**
   * Looks at clock `id`'s alarm. An expiration event (device/rtc/59) is the clock getting from
   * before the alarm time to it or past it while enabled; `event` forces one when the clock is
   * already there (SET_ALARM enabling, /60; enabling, /61; a device reset, /62). A new event
   * replaces one still being served (/71: a single notification). A clock found before the
   * alarm time (again) drops a stale event (/70). Enabled alarms keep a timer: until the time,
   * or (once reached) to notice a clock stepping back.
   */
  check(id: number, event = false): void {
    const a = this.alarms[id];
    if (!a || this.closed) return;
    this.disarm(a);
    if (!this.reader.read(this.clocks[id]!, this.now)) return;
    const left = a.time.minusNs(this.now);
    const due = left <= 0;
    if (a.enabled && due && (event || !a.reached)) {
      a.pending = true;
      this.deliver();
    }
    if (!due) a.pending = false;
    a.reached = due;
    if (!a.enabled) return;
    const wait = due ? MAX_ALARM_WAIT_MS : Math.max(1, Math.min(MAX_ALARM_WAIT_MS, Math.ceil(left / 1e6)));
    a.timer = this.timers.set(() => {
      a.timer = null;
      this.check(id);
    }, wait);
  }

  private disarm(a: ClockAlarm): void {
    if (a.timer !== null) this.timers.clear(a.timer);
    a.timer = null;
  }

  private take(req: QueueRequest): number | void {
    const chain = req.chain;
    // driver/rtc/11: a buffer without room for a notification cannot carry one.
    if (chain.fault !== null || chain.writableBytes < RtcNotif.SIZE) return 0;
    this.buffers.push(req);
    this.deliver();
  }

  /** One notification per event being served, as buffers allow (device/rtc/64). */
  private deliver(): void {
    if (!this.live) return;
    for (let id = 0; id < this.alarms.length && this.buffers.length > 0; id++) {
      const a = this.alarms[id];
      if (!a?.pending) continue;
      let req = this.buffers.shift()!;
      while (!this.server.isLive(req)) {
        if (this.buffers.length === 0) return;
        req = this.buffers.shift()!;
      }
      a.pending = false;
      this.out.fill(0);
      this.view.setUint16(RtcNotif.MSG_TYPE, RtcMsg.NOTIF_ALARM, this.le);
      this.view.setUint16(RtcNotif.CLOCK_ID, id, this.le);
      this.notificationsSent++;
      this.server.complete(req, this.writer.reset(req.chain).write(this.out));
    }
  }
}
