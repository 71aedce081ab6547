/**
 * 5.23 RTC Device, driver side: discovers the clocks (CFG, CLOCK_CAP), reads them (READ,
 * READ_CROSS where CROSS_CAP says so), and with VIRTIO_RTC_F_ALARM sets alarms and keeps the
 * alarmq populated, reading the clock when a notification arrives (driver/rtc/12). Every
 * request goes through a RequestQueue; response fields other than the status are read only for
 * VIRTIO_RTC_S_OK (driver/rtc/1), and only the flag bits the negotiated features allow
 * (driver/rtc/5). Readings and alarm times are nanoseconds as bigint (64 bits exactly).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  RTC_COUNTER_IMPL_FIRST,
  RTC_COUNTER_IMPL_LAST,
  RTC_FEATURES,
  RTC_MESSAGE_SIZES,
  RtcCounter,
  RtcF,
  RtcFlag,
  RtcMsg,
  RtcNotif,
  RtcQueue,
  RtcReq,
  RtcResp,
  RtcStatus,
  type RtcClockType,
  type RtcSmear,
} from '../../spec/rtc.js';

/** Options of RtcDriver. */
export interface RtcDriverOptions {
  /** alarmq buffers kept available (driver/rtc/10). Default 4. */
  alarmBuffers?: number;
}

/** What CLOCK_CAP says of one clock. */
export interface RtcClockInfo {
  /** Clock id (0..num_clocks-1, 5.22.4). */
  readonly id: number;
  /** What the clock counts: UTC, TAI, MONOTONIC, UTC_SMEARED, UTC_MAYBE_SMEARED. */
  readonly type: RtcClockType;
  /** How a UTC_SMEARED clock spreads leap seconds (NOON_LINEAR, UTC_SLS); meaningless for other types. */
  readonly smearing: RtcSmear;
  /** The clock supports an alarm (ALARM_CAP, only with ALARM negotiated). */
  readonly alarm: boolean;
}

/** An alarm notification and the clock read after it (driver/rtc/12). */
export interface RtcAlarmEvent {
  /** The clock whose alarm fired. */
  readonly clockId: number;
  /** The clock as read after the notification arrived (ns), or null when the read failed. */
  readonly reading: bigint | null;
}

/** The device answered a request with a status other than OK. */
export class RtcRequestError extends VirtioError {
  constructor(
    /** VIRTIO_RTC_REQ_* of the request refused. */
    readonly msgType: number,
    /** VIRTIO_RTC_S_*: EOPNOTSUPP, ENODEV, EINVAL or EIO. */
    readonly status: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-rtc: request 0x${msgType.toString(16)} failed with status ${status}`);
  }
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * The virtio-rtc driver (5.23): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class RtcDriver implements DeviceDriver {
  /** The DeviceDriver contract: RTC devices; ALARM is used when offered. */
  static readonly type: DeviceDriverType<RtcDriver, RtcDriverOptions> = {
    name: 'virtio-rtc',
    deviceId: DeviceId.RTC,
    wantedFeatures: RTC_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new RtcDriver(ctx, opts),
  };

  private readonly ctx: DriverContext;
  private readonly requests: RequestQueue;
  private readonly alarmq: RequestQueue | null;
  private readonly alarmBuffers: number;
  private readonly listeners: ((e: RtcAlarmEvent) => void)[] = [];
  private readonly events: RtcAlarmEvent[] = [];
  private waiters: ((e: RtcAlarmEvent) => void)[] = [];
  private clockList: RtcClockInfo[] = [];
  private detached = false;

  constructor(ctx: DriverContext, opts: RtcDriverOptions = {}) {
    checkDriverContext(RtcDriver.type, ctx);
    this.ctx = ctx;
    this.requests = new RequestQueue(ctx, RtcQueue.REQUEST);
    this.alarmq = (ctx.features & RtcF.ALARM) !== 0n ? new RequestQueue(ctx, RtcQueue.ALARM) : null;
    this.alarmBuffers = opts.alarmBuffers ?? 4;
    if (!Number.isInteger(this.alarmBuffers) || this.alarmBuffers < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad alarmBuffers ${this.alarmBuffers}`);
  }

  /** Whether ALARM was negotiated. */
  get alarmSupported(): boolean {
    return this.alarmq !== null;
  }

  /** The clocks found by `start`. */
  get clocks(): readonly RtcClockInfo[] {
    return this.clockList;
  }

  /**
   * Discovers the clocks; with ALARM, clears every alarm (SET_ALARM 0, disabled: the
   * 5.23.6.5 procedure against alarms left from before the reset) and only then populates
   * the alarmq (driver/rtc/10), unless `keepAlarms`.
   */
  async start(keepAlarms = false): Promise<readonly RtcClockInfo[]> {
    const n = (await this.request(RtcMsg.CFG, () => {})).getUint16(RtcResp.NUM_CLOCKS, this.ctx.littleEndian);
    const list: RtcClockInfo[] = [];
    for (let id = 0; id < n; id++) list.push(await this.clockCap(id));
    this.clockList = list;
    if (this.alarmq) {
      if (!keepAlarms) for (const c of list) if (c.alarm) await this.setAlarm(c.id, 0n, false);
      for (let i = 0; i < this.alarmBuffers; i++) this.postAlarmBuffer();
    }
    return list;
  }

  /** CLOCK_CAP of clock `id`. */
  async clockCap(id: number): Promise<RtcClockInfo> {
    const v = await this.request(RtcMsg.CLOCK_CAP, (w) => w.setUint16(RtcReq.CLOCK_ID, id, this.ctx.littleEndian));
    // driver/rtc/5: ALARM_CAP means something only with ALARM negotiated.
    const alarm = this.alarmq !== null && (v.getUint8(RtcResp.CLOCK_FLAGS) & RtcFlag.ALARM_CAP) !== 0;
    return { id, type: v.getUint8(RtcResp.CLOCK_TYPE) as RtcClockType, smearing: v.getUint8(RtcResp.SMEARING) as RtcSmear, alarm };
  }

  /** READ: clock `id` in nanoseconds. */
  async read(id: number): Promise<bigint> {
    const v = await this.request(RtcMsg.READ, (w) => w.setUint16(RtcReq.CLOCK_ID, id, this.ctx.littleEndian));
    return v.getBigUint64(RtcResp.CLOCK_READING, this.ctx.littleEndian);
  }

  /** CROSS_CAP: whether READ_CROSS works for clock `id` and `counter`. */
  async crossCap(id: number, counter: number): Promise<boolean> {
    checkCounter(counter);
    const v = await this.request(RtcMsg.CROSS_CAP, (w) => {
      w.setUint16(RtcReq.CLOCK_ID, id, this.ctx.littleEndian);
      w.setUint8(RtcReq.HW_COUNTER, counter);
    });
    return (v.getUint8(RtcResp.CROSS_FLAGS) & RtcFlag.CROSS_CAP) !== 0;
  }

  /** READ_CROSS: the clock and the counter value at the reading. */
  async readCross(
    id: number,
    counter: number,
  ): Promise<{
    /** The clock reading (ns). */
    reading: bigint;
    /** The hardware counter's value at that reading (counter cycles). */
    counterCycles: bigint;
  }> {
    checkCounter(counter);
    const v = await this.request(RtcMsg.READ_CROSS, (w) => {
      w.setUint16(RtcReq.CLOCK_ID, id, this.ctx.littleEndian);
      w.setUint8(RtcReq.HW_COUNTER, counter);
    });
    return { reading: v.getBigUint64(RtcResp.CLOCK_READING, this.ctx.littleEndian), counterCycles: v.getBigUint64(RtcResp.COUNTER_CYCLES, this.ctx.littleEndian) };
  }

  /** READ_ALARM: the alarm time (ns) and whether it is enabled. */
  async readAlarm(id: number): Promise<{
    /** The alarm time, in nanoseconds of the clock. */
    time: bigint;
    /** Whether the alarm is armed (VIRTIO_RTC_FLAG_ALARM_ENABLED). */
    enabled: boolean;
  }> {
    this.requireAlarm();
    const v = await this.request(RtcMsg.READ_ALARM, (w) => w.setUint16(RtcReq.CLOCK_ID, id, this.ctx.littleEndian));
    return { time: v.getBigUint64(RtcResp.ALARM_TIME, this.ctx.littleEndian), enabled: (v.getUint8(RtcResp.ALARM_FLAGS) & RtcFlag.ALARM_ENABLED) !== 0 };
  }

  /** SET_ALARM: `time` in nanoseconds of the clock (driver/rtc/9), enabled or not. */
  async setAlarm(id: number, time: bigint, enabled: boolean): Promise<void> {
    this.requireAlarm();
    if (time < 0n || time > U64_MAX) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-rtc: alarm time ${time} is not a u64`);
    await this.request(RtcMsg.SET_ALARM, (w) => {
      w.setBigUint64(RtcReq.SET_ALARM_TIME, time, this.ctx.littleEndian);
      w.setUint16(RtcReq.SET_ALARM_CLOCK_ID, id, this.ctx.littleEndian);
      w.setUint8(RtcReq.SET_ALARM_FLAGS, enabled ? RtcFlag.ALARM_ENABLED : 0);
    });
  }

  /** SET_ALARM_ENABLED (the alarm time stays). */
  async setAlarmEnabled(id: number, enabled: boolean): Promise<void> {
    this.requireAlarm();
    await this.request(RtcMsg.SET_ALARM_ENABLED, (w) => {
      w.setUint16(RtcReq.CLOCK_ID, id, this.ctx.littleEndian);
      w.setUint8(RtcReq.ENABLED_FLAGS, enabled ? RtcFlag.ALARM_ENABLED : 0);
    });
  }

  /** Calls `cb` for every alarm notification (after the clock was read). */
  onAlarm(cb: (e: RtcAlarmEvent) => void): void {
    this.listeners.push(cb);
  }

  /** The next alarm notification (one already received and not taken first). The caller bounds the wait. */
  nextAlarm(): Promise<RtcAlarmEvent> {
    const e = this.events.shift();
    if (e) return Promise.resolve(e);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  detach(): void {
    this.detached = true;
    this.requests.detach();
    this.alarmq?.detach();
  }

  private requireAlarm(): void {
    if (!this.alarmq) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'virtio-rtc: VIRTIO_RTC_F_ALARM was not negotiated');
  }

  /**
   * One request of `type`: its fields written by `fill` into a zeroed buffer of the request's
   * size (driver/rtc/2: reserved bytes zero), a response buffer of the response's size
   * (driver/rtc/6). Resolves with a view of the response when the status is OK; throws
   * RtcRequestError otherwise (driver/rtc/1).
   */
  private async request(type: number, fill: (w: DataView) => void): Promise<DataView> {
    const sizes = RTC_MESSAGE_SIZES[type]!;
    const req = new Uint8Array(sizes.request);
    const w = new DataView(req.buffer);
    w.setUint16(0, type, this.ctx.littleEndian);
    fill(w);
    const reqAddr = this.ctx.dma.alloc(sizes.request, 8);
    const respAddr = this.ctx.dma.alloc(sizes.response, 8);
    try {
      this.ctx.memory.write(reqAddr, req);
      // A response the device did not write reads as status 0xff, never as OK.
      this.ctx.memory.fill(respAddr, sizes.response, 0xff);
      await this.requests.submit([{ addr: reqAddr, len: sizes.request }], [{ addr: respAddr, len: sizes.response }]);
      const resp = new Uint8Array(sizes.response);
      this.ctx.memory.read(respAddr, resp);
      const status = resp[RtcResp.STATUS]!;
      if (status !== RtcStatus.OK) throw new RtcRequestError(type, status);
      // driver/rtc/4: reserved bytes are never looked at (only named fields are read).
      return new DataView(resp.buffer);
    } finally {
      this.ctx.dma.free(reqAddr);
      this.ctx.dma.free(respAddr);
    }
  }

  /** One alarmq buffer (driver/rtc/11: room for a whole notification); re-posted when used. */
  private postAlarmBuffer(): void {
    const q = this.alarmq;
    if (!q || this.detached) return;
    const addr = this.ctx.dma.alloc(RtcNotif.SIZE, 8);
    // Filled with 0xff: a buffer the device returns unwritten has no NOTIF_ALARM type.
    this.ctx.memory.fill(addr, RtcNotif.SIZE, 0xff);
    q.submit([], [{ addr, len: RtcNotif.SIZE }]).then(
      () => {
        const b = new Uint8Array(RtcNotif.SIZE);
        this.ctx.memory.read(addr, b);
        this.ctx.dma.free(addr);
        this.postAlarmBuffer();
        const v = new DataView(b.buffer);
        if (v.getUint16(RtcNotif.MSG_TYPE, this.ctx.littleEndian) === RtcMsg.NOTIF_ALARM) {
          void this.alarmed(v.getUint16(RtcNotif.CLOCK_ID, this.ctx.littleEndian));
        }
      },
      () => this.ctx.dma.free(addr), // stopped (reset, detach): the buffer is the driver's again
    );
  }

  /** driver/rtc/12: the clock is read rather than assuming the alarm time was reached. */
  private async alarmed(clockId: number): Promise<void> {
    let reading: bigint | null = null;
    try {
      reading = await this.read(clockId);
    } catch {
      reading = null;
    }
    const e: RtcAlarmEvent = { clockId, reading };
    for (const l of this.listeners) l(e);
    const w = this.waiters.shift();
    if (w) w(e);
    else if (this.events.length < 64) this.events.push(e);
  }
}

/** driver/rtc/7, /8: a counter the spec defines, or an implementation-specific one. */
function checkCounter(counter: number): void {
  const ok = counter === RtcCounter.ARM_VCT || counter === RtcCounter.X86_TSC || (counter >= RTC_COUNTER_IMPL_FIRST && counter <= RTC_COUNTER_IMPL_LAST);
  if (!Number.isInteger(counter) || !ok) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-rtc: hw_counter ${counter} is not one a driver may use`);
}
