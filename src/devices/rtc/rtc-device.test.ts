import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DriverContext } from '../../driver/types.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { RtcClockType, RtcCounter, RtcF, RtcFlag, RtcMsg, RtcSmear, RtcStatus } from '../../spec/rtc.js';
import { createLoopback } from '../../testing/loopback.js';
import { rawQueue } from '../balloon/balloon-test-helpers.js';
import { createTestPair } from '../blk/test-pair.js';
import { MAX_ALARM_WAIT_MS } from './rtc-alarms.js';
import { type LeapSecondTable, type RtcClockSpec, parseLeapSecondsList, systemLeapSeconds } from './rtc-clocks.js';
import { RtcDevice, type RtcDeviceOptions, defaultRtcClocks } from './rtc-device.js';
import { FakeTime, ManualTimers, rawRtc, rtcRequest } from './rtc-test-support.js';

const T = { timeout: 20_000 };
/** A leap table: +1 at L1 (36 -> 37), -1 at L2 (37 -> 36, hypothetical), far expiry. */
const L1 = 1_483_228_800; // 2017-01-01
const L2 = 1_900_000_000 - (1_900_000_000 % 86400); // a midnight in 2030
const LEAPS: LeapSecondTable = {
  entries: [
    { at: 1_435_708_800, taiMinusUtc: 36 },
    { at: L1, taiMinusUtc: 37 },
    { at: L2, taiMinusUtc: 36 },
  ],
  expires: 2 ** 40,
};
const CLOCKS: RtcClockSpec[] = [
  { type: RtcClockType.UTC, alarm: true },
  { type: RtcClockType.TAI },
  { type: RtcClockType.MONOTONIC, alarm: true },
  { type: RtcClockType.UTC_SMEARED, smearing: RtcSmear.NOON_LINEAR },
  { type: RtcClockType.UTC_SMEARED, smearing: RtcSmear.UTC_SLS },
  { type: RtcClockType.UTC_MAYBE_SMEARED },
];
const UTC = 0;
const TAI = 1;
const MONO = 2;
const NOON = 3;
const SLS = 4;
const MAYBE = 5;

function setup(opts: Partial<RtcDeviceOptions> = {}, accept?: bigint) {
  const time = new FakeTime();
  const timers = new ManualTimers();
  const device = new RtcDevice({ clocks: CLOCKS, leapSeconds: LEAPS, timeSource: time, timers, ...opts });
  const pair = createTestPair(device, accept === undefined ? {} : { accept });
  const raw = rawRtc(pair.ctx);
  const le = true;
  const u64 = (b: Uint8Array, off: number): bigint => new DataView(b.buffer, b.byteOffset).getBigUint64(off, le);
  const read = async (id: number): Promise<bigint> => {
    const a = await raw(rtcRequest(RtcMsg.READ, 16, [[8, 2, id]]), 16);
    assert.equal(a.status, RtcStatus.OK, `READ clock ${id}`);
    return u64(a.bytes, 8);
  };
  const send = (type: number, size: number, fields: readonly [number, 1 | 2 | 8, number | bigint][] = [], resp = 24) => raw(rtcRequest(type, size, fields), resp);
  const setAlarm = (id: number, time: bigint, flags: number) => send(RtcMsg.SET_ALARM, 24, [[8, 8, time], [16, 2, id], [18, 1, flags]], 8);
  const setEnabled = (id: number, flags: number) => send(RtcMsg.SET_ALARM_ENABLED, 16, [[8, 2, id], [10, 1, flags]], 8);
  const readAlarm = async (id: number): Promise<{ time: bigint; flags: number }> => {
    const a = await send(RtcMsg.READ_ALARM, 16, [[8, 2, id]], 24);
    assert.equal(a.status, RtcStatus.OK);
    return { time: u64(a.bytes, 8), flags: a.bytes[16]! };
  };
  return { time, timers, device, pair, raw, read, send, setAlarm, setEnabled, readAlarm, u64 };
}

/** Posts one alarmq buffer; resolves with the notification's msg_type and clock id. */
function alarmBuffer(ctx: DriverContext, send: ReturnType<typeof rawQueue>): Promise<{ usedLen: number; type: number; clockId: number; reserved: number[] }> {
  const addr = ctx.dma.alloc(16);
  ctx.memory.fill(addr, 16, 0xee);
  return send([], [{ addr, len: 16 }]).then((usedLen) => {
    const b = ctx.memory.slice(addr, 16);
    const v = new DataView(b.buffer, b.byteOffset);
    return { usedLen, type: v.getUint16(0, true), clockId: v.getUint16(8, true), reserved: [...b.subarray(2, 8), ...b.subarray(10, 16)] };
  });
}

describe('RtcDevice', T, () => {
  it('5.23.1-5.23.4 device/rtc/1: id 17, ALARM offered when a clock has an alarm, two queues then, no configuration', () => {
    const d = new RtcDevice({ clocks: CLOCKS, leapSeconds: LEAPS });
    assert.equal(d.deviceId, DeviceId.RTC);
    assert.notEqual(d.offeredFeatures & RtcF.ALARM, 0n);
    assert.equal(d.queueMaxSizes.length, 2);
    assert.equal(d.configSize, 0);
    const none = new RtcDevice({ clocks: [{ type: RtcClockType.UTC }], leapSeconds: null });
    assert.equal(none.offeredFeatures & RtcF.ALARM, 0n, 'no clock with an alarm: not offered');
    assert.equal(none.queueMaxSizes.length, 1, 'no alarmq without ALARM');
    assert.throws(() => new RtcDevice({ clocks: [{ type: RtcClockType.TAI }], leapSeconds: null }), /leap second table/);
    assert.throws(() => new RtcDevice({ clocks: [{ type: 9 as RtcClockType }] }), /unknown clock type/);
    assert.throws(() => new RtcDevice({ clocks: [{ type: RtcClockType.UTC, smearing: RtcSmear.NOON_LINEAR }] }), /smearing/);
    for (const d2 of [d, none]) d2.close();
  });

  it('the default clock set: UTC and MONOTONIC with alarms; TAI and smeared only with a current leap table', () => {
    assert.deepEqual(defaultRtcClocks(null).map((c) => c.type), [RtcClockType.UTC, RtcClockType.MONOTONIC]);
    assert.deepEqual(defaultRtcClocks({ ...LEAPS, expires: 1000 }, 2000).map((c) => c.type), [RtcClockType.UTC, RtcClockType.MONOTONIC], 'expired table');
    assert.deepEqual(defaultRtcClocks(LEAPS, 2000).map((c) => c.type), [RtcClockType.UTC, RtcClockType.MONOTONIC, RtcClockType.TAI, RtcClockType.UTC_SMEARED]);
    const sys = systemLeapSeconds();
    if (sys) assert.ok(sys.entries.at(-1)!.taiMinusUtc >= 37, 'the tzdata list parses');
    const parsed = parseLeapSecondsList('#@\t3991593600\n2272060800\t10\t# 1 Jan 1972\n3692217600\t37\n'.replace('\t37', '\t11'));
    assert.deepEqual(parsed.entries, [{ at: 63_072_000, taiMinusUtc: 10 }, { at: 1_483_228_800, taiMinusUtc: 11 }]);
    assert.equal(parsed.expires, 1_782_604_800);
    assert.throws(() => parseLeapSecondsList('2272060800\t10\n'), /expiry/);
  });

  it('device/rtc/2 device/rtc/17 device/rtc/18 device/rtc/37 device/rtc/38 device/rtc/15: CFG, CLOCK_CAP and CROSS_CAP answer OK, the same every time and after a reset; reserved bytes zero', async () => {
    const time = new FakeTime();
    const device = new RtcDevice({ clocks: CLOCKS, leapSeconds: LEAPS, timeSource: time, timers: new ManualTimers() });
    const answers = async (): Promise<string[]> => {
      const lb = await createLoopback(device, { queueSize: 16 });
      const raw = rawRtc(lb.context);
      const out: string[] = [];
      const cfg = await raw(rtcRequest(RtcMsg.CFG, 8), 16);
      out.push(Buffer.from(cfg.bytes).toString('hex'));
      for (let id = 0; id < CLOCKS.length; id++) {
        const cap = await raw(rtcRequest(RtcMsg.CLOCK_CAP, 16, [[8, 2, id]]), 16);
        out.push(Buffer.from(cap.bytes).toString('hex'));
        const cross = await raw(rtcRequest(RtcMsg.CROSS_CAP, 16, [[8, 2, id], [10, 1, RtcCounter.X86_TSC]]), 16);
        out.push(Buffer.from(cross.bytes).toString('hex'));
      }
      await lb.close();
      return out;
    };
    const first = await answers();
    assert.equal(first[0], '0000000000000000' + '0600000000000000', 'CFG: OK, 6 clocks, reserved zero');
    const caps = CLOCKS.map((_, id) => first[1 + id * 2]!);
    // type, leap_second_smearing, flags (ALARM_CAP with ALARM negotiated and an alarm), reserved zero.
    assert.deepEqual(caps, ['0000000000000000' + '0000010000000000', '0000000000000000' + '0100000000000000', '0000000000000000' + '0200010000000000', '0000000000000000' + '0301000000000000', '0000000000000000' + '0302000000000000', '0000000000000000' + '0400000000000000']);
    const second = await answers();
    assert.deepEqual(second, first, 'device/rtc/17, /18: the same answers after a reset');
    device.close();
  });

  it('device/rtc/16 device/rtc/58 device/rtc/57 device/rtc/72: without ALARM negotiated, ALARM_CAP is clear and the alarm messages are ENODEV', async () => {
    const { send, device } = setup({}, ~RtcF.ALARM);
    const cap = await send(RtcMsg.CLOCK_CAP, 16, [[8, 2, UTC]], 16);
    assert.deepEqual([cap.status, cap.bytes[10]], [RtcStatus.OK, 0]);
    assert.equal((await send(RtcMsg.READ_ALARM, 16, [[8, 2, UTC]], 24)).status, RtcStatus.ENODEV);
    assert.equal((await send(RtcMsg.SET_ALARM, 24, [[16, 2, UTC]], 8)).status, RtcStatus.ENODEV);
    assert.equal((await send(RtcMsg.SET_ALARM_ENABLED, 16, [[8, 2, UTC]], 8)).status, RtcStatus.ENODEV);
    device.close();
  });

  it('device/rtc/19 device/rtc/21 device/rtc/22 device/rtc/33 device/rtc/34 device/rtc/35 device/rtc/36 device/rtc/44 device/rtc/45 device/rtc/40: every clock reads in ns: UTC = POSIX time, TAI = UTC + TAI-UTC, monotonic from the host, epoch 1970', async () => {
    const { read, time, device } = setup();
    time.sec = 1_764_936_000; // 2025-12-05 12:00 UTC
    time.ns = 123_456_789;
    assert.equal(await read(UTC), time.utcNs);
    assert.equal(await read(MAYBE), time.utcNs, 'UTC_MAYBE_SMEARED steps like UTC');
    assert.equal(await read(TAI), time.utcNs + 37_000_000_000n);
    assert.equal(await read(NOON), time.utcNs, 'no leap second near: smeared = UTC');
    assert.equal(await read(SLS), time.utcNs);
    time.mono = 987_654_321_012;
    assert.equal(await read(MONO), 987_654_321_012n);
    // Large values survive the 64-bit split exactly (year 2500).
    time.sec = 16_725_225_600;
    time.ns = 999_999_999;
    assert.equal(await read(UTC), 16_725_225_600_999_999_999n);
    // Before the 2017 leap second TAI - UTC was 36 s.
    time.sec = L1 - 10;
    time.ns = 0;
    assert.equal(await read(TAI), time.utcNs + 36_000_000_000n);
    // device/rtc/36: the monotonic epoch is the host's (before any device reset): a reset
    // changes nothing in it (the reset test below reads it across one).
    assert.equal(await read(MONO), 987_654_321_012n);
    device.close();
  });

  it('device/rtc/20 device/rtc/23 device/rtc/25 device/rtc/26 device/rtc/28 device/rtc/29 device/rtc/33: a positive leap second: UTC steps back with the host, TAI and the noon-to-noon smear do not step, and the smear runs 1/86400 slow from noon to noon', async () => {
    const { read, time, device } = setup();
    const at = (s: number, ns = 0): void => {
      time.sec = s;
      time.ns = ns;
    };
    at(L1 - 43_201);
    assert.equal(await read(NOON), time.utcNs, 'before the window: UTC');
    at(L1 - 43_200);
    assert.equal(await read(NOON), time.utcNs, 'noon before: still UTC (the smear starts here)');
    at(L1 - 1, 500_000_000);
    const taiFirst = await read(TAI);
    const noonFirst = await read(NOON);
    const utcFirst = await read(UTC);
    // The host clock steps back 1 s at the start of the leap second: the same POSIX second again.
    at(L1 - 1, 200_000_000);
    const utcSecond = await read(UTC);
    assert.equal(utcFirst - utcSecond, 300_000_000n, 'device/rtc/23: UTC stepped back with the host');
    const taiSecond = await read(TAI);
    assert.equal(taiSecond - taiFirst, 700_000_000n, 'TAI went on: 0.7 s later');
    const noonSecond = await read(NOON);
    assert.ok(noonSecond > noonFirst, 'device/rtc/25: the smeared clock did not step back');
    at(L1 + 43_200);
    assert.equal(await read(NOON), time.utcNs, 'noon after: UTC again');
    at(L1 + 43_201);
    assert.equal(await read(NOON), time.utcNs);
    // device/rtc/26, /29: rate inside the window. Real time from noon to noon is 86401 s.
    at(L1 - 43_200 + 10_000);
    const a = await read(NOON);
    at(L1 - 43_200 + 20_000);
    const b = await read(NOON);
    const rate = Number(b - a) / 10_000e9;
    assert.ok(Math.abs(rate - (1 - 1 / 86_400)) < 2e-10, `the smeared clock runs at ${rate}`);
    device.close();
  });

  it('device/rtc/24 device/rtc/27 device/rtc/30 device/rtc/31 device/rtc/32: a negative leap second: UTC steps forward with the host, the smears speed up (noon to noon 1/86400, UTC-SLS 0.1 % in the last 1000 s)', async () => {
    const { read, time, device } = setup();
    const at = (s: number): void => {
      time.sec = s;
      time.ns = 0;
    };
    // The host skips 23:59:59: POSIX L2 - 2 is followed by L2.
    at(L2 - 2);
    const utcA = await read(UTC);
    const taiA = await read(TAI);
    const slsA = await read(SLS);
    const noonA = await read(NOON);
    at(L2);
    assert.equal((await read(UTC)) - utcA, 2_000_000_000n, 'device/rtc/24: UTC jumped 2 s in 1 real s');
    assert.equal((await read(TAI)) - taiA, 1_000_000_000n, 'TAI advanced 1 s');
    const slsB = await read(SLS);
    const noonB = await read(NOON);
    assert.ok(slsB - slsA > 1_000_000_000n && slsB - slsA < 1_002_000_000n, `UTC-SLS advanced ${slsB - slsA} ns in 1 real s (no step)`);
    assert.ok(noonB - noonA > 1_000_000_000n && noonB - noonA < 1_000_100_000n, 'the noon smear as well');
    assert.equal(slsB, time.utcNs, 'UTC-SLS ends at midnight (after = 0)');
    // device/rtc/31: the UTC-SLS window is exactly the last 1000 s.
    at(L2 - 1000);
    assert.equal(await read(SLS), time.utcNs, 'UTC-SLS starts 1000 s before midnight');
    at(L2 - 1001);
    assert.equal(await read(SLS), time.utcNs);
    at(L2 - 500);
    const mid = await read(SLS);
    at(L2 - 400);
    const rate = Number((await read(SLS)) - mid) / 100e9;
    assert.ok(Math.abs(rate - 1000 / 999) < 1e-9, `UTC-SLS runs at ${rate} (0.1 % fast)`);
    device.close();
  });

  it('device/rtc/41 device/rtc/42 device/rtc/43 device/rtc/46: reads in one batch are used in order, each obtained after it was made available, monotonic readings never decrease', async () => {
    const { time, pair, device } = setup();
    const ctx = pair.ctx;
    const q = ctx.queue(0);
    const resps: number[] = [];
    const order: number[] = [];
    ctx.onUsed(0, () => {
      for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) order.push(t);
      q.enableInterrupts();
    });
    const readsBefore = time.reads;
    for (let i = 0; i < 8; i++) {
      const reqAddr = ctx.dma.alloc(16);
      ctx.memory.write(reqAddr, rtcRequest(RtcMsg.READ, 16, [[8, 2, i % 2 === 0 ? MONO : UTC]]));
      const respAddr = ctx.dma.alloc(16);
      resps.push(respAddr);
      assert.ok(q.add([{ addr: reqAddr, len: 16 }], [{ addr: respAddr, len: 16 }], i));
    }
    assert.equal(time.reads, readsBefore, 'nothing read before the requests were made available');
    ctx.kick(0);
    for (let k = 0; k < 100 && order.length < 8; k++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7], 'used in the order made available');
    assert.equal(time.reads, readsBefore + 8, 'each reading obtained when served');
    const monos = resps.filter((_, i) => i % 2 === 0).map((a) => new DataView(ctx.memory.slice(a, 16).buffer).getBigUint64(8, true));
    for (let i = 1; i < monos.length; i++) assert.ok(monos[i]! >= monos[i - 1]!);
    device.close();
  });

  it('device/rtc/39 device/rtc/4 device/rtc/49 device/rtc/6: no cross-timestamps: CROSS_CAP clears the flag, READ_CROSS is EOPNOTSUPP; unknown counters EOPNOTSUPP, INVALID EINVAL', async () => {
    const { send, device } = setup();
    for (const counter of [RtcCounter.ARM_VCT, RtcCounter.X86_TSC]) {
      const cap = await send(RtcMsg.CROSS_CAP, 16, [[8, 2, UTC], [10, 1, counter]], 16);
      assert.deepEqual([cap.status, cap.bytes[8]! & RtcFlag.CROSS_CAP], [RtcStatus.OK, 0]);
      assert.equal((await send(RtcMsg.READ_CROSS, 16, [[8, 2, UTC], [10, 1, counter]], 24)).status, RtcStatus.EOPNOTSUPP);
    }
    for (const counter of [2, 0x80, 0xf0, 0xfe]) {
      assert.equal((await send(RtcMsg.CROSS_CAP, 16, [[8, 2, UTC], [10, 1, counter]], 16)).status, RtcStatus.EOPNOTSUPP, `counter ${counter}`);
      assert.equal((await send(RtcMsg.READ_CROSS, 16, [[8, 2, UTC], [10, 1, counter]], 24)).status, RtcStatus.EOPNOTSUPP);
    }
    assert.equal((await send(RtcMsg.CROSS_CAP, 16, [[8, 2, UTC], [10, 1, RtcCounter.INVALID]], 16)).status, RtcStatus.EINVAL);
    device.close();
  });

  it('device/rtc/3 device/rtc/5 device/rtc/7 device/rtc/8 device/rtc/9 device/rtc/10 device/rtc/11 device/rtc/12 device/rtc/73: every malformed request gets its error status', async () => {
    const { raw, send, time, device } = setup();
    assert.equal((await send(0x0003, 16, [], 16)).status, RtcStatus.EOPNOTSUPP, 'unknown msg_type');
    assert.equal((await send(RtcMsg.NOTIF_ALARM, 16, [], 16)).status, RtcStatus.EOPNOTSUPP, 'a notification type on the requestq');
    assert.equal((await send(0xffff, 8, [], 8)).status, RtcStatus.EOPNOTSUPP);
    assert.equal((await send(RtcMsg.READ, 16, [[8, 2, 6]], 16)).status, RtcStatus.ENODEV, 'clock 6 of 6');
    assert.equal((await send(RtcMsg.CLOCK_CAP, 16, [[8, 2, 0xffff]], 16)).status, RtcStatus.ENODEV);
    assert.equal((await send(RtcMsg.READ_ALARM, 16, [[8, 2, TAI]], 24)).status, RtcStatus.ENODEV, 'device/rtc/73: TAI has no alarm');
    assert.equal((await send(RtcMsg.SET_ALARM, 24, [[16, 2, TAI], [18, 1, 1]], 8)).status, RtcStatus.ENODEV);
    assert.equal((await send(RtcMsg.SET_ALARM_ENABLED, 16, [[8, 2, TAI], [10, 1, 1]], 8)).status, RtcStatus.ENODEV);
    // device/rtc/8: values the spec does not allow: reserved bytes, undefined flag bits.
    assert.equal((await send(RtcMsg.READ, 16, [[8, 2, UTC], [12, 1, 1]], 16)).status, RtcStatus.EINVAL, 'reserved byte set');
    assert.equal((await send(RtcMsg.CFG, 8, [[4, 1, 9]], 16)).status, RtcStatus.EINVAL, 'reserved header byte set');
    assert.equal((await send(RtcMsg.SET_ALARM, 24, [[16, 2, UTC], [18, 1, 0x81]], 8)).status, RtcStatus.EINVAL, 'undefined flag bit');
    assert.equal((await send(RtcMsg.SET_ALARM_ENABLED, 16, [[8, 2, UTC], [10, 1, 2]], 8)).status, RtcStatus.EINVAL);
    // device/rtc/9: the request does not fit its read-only buffer.
    assert.equal((await raw(rtcRequest(RtcMsg.READ, 16).subarray(0, 12), 16)).status, RtcStatus.EINVAL);
    assert.equal((await raw(new Uint8Array([1]), 16)).status, RtcStatus.EINVAL, 'not even a msg_type');
    assert.equal((await raw(new Uint8Array(0), 16)).status, RtcStatus.EINVAL, 'no request at all');
    // device/rtc/10: the response does not fit: EINVAL in what room there is.
    const short = await raw(rtcRequest(RtcMsg.READ, 16, [[8, 2, UTC]]), 12);
    assert.deepEqual([short.status, short.usedLen], [RtcStatus.EINVAL, 8]);
    const tiny = await raw(rtcRequest(RtcMsg.READ, 16, [[8, 2, UTC]]), 1);
    assert.deepEqual([tiny.status, tiny.usedLen], [RtcStatus.EINVAL, 1]);
    // device/rtc/11: no room for the status: nothing written.
    assert.equal((await raw(rtcRequest(RtcMsg.READ, 16, [[8, 2, UTC]]), 0)).usedLen, 0);
    // device/rtc/12: a failure that is not the driver's: EIO.
    time.fail = true;
    assert.equal((await send(RtcMsg.READ, 16, [[8, 2, UTC]], 16)).status, RtcStatus.EIO);
    time.fail = false;
    assert.ok(device.statuses[RtcStatus.OK] === 0, 'device/rtc/3: no failed request was answered OK');
    device.close();
  });

  it('device/rtc/13 device/rtc/14 device/rtc/15: larger buffers: extra request bytes ignored, nothing written past the response, reserved bytes zero', async () => {
    const { raw, device, time } = setup();
    const req = new Uint8Array(64).fill(0xab);
    req.set(rtcRequest(RtcMsg.READ, 16, [[8, 2, UTC]]));
    const a = await raw(req, 40);
    assert.equal(a.status, RtcStatus.OK);
    assert.equal(a.usedLen, 16);
    assert.deepEqual([...a.bytes.subarray(1, 8)], [0, 0, 0, 0, 0, 0, 0], 'reserved zero');
    assert.equal(new DataView(a.bytes.buffer, a.bytes.byteOffset).getBigUint64(8, true), time.utcNs);
    assert.ok(a.bytes.subarray(16).every((x) => x === 0xee), 'the extra room untouched');
    const alarm = await raw(rtcRequest(RtcMsg.READ_ALARM, 16, [[8, 2, UTC]]), 24);
    assert.deepEqual([...alarm.bytes.subarray(17, 24)], [0, 0, 0, 0, 0, 0, 0]);
    device.close();
  });

  it('device/rtc/56 device/rtc/74 device/rtc/75 device/rtc/76 device/rtc/77 device/rtc/78 device/rtc/79 device/rtc/80 device/rtc/81 device/rtc/82 device/rtc/83: READ_ALARM, SET_ALARM and SET_ALARM_ENABLED', async () => {
    const { setAlarm, setEnabled, readAlarm, device } = setup();
    assert.deepEqual(await readAlarm(UTC), { time: 0n, flags: 0 }, 'initially 0 and disabled');
    const far = (1n << 64n) - 1n; // any value is accepted (device/rtc/77)
    assert.equal((await setAlarm(UTC, far, RtcFlag.ALARM_ENABLED)).status, RtcStatus.OK);
    assert.deepEqual(await readAlarm(UTC), { time: far, flags: RtcFlag.ALARM_ENABLED });
    assert.equal((await setEnabled(UTC, 0)).status, RtcStatus.OK);
    assert.deepEqual(await readAlarm(UTC), { time: far, flags: 0 }, 'the time is retained');
    assert.equal((await setEnabled(UTC, RtcFlag.ALARM_ENABLED)).status, RtcStatus.OK);
    assert.deepEqual(await readAlarm(UTC), { time: far, flags: RtcFlag.ALARM_ENABLED });
    assert.equal((await setAlarm(MONO, 123_456_789_000_000n, 0)).status, RtcStatus.OK);
    assert.deepEqual(await readAlarm(MONO), { time: 123_456_789_000_000n, flags: 0 });
    device.close();
  });

  it('device/rtc/59 device/rtc/63 device/rtc/64 device/rtc/52 device/rtc/84: the clock reaching the alarm time is an expiration: one notification on the alarmq, and later reads do not precede the alarm time', async () => {
    const { time, timers, setAlarm, read, pair, device } = setup();
    const alarmq = rawQueue(pair.ctx, 1);
    const alarmAt = time.utcNs + 5_000_000_000n;
    await setAlarm(UTC, alarmAt, RtcFlag.ALARM_ENABLED);
    assert.ok(timers.delays.every((ms) => ms >= 1 && ms <= MAX_ALARM_WAIT_MS), 'timers bounded');
    assert.deepEqual(timers.delays, [5000]);
    const note = alarmBuffer(pair.ctx, alarmq);
    time.advance(2);
    timers.fireAll();
    assert.equal(device.alarmNotifications, 0, 'not yet');
    assert.deepEqual(timers.delays, [3000]);
    time.advance(3);
    timers.fireAll();
    const n = await note;
    assert.deepEqual(n, { usedLen: 16, type: RtcMsg.NOTIF_ALARM, clockId: UTC, reserved: new Array(12).fill(0) });
    assert.ok((await read(UTC)) >= alarmAt, 'device/rtc/52');
    // Still enabled and past: no second notification until the clock passes the time again.
    time.advance(1);
    timers.fireAll();
    assert.equal(device.alarmNotifications, 1);
    assert.equal(device.alarmPending(UTC), false);
    device.close();
  });

  it('device/rtc/60 device/rtc/61 device/rtc/64 device/rtc/71: setting a due alarm enabled, or enabling a due alarm, expires it; events before a buffer is there give a single notification when one arrives', async () => {
    const { time, setAlarm, setEnabled, pair, device } = setup();
    const alarmq = rawQueue(pair.ctx, 1);
    await setAlarm(MONO, BigInt(time.mono) - 1n, RtcFlag.ALARM_ENABLED);
    assert.ok(device.alarmPending(MONO), 'device/rtc/60: expired at once');
    await setEnabled(MONO, 0);
    await setEnabled(MONO, RtcFlag.ALARM_ENABLED);
    assert.ok(device.alarmPending(MONO), 'device/rtc/61');
    await setAlarm(MONO, BigInt(time.mono), RtcFlag.ALARM_ENABLED); // again: replaces the event (/71)
    const first = alarmBuffer(pair.ctx, alarmq);
    const second = alarmBuffer(pair.ctx, alarmq);
    assert.equal((await first).clockId, MONO);
    await new Promise((r) => setImmediate(r));
    assert.equal(device.alarmNotifications, 1, 'a single notification');
    assert.equal(device.alarmBuffersWaiting, 1, 'the second buffer waits');
    await setAlarm(MONO, BigInt(time.mono), RtcFlag.ALARM_ENABLED);
    assert.equal((await second).clockId, MONO);
    device.close();
  });

  it('device/rtc/68 device/rtc/69 device/rtc/70: disabling drops the event being served before the response is used; a new alarm time or the clock stepping back before it drops it too', async () => {
    const { time, timers, setAlarm, setEnabled, device } = setup();
    await setAlarm(UTC, time.utcNs, RtcFlag.ALARM_ENABLED);
    assert.ok(device.alarmPending(UTC));
    const r = await setEnabled(UTC, 0);
    assert.equal(r.status, RtcStatus.OK);
    assert.equal(device.alarmPending(UTC), false, 'device/rtc/68');
    await setAlarm(UTC, time.utcNs, RtcFlag.ALARM_ENABLED);
    assert.ok(device.alarmPending(UTC));
    await setAlarm(UTC, time.utcNs + 10_000_000_000n, RtcFlag.ALARM_ENABLED);
    assert.equal(device.alarmPending(UTC), false, 'device/rtc/69: the new time is not due');
    await setAlarm(UTC, time.utcNs, 0);
    assert.equal(device.alarmPending(UTC), false, 'device/rtc/68 through SET_ALARM');
    await setAlarm(UTC, time.utcNs, RtcFlag.ALARM_ENABLED);
    assert.ok(device.alarmPending(UTC));
    time.advance(-30); // the host clock stepped back
    timers.fireAll();
    assert.equal(device.alarmPending(UTC), false, 'device/rtc/70');
    // ...and passing the time again is a new expiration (device/rtc/59).
    time.advance(31);
    timers.fireAll();
    assert.ok(device.alarmPending(UTC));
    device.close();
  });

  it('device/rtc/36 device/rtc/53 device/rtc/62: alarms are retained over a device reset; an enabled alarm that is due expires at the reset and is notified once the driver is back', async () => {
    const time = new FakeTime();
    const timers = new ManualTimers();
    const device = new RtcDevice({ clocks: CLOCKS, leapSeconds: LEAPS, timeSource: time, timers });
    let lb = await createLoopback(device, { queueSize: 16 });
    let raw = rawRtc(lb.context);
    const at = time.utcNs + 1_000_000_000n;
    assert.equal((await raw(rtcRequest(RtcMsg.SET_ALARM, 24, [[8, 8, at], [16, 2, UTC], [18, 1, 1]]), 8)).status, RtcStatus.OK);
    const monoBefore = time.mono;
    time.advance(2); // the alarm time passes while the driver is away (no timer fired)
    assert.equal(device.alarmPending(UTC), false);
    await lb.close(); // device reset
    assert.ok(device.alarmPending(UTC), 'due at the reset: an expiration');
    lb = await createLoopback(device, { queueSize: 16 });
    raw = rawRtc(lb.context);
    const a = await raw(rtcRequest(RtcMsg.READ_ALARM, 16, [[8, 2, UTC]]), 24);
    assert.equal(new DataView(a.bytes.buffer, a.bytes.byteOffset).getBigUint64(8, true), at, 'time retained');
    assert.equal(a.bytes[16], RtcFlag.ALARM_ENABLED, 'enabled retained');
    const n = await alarmBuffer(lb.context, rawQueue(lb.context, 1));
    assert.equal(n.clockId, UTC);
    const m = await raw(rtcRequest(RtcMsg.READ, 16, [[8, 2, MONO]]), 16);
    assert.equal(new DataView(m.bytes.buffer, m.bytes.byteOffset).getBigUint64(8, true), BigInt(monoBefore) + 2_000_000_000n, 'device/rtc/36: the monotonic clock did not restart at the reset');
    await lb.close();
    device.close();
  });

  it('the guest is untrusted: random requests on the requestq and short alarmq buffers never throw or need a reset', async () => {
    const { raw, pair, device } = setup();
    const alarmq = rawQueue(pair.ctx, 1);
    const shortAddr = pair.ctx.dma.alloc(8);
    assert.equal(await alarmq([], [{ addr: shortAddr, len: 8 }]), 0, 'an alarmq buffer too short for a notification returns empty');
    let seed = 11;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const types = [RtcMsg.READ, RtcMsg.READ_CROSS, RtcMsg.CFG, RtcMsg.CLOCK_CAP, RtcMsg.CROSS_CAP, RtcMsg.READ_ALARM, RtcMsg.SET_ALARM, RtcMsg.SET_ALARM_ENABLED, 7];
    for (let i = 0; i < 300; i++) {
      const full = rtcRequest(types[rnd(types.length)]!, 32, [], true);
      for (let k = 2; k < full.length; k++) if (rnd(4) === 0) full[k] = rnd(256);
      const req = full.slice(0, rnd(30));
      const room = rnd(30);
      if (req.length === 0 && room === 0) continue;
      const a = await raw(req, room);
      assert.ok(a.usedLen <= 24);
      if (a.usedLen > 0) assert.ok([0, 2, 3, 4, 5].includes(a.status));
    }
    assert.deepEqual(pair.resets, []);
    device.close();
  });

  it('5.23 legacy big-endian: requests and notifications in guest byte order', async () => {
    const time = new FakeTime();
    const device = new RtcDevice({ clocks: CLOCKS, leapSeconds: LEAPS, timeSource: time, timers: new ManualTimers() });
    const pair = createTestPair(device, { accept: ~F.VERSION_1, littleEndian: false });
    const raw = rawRtc(pair.ctx);
    const a = await raw(rtcRequest(RtcMsg.READ, 16, [[8, 2, UTC]], false), 16);
    assert.equal(a.status, RtcStatus.OK);
    assert.equal(new DataView(a.bytes.buffer, a.bytes.byteOffset).getBigUint64(8, false), time.utcNs);
    device.close();
  });
});
