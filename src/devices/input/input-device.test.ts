import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { DeviceId } from '../../spec/device-id.js';
import { EvCode, EvType, InputConfig, InputConfigSelect, InputEvent } from '../../spec/input.js';
import { createLoopback, type Loopback } from '../../testing/loopback.js';
import { LoopbackPlatform } from '../../vhost-user/loopback-platform.js';
import { SUPPORTED_PROTOCOL_FEATURES } from '../../vhost-user/backend.js';
import { openSession } from '../../vhost-user/test-helpers.js';
import { InputDevice } from './input-device.js';
import { InputDriver } from './input-driver.js';
import { keyboardProfile, mouseProfile, tabletProfile } from './input-presets.js';

const T = { timeout: 10_000 };

/** Hand-built chains on one queue: reports the used length of each. */
function raw(ctx: DriverContext, index: number) {
  let token = 1;
  const waiting = new Map<number, (len: number) => void>();
  ctx.onUsed(index, () => {
    const q = ctx.queue(index);
    do {
      for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) waiting.get(t)?.(q.lastUsedLen);
    } while (q.enableInterrupts());
  });
  return {
    /** Adds the chain; the promise resolves with the used length. */
    send(outs: readonly Segment[], ins: readonly Segment[]): Promise<number> {
      const t = token++;
      const done = new Promise<number>((r) => waiting.set(t, r));
      assert.ok(ctx.queue(index).add(outs, ins, t));
      ctx.kick(index);
      return done;
    },
  };
}

function ev(type: number, code: number, value: number) {
  return { type, code, value };
}

const loopbacks: Loopback[] = [];
async function setup(device: InputDevice, packed = false): Promise<Loopback> {
  const lb = await createLoopback(device, { packed, queueSize: 16 });
  loopbacks.push(lb);
  return lb;
}
after(async () => {
  for (const lb of loopbacks) await lb.close();
});

describe('InputDevice', T, () => {
  it('5.8.1-5.8.3: device id 18, eventq and statusq, no feature bits, 136-byte config', () => {
    const d = new InputDevice({ profile: keyboardProfile() });
    assert.equal(d.deviceId, DeviceId.INPUT);
    assert.deepEqual(d.queueMaxSizes, [64, 64]);
    assert.equal(d.configSize, InputConfig.BYTES);
    assert.equal(d.offeredFeatures & ((1n << 24n) - 1n), 0n);
    assert.throws(() => new InputDevice({ profile: keyboardProfile(), maxQueuedEvents: 0 }), /maxQueuedEvents/);
    assert.throws(() => new InputDevice({ profile: { name: 'x'.repeat(129), events: {} } }), /at most 128/);
    assert.throws(() => new InputDevice({ profile: { name: 'x', events: { [EvType.KEY]: [1024] } } }), /code 1024/);
  });

  it('device/input/1: unsupported select/subsel combinations read size 0 and a zero union', async () => {
    const lb = await setup(new InputDevice({ profile: mouseProfile() }));
    const input = new InputDriver(lb.context);
    assert.equal((await input.query(InputConfigSelect.ABS_INFO, 0)).length, 0, 'a mouse has no absolute axes');
    assert.equal((await input.query(InputConfigSelect.EV_BITS, EvType.ABS)).length, 0);
    assert.equal((await input.query(InputConfigSelect.ID_SERIAL, 0)).length, 0, 'no serial in this profile');
    assert.equal((await input.query(0x7f, 3)).length, 0, 'unknown select');
    assert.equal((await input.query(InputConfigSelect.ID_NAME, 1)).length, 0, 'ID_NAME takes subsel 0 only');
    assert.deepEqual(lb.context.readConfig(InputConfig.U, InputConfig.U_BYTES), new Uint8Array(InputConfig.U_BYTES));
    assert.equal((await input.query(InputConfigSelect.UNSET, 0)).length, 0);
    input.detach();
  });

  it('driver/input/1, driver/input/3: select and subsel both set, size read first: name, serial, ids, bits, absinfo', async () => {
    const lb = await setup(new InputDevice({ profile: { ...tabletProfile('tab', 1000), serial: 'SN-1', properties: [1] } }));
    const input = new InputDriver(lb.context);
    assert.equal(await input.name(), 'tab');
    assert.equal(await input.serial(), 'SN-1');
    assert.deepEqual(await input.ids(), { bustype: 6, vendor: 0x0627, product: 3, version: 1 });
    assert.deepEqual(await input.properties(), [1]);
    assert.deepEqual(await input.eventCodes(EvType.KEY), [EvCode.BTN_LEFT, EvCode.BTN_RIGHT, EvCode.BTN_MIDDLE]);
    // The bitmap is as long as its last set byte: BTN_MIDDLE (0x112) is in byte 34.
    assert.equal((await input.query(InputConfigSelect.EV_BITS, EvType.KEY)).length, 35);
    assert.deepEqual(await input.absInfo(EvCode.ABS_X), { min: 0, max: 1000, fuzz: 0, flat: 0, res: 0 });
    assert.equal(await input.absInfo(5), null);
    // The fields read back as the driver wrote them; size is the answer's length.
    await input.query(InputConfigSelect.ID_NAME, 0);
    assert.deepEqual([...lb.context.readConfig(0, 3)], [InputConfigSelect.ID_NAME, 0, 3]);
    input.detach();
  });

  it('driver/input/2: writes to size, reserved or the union are ignored; reset clears the selector', async () => {
    const device = new InputDevice({ profile: keyboardProfile('kbd') });
    const lb = await setup(device);
    const input = new InputDriver(lb.context);
    await input.query(InputConfigSelect.ID_NAME, 0);
    lb.context.writeConfig(InputConfig.SIZE, Uint8Array.of(99));
    lb.context.writeConfig(InputConfig.U, Uint8Array.of(0x41, 0x41, 0x41, 0x41));
    assert.equal(lb.context.readConfig(InputConfig.SIZE, 1)[0], 3);
    assert.equal(new TextDecoder().decode(lb.context.readConfig(InputConfig.U, 3)), 'kbd');
    device.reset();
    const b = new Uint8Array(3);
    device.readConfig(0, b, 0n, true);
    assert.deepEqual([...b], [0, 0, 0]);
    input.detach();
  });

  for (const packed of [false, true]) {
    it(`5.8.6: events reach the driver in order, little-endian, signed values (${packed ? 'packed' : 'split'})`, async () => {
      const device = new InputDevice({ profile: mouseProfile() });
      const lb = await setup(device, packed);
      const input = new InputDriver(lb.context, { eventBuffers: 4 });
      assert.ok(device.sendUpdate([ev(EvType.REL, EvCode.REL_X, -5), ev(EvType.REL, EvCode.REL_Y, 0x7fff_ffff)]));
      assert.ok(device.sendUpdate([ev(EvType.REL, EvCode.REL_WHEEL, -0x8000_0000)]));
      assert.deepEqual(await input.nextEvents(5), [
        ev(EvType.REL, EvCode.REL_X, -5),
        ev(EvType.REL, EvCode.REL_Y, 0x7fff_ffff),
        ev(EvType.SYN, EvCode.SYN_REPORT, 0),
        ev(EvType.REL, EvCode.REL_WHEEL, -0x8000_0000),
        ev(EvType.SYN, EvCode.SYN_REPORT, 0),
      ]);
      assert.equal(device.queuedEvents, 0);
      input.detach();
    });
  }

  it('the byte layout of one event: le16 type, le16 code, le32 value; used length 8', async () => {
    const device = new InputDevice({ profile: keyboardProfile() });
    const lb = await setup(device);
    const q = raw(lb.context, 0);
    const addr = lb.dma.alloc(16);
    lb.memory.fill(addr, 16, 0xee);
    const used = q.send([], [{ addr, len: 16 }]);
    await Promise.resolve();
    assert.equal(device.postedBuffers, 1, 'the buffer waits for an event');
    device.sendUpdate([ev(EvType.KEY, EvCode.KEY_A, 2)]);
    assert.equal(await used, InputEvent.BYTES);
    const b = lb.memory.slice(addr, 16);
    assert.deepEqual([...b], [1, 0, 30, 0, 2, 0, 0, 0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee]);
  });

  it('device/input/2, device/input/3, device/input/4: events wait bounded; an update that does not fit is dropped whole', async () => {
    const device = new InputDevice({ profile: keyboardProfile(), maxQueuedEvents: 5 });
    const lb = await setup(device);
    // No buffers yet: two 2-event updates wait (4 of 5 slots) ...
    assert.ok(device.sendUpdate([ev(EvType.KEY, 1, 1)]));
    assert.ok(device.sendUpdate([ev(EvType.KEY, 1, 0)]));
    // ... and a third does not fit whole: none of it is kept, not even its first event.
    assert.equal(device.sendUpdate([ev(EvType.KEY, 2, 1)]), false);
    assert.equal(device.queuedEvents, 4);
    assert.equal(device.droppedEvents, 2);
    const input = new InputDriver(lb.context, { eventBuffers: 2 });
    const got = await input.nextEvents(4);
    assert.deepEqual(got.map((e) => [e.type, e.code, e.value]), [[1, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 0]]);
    assert.ok(device.tapKey(EvCode.KEY_ENTER));
    // A tap needs 4 free slots of 5; some of the 4 above still wait: neither press nor release is queued.
    const waiting = device.queuedEvents;
    assert.ok(waiting > 1, `${waiting} events waiting`);
    assert.equal(device.tapKey(EvCode.KEY_ESC), false);
    assert.equal(device.queuedEvents, waiting);
    assert.deepEqual((await input.nextEvents(4)).map((e) => e.value), [1, 0, 0, 0]);
    input.detach();
  });

  it('driver/input/5: a buffer shorter than an event, or device-readable, comes back unused; the event waits for a good one', async () => {
    const device = new InputDevice({ profile: keyboardProfile() });
    const lb = await setup(device);
    device.sendUpdate([ev(EvType.KEY, 5, 1)]);
    const q = raw(lb.context, 0);
    const short = lb.dma.alloc(8);
    assert.equal(await q.send([], [{ addr: short, len: 7 }]), 0);
    assert.equal(await q.send([{ addr: short, len: 8 }], []), 0);
    assert.equal(device.queuedEvents, 2, 'nothing consumed');
    assert.deepEqual(lb.memory.slice(short, 8), new Uint8Array(8));
    const good = lb.dma.alloc(8);
    assert.equal(await q.send([], [{ addr: good, len: 8 }]), 8);
    assert.deepEqual([...lb.memory.slice(good, 8)], [1, 0, 5, 0, 1, 0, 0, 0]);
    assert.equal(lb.core.status & 0x40, 0, 'no DEVICE_NEEDS_RESET');
  });

  it('driver/input/6: status events reach onStatus; a short status buffer is ignored', async () => {
    const seen: number[][] = [];
    const device = new InputDevice({ profile: keyboardProfile(), onStatus: (t, c, v) => void seen.push([t, c, v]) });
    const lb = await setup(device);
    const input = new InputDriver(lb.context);
    await input.sendStatus(EvType.LED, EvCode.LED_NUML, 1);
    await input.sendStatus(EvType.LED, EvCode.LED_SCROLLL, 0);
    const q = raw(lb.context, 1);
    const a = lb.dma.alloc(8);
    assert.equal(await q.send([{ addr: a, len: 4 }], []), 0);
    assert.deepEqual(seen, [[EvType.LED, EvCode.LED_NUML, 1], [EvType.LED, EvCode.LED_SCROLLL, 0]]);
    input.detach();
  });

  it('device reset drops held buffers and waiting events; the device serves the next driver', async () => {
    const device = new InputDevice({ profile: keyboardProfile() });
    const lb = await setup(device);
    const input = new InputDriver(lb.context, { eventBuffers: 3 });
    await Promise.resolve();
    assert.equal(device.postedBuffers, 3);
    const pending = input.nextEvents(1);
    lb.driver.reset();
    await assert.rejects(pending);
    assert.equal(device.postedBuffers, 0);
    device.sendUpdate([ev(EvType.KEY, 1, 1)]);
    assert.equal(device.queuedEvents, 2, 'kept until a driver posts buffers');
  });

  it('vhost-user GET_CONFIG / SET_CONFIG: select and subsel through messages, the answer follows', async () => {
    const p = new LoopbackPlatform();
    const s = openSession(p, new InputDevice({ profile: keyboardProfile('vu kbd') }));
    try {
      const f = s.front;
      await f.getFeatures();
      await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
      f.needReply = true;
      assert.equal(await f.setConfig(0, Uint8Array.of(InputConfigSelect.ID_NAME, 0)), 0);
      const c = (await f.getConfig(0, InputConfig.BYTES))!.data;
      assert.equal(c[InputConfig.SIZE], 6);
      assert.equal(new TextDecoder().decode(c.subarray(InputConfig.U, InputConfig.U + 6)), 'vu kbd');
      assert.equal(await f.setConfig(0, Uint8Array.of(InputConfigSelect.EV_BITS, EvType.LED)), 0);
      const l = (await f.getConfig(0, InputConfig.BYTES))!.data;
      assert.deepEqual([l[InputConfig.SIZE], l[InputConfig.U]], [1, 0b111]);
    } finally {
      s.close();
    }
  });

  it('driver/input/7: with acceptAnnouncedOnly the driver ignores events the device did not announce (unknown types and codes)', async () => {
    const device = new InputDevice({ profile: keyboardProfile('kbd') });
    const lb = await setup(device);
    const input = new InputDriver(lb.context, { eventBuffers: 8 });
    await input.acceptAnnouncedOnly();
    // A relative motion (a keyboard announces no EV_REL), a type no evdev defines, a key code
    // beyond the announced range: all ignored; the key press and the SYN_REPORTs come through.
    assert.ok(device.sendUpdate([ev(EvType.REL, EvCode.REL_X, 5), ev(0x1e, 1, 1), ev(EvType.KEY, 0x2ff, 1), ev(EvType.KEY, EvCode.KEY_A, 1)]));
    assert.ok(device.sendUpdate([ev(EvType.LED, EvCode.LED_CAPSL, 1)]));
    assert.deepEqual(await input.nextEvents(4), [ev(EvType.KEY, EvCode.KEY_A, 1), ev(EvType.SYN, EvCode.SYN_REPORT, 0), ev(EvType.LED, EvCode.LED_CAPSL, 1), ev(EvType.SYN, EvCode.SYN_REPORT, 0)]);
    assert.equal(input.stats.ignored, 3);
    input.detach();
    // Without the filter every event reaches the caller (interpreting them is its business).
    const lb2 = await setup(new InputDevice({ profile: keyboardProfile('kbd') }));
    const all = new InputDriver(lb2.context, { eventBuffers: 8 });
    assert.ok((lb2.core.device as InputDevice).sendUpdate([ev(0x1e, 1, 1)]));
    assert.deepEqual(await all.nextEvents(2), [ev(0x1e, 1, 1), ev(EvType.SYN, EvCode.SYN_REPORT, 0)]);
    all.detach();
  });

  it('driver/input/4: the driver reposts each buffer, so the eventq stays populated', async () => {
    const device = new InputDevice({ profile: keyboardProfile() });
    const lb = await setup(device);
    const input = new InputDriver(lb.context, { eventBuffers: 4 });
    await new Promise((r) => setImmediate(r));
    assert.equal(device.postedBuffers, 4);
    for (let i = 0; i < 5; i++) assert.ok(device.tapKey(EvCode.KEY_A));
    assert.equal((await input.nextEvents(20)).length, 20);
    await new Promise((r) => setImmediate(r));
    assert.equal(device.postedBuffers, 4, 'every used buffer came back');
    input.detach();
  });
});
