/**
 * virtio-net device behaviour through hand-built chains (in-process transport): the receive
 * path (num_buffers, mergeable buffers, undoPop), the transmit checks, checksum offload, the
 * control queue, link status. The driver side here is raw RequestQueues, so malformed input
 * can be sent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestQueue } from '../../driver/request-queue.js';
import type { Segment } from '../../queue/types.js';
import { F } from '../../spec/features.js';
import { NetConfig, NetCtrlAck, NetCtrlClass, NetCtrlMac, NetCtrlMq, NetCtrlRx, NetCtrlVlan, NetCtrlAnnounce, NetF, NetHdrFlag, NetStatus } from '../../spec/net.js';
import { Status } from '../../spec/status.js';
import { type Loopback, createLoopback } from '../../testing/loopback.js';
import { NET_CTRL_MAX_COMMAND } from './net-control.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { NET_PARTIAL_FRAME, NetPacket } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { NetSwitch } from './switch.js';

const T = { timeout: 10_000 };
const DEV_MAC = Uint8Array.of(0x02, 0x76, 0x74, 0, 0, 1);
const PEER_MAC = Uint8Array.of(0x02, 0x76, 0x74, 0, 0, 2);
const BCAST = new Uint8Array(6).fill(0xff);

/** The far end: records what the device transmits, injects frames for it. */
class Peer implements NetPort {
  readonly name = 'peer';
  link!: NetLink;
  frames: { data: Uint8Array; needsCsum: boolean; csumStart: number; csumOffset: number }[] = [];
  private readonly out = new NetPacket(70000);
  deliver(p: NetPacket): void {
    this.frames.push({ data: p.bytes(), needsCsum: p.needsCsum, csumStart: p.csumStart, csumOffset: p.csumOffset });
  }
  inject(frame: Uint8Array, csum?: { start: number; offset: number }): void {
    this.out.set(frame);
    if (csum) {
      this.out.needsCsum = true;
      this.out.csumStart = csum.start;
      this.out.csumOffset = csum.offset;
    }
    this.link.send(this.out);
  }
}

function frame(dst: Uint8Array, src: Uint8Array, len: number, seed = 1, etherType = 0x0800): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = etherType >>> 8;
  f[13] = etherType & 0xff;
  for (let i = 14; i < len; i++) f[i] = (i * 13 + seed) & 0xff;
  return f;
}

interface Rig {
  device: NetDevice;
  peer: Peer;
  lb: Loopback;
  rx: RequestQueue;
  tx: RequestQueue;
  ctrl: RequestQueue | null;
  hdrLen: number;
  /** Posts a receive buffer of `len` bytes; resolves with the used length and the bytes. */
  post(len: number): Promise<{ used: number; bytes: Uint8Array }>;
  /** Sends readable bytes on transmitq1. */
  send(bytes: Uint8Array): Promise<number>;
  /** A control command (class, command, payload) with `ackLen` writable bytes; resolves with [used, ack]. */
  control(cls: number, cmd: number, payload: Uint8Array, ackLen?: number): Promise<[number, number]>;
}

async function rig(opts: { device?: NetDeviceOptions; refuse?: bigint; legacy?: boolean; packed?: boolean } = {}): Promise<Rig> {
  const device = new NetDevice({ mac: DEV_MAC, queueSize: 64, ...opts.device });
  const sw = new NetSwitch();
  device.attachTo(sw);
  const peer = new Peer();
  peer.link = sw.attach(peer);
  // The rig's driver does not take HASH_REPORT (its 20-byte header has its own tests in
  // net-offload.test.ts): the header here is 12 bytes, or 10 legacy.
  const lb = await createLoopback(device, { queueSize: 64, legacy: opts.legacy ?? false, packed: opts.packed ?? false, inOrder: opts.device?.inOrder === true, refuseFeatures: (opts.refuse ?? 0n) | NetF.HASH_REPORT });
  const ctx = lb.context;
  const f = ctx.features;
  const hdrLen = (f & (F.VERSION_1 | NetF.MRG_RXBUF)) !== 0n ? 12 : 10;
  const rx = new RequestQueue(ctx, 0);
  const tx = new RequestQueue(ctx, 1);
  const pairs = (f & NetF.MQ) !== 0n ? device.maxPairs : 1;
  const ctrl = (f & NetF.CTRL_VQ) !== 0n ? new RequestQueue(ctx, 2 * pairs) : null;
  const seg = (bytes: Uint8Array): Segment => {
    const addr = ctx.dma.alloc(Math.max(1, bytes.length));
    ctx.memory.write(addr, bytes);
    return { addr, len: bytes.length };
  };
  return {
    device,
    peer,
    lb,
    rx,
    tx,
    ctrl,
    hdrLen,
    async post(len) {
      const s = seg(new Uint8Array(len).fill(0xee));
      const used = await rx.submit([], [s]);
      const bytes = new Uint8Array(len);
      ctx.memory.read(s.addr, bytes);
      return { used, bytes };
    },
    send: (bytes) => tx.submit([seg(bytes)], []),
    async control(cls, cmd, payload, ackLen = 1) {
      const b = new Uint8Array(2 + payload.length);
      b[0] = cls;
      b[1] = cmd;
      b.set(payload, 2);
      const ack = seg(new Uint8Array(ackLen).fill(0xee));
      const used = await ctrl!.submit([seg(b)], ackLen > 0 ? [ack] : []);
      const a = new Uint8Array(1);
      ctx.memory.read(ack.addr, a);
      return [used, a[0]!];
    },
  };
}

function hdr(len: number, fields: { flags?: number; gso?: number; csumStart?: number; csumOffset?: number } = {}): Uint8Array {
  const h = new Uint8Array(len);
  h[0] = fields.flags ?? 0;
  h[1] = fields.gso ?? 0;
  h[6] = (fields.csumStart ?? 0) & 0xff;
  h[7] = (fields.csumStart ?? 0) >>> 8;
  h[8] = (fields.csumOffset ?? 0) & 0xff;
  h[9] = (fields.csumOffset ?? 0) >>> 8;
  return h;
}
const cat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const o = new Uint8Array(a.length + b.length);
  o.set(a);
  o.set(b, a.length);
  return o;
};
const le16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('virtio-net device: receive', () => {
  it('device/net/27 device/net/30 device/net/31 device/net/32: a frame over mergeable buffers sets num_buffers, fills all but the last, and they are used together', T, async () => {
    const r = await rig();
    assert.ok((r.lb.context.features & NetF.MRG_RXBUF) !== 0n);
    const bufs = [r.post(100), r.post(100), r.post(100), r.post(100)];
    const spare = r.post(100).catch((e: unknown) => e); // aborted by the reset at the end
    await tick();
    const f = frame(DEV_MAC, PEER_MAC, 300);
    r.peer.inject(f);
    const got = await Promise.all(bufs.slice(0, 4));
    assert.deepEqual(got.map((g) => g.used), [100, 100, 100, 12]);
    assert.equal(le16(got[0]!.bytes, 10), 4, 'num_buffers');
    const data = cat(cat(got[0]!.bytes, got[1]!.bytes), cat(got[2]!.bytes, got[3]!.bytes.subarray(0, 12)));
    assert.deepEqual(data.subarray(12), f);
    assert.equal(r.device.stats.rxFrames, 1);
    await r.lb.close();
    assert.match(String(await spare), /aborted/, 'the fifth buffer was not used');
  });

  for (const packed of [false, true])
  it(`mergeable (${packed ? 'packed' : 'split'}): with too few buffers they go back untouched (undoPop), the frame is dropped and counted, and the next frame uses them`, T, async () => {
    const r = await rig({ packed });
    const a = r.post(100);
    const b = r.post(100);
    await tick();
    r.peer.inject(frame(DEV_MAC, PEER_MAC, 300));
    assert.equal(r.device.stats.rxNoBuffer, 1);
    const f = frame(DEV_MAC, PEER_MAC, 150, 7);
    r.peer.inject(f);
    const [ga, gb] = await Promise.all([a, b]);
    assert.deepEqual([ga.used, gb.used], [100, 62]);
    assert.equal(le16(ga.bytes, 10), 2);
    assert.deepEqual(cat(ga.bytes.subarray(12), gb.bytes.subarray(0, 62)), f);
    await r.lb.close();
  });

  it('device/net/28 device/net/29: without MRG_RXBUF one buffer per frame and num_buffers 1 (12-byte header with VERSION_1); a short buffer is used empty and counted', T, async () => {
    const r = await rig({ refuse: NetF.MRG_RXBUF });
    assert.equal(r.hdrLen, 12);
    const small = r.post(40);
    const big = r.post(1600);
    await tick();
    const f = frame(DEV_MAC, PEER_MAC, 100);
    r.peer.inject(f); // does not fit 40 bytes
    assert.equal((await small).used, 0);
    assert.equal(r.device.stats.rxShortBuffers, 1);
    r.peer.inject(f);
    const g = await big;
    assert.equal(g.used, 112);
    assert.equal(le16(g.bytes, 10), 1);
    assert.deepEqual(g.bytes.subarray(12, 112), f);
    await r.lb.close();
  });

  it('5.1.6 legacy: without VERSION_1 and MRG_RXBUF the header is 10 bytes, both ways', T, async () => {
    const r = await rig({ legacy: true, refuse: NetF.MRG_RXBUF });
    assert.equal(r.hdrLen, 10);
    const buf = r.post(200);
    await tick();
    const f = frame(DEV_MAC, PEER_MAC, 80);
    r.peer.inject(f);
    const g = await buf;
    assert.equal(g.used, 90);
    assert.deepEqual(g.bytes.subarray(10, 90), f);
    const out = frame(PEER_MAC, DEV_MAC, 64, 3);
    await r.send(cat(hdr(10), out));
    assert.deepEqual(r.peer.frames.at(-1)!.data, out);
    await r.lb.close();
  });

  it('device/net/33: a partial checksum is completed for a driver without GUEST_CSUM; device/net/43: passed as NEEDS_CSUM with GUEST_CSUM', T, async () => {
    const f = frame(DEV_MAC, PEER_MAC, 80);
    f[40] = 0;
    f[41] = 0;
    {
      const r = await rig({ refuse: NetF.GUEST_CSUM });
      const buf = r.post(200);
      await tick();
      r.peer.inject(f, { start: 34, offset: 6 });
      const g = await buf;
      assert.equal(g.bytes[0], 0, 'flags 0');
      const got = g.bytes.subarray(12, 92);
      let sum = 0;
      for (let i = 34; i < 80; i += 2) sum += (got[i]! << 8) | got[i + 1]!;
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      assert.equal(sum, 0xffff, 'the checksum is complete');
      await r.lb.close();
    }
    {
      const r = await rig();
      const buf = r.post(200);
      await tick();
      r.peer.inject(f, { start: 34, offset: 6 });
      const g = await buf;
      assert.equal(g.bytes[0], NetHdrFlag.NEEDS_CSUM);
      assert.equal(le16(g.bytes, 6), 34);
      assert.equal(le16(g.bytes, 8), 6);
      assert.deepEqual(g.bytes.subarray(12, 92), f);
      await r.lb.close();
    }
  });

  it('device/net/5: a frame larger than the MTU allows is not passed; no buffers: dropped and counted', T, async () => {
    const r = await rig({ device: { mtu: 576 } });
    r.peer.inject(frame(DEV_MAC, PEER_MAC, 200)); // no buffer posted
    assert.equal(r.device.stats.rxNoBuffer, 1);
    const buf = r.post(2000);
    await tick();
    r.peer.inject(frame(DEV_MAC, PEER_MAC, 576 + 14 + 4 + 1));
    assert.equal(r.device.stats.rxErrors, 1);
    r.peer.inject(frame(DEV_MAC, PEER_MAC, 576 + 14));
    assert.equal((await buf).used, 12 + 590);
    await r.lb.close();
  });
});

describe('virtio-net device: transmit checks (the guest is untrusted)', () => {
  it('device/net/6: frames up to the MTU pass; short, oversized, GSO not negotiated, bad csum offsets and NEEDS_CSUM without CSUM are dropped and counted, no throw', T, async () => {
    const r = await rig({ device: { mtu: 1500 } });
    const good = frame(PEER_MAC, DEV_MAC, 1514);
    await r.send(cat(hdr(12), good));
    assert.deepEqual(r.peer.frames.at(-1)!.data, good);
    // The largest frame without GSO: the MTU, an Ethernet header and a VLAN tag; with no flags
    // (the plain header's own check) and with a flag bit the device ignores (device/net/15).
    const biggest = frame(PEER_MAC, DEV_MAC, 1500 + 18);
    await r.send(cat(hdr(12), biggest));
    assert.deepEqual(r.peer.frames.at(-1)!.data, biggest);
    await r.send(cat(hdr(12, { flags: 2 }), biggest));
    assert.equal(r.peer.frames.length, 3);
    await r.send(new Uint8Array(8)); // shorter than the header
    await r.send(cat(hdr(12), new Uint8Array(10))); // shorter than an Ethernet header
    await r.send(cat(hdr(12), frame(PEER_MAC, DEV_MAC, 1500 + 18 + 1))); // oversized
    await r.send(cat(hdr(12, { flags: 2 }), frame(PEER_MAC, DEV_MAC, 1500 + 18 + 1))); // oversized, an ignored flag
    await r.send(cat(hdr(12, { gso: 1 }), frame(PEER_MAC, DEV_MAC, 100))); // TCPV4, HOST_TSO4 not offered
    await r.send(cat(hdr(12, { flags: 1, csumStart: 90, csumOffset: 16 }), frame(PEER_MAC, DEV_MAC, 100))); // past the end
    assert.equal(r.device.stats.txErrors, 6);
    assert.equal(r.peer.frames.length, 3);
    // A good partial checksum is carried to the peer.
    await r.send(cat(hdr(12, { flags: 1, csumStart: 34, csumOffset: 16 }), frame(PEER_MAC, DEV_MAC, 100)));
    assert.deepEqual(r.peer.frames.at(-1)!.needsCsum, true);
    assert.equal(r.peer.frames.at(-1)!.csumStart, 34);
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
    const n = await rig({ refuse: NetF.CSUM });
    await n.send(cat(hdr(12, { flags: 1, csumStart: 34, csumOffset: 16 }), frame(PEER_MAC, DEV_MAC, 100)));
    assert.equal(n.device.stats.txErrors, 1, 'driver/net/16: NEEDS_CSUM without CSUM');
    await n.lb.close();
  });
});

describe('virtio-net device: partial transmit frames', () => {
  /** A link recording what the device hands it: whether partial, and the frame after ensureFrame. */
  class RecordingLink implements NetLink {
    readonly got: { partial: boolean; head: Uint8Array; whole: Uint8Array }[] = [];
    constructor(readonly partialFrames: boolean) {}
    send(p: NetPacket): void {
      const partial = p.pending !== null;
      const head = p.data.slice(0, NET_PARTIAL_FRAME);
      p.ensureFrame();
      this.got.push({ partial, head, whole: p.data.slice(0, p.length) });
    }
  }

  it('a switch gets the Ethernet header first and the rest when it hands the frame on; any other link gets whole frames; every receiver sees the frame as sent', T, async () => {
    const r = await rig();
    const sizes = [14, 15, 16, 17, 60, 64, 300, 1514];
    // Through the switch (flooded to the peer: unknown unicast).
    for (const [k, n] of sizes.entries()) assert.equal(await r.send(cat(hdr(r.hdrLen), frame(PEER_MAC, DEV_MAC, n, k))), 0);
    assert.deepEqual(
      r.peer.frames.map((f) => f.data),
      sizes.map((n, k) => frame(PEER_MAC, DEV_MAC, n, k)),
    );
    for (const partialFrames of [true, false]) {
      const link = new RecordingLink(partialFrames);
      r.device.connect(link);
      for (const [k, n] of sizes.entries()) await r.send(cat(hdr(r.hdrLen), frame(PEER_MAC, DEV_MAC, n, k + 7)));
      assert.deepEqual(
        link.got.map((g) => g.partial),
        sizes.map((n) => partialFrames && n > NET_PARTIAL_FRAME),
      );
      for (const [k, n] of sizes.entries()) {
        const want = frame(PEER_MAC, DEV_MAC, n, k + 7);
        assert.deepEqual(link.got[k]!.whole, want, `${n} bytes`);
        assert.deepEqual(link.got[k]!.head.subarray(0, Math.min(n, NET_PARTIAL_FRAME)), want.subarray(0, NET_PARTIAL_FRAME));
      }
    }
    await r.lb.close();
  });
});

describe('virtio-net device: control queue', () => {
  it('device/net/64 device/net/65 device/net/67 device/net/78 device/net/80: rx modes and the MAC table filter what the driver receives', T, async () => {
    const r = await rig();
    assert.deepEqual(await r.control(NetCtrlClass.RX, NetCtrlRx.PROMISC, Uint8Array.of(0)), [1, NetCtrlAck.OK]);
    const other = Uint8Array.of(0x02, 9, 9, 9, 9, 9);
    const mcast = Uint8Array.of(0x01, 0x00, 0x5e, 0, 0, 1);
    r.peer.inject(frame(other, PEER_MAC, 60));
    r.peer.inject(frame(mcast, PEER_MAC, 60));
    assert.equal(r.device.stats.rxFiltered, 2, 'other unicast and an unlisted multicast are filtered');
    // MAC table: one unicast, one multicast.
    const t = new Uint8Array(8 + 12);
    t[0] = 1;
    t.set(other, 4);
    t[10] = 1;
    t.set(mcast, 14);
    assert.deepEqual(await r.control(NetCtrlClass.MAC, NetCtrlMac.TABLE_SET, t), [1, NetCtrlAck.OK]);
    const bufs = [r.post(200), r.post(200), r.post(200)];
    await tick();
    r.peer.inject(frame(other, PEER_MAC, 60, 1));
    r.peer.inject(frame(mcast, PEER_MAC, 60, 2));
    r.peer.inject(frame(DEV_MAC, PEER_MAC, 60, 3));
    assert.equal(r.device.stats.rxFrames, 3);
    await Promise.all(bufs);
    // A table whose sizes do not match the payload: ERR, nothing changes.
    assert.deepEqual(await r.control(NetCtrlClass.MAC, NetCtrlMac.TABLE_SET, t.subarray(0, 19)), [1, NetCtrlAck.ERR]);
    await r.lb.close();
  });

  it('device/net/68 device/net/70 device/net/73 device/net/75: CTRL_RX_EXTRA NOMULTI, NOUNI, NOBCAST; device/net/66: PROMISC overrides', T, async () => {
    const r = await rig();
    await r.control(NetCtrlClass.RX, NetCtrlRx.PROMISC, Uint8Array.of(0));
    for (const cmd of [NetCtrlRx.NOMULTI, NetCtrlRx.NOUNI, NetCtrlRx.NOBCAST]) assert.deepEqual(await r.control(NetCtrlClass.RX, cmd, Uint8Array.of(1)), [1, NetCtrlAck.OK]);
    await r.control(NetCtrlClass.RX, NetCtrlRx.ALLMULTI, Uint8Array.of(1));
    r.peer.inject(frame(DEV_MAC, PEER_MAC, 60));
    r.peer.inject(frame(BCAST, PEER_MAC, 60));
    r.peer.inject(frame(Uint8Array.of(1, 0, 0x5e, 0, 0, 9), PEER_MAC, 60));
    assert.equal(r.device.stats.rxFiltered, 3);
    await r.control(NetCtrlClass.RX, NetCtrlRx.PROMISC, Uint8Array.of(1));
    const b = r.post(200);
    await tick();
    r.peer.inject(frame(BCAST, PEER_MAC, 60));
    assert.equal((await b).used, 72);
    await r.lb.close();
  });

  it('device/net/79: MAC_ADDR_SET changes config mac before the command is used; reset restores it', T, async () => {
    const r = await rig();
    const m = Uint8Array.of(0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee);
    assert.deepEqual(await r.control(NetCtrlClass.MAC, NetCtrlMac.ADDR_SET, m), [1, NetCtrlAck.OK]);
    assert.deepEqual(r.lb.context.readConfig(NetConfig.MAC, 6), m);
    assert.deepEqual(await r.control(NetCtrlClass.MAC, NetCtrlMac.ADDR_SET, m.subarray(0, 5)), [1, NetCtrlAck.ERR]);
    await r.lb.close();
    assert.deepEqual(r.device.macAddress, DEV_MAC);
  });

  it('device/net/81 device/net/82: with CTRL_VLAN a tagged frame passes only when its VLAN id was added; an id of 4096 or more is VIRTIO_NET_ERR', T, async () => {
    const r = await rig();
    const tagged = frame(DEV_MAC, PEER_MAC, 64, 1, 0x8100);
    tagged[14] = 0x00;
    tagged[15] = 0x05; // VLAN 5
    r.peer.inject(tagged);
    assert.equal(r.device.stats.rxFiltered, 1);
    assert.deepEqual(await r.control(NetCtrlClass.VLAN, NetCtrlVlan.ADD, Uint8Array.of(5, 0)), [1, NetCtrlAck.OK]);
    assert.deepEqual(await r.control(NetCtrlClass.VLAN, NetCtrlVlan.ADD, Uint8Array.of(0, 0x10)), [1, NetCtrlAck.ERR]);
    const b = r.post(200);
    await tick();
    r.peer.inject(tagged);
    assert.equal((await b).used, 76);
    await r.control(NetCtrlClass.VLAN, NetCtrlVlan.DEL, Uint8Array.of(5, 0));
    r.peer.inject(tagged);
    assert.equal(r.device.stats.rxFiltered, 2);
    await r.lb.close();
  });

  it('device/net/84: ANNOUNCE_ACK clears VIRTIO_NET_S_ANNOUNCE', T, async () => {
    const r = await rig();
    assert.equal(r.device.requestAnnounce(), true);
    assert.equal(r.lb.context.readConfig(NetConfig.STATUS, 2)[0]! & NetStatus.ANNOUNCE, NetStatus.ANNOUNCE);
    assert.deepEqual(await r.control(NetCtrlClass.ANNOUNCE, NetCtrlAnnounce.ACK, new Uint8Array(0)), [1, NetCtrlAck.OK]);
    assert.equal(r.lb.context.readConfig(NetConfig.STATUS, 2)[0]! & NetStatus.ANNOUNCE, 0);
    await r.lb.close();
  });

  it('device/net/91 device/net/92: receiveq1 only after reset; VQ_PAIRS_SET within 1..max_virtqueue_pairs, else VIRTIO_NET_ERR', T, async () => {
    const r = await rig({ device: { queuePairs: 3 } });
    assert.equal(r.device.queuePairsInUse, 1);
    assert.deepEqual(await r.control(NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, Uint8Array.of(4, 0)), [1, NetCtrlAck.ERR]);
    assert.deepEqual(await r.control(NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, Uint8Array.of(0, 0)), [1, NetCtrlAck.ERR]);
    assert.deepEqual(await r.control(NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, Uint8Array.of(3, 0)), [1, NetCtrlAck.OK]);
    assert.equal(r.device.queuePairsInUse, 3);
    await r.lb.close();
    assert.equal(r.device.queuePairsInUse, 1);
  });

  it('malformed commands (unknown class, short or long payloads, oversized, no ack byte) get VIRTIO_NET_ERR or nothing; never a throw', T, async () => {
    const r = await rig();
    assert.deepEqual(await r.control(99, 0, new Uint8Array(0)), [1, NetCtrlAck.ERR]);
    assert.deepEqual(await r.control(NetCtrlClass.RX, NetCtrlRx.PROMISC, new Uint8Array(0)), [1, NetCtrlAck.ERR]);
    assert.deepEqual(await r.control(NetCtrlClass.RX, NetCtrlRx.PROMISC, new Uint8Array(2)), [1, NetCtrlAck.ERR]);
    assert.deepEqual(await r.control(NetCtrlClass.MAC, NetCtrlMac.TABLE_SET, new Uint8Array(NET_CTRL_MAX_COMMAND)), [1, NetCtrlAck.ERR]);
    assert.deepEqual(await r.control(NetCtrlClass.RX, NetCtrlRx.PROMISC, Uint8Array.of(0), 0).then(([u]) => u), 0);
    assert.equal(r.device.stats.ctrlErr, 5);
    assert.equal(r.lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    await r.lb.close();
  });

  it('MQ without CTRL_VQ (a vhost-user front-end keeps the control queue): accepted; the device has no control queue and serves pair 1', T, async () => {
    const r = await rig({ device: { queuePairs: 2 }, refuse: NetF.CTRL_VQ });
    assert.equal(r.lb.context.features & NetF.CTRL_VQ, 0n);
    assert.equal(r.lb.context.features & NetF.MQ, NetF.MQ);
    const b = r.post(200);
    await tick();
    r.peer.inject(frame(DEV_MAC, PEER_MAC, 60));
    assert.equal((await b).used, 72);
    await r.lb.close();
  });
});

describe('virtio-net device: configuration and link', () => {
  it('device/net/1 device/net/2: max_virtqueue_pairs and mtu bounds are enforced when the device is made', () => {
    assert.throws(() => new NetDevice({ queuePairs: 0 }));
    assert.throws(() => new NetDevice({ queuePairs: 0x8001 }));
    assert.throws(() => new NetDevice({ mtu: 67 }));
    assert.throws(() => new NetDevice({ mtu: 65536 }));
    assert.equal(new NetDevice({ queuePairs: 1 }).offeredFeatures & NetF.MQ, 0n, 'MQ only with more than one pair');
  });

  it('5.1.4 STATUS: link down is a configuration change the driver reads; frames neither go nor come while down', T, async () => {
    const r = await rig();
    let changes = 0;
    r.lb.context.onConfigChange(() => changes++);
    r.device.setLinkUp(false);
    await tick();
    assert.equal(changes, 1);
    assert.equal(r.lb.context.readConfig(NetConfig.STATUS, 2)[0]! & NetStatus.LINK_UP, 0);
    r.peer.inject(frame(DEV_MAC, PEER_MAC, 60));
    await r.send(cat(hdr(12), frame(PEER_MAC, DEV_MAC, 60)));
    assert.equal(r.peer.frames.length, 0);
    assert.equal(r.device.stats.txDropped, 1);
    r.device.setLinkUp(true);
    await tick();
    assert.equal(changes, 2);
    assert.equal(r.lb.context.readConfig(NetConfig.STATUS, 2)[0]! & NetStatus.LINK_UP, NetStatus.LINK_UP);
    await r.lb.close();
  });
});

describe('virtio-net device: VIRTIO_F_IN_ORDER', () => {
  for (const packed of [false, true]) {
    it(`2.7.9 / 2.8.8 (${packed ? 'packed' : 'split'}): offered with the inOrder option and negotiated; frames sent at once reach the link and come back in order, and a receive buffer after them`, T, async () => {
      assert.equal(new NetDevice().offeredFeatures & F.IN_ORDER, 0n, 'not offered by default');
      assert.equal(new NetDevice({ inOrder: true }).offeredFeatures & F.IN_ORDER, F.IN_ORDER);
      const r = await rig({ packed, device: { inOrder: true } });
      assert.equal(r.lb.context.features & F.IN_ORDER, F.IN_ORDER, 'negotiated');
      const frames = Array.from({ length: 6 }, (_, i) => frame(PEER_MAC, DEV_MAC, 60 + i, i));
      const done: number[] = [];
      await Promise.all(frames.map((f, i) => r.send(cat(hdr(r.hdrLen), f)).then(() => done.push(i))));
      assert.deepEqual(done, [0, 1, 2, 3, 4, 5], 'transmit buffers used in the order made available');
      assert.deepEqual(
        r.peer.frames.map((x) => x.data),
        frames,
      );
      const got = r.post(r.hdrLen + 100);
      r.peer.inject(frame(DEV_MAC, PEER_MAC, 100, 9));
      const { used, bytes } = await got;
      assert.equal(used, r.hdrLen + 100);
      assert.deepEqual(bytes.subarray(r.hdrLen), frame(DEV_MAC, PEER_MAC, 100, 9));
      await r.lb.close();
    });
  }
});
