import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetCtrlAck, NetCtrlClass, NetCtrlStats, NetF, NetStatsType } from '../../spec/net.js';
import { createLoopback } from '../../testing/loopback.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { parseStatsReplies } from './net-driver-stats.js';
import { NetDriver } from './net-driver.js';
import { NetCvqCounter, NetQueueCounters, NetRxCounter, NetTxCounter } from './net-stats.js';
import { NetPacket } from './packet.js';
import { ReflectorPort } from './reflector-port.js';
import { NetSwitch } from './switch.js';

const T = { timeout: 10_000 };
const REFLECTOR = Uint8Array.of(2, 0, 0, 0, 0, 0xee);
const CTRL = 4; // two pairs: receiveq1 0, transmitq1 1, receiveq2 2, transmitq2 3, controlq 4
const ALL_TYPES =
  (1n << 0n) | (1n << 1n) | (1n << 2n) | (1n << 16n) | (1n << 17n) | (1n << 18n) | (1n << 32n);

async function setup(refuse = 0n, opts: NetDeviceOptions = {}) {
  const device = new NetDevice({ queueSize: 64, queuePairs: 2, ...opts });
  const sw = new NetSwitch();
  device.attachTo(sw);
  const r = new ReflectorPort('r', REFLECTOR, () => new NetPacket(1518));
  r.link = sw.attach(r);
  const lb = await createLoopback(device, { queueSize: 64, refuseFeatures: refuse });
  return { device, lb, net: new NetDriver(lb.context) };
}

function frame(src: Uint8Array, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(REFLECTOR, 0);
  f.set(src, 6);
  f[12] = 0x88; // an ethertype no offload parses
  f[13] = 0xb5;
  return f;
}

/** A raw STATS_GET payload: [vq, bitmap] entries. */
function getPayload(entries: readonly [number, bigint][]): Uint8Array {
  const b = new Uint8Array(16 * entries.length);
  const dv = new DataView(b.buffer);
  entries.forEach(([vq, bits], i) => {
    dv.setUint16(16 * i, vq, true);
    dv.setBigUint64(16 * i + 8, bits, true);
  });
  return b;
}

const bit = (t: number): bigint => 1n << BigInt(t);

describe('virtio-net device statistics (5.1.6.5.10)', () => {
  it('device/net/110: STATS_QUERY answers supported_stats_types: basic, CSUM, GSO and CVQ with every offload offered; without GSO no GSO types', T, async () => {
    const { lb, net } = await setup();
    assert.equal(await net.queryStats(), ALL_TYPES);
    await lb.close();
    const noGso = await setup(0n, { gso: false });
    assert.equal(await noGso.net.queryStats(), ALL_TYPES & ~(bit(NetStatsType.RX_GSO) | bit(NetStatsType.TX_GSO)));
    await noGso.lb.close();
  });

  it('device/net/113 device/net/114: every reply header has its type, vq_index and size; the counters are the queues\' traffic', T, async () => {
    const { lb, net, device } = await setup();
    const lens = [60, 100, 1514, 333];
    for (const len of lens) {
      const [, got] = await Promise.all([net.send(frame(net.mac, len)), net.receive()]);
      assert.equal(got.data.length, len);
    }
    const bytes = lens.reduce((a, b) => a + b, 0);
    const replies = await net.getStats([
      { vq: 0, types: [NetStatsType.RX_BASIC, NetStatsType.RX_CSUM, NetStatsType.RX_GSO] },
      { vq: 1, types: [NetStatsType.TX_BASIC, NetStatsType.TX_CSUM, NetStatsType.TX_GSO] },
      { vq: 3, types: [NetStatsType.TX_BASIC] },
      { vq: CTRL, types: [NetStatsType.CVQ] },
    ]);
    assert.deepEqual(
      replies.map((r) => [r.type, r.vq, r.counters.length]),
      [
        [NetStatsType.RX_BASIC, 0, 6],
        [NetStatsType.RX_CSUM, 0, 4],
        [NetStatsType.RX_GSO, 0, 4],
        [NetStatsType.TX_BASIC, 1, 6],
        [NetStatsType.TX_CSUM, 1, 2],
        [NetStatsType.TX_GSO, 1, 6],
        [NetStatsType.TX_BASIC, 3, 6],
        [NetStatsType.CVQ, CTRL, 2],
      ],
    );
    const [rxBasic, rxCsum, rxGso, txBasic, txCsum, txGso, tx2, cvq] = replies.map((r) => r.counters);
    // rx: notifications (the driver kicks receiveq1 as it posts buffers), packets, bytes, interrupts, drops, overruns
    assert.ok(rxBasic![0]! >= 1n);
    assert.deepEqual([rxBasic![1], rxBasic![2], rxBasic![4], rxBasic![5]], [4n, BigInt(bytes), 0n, 0n]);
    assert.ok(rxBasic![3]! >= 1n && rxBasic![3]! <= 4n, 'one used-buffer notification per received frame at most');
    assert.deepEqual(rxCsum, [0n, 0n, 4n, 0n], 'no checksum information on these frames: csum_none');
    assert.deepEqual(rxGso, [0n, 0n, 0n, 0n]);
    assert.deepEqual([txBasic![0]! >= 1n, txBasic![1], txBasic![2], txBasic![4], txBasic![5]], [true, 4n, BigInt(bytes), 0n, 0n]);
    assert.deepEqual(txCsum, [4n, 0n]);
    assert.deepEqual(txGso, [0n, 0n, 0n, 0n, 0n, 0n]);
    assert.deepEqual([tx2![1], tx2![2], tx2![4], tx2![5]], [0n, 0n, 0n, 0n], 'nothing sent on transmitq2');
    // the control queue saw STATS_QUERY and this STATS_GET, both counted with the current one
    assert.deepEqual(cvq, [2n, 2n]);
    assert.equal(device.counters.get(1, NetTxCounter.PACKETS), 4n);
    await lb.close();
  });

  it('device/net/113: the size field is the bytes of that reply, header included; malformed and dropped transmits are counted as such', T, async () => {
    const { lb, net } = await setup();
    const { ack, result } = await net.commandWithResult(NetCtrlClass.STATS, NetCtrlStats.GET, getPayload([[1, bit(NetStatsType.TX_BASIC) | bit(NetStatsType.TX_CSUM)]]), 200);
    assert.equal(ack, NetCtrlAck.OK);
    assert.equal(result.length, 8 + 48 + 8 + 16, 'the device wrote exactly the two replies');
    const dv = new DataView(result.buffer, result.byteOffset);
    assert.deepEqual([result[0], dv.getUint16(2, true), dv.getUint16(6, true)], [NetStatsType.TX_BASIC, 1, 56]);
    assert.deepEqual([result[56], dv.getUint16(58, true), dv.getUint16(62, true)], [NetStatsType.TX_CSUM, 1, 24]);
    await lb.close();
  });

  it('device/net/111 device/net/112: one wrong entry fails the whole command (vq out of range, unknown type, type not valid for the queue, SPEED unsupported, feature not negotiated)', T, async () => {
    const { lb, net, device } = await setup(NetF.GUEST_CSUM);
    const good: [number, bigint] = [0, bit(NetStatsType.RX_BASIC)];
    const bad: [number, bigint][] = [
      [5, bit(NetStatsType.TX_BASIC)], // controlq is 4: vq 5 does not exist
      [0, bit(5)], // unknown type
      [0, bit(40)], // unknown type in the high word
      [0, bit(NetStatsType.TX_BASIC)], // a transmit type on a receive queue
      [1, bit(NetStatsType.RX_BASIC)], // a receive type on a transmit queue
      [CTRL, bit(NetStatsType.RX_BASIC)], // a queue type on the control queue
      [0, bit(NetStatsType.CVQ)], // the control type on a data queue
      [0, bit(NetStatsType.RX_SPEED)], // not supported (no bitrate allowance)
      [0, bit(NetStatsType.RX_CSUM)], // GUEST_CSUM not negotiated
    ];
    for (const b of bad) {
      for (const entries of [[good, b], [b, good]]) {
        const { ack, result } = await net.commandWithResult(NetCtrlClass.STATS, NetCtrlStats.GET, getPayload(entries), 400);
        assert.equal(ack, NetCtrlAck.ERR, `entry ${b[0]} 0x${b[1].toString(16)}`);
        assert.equal(result.length, 0, 'nothing written after the ack');
      }
    }
    // no entries, a partial entry, an unknown command: ERR too
    for (const [cmd, payload] of [[NetCtrlStats.GET, new Uint8Array(0)], [NetCtrlStats.GET, new Uint8Array(15)], [NetCtrlStats.QUERY, new Uint8Array(1)], [7, new Uint8Array(0)]] as const) {
      assert.equal(await net.command(NetCtrlClass.STATS, cmd, payload), NetCtrlAck.ERR);
    }
    assert.equal(device.counters.get(device.counters.cvq, NetCvqCounter.OK), 0n, 'none of them counted as OK');
    assert.equal(device.counters.get(device.counters.cvq, NetCvqCounter.COMMANDS), BigInt(2 * bad.length + 4));
    await lb.close();
    // without DEVICE_STATS the class is unknown
    const off = await setup(NetF.DEVICE_STATS);
    assert.equal(await off.net.command(NetCtrlClass.STATS, NetCtrlStats.QUERY), NetCtrlAck.ERR);
    await off.lb.close();
  });

  it('device/net/115: a result buffer smaller than the replies gets the bytes that fit, a larger one only the replies', T, async () => {
    const { lb, net } = await setup();
    const payload = getPayload([[0, bit(NetStatsType.RX_BASIC) | bit(NetStatsType.RX_CSUM)], [CTRL, bit(NetStatsType.CVQ)]]);
    const full = 56 + 40 + 24;
    for (const room of [0, 5, 8, 60, full - 1, full, full + 100]) {
      const { ack, result } = await net.commandWithResult(NetCtrlClass.STATS, NetCtrlStats.GET, payload, room);
      assert.equal(ack, NetCtrlAck.OK);
      assert.equal(result.length, Math.min(room, full), `room ${room}`);
      const replies = parseStatsReplies(result);
      assert.equal(replies.length, room >= full ? 3 : room >= 96 ? 2 : room >= 56 ? 1 : 0);
    }
    await lb.close();
  });

  it('device/net/116: counters wrap around to zero past 2^64 - 1', T, async () => {
    const { lb, net, device } = await setup();
    const max = (1n << 64n) - 1n;
    device.counters.set(1, NetTxCounter.PACKETS, max);
    device.counters.set(1, NetTxCounter.BYTES, max - 10n);
    device.counters.set(0, NetRxCounter.PACKETS, (1n << 32n) - 1n); // a carry into the high word
    await Promise.all([net.send(frame(net.mac, 60)), net.receive()]);
    const [tx, rx] = await net.getStats([
      { vq: 1, types: [NetStatsType.TX_BASIC] },
      { vq: 0, types: [NetStatsType.RX_BASIC] },
    ]);
    assert.equal(tx!.counters[1], 0n);
    assert.equal(tx!.counters[2], 49n, '2^64 - 11 + 60 wraps to 49');
    assert.equal(rx!.counters[1], 1n << 32n);
    const c = new NetQueueCounters(2);
    c.set(0, 0, max);
    c.dec(0, 0);
    c.inc(0, 0);
    c.inc(0, 0);
    assert.equal(c.get(0, 0), 0n);
    c.dec(0, 0);
    assert.equal(c.get(0, 0), max);
    await lb.close();
  });

  it('drops are counted per queue: overruns when the receive ring is empty, malformed transmits', T, async () => {
    const { lb, net, device } = await setup();
    // a transmit chain too short for an Ethernet header: malformed (txErrors)
    await net.send(new Uint8Array(10));
    await net.send(frame(net.mac, 60), { csum: { start: 50, offset: 20 } }); // csum field beyond the frame
    assert.equal(device.stats.txErrors, 2);
    assert.equal(device.counters.get(1, NetTxCounter.DROP_MALFORMED), 2n);
    assert.equal(device.counters.get(1, NetTxCounter.DROPS), 2n);
    assert.equal(device.counters.get(1, NetTxCounter.PACKETS), 0n);
    // 70 frames handed to the device at once, with 32 receive buffers posted: the rest find the
    // ring empty (the driver posts again only after the device returned buffers).
    const p = new NetPacket(1518);
    p.data.set(frame(net.mac, 60));
    p.length = 60;
    const frames = 70;
    for (let i = 0; i < frames; i++) device.deliver(p);
    const st = await net.getStats([{ vq: 0, types: [NetStatsType.RX_BASIC] }]);
    const [, packets, , , drops, overruns] = st[0]!.counters;
    assert.equal(packets! + drops!, BigInt(frames));
    assert.equal(drops, overruns);
    assert.equal(Number(drops), device.stats.rxNoBuffer);
    await lb.close();
  });

  it('driver/net/92: the driver queries the capabilities first and refuses, sending nothing, a type not supported, not valid for the queue, or not negotiated', T, async () => {
    const { lb, net, device } = await setup(NetF.GUEST_CSUM, { gso: false });
    const cmds = () => device.counters.get(device.counters.cvq, NetCvqCounter.COMMANDS);
    const replies = await net.getStats([{ vq: 0, types: [NetStatsType.RX_BASIC] }]);
    assert.equal(replies.length, 1);
    assert.equal(cmds(), 2n, 'STATS_QUERY went first, then STATS_GET');
    for (const req of [
      { vq: 1, types: [NetStatsType.TX_GSO] }, // not in supported_stats_types (no GSO offered)
      { vq: 0, types: [NetStatsType.TX_BASIC] }, // not valid for a receive queue
      { vq: CTRL, types: [NetStatsType.RX_BASIC] }, // not valid for the control queue
      { vq: 0, types: [NetStatsType.RX_CSUM] }, // GUEST_CSUM not negotiated
      { vq: 9, types: [NetStatsType.RX_BASIC] }, // no such queue
    ]) {
      await assert.rejects(net.getStats([req]), /driver\/net\/92/);
    }
    assert.equal(cmds(), 2n, 'nothing sent for the refused requests');
    await lb.close();
  });

  it('driver/net/93: the driver\'s result buffer holds every reply it asked for (all arrive whole)', T, async () => {
    const { lb, net } = await setup();
    const req = [0, 1, 2, 3].map((vq) => ({
      vq,
      types: (vq & 1) === 0 ? [NetStatsType.RX_BASIC, NetStatsType.RX_CSUM, NetStatsType.RX_GSO] : [NetStatsType.TX_BASIC, NetStatsType.TX_CSUM, NetStatsType.TX_GSO],
    }));
    const replies = await net.getStats([...req, { vq: CTRL, types: [NetStatsType.CVQ] }]);
    assert.equal(replies.length, 13);
    assert.deepEqual(
      replies.map((r) => r.counters.length),
      [6, 4, 4, 6, 2, 6, 6, 4, 4, 6, 2, 6, 2],
    );
    await lb.close();
  });
});
