/**
 * virtio-rtc (5.23): requests on the requestq (msg_type READ, READ_CROSS, CFG, CLOCK_CAP,
 * CROSS_CAP, READ_ALARM, SET_ALARM, SET_ALARM_ENABLED mostly, any u16 sometimes; clock ids
 * among the device's six and the two after mostly, any u16 sometimes; hw_counter ARM_VCT,
 * X86_TSC, INVALID, implementation-specific or any; alarm times around the clock's reading now
 * (before, at, after) or any u64; alarm flags 0/1 or any; reserved bytes zero mostly; the
 * request whole mostly, cut short sometimes, then raw bytes) and buffers on the alarmq, which
 * the device holds for alarm notifications (heldQueues). Between chains the input moves the
 * host's clock (forward, back across a leap second, past alarm times) and fires the device's
 * alarm timers, so expirations and notifications happen while requests are served.
 *
 * The clocks are a fake time source and manual timers, not the host's: readings land in guest
 * memory, and the reuse check compares it byte for byte. The device is built per input
 * (`freshDevice`): alarm times and enabled states are kept across a device reset
 * (device/rtc/53), so a reused device would carry one input's alarms into the next. Checks
 * (device-chains): no throw, every requestq chain completed, used.len within the writable
 * bytes, guards.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import type { RtcTimers } from '../../src/devices/rtc/rtc-alarms.js';
import { type LeapSecondTable, type RtcTimeSource, U64 } from '../../src/devices/rtc/rtc-clocks.js';
import { RtcDevice } from '../../src/devices/rtc/rtc-device.js';
import { RTC_MESSAGE_SIZES, RtcClockType, RtcCounter, RtcMsg, RtcQueue, RtcSmear } from '../../src/spec/rtc.js';

/** The last leap second of the table (2017-01-01): the fake clock starts 500 s before it. */
const LEAP_AT = 1_483_228_800;
const LEAPS: LeapSecondTable = { entries: [{ at: 1_435_708_800, taiMinusUtc: 36 }, { at: LEAP_AT, taiMinusUtc: 37 }], expires: 2 ** 40 };
const CLOCKS = [
  { type: RtcClockType.UTC, alarm: true },
  { type: RtcClockType.MONOTONIC, alarm: true },
  { type: RtcClockType.TAI },
  { type: RtcClockType.UTC_SMEARED, smearing: RtcSmear.NOON_LINEAR },
  { type: RtcClockType.UTC_SMEARED, smearing: RtcSmear.UTC_SLS, alarm: true },
  { type: RtcClockType.UTC_MAYBE_SMEARED },
] as const;
const TYPES = [RtcMsg.READ, RtcMsg.READ_CROSS, RtcMsg.CFG, RtcMsg.CLOCK_CAP, RtcMsg.CROSS_CAP, RtcMsg.READ_ALARM, RtcMsg.SET_ALARM, RtcMsg.SET_ALARM_ENABLED];
const COUNTERS = [RtcCounter.ARM_VCT, RtcCounter.X86_TSC, RtcCounter.INVALID, 0xf0, 0xfe, 2];
/** Clock steps in nanoseconds: forward, and back (a leap second's repeated second, a correction). */
const STEPS = [1_000_000, 500_000_000, 1e9, 60e9, 600e9, 43_200e9, -1e9, -600e9];
/** Alarm times relative to the clock's reading now, in nanoseconds. */
const ALARM_DELTAS = [-1e9, -1, 0, 1, 1_000_000, 20_000_000, 1e9, 60e9];
const U32 = 0x1_0000_0000;
/** Room for an input's 12 chains on the requestq. */
const QUEUE_SIZE = 32;

/** A host clock the input moves (POSIX and monotonic), never below its start. */
class SteppedTime implements RtcTimeSource {
  sec = LEAP_AT - 500;
  ns = 0;
  mono = 5e9;

  realtime(out: Float64Array): void {
    out[0] = this.sec;
    out[1] = this.ns;
  }

  monotonicNs(): number {
    return this.mono;
  }

  step(deltaNs: number): void {
    const total = Math.max(0, (this.sec - (LEAP_AT - 100_000)) * 1e9 + this.ns + deltaNs);
    this.sec = LEAP_AT - 100_000 + Math.floor(total / 1e9);
    this.ns = total % 1e9;
    if (deltaNs > 0) this.mono += deltaNs;
  }
}

/** Timers that run when the input says (all pending ones at once). */
class SteppedTimers implements RtcTimers {
  private pending: { fn: () => void }[] = [];

  set(fn: () => void): unknown {
    const t = { fn };
    this.pending.push(t);
    return t;
  }

  clear(handle: unknown): void {
    const i = this.pending.indexOf(handle as { fn: () => void });
    if (i >= 0) this.pending.splice(i, 1);
  }

  fireAll(): void {
    const due = this.pending;
    this.pending = [];
    for (const t of due) t.fn();
  }
}

const hosts = new WeakMap<object, { time: SteppedTime; timers: SteppedTimers }>();
const scratch = new U64();

/** A host step before the chain: 3 in 4 none; else a clock step with the timers fired, timers only, or checkAlarms. */
function hostStep(r: ByteReader, core: DeviceCore): void {
  const act = r.u8();
  if (act < 0xc0) return;
  const device = core.device as RtcDevice;
  const host = hosts.get(device)!;
  switch (act & 3) {
    case 0:
      host.time.step(r.pick(STEPS));
      host.timers.fireAll();
      break;
    case 1:
      host.time.step(r.pick(STEPS));
      break;
    case 2:
      host.timers.fireAll();
      break;
    default:
      device.checkAlarms();
  }
}

/** An alarm time near clock `id`'s reading now (the monotonic clock's or POSIX time's). */
function alarmTime(w: ByteWriter, r: ByteReader, core: DeviceCore, id: number): void {
  const time = hosts.get(core.device)!.time;
  if (id === 1) scratch.setNs(Math.floor(time.mono / 1e9), time.mono % 1e9);
  else scratch.setNs(time.sec, time.ns);
  const lo = scratch.lo + r.pick(ALARM_DELTAS);
  const carry = Math.floor(lo / U32);
  w.u32(lo - carry * U32).u32((scratch.hi + carry) >>> 0);
}

/**
 * Odd fields (a second byte, one time in four): 1 any msg_type, 2 head reserved bytes raw, 4 any
 * clock id, 8 any flags / hw_counter / alarm time, 16 a reserved byte after the fields set, 32
 * the request cut short.
 */
function header(queue: number, r: ByteReader, core: DeviceCore): Uint8Array {
  hostStep(r, core);
  if (queue === RtcQueue.ALARM) return new Uint8Array(0);
  const odd = r.u8() >= 0xc0 ? r.u8() : 0;
  const type = (odd & 1) !== 0 ? r.u16() : r.pick(TYPES);
  const size = RTC_MESSAGE_SIZES[type]?.request ?? 16;
  const w = new ByteWriter().u16(type);
  const reserved = (odd & 2) !== 0 ? r.bytes(6) : new Uint8Array(0);
  w.bytes(reserved).bytes(new Uint8Array(6 - reserved.length));
  const clock = (odd & 4) !== 0 ? r.u16() : r.below(CLOCKS.length + 2);
  const anyField = (odd & 8) !== 0;
  switch (type) {
    case RtcMsg.SET_ALARM:
      if (anyField) w.u32(r.u32()).u32(r.u32());
      else alarmTime(w, r, core, clock);
      w.u16(clock).u8(anyField ? r.u8() : r.below(2));
      break;
    case RtcMsg.READ_CROSS:
    case RtcMsg.CROSS_CAP:
      w.u16(clock).u8(anyField ? r.u8() : r.pick(COUNTERS));
      break;
    case RtcMsg.SET_ALARM_ENABLED:
      w.u16(clock).u8(anyField ? r.u8() : r.below(2));
      break;
    case RtcMsg.CFG:
      break;
    default:
      w.u16(clock);
  }
  const msg = new Uint8Array(size);
  const fields = w.finish();
  msg.set(fields.subarray(0, size));
  if ((odd & 16) !== 0 && size > 8) msg[Math.min(size - 1, fields.length + r.below(size - fields.length + 1))] = 1 | r.u8();
  return (odd & 32) !== 0 ? msg.subarray(0, r.below(size)) : msg;
}

const spec: DeviceChainsSpec = {
  device: () => {
    const time = new SteppedTime();
    const timers = new SteppedTimers();
    const device = new RtcDevice({ clocks: CLOCKS, leapSeconds: LEAPS, timeSource: time, timers, queueSize: QUEUE_SIZE });
    hosts.set(device, { time, timers });
    const state = (): Uint8Array => {
      const alarms = CLOCKS.map((_, id) => (device.alarmPending(id) ? 1 : 0));
      return new Uint8Array(Float64Array.of(time.sec, time.ns, time.mono, device.alarmNotifications, device.alarmBuffersWaiting, ...device.statuses, ...alarms).buffer);
    };
    return { device, hostState: () => [state()] };
  },
  queues: 2,
  heldQueues: [RtcQueue.ALARM],
  header,
  queueSize: QUEUE_SIZE,
  freshDevice: { dispose: (d) => (d as RtcDevice).close() },
};

/** A requestq chain: no host step, no odd field, then the type's fields. */
function request(type: number, fields: number[], writable: number): SeedChain {
  return { queue: RtcQueue.REQUEST, header: [0, 0, TYPES.indexOf(type as never), ...fields], writable };
}

/** Seeds: a driver's start (CFG, CLOCK_CAP of each clock, CROSS_CAP), reads; an alarm set 20 ms ahead, the clock stepped past it with an alarmq buffer posted; alarm reads and disabling. */
function seeds(): Uint8Array[] {
  const alarmBuffer: SeedChain = { queue: RtcQueue.ALARM, header: [0], writable: 16, emptyMessage: true };
  const stepPast: SeedChain = { queue: RtcQueue.ALARM, header: [0xc0, STEPS.indexOf(1e9)], writable: 16, emptyMessage: true };
  return [
    deviceChainsSeed(true, [
      [request(RtcMsg.CFG, [0], 16), request(RtcMsg.CLOCK_CAP, [0], 16), request(RtcMsg.CLOCK_CAP, [1], 16), request(RtcMsg.CLOCK_CAP, [3], 16)],
      [request(RtcMsg.CROSS_CAP, [0, 1], 16), request(RtcMsg.READ, [0], 16), request(RtcMsg.READ, [2], 16), request(RtcMsg.READ, [4], 16)],
    ], spec),
    deviceChainsSeed(true, [[alarmBuffer, request(RtcMsg.SET_ALARM, [1, ALARM_DELTAS.indexOf(20_000_000), 1], 8)], [stepPast], [request(RtcMsg.READ_ALARM, [1], 64), request(RtcMsg.READ, [1], 16)]], spec),
    deviceChainsSeed(true, [
      [request(RtcMsg.SET_ALARM, [0, ALARM_DELTAS.indexOf(60e9), 1], 8), request(RtcMsg.SET_ALARM_ENABLED, [0, 0], 8), request(RtcMsg.READ_ALARM, [0], 64)],
      [alarmBuffer, request(RtcMsg.READ_CROSS, [0, 1], 64), request(RtcMsg.SET_ALARM_ENABLED, [0, 1], 8)],
    ], spec),
    deviceChainsSeed(false, [[request(RtcMsg.CFG, [0], 16), request(RtcMsg.READ, [1], 16), request(RtcMsg.SET_ALARM, [0, ALARM_DELTAS.indexOf(0), 1], 8)]], spec),
  ];
}

export const target: FuzzTarget = { name: 'rtc-requests', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
