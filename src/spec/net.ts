/**
 * virtio-net (5.1): feature bits, queue indices, the virtio_net_hdr, the control queue's classes
 * and commands, and the configuration layout. Offsets in bytes; multi-byte fields little-endian
 * with VERSION_1, guest-native with the legacy interface (5.1.6.1 legacy, 5.1.4 legacy).
 */
import { defineConfigLayout } from './config-layout.js';
import { F, bit } from './features.js';

/** 5.1.3 feature bit numbers (VIRTIO_NET_F_*). */
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
  CTRL_RX_EXTRA: 20,
  GUEST_ANNOUNCE: 21,
  MQ: 22,
  CTRL_MAC_ADDR: 23,
  DEVICE_STATS: 50,
  HASH_TUNNEL: 51,
  VQ_NOTF_COAL: 52,
  NOTF_COAL: 53,
  GUEST_USO4: 54,
  GUEST_USO6: 55,
  HOST_USO: 56,
  HASH_REPORT: 57,
  GUEST_HDRLEN: 59,
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

/** The receive offloads VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET may toggle (5.1.6.5.6.1). */
export const NET_GUEST_OFFLOADS =
  NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6;

/** 5.1.2: receiveq1 is 0, transmitq1 is 1 (then pairs, then the control queue). */
export const NET_RX_QUEUE = 0;
/** 5.1.2: transmitq1. */
export const NET_TX_QUEUE = 1;

/** 5.1.2: receiveqN is 2(N-1), transmitqN is 2(N-1)+1 (pair p counted from 0). */
export function netRxQueue(pair: number): number {
  return 2 * pair;
}
/** 5.1.2: the transmit queue of pair `pair` (from 0), 2 * pair + 1. */
export function netTxQueue(pair: number): number {
  return 2 * pair + 1;
}
/**
 * 5.1.2: the control queue is 2N, where N is max_virtqueue_pairs when MQ (or RSS) is negotiated
 * and 1 otherwise: its index depends on the negotiation, not on the queues the device has.
 */
export function netControlQueue(negotiated: bigint, maxPairs: number): number {
  return (negotiated & (NetF.MQ | NetF.RSS)) !== 0n ? 2 * maxPairs : 2;
}

/**
 * 5.1.6 struct virtio_net_hdr: flags u8, gso_type u8, hdr_len, gso_size, csum_start,
 * csum_offset, num_buffers le16, then with HASH_REPORT hash_value le32, hash_report le16 and
 * padding_reserved le16. num_buffers is part of the header with VERSION_1 or MRG_RXBUF
 * (12 bytes); without either it is 10 bytes (legacy only).
 */
export const NetHdr = {
  FLAGS: 0,
  GSO_TYPE: 1,
  HDR_LEN: 2,
  GSO_SIZE: 4,
  CSUM_START: 6,
  CSUM_OFFSET: 8,
  NUM_BUFFERS: 10,
  HASH_VALUE: 12,
  HASH_REPORT: 16,
  SIZE: 12,
  LEGACY_SIZE: 10,
  HASH_SIZE: 20,
} as const;
/** 5.1.6 virtio_net_hdr.flags (VIRTIO_NET_HDR_F_*). */
export const NetHdrFlag = {
  NEEDS_CSUM: 1,
  DATA_VALID: 2,
  RSC_INFO: 4,
  UDP_TUNNEL_CSUM: 8,
} as const;
/** 5.1.6 virtio_net_hdr.gso_type (VIRTIO_NET_HDR_GSO_*), ECN as a flag on top. */
export const NetGsoType = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, UDP_TUNNEL_IPV4: 0x20, UDP_TUNNEL_IPV6: 0x40, ECN: 0x80 } as const;

/**
 * The header size for the negotiated features (5.1.6, 5.1.6.1 legacy): 20 with HASH_REPORT,
 * 12 with VERSION_1 or MRG_RXBUF, else the legacy 10 bytes without num_buffers.
 */
export function netHeaderSize(negotiated: bigint): number {
  if ((negotiated & NetF.HASH_REPORT) !== 0n) return NetHdr.HASH_SIZE;
  if ((negotiated & (F.VERSION_1 | NetF.MRG_RXBUF)) !== 0n) return NetHdr.SIZE;
  return NetHdr.LEGACY_SIZE;
}

/**
 * 5.1.4 struct virtio_net_config: mac[6], status le16, max_virtqueue_pairs le16, mtu le16,
 * speed le32, duplex u8, rss_max_key_size u8, rss_max_indirection_table_length le16,
 * supported_hash_types le32, supported_tunnel_types le32.
 */
export const NetConfig = {
  MAC: 0,
  STATUS: 6,
  MAX_VIRTQUEUE_PAIRS: 8,
  MTU: 10,
  SPEED: 12,
  DUPLEX: 16,
  RSS_MAX_KEY_SIZE: 17,
  RSS_MAX_INDIRECTION_TABLE_LENGTH: 18,
  SUPPORTED_HASH_TYPES: 20,
  SUPPORTED_TUNNEL_TYPES: 24,
  SIZE: 28,
} as const;
/** 5.1.4 virtio_net_config.status bits (VIRTIO_NET_S_*). */
export const NetStatus = { LINK_UP: 1, ANNOUNCE: 2 } as const;
/** 5.1.4: duplex values; speed 0xffffffff is unknown. */
export const NetDuplex = { FULL: 0, HALF: 1, UNKNOWN: 0xff } as const;
/** 5.1.4: speed value meaning unknown. */
export const NET_SPEED_UNKNOWN = 0xffffffff;
/** 5.1.6.5.5: max_virtqueue_pairs bounds (device/net/1). */
export const NET_MQ_PAIRS_MIN = 1;
/** 5.1.4: the largest max_virtqueue_pairs (0x8000). */
export const NET_MQ_PAIRS_MAX = 0x8000;
/** 5.1.4: mtu bounds when MTU is offered (device/net/2). */
export const NET_MTU_MIN = 68;
/** 5.1.4: the largest mtu. */
export const NET_MTU_MAX = 65535;

const macByte = (k: number) => ({ name: `mac${k}` as const, offset: NetConfig.MAC + k, width: 1 as const, feature: NetF.MAC, access: 'ro' as const });

/** The configuration layout; the MAC is six one-byte fields mac0..mac5 (a byte array, no byte order). */
export const NET_CONFIG_LAYOUT = defineConfigLayout(NetConfig.SIZE, [
  macByte(0),
  macByte(1),
  macByte(2),
  macByte(3),
  macByte(4),
  macByte(5),
  { name: 'status', offset: NetConfig.STATUS, width: 2, feature: NetF.STATUS, access: 'ro' },
  { name: 'maxVirtqueuePairs', offset: NetConfig.MAX_VIRTQUEUE_PAIRS, width: 2, feature: NetF.MQ | NetF.RSS, access: 'ro' },
  { name: 'mtu', offset: NetConfig.MTU, width: 2, feature: NetF.MTU, access: 'ro' },
  { name: 'speed', offset: NetConfig.SPEED, width: 4, feature: NetF.SPEED_DUPLEX, access: 'ro' },
  { name: 'duplex', offset: NetConfig.DUPLEX, width: 1, feature: NetF.SPEED_DUPLEX, access: 'ro' },
  { name: 'rssMaxKeySize', offset: NetConfig.RSS_MAX_KEY_SIZE, width: 1, feature: NetF.RSS | NetF.HASH_REPORT, access: 'ro' },
  { name: 'rssMaxIndirectionTableLength', offset: NetConfig.RSS_MAX_INDIRECTION_TABLE_LENGTH, width: 2, feature: NetF.RSS, access: 'ro' },
  { name: 'supportedHashTypes', offset: NetConfig.SUPPORTED_HASH_TYPES, width: 4, feature: NetF.RSS | NetF.HASH_REPORT, access: 'ro' },
  { name: 'supportedTunnelTypes', offset: NetConfig.SUPPORTED_TUNNEL_TYPES, width: 4, feature: NetF.HASH_TUNNEL, access: 'ro' },
]);
/** Names of the net configuration fields. */
export type NetConfigField = (typeof NET_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.1.6.5 struct virtio_net_ctrl: class u8, command u8, command-specific data, ack u8. */
export const NetCtrlAck = { OK: 0, ERR: 1 } as const;
/** 5.1.6.5 control queue classes (VIRTIO_NET_CTRL_*). */
export const NetCtrlClass = {
  RX: 0,
  MAC: 1,
  VLAN: 2,
  ANNOUNCE: 3,
  MQ: 4,
  GUEST_OFFLOADS: 5,
  NOTF_COAL: 6,
  HASH_TUNNEL: 7,
  STATS: 8,
} as const;
/** 5.1.6.5.1 VIRTIO_NET_CTRL_RX commands (the last three need CTRL_RX_EXTRA). */
export const NetCtrlRx = { PROMISC: 0, ALLMULTI: 1, ALLUNI: 2, NOMULTI: 3, NOUNI: 4, NOBCAST: 5 } as const;
/** 5.1.6.5.2 VIRTIO_NET_CTRL_MAC commands. */
export const NetCtrlMac = { TABLE_SET: 0, ADDR_SET: 1 } as const;
/** 5.1.6.5.3 VIRTIO_NET_CTRL_VLAN commands; the payload is a le16 VLAN id below 4096. */
export const NetCtrlVlan = { ADD: 0, DEL: 1 } as const;
/** Number of VLAN ids (0 to 4095). */
export const NET_VLAN_IDS = 4096;
/** 5.1.6.5.4 VIRTIO_NET_CTRL_ANNOUNCE commands. */
export const NetCtrlAnnounce = { ACK: 0 } as const;
/** 5.1.6.5.5 VIRTIO_NET_CTRL_MQ commands. */
export const NetCtrlMq = { VQ_PAIRS_SET: 0, RSS_CONFIG: 1, HASH_CONFIG: 2 } as const;
/** 5.1.6.5.6 VIRTIO_NET_CTRL_GUEST_OFFLOADS commands; the payload is a le64 offload mask. */
export const NetCtrlGuestOffloads = { SET: 0 } as const;

/** 5.1.6.4.3 Inner Header Hash: VIRTIO_NET_CTRL_HASH_TUNNEL commands; the payload is a le32 enabled_tunnel_types. */
export const NetCtrlHashTunnel = { SET: 0 } as const;

/** 5.1.6.5.9 VIRTIO_NET_CTRL_NOTF_COAL commands. */
export const NetCtrlNotfCoal = { TX_SET: 0, RX_SET: 1, VQ_SET: 2, VQ_GET: 3 } as const;

/** 5.1.6.5.10 VIRTIO_NET_CTRL_STATS commands (DEVICE_STATS). */
export const NetCtrlStats = { QUERY: 0, GET: 1 } as const;
/**
 * 5.1.6.5.10 statistic types: the reply type numbers (VIRTIO_NET_STATS_TYPE_REPLY_*); the bit in
 * supported_stats_types / types_bitmap is 1 << type (VIRTIO_NET_STATS_TYPE_*).
 */
export const NetStatsType = {
  RX_BASIC: 0,
  RX_CSUM: 1,
  RX_GSO: 2,
  RX_SPEED: 3,
  TX_BASIC: 16,
  TX_CSUM: 17,
  TX_GSO: 18,
  TX_SPEED: 19,
  CVQ: 32,
} as const;
/** struct virtio_net_stats_reply_hdr: u8 type, u8 reserved, le16 vq_index, le16 reserved1, le16 size. */
export const NetStatsReplyHdr = { TYPE: 0, VQ_INDEX: 2, SIZE: 6, LENGTH: 8 } as const;
/** struct virtio_net_ctrl_queue_stats entry: le16 vq_index, le16 reserved[3], le64 types_bitmap. */
export const NET_STATS_REQUEST_ENTRY = 16;
/** le64 counters after the reply header, per type (struct virtio_net_stats_*). */
export const NET_STATS_COUNTERS: Readonly<Record<number, number>> = {
  [NetStatsType.RX_BASIC]: 6,
  [NetStatsType.RX_CSUM]: 4,
  [NetStatsType.RX_GSO]: 4,
  [NetStatsType.RX_SPEED]: 2,
  [NetStatsType.TX_BASIC]: 6,
  [NetStatsType.TX_CSUM]: 2,
  [NetStatsType.TX_GSO]: 6,
  [NetStatsType.TX_SPEED]: 2,
  [NetStatsType.CVQ]: 2,
};

/** Ethernet: header length and the smallest frame (without FCS). */
export const ETH_HEADER = 14;
/** The smallest Ethernet frame without FCS (60 bytes). */
export const ETH_MIN_FRAME = 60;
/** The largest frame without GSO (1500 MTU + header + VLAN tag). */
export const ETH_MAX_FRAME = 1518;
/** An 802.1Q tag's length and its TPID. */
export const ETH_VLAN_TAG = 4;
/** The 802.1Q TPID (0x8100). */
export const ETH_P_8021Q = 0x8100;
