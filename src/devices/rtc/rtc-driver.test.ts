import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, isVirtioError } from '../../errors.js';
import { ChainCursor, DescriptorChain } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { RTC_MESSAGE_SIZES, RtcClockType, RtcCounter, RtcF, RtcFlag, RtcMsg, RtcSmear, RtcStatus } from '../../spec/rtc.js';
import { createLoopback } from '../../testing/loopback.js';
import { createTestPair } from '../blk/test-pair.js';
import { RtcDevice } from './rtc-device.js';
import { RtcDriver, RtcRequestError } from './rtc-driver.js';
import { FakeTime, ManualTimers } from './rtc-test-support.js';

const T = { timeout: 20_000 };

/** An RTC device answering from a script, recording every request and alarmq buffer. */
class ScriptedRtc implements VirtioDevice {
  readonly deviceId = DeviceId.RTC;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes = [16, 16];
  readonly configSize = 0;
  readonly requests: { bytes: Uint8Array; writable: number }[] = [];
  readonly alarmBuffers: { chain: DescriptorChain; writable: number }[] = [];
  /** Answer for a request: the response bytes (status first). */
  answer: (req: Uint8Array) => Uint8Array = () => new Uint8Array(8);
  private ctx: DeviceContext | null = null;
  constructor(alarm: boolean) {
    this.offeredFeatures = F.VERSION_1 | (alarm ? RtcF.ALARM : 0n);
  }
  readConfig(_o: number, dst: Uint8Array): void {
    dst.fill(0);
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  reset(): void {}
  onQueueNotify(i: number): void {
    const ctx = this.ctx!;
    const q = ctx.queue(i)!;
    for (;;) {
      const chain = new DescriptorChain(ctx.memory, 16);
      if (!q.pop(chain)) break;
      if (i === 1) {
        this.alarmBuffers.push({ chain, writable: chain.writableBytes });
        continue;
      }
      const r = new Uint8Array(chain.readableBytes);
      new ChainCursor(false).reset(chain).read(r);
      this.requests.push({ bytes: r, writable: chain.writableBytes });
      q.push(chain, new ChainCursor(true).reset(chain).write(this.answer(r)));
    }
    ctx.notifyUsed(i);
  }
  /** Uses one held alarmq buffer with `bytes`. */
  notify(bytes: Uint8Array): void {
    const ctx = this.ctx!;
    const b = this.alarmBuffers.shift()!;
    ctx.queue(1)!.push(b.chain, new ChainCursor(true).reset(b.chain).write(bytes));
    ctx.notifyUsed(1);
  }
}

function resp(bytes: number[], size: number): Uint8Array {
  const b = new Uint8Array(size);
  b.set(bytes);
  return b;
}

describe('RtcDriver', T, () => {
  it('driver/rtc/2 driver/rtc/3 driver/rtc/6 driver/rtc/9: requests of the right size with reserved bytes zero, only the ALARM_ENABLED flag, alarm times in ns, response room for the whole response', async () => {
    const dev = new ScriptedRtc(true);
    const pair = createTestPair(dev);
    const rtc = new RtcDriver(pair.ctx);
    dev.answer = (r) => {
      const type = new DataView(r.buffer).getUint16(0, true);
      if (type === RtcMsg.CFG) return resp([0, 0, 0, 0, 0, 0, 0, 0, 1, 0], 16);
      if (type === RtcMsg.CLOCK_CAP) return resp([0, 0, 0, 0, 0, 0, 0, 0, RtcClockType.UTC, 0, RtcFlag.ALARM_CAP], 16);
      return resp([0], RTC_MESSAGE_SIZES[type]!.response);
    };
    await rtc.start();
    await rtc.read(0);
    await rtc.setAlarm(0, 1_700_000_000_123_456_789n, true);
    await rtc.setAlarmEnabled(0, false);
    await rtc.readAlarm(0);
    await rtc.crossCap(0, RtcCounter.X86_TSC);
    for (const { bytes, writable } of dev.requests) {
      const type = new DataView(bytes.buffer).getUint16(0, true);
      const sizes = RTC_MESSAGE_SIZES[type]!;
      assert.equal(bytes.length, sizes.request, `request 0x${type.toString(16)} size`);
      assert.equal(writable, sizes.response, 'driver/rtc/6: room for the response');
      assert.deepEqual([...bytes.subarray(2, 8)], [0, 0, 0, 0, 0, 0], 'header reserved zero');
    }
    const set = dev.requests.filter((r) => new DataView(r.bytes.buffer).getUint16(0, true) === RtcMsg.SET_ALARM);
    // start() cleared the alarm first (time 0, disabled), then the test's own.
    assert.equal(set.length, 2);
    const v = new DataView(set[1]!.bytes.buffer);
    assert.deepEqual([v.getBigUint64(8, true), v.getUint16(16, true), v.getUint8(18)], [1_700_000_000_123_456_789n, 0, RtcFlag.ALARM_ENABLED]);
    assert.deepEqual([...set[1]!.bytes.subarray(19)], [0, 0, 0, 0, 0], 'SET_ALARM reserved zero');
    assert.deepEqual([new DataView(set[0]!.bytes.buffer).getBigUint64(8, true), set[0]!.bytes[18]], [0n, 0]);
    const en = dev.requests.find((r) => new DataView(r.bytes.buffer).getUint16(0, true) === RtcMsg.SET_ALARM_ENABLED)!;
    assert.deepEqual([...en.bytes.subarray(10)], [0, 0, 0, 0, 0, 0], 'disabled: flags 0, reserved zero');
    rtc.detach();
  });

  it('driver/rtc/10 driver/rtc/11: with ALARM the alarmq holds buffers of 16 device-writable bytes, posted after the alarms were cleared', async () => {
    const dev = new ScriptedRtc(true);
    const pair = createTestPair(dev);
    const rtc = new RtcDriver(pair.ctx, { alarmBuffers: 3 });
    let alarmsWhenCleared = -1;
    dev.answer = (r) => {
      const type = new DataView(r.buffer).getUint16(0, true);
      if (type === RtcMsg.CFG) return resp([0, 0, 0, 0, 0, 0, 0, 0, 1], 16);
      if (type === RtcMsg.CLOCK_CAP) return resp([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, RtcFlag.ALARM_CAP], 16);
      if (type === RtcMsg.SET_ALARM) alarmsWhenCleared = dev.alarmBuffers.length;
      return resp([0], RTC_MESSAGE_SIZES[type]!.response);
    };
    await rtc.start();
    await new Promise((r) => setImmediate(r));
    assert.equal(alarmsWhenCleared, 0, 'no alarmq buffer before the alarms were cleared');
    assert.deepEqual(dev.alarmBuffers.map((b) => b.writable), [16, 16, 16]);
    rtc.detach();
  });

  it('driver/rtc/12: on a notification the driver reads the clock and reports that reading; the buffer is posted again', async () => {
    const dev = new ScriptedRtc(true);
    const pair = createTestPair(dev);
    const rtc = new RtcDriver(pair.ctx, { alarmBuffers: 1 });
    dev.answer = (r) => {
      const type = new DataView(r.buffer).getUint16(0, true);
      if (type === RtcMsg.CFG) return resp([0, 0, 0, 0, 0, 0, 0, 0, 2], 16);
      if (type === RtcMsg.CLOCK_CAP) return resp([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, RtcFlag.ALARM_CAP], 16);
      if (type === RtcMsg.READ) return resp([0, 0, 0, 0, 0, 0, 0, 0, 0x15, 0xcd, 0x5b, 0x07], 16);
      return resp([0], RTC_MESSAGE_SIZES[type]!.response);
    };
    await rtc.start();
    await new Promise((r) => setImmediate(r));
    const reads = dev.requests.length;
    const next = rtc.nextAlarm();
    dev.notify(resp([0x00, 0x20, 0, 0, 0, 0, 0, 0, 1, 0], 16));
    const e = await next;
    assert.deepEqual(e, { clockId: 1, reading: 0x075bcd15n });
    const after = dev.requests.slice(reads).map((r) => new DataView(r.bytes.buffer).getUint16(0, true));
    assert.deepEqual(after, [RtcMsg.READ], 'the clock was read after the notification');
    await new Promise((r) => setImmediate(r));
    assert.equal(dev.alarmBuffers.length, 1, 'a buffer is available again');
    // A buffer used without a notification in it is ignored.
    dev.notify(new Uint8Array(0));
    await new Promise((r) => setImmediate(r));
    assert.equal(dev.alarmBuffers.length, 1);
    rtc.detach();
  });

  it('driver/rtc/1 driver/rtc/4 driver/rtc/5: non-OK statuses throw without looking at the fields; reserved bytes and flag bits beyond the features are ignored', async () => {
    const dev = new ScriptedRtc(false);
    const pair = createTestPair(dev);
    const rtc = new RtcDriver(pair.ctx);
    assert.equal(rtc.alarmSupported, false);
    dev.answer = () => resp([RtcStatus.ENODEV, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 16);
    await assert.rejects(rtc.read(3), (e: unknown) => e instanceof RtcRequestError && e.status === RtcStatus.ENODEV && e.code === ErrorCode.REQUEST_FAILED);
    // OK with reserved bytes set and every flag bit: ALARM_CAP means nothing without ALARM.
    dev.answer = () => resp([0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, RtcClockType.UTC_SMEARED, RtcSmear.UTC_SLS, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 16);
    assert.deepEqual(await rtc.clockCap(0), { id: 0, type: RtcClockType.UTC_SMEARED, smearing: RtcSmear.UTC_SLS, alarm: false });
    dev.answer = () => resp([0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff], 16);
    assert.equal(await rtc.crossCap(0, RtcCounter.X86_TSC), false, 'only bit 0 of the CROSS_CAP flags counts');
    await assert.rejects(rtc.setAlarm(0, 1n, true), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.FEATURES_REJECTED);
    rtc.detach();
  });

  it('driver/rtc/7 driver/rtc/8: hw_counter must be a defined counter or 0xF0..0xFE; others are refused before any request', async () => {
    const dev = new ScriptedRtc(false);
    const rtc = new RtcDriver(createTestPair(dev).ctx);
    dev.answer = () => resp([0], 24);
    for (const bad of [2, 0xef, 0xff, -1, 1.5]) {
      await assert.rejects(rtc.crossCap(0, bad), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
      await assert.rejects(rtc.readCross(0, bad), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    }
    assert.equal(dev.requests.length, 0);
    await rtc.crossCap(0, 0xf0);
    await rtc.readCross(0, RtcCounter.ARM_VCT);
    assert.equal(dev.requests.length, 2);
    rtc.detach();
  });

  it('against RtcDevice: start, read every clock, an alarm on the UTC clock fires through the timers and the driver sees it', async () => {
    const time = new FakeTime();
    const timers = new ManualTimers();
    const device = new RtcDevice({ clocks: [{ type: RtcClockType.UTC, alarm: true }, { type: RtcClockType.MONOTONIC }], leapSeconds: null, timeSource: time, timers });
    const lb = await createLoopback(device, { queueSize: 16 });
    const rtc = new RtcDriver(lb.context);
    assert.deepEqual(
      (await rtc.start()).map((c) => [c.type, c.alarm]),
      [
        [RtcClockType.UTC, true],
        [RtcClockType.MONOTONIC, false],
      ],
    );
    assert.equal(await rtc.read(0), time.utcNs);
    const at = time.utcNs + 60_000_000_000n;
    await rtc.setAlarm(0, at, true);
    const next = rtc.nextAlarm();
    time.advance(60);
    timers.fireAll();
    const e = await next;
    assert.equal(e.clockId, 0);
    assert.ok(e.reading !== null && e.reading >= at);
    await assert.rejects(rtc.readAlarm(1), (err: unknown) => err instanceof RtcRequestError && err.status === RtcStatus.ENODEV);
    rtc.detach();
    await lb.close();
    device.close();
  });
});
