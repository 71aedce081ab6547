/**
 * VIRTIO_NET_F_HASH_TUNNEL (5.1.6.4.3 Inner Header Hash): every encapsulation type of
 * supported_tunnel_types found and its inner flow hashed when enabled, the outer header when
 * not; VIRTIO_NET_CTRL_HASH_TUNNEL_SET on the device (checks, reset) and through the NetDriver
 * (refusals, config read); end to end with HASH_REPORT and RSS steering.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetConfig, NetCtrlAck, NetCtrlClass, NetCtrlHashTunnel, NetF } from '../../spec/net.js';
import { createLoopback } from '../../testing/loopback.js';
import { fixIpv4HeaderChecksum, put16be, put32be } from './checksum.js';
import { ETH_P_IPV4, ETH_P_IPV6 } from './frame-layout.js';
import { buildIpFrame } from './ip-frames.js';
import { NetDevice } from './net-device.js';
import { NetDriver } from './net-driver.js';
import {
  ETH_P_TEB,
  IPPROTO_GRE,
  IPPROTO_IPIP,
  IPPROTO_IPV6,
  NET_SUPPORTED_TUNNEL_TYPES,
  NetHashTunnelType as TT,
  UDP_PORT_GENEVE,
  UDP_PORT_GRE,
  UDP_PORT_VXLAN,
  UDP_PORT_VXLAN_GPE,
} from './net-hash-tunnel.js';
import { NetHashReport, NetHashType, NetRss } from './net-rss.js';
import { NetPacket } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { NetSwitch } from './switch.js';

const T = { timeout: 20_000 };
const KEY = Uint8Array.from(Buffer.from('6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa', 'hex'));
const DEV = Uint8Array.of(2, 0, 0, 0, 0, 1);
const PEER = Uint8Array.of(2, 0, 0, 0, 0, 2);
const ALL_TYPES = NetHashType.IPV4 | NetHashType.TCPV4 | NetHashType.UDPV4 | NetHashType.IPV6 | NetHashType.TCPV6 | NetHashType.UDPV6;

/** An inner TCP frame (Ethernet, IPv4 or IPv6) of flow `sport`. */
function innerFrame(sport: number, ipv6 = false): Uint8Array {
  const f = buildIpFrame({ dst: DEV, src: PEER, ipv6, payload: 40 });
  put16be(f, 14 + (ipv6 ? 40 : 20), sport);
  return f;
}

interface Encap {
  name: string;
  type: number;
  /** Whether the encapsulation carries the inner Ethernet frame (else its IP packet). */
  ethernet: boolean;
  outerV6?: boolean;
  /** IP protocol of the outer header and the bytes between it and the inner packet. */
  proto: (innerV6: boolean) => number;
  header: (innerV6: boolean) => number[];
}

const u16 = (v: number): number[] => [v >>> 8, v & 0xff];
const udp = (dport: number): number[] => [...u16(12345), ...u16(dport), 0, 0, 0, 0]; // length/checksum unused by the parse
const ipType = (v6: boolean): number => (v6 ? ETH_P_IPV6 : ETH_P_IPV4);

const ENCAPS: Encap[] = [
  { name: 'GRE (RFC 2784), IPv4 inside', type: TT.GRE_2784, ethernet: false, proto: () => IPPROTO_GRE, header: (v6) => [0, 0, ...u16(ipType(v6))] },
  { name: 'GRE with checksum (RFC 2784)', type: TT.GRE_2784, ethernet: false, proto: () => IPPROTO_GRE, header: (v6) => [0x80, 0, ...u16(ipType(v6)), 0, 0, 0, 0] },
  { name: 'GRE with key and sequence (RFC 2890)', type: TT.GRE_2890, ethernet: false, proto: () => IPPROTO_GRE, header: (v6) => [0x30, 0, ...u16(ipType(v6)), 0, 0, 0, 7, 0, 0, 0, 9] },
  { name: 'GRE over IPv6 (RFC 7676)', type: TT.GRE_7676, ethernet: false, outerV6: true, proto: () => IPPROTO_GRE, header: (v6) => [0, 0, ...u16(ipType(v6))] },
  { name: 'GRE-in-UDP (RFC 8086)', type: TT.GRE_UDP, ethernet: false, proto: () => 17, header: (v6) => [...udp(UDP_PORT_GRE), 0, 0, ...u16(ipType(v6))] },
  { name: 'VXLAN', type: TT.VXLAN, ethernet: true, proto: () => 17, header: () => [...udp(UDP_PORT_VXLAN), 0x08, 0, 0, 0, 0, 0, 42, 0] },
  { name: 'VXLAN-GPE, IP inside', type: TT.VXLAN_GPE, ethernet: false, proto: () => 17, header: (v6) => [...udp(UDP_PORT_VXLAN_GPE), 0x0c, 0, 0, v6 ? 2 : 1, 0, 0, 42, 0] },
  { name: 'VXLAN-GPE, Ethernet inside', type: TT.VXLAN_GPE, ethernet: true, proto: () => 17, header: () => [...udp(UDP_PORT_VXLAN_GPE), 0x0c, 0, 0, 3, 0, 0, 42, 0] },
  { name: 'GENEVE with an option, Ethernet inside', type: TT.GENEVE, ethernet: true, proto: () => 17, header: () => [...udp(UDP_PORT_GENEVE), 0x01, 0, ...u16(ETH_P_TEB), 0, 0, 42, 0, 1, 2, 3, 4] },
  { name: 'GENEVE, IP inside', type: TT.GENEVE, ethernet: false, proto: () => 17, header: (v6) => [...udp(UDP_PORT_GENEVE), 0, 0, ...u16(ipType(v6)), 0, 0, 42, 0] },
  { name: 'IPIP', type: TT.IPIP, ethernet: false, proto: (v6) => (v6 ? IPPROTO_IPV6 : IPPROTO_IPIP), header: () => [] },
  { name: 'NVGRE (RFC 7637)', type: TT.NVGRE, ethernet: true, proto: () => IPPROTO_GRE, header: () => [0x20, 0, ...u16(ETH_P_TEB), 0, 0, 42, 0] },
];

/** The outer frame: Ethernet, IPv4 (or IPv6) 192.0.2.1 -> 192.0.2.2 with `proto`, the encapsulation header, the inner packet. */
function encapsulate(e: Encap, inner: Uint8Array, innerV6: boolean): Uint8Array {
  const body = Uint8Array.from([...e.header(innerV6), ...(e.ethernet ? inner : inner.subarray(14))]);
  const l3Len = e.outerV6 ? 40 : 20;
  const f = new Uint8Array(14 + l3Len + body.length);
  f.set(DEV, 0);
  f.set(PEER, 6);
  put16be(f, 12, e.outerV6 ? ETH_P_IPV6 : ETH_P_IPV4);
  if (e.outerV6) {
    f[14] = 0x60;
    put16be(f, 18, body.length);
    f[20] = e.proto(innerV6);
    f[21] = 64;
    f[22] = 0x20;
    f[37] = 1;
    f[38] = 0x20;
    f[53] = 2;
  } else {
    f[14] = 0x45;
    put16be(f, 16, 20 + body.length);
    f[22] = 64;
    f[23] = e.proto(innerV6);
    put32be(f, 26, 0xc0000201);
    put32be(f, 30, 0xc0000202);
    fixIpv4HeaderChecksum(f, 14, 20);
  }
  f.set(body, 14 + l3Len);
  return f;
}

function rss(tunnelTypes: number): NetRss {
  const r = new NetRss();
  r.key.set(KEY);
  r.keyLength = 40;
  r.hashTypes = ALL_TYPES;
  r.tunnelTypes = tunnelTypes;
  return r;
}

/** [hash value, report] of frame `f` under `r`. */
function hashOf(r: NetRss, f: Uint8Array): [number, number] {
  assert.ok(r.hash(f, f.length));
  return [r.hashValue, r.hashReport];
}

describe('virtio-net HASH_TUNNEL: inner header hash', () => {
  it('device/net/61: each encapsulation type, enabled, hashes the inner flow (IPv4 and IPv6 inside); not enabled, or another type enabled, the outer header', () => {
    for (const e of ENCAPS) {
      for (const innerV6 of [false, true]) {
        const inner = innerFrame(1111, innerV6);
        const f = encapsulate(e, inner, innerV6);
        const want = hashOf(rss(0), inner);
        assert.equal(want[1], innerV6 ? NetHashReport.TCPV6 : NetHashReport.TCPV4);
        assert.deepEqual(hashOf(rss(e.type), f), want, `${e.name} (${innerV6 ? 'IPv6' : 'IPv4'} inside): the inner TCP flow`);
        const outer = hashOf(rss(0), f);
        assert.notDeepEqual(outer, want);
        assert.deepEqual(hashOf(rss(NET_SUPPORTED_TUNNEL_TYPES & ~e.type & ~(e.type === TT.NVGRE ? TT.GRE_2890 : 0)), f), outer, `${e.name}: not enabled, the outer header`);
      }
    }
  });

  it('device/net/61: the reason inner hashing exists: flows with identical outer headers get different hashes; a malformed or unknown encapsulation falls back to the outer header', () => {
    const vx = ENCAPS.find((e) => e.type === TT.VXLAN)!;
    const r = rss(TT.VXLAN);
    const a = encapsulate(vx, innerFrame(1000), false);
    const b = encapsulate(vx, innerFrame(2000), false);
    assert.notEqual(hashOf(r, a)[0], hashOf(r, b)[0]);
    assert.equal(hashOf(rss(0), a)[0], hashOf(rss(0), b)[0], 'the outer headers are the same');
    const outerOf = (f: Uint8Array): [number, number] => hashOf(rss(0), f);
    const noI = a.slice();
    noI[14 + 20 + 8] = 0; // VXLAN without the I flag
    assert.deepEqual(hashOf(r, noI), outerOf(noI));
    const cut = a.subarray(0, 14 + 20 + 8 + 8 + 10); // inner Ethernet header cut short
    assert.deepEqual(hashOf(rss(TT.VXLAN), cut), outerOf(cut));
    const gre = ENCAPS[0]!;
    const routed = encapsulate(gre, innerFrame(1), false);
    routed[14 + 20] = 0x40; // the routing bit (RFC 1701): not an RFC 2784 header
    assert.deepEqual(hashOf(rss(NET_SUPPORTED_TUNNEL_TYPES), routed), outerOf(routed));
    const ver1 = encapsulate(gre, innerFrame(1), false);
    ver1[14 + 20 + 1] = 1; // version 1 (PPTP)
    assert.deepEqual(hashOf(rss(NET_SUPPORTED_TUNNEL_TYPES), ver1), outerOf(ver1));
    // GENEVE options longer than the frame, and a VXLAN on another port: the outer header.
    const gen = encapsulate(ENCAPS.find((e) => e.type === TT.GENEVE)!, innerFrame(1), false);
    gen[14 + 20 + 8] = 0x3f;
    assert.deepEqual(hashOf(rss(NET_SUPPORTED_TUNNEL_TYPES), gen.subarray(0, 14 + 20 + 8 + 8 + 100)), outerOf(gen.subarray(0, 14 + 20 + 8 + 8 + 100)));
    const other = a.slice();
    put16be(other, 14 + 20 + 2, 4788);
    assert.deepEqual(hashOf(rss(NET_SUPPORTED_TUNNEL_TYPES), other), outerOf(other));
    // A frame that is not IP at all gets no hash whatever is enabled.
    assert.equal(rss(NET_SUPPORTED_TUNNEL_TYPES).hash(new Uint8Array(60), 60), false);
  });

  it('device/net/62 device/net/63: HASH_TUNNEL_SET takes a le32 of supported types (0 turns inner hashing off); other bits, a short or long payload, or no HASH_TUNNEL: VIRTIO_NET_ERR, nothing changed; reset clears it', T, async () => {
    const device = new NetDevice({ mac: DEV });
    const lb = await createLoopback(device);
    const net = new NetDriver(lb.context);
    assert.equal(net.supportedTunnelTypes, NET_SUPPORTED_TUNNEL_TYPES);
    const le32 = (v: number): Uint8Array => Uint8Array.from(Buffer.from(Uint32Array.of(v).buffer));
    const cmd = (p: Uint8Array): Promise<number> => net.command(NetCtrlClass.HASH_TUNNEL, NetCtrlHashTunnel.SET, p);
    assert.equal(await cmd(le32(TT.VXLAN | TT.GENEVE)), NetCtrlAck.OK);
    assert.equal(device.rss.tunnelTypes, TT.VXLAN | TT.GENEVE);
    assert.equal(await cmd(le32(1 << 9)), NetCtrlAck.ERR, 'device/net/62: not in supported_tunnel_types');
    assert.equal(await cmd(le32(0x8000_0000 | TT.IPIP)), NetCtrlAck.ERR);
    assert.equal(await cmd(le32(TT.IPIP).subarray(0, 3)), NetCtrlAck.ERR, 'short');
    assert.equal(await cmd(Uint8Array.of(...le32(TT.IPIP), 0)), NetCtrlAck.ERR, 'long');
    assert.equal(await net.command(NetCtrlClass.HASH_TUNNEL, 1, le32(TT.IPIP)), NetCtrlAck.ERR, 'no such command');
    assert.equal(device.rss.tunnelTypes, TT.VXLAN | TT.GENEVE, 'unchanged by the refused commands');
    await net.setHashTunnel(TT.NVGRE);
    assert.equal(device.rss.tunnelTypes, TT.NVGRE);
    await net.setHashTunnel(0);
    assert.equal(device.rss.tunnelTypes, 0, 'device/net/63: 0 disables inner hashing');
    await net.setHashTunnel(TT.IPIP);
    net.detach();
    await lb.close();
    assert.equal(device.rss.tunnelTypes, 0, 'device/net/63: reset disables it');
    // Without HASH_TUNNEL negotiated the command is refused by the device.
    const lb2 = await createLoopback(device, { refuseFeatures: NetF.HASH_TUNNEL });
    const net2 = new NetDriver(lb2.context);
    assert.equal(await net2.command(NetCtrlClass.HASH_TUNNEL, NetCtrlHashTunnel.SET, le32(TT.IPIP)), NetCtrlAck.ERR);
    assert.equal(device.rss.tunnelTypes, 0);
    net2.detach();
    await lb2.close();
  });

  it('driver/net/61 driver/net/62 driver/net/63: the driver sends HASH_TUNNEL_SET only with HASH_TUNNEL and only supported types, and ignores undocumented supported_tunnel_types bits', T, async () => {
    /** A device announcing bits the spec does not define (and no GENEVE). */
    class FutureDevice extends NetDevice {
      override readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
        super.readConfig(offset, dst, features, littleEndian);
        for (let i = 0; i < dst.length; i++) {
          const at = offset + i - NetConfig.SUPPORTED_TUNNEL_TYPES;
          if (at === 1) dst[i] = 0xfe; // bits 9..15 set, bit 8 (NVGRE) cleared
          if (at === 0) dst[i] = dst[i]! & ~TT.GENEVE;
          if (at === 3) dst[i] = 0x80;
        }
      }
    }
    const device = new FutureDevice({ mac: DEV });
    const lb = await createLoopback(device);
    const net = new NetDriver(lb.context);
    assert.equal(net.supportedTunnelTypes, NET_SUPPORTED_TUNNEL_TYPES & ~TT.GENEVE & ~TT.NVGRE, 'driver/net/63: only the documented bits');
    let sent = 0;
    const command = net.command.bind(net);
    net.command = (...a) => {
      sent++;
      return command(...a);
    };
    await assert.rejects(net.setHashTunnel(TT.GENEVE), /driver\/net\/62/);
    await assert.rejects(net.setHashTunnel(1 << 12), /driver\/net\/62/);
    assert.equal(sent, 0, 'refused unsent');
    await net.setHashTunnel(TT.VXLAN);
    net.detach();
    await lb.close();
    const lb2 = await createLoopback(new NetDevice({ mac: DEV }), { refuseFeatures: NetF.HASH_TUNNEL });
    const net2 = new NetDriver(lb2.context);
    assert.equal(net2.supportedTunnelTypes, 0);
    await assert.rejects(net2.setHashTunnel(0), /driver\/net\/61/);
    net2.detach();
    await lb2.close();
  });

  it('device/net/61: end to end, with HASH_REPORT the reported hash of VXLAN frames is the inner flow\'s once VXLAN is enabled, and RSS steers inner flows with one outer header to different queues', T, async () => {
    const sw = new NetSwitch();
    const device = new NetDevice({ mac: DEV, queuePairs: 2, queueSize: 64 });
    device.attachTo(sw);
    const peer = new (class implements NetPort {
      readonly name = 'peer';
      link!: NetLink;
      readonly out = new NetPacket(2000);
      deliver(): void {}
      send(f: Uint8Array): void {
        this.out.set(f);
        this.link.send(this.out);
      }
    })();
    peer.link = sw.attach(peer);
    const lb = await createLoopback(device, { queueSize: 64 });
    const net = new NetDriver(lb.context, { rxBuffers: 16 });
    assert.equal(net.hdrLen, 20);
    const vx = ENCAPS.find((e) => e.type === TT.VXLAN)!;
    const flows = [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000].map((p) => ({ inner: innerFrame(p), outer: encapsulate(vx, innerFrame(p), false) }));
    await net.setHashConfig(ALL_TYPES, KEY);
    const reported = async (f: Uint8Array): Promise<[number, number]> => {
      const [g] = await Promise.all([net.receive(), Promise.resolve(peer.send(f))]);
      return [g.hashValue, g.hashReport];
    };
    const outerHash = hashOf(rss(0), flows[0]!.outer);
    assert.deepEqual(await reported(flows[0]!.outer), outerHash, 'before HASH_TUNNEL_SET: the outer UDP flow');
    await net.setHashTunnel(TT.VXLAN);
    for (const fl of flows) assert.deepEqual(await reported(fl.outer), hashOf(rss(0), fl.inner), 'the inner TCP flow');
    // RSS: table [0, 1] by the low bit of the inner hash.
    await net.setQueuePairs(2);
    await net.setRss({ hashTypes: ALL_TYPES, table: [0, 1], unclassified: 0, key: KEY });
    const queues = new Set<number>();
    for (const fl of flows) {
      const [g] = await Promise.all([net.receive(), Promise.resolve(peer.send(fl.outer))]);
      const want = hashOf(rss(0), fl.inner)[0] & 1;
      assert.equal(g.queue, 2 * want, 'receiveq of table[inner hash & 1]');
      queues.add(g.queue);
    }
    assert.equal(queues.size, 2, 'both receive queues used by one outer flow');
    net.detach();
    await lb.close();
  });
});
