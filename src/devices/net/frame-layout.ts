/**
 * Where the headers of an Ethernet frame are: the network header (IPv4 or IPv6 behind an
 * optional 802.1Q tag), the transport header (TCP or UDP) and the end of the headers. The
 * offloads work from this parse and never from the sender's hdr_len or csum_start
 * (device/net/21: the device MUST NOT rely on hdr_len being correct). One reusable object per
 * user: parsing allocates nothing.
 */
import { ETH_HEADER, ETH_P_8021Q, ETH_VLAN_TAG } from '../../spec/net.js';
import { get16 } from './checksum.js';

/** EtherType of IPv4. */
export const ETH_P_IPV4 = 0x0800;
/** EtherType of IPv6. */
export const ETH_P_IPV6 = 0x86dd;
/** IP protocol number of TCP (IPv4 protocol, IPv6 next header). */
export const IPPROTO_TCP = 6;
/** IP protocol number of UDP. */
export const IPPROTO_UDP = 17;
const IPV6_HEADER = 40;
const UDP_HEADER = 8;
/** IPv6 extension headers walked over (hop-by-hop, routing, destination options); others end the walk. */
const IPV6_EXT_HOP = 0;
const IPV6_EXT_ROUTING = 43;
const IPV6_EXT_DEST = 60;
/** Extension headers walked at most (a bound on work per untrusted frame). */
const IPV6_MAX_EXT = 8;

/**
 * Where the headers of an Ethernet frame lie (network and transport offsets and lengths), as
 * checksum offload and segmentation need them; one instance is reused per frame.
 */
export class FrameLayout {
  /** Offset of the network header. */
  l3 = 0;
  /** The network header is IPv6 (else IPv4). */
  ipv6 = false;
  /** IPv4 header length (ihl * 4), or 40 for IPv6. */
  l3Len = 0;
  /** Offset of the transport header; its protocol (6 TCP, 17 UDP). */
  l4 = 0;
  /** IP protocol of the transport header: 6 TCP, 17 UDP, or another. */
  proto = 0;
  /** Offset of the IPv6 header's last "next header" byte before l4 (to insert a fragment header). */
  ipv6NextAt = 0;
  /** Transport header length; `hdrs` = l4 + l4Len, the length of all headers. */
  l4Len = 0;
  /** Length of all headers (Ethernet through transport): the payload starts here. */
  hdrs = 0;

  /** IPv6 with extension headers before the transport header. */
  ipv6Ext = false;
  /** An IPv4 fragment (MF set or a non-zero fragment offset): its transport header is not worked on. */
  fragment = false;

  /**
   * Parses the network header of d[0, len): true for IPv4 or IPv6 (behind an optional 802.1Q
   * tag) whose header lies within the frame; sets l3, ipv6, l3Len, l4 (where the transport
   * header would start), proto, ipv6Ext and fragment.
   */
  parseNetwork(d: Uint8Array, len: number): boolean {
    return this.parseNetworkAt(d, len, 0);
  }

  /** parseNetwork for an Ethernet frame starting at d[eth] (an encapsulated one, say). */
  parseNetworkAt(d: Uint8Array, len: number, eth: number): boolean {
    let l3 = eth + ETH_HEADER;
    if (len < l3) return false;
    let type = get16(d, l3 - 2);
    if (type === ETH_P_8021Q) {
      l3 += ETH_VLAN_TAG;
      if (len < l3) return false;
      type = get16(d, l3 - 2);
    }
    return this.parseIpAt(d, len, l3, type);
  }

  /** The network header of EtherType `type` (IPv4 or IPv6) at d[l3], as parseNetwork describes. */
  parseIpAt(d: Uint8Array, len: number, l3: number, type: number): boolean {
    this.l3 = l3;
    if (type === ETH_P_IPV4) {
      if (len < l3 + 20 || d[l3]! >>> 4 !== 4) return false;
      const ihl = (d[l3]! & 0xf) * 4;
      if (ihl < 20 || len < l3 + ihl) return false;
      this.ipv6 = false;
      this.ipv6Ext = false;
      this.fragment = (get16(d, l3 + 6) & 0x3fff) !== 0;
      this.l3Len = ihl;
      this.l4 = l3 + ihl;
      this.proto = d[l3 + 9]!;
      return true;
    }
    if (type === ETH_P_IPV6) {
      if (len < l3 + IPV6_HEADER || d[l3]! >>> 4 !== 6) return false;
      this.ipv6 = true;
      this.fragment = false;
      this.l3Len = IPV6_HEADER;
      let nextAt = l3 + 6;
      let proto = d[nextAt]!;
      let l4 = l3 + IPV6_HEADER;
      for (let k = 0; k < IPV6_MAX_EXT && (proto === IPV6_EXT_HOP || proto === IPV6_EXT_ROUTING || proto === IPV6_EXT_DEST); k++) {
        if (len < l4 + 8) return false;
        nextAt = l4;
        proto = d[l4]!;
        l4 += (d[l4 + 1]! + 1) * 8;
      }
      this.ipv6NextAt = nextAt;
      this.ipv6Ext = l4 !== l3 + IPV6_HEADER;
      this.l4 = l4;
      this.proto = proto;
      return true;
    }
    return false;
  }

  /**
   * Parses the frame d[0, len): true when it is IPv4 or IPv6 carrying TCP or UDP whose headers
   * all lie within the frame, and (IPv4) is not a fragment.
   */
  parse(d: Uint8Array, len: number): boolean {
    // A fragment (MF set or a nonzero offset) has no transport header to work on.
    if (!this.parseNetwork(d, len) || this.fragment) return false;
    const l4 = this.l4;
    const proto = this.proto;
    let l4Len: number;
    if (proto === IPPROTO_TCP) {
      if (len < l4 + 20) return false;
      l4Len = (d[l4 + 12]! >>> 4) * 4;
      if (l4Len < 20) return false;
    } else if (proto === IPPROTO_UDP) {
      l4Len = UDP_HEADER;
    } else {
      return false;
    }
    if (len < l4 + l4Len) return false;
    this.l4 = l4;
    this.proto = proto;
    this.l4Len = l4Len;
    this.hdrs = l4 + l4Len;
    return true;
  }
}
