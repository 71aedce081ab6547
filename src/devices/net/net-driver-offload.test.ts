/**
 * NetDriver with the offloads, end to end in process: two devices on one switch, each with a
 * NetDriver; TSO/USO sends arrive whole at a driver that negotiated the GUEST_* offload and as
 * checksummed segments at one that did not; RSS, hash reports and coalescing through the
 * driver's control commands.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetF, NetGsoType, NetHdrFlag } from '../../spec/net.js';
import { type Loopback, createLoopback } from '../../testing/loopback.js';
import { TcpFlag, buildIpFrame, checksumsValid } from './ip-frames.js';
import { NetDevice } from './net-device.js';
import { NetDriver, type NetFrame } from './net-driver.js';
import { NetHashReport, NetHashType, toeplitzHash } from './net-rss.js';
import { NetSwitch } from './switch.js';

const T = { timeout: 20_000 };
const KEY = Uint8Array.from(Buffer.from('6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa', 'hex'));

interface End {
  device: NetDevice;
  lb: Loopback;
  net: NetDriver;
}

async function end(sw: NetSwitch, last: number, refuse: bigint, pairs = 1): Promise<End> {
  const device = new NetDevice({ mac: Uint8Array.of(2, 0, 0, 0, 0, last), queueSize: 128, queuePairs: pairs });
  device.attachTo(sw);
  const lb = await createLoopback(device, { queueSize: 128, refuseFeatures: refuse });
  return { device, lb, net: new NetDriver(lb.context, { rxBuffers: 64 }) };
}

async function receiveN(net: NetDriver, n: number): Promise<NetFrame[]> {
  const out: NetFrame[] = [];
  for (let i = 0; i < n; i++) out.push(await net.receive());
  return out;
}

describe('NetDriver: segmentation offload end to end', () => {
  it('driver/net/18 driver/net/31 driver/net/32 driver/net/33 driver/net/39 driver/net/43: a 64 KiB TSO4 send (exact hdr_len, GUEST_HDRLEN negotiated) arrives whole (gso fields, NEEDS_CSUM) at a GUEST_TSO4 driver and as valid segments at one without', T, async () => {
    const sw = new NetSwitch();
    const a = await end(sw, 1, NetF.HASH_REPORT);
    const b = await end(sw, 2, NetF.HASH_REPORT);
    const c = await end(sw, 3, NetF.HASH_REPORT | NetF.GUEST_TSO4);
    assert.equal(a.net.hdrLen, 12);
    assert.equal(a.lb.context.features & NetF.GUEST_HDRLEN, NetF.GUEST_HDRLEN);
    // Broadcast destination so both receivers get it.
    const f = buildIpFrame({ dst: new Uint8Array(6).fill(0xff), src: a.net.mac, payload: 60000, seq: 1 });
    const [, whole, segs] = await Promise.all([a.net.send(f, { gso: { size: 1448 } }), b.net.receive(), receiveN(c.net, Math.ceil(60000 / 1448))]);
    assert.equal(whole.gsoType, NetGsoType.TCPV4);
    assert.equal(whole.gsoSize, 1448);
    assert.equal(whole.hdrLen, 54);
    assert.equal(whole.flags & NetHdrFlag.NEEDS_CSUM, NetHdrFlag.NEEDS_CSUM);
    assert.equal(whole.data.length, f.length);
    let bytes = 0;
    for (const s of segs) {
      assert.equal(s.gsoType, NetGsoType.NONE);
      assert.ok(checksumsValid(s.data));
      assert.equal(s.flags, NetHdrFlag.DATA_VALID);
      bytes += s.data.length - 54;
    }
    assert.equal(bytes, 60000);
    assert.equal(a.device.stats.txGso, 1);
    for (const e of [a, b, c]) {
      e.net.detach();
      await e.lb.close();
    }
  });

  it('driver/net/8 driver/net/19 driver/net/21 driver/net/22: TSO6 and USO sends; a CWR stream is flagged ECN; offloads not negotiated are refused by the driver', T, async () => {
    const sw = new NetSwitch();
    const a = await end(sw, 1, NetF.HASH_REPORT | NetF.HOST_UFO);
    const b = await end(sw, 2, NetF.HASH_REPORT);
    const dst = b.net.mac;
    const t6 = buildIpFrame({ dst, src: a.net.mac, ipv6: true, payload: 5000, tcpFlags: TcpFlag.ACK | TcpFlag.CWR });
    const [, r6] = await Promise.all([a.net.send(t6, { gso: { size: 1400 } }), b.net.receive()]);
    assert.equal(r6.gsoType, NetGsoType.TCPV6 | NetGsoType.ECN);
    const u4 = buildIpFrame({ dst, src: a.net.mac, udp: true, payload: 5000 });
    const [, ru] = await Promise.all([a.net.send(u4, { gso: { size: 1400 } }), b.net.receive()]);
    assert.equal(ru.gsoType, NetGsoType.UDP_L4);
    await assert.rejects(a.net.send(u4, { gso: { size: 1400, ufo: true } }), /HOST_UFO|needs features/);
    await assert.rejects(a.net.send(u4, { gso: { size: 0 } }), /gso size/);
    await assert.rejects(a.net.send(new Uint8Array(1600)), /driver\/net\/8/);
    for (const e of [a, b]) {
      e.net.detach();
      await e.lb.close();
    }
  });

  it("driver/net/30: csum 'auto' puts the pseudo-header sum in place; the device completes it for a driver without GUEST_CSUM", T, async () => {
    const sw = new NetSwitch();
    const a = await end(sw, 1, NetF.HASH_REPORT);
    const b = await end(sw, 2, NetF.HASH_REPORT | NetF.GUEST_CSUM);
    const f = buildIpFrame({ dst: b.net.mac, src: a.net.mac, udp: true, payload: 333 });
    f[14 + 20 + 6] = 0xde; // garbage in the checksum field: the driver overwrites it
    const [, r] = await Promise.all([a.net.send(f, { csum: 'auto' }), b.net.receive()]);
    assert.equal(r.flags, 0);
    assert.ok(checksumsValid(r.data));
    for (const e of [a, b]) {
      e.net.detach();
      await e.lb.close();
    }
  });
});

describe('NetDriver: RSS, hash report, coalescing', () => {
  it('driver/net/14: setRss steers flows by the indirection table onto the second pair; with HASH_REPORT negotiated the 20-byte header carries the Toeplitz hash', T, async () => {
    const sw = new NetSwitch();
    const a = await end(sw, 1, NetF.HASH_REPORT);
    const b = await end(sw, 2, 0n, 2);
    assert.equal(b.net.hdrLen, 20);
    await b.net.setRss({ hashTypes: NetHashType.TCPV4 | NetHashType.IPV4, table: [1, 1], unclassified: 0, key: KEY });
    const f = buildIpFrame({ dst: b.net.mac, src: a.net.mac, payload: 100 });
    const [, r] = await Promise.all([a.net.send(f), b.net.receive()]);
    assert.equal(r.queue, 2, 'receiveq2');
    assert.equal(r.hashReport, NetHashReport.TCPV4);
    assert.equal(r.hashValue, toeplitzHash(KEY, 40, Uint8Array.from([...f.subarray(26, 38)]), 12));
    await assert.rejects(b.net.setRss({ hashTypes: 1, table: [0, 1, 0], unclassified: 0, key: KEY }), /power of two/);
    // The transmit header has the receive header's size (20 bytes here): the device reads it so.
    const back = buildIpFrame({ dst: a.net.mac, src: b.net.mac, payload: 64 });
    const [, got] = await Promise.all([b.net.send(back), a.net.receive()]);
    assert.deepEqual(got.data, back);
    for (const e of [a, b]) {
      e.net.detach();
      await e.lb.close();
    }
  });

  it('driver/net/91: setCoalescing / setQueueCoalescing / getQueueCoalescing (an ERR answer is not used); setGuestOffloads', T, async () => {
    const sw = new NetSwitch();
    const a = await end(sw, 1, NetF.HASH_REPORT);
    await a.net.setCoalescing('tx', 8, 100);
    assert.deepEqual(await a.net.getQueueCoalescing(1), { maxPackets: 8, maxUsecs: 100 });
    await a.net.setQueueCoalescing(0, 4, 50);
    assert.deepEqual(await a.net.getQueueCoalescing(0), { maxPackets: 4, maxUsecs: 50 });
    await assert.rejects(a.net.getQueueCoalescing(7), /driver\/net\/88/); // an ERR answer: net-driver-rules.test.ts
    await a.net.setGuestOffloads(NetF.GUEST_CSUM | NetF.GUEST_TSO6);
    assert.equal(a.device.guestOffloadsInEffect, NetF.GUEST_CSUM | NetF.GUEST_TSO6);
    a.net.detach();
    await a.lb.close();
  });

  it('driver/net/64 driver/net/65 driver/net/66 driver/net/78 driver/net/86 driver/net/89 driver/net/90: commands whose feature was not negotiated are refused by the driver, nothing sent', T, async () => {
    const sw = new NetSwitch();
    const a = await end(sw, 1, NetF.HASH_REPORT | NetF.CTRL_RX | NetF.CTRL_RX_EXTRA | NetF.RSS | NetF.NOTF_COAL | NetF.VQ_NOTF_COAL | NetF.GUEST_UFO);
    assert.ok(a.net.hasControlQueue);
    const before = a.device.stats.ctrlOk + a.device.stats.ctrlErr;
    await assert.rejects(a.net.setRxMode(0, false), /driver\/net\/64/);
    await assert.rejects(a.net.setRxMode(3, true), /driver\/net\/65/);
    await assert.rejects(a.net.setMacTable([], []), /driver\/net\/66/);
    await assert.rejects(a.net.setMac(Uint8Array.of(2, 1, 1, 1, 1, 1)), /driver\/net\/66/);
    await assert.rejects(a.net.setRss({ hashTypes: 1, table: [0], unclassified: 0, key: KEY }), /driver\/net\/78/);
    await assert.rejects(a.net.setGuestOffloads(NetF.GUEST_CSUM | NetF.GUEST_UFO), /driver\/net\/86/);
    await assert.rejects(a.net.setCoalescing('rx', 1, 1), /driver\/net\/89/);
    await assert.rejects(a.net.setQueueCoalescing(0, 1, 1), /driver\/net\/90/);
    await assert.rejects(a.net.getQueueCoalescing(0), /driver\/net\/90/);
    assert.equal(a.device.stats.ctrlOk + a.device.stats.ctrlErr, before, 'no command reached the device');
    await a.net.setGuestOffloads(NetF.GUEST_CSUM);
    a.net.detach();
    await a.lb.close();
  });
});
