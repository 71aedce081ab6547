/**
 * VIRTIO_NET_F_RSC_EXT end to end in process: a peer port on the switch sends TCP segments to a
 * NetDevice whose NetDriver negotiated RSC_EXT (NetDriver.rscType) with GUEST_TSO4/6; the device
 * coalesces in-order segments of one flow into one GSO frame with RSC_INFO (segments in
 * csum_start, duplicated ACKs in csum_offset) and the driver reads the counts. Flows never mix;
 * out-of-order, flag-carrying, option-changing segments end a frame; the hold ends with the task.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetF, NetGsoType, NetHdrFlag } from '../../spec/net.js';
import { type Loopback, createLoopback } from '../../testing/loopback.js';
import { fixTransportChecksum, foldSum, get16, pseudoHeaderSum, put16be, put32be, sumWords } from './checksum.js';
import { FrameLayout, IPPROTO_TCP } from './frame-layout.js';
import { TcpFlag, buildIpFrame, checksumsValid } from './ip-frames.js';
import { NetDevice } from './net-device.js';
import { NetDriver, type NetFrame } from './net-driver.js';
import { NetPacket } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { NetSwitch } from './switch.js';

const T = { timeout: 20_000 };
const DEV = Uint8Array.of(2, 0, 0, 0, 0, 1);
const PEER = Uint8Array.of(2, 0, 0, 0, 0, 2);

class Peer implements NetPort {
  readonly name = 'peer';
  link!: NetLink;
  private readonly out = new NetPacket(70000);
  deliver(): void {}
  /** Sends the frames one after the other in this task (a transmit batch). */
  send(...frames: Uint8Array[]): void {
    for (const f of frames) {
      this.out.set(f);
      this.link.send(this.out);
    }
  }
}

interface Seg {
  seq: number;
  payload: number;
  flags?: number;
  ack?: number;
  win?: number;
  sport?: number;
  ipv6?: boolean;
  tos?: number;
  /** TCP option bytes (a multiple of 4). */
  options?: Uint8Array;
  seed?: number;
}

/** A TCP segment with correct checksums (ACK only unless told). */
function seg(s: Seg): Uint8Array {
  const opt = s.options ?? new Uint8Array(0);
  const f = buildIpFrame({ dst: DEV, src: PEER, ipv6: s.ipv6, payload: opt.length + s.payload, seq: s.seq, tcpFlags: s.flags ?? TcpFlag.ACK, seed: s.seed ?? s.seq });
  const l = new FrameLayout();
  assert.ok(l.parse(f, f.length));
  const l4 = l.l4;
  if (s.sport !== undefined) put16be(f, l4, s.sport);
  if (s.ack !== undefined) put32be(f, l4 + 8, s.ack);
  if (s.win !== undefined) put16be(f, l4 + 14, s.win);
  if (opt.length > 0) {
    f[l4 + 12] = (5 + opt.length / 4) << 4;
    f.set(opt, l4 + 20);
  }
  if (s.tos !== undefined && !l.ipv6) {
    f[l.l3 + 1] = s.tos;
    f[l.l3 + 10] = 0;
    f[l.l3 + 11] = 0;
    put16be(f, l.l3 + 10, ~foldSum(sumWords(f, l.l3, l.l3 + 20, 0)) & 0xffff);
  }
  fixTransportChecksum(f, l.l3, l.ipv6, l4, f.length, false);
  return f;
}

/** The TCP payload of a frame (after its headers, up to the IP length). */
function payloadOf(f: Uint8Array): Uint8Array {
  const l = new FrameLayout();
  assert.ok(l.parse(f, f.length));
  const end = l.ipv6 ? l.l3 + 40 + get16(f, l.l3 + 4) : l.l3 + get16(f, l.l3 + 2);
  return f.subarray(l.hdrs, end);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** Completes a coalesced frame's partial TCP checksum (pseudo-header sum at l4 + 16) the way a driver would. */
function completeTcp(f: Uint8Array): Uint8Array {
  const c = f.slice();
  const l = new FrameLayout();
  assert.ok(l.parse(c, c.length));
  const stored = get16(c, l.l4 + 16);
  assert.equal(stored, foldSum(pseudoHeaderSum(c, l.l3, l.ipv6, IPPROTO_TCP, c.length - l.l4)), 'the pseudo-header sum is in place');
  put16be(c, l.l4 + 16, ~foldSum(sumWords(c, l.l4, c.length, 0)) & 0xffff);
  return c;
}

interface Rig {
  device: NetDevice;
  peer: Peer;
  lb: Loopback;
  net: NetDriver;
  close(): Promise<void>;
}

async function rig(refuse = 0n): Promise<Rig> {
  const sw = new NetSwitch();
  const device = new NetDevice({ mac: DEV, queueSize: 128 });
  device.attachTo(sw);
  const peer = new Peer();
  peer.link = sw.attach(peer);
  const lb = await createLoopback(device, { queueSize: 128, refuseFeatures: NetF.HASH_REPORT | refuse });
  const net = new NetDriver(lb.context, { rxBuffers: 64 });
  return {
    device,
    peer,
    lb,
    net,
    async close() {
      net.detach();
      await lb.close();
    },
  };
}

async function receiveN(net: NetDriver, n: number): Promise<NetFrame[]> {
  const out: NetFrame[] = [];
  for (let i = 0; i < n; i++) out.push(await net.receive());
  return out;
}

const RSC = NetHdrFlag.NEEDS_CSUM | NetHdrFlag.RSC_INFO;

describe('virtio-net RSC_EXT: receive segment coalescing', () => {
  it('device/net/47 driver/net/51: in-order TCPv4 and TCPv6 segments of one flow arrive as one GSO frame with RSC_INFO, the segment count in csum_start, 0 duplicated ACKs; the driver reads the counts, not checksum offsets', T, async () => {
    const r = await rig();
    assert.equal(r.lb.context.features & NetF.RSC_EXT, NetF.RSC_EXT);
    assert.equal(r.net.rsc, true);
    for (const ipv6 of [false, true]) {
      const segs = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => seg({ seq: 1000 + k * 1000, payload: 1000, ipv6, ack: 5000 + k }));
      segs.push(seg({ seq: 9000, payload: 500, ipv6, flags: TcpFlag.ACK | TcpFlag.PSH, ack: 5008, win: 1234 }));
      r.peer.send(...segs);
      const [g] = await receiveN(r.net, 1);
      const hdrs = 14 + (ipv6 ? 40 : 20) + 20;
      assert.equal(g!.gsoType, ipv6 ? NetGsoType.TCPV6 : NetGsoType.TCPV4);
      assert.equal(g!.gsoSize, 1000, 'gso_size: the first segment payload');
      assert.equal(g!.hdrLen, hdrs);
      assert.equal(g!.flags, RSC, 'NEEDS_CSUM (device/net/46) and RSC_INFO');
      assert.deepEqual([g!.rscSegments, g!.rscDupAcks], [9, 0]);
      assert.deepEqual([g!.csumStart, g!.csumOffset], [0, 0], 'driver/net/51: not checksum offsets under RSC_INFO');
      assert.deepEqual(payloadOf(g!.data), concat(...segs.map(payloadOf)), 'payload in order, nothing lost');
      assert.equal(g!.data.length, hdrs + 8500);
      const l4 = hdrs - 20;
      assert.equal(g!.data[l4 + 13], TcpFlag.ACK | TcpFlag.PSH, 'PSH of the last segment');
      assert.equal(get16(g!.data, l4 + 8 + 2), 5008, 'the newest ack number');
      assert.equal(get16(g!.data, l4 + 14), 1234, 'the newest window');
      assert.ok(checksumsValid(completeTcp(g!.data)), 'IP length and checksum right, TCP checksum completes');
    }
    assert.equal(r.device.stats.rxRscFrames, 2);
    assert.equal(r.device.stats.rxFrames, 2);
    await r.close();
  });

  it('device/net/47: duplicated ACKs (expected sequence, same ack number and window, no data) are absorbed and counted in csum_offset; an advancing pure ACK ends the frame and passes alone', T, async () => {
    const r = await rig();
    const a = seg({ seq: 1, payload: 1400, ack: 777 });
    const b = seg({ seq: 1401, payload: 1400, ack: 777 });
    const dup = seg({ seq: 2801, payload: 0, ack: 777 });
    const pure = seg({ seq: 2801, payload: 0, ack: 900 });
    r.peer.send(a, b, dup, dup, dup, pure);
    const [g, p] = await receiveN(r.net, 2);
    assert.equal(g!.flags, RSC);
    assert.deepEqual([g!.rscSegments, g!.rscDupAcks], [2, 3]);
    assert.deepEqual(payloadOf(g!.data), concat(payloadOf(a), payloadOf(b)));
    assert.equal(p!.gsoType, NetGsoType.NONE);
    assert.deepEqual(p!.data, pure, 'the advancing ACK unchanged, after the frame');
    assert.equal(p!.rscSegments, 0);
    await r.close();
  });

  it('device/net/47: flows never mix: interleaved segments of two flows (other port, other IP version) become one frame each with only their own bytes', T, async () => {
    const r = await rig();
    const x = [0, 1, 2].map((k) => seg({ seq: 100 + 1000 * k, payload: 1000, sport: 1111 }));
    const y = [0, 1, 2].map((k) => seg({ seq: 900 + 1000 * k, payload: 1000, sport: 2222, seed: 7 }));
    const z = [0, 1].map((k) => seg({ seq: 100 + 1000 * k, payload: 1000, sport: 1111, ipv6: true }));
    r.peer.send(x[0]!, y[0]!, z[0]!, x[1]!, y[1]!, z[1]!, x[2]!, y[2]!);
    const got = await receiveN(r.net, 3);
    const bySport = (port: number, v6: boolean): NetFrame => got.find((g) => get16(g.data, 14 + (v6 ? 40 : 20)) === port && (g.gsoType === NetGsoType.TCPV6) === v6)!;
    assert.deepEqual(payloadOf(bySport(1111, false).data), concat(...x.map(payloadOf)));
    assert.deepEqual(payloadOf(bySport(2222, false).data), concat(...y.map(payloadOf)));
    assert.deepEqual(payloadOf(bySport(1111, true).data), concat(...z.map(payloadOf)));
    assert.deepEqual(got.map((g) => g.rscSegments).sort(), [2, 3, 3]);
    for (const g of got) assert.ok(checksumsValid(completeTcp(g.data)));
    await r.close();
  });

  it('device/net/47: a gap in sequence, SYN/FIN/RST/URG, other TCP options or another TOS end the held frame; the segment then goes in order behind it', T, async () => {
    const enders: [string, (seq: number) => Uint8Array, boolean][] = [
      ['out of order', (seq) => seg({ seq: seq + 5000, payload: 1000 }), true],
      ['FIN', (seq) => seg({ seq, payload: 1000, flags: TcpFlag.ACK | TcpFlag.FIN }), false],
      ['RST', (seq) => seg({ seq, payload: 0, flags: TcpFlag.ACK | TcpFlag.RST }), false],
      ['URG', (seq) => seg({ seq, payload: 1000, flags: TcpFlag.ACK | TcpFlag.URG }), false],
      ['SYN', (seq) => seg({ seq, payload: 0, flags: TcpFlag.SYN }), false],
      ['ECE', (seq) => seg({ seq, payload: 1000, flags: TcpFlag.ACK | TcpFlag.ECE }), false],
      ['timestamp option changed', (seq) => seg({ seq, payload: 1000, options: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 1) }), true],
      ['TOS changed', (seq) => seg({ seq, payload: 1000, tos: 0x10 }), true],
      ['larger than gso_size', (seq) => seg({ seq, payload: 1200 }), true],
    ];
    for (const [name, make, startsNew] of enders) {
      const r = await rig();
      const opts = name === 'timestamp option changed' ? { options: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 8, 0, 0, 0, 1) } : {};
      const a = seg({ seq: 1, payload: 1000, ...opts });
      const b = seg({ seq: 1001, payload: 1000, ...opts });
      const e = make(2001);
      r.peer.send(a, b, e);
      const [g, h] = await receiveN(r.net, 2);
      assert.deepEqual([g!.rscSegments, g!.flags], [2, RSC], `${name}: the held frame first`);
      assert.deepEqual(payloadOf(g!.data), concat(payloadOf(a), payloadOf(b)), name);
      assert.equal(h!.gsoType, NetGsoType.NONE, name);
      assert.deepEqual(h!.data, e, `${name}: then the segment as it came (${startsNew ? 'held alone, sent as it came' : 'passed alone'})`);
      assert.equal(h!.rscSegments, 0);
      await r.close();
    }
  });

  it('device/net/47: a segment with a wrong TCP checksum is never coalesced (it passes alone without DATA_VALID); a lone held segment arrives as it came, DATA_VALID, once the sending task ends', T, async () => {
    const r = await rig();
    const a = seg({ seq: 1, payload: 1000 });
    const bad = seg({ seq: 1001, payload: 1000 });
    bad[bad.length - 1]! ^= 0xff;
    r.peer.send(a, bad);
    const [g, h] = await receiveN(r.net, 2);
    assert.deepEqual(g!.data, a, 'the held segment alone: nothing joined it');
    assert.equal(g!.flags, NetHdrFlag.DATA_VALID);
    assert.equal(g!.gsoType, NetGsoType.NONE);
    assert.deepEqual(h!.data, bad);
    assert.equal(h!.flags, 0, 'device/net/25: a wrong checksum is not claimed valid');
    assert.equal(r.device.stats.rxRscFrames, 0);
    // The hold is bounded by the task: a lone segment with no traffic behind it still arrives.
    r.peer.send(seg({ seq: 5000, payload: 100 }));
    const [lone] = await receiveN(r.net, 1);
    assert.equal(lone!.gsoType, NetGsoType.NONE);
    await r.close();
  });

  it('device/net/47: with RSC_EXT a whole GSO frame from a TSO sender carries RSC_INFO with the segments it stands for; the flow\'s held segments go first', T, async () => {
    const r = await rig();
    const out = new NetPacket(70000);
    const held = seg({ seq: 1, payload: 1000 });
    const big = buildIpFrame({ dst: DEV, src: PEER, payload: 10_000, seq: 1001, tcpFlags: TcpFlag.ACK });
    r.peer.send(held);
    out.set(big);
    const l = new FrameLayout();
    assert.ok(l.parse(out.data, out.length));
    put16be(out.data, l.l4 + 16, foldSum(pseudoHeaderSum(out.data, l.l3, false, IPPROTO_TCP, out.length - l.l4)));
    out.needsCsum = true;
    out.csumStart = l.l4;
    out.csumOffset = 16;
    out.gsoType = NetGsoType.TCPV4;
    out.gsoSize = 1448;
    r.peer.link.send(out);
    const [g, w] = await receiveN(r.net, 2);
    assert.deepEqual(g!.data, held, 'the held segment first');
    assert.equal(w!.gsoType, NetGsoType.TCPV4);
    assert.equal(w!.flags, RSC);
    assert.deepEqual([w!.rscSegments, w!.rscDupAcks], [Math.ceil(10_000 / 1448), 0]);
    await r.close();
  });

  it('device/net/48: without RSC_EXT, or with GUEST_TSO4 turned off by CTRL_GUEST_OFFLOADS, the segments arrive one by one and no header has RSC_INFO', T, async () => {
    const segs = [0, 1, 2].map((k) => seg({ seq: 1 + 1000 * k, payload: 1000 }));
    const r = await rig(NetF.RSC_EXT);
    assert.equal(r.net.rsc, false);
    r.peer.send(...segs);
    const got = await receiveN(r.net, 3);
    for (const [i, g] of got.entries()) {
      assert.deepEqual(g.data, segs[i]);
      assert.equal(g.flags & NetHdrFlag.RSC_INFO, 0);
      assert.equal(g.gsoType, NetGsoType.NONE);
    }
    await r.close();
    const s = await rig();
    const offloads = s.lb.context.features & (NetF.GUEST_CSUM | NetF.GUEST_TSO6);
    await s.net.setGuestOffloads(offloads);
    s.peer.send(...segs);
    const plain = await receiveN(s.net, 3);
    assert.deepEqual(plain.map((g) => g.rscSegments + g.gsoType), [0, 0, 0], 'IPv4 not coalesced without GUEST_TSO4');
    await s.close();
  });

  it('device reset while segments are held: they are dropped, nothing is written after the reset, nothing throws', T, async () => {
    const r = await rig();
    r.peer.send(seg({ seq: 1, payload: 1000 }), seg({ seq: 1001, payload: 1000 }));
    r.device.reset();
    await new Promise<void>((res) => setImmediate(res));
    assert.equal(r.device.stats.rxRscFrames, 0);
    assert.equal(r.device.stats.rxFrames, 0);
    await r.close();
  });

  it('device/net/47: 600 random segments of four flows (gaps, PSH/FIN/URG, duplicated and advancing ACKs, bad checksums, random batches): per flow every payload byte arrives once, in order; every ACK is delivered or counted; coalesced frames complete to valid checksums', T, async () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const r = await rig();
    const flows = [0, 1, 2, 3].map((i) => ({ sport: 1000 + i, ipv6: i === 3, seq: 1 + 100_000 * i, ack: 500, sent: [] as Uint8Array[], acks: 0 }));
    let remaining = 600;
    while (remaining > 0) {
      const batch: Uint8Array[] = [];
      for (let k = 1 + rnd(12); k > 0 && remaining > 0; k--, remaining--) {
        const fl = flows[rnd(4)]!;
        const what = rnd(20);
        const base = { sport: fl.sport, ipv6: fl.ipv6, ack: fl.ack, seed: rnd(256) };
        let f: Uint8Array;
        if (what < 2) {
          f = seg({ ...base, seq: fl.seq, payload: 0 }); // a duplicated ACK
          fl.acks++;
        } else if (what < 3) {
          fl.ack += 1000;
          f = seg({ ...base, ack: fl.ack, seq: fl.seq, payload: 0 }); // an advancing pure ACK
          fl.acks++;
        } else {
          if (what === 3) fl.seq += 5000; // a gap
          const payload = what === 4 ? 1 + rnd(999) : 1000;
          const flags = what === 5 ? TcpFlag.ACK | TcpFlag.PSH : what === 6 ? TcpFlag.ACK | TcpFlag.FIN : what === 7 ? TcpFlag.ACK | TcpFlag.URG : TcpFlag.ACK;
          f = seg({ ...base, seq: fl.seq, payload, flags });
          if (what === 8) f[14 + (fl.ipv6 ? 40 : 20) + 16]! ^= 0x55; // a wrong TCP checksum
          fl.seq += payload;
          fl.sent.push(payloadOf(f));
        }
        batch.push(f);
      }
      r.peer.send(...batch);
      await new Promise<void>((res) => setImmediate(res));
    }
    const got = await receiveN(r.net, r.device.stats.rxFrames);
    const l = new FrameLayout();
    for (const fl of flows) {
      const mine = got.filter((g) => l.parse(g.data, g.data.length) && get16(g.data, l.l4) === fl.sport && l.ipv6 === fl.ipv6);
      assert.deepEqual(concat(...mine.map((g) => payloadOf(g.data))), concat(...fl.sent), `flow ${fl.sport}: every byte once, in order`);
      const pureAcks = mine.filter((g) => payloadOf(g.data).length === 0).length;
      const dups = mine.reduce((n, g) => n + g.rscDupAcks, 0);
      assert.equal(pureAcks + dups, fl.acks, `flow ${fl.sport}: every ACK delivered or counted`);
      for (const g of mine) {
        if ((g.flags & NetHdrFlag.RSC_INFO) === 0) continue;
        assert.ok(g.rscSegments >= 1 && g.gsoSize > 0);
        assert.ok(checksumsValid(completeTcp(g.data)), 'a coalesced frame completes to valid checksums');
      }
    }
    assert.ok(r.device.stats.rxRscFrames > 20, `coalescing happened (${r.device.stats.rxRscFrames} frames)`);
    assert.equal(r.device.stats.rxNoBuffer, 0);
    await r.close();
  });

  it('RSC_EXT is offered with the segmentation offloads and goes when HOST_TSO4/6 or GUEST_TSO4/6 are not offered (5.1.3.1)', () => {
    assert.equal(new NetDevice().offeredFeatures & NetF.RSC_EXT, NetF.RSC_EXT);
    assert.equal(new NetDevice({ rsc: false }).offeredFeatures & NetF.RSC_EXT, 0n);
    assert.equal(new NetDevice({ gso: false }).offeredFeatures & NetF.RSC_EXT, 0n);
    assert.equal(new NetDevice({ withoutFeatures: NetF.HOST_TSO4 | NetF.HOST_TSO6 }).offeredFeatures & NetF.RSC_EXT, 0n);
    assert.equal(new NetDevice({ withoutFeatures: NetF.GUEST_TSO4 | NetF.GUEST_TSO6 }).offeredFeatures & NetF.RSC_EXT, 0n);
    assert.equal(new NetDevice({ withoutFeatures: NetF.HOST_TSO6 | NetF.GUEST_TSO6 }).offeredFeatures & NetF.RSC_EXT, NetF.RSC_EXT);
  });
});
