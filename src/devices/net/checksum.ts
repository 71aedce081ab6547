/**
 * The Internet checksum (RFC 1071) as the offloads need it: one's complement sums of byte
 * ranges and of the IPv4/IPv6 pseudo-headers (RFC 793, RFC 768, RFC 8200 8.1), folded and
 * stored big-endian. Plain numbers: a 64 KiB frame sums to below 2^32, far inside a double.
 */

/** Adds the big-endian 16-bit words of d[start, end) to `acc` (an odd last byte padded with 0). */
export function sumWords(d: Uint8Array, start: number, end: number, acc: number): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (d[i]! << 8) | d[i + 1]!;
  if (i < end) acc += d[i]! << 8;
  return acc;
}

/** Folds a sum to 16 bits (end-around carry). */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum (inverted folded sum) of `sum`. */
export function checksumOf(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/**
 * The pseudo-header sum for a transport segment of `l4Len` bytes and protocol `proto` over the
 * IP header at `l3` (IPv4: source and destination at 12..20; IPv6: at 8..40).
 */
export function pseudoHeaderSum(d: Uint8Array, l3: number, ipv6: boolean, proto: number, l4Len: number): number {
  const addrs = ipv6 ? sumWords(d, l3 + 8, l3 + 40, 0) : sumWords(d, l3 + 12, l3 + 20, 0);
  return addrs + proto + (l4Len >>> 16) + (l4Len & 0xffff);
}

/** The big-endian (network order) u16 at `d[o]`. */
export function get16(d: Uint8Array, o: number): number {
  return (d[o]! << 8) | d[o + 1]!;
}
/** Writes `v` as a big-endian u16 at `d[o]` (low 16 bits). */
export function put16be(d: Uint8Array, o: number, v: number): void {
  d[o] = (v >>> 8) & 0xff;
  d[o + 1] = v & 0xff;
}
/** The big-endian (network order) u32 at `d[o]`, unsigned. */
export function get32(d: Uint8Array, o: number): number {
  return ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
}
/** Writes `v` as a big-endian u32 at `d[o]`. */
export function put32be(d: Uint8Array, o: number, v: number): void {
  d[o] = (v >>> 24) & 0xff;
  d[o + 1] = (v >>> 16) & 0xff;
  d[o + 2] = (v >>> 8) & 0xff;
  d[o + 3] = v & 0xff;
}

/** Recomputes the IPv4 header checksum of the header at `l3` (`ihl` bytes). */
export function fixIpv4HeaderChecksum(d: Uint8Array, l3: number, ihl: number): void {
  d[l3 + 10] = 0;
  d[l3 + 11] = 0;
  put16be(d, l3 + 10, checksumOf(sumWords(d, l3, l3 + ihl, 0)));
}

/**
 * Computes and stores the TCP or UDP checksum of the segment d[l4, end) (pseudo-header over
 * the IP header at l3). UDP stores a computed 0 as 0xffff (RFC 768: 0 means "no checksum").
 */
export function fixTransportChecksum(d: Uint8Array, l3: number, ipv6: boolean, l4: number, end: number, udp: boolean): void {
  const at = l4 + (udp ? 6 : 16);
  d[at] = 0;
  d[at + 1] = 0;
  const proto = udp ? 17 : 6;
  let c = checksumOf(sumWords(d, l4, end, pseudoHeaderSum(d, l3, ipv6, proto, end - l4)));
  if (udp && c === 0) c = 0xffff;
  put16be(d, at, c);
}
