/**
 * One Ethernet frame as it travels between the ports of a virtual network: the bytes and what
 * the sender's virtio_net_hdr said about it (5.1.6.2): the checksum offload state and, for a
 * large frame the receiver is to segment (GSO), the segmentation request. Packets are reusable buffers:
 * each sender owns one and refills it per frame, receivers copy what they keep, so moving a
 * frame allocates nothing.
 */
import { ETH_HEADER } from '../../spec/net.js';
import { wordsOf } from '../../memory/guest-copy.js';

/**
 * Bytes of a frame a partial packet holds at least (`NetPacket.pending`): the Ethernet
 * addresses and type, and the VLAN TCI of an 802.1Q-tagged frame: all a switch reads to decide
 * where the frame goes.
 */
export const NET_PARTIAL_FRAME = ETH_HEADER + 2;

/** Where the rest of a partial packet's frame is (the sender's guest buffers). */
export interface FrameSource {
  /** Copies bytes [NET_PARTIAL_FRAME, p.length) of the frame into `p.data`. */
  fillFrame(p: NetPacket): void;
}

/** One reusable Ethernet frame buffer with its offload state (see the file comment). */
export class NetPacket {
  /** The frame; [0, length) is valid. */
  readonly data: Uint8Array;
  /**
   * `data` as 32-bit words (host order) when its bytes start 4-aligned, else null: the switch
   * compares a frame's addresses with the last frame's in four word loads (switch.ts), and a
   * transmit queue copies guest bytes in words (src/memory/guest-copy.ts). A packet's own buffer is aligned.
   */
  readonly data32: Uint32Array | null;
  /** Bytes of the frame in `data` (0 when empty). */
  length = 0;
  /**
   * VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum from csumStart to the end is partial (the
   * pseudo-header sum is in place) and goes at csumStart + csumOffset once completed.
   */
  needsCsum = false;
  /** With needsCsum: where the checksummed range starts, bytes from the frame's start. */
  csumStart = 0;
  /** With needsCsum: where the checksum goes, bytes after csumStart. */
  csumOffset = 0;
  /**
   * VIRTIO_NET_HDR_F_DATA_VALID: the checksums of the frame were verified (or computed) by
   * whoever handed it on, so a receiver may tell its driver so (5.1.6.4, device/net/50).
   */
  csumValid = false;
  /**
   * A segmentation request (5.1.6.2): a VIRTIO_NET_HDR_GSO_* type (TCPV4, TCPV6, UDP, UDP_L4,
   * with the ECN bit 0x80 when the TCP stream carries congestion notification), or NONE (0)
   * for an ordinary frame. A GSO packet always has `needsCsum` set (driver/net/31) and is
   * only handed whole to a port whose `takesGso` is true; the switch segments it for others.
   */
  gsoType = 0;
  /** The segment payload size (MSS) of a GSO packet. */
  gsoSize = 0;
  /** The length of the headers up to the end of the transport header, when known (a hint: device/net/21). */
  hdrLen = 0;
  /**
   * Non-null while only [0, NET_PARTIAL_FRAME) of `data` holds the frame: the sender read no
   * more before knowing whether anyone receives it (a virtio-net transmit queue sending into a
   * switch with no port for the frame copies nothing else). Whoever reads beyond that calls
   * `ensureFrame` first; only a link that says `partialFrames` is handed such a packet.
   */
  pending: FrameSource | null = null;

  constructor(capacity: number) {
    this.data = new Uint8Array(capacity);
    this.data32 = wordsOf(this.data);
  }

  /**
   * A packet over existing bytes (not copied): a frame ring's slot in shared memory
   * (frame-ring.ts) is handed to a switch this way, without a copy.
   */
  static over(data: Uint8Array): NetPacket {
    const p = new NetPacket(0);
    (p as { data: Uint8Array }).data = data;
    (p as { data32: Uint32Array | null }).data32 = wordsOf(data);
    return p;
  }

  /** Makes [0, length) of `data` the whole frame (a partial packet's source copies the rest in). */
  ensureFrame(): void {
    const s = this.pending;
    if (s === null) return;
    this.pending = null;
    s.fillFrame(this);
  }

  /** The largest frame the buffer holds, bytes (fixed at construction). */
  get capacity(): number {
    return this.data.length;
  }

  /** Copies `frame` in (no checksum offload); false when it does not fit. */
  set(frame: Uint8Array): boolean {
    if (frame.length > this.data.length) return false;
    this.data.set(frame);
    this.length = frame.length;
    this.clearOffloads();
    return true;
  }

  /** No checksum offload, no segmentation request. */
  clearOffloads(): void {
    this.needsCsum = false;
    this.csumValid = false;
    this.gsoType = 0;
    this.gsoSize = 0;
    this.hdrLen = 0;
  }

  /** Copies the offload metadata (not the bytes) of `from`. */
  copyOffloads(from: NetPacket): void {
    this.needsCsum = from.needsCsum;
    this.csumStart = from.csumStart;
    this.csumOffset = from.csumOffset;
    this.csumValid = from.csumValid;
    this.gsoType = from.gsoType;
    this.gsoSize = from.gsoSize;
    this.hdrLen = from.hdrLen;
  }

  /** A copy of the frame bytes (tests, capture). */
  bytes(): Uint8Array {
    this.ensureFrame();
    return this.data.slice(0, this.length);
  }
}

/**
 * Completes a partial checksum (what a device does for a peer that did not negotiate
 * GUEST_CSUM, 5.1.6.2: "the device ... completes the checksum"): the 16-bit one's complement
 * sum from csumStart to the end, folded and inverted, stored big-endian at csumStart +
 * csumOffset. Returns false (nothing written) when the offsets lie outside the frame.
 */
export function completeChecksum(p: NetPacket): boolean {
  const start = p.csumStart;
  const at = start + p.csumOffset;
  if (!p.needsCsum) return true;
  if (at + 2 > p.length || start >= p.length) return false;
  const d = p.data;
  let sum = 0;
  let i = start;
  const end = p.length;
  for (; i + 1 < end; i += 2) sum += (d[i]! << 8) | d[i + 1]!;
  if (i < end) sum += d[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  const csum = ~sum & 0xffff;
  d[at] = csum >>> 8;
  d[at + 1] = csum & 0xff;
  p.needsCsum = false;
  return true;
}

/** The 48-bit MAC at `d[off..off+6)` as a number (exact in a double), for tables without strings. */
export function macKey(d: Uint8Array, off: number): number {
  return d[off]! * 0x100_0000_0000 + d[off + 1]! * 0x1_0000_0000 + ((d[off + 2]! << 24) >>> 0) + (d[off + 3]! << 16) + (d[off + 4]! << 8) + d[off + 5]!;
}

/** The all-ones broadcast address as a macKey. */
export const BROADCAST_KEY = 0xffff_ffff_ffff;

/** Whether the address at `d[off]` is a group (multicast or broadcast) address: I/G bit set. */
export function isGroupAddress(d: Uint8Array, off: number): boolean {
  return (d[off]! & 1) !== 0;
}

/** Whether `frame` is long enough to carry an Ethernet header. */
export function hasEthernetHeader(p: NetPacket): boolean {
  return p.length >= ETH_HEADER;
}

/** Parses "52:54:00:12:34:56" (or with '-') into 6 bytes; null when malformed. */
export function parseMac(s: string): Uint8Array | null {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6) return null;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    const p = parts[i]!;
    if (!/^[0-9a-fA-F]{1,2}$/.test(p)) return null;
    out[i] = parseInt(p, 16);
  }
  return out;
}

/** Formats 6 bytes as "52:54:00:12:34:56". */
export function formatMac(m: Uint8Array): string {
  return Array.from(m.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}
