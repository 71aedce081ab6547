/**
 * virtio-net offloads through hand-built chains (in-process transport): transmit GSO (checked,
 * carried whole or segmented by the switch), receive GSO (whole with gso fields for a driver with
 * GUEST_* offloads, else segments), DATA_VALID, and the malformed input of each with its outcome
 * (untrusted receive buffers, random GSO headers). RSS, hash report, coalescing and steering are
 * in net-queues.test.ts; the rig is net-offload-test-support.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetCtrlAck, NetCtrlClass, NetCtrlGuestOffloads, NetF, NetGsoType, NetHdrFlag } from '../../spec/net.js';
import { Status } from '../../spec/status.js';
import { get32 } from './checksum.js';
import { TcpFlag, buildIpFrame, checksumsValid } from './ip-frames.js';
import { xorshiftBelow } from '../../testing/xorshift.js';
import { T, DEV, PEER, type Rx, rig, hdr, gsoTx, le16, tick } from './net-offload-test-support.js';

describe('virtio-net offloads: transmit (HOST_*)', () => {
  for (const [name, ipv6, udp, type] of [
    ['TSO4', false, false, NetGsoType.TCPV4],
    ['TSO6', true, false, NetGsoType.TCPV6],
    ['USO', false, true, NetGsoType.UDP_L4],
    ['UFO', false, true, NetGsoType.UDP],
  ] as const)
  it(`driver/net/18 driver/net/19 driver/net/20 driver/net/21 driver/net/31 device/net/21: a ${name} frame goes whole to a port that takes GSO and as segments (complete checksums) to one that does not; hdr_len is not relied on`, T, async () => {
    const r = await rig({ withGsoPeer: true });
    const f = buildIpFrame({ dst: PEER, src: DEV, ipv6, udp, payload: 6000 });
    const { h, f: frame } = gsoTx(r.hdrLen, f.slice(), type, 1400, { hdrLen: 7 }); // a wrong hdr_len
    await r.send(h, frame);
    assert.equal(r.device.stats.txErrors, 0);
    assert.equal(r.device.stats.txGso, 1);
    assert.equal(r.gsoPeer.frames.length, 1, 'whole');
    assert.equal(r.gsoPeer.frames[0]!.gsoType, type);
    assert.equal(r.gsoPeer.frames[0]!.gsoSize, 1400);
    assert.equal(r.gsoPeer.frames[0]!.data.length, f.length);
    const segs = r.peer.frames;
    if (type === NetGsoType.UDP) {
      assert.equal(segs.length, Math.ceil(6008 / 1400), 'IP fragments of the datagram');
    } else {
      assert.equal(segs.length, Math.ceil(6000 / 1400));
      for (const s of segs) {
        assert.equal(s.gsoType, 0);
        assert.ok(checksumsValid(s.data), 'every segment fully checksummed');
        assert.ok(s.data.length <= 1500 + 14);
      }
    }
    await r.lb.close();
  });

  it('device/net/15 device/net/16: unknown flag bits are ignored; csum_start/csum_offset are not used without NEEDS_CSUM', T, async () => {
    const r = await rig();
    const f = buildIpFrame({ dst: PEER, src: DEV, payload: 100 });
    await r.send(hdr(r.hdrLen, { flags: 0x40 | NetHdrFlag.DATA_VALID, csumStart: 60000, csumOffset: 60000 }), f);
    assert.equal(r.peer.frames.length, 1);
    assert.deepEqual(r.peer.frames[0]!.data, f);
    assert.equal(r.peer.frames[0]!.needsCsum, false);
    await r.lb.close();
  });

  it('device/net/22: untrusted transmit headers: GSO type not negotiated, both tunnel bits, too many segments, ECN without HOST_ECN, tunnel bits, gso_size 0 or above the MTU, GSO without NEEDS_CSUM, a gso_type the frame is not: each dropped and counted, never NEEDS_RESET', T, async () => {
    const r = await rig({ refuse: NetF.HOST_TSO6 | NetF.HOST_ECN, withGsoPeer: true });
    const hl = r.hdrLen;
    const t4 = (): Uint8Array => buildIpFrame({ dst: PEER, src: DEV, payload: 5000 });
    const t6 = (): Uint8Array => buildIpFrame({ dst: PEER, src: DEV, ipv6: true, payload: 5000 });
    const bad = [
      gsoTx(hl, t6(), NetGsoType.TCPV6, 1400), // HOST_TSO6 refused (driver/net/19)
      gsoTx(hl, t4(), NetGsoType.TCPV4 | NetGsoType.ECN, 1400), // HOST_ECN refused (driver/net/22)
      gsoTx(hl, t4(), NetGsoType.TCPV4 | NetGsoType.UDP_TUNNEL_IPV4, 1400), // not offered
      gsoTx(hl, t4(), NetGsoType.TCPV4 | NetGsoType.UDP_TUNNEL_IPV4 | NetGsoType.UDP_TUNNEL_IPV6, 1400), // device/net/22
      gsoTx(hl, t4(), NetGsoType.TCPV4, 0), // gso_size 0
      gsoTx(hl, t4(), NetGsoType.TCPV4, 1501), // above the MTU
      gsoTx(hl, t4(), NetGsoType.UDP_L4, 1400), // a TCP frame called UDP
      gsoTx(hl, t4(), 0x7f, 1400), // an unknown type
      gsoTx(hl, buildIpFrame({ dst: PEER, src: DEV, payload: 60000 }), NetGsoType.TCPV4, 16), // 3750 segments: over NET_GSO_MAX_SEGMENTS
      gsoTx(hl, buildIpFrame({ dst: PEER, src: DEV, udp: true, payload: 5000 }), NetGsoType.UDP, 7), // UFO fragments of 0 bytes
    ];
    for (const b of bad) await r.send(b.h, b.f);
    const noCsum = hdr(hl, { gso: NetGsoType.TCPV4, gsoSize: 1400 });
    await r.send(noCsum, t4()); // driver/net/31: GSO needs NEEDS_CSUM
    await r.send(hdr(hl), t4()); // no GSO and larger than the MTU
    assert.equal(r.device.stats.txErrors, 12);
    assert.equal(r.peer.frames.length + r.gsoPeer.frames.length, 0);
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    const ok = gsoTx(hl, t4(), NetGsoType.TCPV4, 1400);
    await r.send(ok.h, ok.f);
    assert.equal(r.gsoPeer.frames.length, 1);
    await r.lb.close();
  });
});

describe('virtio-net offloads: receive (GUEST_*)', () => {
  it('device/net/46 device/net/49: with GUEST_TSO4 a TCPv4 GSO frame arrives whole: gso_type, gso_size, exact hdr_len, NEEDS_CSUM with the offsets', T, async () => {
    const r = await rig({ refuse: NetF.HASH_REPORT });
    const buf = r.post(70000);
    await tick();
    const f = buildIpFrame({ dst: DEV, src: PEER, payload: 9000 });
    r.peer.inject(f, { type: NetGsoType.TCPV4, size: 1448 });
    const g = await buf;
    const b = g.bytes;
    assert.equal(g.used, 12 + f.length);
    assert.equal(b[0], NetHdrFlag.NEEDS_CSUM);
    assert.equal(b[1], NetGsoType.TCPV4);
    assert.equal(le16(b, 2), 14 + 20 + 20, 'hdr_len: Ethernet, IPv4 and TCP headers');
    assert.equal(le16(b, 4), 1448);
    assert.equal(le16(b, 6), 34);
    assert.equal(le16(b, 8), 16);
    assert.equal(r.device.stats.rxGsoWhole, 1);
    await r.lb.close();
  });

  it('device/net/34 device/net/45 device/net/48 device/net/50: without GUEST_TSO4 the frame arrives as segments with gso_type NONE, DATA_VALID with GUEST_CSUM; device/net/33: flags 0 without it', T, async () => {
    for (const refuse of [NetF.GUEST_TSO4, NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6 | NetF.GUEST_ECN]) {
      const r = await rig({ refuse: refuse | NetF.HASH_REPORT });
      const bufs = [r.post(2000), r.post(2000), r.post(2000)];
      await tick();
      const f = buildIpFrame({ dst: DEV, src: PEER, payload: 4000, seq: 5 });
      r.peer.inject(f, { type: NetGsoType.TCPV4, size: 1448 });
      const got = await Promise.all(bufs);
      got.forEach((g, i) => {
        assert.equal(g.bytes[1], NetGsoType.NONE);
        assert.equal(g.bytes[0], (refuse & NetF.GUEST_CSUM) !== 0n ? 0 : NetHdrFlag.DATA_VALID);
        const seg = g.bytes.subarray(12, g.used);
        assert.ok(checksumsValid(seg));
        assert.equal(get32(seg, 38), 5 + 1448 * i);
      });
      assert.equal(r.device.stats.rxGsoSegmented, 1);
      await r.lb.close();
    }
  });

  it('device/net/40: a TCP GSO frame with CWR goes whole only with GUEST_ECN (gso_type has the ECN bit), else as segments', T, async () => {
    for (const ecn of [true, false]) {
      const r = await rig({ refuse: NetF.HASH_REPORT | (ecn ? 0n : NetF.GUEST_ECN) });
      const bufs = [r.post(70000), r.post(70000)];
      const spare = bufs[1]!.catch(() => null); // unused (aborted at close) when the frame arrives whole
      await tick();
      const f = buildIpFrame({ dst: DEV, src: PEER, payload: 2000, tcpFlags: TcpFlag.ACK | TcpFlag.CWR });
      r.peer.inject(f, { type: NetGsoType.TCPV4, size: 1448 });
      if (ecn) {
        const g = await bufs[0]!;
        assert.equal(g.bytes[1], NetGsoType.TCPV4 | NetGsoType.ECN);
      } else {
        const [a, b] = (await Promise.all(bufs)) as [Rx, Rx];
        assert.equal(a.bytes[1], 0);
        assert.equal(a.bytes[12 + 47]! & TcpFlag.CWR, TcpFlag.CWR, 'CWR on the first segment');
        assert.equal(b.bytes[12 + 47]! & TcpFlag.CWR, 0, 'not on the second');
      }
      await r.lb.close();
      await spare;
    }
  });

  it('device/net/35 device/net/36 device/net/37: TSO6, USO4/6 and UFO frames arrive whole only with their GUEST_* feature', T, async () => {
    const cases = [
      { ipv6: true, udp: false, type: NetGsoType.TCPV6, feature: NetF.GUEST_TSO6 },
      { ipv6: false, udp: true, type: NetGsoType.UDP_L4, feature: NetF.GUEST_USO4 },
      { ipv6: true, udp: true, type: NetGsoType.UDP_L4, feature: NetF.GUEST_USO6 },
      { ipv6: false, udp: true, type: NetGsoType.UDP, feature: NetF.GUEST_UFO },
    ];
    for (const c of cases) {
      for (const on of [true, false]) {
        const r = await rig({ refuse: NetF.HASH_REPORT | (on ? 0n : c.feature) });
        const buf = r.post(70000);
        await tick();
        r.peer.inject(buildIpFrame({ dst: DEV, src: PEER, ipv6: c.ipv6, udp: c.udp, payload: 3000 }), { type: c.type, size: 1400 });
        const g = await buf;
        assert.equal(g.bytes[1], on ? c.type : NetGsoType.NONE, `${c.type} with the feature ${on}`);
        await r.lb.close();
      }
    }
  });

  it('5.1.6.5.6.1: CTRL_GUEST_OFFLOADS_SET turning GUEST_TSO4 off makes the device segment; enabling one not negotiated is VIRTIO_NET_ERR', T, async () => {
    const r = await rig({ refuse: NetF.HASH_REPORT | NetF.GUEST_UFO });
    const mask = (m: bigint): Uint8Array => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(m);
      return Uint8Array.from(b);
    };
    assert.equal((await r.control(NetCtrlClass.GUEST_OFFLOADS, NetCtrlGuestOffloads.SET, mask(NetF.GUEST_CSUM | NetF.GUEST_UFO))).ack, NetCtrlAck.ERR);
    assert.equal((await r.control(NetCtrlClass.GUEST_OFFLOADS, NetCtrlGuestOffloads.SET, mask(NetF.GUEST_CSUM))).ack, NetCtrlAck.OK);
    assert.equal((await r.control(NetCtrlClass.GUEST_OFFLOADS, NetCtrlGuestOffloads.SET, mask(NetF.GUEST_CSUM).subarray(0, 7))).ack, NetCtrlAck.ERR, 'short');
    const bufs = [r.post(2000), r.post(2000)];
    await tick();
    r.peer.inject(buildIpFrame({ dst: DEV, src: PEER, payload: 2000 }), { type: NetGsoType.TCPV4, size: 1448 });
    const got = await Promise.all(bufs);
    assert.equal(got[0]!.bytes[1], 0);
    assert.equal(r.device.guestOffloadsInEffect, NetF.GUEST_CSUM);
    await r.lb.close();
  });

  it('driver/net/45 (device side): with MRG_RXBUF a 64 KiB GSO frame spans mergeable buffers with num_buffers', T, async () => {
    const r = await rig({ refuse: NetF.HASH_REPORT });
    const bufs = Array.from({ length: 40 }, () => r.post(2048));
    await tick();
    const f = buildIpFrame({ dst: DEV, src: PEER, payload: 64000 });
    r.peer.inject(f, { type: NetGsoType.TCPV4, size: 1448 });
    const n = Math.ceil((12 + f.length) / 2048);
    const spare = Promise.all(bufs.slice(n).map((b) => b.catch(() => null))); // aborted at close
    const got = await Promise.all(bufs.slice(0, n));
    assert.equal(le16(got[0]!.bytes, 10), n);
    const all = Buffer.concat(got.map((g) => g.bytes.subarray(0, g.used)));
    // The frame as sent, with the partial checksum left for the driver (NEEDS_CSUM, bytes 50..51).
    assert.deepEqual(Uint8Array.from(all.subarray(12)).subarray(0, 50), f.subarray(0, 50));
    assert.deepEqual(Uint8Array.from(all.subarray(12 + 52)), f.subarray(52));
    assert.equal(all.length, 12 + f.length);
    await r.lb.close();
    await spare;
  });
});

describe('virtio-net: untrusted receive buffers and random GSO headers', () => {
  it('driver/net/45: a mergeable buffer shorter than the header is used empty and the frame dropped and counted, no NEEDS_RESET; the ring moves on', T, async () => {
    const r = await rig({ refuse: NetF.HASH_REPORT });
    const tiny = r.post(8);
    const good = r.post(200);
    await tick();
    const f = buildIpFrame({ dst: DEV, src: PEER, payload: 20 });
    r.peer.inject(f);
    assert.equal((await tiny).used, 0);
    assert.equal(r.device.stats.rxShortBuffers, 1);
    r.peer.inject(f);
    assert.equal((await good).used, 12 + f.length);
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
  });

  it('400 transmit chains with random gso_type, gso_size, hdr_len, flags and checksum offsets over real TCP/UDP frames: forwarded (segments with valid checksums) or counted, never NEEDS_RESET', { timeout: 60_000 }, async () => {
    const r = await rig({ refuse: NetF.HASH_REPORT });
    const rnd = xorshiftBelow(0x2545f491);
    const types = [0, NetGsoType.TCPV4, NetGsoType.TCPV6, NetGsoType.UDP, NetGsoType.UDP_L4, NetGsoType.TCPV4 | NetGsoType.ECN, 0x20, 0x41, 0xff];
    let sent = 0;
    for (let i = 0; i < 400; i++) {
      const f = buildIpFrame({ dst: PEER, src: DEV, ipv6: rnd(2) === 1, udp: rnd(2) === 1, payload: rnd(9000), tcpFlags: rnd(256) });
      if (rnd(4) === 0) f[14 + rnd(40)] = rnd(256); // a damaged header now and then
      const h = hdr(r.hdrLen, { flags: rnd(4), gso: types[rnd(types.length)]!, gsoSize: rnd(3) === 0 ? rnd(70000) & 0xffff : 500 + rnd(1000), hdrLen: rnd(200), csumStart: rnd(3) === 0 ? rnd(70000) & 0xffff : 34 + rnd(40), csumOffset: rnd(20) });
      await r.send(h, f);
      sent++;
    }
    const st = r.device.stats;
    assert.equal(st.txFrames + st.txErrors + st.txDropped, sent, 'every chain forwarded or counted');
    assert.ok(st.txGso > 0 && st.txErrors > 0, `some GSO frames went through (${st.txGso}) and some were refused (${st.txErrors})`);
    for (const s of r.peer.frames) assert.equal(s.gsoType, 0, 'a port without takesGso never sees a GSO frame');
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
  });
});

