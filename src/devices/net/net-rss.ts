/**
 * Receive-side scaling and hash reporting (5.1.6.4.3 hash calculation, 5.1.6.5.7 RSS,
 * 5.1.6.5.6.4 hash configuration): the Toeplitz hash over the fields the enabled hash types
 * select, the indirection table that maps it to a receive queue, and the parsing of
 * VIRTIO_NET_CTRL_MQ_RSS_CONFIG / _HASH_CONFIG with every check an untrusted driver needs
 * (sizes exactly as announced, a power-of-two table within rss_max_indirection_table_length,
 * queues within max_virtqueue_pairs, hash types the device supports, a key within
 * rss_max_key_size): anything else is VIRTIO_NET_ERR and changes nothing.
 * Per packet: a reused parse and a reused 36-byte input buffer, no allocation.
 */
import { FrameLayout, IPPROTO_TCP, IPPROTO_UDP } from './frame-layout.js';
import { NET_SUPPORTED_TUNNEL_TYPES, findInnerHeader } from './net-hash-tunnel.js';

/** 5.1.6.4.3.1 VIRTIO_NET_HASH_TYPE_* bits. */
export const NetHashType = {
  IPV4: 1 << 0,
  TCPV4: 1 << 1,
  UDPV4: 1 << 2,
  IPV6: 1 << 3,
  TCPV6: 1 << 4,
  UDPV6: 1 << 5,
  IP_EX: 1 << 6,
  TCP_EX: 1 << 7,
  UDP_EX: 1 << 8,
} as const;
/** VIRTIO_NET_HASH_REPORT_* values (5.1.6.4.4). */
export const NetHashReport = { NONE: 0, IPV4: 1, TCPV4: 2, UDPV4: 3, IPV6: 4, TCPV6: 5, UDPV6: 6, IPV6_EX: 7, TCPV6_EX: 8, UDPV6_EX: 9 } as const;

/**
 * The hash types this device computes: IPv4 and IPv6 with and without TCP/UDP ports. The _EX
 * types (home address option, type 2 routing header) are not offered; an IPv6 packet with
 * extension headers is hashed as one without (the spec's rule when _EX types are off).
 */
export const NET_SUPPORTED_HASH_TYPES = NetHashType.IPV4 | NetHashType.TCPV4 | NetHashType.UDPV4 | NetHashType.IPV6 | NetHashType.TCPV6 | NetHashType.UDPV6;
/** rss_max_key_size (device/net/7: at least 40) and rss_max_indirection_table_length (device/net/8: at least 128). */
export const NET_RSS_MAX_KEY_SIZE = 40;
export const NET_RSS_MAX_TABLE = 128;

/**
 * The Toeplitz hash of input[0, n) under key[0, keyLen) (key bits beyond keyLen are 0): for
 * every set input bit i, the 32 key bits starting at bit i are XORed into the result.
 */
export function toeplitzHash(key: Uint8Array, keyLen: number, input: Uint8Array, n: number): number {
  let result = 0;
  // window: key bits [i, i + 32); next key byte fed in 8 bits at a time.
  let window = ((keyByte(key, keyLen, 0) << 24) | (keyByte(key, keyLen, 1) << 16) | (keyByte(key, keyLen, 2) << 8) | keyByte(key, keyLen, 3)) >>> 0;
  for (let i = 0; i < n; i++) {
    const b = input[i]!;
    const next = keyByte(key, keyLen, i + 4);
    for (let bit = 7; bit >= 0; bit--) {
      if ((b >>> bit) & 1) result ^= window;
      window = ((window << 1) | ((next >>> bit) & 1)) >>> 0;
    }
  }
  return result >>> 0;
}

function keyByte(key: Uint8Array, keyLen: number, i: number): number {
  return i < keyLen ? key[i]! : 0;
}

/** The RSS and hash-report state of one virtio-net device (see the file comment; 5.1.6.5.7, 5.1.6.4.3). */
export class NetRss {
  /** Enabled hash types (0 after reset: no hash, report NONE). */
  hashTypes = 0;
  /** The Toeplitz hash key the driver set; bytes [0, keyLength) are in use, the rest count as 0. */
  readonly key = new Uint8Array(NET_RSS_MAX_KEY_SIZE);
  /** Bytes of `key` set by the last RSS_CONFIG / HASH_CONFIG (0 after reset). */
  keyLength = 0;
  /** Whether RSS_CONFIG steering is on (RSS negotiated and a configuration accepted). */
  steering = false;
  /** The indirection table (receive queue numbers, 0-based pairs), its mask, the unclassified queue. */
  readonly table = new Uint16Array(NET_RSS_MAX_TABLE);
  /** Indirection table length - 1 (a power of two minus one): the hash's low bits index the table. */
  tableMask = 0;
  /** unclassified_queue: the receive queue of frames no enabled hash type applies to (5.1.6.5.7.1). */
  unclassified = 0;
  /** The hash and report type of the last `hash` call. */
  hashValue = 0;
  /** VIRTIO_NET_HASH_REPORT_* of the last `hash` call (NONE when no enabled type applied). */
  hashReport: number = NetHashReport.NONE;
  /**
   * HASH_TUNNEL: enabled_tunnel_types (VIRTIO_NET_CTRL_HASH_TUNNEL_SET; 0 initially and after
   * reset, device/net/63): encapsulations whose inner header is hashed (net-hash-tunnel.ts).
   */
  tunnelTypes = 0;
  private readonly layout = new FrameLayout();
  private readonly innerLayout = new FrameLayout();
  private readonly input = new Uint8Array(36);

  /** device/net/100 and 5.1.6.5.6.4: nothing enabled after reset. */
  reset(): void {
    this.hashTypes = 0;
    this.keyLength = 0;
    this.steering = false;
    this.tableMask = 0;
    this.unclassified = 0;
    this.hashValue = 0;
    this.hashReport = NetHashReport.NONE;
    this.tunnelTypes = 0;
  }

  /**
   * Computes the hash of frame d[0, len) per the enabled types (5.1.6.4.3.2 to .4) into
   * hashValue / hashReport; false (report NONE) when no enabled type applies.
   */
  hash(d: Uint8Array, len: number): boolean {
    this.hashValue = 0;
    this.hashReport = NetHashReport.NONE;
    const t = this.hashTypes;
    let l = this.layout;
    if (t === 0 || !l.parseNetwork(d, len)) return false;
    // device/net/61: the inner header of an enabled encapsulation type, else the outer one.
    if (this.tunnelTypes !== 0 && findInnerHeader(d, len, l, this.tunnelTypes, this.innerLayout)) l = this.innerLayout;
    const inp = this.input;
    const addrAt = l.ipv6 ? l.l3 + 8 : l.l3 + 12;
    const addrLen = l.ipv6 ? 32 : 8;
    // Ports exist when the transport header is there (not in a later IPv4 fragment).
    const ports = !l.fragment && len >= l.l4 + 4;
    let report: number;
    let n = addrLen;
    if (!l.ipv6) {
      if (ports && l.proto === IPPROTO_TCP && (t & NetHashType.TCPV4) !== 0) report = NetHashReport.TCPV4;
      else if (ports && l.proto === IPPROTO_UDP && (t & NetHashType.UDPV4) !== 0) report = NetHashReport.UDPV4;
      else if ((t & NetHashType.IPV4) !== 0) report = NetHashReport.IPV4;
      else return false;
    } else {
      if (ports && l.proto === IPPROTO_TCP && (t & NetHashType.TCPV6) !== 0) report = NetHashReport.TCPV6;
      else if (ports && l.proto === IPPROTO_UDP && (t & NetHashType.UDPV6) !== 0) report = NetHashReport.UDPV6;
      else if ((t & NetHashType.IPV6) !== 0) report = NetHashReport.IPV6;
      else return false;
    }
    inp.set(d.subarray(addrAt, addrAt + addrLen), 0);
    if (report !== NetHashReport.IPV4 && report !== NetHashReport.IPV6) {
      inp.set(d.subarray(l.l4, l.l4 + 4), addrLen); // source port, destination port
      n += 4;
    }
    this.hashValue = toeplitzHash(this.key, this.keyLength, inp, n);
    this.hashReport = report;
    return true;
  }

  /**
   * 5.1.6.5.7.2 (device/net/97): the receive queue number (pair) for a frame: the indirection
   * table entry of its hash, or the unclassified queue when no hash was calculated.
   */
  steer(d: Uint8Array, len: number): number {
    return this.hash(d, len) ? this.table[this.hashValue & this.tableMask]! : this.unclassified;
  }

  /**
   * VIRTIO_NET_CTRL_MQ_RSS_CONFIG, struct virtio_net_rss_config at cmd[at, end): le32 hash_types,
   * le16 indirection_table_mask, le16 unclassified_queue, le16 indirection_table[mask + 1],
   * le16 max_tx_vq, u8 hash_key_length, u8 hash_key_data[]. Returns max_tx_vq (the transmit
   * pairs the driver will use) or -1 for VIRTIO_NET_ERR.
   */
  setRssConfig(cmd: Uint8Array, at: number, end: number, le: boolean, maxPairs: number): number {
    if (end - at < 4 + 2 + 2) return -1;
    const types = u32(cmd, at, le);
    const mask = u16(cmd, at + 4, le);
    const entries = mask + 1;
    // driver/net/80, /81: a power of two, within rss_max_indirection_table_length.
    if ((entries & mask) !== 0 || entries > NET_RSS_MAX_TABLE) return -1;
    const tableAt = at + 8;
    const tail = tableAt + 2 * entries;
    if (tail + 3 > end) return -1;
    const keyLen = cmd[tail + 2]!;
    if (tail + 3 + keyLen !== end || keyLen > NET_RSS_MAX_KEY_SIZE) return -1;
    if ((types & ~NET_SUPPORTED_HASH_TYPES) !== 0) return -1; // driver/net/82
    // driver/net/79: only receive queues that exist (rss_rq_id: bits 1..16 of the queue index).
    const unclassified = u16(cmd, at + 6, le);
    if (unclassified >= maxPairs) return -1;
    for (let i = 0; i < entries; i++) if (u16(cmd, tableAt + 2 * i, le) >= maxPairs) return -1;
    const maxTx = u16(cmd, tail, le);
    if (maxTx < 1 || maxTx > maxPairs) return -1;
    this.hashTypes = types;
    this.tableMask = mask;
    this.unclassified = unclassified;
    for (let i = 0; i < entries; i++) this.table[i] = u16(cmd, tableAt + 2 * i, le);
    this.setKey(cmd, tail + 3, keyLen);
    this.steering = true;
    return maxTx;
  }

  /**
   * VIRTIO_NET_CTRL_MQ_HASH_CONFIG, struct virtio_net_hash_config at cmd[at, end): le32
   * hash_types, le16 reserved[4] (zeroes, device/net/96), u8 hash_key_length, key. Hash
   * reporting only; steering is unchanged. False for VIRTIO_NET_ERR.
   */
  setHashConfig(cmd: Uint8Array, at: number, end: number, le: boolean): boolean {
    if (end - at < 4 + 8 + 1) return false;
    const types = u32(cmd, at, le);
    for (let i = at + 4; i < at + 12; i++) if (cmd[i] !== 0) return false;
    const keyLen = cmd[at + 12]!;
    if (at + 13 + keyLen !== end || keyLen > NET_RSS_MAX_KEY_SIZE) return false;
    if ((types & ~NET_SUPPORTED_HASH_TYPES) !== 0) return false;
    this.hashTypes = types;
    this.setKey(cmd, at + 13, keyLen);
    return true;
  }

  /**
   * VIRTIO_NET_CTRL_HASH_TUNNEL_SET, struct virtnet_hash_tunnel at cmd[at, end): le32
   * enabled_tunnel_types, exactly. A bit outside supported_tunnel_types is VIRTIO_NET_ERR
   * (device/net/62); 0 turns inner hashing off (device/net/63). False for VIRTIO_NET_ERR.
   */
  setHashTunnel(cmd: Uint8Array, at: number, end: number, le: boolean): boolean {
    if (end - at !== 4) return false;
    const types = u32(cmd, at, le);
    if ((types & ~NET_SUPPORTED_TUNNEL_TYPES) !== 0) return false;
    this.tunnelTypes = types;
    return true;
  }

  private setKey(src: Uint8Array, at: number, n: number): void {
    this.key.fill(0);
    this.key.set(src.subarray(at, at + n));
    this.keyLength = n;
  }
}

function u16(b: Uint8Array, o: number, le: boolean): number {
  return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}
function u32(b: Uint8Array, o: number, le: boolean): number {
  return le ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0 : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
