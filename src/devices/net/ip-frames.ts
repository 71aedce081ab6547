/**
 * Builds and checks IPv4/IPv6 TCP/UDP Ethernet frames: what the offload tests, the matrix case
 * and the benchmark send, and how they verify what came out (every checksum right). Not on any
 * data path: these allocate freely.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { ETH_P_8021Q } from '../../spec/net.js';
import { checksumOf, fixIpv4HeaderChecksum, fixTransportChecksum, get16, pseudoHeaderSum, put16be, put32be, sumWords } from './checksum.js';
import { ETH_P_IPV4, ETH_P_IPV6, FrameLayout, IPPROTO_TCP, IPPROTO_UDP } from './frame-layout.js';

/** What buildIpFrame builds: one Ethernet frame carrying IPv4 or IPv6, TCP or UDP, checksums complete. */
export interface IpFrameSpec {
  /** Destination MAC address (6 bytes). */
  readonly dst: Uint8Array;
  /** Source MAC address (6 bytes). */
  readonly src: Uint8Array;
  /** IPv6 instead of IPv4. Default false. */
  readonly ipv6?: boolean;
  /** UDP instead of TCP. Default false. */
  readonly udp?: boolean;
  /** Transport payload bytes (a counting pattern from `seed`). */
  readonly payload: number;
  /** First byte of the payload's counting pattern. Default 0. */
  readonly seed?: number;
  /** TCP sequence number and flags (default 1000 and ACK|PSH). */
  readonly seq?: number;
  /** TCP flags byte (TcpFlag bits). Default ACK|PSH. */
  readonly tcpFlags?: number;
  /** IPv4 id (default 0x1234) and the IPv4 ECN field (2 bits). */
  readonly ipId?: number;
  /** ECN codepoint (0..3) written into the IP header. Default 0. */
  readonly ecn?: number;
  /** An 802.1Q tag with this VLAN id. */
  readonly vlan?: number;
}

/** TCP header flag bits (byte 13 of the TCP header, RFC 9293; ECE and CWR from RFC 3168). */
export const TcpFlag = {
  /** No more data from the sender. */
  FIN: 0x01,
  /** Synchronize sequence numbers (connection open). */
  SYN: 0x02,
  /** Reset the connection. */
  RST: 0x04,
  /** Push: deliver buffered data now. */
  PSH: 0x08,
  /** The acknowledgment number is valid. */
  ACK: 0x10,
  /** The urgent pointer is valid. */
  URG: 0x20,
  /** ECN echo. */
  ECE: 0x40,
  /** Congestion window reduced. */
  CWR: 0x80,
} as const;

/** A frame with complete, correct checksums. */
export function buildIpFrame(s: IpFrameSpec): Uint8Array {
  const l3 = 14 + (s.vlan !== undefined ? 4 : 0);
  const l3Len = s.ipv6 ? 40 : 20;
  const l4 = l3 + l3Len;
  const l4Len = s.udp ? 8 : 20;
  const len = l4 + l4Len + s.payload;
  const f = new Uint8Array(len);
  f.set(s.dst.subarray(0, 6), 0);
  f.set(s.src.subarray(0, 6), 6);
  if (s.vlan !== undefined) {
    put16be(f, 12, ETH_P_8021Q);
    put16be(f, 14, s.vlan);
  }
  put16be(f, l3 - 2, s.ipv6 ? ETH_P_IPV6 : ETH_P_IPV4);
  const proto = s.udp ? IPPROTO_UDP : IPPROTO_TCP;
  if (s.ipv6) {
    f[l3] = 0x60 | ((s.ecn ?? 0) >>> 2);
    f[l3 + 1] = ((s.ecn ?? 0) & 3) << 4;
    put16be(f, l3 + 4, len - l4);
    f[l3 + 6] = proto;
    f[l3 + 7] = 64;
    for (let i = 0; i < 16; i++) {
      f[l3 + 8 + i] = i === 0 ? 0xfd : i === 15 ? 1 : 0;
      f[l3 + 24 + i] = i === 0 ? 0xfd : i === 15 ? 2 : 0;
    }
  } else {
    f[l3] = 0x45;
    f[l3 + 1] = s.ecn ?? 0;
    put16be(f, l3 + 2, len - l3);
    put16be(f, l3 + 4, s.ipId ?? 0x1234);
    put16be(f, l3 + 6, 0x4000); // DF
    f[l3 + 8] = 64;
    f[l3 + 9] = proto;
    f.set([10, 0, 0, 1, 10, 0, 0, 2], l3 + 12);
    fixIpv4HeaderChecksum(f, l3, 20);
  }
  put16be(f, l4, 40000);
  put16be(f, l4 + 2, 5001);
  if (s.udp) put16be(f, l4 + 4, len - l4);
  else {
    put32be(f, l4 + 4, s.seq ?? 1000);
    put32be(f, l4 + 8, 77);
    f[l4 + 12] = 0x50;
    f[l4 + 13] = s.tcpFlags ?? TcpFlag.ACK | TcpFlag.PSH;
    put16be(f, l4 + 14, 65535);
  }
  const seed = s.seed ?? 1;
  for (let i = l4 + l4Len; i < len; i++) f[i] = (i * 31 + seed) & 0xff;
  fixTransportChecksum(f, l3, s.ipv6 ?? false, l4, len, s.udp ?? false);
  return f;
}

/**
 * Turns the frame's transport checksum into the partial one a driver hands over with
 * VIRTIO_NET_HDR_F_NEEDS_CSUM (the pseudo-header sum, not inverted) and returns csum_start and
 * csum_offset.
 */
export function makeChecksumPartial(f: Uint8Array): {
  /** csum_start: offset of the TCP/UDP header in the frame. */
  start: number;
  /** csum_offset: where the checksum field is from `start` (16 TCP, 6 UDP). */
  offset: number;
} {
  const l = new FrameLayout();
  if (!l.parse(f, f.length)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'not a TCP or UDP frame over IPv4/IPv6');
  const udp = l.proto === IPPROTO_UDP;
  const offset = udp ? 6 : 16;
  const ph = pseudoHeaderSum(f, l.l3, l.ipv6, l.proto, f.length - l.l4);
  let folded = ph;
  while (folded > 0xffff) folded = (folded & 0xffff) + (folded >>> 16);
  put16be(f, l.l4 + offset, folded);
  return { start: l.l4, offset };
}

/** Whether the IPv4 header checksum (if IPv4) and the TCP/UDP checksum of `f` are right. */
export function checksumsValid(f: Uint8Array): boolean {
  const l = new FrameLayout();
  if (!l.parse(f, f.length)) return false;
  if (!l.ipv6 && checksumOf(sumWords(f, l.l3, l.l3 + l.l3Len, 0)) !== 0) return false;
  const end = l.ipv6 ? l.l3 + 40 + get16(f, l.l3 + 4) : l.l3 + get16(f, l.l3 + 2);
  if (end > f.length) return false;
  return checksumOf(sumWords(f, l.l4, end, pseudoHeaderSum(f, l.l3, l.ipv6, l.proto, end - l.l4))) === 0;
}
