/**
 * virtio-net (5.1): feature bits, queue indices, the virtio_net_hdr and configuration layouts.
 * Offsets in bytes; fields little-endian with VERSION_1.
 */
import { bit } from './features.js';

export const NetFeatureBit = {
  CSUM: 0,
  GUEST_CSUM: 1,
  CTRL_GUEST_OFFLOADS: 2,
  MTU: 3,
  MAC: 5,
  GUEST_TSO4: 7,
  GUEST_TSO6: 8,
  GUEST_ECN: 9,
  GUEST_UFO: 10,
  HOST_TSO4: 11,
  HOST_TSO6: 12,
  HOST_ECN: 13,
  HOST_UFO: 14,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
  CTRL_RX: 18,
  CTRL_VLAN: 19,
  GUEST_ANNOUNCE: 21,
  MQ: 22,
  CTRL_MAC_ADDR: 23,
  HASH_REPORT: 57,
  RSS: 60,
  RSC_EXT: 61,
  STANDBY: 62,
  SPEED_DUPLEX: 63,
} as const;
export type NetFeatureBit = (typeof NetFeatureBit)[keyof typeof NetFeatureBit];

/** Feature masks (bigint), as `F` in features.ts. */
export const NetF = Object.fromEntries(Object.entries(NetFeatureBit).map(([k, v]) => [k, bit(v)])) as {
  readonly [K in keyof typeof NetFeatureBit]: bigint;
};

/** 5.1.2: receiveq1 is 0, transmitq1 is 1 (then pairs, then the control queue). */
export const NET_RX_QUEUE = 0;
export const NET_TX_QUEUE = 1;

/**
 * 5.1.6 struct virtio_net_hdr: flags u8, gso_type u8, hdr_len, gso_size, csum_start,
 * csum_offset, num_buffers le16. num_buffers is part of the header with VERSION_1 or MRG_RXBUF
 * (12 bytes); without either it is 10 bytes (legacy only).
 */
export const NetHdr = { FLAGS: 0, GSO_TYPE: 1, HDR_LEN: 2, GSO_SIZE: 4, CSUM_START: 6, CSUM_OFFSET: 8, NUM_BUFFERS: 10, SIZE: 12, LEGACY_SIZE: 10 } as const;
export const NetHdrFlag = { NEEDS_CSUM: 1, DATA_VALID: 2, RSC_INFO: 4 } as const;
export const NetGsoType = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, ECN: 0x80 } as const;

/** 5.1.4 struct virtio_net_config: mac[6], status le16, max_virtqueue_pairs le16, mtu le16. */
export const NetConfig = { MAC: 0, STATUS: 6, MAX_VIRTQUEUE_PAIRS: 8, MTU: 10, SIZE: 12 } as const;
export const NetStatus = { LINK_UP: 1, ANNOUNCE: 2 } as const;

/** Ethernet: header length and the smallest frame (without FCS). */
export const ETH_HEADER = 14;
export const ETH_MIN_FRAME = 60;
/** The largest frame without GSO (1500 MTU + header + VLAN tag). */
export const ETH_MAX_FRAME = 1518;
