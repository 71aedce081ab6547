/**
 * virtio-net offloads and the newer control commands through hand-built chains (in-process
 * transport): transmit GSO (checked, carried whole or segmented by the switch), receive GSO
 * (whole with gso fields for a driver with GUEST_* offloads, else segments), DATA_VALID, the
 * 20-byte header with HASH_REPORT, RSS steering, notification coalescing, and the malformed
 * input of each with its outcome.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestQueue } from '../../driver/request-queue.js';
import type { Segment } from '../../queue/types.js';
import { NetCtrlAck, NetCtrlClass, NetCtrlGuestOffloads, NetCtrlMq, NetCtrlNotfCoal, NetF, NetGsoType, NetHdrFlag } from '../../spec/net.js';
import { F } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
import { type Loopback, createLoopback } from '../../testing/loopback.js';
import { get32 } from './checksum.js';
import { TcpFlag, buildIpFrame, checksumsValid, makeChecksumPartial } from './ip-frames.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { NetHashReport, NetHashType, toeplitzHash } from './net-rss.js';
import { NetPacket } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { NetSwitch } from './switch.js';
import { xorshiftBelow } from '../../testing/xorshift.js';

const T = { timeout: 15_000 };
const DEV = Uint8Array.of(0x02, 0x76, 0x74, 0, 0, 1);
const PEER = Uint8Array.of(0x02, 0x76, 0x74, 0, 0, 2);
const KEY = Uint8Array.from(Buffer.from('6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa', 'hex'));

interface Seen {
  data: Uint8Array;
  gsoType: number;
  gsoSize: number;
  needsCsum: boolean;
}

/** The far end: records what it gets, injects frames (with offload metadata) for the device. */
class Peer implements NetPort {
  link!: NetLink;
  frames: Seen[] = [];
  private readonly out = new NetPacket(70000);
  constructor(
    readonly name: string,
    readonly takesGso: boolean,
  ) {}
  deliver(p: NetPacket): void {
    this.frames.push({ data: p.bytes(), gsoType: p.gsoType, gsoSize: p.gsoSize, needsCsum: p.needsCsum });
  }
  /** Sends `f`; with `gso` as a GSO packet with a partial checksum (as a guest or TAP hands one over). */
  inject(f: Uint8Array, gso?: { type: number; size: number }): void {
    const o = this.out;
    o.set(f);
    if (gso) {
      const c = makeChecksumPartial(o.data.subarray(0, o.length));
      o.needsCsum = true;
      o.csumStart = c.start;
      o.csumOffset = c.offset;
      o.gsoType = gso.type;
      o.gsoSize = gso.size;
    }
    this.link.send(o);
  }
}

interface Rx {
  used: number;
  bytes: Uint8Array;
}

interface Rig {
  device: NetDevice;
  peer: Peer;
  gsoPeer: Peer;
  lb: Loopback;
  hdrLen: number;
  post(len: number, pair?: number): Promise<Rx>;
  send(hdr: Uint8Array, frame: Uint8Array, pair?: number): Promise<number>;
  control(cls: number, cmd: number, payload: Uint8Array, replyLen?: number): Promise<{ used: number; ack: number; reply: Uint8Array }>;
}

async function rig(opts: { device?: NetDeviceOptions; refuse?: bigint; withGsoPeer?: boolean } = {}): Promise<Rig> {
  const device = new NetDevice({ mac: DEV, queueSize: 128, ...opts.device });
  const sw = new NetSwitch();
  device.attachTo(sw);
  const peer = new Peer('peer', false);
  peer.link = sw.attach(peer);
  const gsoPeer = new Peer('gso-peer', true);
  if (opts.withGsoPeer === true) gsoPeer.link = sw.attach(gsoPeer);
  // RSC_EXT (net-rsc.test.ts) changes what csum_start/csum_offset mean in a GSO frame's header:
  // these tests are for a driver without it.
  const lb = await createLoopback(device, { queueSize: 128, refuseFeatures: (opts.refuse ?? 0n) | NetF.RSC_EXT });
  const ctx = lb.context;
  const f = ctx.features;
  const hdrLen = (f & NetF.HASH_REPORT) !== 0n ? 20 : 12;
  const pairs = (f & (NetF.MQ | NetF.RSS)) !== 0n ? device.maxPairs : 1;
  const rx: RequestQueue[] = [];
  const tx: RequestQueue[] = [];
  for (let p = 0; p < pairs; p++) {
    rx.push(new RequestQueue(ctx, 2 * p));
    tx.push(new RequestQueue(ctx, 2 * p + 1));
  }
  const ctrl = new RequestQueue(ctx, 2 * pairs);
  const seg = (bytes: Uint8Array): Segment => {
    const addr = ctx.dma.alloc(Math.max(1, bytes.length));
    ctx.memory.write(addr, bytes);
    return { addr, len: bytes.length };
  };
  return {
    device,
    peer,
    gsoPeer,
    lb,
    hdrLen,
    async post(len, pair = 0) {
      const s = seg(new Uint8Array(len).fill(0xee));
      const used = await rx[pair]!.submit([], [s]);
      const bytes = new Uint8Array(len);
      ctx.memory.read(s.addr, bytes);
      return { used, bytes };
    },
    send(hdr, frame, pair = 0) {
      const b = new Uint8Array(hdr.length + frame.length);
      b.set(hdr);
      b.set(frame, hdr.length);
      return tx[pair]!.submit([seg(b)], []);
    },
    async control(cls, cmd, payload, replyLen = 0) {
      const b = new Uint8Array(2 + payload.length);
      b[0] = cls;
      b[1] = cmd;
      b.set(payload, 2);
      const inn = seg(new Uint8Array(1 + replyLen).fill(0xee));
      const used = await ctrl.submit([seg(b)], [inn]);
      const r = new Uint8Array(1 + replyLen);
      ctx.memory.read(inn.addr, r);
      return { used, ack: r[0]!, reply: r.subarray(1) };
    },
  };
}

/** A virtio_net_hdr (little-endian) of `len` bytes. */
function hdr(len: number, h: { flags?: number; gso?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number } = {}): Uint8Array {
  const b = Buffer.alloc(len);
  b[0] = h.flags ?? 0;
  b[1] = h.gso ?? 0;
  b.writeUInt16LE(h.hdrLen ?? 0, 2);
  b.writeUInt16LE(h.gsoSize ?? 0, 4);
  b.writeUInt16LE(h.csumStart ?? 0, 6);
  b.writeUInt16LE(h.csumOffset ?? 0, 8);
  return Uint8Array.from(b);
}
/** A GSO transmit: the frame with a partial checksum and its header. */
function gsoTx(hl: number, f: Uint8Array, gso: number, size: number, extra: { flags?: number; hdrLen?: number } = {}): { h: Uint8Array; f: Uint8Array } {
  const c = makeChecksumPartial(f);
  return { h: hdr(hl, { flags: NetHdrFlag.NEEDS_CSUM | (extra.flags ?? 0), gso, gsoSize: size, hdrLen: extra.hdrLen ?? 0, csumStart: c.start, csumOffset: c.offset }), f };
}
const le16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
const le32 = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const u32le = (...v: number[]): Uint8Array => {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32LE(x, 4 * i));
  return Uint8Array.from(b);
};
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

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
