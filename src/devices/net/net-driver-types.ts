/** The NetDriver's contract features, options and the shapes it returns (net-driver.ts). */
import { NetF } from '../../spec/net.js';

/** The features NetDriver negotiates (HASH_REPORT only in `NetDriver.hashReportingType`: it changes the header to 20 bytes). */
export const NET_DRIVER_FEATURES =
  NetF.CSUM |
  NetF.GUEST_CSUM |
  NetF.MTU |
  NetF.MAC |
  NetF.MRG_RXBUF |
  NetF.STATUS |
  NetF.CTRL_VQ |
  NetF.CTRL_RX |
  NetF.CTRL_RX_EXTRA |
  NetF.CTRL_VLAN |
  NetF.GUEST_ANNOUNCE |
  NetF.MQ |
  NetF.CTRL_MAC_ADDR |
  NetF.CTRL_GUEST_OFFLOADS |
  NetF.SPEED_DUPLEX |
  NetF.HOST_TSO4 |
  NetF.HOST_TSO6 |
  NetF.HOST_ECN |
  NetF.HOST_UFO |
  NetF.HOST_USO |
  NetF.GUEST_TSO4 |
  NetF.GUEST_TSO6 |
  NetF.GUEST_ECN |
  NetF.GUEST_UFO |
  NetF.GUEST_USO4 |
  NetF.GUEST_USO6 |
  NetF.GUEST_HDRLEN |
  NetF.RSS |
  NetF.HASH_TUNNEL |
  NetF.NOTF_COAL |
  NetF.VQ_NOTF_COAL |
  NetF.DEVICE_STATS;

/** Features that only make sense with a control queue (5.1.3.1). */
export const NET_NEEDS_CTRL_VQ =
  NetF.CTRL_RX | NetF.CTRL_VLAN | NetF.GUEST_ANNOUNCE | NetF.CTRL_MAC_ADDR | NetF.CTRL_RX_EXTRA | NetF.HASH_REPORT | NetF.CTRL_GUEST_OFFLOADS | NetF.NOTF_COAL | NetF.VQ_NOTF_COAL | NetF.DEVICE_STATS | NetF.RSS | NetF.HASH_TUNNEL;

/** The receive segmentation offloads: with any of them buffers must take a 64 KiB frame (driver/net/43). */
export const GUEST_GSO = NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6;


/** RSS parameters (VIRTIO_NET_CTRL_MQ_RSS_CONFIG, 5.1.6.5.7.1). */
export interface NetRssParams {
  /** VIRTIO_NET_HASH_TYPE_* bits. */
  hashTypes: number;
  /** Receive queue numbers (pairs, from 0); a power of two of them (driver/net/80). */
  table: readonly number[];
  /** Where frames without a hash go. */
  unclassified: number;
  /** Transmit pairs the driver will use (default: the pairs in use). */
  maxTxPairs?: number;
  /** The Toeplitz hash key (at most rss_max_key_size bytes, 5.1.4). */
  key: Uint8Array;
}

/** Options of NetDriver. */
export interface NetDriverOptions {
  /**
   * When the device sets VIRTIO_NET_S_ANNOUNCE (GUEST_ANNOUNCE), broadcast a RARP from the
   * driver's address and ack it (driver/net/72, /73). Default true.
   */
  announce?: boolean;
  /** Receive buffers kept posted per receive queue (default 32, at most the queue size). */
  rxBuffers?: number;
  /** Bytes per receive buffer (default: 2048 with MRG_RXBUF, else header + MTU + 18). */
  rxBufferSize?: number;
  /** Frames kept for receive() at most; older ones are dropped beyond it (default 1024). */
  maxPending?: number;
}

/** Link speed and duplex (SPEED_DUPLEX); null where unknown (driver/net/10). */
export interface NetLinkSettings {
  /** config speed in Mbit/s; null without SPEED_DUPLEX or when the device reports it unknown (-1). */
  readonly speedMbps: number | null;
  /** config duplex; null when unknown. */
  readonly duplex: 'full' | 'half' | null;
}

/** A frame as received, with what its header said. */
export interface NetFrame {
  /** The Ethernet frame, without the virtio-net header (a copy the caller owns). */
  readonly data: Uint8Array;
  /** The header's flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, DATA_VALID, RSC_INFO (5.1.6). */
  readonly flags: number;
  /** With NEEDS_CSUM: where checksumming starts, bytes from the frame's start. */
  readonly csumStart: number;
  /** With NEEDS_CSUM: where the checksum goes, bytes after csumStart. */
  readonly csumOffset: number;
  /** Buffers it was spread over (num_buffers). */
  readonly buffers: number;
  /** gso_type (NONE for an ordinary frame), gso_size and hdr_len of a whole GSO frame. */
  readonly gsoType: number;
  /** Payload bytes per segment (MSS) of a GSO frame; 0 for an ordinary frame. */
  readonly gsoSize: number;
  /** hdr_len: bytes of headers (Ethernet to transport) of a GSO frame. */
  readonly hdrLen: number;
  /** hash_value and hash_report with HASH_REPORT (else 0). */
  readonly hashValue: number;
  /** VIRTIO_NET_HASH_REPORT_* naming the hash computed (0 NONE: no hash). */
  readonly hashReport: number;
  /**
   * With VIRTIO_NET_HDR_F_RSC_INFO (RSC_EXT): the TCP segments the device coalesced into this
   * frame and the duplicated ACKs it absorbed (csum_start / csum_offset; else 0).
   */
  readonly rscSegments: number;
  /**
   * With VIRTIO_NET_HDR_F_RSC_INFO: the duplicated ACKs the device absorbed while coalescing
   * this frame (the header's csum_offset field, 5.1.6.4); else 0.
   */
  readonly rscDupAcks: number;
  /** The receive queue it came on. */
  readonly queue: number;
}
