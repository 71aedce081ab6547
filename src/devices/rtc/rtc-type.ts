/**
 * The registry record of virtio-rtc (5.23). No CLI and no vhost-user type: QEMU 7.2 has no
 * front-end for it and Linux 6.1 no driver.
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { RtcClockType, RtcCounter, RtcSmear, RtcStatus } from '../../spec/rtc.js';
import type { DeviceType } from '../device-type.js';
import type { LeapSecondTable } from './rtc-clocks.js';
import { RtcDevice, type RtcDeviceOptions } from './rtc-device.js';
import { RtcDriver, RtcRequestError } from './rtc-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface RtcDeviceArgs {
  /** Maximum size of each queue. Default 64. */
  readonly queueSize?: number;
  /** Offer VIRTIO_RTC_F_ALARM (UTC and MONOTONIC have alarms). Default true. */
  readonly alarms?: boolean;
}

/** A fixture table for the matrix (TAI - UTC 37 s since 2017; valid for the test's purpose). */
const MATRIX_LEAPS: LeapSecondTable = { entries: [{ at: 1_435_708_800, taiMinusUtc: 36 }, { at: 1_483_228_800, taiMinusUtc: 37 }], expires: 2 ** 40 };

/**
 * The registry record of virtio-rtc: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const RTC_TYPE: DeviceType = {
  name: 'rtc',
  deviceId: DeviceId.RTC,
  summary: 'a virtio-rtc device (in process; no vhost-user front-end exists for it)',
  vhostUser: null,
  configSize: 0,
  cli: null,
  createDevice(args?: unknown): RtcDevice {
    const a = (args ?? {}) as RtcDeviceArgs;
    const opts: RtcDeviceOptions = {};
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    if (a.alarms !== undefined) opts.alarms = a.alarms;
    return new RtcDevice(opts);
  },
  matrixCase() {
    const device = new RtcDevice({
      leapSeconds: MATRIX_LEAPS,
      clocks: [
        { type: RtcClockType.UTC, alarm: true },
        { type: RtcClockType.MONOTONIC, alarm: true },
        { type: RtcClockType.TAI },
        { type: RtcClockType.UTC_SMEARED, smearing: RtcSmear.NOON_LINEAR },
      ],
    });
    return {
      device,
      async exercise(driver) {
        const rtc = new RtcDriver(driver.context);
        const clocks = await rtc.start();
        assert.deepEqual(
          clocks.map((c) => [c.type, c.smearing, c.alarm]),
          [
            [RtcClockType.UTC, RtcSmear.UNSPECIFIED, true],
            [RtcClockType.MONOTONIC, RtcSmear.UNSPECIFIED, true],
            [RtcClockType.TAI, RtcSmear.UNSPECIFIED, false],
            [RtcClockType.UTC_SMEARED, RtcSmear.NOON_LINEAR, false],
          ],
        );
        const before = BigInt(Date.now()) * 1_000_000n;
        const utc = await rtc.read(0);
        const tai = await rtc.read(2);
        assert.ok(utc >= before - 1_000_000n && utc < before + 5_000_000_000n, `UTC ${utc} near the host's ${before}`);
        const diff = tai - utc;
        assert.ok(diff >= 37_000_000_000n && diff < 38_000_000_000n, `TAI - UTC = ${diff} ns`);
        const m1 = await rtc.read(1);
        const m2 = await rtc.read(1);
        assert.ok(m2 >= m1, 'monotonic');
        assert.equal(await rtc.crossCap(0, RtcCounter.X86_TSC), false);
        await assert.rejects(rtc.readCross(0, RtcCounter.X86_TSC), (e: unknown) => e instanceof RtcRequestError && e.status === RtcStatus.EOPNOTSUPP);
        // An alarm 20 ms ahead on the monotonic clock: the notification, then the clock read past it.
        const at = (await rtc.read(1)) + 20_000_000n;
        const fired = rtc.nextAlarm();
        await rtc.setAlarm(1, at, true);
        const e = await fired;
        assert.equal(e.clockId, 1);
        assert.ok(e.reading !== null && e.reading >= at, 'the clock read after the notification is past the alarm time');
        assert.deepEqual(await rtc.readAlarm(1), { time: at, enabled: true });
        await rtc.setAlarmEnabled(1, false);
        assert.deepEqual(await rtc.readAlarm(1), { time: at, enabled: false });
        rtc.detach();
        device.close();
      },
    };
  },
};
