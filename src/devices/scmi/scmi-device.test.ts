import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  SCMI_SENSOR_READ_ASYNC,
  ScmiBaseMessage,
  ScmiF,
  ScmiMessageType,
  ScmiProtocol,
  ScmiSensorMessage,
  ScmiStatus,
  ScmiTripPoint,
  scmiHeader,
  scmiHeaderToken,
  scmiHeaderType,
} from '../../spec/scmi.js';
import { createTestPair } from '../blk/test-pair.js';
import { ScmiDevice, type ScmiDeviceOptions } from './scmi-device.js';
import { MAX_PENDING_NOTIFICATIONS } from './scmi-events.js';
import { SCMI_MAX_PENDING_ASYNC } from './scmi-sensor-protocol.js';

const T = { timeout: 10_000 };
const BOGUS = 0x7000_0000_0000;

interface Used {
  usedLen: number;
  bytes: Uint8Array;
}

/** Hand-built buffers on the cmdq and eventq. */
class RawScmi {
  private token = 1;
  private readonly waiting = new Map<number, (len: number) => void>();
  constructor(private readonly ctx: DriverContext) {
    for (const qi of [0, 1]) {
      if (qi >= ctx.numQueues) continue;
      ctx.onUsed(qi, () => {
        const q = ctx.queue(qi);
        do {
          for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) this.waiting.get(t)?.(q.lastUsedLen);
        } while (q.enableInterrupts());
      });
    }
  }
  private async post(qi: number, out: Uint8Array | null, inLen: number, opts: { bogusIn?: boolean } = {}): Promise<Used> {
    const { ctx } = this;
    const outs: Segment[] = [];
    if (out !== null) {
      const a = ctx.dma.alloc(Math.max(1, out.length));
      ctx.memory.write(a, out);
      outs.push({ addr: a, len: out.length });
    }
    const ins: Segment[] = [];
    if (inLen > 0) {
      const a = ctx.dma.alloc(inLen);
      ctx.memory.fill(a, inLen, 0xee);
      ins.push({ addr: opts.bogusIn ? BOGUS : a, len: inLen });
    }
    const t = this.token++;
    const done = new Promise<number>((r) => this.waiting.set(t, r));
    assert.ok(ctx.queue(qi).add(outs, ins, t));
    ctx.kick(qi);
    const usedLen = await done;
    const bytes = new Uint8Array(inLen);
    if (inLen > 0 && !opts.bogusIn) ctx.memory.read(ins[0]!.addr, bytes);
    return { usedLen, bytes: bytes.subarray(0, usedLen) };
  }
  /** A command: header then le32 params; room for `room` bytes of response. */
  async cmd(protocol: number, msg: number, params: readonly number[], room = 64, token = 0): Promise<{ usedLen: number; header: number; status: number; words: number[]; bytes: Uint8Array }> {
    const b = new Uint8Array(4 + params.length * 4);
    const v = new DataView(b.buffer);
    v.setUint32(0, scmiHeader(protocol, msg, ScmiMessageType.COMMAND, token), true);
    params.forEach((p, i) => v.setUint32(4 + i * 4, p >>> 0, true));
    return this.raw(b, room);
  }
  async raw(b: Uint8Array, room: number, opts: { bogusIn?: boolean } = {}) {
    const r = await this.post(0, b, room, opts);
    const v = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.length);
    const words: number[] = [];
    for (let i = 8; i + 4 <= r.usedLen; i += 4) words.push(v.getUint32(i, true));
    return { usedLen: r.usedLen, header: r.usedLen >= 4 ? v.getUint32(0, true) : -1, status: r.usedLen >= 8 ? v.getInt32(4, true) : NaN, words, bytes: r.bytes };
  }
  /** `n` commands added to the cmdq, then one notification; resolves with every response. */
  async burst(n: number, make: (i: number) => [number, number, number]): Promise<{ usedLen: number; words: number[] }[]> {
    const { ctx } = this;
    const done: Promise<{ usedLen: number; words: number[] }>[] = [];
    for (let i = 0; i < n; i++) {
      const [p, m, sensor] = make(i);
      const a = ctx.dma.alloc(12 + 64);
      const v = new DataView(new ArrayBuffer(12));
      v.setUint32(0, scmiHeader(p, m, ScmiMessageType.COMMAND, i), true);
      v.setUint32(4, sensor, true);
      ctx.memory.write(a, new Uint8Array(v.buffer));
      const t = this.token++;
      done.push(
        new Promise<number>((r) => this.waiting.set(t, r)).then((usedLen) => {
          const b = ctx.memory.slice(a + 12, usedLen);
          const bv = new DataView(b.buffer, b.byteOffset, b.length);
          const words: number[] = [];
          for (let k = 4; k + 4 <= usedLen; k += 4) words.push(bv.getUint32(k, true));
          return { usedLen, words };
        }),
      );
      assert.ok(ctx.queue(0).add([{ addr: a, len: 12 }], [{ addr: a + 12, len: 64 }], t), `add ${i}`);
    }
    ctx.kick(0);
    return Promise.all(done);
  }

  /** An eventq buffer: resolves when the device used it. */
  event(len = 64, readable = false): Promise<Used> {
    return this.post(1, readable ? new Uint8Array(8) : null, len);
  }
}

function setup(opts: ScmiDeviceOptions = {}, p2a = true, packed = false) {
  const device = new ScmiDevice({ sensors: [{ name: 'temp', value: 20 }, { name: 'fan', value: 1000, tripPoints: 1 }], ...opts });
  const pair = createTestPair(device, { packed, accept: p2a ? ~0n : ~ScmiF.P2A_CHANNELS });
  return { device, pair, raw: new RawScmi(pair.ctx) };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('ScmiDevice', T, () => {
  it('device/scmi/1 device/scmi/2: 5.17 device id 32, P2A_CHANNELS offered (notifications and delayed responses exist), SHARED_MEMORY not (no statistics region), no config, two queues', () => {
    const d = new ScmiDevice();
    assert.equal(d.deviceId, DeviceId.SCMI);
    assert.notEqual(d.offeredFeatures & ScmiF.P2A_CHANNELS, 0n);
    assert.equal(d.offeredFeatures & ScmiF.SHARED_MEMORY, 0n);
    assert.equal(d.offeredFeatures & F.IN_ORDER, 0n, 'commands may complete out of order');
    assert.equal(d.configSize, 0);
    assert.equal(d.queueMaxSizes.length, 2);
  });

  for (const packed of [false, true]) {
    it(`Base protocol: version, attributes, message attributes, vendor, sub-vendor, implementation version, protocol list (${packed ? 'packed' : 'split'})`, async () => {
      const { raw, pair } = setup({ vendor: 'acme', subVendor: 'lab', implementationVersion: 0x1234 }, true, packed);
      const B = ScmiProtocol.BASE;
      const ver = await raw.cmd(B, ScmiBaseMessage.PROTOCOL_VERSION, [], 64, 77);
      assert.equal(ver.usedLen, 12);
      assert.equal(scmiHeaderToken(ver.header), 77, 'the response carries the command header');
      assert.equal(scmiHeaderType(ver.header), ScmiMessageType.COMMAND);
      assert.deepEqual([ver.status, ...ver.words], [0, 0x10000]);
      assert.deepEqual((await raw.cmd(B, ScmiBaseMessage.PROTOCOL_ATTRIBUTES, [])).words, [0x101]);
      for (let m = 0; m <= 6; m++) assert.equal((await raw.cmd(B, ScmiBaseMessage.PROTOCOL_MESSAGE_ATTRIBUTES, [m])).status, 0);
      for (const m of [7, 8, 0x42]) assert.equal((await raw.cmd(B, ScmiBaseMessage.PROTOCOL_MESSAGE_ATTRIBUTES, [m])).status, ScmiStatus.NOT_FOUND);
      const vendor = await raw.cmd(B, ScmiBaseMessage.DISCOVER_VENDOR, []);
      assert.equal(vendor.usedLen, 24);
      assert.equal(new TextDecoder().decode(vendor.bytes.subarray(8, 12)), 'acme');
      assert.equal(vendor.bytes[12], 0);
      assert.equal(new TextDecoder().decode((await raw.cmd(B, ScmiBaseMessage.DISCOVER_SUB_VENDOR, [])).bytes.subarray(8, 11)), 'lab');
      assert.deepEqual((await raw.cmd(B, ScmiBaseMessage.DISCOVER_IMPLEMENTATION_VERSION, [])).words, [0x1234]);
      assert.deepEqual((await raw.cmd(B, ScmiBaseMessage.DISCOVER_LIST_PROTOCOLS, [0])).words, [1, ScmiProtocol.SENSOR]);
      assert.deepEqual((await raw.cmd(B, ScmiBaseMessage.DISCOVER_LIST_PROTOCOLS, [1])).words, [0]);
      assert.equal((await raw.cmd(B, ScmiBaseMessage.DISCOVER_LIST_PROTOCOLS, [2])).status, ScmiStatus.INVALID_PARAMETERS);
      assert.equal((await raw.cmd(B, ScmiBaseMessage.DISCOVER_AGENT, [0])).status, ScmiStatus.NOT_SUPPORTED);
      assert.deepEqual(pair.resets, []);
    });
  }

  it('Sensor protocol: attributes, descriptions paged by the buffer, synchronous reading, trip point configuration errors', async () => {
    const sensors = Array.from({ length: 11 }, (_, i) => ({ name: `s${i}`, value: i * 100 - 300 }));
    const { raw } = setup({ sensors });
    const S = ScmiProtocol.SENSOR;
    assert.deepEqual((await raw.cmd(S, ScmiSensorMessage.PROTOCOL_VERSION, [])).words, [0x10000]);
    assert.deepEqual((await raw.cmd(S, ScmiSensorMessage.PROTOCOL_ATTRIBUTES, [])).words, [11 | (SCMI_MAX_PENDING_ASYNC << 16), 0, 0, 0]);
    // Room for 3 descriptors: 3 returned, 8 remaining.
    const page = await raw.cmd(S, ScmiSensorMessage.DESCRIPTION_GET, [0], 8 + 4 + 3 * 28);
    assert.equal(page.words[0], 3 | (8 << 16));
    assert.equal(page.usedLen, 8 + 4 + 3 * 28);
    const last = await raw.cmd(S, ScmiSensorMessage.DESCRIPTION_GET, [9], 512);
    assert.equal(last.words[0], 2);
    assert.equal(last.words[1], 9);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.DESCRIPTION_GET, [11])).status, ScmiStatus.INVALID_PARAMETERS);
    const r = await raw.cmd(S, ScmiSensorMessage.READING_GET, [0, 0]);
    assert.deepEqual([r.status, r.words[0], r.words[1]], [0, (-300 >>> 0), 0xffff_ffff]);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.READING_GET, [11, 0])).status, ScmiStatus.NOT_FOUND);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_CONFIG, [0, 5 << ScmiTripPoint.ID_SHIFT, 0, 0])).status, ScmiStatus.INVALID_PARAMETERS);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_CONFIG, [20, 0, 0, 0])).status, ScmiStatus.NOT_FOUND);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_NOTIFY, [20, 1])).status, ScmiStatus.NOT_FOUND);
  });

  it('device/scmi/3: a command whose sensor answers later does not hold back the ones after it', async () => {
    let release: (v: number) => void = () => {};
    const { raw } = setup({ sensors: [{ name: 'slow', read: () => new Promise<number>((r) => (release = r)) }] });
    const order: string[] = [];
    const slow = raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [0, 0]).then((r) => (order.push('slow'), r));
    await tick();
    const fast = await raw.cmd(ScmiProtocol.BASE, ScmiBaseMessage.PROTOCOL_VERSION, []);
    order.push('fast');
    assert.equal(fast.status, 0);
    release(123);
    assert.deepEqual((await slow).words, [123, 0]);
    assert.deepEqual(order, ['fast', 'slow']);
  });

  it('device/scmi/4: a burst of 64 commands made available at once, with one notification, is answered in full, several times over', async () => {
    const device = new ScmiDevice({ sensors: [{ name: 'a', value: 20 }, { name: 'b', value: 1000 }] });
    const pair = createTestPair(device, { queueSize: 128 });
    const raw = new RawScmi(pair.ctx);
    for (let wave = 0; wave < 3; wave++) {
      const rs = await raw.burst(64, (i) => [ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, i % 2]);
      assert.equal(rs.length, 64);
      assert.ok(rs.every((r, i) => r.usedLen === 16 && r.words[1] === (i % 2 === 0 ? 20 : 1000)), JSON.stringify(rs.slice(0, 2)));
    }
    assert.deepEqual(pair.resets, []);
  });

  it('device/scmi/5: every status other than SUCCESS is the whole of ret_values (used length 8), whatever the room', async () => {
    const { raw, device } = setup();
    const cases = [
      raw.cmd(0x77, 0, [], 256),
      raw.cmd(ScmiProtocol.BASE, 0x42, [], 256),
      raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [9, 0], 256),
      raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [0], 256),
      raw.cmd(ScmiProtocol.BASE, ScmiBaseMessage.DISCOVER_LIST_PROTOCOLS, [5], 256),
      raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.DESCRIPTION_GET, [0], 8 + 4 + 10),
    ];
    const want = [ScmiStatus.NOT_SUPPORTED, ScmiStatus.NOT_SUPPORTED, ScmiStatus.NOT_FOUND, ScmiStatus.PROTOCOL_ERROR, ScmiStatus.INVALID_PARAMETERS, ScmiStatus.COMMS_ERROR];
    const got = await Promise.all(cases);
    assert.deepEqual(got.map((r) => r.status), want);
    assert.ok(got.every((r) => r.usedLen === 8));
    assert.equal(device.shortResponses, 0);
  });

  it('device/scmi/6 device/scmi/13: an asynchronous reading with no eventq buffer is SUCCESS; its delayed response goes out once a buffer comes, after a too-small one', async () => {
    const { raw, device } = setup();
    const r = await raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [1, SCMI_SENSOR_READ_ASYNC], 64, 300);
    assert.equal(r.status, ScmiStatus.SUCCESS);
    assert.equal(r.usedLen, 8, 'the immediate response is the status only');
    await tick();
    assert.equal(device.events.delayedWaiting, 1);
    const small = await raw.event(8);
    assert.equal(small.usedLen, 0, 'too small: given back, the delayed response kept');
    const e = await raw.event(64);
    assert.equal(e.usedLen, 20);
    const v = new DataView(e.bytes.buffer);
    const h = v.getUint32(0, true);
    assert.equal(scmiHeaderType(h), ScmiMessageType.DELAYED_RESPONSE);
    assert.equal(scmiHeaderToken(h), 300);
    assert.equal(h & 0xff, ScmiSensorMessage.READING_GET);
    assert.deepEqual([v.getInt32(4, true), v.getUint32(8, true), v.getUint32(12, true), v.getUint32(16, true)], [0, 1, 1000, 0]);
    assert.equal(device.events.delayedWaiting, 0);
  });

  it('device/scmi/7 device/scmi/8: without P2A_CHANNELS, no notification or delayed response is implemented or shown, and asking is NOT_SUPPORTED', async () => {
    const { raw, pair } = setup({}, false);
    assert.equal(pair.features & ScmiF.P2A_CHANNELS, 0n);
    const S = ScmiProtocol.SENSOR;
    assert.equal((await raw.cmd(S, ScmiSensorMessage.READING_GET, [0, SCMI_SENSOR_READ_ASYNC])).status, ScmiStatus.NOT_SUPPORTED);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_NOTIFY, [0, 1])).status, ScmiStatus.NOT_SUPPORTED);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_CONFIG, [0, ScmiTripPoint.BOTH, 5, 0])).status, ScmiStatus.NOT_SUPPORTED);
    for (const m of [ScmiSensorMessage.TRIP_POINT_NOTIFY, ScmiSensorMessage.TRIP_POINT_CONFIG]) {
      assert.equal((await raw.cmd(S, ScmiSensorMessage.PROTOCOL_MESSAGE_ATTRIBUTES, [m])).status, ScmiStatus.NOT_FOUND);
    }
    assert.equal((await raw.cmd(S, ScmiSensorMessage.PROTOCOL_MESSAGE_ATTRIBUTES, [ScmiSensorMessage.READING_GET])).status, 0);
    assert.deepEqual((await raw.cmd(S, ScmiSensorMessage.PROTOCOL_ATTRIBUTES, [])).words, [2, 0, 0, 0], 'no pending asynchronous commands');
    const d = await raw.cmd(S, ScmiSensorMessage.DESCRIPTION_GET, [0], 256);
    assert.equal(d.words[2], 0, 'attributes_low: no asynchronous reading, no trip points');
    assert.equal(d.words[2 + 7], 0);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.READING_GET, [0, 0])).words[0], 20, 'synchronous readings work');
    // With P2A: both implemented, descriptors show async reading and trip points.
    const p = setup();
    assert.equal((await p.raw.cmd(S, ScmiSensorMessage.PROTOCOL_MESSAGE_ATTRIBUTES, [ScmiSensorMessage.TRIP_POINT_NOTIFY])).status, 0);
    assert.equal((await p.raw.cmd(S, ScmiSensorMessage.DESCRIPTION_GET, [0], 256)).words[2], (0x8000_0002 >>> 0));
  });

  it('device/scmi/9 device/scmi/10: notifications with no eventq buffer are kept (up to 16) and sent later; beyond that dropped', async () => {
    const { raw, device } = setup();
    const S = ScmiProtocol.SENSOR;
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_CONFIG, [0, ScmiTripPoint.BOTH, 50, 0])).status, 0);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_NOTIFY, [0, 1])).status, 0);
    for (let i = 0; i < 10; i++) {
      device.sensors.setValue(0, 60);
      device.sensors.setValue(0, 40);
    }
    assert.equal(device.events.messagesWaiting, MAX_PENDING_NOTIFICATIONS);
    assert.equal(device.events.dropped, 20 - MAX_PENDING_NOTIFICATIONS);
    const got = await Promise.all(Array.from({ length: MAX_PENDING_NOTIFICATIONS }, () => raw.event()));
    const descs = got.map((e) => new DataView(e.bytes.buffer).getUint32(12, true));
    assert.deepEqual(descs.slice(0, 4), [ScmiTripPoint.DESC_ASCENDING, 0, ScmiTripPoint.DESC_ASCENDING, 0]);
    for (const e of got) {
      assert.equal(e.usedLen, 16);
      assert.equal(scmiHeaderType(new DataView(e.bytes.buffer).getUint32(0, true)), ScmiMessageType.NOTIFICATION);
      assert.equal(new DataView(e.bytes.buffer).getUint32(8, true), 0, 'sensor 0');
    }
    assert.equal(device.events.messagesWaiting, 0);
    // Trip points watching one direction only; notifications off: nothing.
    await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_CONFIG, [0, ScmiTripPoint.NEGATIVE, 50, 0]);
    device.sensors.setValue(0, 70);
    assert.equal(device.events.messagesWaiting, 0);
    await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_NOTIFY, [0, 0]);
    device.sensors.setValue(0, 10);
    assert.equal(device.events.messagesWaiting, 0);
  });

  it('a device reset forgets the trip points and notifications the agent configured: a crossing after it raises nothing', async () => {
    const { raw, device, pair } = setup();
    const S = ScmiProtocol.SENSOR;
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_CONFIG, [0, ScmiTripPoint.BOTH, 50, 0])).status, 0);
    assert.equal((await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_NOTIFY, [0, 1])).status, 0);
    device.sensors.setValue(0, 60);
    assert.equal(device.events.messagesWaiting, 1, 'configured: the crossing is notified');
    device.reset();
    assert.equal(device.events.messagesWaiting, 0);
    // Up again with P2A_CHANNELS (notifications possible again), nothing configured since.
    device.activate(pair.devCtx);
    device.sensors.setValue(0, 40);
    device.sensors.setValue(0, 60);
    assert.equal(device.events.messagesWaiting, 0, 'after the reset nothing was asked for');
  });

  it('device/scmi/12 driver/scmi/5: a notification meant for a too-small buffer is omitted (buffer used with length 0); buffers with readable parts are not used', async () => {
    const { raw, device } = setup();
    const S = ScmiProtocol.SENSOR;
    await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_CONFIG, [1, ScmiTripPoint.POSITIVE, 2000, 0]);
    await raw.cmd(S, ScmiSensorMessage.TRIP_POINT_NOTIFY, [1, 1]);
    const readable = await raw.event(64, true);
    assert.equal(readable.usedLen, 0);
    const small = raw.event(12);
    device.sensors.setValue(1, 3000);
    assert.equal((await small).usedLen, 0);
    assert.equal(device.events.dropped, 1);
    assert.equal(device.events.messagesWaiting, 0);
  });

  it('device/scmi/14: a failed delayed response carries only the status', async () => {
    const { raw } = setup({
      sensors: [
        {
          name: 'broken',
          read: () => {
            throw new Error('i2c timeout');
          },
        },
      ],
    });
    const ev = raw.event(64);
    const r = await raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [0, SCMI_SENSOR_READ_ASYNC]);
    assert.equal(r.status, 0);
    const e = await ev;
    assert.equal(e.usedLen, 8);
    assert.equal(new DataView(e.bytes.buffer).getInt32(4, true), ScmiStatus.HARDWARE_ERROR);
    assert.equal((await raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [0, 0])).status, ScmiStatus.HARDWARE_ERROR);
  });

  it(`asynchronous readings beyond ${SCMI_MAX_PENDING_ASYNC} pending are BUSY`, async () => {
    const { raw } = setup();
    for (let i = 0; i < SCMI_MAX_PENDING_ASYNC; i++) assert.equal((await raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [0, 1])).status, 0);
    await tick();
    assert.equal((await raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [0, 1])).status, ScmiStatus.BUSY);
    await raw.event();
    assert.equal((await raw.cmd(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [0, 1])).status, 0);
  });

  it('untrusted driver: short or foreign headers, no room, unmapped buffers, a reset while a reading is pending: an SCMI error or length 0, never a throw', async () => {
    let release: (v: number) => void = () => {};
    const { raw, pair, device } = setup({ sensors: [{ name: 'slow', read: () => new Promise<number>((r) => (release = r)) }] });
    const short = await raw.raw(new Uint8Array([1, 2]), 64);
    assert.equal(short.usedLen, 8);
    assert.equal(short.status, ScmiStatus.PROTOCOL_ERROR);
    const notCmd = new Uint8Array(4);
    new DataView(notCmd.buffer).setUint32(0, scmiHeader(ScmiProtocol.BASE, 0, ScmiMessageType.NOTIFICATION, 3), true);
    assert.equal((await raw.raw(notCmd, 64)).status, ScmiStatus.PROTOCOL_ERROR);
    assert.equal((await raw.cmd(ScmiProtocol.BASE, 0, [], 6)).usedLen, 0, 'no room for header and status');
    assert.equal((await raw.raw(notCmd, 64, { bogusIn: true })).usedLen, 0);
    // A response larger than the room is cut (the driver broke driver/scmi/2), and counted.
    const cut = await raw.cmd(ScmiProtocol.BASE, ScmiBaseMessage.DISCOVER_VENDOR, [], 12);
    assert.equal(cut.usedLen, 12);
    assert.equal(device.shortResponses, 1);
    // A reading pending across a device reset: its buffer is never written afterwards.
    const ctx = pair.ctx;
    const a = ctx.dma.alloc(12 + 64);
    const req = new DataView(new ArrayBuffer(12));
    req.setUint32(0, scmiHeader(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, ScmiMessageType.COMMAND, 9), true);
    ctx.memory.write(a, new Uint8Array(req.buffer));
    ctx.memory.fill(a + 12, 64, 0xee);
    assert.ok(ctx.queue(0).add([{ addr: a, len: 12 }], [{ addr: a + 12, len: 64 }], 999));
    ctx.kick(0);
    await tick();
    device.reset();
    release(5);
    await tick();
    assert.ok(ctx.memory.slice(a + 12, 64).every((b) => b === 0xee), 'the response buffer is untouched after the reset');
    assert.deepEqual(pair.resets, []);
  });
});
