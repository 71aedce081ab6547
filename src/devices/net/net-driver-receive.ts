/**
 * The driver's side of the receive header (5.1.6.4): each used receive buffer's virtio_net_hdr
 * read into a NetFrame, and with VIRTIO_NET_F_MRG_RXBUF the frame's num_buffers buffers
 * reassembled (driver/net/48..51). One reassembly in progress per receive queue pair; a buffer
 * too short for the header or a num_buffers out of range is counted and dropped.
 */
import { NetGsoType, NetHdr, NetHdrFlag, netRxQueue } from '../../spec/net.js';
import type { NetFrame } from './net-driver-types.js';

/** A frame being read: its parts so far, the buffers still to come, its first header's fields. */
interface RxAssembly {
  parts: Uint8Array[];
  remaining: number;
  flags: number;
  csumStart: number;
  csumOffset: number;
  buffers: number;
  gsoType: number;
  gsoSize: number;
  hdrLen: number;
  hashValue: number;
  hashReport: number;
  rscSegments: number;
  rscDupAcks: number;
}

/** What the negotiated features say about the receive header. */
export interface NetReceiveFormat {
  /** Ring fields and header fields are little-endian (false only for a legacy big-endian guest). */
  readonly le: boolean;
  /** The header's size (netHeaderSize of the features). */
  readonly hdrLen: number;
  /** VIRTIO_NET_F_MRG_RXBUF: a frame may span num_buffers buffers. */
  readonly mergeable: boolean;
  /** VIRTIO_NET_F_RSC_EXT: RSC_INFO may be set. */
  readonly rsc: boolean;
  /** Buffers posted per receive queue: the most num_buffers can be. */
  readonly rxBuffers: number;
}

/** Reads used receive buffers into frames for NetDriver (one per driver). */
export class NetReceiveAssembler {
  /** Receive buffers dropped: shorter than the header, or num_buffers out of range. */
  errors = 0;
  private readonly assembly: (RxAssembly | null)[] = [];

  constructor(private readonly format: NetReceiveFormat) {}

  /**
   * One used receive buffer of pair `pair` (its bytes, copied out of guest memory): the frame
   * it completes, or null (a part of a merged frame, or dropped).
   */
  take(pair: number, bytes: Uint8Array): NetFrame | null {
    const a = this.assembly[pair];
    if (a) {
      a.parts.push(bytes);
      if (--a.remaining !== 0) return null;
      this.assembly[pair] = null;
      return this.frame(pair, a);
    }
    const { hdrLen: hl, mergeable, rsc, rxBuffers } = this.format;
    if (bytes.length < hl) {
      this.errors++;
      return null;
    }
    // driver/net/48: unknown flag bits are ignored; only NEEDS_CSUM, DATA_VALID and (with
    // RSC_EXT) RSC_INFO are used.
    const buffers = hl >= NetHdr.SIZE ? this.get16(bytes, NetHdr.NUM_BUFFERS) : 1;
    const flags = bytes[NetHdr.FLAGS]! & (NetHdrFlag.NEEDS_CSUM | NetHdrFlag.DATA_VALID | (rsc ? NetHdrFlag.RSC_INFO : 0));
    const gsoType = bytes[NetHdr.GSO_TYPE]!;
    // driver/net/51: csum_start / csum_offset only with NEEDS_CSUM and without RSC_INFO, which
    // reuses them for the coalesced segments and duplicated ACKs (5.1.6.4 item 2).
    const rscInfo = (flags & NetHdrFlag.RSC_INFO) !== 0;
    const csumFields = (flags & NetHdrFlag.NEEDS_CSUM) !== 0 && !rscInfo;
    const first: RxAssembly = {
      parts: [bytes.subarray(hl)],
      remaining: (mergeable ? buffers : 1) - 1,
      flags,
      csumStart: csumFields ? this.get16(bytes, NetHdr.CSUM_START) : 0,
      csumOffset: csumFields ? this.get16(bytes, NetHdr.CSUM_OFFSET) : 0,
      rscSegments: rscInfo ? this.get16(bytes, NetHdr.CSUM_START) : 0,
      rscDupAcks: rscInfo ? this.get16(bytes, NetHdr.CSUM_OFFSET) : 0,
      buffers: mergeable ? buffers : 1,
      gsoType,
      gsoSize: gsoType !== NetGsoType.NONE ? this.get16(bytes, NetHdr.GSO_SIZE) : 0,
      hdrLen: gsoType !== NetGsoType.NONE ? this.get16(bytes, NetHdr.HDR_LEN) : 0,
      hashValue: hl >= NetHdr.HASH_SIZE ? this.get32(bytes, NetHdr.HASH_VALUE) : 0,
      hashReport: hl >= NetHdr.HASH_SIZE ? this.get16(bytes, NetHdr.HASH_REPORT) : 0,
    };
    if (mergeable && (buffers < 1 || buffers > rxBuffers)) {
      this.errors++;
      return null;
    }
    if (first.remaining === 0) return this.frame(pair, first);
    this.assembly[pair] = first;
    return null;
  }

  /** The frame of a complete assembly: its parts joined (one part is used as it is). */
  private frame(pair: number, a: RxAssembly): NetFrame {
    let data = a.parts[0]!;
    if (a.parts.length > 1) {
      let total = 0;
      for (const p of a.parts) total += p.length;
      data = new Uint8Array(total);
      let at = 0;
      for (const p of a.parts) {
        data.set(p, at);
        at += p.length;
      }
    }
    return {
      data,
      flags: a.flags,
      csumStart: a.csumStart,
      csumOffset: a.csumOffset,
      buffers: a.buffers,
      queue: netRxQueue(pair),
      gsoType: a.gsoType,
      gsoSize: a.gsoSize,
      hdrLen: a.hdrLen,
      hashValue: a.hashValue,
      hashReport: a.hashReport,
      rscSegments: a.rscSegments,
      rscDupAcks: a.rscDupAcks,
    };
  }

  private get16(b: Uint8Array, o: number): number {
    return this.format.le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
  }
  private get32(b: Uint8Array, o: number): number {
    return this.format.le ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0 : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }
}
