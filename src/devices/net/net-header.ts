/**
 * The virtio_net_hdr on the data path (5.1.6): reading a transmit header into a NetPacket with
 * every check the untrusted driver's header needs, deciding whether a GSO packet goes to the
 * driver whole, and writing a receive header. Sizes: 10 bytes legacy without MRG_RXBUF, 12 with
 * VERSION_1 or MRG_RXBUF, 20 with HASH_REPORT (`netHeaderSize`, 5.1.6 and its legacy notes);
 * multi-byte fields little-endian with VERSION_1, guest-native with the legacy interface.
 */
import { ETH_HEADER, ETH_VLAN_TAG, NetF, NetGsoType, NetHdr, NetHdrFlag } from '../../spec/net.js';
import { FrameLayout, IPPROTO_TCP } from './frame-layout.js';
import { NET_GSO_MAX_SEGMENTS, gsoBaseType, gsoMatchesLayout, gsoSegments } from './gso-segmenter.js';
import type { NetPacket } from './packet.js';

/** The host (transmit) segmentation offloads the device implements. */
export const NET_HOST_GSO = NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_ECN | NetF.HOST_UFO | NetF.HOST_USO;
/** The guest (receive) segmentation offloads the device implements. */
export const NET_GUEST_GSO = NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6;
/** The largest GSO frame: a 64 KiB IP packet behind an Ethernet header and a VLAN tag. */
export const NET_GSO_MAX_FRAME = 65535 + ETH_HEADER + ETH_VLAN_TAG;

const TCP_CWR = 0x80;

export function getU16(b: Uint8Array, o: number, le: boolean): number {
  return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}
export function putU16(b: Uint8Array, o: number, v: number, le: boolean): void {
  b[o + (le ? 0 : 1)] = v & 0xff;
  b[o + (le ? 1 : 0)] = (v >>> 8) & 0xff;
}
export function putU32(b: Uint8Array, o: number, v: number, le: boolean): void {
  for (let k = 0; k < 4; k++) b[o + (le ? k : 3 - k)] = (v >>> (8 * k)) & 0xff;
}

/** The HOST_* feature a transmit gso_type (without ECN) needs, or 0n for a type never accepted. */
function hostFeatureFor(base: number): bigint {
  if (base === NetGsoType.TCPV4) return NetF.HOST_TSO4;
  if (base === NetGsoType.TCPV6) return NetF.HOST_TSO6;
  if (base === NetGsoType.UDP) return NetF.HOST_UFO;
  if (base === NetGsoType.UDP_L4) return NetF.HOST_USO;
  return 0n;
}

/**
 * Reads and checks transmit headers; one per device (its FrameLayout is reused).
 */
export class TxHeaderReader {
  private readonly layout = new FrameLayout();

  /**
   * Applies header `h` to `p`, whose bytes [0, p.length) hold the frame. False when the driver
   * broke a rule the device cannot work around (the frame is then dropped and counted):
   *  - NEEDS_CSUM without CSUM (driver/net/16) or with csum_start + csum_offset + 2 beyond the
   *    frame; csum fields are used only with NEEDS_CSUM (device/net/16); other flag bits are
   *    ignored (device/net/15);
   *  - a gso_type whose HOST_* feature was not negotiated (driver/net/18..21), the ECN bit
   *    without HOST_ECN (driver/net/22), tunnel bits (not offered), GSO without NEEDS_CSUM
   *    (driver/net/31), gso_size 0 or above the MTU, a frame that does not parse as its
   *    gso_type says; hdr_len is never relied on (device/net/21): the headers are parsed;
   *  - without GSO, a frame longer than the MTU plus the Ethernet header and a VLAN tag.
   */
  apply(h: Uint8Array, p: NetPacket, negotiated: bigint, mtu: number, le: boolean): boolean {
    const len = p.length;
    p.clearOffloads();
    if ((h[NetHdr.FLAGS]! & NetHdrFlag.NEEDS_CSUM) !== 0) {
      const start = getU16(h, NetHdr.CSUM_START, le);
      const off = getU16(h, NetHdr.CSUM_OFFSET, le);
      if ((negotiated & NetF.CSUM) === 0n || start + off + 2 > len) return false;
      p.needsCsum = true;
      p.csumStart = start;
      p.csumOffset = off;
    }
    const gso = h[NetHdr.GSO_TYPE]!;
    if (gso === NetGsoType.NONE) return len <= mtu + ETH_HEADER + ETH_VLAN_TAG; // device/net/6 bounds what must pass
    const need = hostFeatureFor(gsoBaseType(gso));
    if (need === 0n || (negotiated & need) === 0n) return false;
    if ((gso & NetGsoType.ECN) !== 0 && (negotiated & NetF.HOST_ECN) === 0n) return false;
    if (!p.needsCsum || len > NET_GSO_MAX_FRAME) return false;
    const size = getU16(h, NetHdr.GSO_SIZE, le);
    if (size === 0 || size > mtu) return false;
    const l = this.layout;
    if (!l.parse(p.data, len) || !gsoMatchesLayout(gso, l)) return false;
    // Bounded work per chain: at most NET_GSO_MAX_SEGMENTS segments (UFO: gso_size of 8 or more).
    if (gsoSegments(len, l, gso, size) > NET_GSO_MAX_SEGMENTS) return false;
    p.gsoType = gso;
    p.gsoSize = size;
    p.hdrLen = l.hdrs;
    return true;
  }
}

/**
 * Decides whether a GSO packet goes to a driver whole (5.1.6.4): the driver has the matching
 * GUEST_* receive offload enabled (negotiated, and not turned off by CTRL_GUEST_OFFLOADS),
 * GUEST_CSUM too (device/net/46: a GSO packet carries NEEDS_CSUM), and GUEST_ECN when the TCP
 * stream carries congestion notification (device/net/40). `gsoTypeOut` is then the gso_type
 * to report (with the ECN bit when it applies) and `hdrLen` the exact header length (the
 * device's own parse, device/net/49).
 */
export class RxGsoDecision {
  gsoTypeOut = 0;
  hdrLen = 0;
  private readonly layout = new FrameLayout();

  takesWhole(p: NetPacket, offloads: bigint): boolean {
    if (!p.needsCsum || (offloads & NetF.GUEST_CSUM) === 0n) return false;
    const l = this.layout;
    if (!l.parse(p.data, p.length) || !gsoMatchesLayout(p.gsoType, l)) return false;
    const base = gsoBaseType(p.gsoType);
    let need: bigint;
    if (base === NetGsoType.TCPV4) need = NetF.GUEST_TSO4;
    else if (base === NetGsoType.TCPV6) need = NetF.GUEST_TSO6;
    else if (base === NetGsoType.UDP) need = NetF.GUEST_UFO;
    else need = l.ipv6 ? NetF.GUEST_USO6 : NetF.GUEST_USO4;
    const ecn = l.proto === IPPROTO_TCP && ((p.gsoType & NetGsoType.ECN) !== 0 || (p.data[l.l4 + 13]! & TCP_CWR) !== 0);
    if (ecn) need |= NetF.GUEST_ECN;
    if ((offloads & need) !== need) return false;
    this.gsoTypeOut = base | (ecn ? NetGsoType.ECN : 0);
    this.hdrLen = l.hdrs;
    return true;
  }
}

/** What goes into one receive header besides the packet's own state. */
export interface RxHeaderFields {
  /** GUEST_CSUM is in effect: NEEDS_CSUM / DATA_VALID may be reported. */
  guestCsum: boolean;
  /** A whole GSO packet: gso_type to report (0 for none) and the exact hdr_len. */
  gsoType: number;
  hdrLen: number;
  /** RSC_EXT and a GSO frame: RSC_INFO with the coalesced segments and duplicated ACKs in csum_start / csum_offset. */
  rsc: boolean;
  rscSegments: number;
  rscDupAcks: number;
  numBuffers: number;
  /** With HASH_REPORT: the hash and its report type (0 = VIRTIO_NET_HASH_REPORT_NONE). */
  hashValue: number;
  hashReport: number;
}

/**
 * Writes the receive header for `p` into h[0, hdrLen): flags 0 without GUEST_CSUM
 * (device/net/33); with it NEEDS_CSUM and the offsets for a partial checksum (device/net/43)
 * or DATA_VALID for one that was computed or verified (device/net/50); gso fields only for a
 * whole GSO packet (device/net/45, /46); with `rsc` (RSC_EXT negotiated, a GSO frame) RSC_INFO
 * and the counts in csum_start / csum_offset (device/net/47), never otherwise (device/net/48); num_buffers when the
 * header has it (device/net/27, /29, /30); hash_value and hash_report in the 20-byte header.
 */
export function writeRxHeader(h: Uint8Array, hdrLen: number, p: NetPacket, f: RxHeaderFields, le: boolean): void {
  h.fill(0, 0, hdrLen);
  if (f.guestCsum) {
    if (p.needsCsum) {
      h[NetHdr.FLAGS] = NetHdrFlag.NEEDS_CSUM;
      putU16(h, NetHdr.CSUM_START, p.csumStart, le);
      putU16(h, NetHdr.CSUM_OFFSET, p.csumOffset, le);
    } else if (p.csumValid) {
      h[NetHdr.FLAGS] = NetHdrFlag.DATA_VALID;
    }
  }
  if (f.gsoType !== NetGsoType.NONE) {
    h[NetHdr.GSO_TYPE] = f.gsoType;
    putU16(h, NetHdr.HDR_LEN, f.hdrLen, le);
    putU16(h, NetHdr.GSO_SIZE, p.gsoSize, le);
    if (f.rsc) {
      h[NetHdr.FLAGS] = h[NetHdr.FLAGS]! | NetHdrFlag.RSC_INFO;
      putU16(h, NetHdr.CSUM_START, f.rscSegments, le);
      putU16(h, NetHdr.CSUM_OFFSET, f.rscDupAcks, le);
    }
  }
  if (hdrLen >= NetHdr.SIZE) putU16(h, NetHdr.NUM_BUFFERS, f.numBuffers, le);
  if (hdrLen >= NetHdr.HASH_SIZE) {
    putU32(h, NetHdr.HASH_VALUE, f.hashValue, le);
    putU16(h, NetHdr.HASH_REPORT, f.hashReport, le);
  }
}
