/**
 * Software segmentation of GSO packets (5.1.6.2: what the device does with a large frame from
 * a driver that negotiated HOST_TSO4/TSO6/UFO/USO when the frame goes where large frames
 * cannot): TCP segmentation (TSO), UDP segmentation (USO, VIRTIO_NET_HDR_GSO_UDP_L4) and UDP
 * fragmentation (UFO, VIRTIO_NET_HDR_GSO_UDP: IPv4 fragments, or IPv6 with a Fragment header).
 *
 * Each segment is written into one reusable packet and handed to the sink before the next is
 * made, so segmenting allocates nothing per frame; the input packet is never modified (a
 * flooded frame goes to other ports too). Rules, as a host stack segments:
 *  - TCP: every segment carries the headers; IPv4 total length and a fresh header checksum with
 *    the id incremented per segment; IPv6 payload length; the sequence number advanced by the
 *    bytes before it; FIN and PSH only on the last segment; CWR only on the first (RFC 3168
 *    6.1.2: CWR is set on the first new segment after the window was reduced); the TCP checksum
 *    complete.
 *  - USO: every segment a UDP datagram of gso_size payload with its own length and checksum.
 *  - UFO: the UDP checksum computed over the whole datagram, then IP fragments of gso_size
 *    rounded down to a multiple of 8 bytes (IPv4: same id, MF on all but the last, DF cleared;
 *    IPv6: a Fragment header with an identification per datagram).
 * A packet that does not parse as its gso_type says, or with gso_size 0, is refused (false).
 */
import { NetGsoType } from '../../spec/net.js';
import { fixIpv4HeaderChecksum, fixTransportChecksum, get16, get32, pseudoHeaderSum, put16be, put32be, sumWords, checksumOf } from './checksum.js';
import { FrameLayout, IPPROTO_TCP, IPPROTO_UDP } from './frame-layout.js';
import { NetPacket } from './packet.js';

/** Where segments go (a NetPort is one). */
export interface NetPacketSink {
  /** Takes one frame; `packet` is reused after the call returns (copy what is kept). */
  deliver(packet: NetPacket): void;
}

/**
 * Segments one GSO packet may become at most: a tiny gso_size on a 64 KiB frame would otherwise
 * turn one untrusted transmit chain into tens of thousands of frames for other ports (a 64 KiB
 * TCP payload at Linux's smallest MSS, 88, is 745 segments).
 */
export const NET_GSO_MAX_SEGMENTS = 1024;

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;
const IPV6_FRAGMENT = 44;
const IPV6_FRAGMENT_HEADER = 8;
/** gso_type without the ECN bit. */
export function gsoBaseType(gsoType: number): number {
  return gsoType & ~NetGsoType.ECN;
}

/**
 * Whether a parsed frame is what `gsoType` claims (TCPV4: IPv4/TCP, TCPV6: IPv6/TCP, UDP and
 * UDP_L4: UDP over either; the ECN bit only with TCP; no tunnel bits).
 */
export function gsoMatchesLayout(gsoType: number, l: FrameLayout): boolean {
  const base = gsoBaseType(gsoType);
  const ecn = (gsoType & NetGsoType.ECN) !== 0;
  if (base === NetGsoType.TCPV4) return !l.ipv6 && l.proto === IPPROTO_TCP;
  if (base === NetGsoType.TCPV6) return l.ipv6 && l.proto === IPPROTO_TCP;
  if (base === NetGsoType.UDP || base === NetGsoType.UDP_L4) return !ecn && l.proto === IPPROTO_UDP;
  return false;
}

/** How many frames a GSO packet of `len` bytes becomes (UFO: fragments of the datagram). */
export function gsoSegments(len: number, l: FrameLayout, gsoType: number, gsoSize: number): number {
  if (gsoBaseType(gsoType) === NetGsoType.UDP) {
    const step = gsoSize & ~7;
    return step === 0 ? Number.POSITIVE_INFINITY : Math.ceil((len - l.l4) / step);
  }
  return Math.ceil((len - l.hdrs) / gsoSize);
}

/**
 * Software GSO for a port that cannot take a GSO packet (virtio-net 5.1.6.4, VIRTIO_NET_HDR_GSO_*):
 * splits TCP segmentation offload packets into MSS-sized TCP segments and UFO datagrams into IP
 * fragments, with every checksum completed. One output buffer, reused: no allocation per segment.
 */
export class GsoSegmenter {
  /** Packets segmented, segments made, packets refused. */
  packets = 0;
  /** Frames delivered by segmenting (segments or fragments). */
  segments = 0;
  /** GSO packets that could not be segmented (malformed, wrong gso_type, or above NET_GSO_MAX_SEGMENTS): dropped. */
  refused = 0;
  private out: NetPacket | null = null;
  private readonly layout = new FrameLayout();
  private fragmentId = 0;

  /**
   * Hands the segments of the GSO packet `p` to `sink`, one at a time, each an ordinary frame
   * (gso NONE) with complete checksums. False (nothing delivered) when `p` cannot be segmented.
   */
  segment(p: NetPacket, sink: NetPacketSink): boolean {
    const l = this.layout;
    if (p.gsoSize === 0 || !l.parse(p.data, p.length) || !gsoMatchesLayout(p.gsoType, l) || gsoSegments(p.length, l, p.gsoType, p.gsoSize) > NET_GSO_MAX_SEGMENTS) {
      this.refused++;
      return false;
    }
    let o = this.out;
    if (o === null || o.capacity < p.length + IPV6_FRAGMENT_HEADER) o = this.out = new NetPacket(Math.max(p.length, 65536 + 64) + IPV6_FRAGMENT_HEADER);
    this.packets++;
    if (gsoBaseType(p.gsoType) === NetGsoType.UDP) this.fragment(p, o, l, sink);
    else this.segmentTransport(p, o, l, sink);
    return true;
  }

  private segmentTransport(p: NetPacket, o: NetPacket, l: FrameLayout, sink: NetPacketSink): void {
    const d = p.data;
    const od = o.data;
    const { l3, l4, hdrs, ipv6 } = l;
    const udp = l.proto === IPPROTO_UDP;
    const mss = p.gsoSize;
    const payload = p.length - hdrs;
    const n = Math.max(1, Math.ceil(payload / mss));
    const id0 = ipv6 ? 0 : get16(d, l3 + 4);
    const seq0 = udp ? 0 : get32(d, l4 + 4);
    const flags0 = udp ? 0 : d[l4 + 13]!;
    for (let i = 0; i < n; i++) {
      const off = hdrs + i * mss;
      const chunk = Math.min(mss, p.length - off);
      const len = hdrs + Math.max(0, chunk);
      od.set(d.subarray(0, hdrs), 0);
      if (chunk > 0) od.set(d.subarray(off, off + chunk), hdrs);
      if (ipv6) put16be(od, l3 + 4, len - l3 - 40);
      else {
        put16be(od, l3 + 2, len - l3);
        put16be(od, l3 + 4, (id0 + i) & 0xffff);
        fixIpv4HeaderChecksum(od, l3, l.l3Len);
      }
      if (udp) put16be(od, l4 + 4, len - l4);
      else {
        put32be(od, l4 + 4, (seq0 + i * mss) >>> 0);
        let fl = flags0;
        if (i < n - 1) fl &= ~(TCP_FIN | TCP_PSH);
        if (i > 0) fl &= ~TCP_CWR;
        od[l4 + 13] = fl;
      }
      fixTransportChecksum(od, l3, ipv6, l4, len, udp);
      o.length = len;
      o.clearOffloads();
      o.csumValid = true;
      this.segments++;
      sink.deliver(o);
    }
  }

  private fragment(p: NetPacket, o: NetPacket, l: FrameLayout, sink: NetPacketSink): void {
    const d = p.data;
    const od = o.data;
    const { l3, l4, ipv6 } = l;
    const datagram = p.length - l4; // UDP header and data: the IP payload to fragment
    // The checksum of the whole datagram with its true length (the sender's length and partial
    // checksum fields are skipped, not trusted).
    const sum = sumWords(d, l4, l4 + 4, pseudoHeaderSum(d, l3, ipv6, IPPROTO_UDP, datagram)) + datagram + sumWords(d, l4 + 8, p.length, 0);
    let csum = checksumOf(sum);
    if (csum === 0) csum = 0xffff;
    const step = p.gsoSize & ~7;
    const n = step === 0 ? 1 : Math.max(1, Math.ceil(datagram / step));
    const id = ipv6 ? (this.fragmentId = (this.fragmentId + 1) >>> 0) : get16(d, l3 + 4);
    const extra = ipv6 && n > 1 ? IPV6_FRAGMENT_HEADER : 0;
    for (let i = 0; i < n; i++) {
      const off = i * step;
      const chunk = n === 1 ? datagram : Math.min(step, datagram - off);
      const last = i === n - 1;
      od.set(d.subarray(0, l4), 0);
      od.set(d.subarray(l4 + off, l4 + off + chunk), l4 + extra);
      const len = l4 + extra + chunk;
      if (i === 0) {
        put16be(od, l4 + extra + 4, datagram);
        put16be(od, l4 + extra + 6, csum);
      }
      if (ipv6) {
        if (extra !== 0) {
          od[l4] = od[l.ipv6NextAt]!; // the fragment header carries what followed
          od[l4 + 1] = 0;
          put16be(od, l4 + 2, off | (last ? 0 : 1));
          put32be(od, l4 + 4, id);
          od[l.ipv6NextAt] = IPV6_FRAGMENT;
        }
        put16be(od, l3 + 4, len - l3 - 40);
      } else {
        put16be(od, l3 + 2, len - l3);
        if (n > 1) put16be(od, l3 + 6, (off >>> 3) | (last ? 0 : 0x2000)); // MF; DF cleared
        fixIpv4HeaderChecksum(od, l3, l.l3Len);
      }
      o.length = len;
      o.clearOffloads();
      o.csumValid = n === 1; // a fragment's checksum cannot be verified alone
      this.segments++;
      sink.deliver(o);
    }
  }
}
