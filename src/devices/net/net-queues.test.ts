/**
 * virtio-net receive queues and notifications through hand-built chains (in-process transport):
 * the 20-byte header with HASH_REPORT, RSS steering, notification coalescing, receive queues
 * being reset, automatic steering after the transmit queue, and the malformed input of each with
 * its outcome. Split from net-offload.test.ts (offloads); the rig is net-offload-test-support.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetCtrlAck, NetCtrlClass, NetCtrlMq, NetCtrlNotfCoal, NetF } from '../../spec/net.js';
import { F } from '../../spec/features.js';
import { buildIpFrame } from './ip-frames.js';
import { NetHashReport, NetHashType, toeplitzHash } from './net-rss.js';
import { T, DEV, PEER, KEY, type Rx, rig, hdr, le16, le32, u32le, tick } from './net-offload-test-support.js';

describe('virtio-net: hash report and RSS', () => {
  const hashConfig = (types: number, key: Uint8Array): Uint8Array => Uint8Array.from([...u32le(types), 0, 0, 0, 0, 0, 0, 0, 0, key.length, ...key]);

  it('driver/net/58 driver/net/60 device/net/96: 5.1.6 HASH_REPORT: the header is 20 bytes; hash_report NONE until HASH_CONFIG, then the Toeplitz hash and its type; a bad HASH_CONFIG is VIRTIO_NET_ERR', T, async () => {
    const r = await rig({ refuse: NetF.RSS });
    assert.equal(r.hdrLen, 20);
    const f = buildIpFrame({ dst: DEV, src: PEER, payload: 50 });
    let buf = r.post(200);
    await tick();
    r.peer.inject(f);
    let g = await buf;
    assert.equal(g.used, 20 + f.length);
    assert.equal(le16(g.bytes, 16), NetHashReport.NONE);
    assert.deepEqual(g.bytes.subarray(20, g.used), f);
    assert.equal((await r.control(NetCtrlClass.MQ, NetCtrlMq.HASH_CONFIG, hashConfig(NetHashType.TCPV4 | NetHashType.IPV4, KEY))).ack, NetCtrlAck.OK);
    buf = r.post(200);
    await tick();
    r.peer.inject(f);
    g = await buf;
    assert.equal(le16(g.bytes, 16), NetHashReport.TCPV4);
    const input = Uint8Array.from([...f.subarray(26, 34), ...f.subarray(34, 38)]);
    assert.equal(le32(g.bytes, 12), toeplitzHash(KEY, 40, input, 12));
    // device/net/96: reserved must be zero; key too long; unsupported type; sizes that do not add up.
    const resv = hashConfig(NetHashType.IPV4, KEY);
    resv[5] = 1;
    for (const bad of [resv, hashConfig(NetHashType.IPV4, new Uint8Array(41)), hashConfig(NetHashType.IP_EX, KEY), hashConfig(NetHashType.IPV4, KEY).subarray(0, 30), new Uint8Array(3)]) {
      assert.equal((await r.control(NetCtrlClass.MQ, NetCtrlMq.HASH_CONFIG, bad)).ack, NetCtrlAck.ERR);
    }
    await r.lb.close();
  });

  it('device/net/97 driver/net/59: RSS_CONFIG steers by the indirection table (unclassified frames to unclassified_queue); driver/net/79: a table naming a queue beyond max_virtqueue_pairs is VIRTIO_NET_ERR', T, async () => {
    const r = await rig({ device: { queuePairs: 2 }, refuse: NetF.HASH_REPORT });
    const rssConfig = (table: number[], unclassified: number, maxTx = 2): Uint8Array => {
      const b = Buffer.alloc(8 + 2 * table.length + 3 + 40);
      b.writeUInt32LE(NetHashType.TCPV4 | NetHashType.IPV4, 0);
      b.writeUInt16LE(table.length - 1, 4);
      b.writeUInt16LE(unclassified, 6);
      table.forEach((q, i) => b.writeUInt16LE(q, 8 + 2 * i));
      b.writeUInt16LE(maxTx, 8 + 2 * table.length);
      b[10 + 2 * table.length] = 40;
      Buffer.from(KEY).copy(b, 11 + 2 * table.length);
      return Uint8Array.from(b);
    };
    assert.equal((await r.control(NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG, rssConfig([0, 2], 0))).ack, NetCtrlAck.ERR);
    assert.equal((await r.control(NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG, rssConfig([0, 1], 2))).ack, NetCtrlAck.ERR);
    assert.equal((await r.control(NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG, rssConfig([1, 1], 0, 3))).ack, NetCtrlAck.ERR, 'max_tx_vq beyond the pairs');
    assert.equal(r.device.rss.steering, false);
    // Every IP frame to receiveq2, everything else to receiveq1.
    assert.equal((await r.control(NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG, rssConfig([1, 1, 1, 1], 0))).ack, NetCtrlAck.OK);
    const q2 = r.post(200, 1);
    const q1 = r.post(200, 0);
    await tick();
    const ip = buildIpFrame({ dst: DEV, src: PEER, payload: 20 });
    r.peer.inject(ip);
    assert.equal((await q2).used, 12 + ip.length);
    const arp = new Uint8Array(60);
    arp.set(DEV, 0);
    arp.set(PEER, 6);
    arp[12] = 0x08;
    arp[13] = 0x06;
    r.peer.inject(arp);
    assert.equal((await q1).used, 12 + 60);
    await r.lb.close();
  });
});

describe('virtio-net: notification coalescing', () => {
  const coal = (packets: number, usecs: number): Uint8Array => u32le(packets, usecs);
  const vqCoal = (vq: number, packets: number, usecs: number): Uint8Array => Uint8Array.from([vq & 0xff, vq >> 8, 0xaa, 0xbb, ...coal(packets, usecs)]);

  it('NOTF_COAL RX_SET: max_packets frames make one notification; fewer wait for max_usecs (device/net/107 best effort)', T, async () => {
    const r = await rig({ refuse: NetF.HASH_REPORT });
    assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.RX_SET, coal(3, 60_000_000))).ack, NetCtrlAck.OK);
    const bufs = [r.post(200), r.post(200), r.post(200), r.post(200)];
    await tick();
    const c = r.device.coalescing;
    const before = c.notifications;
    const f = buildIpFrame({ dst: DEV, src: PEER, payload: 20 });
    r.peer.inject(f);
    r.peer.inject(f);
    assert.equal(c.notifications, before, 'two frames: held back');
    r.peer.inject(f);
    assert.equal(c.notifications, before + 1, 'the third: notified');
    await Promise.all(bufs.slice(0, 3));
    // Fewer than max_packets: the max_usecs timer notifies.
    assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.RX_SET, coal(100, 2000))).ack, NetCtrlAck.OK);
    r.peer.inject(f);
    assert.equal((await bufs[3]!).used, 12 + f.length, 'delivered by the max_usecs timer');
    await r.lb.close();
  });

  it('device/net/103 device/net/104 device/net/105 device/net/106 device/net/101: VQ_SET/VQ_GET per queue (reserved ignored), a vq_index that is not an enabled data queue is VIRTIO_NET_ERR, a re-enabled queue takes the TX_SET/RX_SET values', T, async () => {
    const r = await rig({ refuse: NetF.HASH_REPORT });
    assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.RX_SET, coal(10, 1000))).ack, NetCtrlAck.OK);
    assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.VQ_SET, vqCoal(0, 5, 500))).ack, NetCtrlAck.OK);
    let got = await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.VQ_GET, Uint8Array.of(0, 0, 0, 0), 8);
    assert.equal(got.ack, NetCtrlAck.OK);
    assert.equal(got.used, 9);
    assert.deepEqual([le32(got.reply, 0), le32(got.reply, 4)], [5, 500]);
    for (const vq of [2, 3, 99]) assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.VQ_SET, vqCoal(vq, 1, 1))).ack, NetCtrlAck.ERR, `vq ${vq}`);
    assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.VQ_GET, Uint8Array.of(0, 0, 0, 0), 0)).ack, NetCtrlAck.ERR, 'no room for the result');
    assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.TX_SET, coal(1, 1).subarray(0, 7))).ack, NetCtrlAck.ERR, 'short');
    assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.VQ_SET, Uint8Array.from([...vqCoal(0, 1, 1), 0]))).ack, NetCtrlAck.ERR, 'oversized');
    r.lb.driver.resetQueue(0);
    got = await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.VQ_GET, Uint8Array.of(0, 0, 0, 0), 8);
    assert.deepEqual([le32(got.reply, 0), le32(got.reply, 4)], [10, 1000], 'the RX_SET values again');
    await r.lb.close();
  });

  it('device/net/108: while the driver suppresses used-buffer notifications, frames that meet the coalescing condition send none; re-enabled, the next one does', T, async () => {
    // Without EVENT_IDX suppression is the NO_INTERRUPT flag, which holds until cleared.
    const r = await rig({ refuse: NetF.HASH_REPORT | F.EVENT_IDX });
    assert.equal(r.lb.context.features & F.EVENT_IDX, 0n);
    assert.equal((await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.RX_SET, coal(1, 60_000_000))).ack, NetCtrlAck.OK);
    const bufs = [r.post(200), r.post(200), r.post(200)];
    await tick();
    const rxq = r.lb.context.queue(0);
    rxq.disableInterrupts();
    const c = r.device.coalescing;
    const asked = c.notifications;
    const sent = r.lb.transport.interruptCounts.used;
    const f = buildIpFrame({ dst: DEV, src: PEER, payload: 20 });
    r.peer.inject(f);
    r.peer.inject(f);
    await tick();
    assert.equal(c.notifications, asked + 2, 'max_packets 1: the condition was met after each frame');
    assert.equal(r.lb.transport.interruptCounts.used, sent, 'suppressed: no notification sent');
    assert.equal(r.device.stats.rxFrames >= 2, true, 'both frames were delivered into the buffers');
    rxq.enableInterrupts();
    r.peer.inject(f);
    const got = await Promise.all(bufs);
    assert.deepEqual(got.map((x) => x.used), [12 + f.length, 12 + f.length, 12 + f.length]);
    assert.equal(r.lb.transport.interruptCounts.used, sent + 1, 'notifications on again: one for the third frame');
    await r.lb.close();
  });

  it('device/net/109: every coalescing parameter is 0 after reset', T, async () => {
    const r = await rig({ refuse: NetF.HASH_REPORT });
    await r.control(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.TX_SET, coal(4, 4));
    await r.lb.close();
    assert.deepEqual(r.device.coalescing.tx, { maxPackets: 0, maxUsecs: 0 });
    assert.deepEqual(r.device.coalescing.get(1), { maxPackets: 0, maxUsecs: 0 });
  });
});

describe('virtio-net: receive queues being reset', () => {
  it('device/net/93 device/net/94 device/net/98: automatic steering skips a receive queue being reset and drops when all are; RSS drops a frame steered to one', T, async () => {
    const r = await rig({ device: { queuePairs: 2 }, refuse: NetF.HASH_REPORT });
    const pairs = Uint8Array.of(2, 0);
    assert.equal((await r.control(NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, pairs)).ack, NetCtrlAck.OK);
    const q2 = [r.post(200, 1), r.post(200, 1), r.post(200, 1)];
    const q1 = r.post(200, 0).catch(() => null); // receiveq1 is reset below: aborted at close, never used
    await tick();
    // The transport is resetting receiveq1 (2.6.1): the device's side of it has stopped.
    r.device.resetQueue(0);
    const frames = [1, 2, 3].map((i) => buildIpFrame({ dst: DEV, src: Uint8Array.of(2, 0, 0, 0, 9, i), payload: 10 + i }));
    for (const f of frames) r.peer.inject(f);
    const got = await Promise.all(q2);
    assert.deepEqual(got.map((g) => g.used), frames.map((f) => 12 + f.length), 'every frame on receiveq2 (device/net/93)');
    r.device.resetQueue(2);
    const before = r.device.stats.rxNoBuffer;
    r.peer.inject(frames[0]!);
    assert.equal(r.device.stats.rxNoBuffer, before + 1, 'all receive queues being reset: dropped (device/net/94)');
    await r.lb.close();
    await q1;

    const s = await rig({ device: { queuePairs: 2 }, refuse: NetF.HASH_REPORT });
    const b = Buffer.alloc(8 + 2 + 3 + 40);
    b.writeUInt32LE(NetHashType.IPV4, 0);
    b.writeUInt16LE(0, 4);
    b.writeUInt16LE(0, 6);
    b.writeUInt16LE(1, 8); // every hashed frame to receiveq2
    b.writeUInt16LE(2, 10);
    b[12] = 40;
    Buffer.from(KEY).copy(b, 13);
    assert.equal((await s.control(NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG, Uint8Array.from(b))).ack, NetCtrlAck.OK);
    const spare = s.post(200, 0).catch(() => null);
    await tick();
    s.device.resetQueue(2);
    s.peer.inject(frames[0]!);
    assert.equal(s.device.stats.rxSteeredToStopped, 1, 'steered to a queue being reset: dropped, not redirected (device/net/98)');
    await s.lb.close();
    await spare;
  });
});

describe('virtio-net: automatic steering follows the transmit queue', () => {
  it('device/net/89: after the driver sent a flow on transmitqX, the flow\'s incoming frames arrive on receiveqX (and move when the flow moves)', T, async () => {
    const r = await rig({ device: { queuePairs: 2 }, refuse: NetF.HASH_REPORT });
    assert.equal((await r.control(NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, Uint8Array.of(2, 0))).ack, NetCtrlAck.OK);
    const out = (ipId: number, udp: boolean): Uint8Array => buildIpFrame({ dst: PEER, src: DEV, udp, payload: 30, ipId });
    // The reply of a flow: addresses and ports swapped.
    const reply = (f: Uint8Array): Uint8Array => {
      const g = f.slice();
      g.set(f.subarray(6, 12), 0);
      g.set(f.subarray(0, 6), 6);
      g.set(f.subarray(30, 34), 26);
      g.set(f.subarray(26, 30), 30);
      g.set(f.subarray(36, 38), 34);
      g.set(f.subarray(34, 36), 36);
      return g;
    };
    for (const [tcpPair, udpPair] of [[1, 0], [0, 1]] as const) {
      const tcp = out(1, false);
      const udp = out(2, true);
      await r.send(hdr(12), tcp, tcpPair);
      await r.send(hdr(12), udp, udpPair);
      const q = [r.post(200, 0), r.post(200, 1)];
      await tick();
      r.peer.inject(reply(tcp));
      r.peer.inject(reply(udp));
      const [g0, g1] = (await Promise.all(q)) as [Rx, Rx];
      const onPair = (g: Rx): Uint8Array => g.bytes.subarray(12, g.used);
      assert.deepEqual([onPair(tcpPair === 0 ? g0 : g1), onPair(udpPair === 0 ? g0 : g1)], [reply(tcp), reply(udp)]);
    }
    await r.lb.close();
  });
});
