/**
 * Receive segment coalescing for VIRTIO_NET_F_RSC_EXT (5.1.6.4 "Processing of Incoming
 * Packets", item 2 and device/net/47): consecutive in-order TCP segments of one flow headed to
 * this device's driver become one GSO frame (TCPV4 or TCPV6, gso_size the first segment's
 * payload), reported with VIRTIO_NET_HDR_F_RSC_INFO, csum_start = segments coalesced and
 * csum_offset = duplicated ACKs absorbed. The rules, in the spirit of a host's GRO:
 *  - only plain TCP over IPv4 without IP options or over IPv6 without extension headers, flags
 *    ACK or ACK|PSH, a checksum the device can vouch for (a partial checksum from a sender's
 *    offload, one already verified, or one the coalescer verifies itself): the coalesced frame
 *    carries NEEDS_CSUM, which tells the driver every checksum was validated (device/net/43);
 *  - flows never mix: a held frame is keyed by the Ethernet header (addresses, VLAN tag), the
 *    IP addresses and the ports; a segment of the same flow that cannot join (out of order,
 *    another TOS/TTL/flow label, other TCP options, SYN/FIN/RST/URG/CWR/ECE, larger than the
 *    first, an ACK going backwards, the 64 KiB IP packet full) sends the held frame first;
 *  - a segment shorter than gso_size or with PSH joins and ends the frame;
 *  - a pure ACK with the expected sequence number, the same ack number and window is a
 *    duplicated ACK: absorbed and counted (le16, so at most 65535 per frame); any other pure
 *    ACK sends the held frame first and passes alone;
 *  - the hold is bounded: held frames are sent when the current task ends (a queued microtask,
 *    i.e. after the transmit batch or the TAP read batch that brought the segments), when the
 *    slots are full (the oldest goes), and dropped at device reset.
 * A frame of one segment and no duplicated ACK goes as it came (a plain frame). Memory: RSC_SLOTS
 * packets of a 64 KiB IP packet each, made when RSC is first used; nothing per segment.
 */
import { ETH_HEADER, ETH_VLAN_TAG, NetGsoType } from '../../spec/net.js';
import { fixIpv4HeaderChecksum, foldSum, get16, get32, pseudoHeaderSum, put16be, sumWords } from './checksum.js';
import { FrameLayout, IPPROTO_TCP } from './frame-layout.js';
import { NetPacket } from './packet.js';

/** Flows held at once; a further flow sends the oldest held frame. */
export const RSC_SLOTS = 4;
/** The largest coalesced frame: a 64 KiB IP packet behind Ethernet and a VLAN tag. */
const RSC_MAX_IP = 65535;
const RSC_FRAME = RSC_MAX_IP + ETH_HEADER + ETH_VLAN_TAG;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
const COUNT_MAX = 0xffff;

/** Where coalesced frames (and lone held segments) go: the receive path. */
export interface RscSink {
  /**
   * `p` for the driver: a plain frame (gsoType 0: segments 1, dupAcks 0) or a coalesced GSO frame
   * whose RSC_INFO counts are `segments` and `dupAcks`.
   */
  deliverCoalesced(p: NetPacket, segments: number, dupAcks: number): void;
}

/** What the coalescer counted. */
export interface RscStats {
  /** Frames sent with RSC_INFO (two or more segments, or duplicated ACKs absorbed). */
  frames: number;
  /** Segments that went into those frames. */
  segments: number;
  /** Duplicated ACKs absorbed. */
  dupAcks: number;
  /** Segments whose own checksum was wrong: passed alone, never coalesced. */
  badChecksums: number;
}

class HeldFlow {
  readonly packet = new NetPacket(RSC_FRAME);
  held = false;
  /** Order of holding (the oldest is sent when the slots are full). */
  since = 0;
  l3 = 0;
  l4 = 0;
  hdrs = 0;
  ipv6 = false;
  nextSeq = 0;
  mss = 0;
  segments = 0;
  dupAcks = 0;
}

export class RscCoalescer {
  readonly stats: RscStats = { frames: 0, segments: 0, dupAcks: 0, badChecksums: 0 };
  private readonly sink: RscSink;
  private readonly layout = new FrameLayout();
  private flows: HeldFlow[] = [];
  private holds = 0;
  private flushQueued = false;
  private readonly flushBound = (): void => {
    this.flushQueued = false;
    this.flushAll();
  };

  constructor(sink: RscSink) {
    this.sink = sink;
  }

  /**
   * Offers a plain frame (gsoType 0, filter passed). True when the coalescer took it (held or
   * absorbed: it will reach the sink); false when the caller delivers it itself, after any
   * held frame of its flow was sent (so a flow's order is kept). `v4` / `v6`: the driver takes
   * TSO frames of that IP version now.
   */
  offer(p: NetPacket, v4: boolean, v6: boolean): boolean {
    const l = this.layout;
    const d = p.data;
    if (!l.parse(d, p.length) || l.proto !== IPPROTO_TCP) return false;
    const held = this.find(p, l);
    const ipEnd = this.ipEnd(d, l, p.length);
    const flags = d[l.l4 + 13]!;
    const eligible =
      ipEnd > 0 &&
      (l.ipv6 ? v6 && !l.ipv6Ext : v4 && l.l3Len === 20) &&
      (flags & ~TCP_PSH) === TCP_ACK &&
      this.checksumTrusted(p, l, ipEnd);
    if (!eligible) {
      if (held !== null) this.send(held);
      return false;
    }
    const payload = ipEnd - l.hdrs;
    const seq = get32(d, l.l4 + 4);
    if (held !== null) {
      if (payload === 0) {
        if (seq === held.nextSeq && held.dupAcks < COUNT_MAX && this.sameAckAndWindow(held, d, l) && this.sameHeaders(held, d, l)) {
          held.dupAcks++; // 5.1.6.4 item 2: a duplicated ACK, counted in csum_offset
          return true;
        }
        this.send(held);
        return false;
      }
      if (this.joins(held, d, l, seq, payload, ipEnd)) {
        this.append(held, d, l, payload);
        if (payload < held.mss || (flags & TCP_PSH) !== 0) this.send(held);
        return true;
      }
      this.send(held);
    }
    if (payload === 0 || (flags & TCP_PSH) !== 0) return false; // nothing to coalesce behind it
    this.hold(p, l, seq, payload, ipEnd);
    return true;
  }

  /** Sends the held frame of `p`'s flow, if any (before a GSO or other frame of that flow passes). */
  flushFlowOf(p: NetPacket): void {
    const l = this.layout;
    if (!l.parse(p.data, p.length) || l.proto !== IPPROTO_TCP) return;
    const held = this.find(p, l);
    if (held !== null) this.send(held);
  }

  /** Sends every held frame (end of a batch). */
  flushAll(): void {
    for (const f of this.flows) if (f.held) this.send(f);
  }

  /** Device reset: held frames are dropped (the driver that would take them is gone). */
  reset(): void {
    for (const f of this.flows) f.held = false;
  }

  /** The end of the IP packet within the frame (Ethernet padding excluded), 0 when the IP length is impossible. */
  private ipEnd(d: Uint8Array, l: FrameLayout, len: number): number {
    const end = l.ipv6 ? l.l3 + 40 + get16(d, l.l3 + 4) : l.l3 + get16(d, l.l3 + 2);
    return end >= l.hdrs && end <= len ? end : 0;
  }

  /** The flow's held frame: same Ethernet header, IP version, addresses and ports. */
  private find(p: NetPacket, l: FrameLayout): HeldFlow | null {
    const d = p.data;
    for (const f of this.flows) {
      if (!f.held || f.ipv6 !== l.ipv6 || f.l3 !== l.l3 || f.l4 !== l.l4) continue;
      const h = f.packet.data;
      if (!rangeEqual(h, d, 0, l.l3)) continue;
      const a0 = l.l3 + (l.ipv6 ? 8 : 12);
      if (!rangeEqual(h, d, a0, l.l3 + (l.ipv6 ? 40 : 20)) || !rangeEqual(h, d, l.l4, l.l4 + 4)) continue;
      return f;
    }
    return null;
  }

  /**
   * The checksum can be vouched for: a partial TCP checksum from the sender's offload (the
   * sender's stack wrote the bytes), a checksum already verified, or one verified here (the IPv4
   * header checksum too). A wrong one is counted and the segment passes alone, unclaimed.
   */
  private checksumTrusted(p: NetPacket, l: FrameLayout, ipEnd: number): boolean {
    if (p.needsCsum) return p.csumStart === l.l4 && p.csumOffset === 16 && ipEnd === p.length;
    if (p.csumValid) return true;
    const d = p.data;
    const ok =
      (l.ipv6 || foldSum(sumWords(d, l.l3, l.l4, 0)) === 0xffff) &&
      foldSum(sumWords(d, l.l4, ipEnd, pseudoHeaderSum(d, l.l3, l.ipv6, IPPROTO_TCP, ipEnd - l.l4))) === 0xffff;
    if (!ok) this.stats.badChecksums++;
    return ok;
  }

  /** IPv4 TOS, flags and TTL, or the IPv6 version/class/flow label and hop limit, and the TCP options are those held. */
  private sameHeaders(f: HeldFlow, d: Uint8Array, l: FrameLayout): boolean {
    const h = f.packet.data;
    const l3 = l.l3;
    if (l.ipv6) {
      if (!rangeEqual(h, d, l3, l3 + 4) || h[l3 + 7] !== d[l3 + 7]) return false;
    } else if (h[l3 + 1] !== d[l3 + 1] || h[l3 + 6] !== d[l3 + 6] || h[l3 + 8] !== d[l3 + 8]) {
      return false;
    }
    return l.hdrs === f.hdrs && rangeEqual(h, d, l.l4 + 20, l.hdrs);
  }

  private sameAckAndWindow(f: HeldFlow, d: Uint8Array, l: FrameLayout): boolean {
    const h = f.packet.data;
    return rangeEqual(h, d, l.l4 + 8, l.l4 + 12) && rangeEqual(h, d, l.l4 + 14, l.l4 + 16);
  }

  /** A data segment joins: next in sequence, same headers, ACK not backwards, no larger than the first, room left. */
  private joins(f: HeldFlow, d: Uint8Array, l: FrameLayout, seq: number, payload: number, ipEnd: number): boolean {
    if (seq !== f.nextSeq || payload > f.mss || f.segments >= COUNT_MAX) return false;
    if (f.packet.length - f.l3 + payload > RSC_MAX_IP) return false;
    if (ipEnd - l.hdrs !== payload || !this.sameHeaders(f, d, l)) return false;
    const ackDelta = (get32(d, l.l4 + 8) - get32(f.packet.data, f.l4 + 8)) >>> 0;
    return ackDelta < 0x8000_0000;
  }

  private hold(p: NetPacket, l: FrameLayout, seq: number, payload: number, ipEnd: number): void {
    let f: HeldFlow | undefined;
    for (const x of this.flows) if (!x.held) f = x;
    if (f === undefined && this.flows.length < RSC_SLOTS) this.flows.push((f = new HeldFlow()));
    if (f === undefined) {
      f = this.flows[0]!;
      for (const x of this.flows) if (x.since < f.since) f = x;
      this.send(f);
    }
    const q = f.packet;
    q.data.set(p.data.subarray(0, ipEnd), 0);
    q.length = ipEnd;
    q.copyOffloads(p);
    // Eligible means its checksum was vouched for: a lone segment sent as it came says so (DATA_VALID).
    if (!q.needsCsum) q.csumValid = true;
    f.held = true;
    f.since = ++this.holds;
    f.l3 = l.l3;
    f.l4 = l.l4;
    f.hdrs = l.hdrs;
    f.ipv6 = l.ipv6;
    f.nextSeq = (seq + payload) >>> 0;
    f.mss = payload;
    f.segments = 1;
    f.dupAcks = 0;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushBound);
    }
  }

  /** Appends a segment's payload; the newest ack number, window and PSH win. */
  private append(f: HeldFlow, d: Uint8Array, l: FrameLayout, payload: number): void {
    const q = f.packet;
    const h = q.data;
    h.set(d.subarray(l.hdrs, l.hdrs + payload), q.length);
    q.length += payload;
    h.set(d.subarray(l.l4 + 8, l.l4 + 12), f.l4 + 8);
    h.set(d.subarray(l.l4 + 14, l.l4 + 16), f.l4 + 14);
    h[f.l4 + 13] = h[f.l4 + 13]! | (d[l.l4 + 13]! & TCP_PSH);
    f.nextSeq = (f.nextSeq + payload) >>> 0;
    f.segments++;
  }

  /** Sends a held frame: as it came when it is one segment, else as a TCP GSO frame with a partial checksum. */
  private send(f: HeldFlow): void {
    f.held = false;
    const q = f.packet;
    if (f.segments === 1 && f.dupAcks === 0) {
      this.sink.deliverCoalesced(q, 1, 0);
      return;
    }
    const h = q.data;
    const ipLen = q.length - f.l3;
    if (f.ipv6) put16be(h, f.l3 + 4, ipLen - 40);
    else {
      put16be(h, f.l3 + 2, ipLen);
      fixIpv4HeaderChecksum(h, f.l3, 20);
    }
    // A partial checksum (the pseudo-header sum in place, 5.1.6.2 item 1) that the driver may
    // complete; NEEDS_CSUM with RSC_INFO says it was validated.
    const tcpLen = q.length - f.l4;
    put16be(h, f.l4 + 16, foldSum(pseudoHeaderSum(h, f.l3, f.ipv6, IPPROTO_TCP, tcpLen)));
    q.clearOffloads();
    q.needsCsum = true;
    q.csumStart = f.l4;
    q.csumOffset = 16;
    q.gsoType = f.ipv6 ? NetGsoType.TCPV6 : NetGsoType.TCPV4;
    q.gsoSize = f.mss;
    q.hdrLen = f.hdrs;
    const st = this.stats;
    st.frames++;
    st.segments += f.segments;
    st.dupAcks += f.dupAcks;
    this.sink.deliverCoalesced(q, f.segments, f.dupAcks);
  }
}

function rangeEqual(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}
