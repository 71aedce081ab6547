/**
 * Building and reading the few Ethernet frames the net tests and benchmarks exchange with real
 * network stacks (ARP, ICMP echo over IPv4). Not on any data path: allocation is fine here.
 */
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;

/** "10.0.0.1" -> 4 bytes. */
export function ipv4(s: string): Uint8Array {
  return Uint8Array.from(s.split('.').map(Number));
}

/** The Internet checksum (RFC 1071) of b[start, end). */
export function inetChecksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: number): Uint8Array {
  const f = new Uint8Array(Math.max(60, 14 + payload));
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  return f;
}

/** An ARP request (broadcast): who has `targetIp`? tell `senderIp` at `senderMac`. */
export function arpRequest(senderMac: Uint8Array, senderIp: Uint8Array, targetIp: Uint8Array): Uint8Array {
  const f = ethernet(new Uint8Array(6).fill(0xff), senderMac, ETHERTYPE_ARP, 28);
  f.set([0, 1, 8, 0, 6, 4, 0, 1], 14); // Ethernet, IPv4, request
  f.set(senderMac, 22);
  f.set(senderIp, 28);
  f.set(targetIp, 38);
  return f;
}

/** The sender MAC of an ARP reply for `ip`, or null when `f` is not one. */
export function arpReplyFor(f: Uint8Array, ip: Uint8Array): Uint8Array | null {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x06 || f[20] !== 0 || f[21] !== 2) return null;
  for (let i = 0; i < 4; i++) if (f[28 + i] !== ip[i]) return null;
  return f.slice(22, 28);
}

/** An ICMP echo request over IPv4 with `payload` bytes of pattern. */
export function icmpEcho(dstMac: Uint8Array, srcMac: Uint8Array, srcIp: Uint8Array, dstIp: Uint8Array, id: number, seq: number, payload = 32): Uint8Array {
  const ipLen = 20 + 8 + payload;
  const f = ethernet(dstMac, srcMac, ETHERTYPE_IPV4, ipLen);
  const ip = 14;
  f.set([0x45, 0, ipLen >> 8, ipLen & 0xff, 0, 0, 0x40, 0, 64, 1, 0, 0], ip);
  f.set(srcIp, ip + 12);
  f.set(dstIp, ip + 16);
  const c = inetChecksum(f, ip, ip + 20);
  f[ip + 10] = c >> 8;
  f[ip + 11] = c & 0xff;
  const icmp = ip + 20;
  f.set([8, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff], icmp);
  for (let i = 0; i < payload; i++) f[icmp + 8 + i] = (i * 7 + seq) & 0xff;
  const ic = inetChecksum(f, icmp, icmp + 8 + payload);
  f[icmp + 2] = ic >> 8;
  f[icmp + 3] = ic & 0xff;
  return f;
}

/** Whether `f` is an ICMP echo reply with this id and seq whose checksums hold. */
export function isIcmpEchoReply(f: Uint8Array, id: number, seq: number): boolean {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 1) return false;
  const ipLen = (f[16]! << 8) | f[17]!;
  const ihl = (f[14]! & 0xf) * 4;
  const icmp = 14 + ihl;
  if (14 + ipLen > f.length || inetChecksum(f, 14, icmp) !== 0 || inetChecksum(f, icmp, 14 + ipLen) !== 0) return false;
  return f[icmp] === 0 && ((f[icmp + 4]! << 8) | f[icmp + 5]!) === id && ((f[icmp + 6]! << 8) | f[icmp + 7]!) === seq;
}

/**
 * A UDP datagram over IPv4 whose checksum is left partial, as a driver using VIRTIO_NET_F_CSUM
 * sends it (5.1.6.2): the checksum field holds only the folded pseudo-header sum, to be completed
 * from csumStart (the UDP header) and stored at csumStart + csumOffset.
 */
export function udpPartialChecksum(
  dstMac: Uint8Array,
  srcMac: Uint8Array,
  srcIp: Uint8Array,
  dstIp: Uint8Array,
  srcPort: number,
  dstPort: number,
  payload: number,
): { frame: Uint8Array; csumStart: number; csumOffset: number } {
  const udpLen = 8 + payload;
  const ipLen = 20 + udpLen;
  const f = ethernet(dstMac, srcMac, ETHERTYPE_IPV4, ipLen);
  const ip = 14;
  f.set([0x45, 0, ipLen >> 8, ipLen & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0], ip);
  f.set(srcIp, ip + 12);
  f.set(dstIp, ip + 16);
  const c = inetChecksum(f, ip, ip + 20);
  f[ip + 10] = c >> 8;
  f[ip + 11] = c & 0xff;
  const udp = ip + 20;
  f.set([srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff, udpLen >> 8, udpLen & 0xff], udp);
  for (let i = 0; i < payload; i++) f[udp + 8 + i] = (i * 5 + 1) & 0xff;
  // Pseudo-header: addresses, protocol, UDP length; folded, not inverted.
  let sum = 17 + udpLen;
  for (let i = 0; i < 8; i += 2) sum += (f[ip + 12 + i]! << 8) | f[ip + 13 + i]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f[udp + 6] = sum >> 8;
  f[udp + 7] = sum & 0xff;
  return { frame: f, csumStart: udp, csumOffset: 6 };
}

/** Whether `f` is an ICMP destination-unreachable (port) about a UDP datagram to `port`. */
export function isIcmpPortUnreachable(f: Uint8Array, port: number): boolean {
  if (f.length < 14 + 20 + 8 + 28 || f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 1) return false;
  const icmp = 14 + (f[14]! & 0xf) * 4;
  const inner = icmp + 8;
  const innerUdp = inner + (f[inner]! & 0xf) * 4;
  return f[icmp] === 3 && f[icmp + 1] === 3 && f[inner + 9] === 17 && ((f[innerUdp + 2]! << 8) | f[innerUdp + 3]!) === port;
}
