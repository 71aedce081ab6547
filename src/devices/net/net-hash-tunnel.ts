/**
 * VIRTIO_NET_F_HASH_TUNNEL (5.1.6.4.3 "Inner Header Hash"): finding the inner packet of an
 * encapsulated frame so RSS and hash reporting hash the inner flow when the driver enabled that
 * encapsulation type with VIRTIO_NET_CTRL_HASH_TUNNEL_SET. One level of encapsulation (the
 * spec's "only a single level ... is currently supported"). The outer header decides the type:
 *  - GRE (IP protocol 47; RFC 2784 header, RFC 2890 key and sequence number): over IPv4 without
 *    key or sequence number GRE_2784, with either GRE_2890; over IPv6 GRE_7676 (RFC 7676). The
 *    GRE header has version 0 and no routing bit; its protocol type is IPv4, IPv6 or
 *    Transparent Ethernet Bridging (0x6558, an inner Ethernet frame);
 *  - NVGRE (RFC 7637): GRE with the key bit only and protocol 0x6558 (matches NVGRE as well as
 *    its GRE type);
 *  - GRE-in-UDP (RFC 8086): UDP destination port 4754, a GRE header after the UDP header;
 *  - VXLAN (RFC 7348): UDP destination port 4789, an 8-byte header with the I flag, inner
 *    Ethernet;
 *  - VXLAN-GPE: UDP destination port 4790, 8-byte header, next protocol IPv4 (1), IPv6 (2) or
 *    Ethernet (3) (Ethernet when the P flag is clear);
 *  - GENEVE (RFC 8926): UDP destination port 6081, version 0, options of opt_len * 4 bytes, then
 *    the protocol type (Ethernet, IPv4 or IPv6);
 *  - IPIP: IP protocol 4 (IPv4 inside) or 41 (IPv6 inside) (RFC 2003, RFC 2473).
 * Anything else, or an inner header that does not parse, is not a match: the outer header is
 * hashed (device/net/61). Parsing walks a fixed number of headers: bounded work per frame.
 */
import { get16 } from './checksum.js';
import { ETH_P_IPV4, ETH_P_IPV6, type FrameLayout, IPPROTO_UDP } from './frame-layout.js';

/** VIRTIO_NET_HASH_TUNNEL_TYPE_* bits (enabled_tunnel_types, supported_tunnel_types). */
export const NetHashTunnelType = {
  GRE_2784: 1 << 0,
  GRE_2890: 1 << 1,
  GRE_7676: 1 << 2,
  GRE_UDP: 1 << 3,
  VXLAN: 1 << 4,
  VXLAN_GPE: 1 << 5,
  GENEVE: 1 << 6,
  IPIP: 1 << 7,
  NVGRE: 1 << 8,
} as const;
/** supported_tunnel_types: every type the spec defines. */
export const NET_SUPPORTED_TUNNEL_TYPES = 0x1ff;

export const IPPROTO_IPIP = 4;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_GRE = 47;
export const UDP_PORT_GRE = 4754;
export const UDP_PORT_VXLAN = 4789;
export const UDP_PORT_VXLAN_GPE = 4790;
export const UDP_PORT_GENEVE = 6081;
export const ETH_P_TEB = 0x6558;

const GRE_C = 0x8000;
const GRE_R = 0x4000;
const GRE_K = 0x2000;
const GRE_S = 0x1000;
/** Reserved0 bits besides C, K, S (and the routing bit), plus the version: zero in RFC 2784/2890 GRE. */
const GRE_MUST_BE_ZERO = 0x0fff;
const UDP_HEADER = 8;
const VXLAN_I = 0x08;
const GPE_P = 0x04;

/**
 * Whether the frame parsed in `outer` (parseNetwork done) is an encapsulation whose type is in
 * `enabled`; if so `inner` holds the inner packet's network layout (parseIpAt / parseNetworkAt
 * done) and true is returned.
 */
export function findInnerHeader(d: Uint8Array, len: number, outer: FrameLayout, enabled: number, inner: FrameLayout): boolean {
  if (enabled === 0 || outer.fragment) return false;
  const l4 = outer.l4;
  const proto = outer.proto;
  if (proto === IPPROTO_IPIP || proto === IPPROTO_IPV6) {
    return (enabled & NetHashTunnelType.IPIP) !== 0 && inner.parseIpAt(d, len, l4, proto === IPPROTO_IPIP ? ETH_P_IPV4 : ETH_P_IPV6);
  }
  if (proto === IPPROTO_GRE) return gre(d, len, l4, outer.ipv6 ? NetHashTunnelType.GRE_7676 : 0, enabled, inner, false);
  if (proto !== IPPROTO_UDP || len < l4 + UDP_HEADER) return false;
  const port = get16(d, l4 + 2);
  const u = l4 + UDP_HEADER;
  if (port === UDP_PORT_GRE) return gre(d, len, u, NetHashTunnelType.GRE_UDP, enabled, inner, true);
  if (port === UDP_PORT_VXLAN) {
    if ((enabled & NetHashTunnelType.VXLAN) === 0 || len < u + 8 || (d[u]! & VXLAN_I) === 0) return false;
    return inner.parseNetworkAt(d, len, u + 8);
  }
  if (port === UDP_PORT_VXLAN_GPE) {
    if ((enabled & NetHashTunnelType.VXLAN_GPE) === 0 || len < u + 8) return false;
    const next = (d[u]! & GPE_P) !== 0 ? d[u + 3]! : 3;
    return innerOf(d, len, u + 8, next === 1 ? ETH_P_IPV4 : next === 2 ? ETH_P_IPV6 : next === 3 ? ETH_P_TEB : 0, inner);
  }
  if (port === UDP_PORT_GENEVE) {
    if ((enabled & NetHashTunnelType.GENEVE) === 0 || len < u + 8 || d[u]! >>> 6 !== 0) return false;
    return innerOf(d, len, u + 8 + (d[u]! & 0x3f) * 4, get16(d, u + 2), inner);
  }
  return false;
}

/** The inner packet at d[at] of protocol `type` (IPv4, IPv6, or 0x6558 for an Ethernet frame). */
function innerOf(d: Uint8Array, len: number, at: number, type: number, inner: FrameLayout): boolean {
  if (type === ETH_P_TEB) return inner.parseNetworkAt(d, len, at);
  if (type === ETH_P_IPV4 || type === ETH_P_IPV6) return inner.parseIpAt(d, len, at, type);
  return false;
}

/**
 * A GRE header at d[g]: its types (`base` for GRE over IPv6 or in UDP, else 2784 or 2890 by
 * the key and sequence bits; NVGRE too when it has that form), matched against `enabled`.
 */
function gre(d: Uint8Array, len: number, g: number, base: number, enabled: number, inner: FrameLayout, inUdp: boolean): boolean {
  if (len < g + 4) return false;
  const flags = get16(d, g);
  if ((flags & (GRE_R | GRE_MUST_BE_ZERO)) !== 0) return false;
  const type = get16(d, g + 2);
  let types = base !== 0 ? base : (flags & (GRE_K | GRE_S)) !== 0 ? NetHashTunnelType.GRE_2890 : NetHashTunnelType.GRE_2784;
  if (!inUdp && (flags & (GRE_C | GRE_K | GRE_S)) === GRE_K && type === ETH_P_TEB) types |= NetHashTunnelType.NVGRE;
  if ((types & enabled) === 0) return false;
  const at = g + 4 + ((flags & GRE_C) !== 0 ? 4 : 0) + ((flags & GRE_K) !== 0 ? 4 : 0) + ((flags & GRE_S) !== 0 ? 4 : 0);
  return innerOf(d, len, at, type, inner);
}
