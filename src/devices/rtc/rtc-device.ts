/**
 * 5.23 RTC Device, device side: a fixed set of clocks (UTC, TAI, monotonic, smeared; see
 * rtc-clocks.ts) read through the requestq, and with VIRTIO_RTC_F_ALARM an alarm per clock
 * that supports one, its expirations notified on the alarmq (rtc-alarms.ts).
 *
 * Cross-timestamping (READ_CROSS) is not offered: a Node process cannot read the driver's
 * hardware counter (TSC, CNTVCT) at the instant it reads a clock, so CROSS_CAP answers "no" for
 * every counter and READ_CROSS is EOPNOTSUPP (device/rtc/39, /49).
 *
 * Requests complete synchronously in ring order, so reads of a clock are obtained and used in
 * the order the driver made them available (device/rtc/41, /42). Nothing is allocated per
 * request: one request and one response scratch buffer, pooled queue requests, ChainCursor.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  RTC_CONFIG_SIZE,
  RTC_HEAD_SIZE,
  RTC_MESSAGE_SIZES,
  RtcClockType,
  RtcCounter,
  RtcF,
  RtcFlag,
  RtcMsg,
  RtcQueue,
  RtcReq,
  RtcResp,
  RtcSmear,
  RtcStatus,
} from '../../spec/rtc.js';
import { HOST_TIMERS, RtcAlarms, type RtcTimers } from './rtc-alarms.js';
import { HOST_TIME_SOURCE, type LeapSecondTable, RtcClockReader, type RtcClockSpec, type RtcTimeSource, U64, systemLeapSeconds } from './rtc-clocks.js';

/** Options of RtcDevice. */
export interface RtcDeviceOptions {
  /**
   * The clocks, clock id = index (device/rtc/18: dense from 0). Default: UTC and MONOTONIC with
   * alarms, plus TAI and UTC_SMEARED (NOON_LINEAR) when the leap second table is current.
   */
  clocks?: readonly RtcClockSpec[];
  /** Leap seconds for TAI and the smeared clocks. Default: the system's tzdata list. */
  leapSeconds?: LeapSecondTable | null;
  /** Offer VIRTIO_RTC_F_ALARM when some clock has an alarm (device/rtc/1). Default true. */
  alarms?: boolean;
  /** Where the clocks are read. Default: the host (Date.now, performance.now). */
  timeSource?: RtcTimeSource;
  /** What schedules alarm checks. Default: Node's timers. */
  timers?: RtcTimers;
  /** Maximum size of each queue. Default 64. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** Clock types this device can read. */
const KNOWN_TYPES = new Set<number>(Object.values(RtcClockType));
const MAX_CLOCKS = 0xffff;

/** The default clock set (see RtcDeviceOptions.clocks). */
export function defaultRtcClocks(leaps: LeapSecondTable | null, nowSeconds = Date.now() / 1000): RtcClockSpec[] {
  const clocks: RtcClockSpec[] = [
    { type: RtcClockType.UTC, alarm: true },
    { type: RtcClockType.MONOTONIC, alarm: true },
  ];
  // An expired table may miss a leap second announced since: TAI and smearing would be wrong.
  if (leaps !== null && leaps.expires > nowSeconds) {
    clocks.push({ type: RtcClockType.TAI }, { type: RtcClockType.UTC_SMEARED, smearing: RtcSmear.NOON_LINEAR });
  }
  return clocks;
}

/**
 * The virtio-rtc device (5.23): clocks (UTC, TAI, monotonic, smeared UTC) with alarms. What it
 * implements and its normative coverage: docs/devices/rtc.md.
 */
export class RtcDevice implements VirtioDevice {
  readonly deviceId = DeviceId.RTC;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = RTC_CONFIG_SIZE;
  /** The clocks provided; clock id = index. */
  readonly clocks: readonly RtcClockSpec[];

  private readonly reader: RtcClockReader;
  private readonly alarms: RtcAlarms;
  private readonly server: QueueServer;
  private le = true;
  private alarmNegotiated = false;
  private readonly cursor = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly req = new Uint8Array(24);
  private readonly reqView = new DataView(this.req.buffer);
  private readonly resp = new Uint8Array(24);
  private readonly respView = new DataView(this.resp.buffer);
  private readonly reading = new U64();
  /** Responses by status (index = status value), for tests and stats. */
  readonly statuses = [0, 0, 0, 0, 0, 0];

  constructor(opts: RtcDeviceOptions = {}) {
    const leaps = opts.leapSeconds === undefined ? systemLeapSeconds() : opts.leapSeconds;
    this.clocks = Object.freeze([...(opts.clocks ?? defaultRtcClocks(leaps))]);
    if (this.clocks.length > MAX_CLOCKS) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-rtc: ${this.clocks.length} clocks (at most ${MAX_CLOCKS})`);
    for (const c of this.clocks) {
      if (!KNOWN_TYPES.has(c.type)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-rtc: unknown clock type ${c.type}`);
      if ((c.type === RtcClockType.TAI || c.type === RtcClockType.UTC_SMEARED) && leaps === null) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-rtc: TAI and smeared clocks need a leap second table');
      }
      if (c.smearing !== undefined && (c.type !== RtcClockType.UTC_SMEARED || (c.smearing !== RtcSmear.NOON_LINEAR && c.smearing !== RtcSmear.UTC_SLS))) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-rtc: smearing ${c.smearing} on a clock of type ${c.type}`);
      }
    }
    const qs = opts.queueSize ?? 64;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-rtc: queue size ${qs} not in 1..32768`);
    const withAlarm = opts.alarms !== false && this.clocks.some((c) => c.alarm === true);
    this.offeredFeatures = (withAlarm ? RtcF.ALARM : 0n) | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
    // The alarmq exists only with ALARM (5.23.2).
    this.queueMaxSizes = withAlarm ? [qs, qs] : [qs];
    this.reader = new RtcClockReader(opts.timeSource ?? HOST_TIME_SOURCE, leaps);
    const serve = (r: QueueRequest): number => this.serve(r);
    this.server = new QueueServer({
      name: 'virtio-rtc',
      numQueues: this.queueMaxSizes.length,
      logger: opts.logger,
      handler: (i) => (i === RtcQueue.REQUEST ? serve : i === RtcQueue.ALARM ? this.alarms.serve : null),
      queueStopped: (i) => {
        if (i === RtcQueue.ALARM) this.alarms.queueStopped();
      },
    });
    this.alarms = new RtcAlarms(this.clocks, this.reader, opts.timers ?? HOST_TIMERS, this.server);
  }

  /** Alarm notifications sent so far. */
  get alarmNotifications(): number {
    return this.alarms.notificationsSent;
  }

  /** alarmq buffers the driver made available that wait for a notification. */
  get alarmBuffersWaiting(): number {
    return this.alarms.buffersWaiting;
  }

  /** Whether clock `id` owes the driver an alarm notification. */
  alarmPending(id: number): boolean {
    return this.alarms.isPending(id);
  }

  /** The host saw its clock step (or wants alarms looked at now): checks every enabled alarm. */
  checkAlarms(): void {
    this.alarms.checkAll();
  }

  /** Stops the alarm timers (the host drops the device). */
  close(): void {
    this.alarms.close();
  }

  readConfig(_offset: number, dst: Uint8Array): void {
    dst.fill(0); // 5.23.4: no configuration
  }

  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.le = ctx.littleEndian;
    this.alarmNegotiated = (ctx.features & RtcF.ALARM) !== 0n;
    this.server.activate(ctx);
    this.alarms.activate(ctx.littleEndian, this.alarmNegotiated);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  /** Device reset: queues stop; the clock set and the alarms stay (device/rtc/18, /53). */
  reset(): void {
    this.server.reset();
    this.alarmNegotiated = false;
    this.alarms.reset();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }

  // ---- requests (5.23.6) ----------------------------------------------------------------------

  private serve({ chain }: QueueRequest): number {
    if (chain.fault !== null) return 0;
    const r = this.req;
    const got = this.cursor.reset(chain).read(r, 0, r.length);
    this.resp.fill(0); // device/rtc/15: reserved fields zero
    let len: number = RTC_HEAD_SIZE;
    let status: number;
    if (got < 2) status = RtcStatus.EINVAL; // no msg_type: the request does not fit (device/rtc/9)
    else {
      const type = this.reqView.getUint16(0, this.le);
      const sizes = RTC_MESSAGE_SIZES[type];
      if (sizes === undefined) status = RtcStatus.EOPNOTSUPP; // device/rtc/5
      else if (chain.readableBytes < sizes.request) status = RtcStatus.EINVAL; // device/rtc/9
      else if (chain.writableBytes < sizes.response) status = RtcStatus.EINVAL; // device/rtc/10
      else {
        // device/rtc/13: bytes past the request are ignored (only sizes.request were looked at).
        try {
          status = this.execute(type, sizes.request);
        } catch {
          status = RtcStatus.EIO; // device/rtc/12: a failure that is not the driver's
        }
        if (status === RtcStatus.OK) len = sizes.response;
      }
    }
    this.resp[RtcResp.STATUS] = status;
    this.statuses[status]!++;
    // device/rtc/11: no room even for the status: nothing is written. /14: no more than the
    // response is written into a larger buffer.
    return this.writer.reset(chain).write(this.resp, 0, Math.min(len, chain.writableBytes));
  }

  /** Runs one well-sized request; fills the response after the head; returns the status. */
  private execute(type: number, requestSize: number): RtcStatus {
    const v = this.reqView;
    const le = this.le;
    // device/rtc/8: reserved bytes of the request must be zero (driver/rtc/2).
    if (!this.reservedZero(type, requestSize)) return RtcStatus.EINVAL;
    if (type === RtcMsg.CFG) {
      this.respView.setUint16(RtcResp.NUM_CLOCKS, this.clocks.length, le);
      return RtcStatus.OK;
    }
    const isAlarm = type === RtcMsg.READ_ALARM || type === RtcMsg.SET_ALARM || type === RtcMsg.SET_ALARM_ENABLED;
    // device/rtc/57, /72: no alarm messages without ALARM.
    if (isAlarm && !this.alarmNegotiated) return RtcStatus.ENODEV;
    const id = v.getUint16(type === RtcMsg.SET_ALARM ? RtcReq.SET_ALARM_CLOCK_ID : RtcReq.CLOCK_ID, le);
    const clock = this.clocks[id];
    if (clock === undefined) return RtcStatus.ENODEV; // device/rtc/7
    if (isAlarm && !this.alarms.supports(id)) return RtcStatus.ENODEV; // device/rtc/73
    switch (type) {
      case RtcMsg.READ:
        // device/rtc/44, /45, /46: read now, after the request was made available, in ns.
        if (!this.reader.read(clock, this.reading)) return RtcStatus.EIO;
        this.writeU64(RtcResp.CLOCK_READING, this.reading);
        return RtcStatus.OK;
      case RtcMsg.CLOCK_CAP: {
        const r = this.resp;
        r[RtcResp.CLOCK_TYPE] = clock.type;
        // device/rtc/37, /38: a smearing variant only for UTC_SMEARED.
        r[RtcResp.SMEARING] = clock.type === RtcClockType.UTC_SMEARED ? (clock.smearing ?? RtcSmear.NOON_LINEAR) : RtcSmear.UNSPECIFIED;
        // device/rtc/16, /58: ALARM_CAP only with ALARM negotiated and an alarm on the clock.
        r[RtcResp.CLOCK_FLAGS] = this.alarmNegotiated && this.alarms.supports(id) ? RtcFlag.ALARM_CAP : 0;
        return RtcStatus.OK;
      }
      case RtcMsg.CROSS_CAP: {
        const counter = this.counterStatus(v.getUint8(RtcReq.HW_COUNTER));
        if (counter !== RtcStatus.OK) return counter;
        this.resp[RtcResp.CROSS_FLAGS] = 0; // device/rtc/39: READ_CROSS would not be OK
        return RtcStatus.OK;
      }
      case RtcMsg.READ_CROSS: {
        const counter = this.counterStatus(v.getUint8(RtcReq.HW_COUNTER));
        // device/rtc/4, /49: the driver's counter at the reading cannot be known here.
        return counter !== RtcStatus.OK ? counter : RtcStatus.EOPNOTSUPP;
      }
      case RtcMsg.READ_ALARM: {
        const enabled = this.alarms.read(id, this.reading);
        this.writeU64(RtcResp.ALARM_TIME, this.reading); // device/rtc/74, /76
        this.resp[RtcResp.ALARM_FLAGS] = enabled ? RtcFlag.ALARM_ENABLED : 0; // device/rtc/75
        return RtcStatus.OK;
      }
      case RtcMsg.SET_ALARM: {
        const flags = v.getUint8(RtcReq.SET_ALARM_FLAGS);
        if ((flags & ~RtcFlag.ALARM_ENABLED) !== 0) return RtcStatus.EINVAL;
        // device/rtc/77, /78: any alarm_time, taken as is.
        const hi = v.getUint32(RtcReq.SET_ALARM_TIME + (le ? 4 : 0), le);
        const lo = v.getUint32(RtcReq.SET_ALARM_TIME + (le ? 0 : 4), le);
        this.alarms.set(id, hi, lo, flags !== 0); // device/rtc/79, /80
        return RtcStatus.OK;
      }
      case RtcMsg.SET_ALARM_ENABLED: {
        const flags = v.getUint8(RtcReq.ENABLED_FLAGS);
        if ((flags & ~RtcFlag.ALARM_ENABLED) !== 0) return RtcStatus.EINVAL;
        this.alarms.setEnabled(id, flags !== 0); // device/rtc/81, /82, /83
        return RtcStatus.OK;
      }
      default:
        return RtcStatus.EOPNOTSUPP;
    }
  }

  /**
   * hw_counter: the ones the spec defines are known (OK to ask about); 0xFF (INVALID) is not a
   * value a driver may send (EINVAL); every other value is neither described nor known here
   * (EOPNOTSUPP, device/rtc/6), the implementation-specific range 0xF0..0xFE included.
   */
  private counterStatus(counter: number): RtcStatus {
    if (counter === RtcCounter.ARM_VCT || counter === RtcCounter.X86_TSC) return RtcStatus.OK;
    if (counter === RtcCounter.INVALID) return RtcStatus.EINVAL;
    // 0xF0..0xFE are implementation-specific counters, none of which this device knows.
    return RtcStatus.EOPNOTSUPP;
  }

  /** Whether the reserved bytes of a `type` request (header bytes 2..7, and per type) are zero. */
  private reservedZero(type: number, size: number): boolean {
    const r = this.req;
    for (let i = 2; i < RTC_HEAD_SIZE; i++) if (r[i] !== 0) return false;
    // First reserved byte after the request-specific fields.
    let from: number;
    switch (type) {
      case RtcMsg.CFG:
        return true;
      case RtcMsg.SET_ALARM:
        from = RtcReq.SET_ALARM_FLAGS + 1;
        break;
      case RtcMsg.READ_CROSS:
      case RtcMsg.CROSS_CAP:
      case RtcMsg.SET_ALARM_ENABLED:
        from = 11;
        break;
      default:
        from = 10; // READ, CLOCK_CAP, READ_ALARM: le16 clock_id, then reserved
    }
    for (let i = from; i < size; i++) if (r[i] !== 0) return false;
    return true;
  }

  private writeU64(at: number, v: U64): void {
    this.respView.setUint32(at + (this.le ? 0 : 4), v.lo, this.le);
    this.respView.setUint32(at + (this.le ? 4 : 0), v.hi, this.le);
  }
}
