import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtioError } from '../../errors.js';
import { CAN_S_CTRL_BUSOFF, CanF, CanFlags, CanMsgType, CanQueue, CanResult } from '../../spec/can.js';
import { F } from '../../spec/features.js';
import { createTestPair, type TestPair } from '../blk/test-pair.js';
import { RawQueue } from '../sound/sound-test-support.js';
import { CanBus, type CanFrame, CanHostPort } from './can-bus.js';
import { CanDevice, type CanDeviceOptions } from './can-device.js';
import { CanDriver, CanRequestError } from './can-driver.js';

const T = { timeout: 20_000 };
const ALL = CanF.CAN_CLASSIC | CanF.CAN_FD | CanF.RTR_FRAMES | CanF.LATE_TX_ACK;
const TRANSPORT = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;

interface Rig {
  bus: CanBus;
  host: CanHostPort;
  device: CanDevice;
  pair: TestPair;
  drv: CanDriver;
}

function rig(accept: bigint = ALL, devOpts: CanDeviceOptions = {}, pairOpts: { littleEndian?: boolean; legacy?: boolean } = {}, bus = new CanBus()): Rig {
  const host = new CanHostPort(bus);
  const device = new CanDevice(bus, devOpts);
  const pair = createTestPair(device, { queueSize: 32, accept: accept | (pairOpts.legacy ? 0n : TRANSPORT), ...(pairOpts.littleEndian === false ? { littleEndian: false } : {}) });
  const drv = new CanDriver(pair.ctx, { rxBuffers: 4 });
  return { bus, host, device, pair, drv };
}

/** A device and its test pair with no driver (raw requests only). */
function bare(devOpts: CanDeviceOptions = {}): { host: CanHostPort; device: CanDevice; pair: TestPair } {
  const bus = new CanBus();
  const host = new CanHostPort(bus);
  const device = new CanDevice(bus, devOpts);
  return { host, device, pair: createTestPair(device, { queueSize: 32, accept: ALL | TRANSPORT }) };
}

const frame = (o: Partial<CanFrame> = {}): CanFrame => ({ id: 0x100, extended: false, fd: false, rtr: false, length: 2, data: Uint8Array.of(1, 2), ...o });

/** struct virtio_can_tx_out with any field values. */
function txOut(o: { msgType?: number; length: number; flags: number; id: number; sdu?: number; dlc?: number }, le = true): Uint8Array {
  const b = new Uint8Array(16 + (o.sdu ?? o.length));
  const v = new DataView(b.buffer);
  v.setUint16(0, o.msgType ?? CanMsgType.TX, le);
  v.setUint16(2, o.length, le);
  b[4] = o.dlc ?? 0;
  v.setUint32(8, o.flags >>> 0, le);
  v.setUint32(12, o.id >>> 0, le);
  return b;
}

/** Proves nothing reached the bus before: the next frame the host gets is this marker. */
async function nextIsMarker(r: Rig): Promise<void> {
  await r.drv.send(frame({ id: 0x7aa, length: 1, data: Uint8Array.of(0x5a) }));
  const f = await r.host.next();
  assert.equal(f.id, 0x7aa, `the bus carried frame ${f.id.toString(16)} before the marker`);
}

describe('CanDevice', T, () => {
  it('device/can/1: a frame type not negotiated, or an undefined flag, gets NOT_OK and is not transmitted', async () => {
    const r = rig(CanF.CAN_CLASSIC);
    await r.drv.start();
    assert.equal(await r.drv.sendRaw(txOut({ length: 8, flags: CanFlags.FD, id: 1 })), CanResult.NOT_OK, 'FD not negotiated');
    assert.equal(await r.drv.sendRaw(txOut({ length: 2, flags: CanFlags.RTR, id: 1, sdu: 0 })), CanResult.NOT_OK, 'RTR not negotiated');
    assert.equal(await r.drv.sendRaw(txOut({ length: 2, flags: 0x1000, id: 1 })), CanResult.NOT_OK, 'undefined flag bit');
    assert.equal(await r.drv.sendRaw(txOut({ length: 2, flags: 1, id: 1 })), CanResult.NOT_OK, 'undefined low flag bit');
    await nextIsMarker(r);
    // FD only: classic frames refused; RTR with FD refused even with RTR_FRAMES.
    const fdOnly = rig(CanF.CAN_FD, { features: CanF.CAN_FD });
    await fdOnly.drv.start();
    assert.equal(await fdOnly.drv.sendRaw(txOut({ length: 2, flags: 0, id: 1 })), CanResult.NOT_OK, 'classic not negotiated');
    const all = rig();
    await all.drv.start();
    assert.equal(await all.drv.sendRaw(txOut({ length: 2, flags: CanFlags.RTR | CanFlags.FD, id: 1, sdu: 0 })), CanResult.NOT_OK, 'RTR frames are classic only');
    await nextIsMarker(all);
    assert.equal(await fdOnly.drv.sendRaw(txOut({ length: 12, flags: CanFlags.FD, id: 1 })), CanResult.OK);
  });

  it('device/can/2: identifier or length out of range, a short sdu, a stopped controller: NOT_OK, not transmitted', async () => {
    const r = rig();
    assert.equal(await r.drv.sendRaw(txOut({ length: 1, flags: 0, id: 1 })), CanResult.NOT_OK, 'controller stopped (initial state)');
    await r.drv.start();
    const bad: [string, Uint8Array][] = [
      ['standard id above 11 bits', txOut({ length: 1, flags: 0, id: 0x800 })],
      ['extended id above 29 bits', txOut({ length: 1, flags: CanFlags.EXTENDED, id: 0x20000000 })],
      ['classic length 9', txOut({ length: 9, flags: 0, id: 1 })],
      ['FD length 13 (no DLC gives it)', txOut({ length: 13, flags: CanFlags.FD, id: 1 })],
      ['FD length 65', txOut({ length: 65, flags: CanFlags.FD, id: 1 })],
      ['sdu shorter than length', txOut({ length: 8, flags: 0, id: 1, sdu: 4 })],
      ['wrong msg_type', txOut({ msgType: CanMsgType.RX, length: 1, flags: 0, id: 1 })],
      ['header shorter than 16 bytes', new Uint8Array(10)],
    ];
    for (const [what, req] of bad) assert.equal(await r.drv.sendRaw(req), CanResult.NOT_OK, what);
    await nextIsMarker(r);
    await r.drv.stop();
    assert.equal(await r.drv.sendRaw(txOut({ length: 1, flags: 0, id: 1 })), CanResult.NOT_OK, 'controller stopped');
    assert.equal(r.bus.delivered, 1, 'only the marker went on the bus');
    // In range: the largest ids and lengths, DLC 9..15 for an 8-byte classic frame.
    await r.drv.start();
    assert.equal(await r.drv.sendRaw(txOut({ length: 8, flags: 0, id: 0x7ff, dlc: 15 })), CanResult.OK);
    assert.equal((await r.host.next()).dlc, 15);
    assert.equal(await r.drv.sendRaw(txOut({ length: 64, flags: CanFlags.FD | CanFlags.EXTENDED, id: 0x1fffffff })), CanResult.OK);
    assert.deepEqual([(await r.host.next()).length], [64]);
  });

  it('device/can/3: with LATE_TX_ACK a request is used only after the bus transmitted the frame; STOP withdraws pending frames with NOT_OK', async () => {
    const r = rig();
    assert.notEqual(r.pair.features & CanF.LATE_TX_ACK, 0n);
    await r.drv.start();
    const order: string[] = [];
    r.host.onFrame(() => order.push('bus'));
    await r.drv.send(frame()).then(() => order.push('used'));
    assert.deepEqual(order, ['bus', 'used']);
    assert.equal((await r.host.next()).id, 0x100);
    // Frames handed to the bus, then STOP before the bus carried them.
    const sends = [0, 1, 2].map((i) => r.drv.send(frame({ id: 0x200 + i })).then(() => 'ok', (e: unknown) => (e instanceof CanRequestError ? e.result : -1)));
    const stop = r.drv.stop();
    assert.deepEqual(await Promise.all(sends), [CanResult.NOT_OK, CanResult.NOT_OK, CanResult.NOT_OK]);
    await stop;
    await r.drv.start();
    await nextIsMarker(r);
    assert.equal(order.length, 3, 'the withdrawn frames never reached the bus');
  });

  it('device/can/4: without LATE_TX_ACK a request is used once scheduled, before the bus carried it', async () => {
    const r = rig(CanF.CAN_CLASSIC | CanF.CAN_FD);
    assert.equal(r.pair.features & CanF.LATE_TX_ACK, 0n);
    await r.drv.start();
    let carried = false;
    r.host.onFrame(() => (carried = true));
    await r.drv.send(frame());
    assert.equal(carried, false, 'used before the bus delivered');
    await r.host.next();
    assert.equal(carried, true);
  });

  it('a loopback bus: a frame sent by one device is received by every other device and host port, not by the sender', async () => {
    const bus = new CanBus();
    const nodes = [rig(ALL, {}, {}, bus), rig(ALL, {}, {}, bus), rig(ALL, {}, {}, bus)];
    for (const n of nodes) await n.drv.start();
    const f = frame({ id: 0x1234567, extended: true, fd: true, length: 16, data: Uint8Array.from({ length: 16 }, (_, i) => i) });
    const got = [nodes[1]!.drv.nextFrame(), nodes[2]!.drv.nextFrame()];
    await nodes[0]!.drv.send(f);
    for (const g of await Promise.all(got)) assert.deepEqual([g.id, g.extended, g.fd, g.length, [...g.data]], [f.id, true, true, 16, [...f.data]]);
    assert.equal((await nodes[0]!.host.next()).id, f.id);
    assert.equal(nodes[0]!.device.rxFrames, 0, 'the sender did not receive its own frame');
    assert.equal(nodes[1]!.device.rxFrames, 1);
  });

  it('rx: frames wait for buffers (bounded backlog, overflow counted); not received when stopped or not negotiated; RTR frames carry no data', async () => {
    const r = rig(CanF.CAN_CLASSIC, { rxBacklog: 2 });
    r.host.send(frame({ id: 1 }));
    await new Promise((res) => setImmediate(res));
    assert.equal(r.device.rxFrames, 0, 'stopped: not received');
    await r.drv.start();
    r.host.send(frame({ id: 2, fd: true, length: 12, data: new Uint8Array(12) }));
    r.host.send(frame({ id: 3, rtr: true, length: 5, data: new Uint8Array(0) }));
    r.host.send(frame({ id: 4 }));
    r.host.send(frame({ id: 5 }));
    const ids = [await r.drv.nextFrame(), await r.drv.nextFrame()];
    assert.deepEqual(
      ids.map((f) => f.id),
      [4, 5],
      'the FD and RTR frames were not received (not negotiated)',
    );
    // No rx buffer posted: the raw device side with a backlog of 2.
    const r2 = bare({ rxBacklog: 2 });
    const raw = new RawQueue(r2.pair, CanQueue.CONTROLQ);
    await raw.submit([Uint8Array.of(0x01, 0x02)], [1]);
    for (let i = 0; i < 5; i++) r2.host.send(frame({ id: 0x10 + i }));
    await new Promise((res) => setImmediate(res));
    assert.equal(r2.device.rxDropped, 3);
    const rx = new RawQueue(r2.pair, CanQueue.RXQ);
    const a = await rx.submit([], [80]);
    const b = await rx.submit([], [80]);
    assert.deepEqual([a.used, b.used], [18, 18]);
    assert.deepEqual([new DataView(a.ins[0]!.buffer).getUint32(12, true), new DataView(b.ins[0]!.buffer).getUint32(12, true)], [0x10, 0x11]);
    const rtrRig = rig();
    await rtrRig.drv.start();
    const next = rtrRig.drv.nextFrame();
    rtrRig.host.send(frame({ id: 9, rtr: true, length: 5, data: new Uint8Array(0) }));
    const rtr = await next;
    assert.deepEqual([rtr.rtr, rtr.length, rtr.data.length], [true, 5, 0]);
  });

  it('malformed rx and control requests: returned empty or NOT_OK, never a throw or a reset', async () => {
    const r = bare();
    const rx = new RawQueue(r.pair, CanQueue.RXQ);
    assert.equal((await rx.submit([], [16 + 63])).used, 0, 'shorter than virtio_can_rx + 64 with CAN_FD');
    assert.equal((await rx.submit([new Uint8Array(4)], [80])).used, 0, 'device-readable part');
    const ctl = new RawQueue(r.pair, CanQueue.CONTROLQ);
    assert.deepEqual((await ctl.submit([Uint8Array.of(0x03, 0x02)], [1])).ins[0], Uint8Array.of(CanResult.NOT_OK), 'unknown msg_type');
    assert.deepEqual((await ctl.submit([Uint8Array.of(0x01)], [1])).ins[0], Uint8Array.of(CanResult.NOT_OK), 'short');
    assert.equal((await ctl.submit([Uint8Array.of(0x01, 0x02)], [])).used, 0, 'no result byte');
    const tx = new RawQueue(r.pair, CanQueue.TXQ);
    assert.equal((await tx.submit([txOut({ length: 1, flags: 0, id: 1 })], [])).used, 0, 'no result byte');
    let seed = 99;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (const q of [tx, ctl]) {
      for (let i = 0; i < 200; i++) {
        const b = new Uint8Array(rnd(40));
        for (let k = 0; k < b.length; k++) b[k] = rnd(3) === 0 ? rnd(256) : 0;
        if (b.length >= 2) b[0] = [0x01, 0x02, 0x01][rnd(3)]!;
        const inn = rnd(4) === 0 ? [] : [rnd(3)];
        if (b.length + inn.length === 0 || (b.length === 0 && inn.length === 0)) continue;
        await q.submit(b.length > 0 ? [b] : [], inn);
      }
    }
    assert.deepEqual(r.pair.resets, []);
  });

  it('bus-off: the controller stops, pending frames fail, BUSOFF is set with a configuration change; START clears it', async () => {
    const r = rig();
    await r.drv.start();
    let heard = 0;
    r.drv.onBusOff(() => heard++);
    const pending = r.drv.send(frame()).then(
      () => 'ok',
      (e: unknown) => (e instanceof CanRequestError ? e.result : -1),
    );
    await Promise.resolve();
    r.device.busOff();
    assert.equal(await pending, CanResult.NOT_OK);
    assert.equal(r.drv.status() & CAN_S_CTRL_BUSOFF, CAN_S_CTRL_BUSOFF);
    await new Promise((res) => setImmediate(res));
    assert.equal(heard, 1);
    assert.equal(r.device.isStarted, false);
    await assert.rejects(r.drv.send(frame()), CanRequestError);
    await r.drv.start();
    assert.equal(r.drv.status(), 0);
    await nextIsMarker(r);
  });

  it('features: RTR_FRAMES needs CAN_CLASSIC, one of CAN_CLASSIC / CAN_FD is required; reset returns to STOPPED', async () => {
    const d = new CanDevice(new CanBus());
    assert.match(d.validateFeatures(CanF.RTR_FRAMES | CanF.CAN_FD) ?? '', /RTR_FRAMES/);
    assert.match(d.validateFeatures(CanF.LATE_TX_ACK) ?? '', /neither/);
    assert.equal(d.validateFeatures(CanF.CAN_FD), null);
    assert.throws(() => new CanDevice(new CanBus(), { features: CanF.RTR_FRAMES | CanF.CAN_FD }), VirtioError);
    assert.throws(() => new CanDevice(new CanBus(), { features: CanF.LATE_TX_ACK }), VirtioError);
    assert.throws(() => createTestPair(d, { accept: CanF.RTR_FRAMES | CanF.CAN_FD | TRANSPORT }), /refuses the features/);
    const r = rig();
    await r.drv.start();
    r.device.reset();
    assert.equal(r.device.isStarted, false);
  });

  it('legacy big-endian guest: frames and control in guest byte order', async () => {
    const r = rig(ALL, {}, { littleEndian: false, legacy: true });
    await r.drv.start();
    await r.drv.send(frame({ id: 0x12345, extended: true, length: 3, data: Uint8Array.of(7, 8, 9) }));
    const f = await r.host.next();
    assert.deepEqual([f.id, f.extended, [...f.data]], [0x12345, true, [7, 8, 9]]);
    const incoming = r.drv.nextFrame();
    r.host.send(frame({ id: 0x321, fd: true, length: 20, data: new Uint8Array(20).fill(4) }));
    const g = await incoming;
    assert.deepEqual([g.id, g.fd, g.length], [0x321, true, 20]);
  });
  it('the bus: host frames are checked, a full ring refuses a frame (the device answers NOT_OK), frames keep their order', async () => {
    const bus = new CanBus(2);
    const a = new CanHostPort(bus);
    const b = new CanHostPort(bus);
    assert.throws(() => a.send(frame({ id: 0x800 })), VirtioError);
    assert.throws(() => a.send(frame({ fd: true, rtr: true, length: 0, data: new Uint8Array(0) })), VirtioError);
    assert.throws(() => a.send(frame({ length: 12, fd: true, data: new Uint8Array(4) })), VirtioError);
    assert.equal(a.send(frame({ id: 1 })), true);
    assert.equal(a.send(frame({ id: 2 })), true);
    assert.equal(a.send(frame({ id: 3 })), false, 'ring of 2 full');
    assert.deepEqual([(await b.next()).id, (await b.next()).id], [1, 2]);
    // A device on a full bus: NOT_OK, nothing scheduled.
    const r = rig(ALL, {}, {}, bus);
    await r.drv.start();
    a.send(frame({ id: 4 }));
    a.send(frame({ id: 5 }));
    await assert.rejects(r.drv.send(frame({ id: 6 })), (e: unknown) => e instanceof CanRequestError && e.result === CanResult.NOT_OK);
    assert.deepEqual([(await b.next()).id, (await b.next()).id], [4, 5]);
    assert.throws(() => new CanBus(0), VirtioError);
  });
});
