/**
 * The driver's side of the transmit header (5.1.6.2): the virtio_net_hdr for a frame with a
 * checksum offload request (driver/net/16, /30) and a segmentation request (driver/net/18..22,
 * /31..33), refusing what the negotiated features do not allow.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { ETH_HEADER, ETH_VLAN_TAG, NetF, NetGsoType, NetHdr, NetHdrFlag } from '../../spec/net.js';
import { pseudoHeaderSum, put16be } from './checksum.js';
import { FrameLayout, IPPROTO_TCP, IPPROTO_UDP } from './frame-layout.js';
import { NET_GSO_MAX_FRAME, putU16 } from './net-header.js';

const TCP_CWR = 0x80;

/** What send() may ask of the device besides carrying the frame. */
export interface NetSendOptions {
  /** Transmit queue pair (default 0). */
  pair?: number;
  /**
   * A partial checksum for the device to complete (VIRTIO_NET_F_CSUM, driver/net/30): explicit
   * offsets (the frame already holds the partial sum), or 'auto': the driver finds the TCP/UDP
   * header and puts the pseudo-header sum in place.
   */
  csum?:
    | {
        /** csum_start: where the checksummed range starts, bytes from the frame's start. */
        start: number;
        /** csum_offset: where the checksum goes, bytes after `start`. */
        offset: number;
      }
    | 'auto';
  /**
   * Segmentation offload: the device cuts the frame's TCP stream (or UDP payload) into `size`
   * byte segments (HOST_TSO4/TSO6 for TCP, HOST_USO for UDP, or HOST_UFO with `ufo` for IP
   * fragments). Implies the 'auto' partial checksum (driver/net/31).
   */
  gso?: {
    /** gso_size: payload bytes per segment (the MSS, or the fragment payload with UFO). */
    size: number;
    /** UDP fragmentation offload (VIRTIO_NET_HDR_GSO_UDP, HOST_UFO) instead of USO for a UDP frame. */
    ufo?: boolean;
  };
}

export class NetTransmitHeader {
  private readonly layout = new FrameLayout();

  constructor(private readonly le: boolean) {}

  /** The header (hdrLen bytes) and the bytes to send (a copy when the checksum field is filled in). */
  prepare(frame: Uint8Array, opts: NetSendOptions, features: bigint, mtu: number, hdrLen: number): { hdr: Uint8Array; body: Uint8Array } {
    const hdr = new Uint8Array(hdrLen); // num_buffers 0 (driver/net/15), gso_type NONE
    const body = opts.gso !== undefined || opts.csum === 'auto' ? frame.slice() : frame;
    if (opts.gso === undefined && frame.length > mtu + ETH_HEADER + ETH_VLAN_TAG) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `a ${frame.length}-byte frame exceeds the MTU (driver/net/8)`);
    if (opts.csum !== undefined || opts.gso !== undefined) {
      if ((features & NetF.CSUM) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'checksum offload needs VIRTIO_NET_F_CSUM (driver/net/16)');
      hdr[NetHdr.FLAGS] = NetHdrFlag.NEEDS_CSUM;
      const c = opts.csum !== undefined && opts.csum !== 'auto' && opts.gso === undefined ? opts.csum : this.partialChecksum(body);
      putU16(hdr, NetHdr.CSUM_START, c.start, this.le);
      putU16(hdr, NetHdr.CSUM_OFFSET, c.offset, this.le);
    }
    if (opts.gso !== undefined) this.fillGso(hdr, body, opts.gso, features, mtu);
    return { hdr, body };
  }

  /** Puts the pseudo-header sum in the TCP/UDP checksum field of `f`; returns csum_start/offset. */
  private partialChecksum(f: Uint8Array): { start: number; offset: number } {
    const l = this.layout;
    if (!l.parse(f, f.length)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'checksum offload: not a TCP or UDP frame over IPv4/IPv6');
    const offset = l.proto === IPPROTO_UDP ? 6 : 16;
    let sum = pseudoHeaderSum(f, l.l3, l.ipv6, l.proto, f.length - l.l4);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    put16be(f, l.l4 + offset, sum);
    return { start: l.l4, offset };
  }

  /** gso_type, gso_size and hdr_len for a segmentation request (the frame was parsed by partialChecksum). */
  private fillGso(hdr: Uint8Array, f: Uint8Array, gso: { size: number; ufo?: boolean }, features: bigint, mtu: number): void {
    const l = this.layout;
    let type: number;
    let need: bigint;
    if (l.proto === IPPROTO_TCP) {
      type = l.ipv6 ? NetGsoType.TCPV6 : NetGsoType.TCPV4;
      need = l.ipv6 ? NetF.HOST_TSO6 : NetF.HOST_TSO4;
      // driver/net/22: a stream with congestion notification only with HOST_ECN, flagged.
      if ((f[l.l4 + 13]! & TCP_CWR) !== 0) {
        need |= NetF.HOST_ECN;
        type |= NetGsoType.ECN;
      }
    } else {
      type = gso.ufo === true ? NetGsoType.UDP : NetGsoType.UDP_L4;
      need = gso.ufo === true ? NetF.HOST_UFO : NetF.HOST_USO;
    }
    if ((features & need) !== need) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `segmentation offload 0x${type.toString(16)} needs features 0x${need.toString(16)} (driver/net/18..22)`);
    if (!Number.isInteger(gso.size) || gso.size < 1 || gso.size > mtu) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `gso size ${gso.size} not in 1..${mtu}`);
    if (f.length > NET_GSO_MAX_FRAME) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `a ${f.length}-byte GSO frame is larger than a 64 KiB IP packet`);
    hdr[NetHdr.GSO_TYPE] = type;
    putU16(hdr, NetHdr.GSO_SIZE, gso.size, this.le);
    // driver/net/32 (exact with GUEST_HDRLEN), /33 (not less than the headers otherwise).
    putU16(hdr, NetHdr.HDR_LEN, l.hdrs, this.le);
  }
}
