import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetGsoType } from '../../spec/net.js';
import { checksumOf, get16, get32, pseudoHeaderSum, sumWords } from './checksum.js';
import { GsoSegmenter } from './gso-segmenter.js';
import { TcpFlag, buildIpFrame, checksumsValid, makeChecksumPartial } from './ip-frames.js';
import { NetPacket } from './packet.js';
import type { NetPort } from './port.js';
import { NetSwitch } from './switch.js';

const A = Uint8Array.of(2, 0, 0, 0, 0, 1);
const B = Uint8Array.of(2, 0, 0, 0, 0, 2);

class Collect {
  frames: Uint8Array[] = [];
  valid: boolean[] = [];
  deliver(p: NetPacket): void {
    assert.equal(p.gsoType, 0);
    assert.equal(p.needsCsum, false);
    this.frames.push(p.bytes());
    this.valid.push(p.csumValid);
  }
}

function gsoPacket(f: Uint8Array, gsoType: number, gsoSize: number): NetPacket {
  const p = new NetPacket(70000);
  p.set(f);
  const c = makeChecksumPartial(p.data.subarray(0, p.length));
  p.needsCsum = true;
  p.csumStart = c.start;
  p.csumOffset = c.offset;
  p.gsoType = gsoType;
  p.gsoSize = gsoSize;
  return p;
}

describe('GsoSegmenter: software TSO / USO / UFO', () => {
  for (const ipv6 of [false, true])
  it(`TCPv${ipv6 ? 6 : 4}: segments of gso_size with headers, sequence numbers, ${ipv6 ? 'payload length' : 'ids and header checksums'}, FIN/PSH only on the last, CWR only on the first, every checksum right`, () => {
    const f = buildIpFrame({ dst: B, src: A, ipv6, payload: 4000, seq: 0xffff_f000, tcpFlags: TcpFlag.ACK | TcpFlag.PSH | TcpFlag.FIN | TcpFlag.CWR, ipId: 0xfffe });
    const orig = f.slice();
    const p = gsoPacket(f, (ipv6 ? NetGsoType.TCPV6 : NetGsoType.TCPV4) | NetGsoType.ECN, 1448);
    const before = p.bytes();
    const c = new Collect();
    assert.equal(new GsoSegmenter().segment(p, c), true);
    assert.deepEqual(p.bytes(), before, 'the input packet is not modified');
    assert.equal(c.frames.length, 3);
    const hl = 14 + (ipv6 ? 40 : 20) + 20;
    const l4 = hl - 20;
    let payload: number[] = [];
    c.frames.forEach((s, i) => {
      assert.ok(checksumsValid(s), `segment ${i} checksums`);
      assert.equal(c.valid[i], true, 'DATA_VALID may be reported for a computed checksum');
      assert.equal(s.length, hl + (i < 2 ? 1448 : 4000 - 2 * 1448));
      assert.equal(get32(s, l4 + 4), (0xffff_f000 + i * 1448) >>> 0, 'sequence number (wrapping)');
      const flags = s[l4 + 13]!;
      assert.equal((flags & (TcpFlag.FIN | TcpFlag.PSH)) !== 0, i === 2, 'FIN and PSH on the last only');
      assert.equal((flags & TcpFlag.CWR) !== 0, i === 0, 'CWR on the first only');
      assert.equal(flags & TcpFlag.ACK, TcpFlag.ACK);
      if (!ipv6) assert.equal(get16(s, 18), (0xfffe + i) & 0xffff, 'IPv4 id per segment');
      payload = payload.concat(Array.from(s.subarray(hl)));
    });
    assert.deepEqual(Uint8Array.from(payload), orig.subarray(hl), 'payload in order');
  });

  for (const ipv6 of [false, true])
  it(`USO over IPv${ipv6 ? 6 : 4}: each segment a UDP datagram with its own length and checksum`, () => {
    const f = buildIpFrame({ dst: B, src: A, ipv6, udp: true, payload: 3000 });
    const p = gsoPacket(f, NetGsoType.UDP_L4, 1400);
    const c = new Collect();
    assert.equal(new GsoSegmenter().segment(p, c), true);
    assert.deepEqual(c.frames.map((s) => s.length), [1400, 1400, 200].map((n) => 14 + (ipv6 ? 40 : 20) + 8 + n));
    for (const s of c.frames) {
      assert.ok(checksumsValid(s));
      assert.equal(get16(s, 14 + (ipv6 ? 40 : 20) + 4), s.length - 14 - (ipv6 ? 40 : 20));
    }
  });

  for (const ipv6 of [false, true])
  it(`UFO over IPv${ipv6 ? 6 : 4}: IP fragments of gso_size rounded to 8 that reassemble to the datagram with a right UDP checksum`, () => {
    const f = buildIpFrame({ dst: B, src: A, ipv6, udp: true, payload: 3000 });
    const orig = f.slice();
    const p = gsoPacket(f, NetGsoType.UDP, 1477); // 1472 per fragment
    const c = new Collect();
    const seg = new GsoSegmenter();
    assert.equal(seg.segment(p, c), true);
    assert.equal(c.frames.length, 3);
    const l3 = 14;
    const l4 = ipv6 ? 54 : 34;
    const parts: Uint8Array[] = [];
    c.frames.forEach((s, i) => {
      const last = i === 2;
      if (ipv6) {
        assert.equal(s[l3 + 6], 44, 'a Fragment header follows the IPv6 header');
        assert.equal(s[l4], 17);
        const fo = get16(s, l4 + 2);
        assert.equal(fo & ~7, i * 1472);
        assert.equal(fo & 1, last ? 0 : 1, 'M flag');
        assert.equal(get32(s, l4 + 4), get32(c.frames[0]!, l4 + 4), 'one identification');
        assert.equal(get16(s, l3 + 4), s.length - l3 - 40);
        parts.push(s.subarray(l4 + 8));
      } else {
        const fo = get16(s, l3 + 6);
        assert.equal((fo & 0x1fff) * 8, i * 1472);
        assert.equal((fo & 0x2000) !== 0, !last, 'MF');
        assert.equal(fo & 0x4000, 0, 'DF cleared');
        assert.equal(get16(s, l3 + 4), 0x1234, 'one id');
        assert.equal(checksumOf(sumWords(s, l3, l3 + 20, 0)), 0, 'IPv4 header checksum');
        assert.equal(get16(s, l3 + 2), s.length - l3);
        parts.push(s.subarray(l4));
      }
    });
    const datagram = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
    let at = 0;
    for (const x of parts) {
      datagram.set(x, at);
      at += x.length;
    }
    assert.equal(datagram.length, 3008);
    assert.deepEqual(datagram.subarray(8), orig.subarray(l4 + 8));
    assert.equal(checksumOf(sumWords(datagram, 0, datagram.length, pseudoHeaderSum(orig, l3, ipv6, 17, datagram.length))), 0, 'UDP checksum over the reassembled datagram');
  });

  it('refuses (false, nothing delivered) gso_size 0, a type the frame is not, tunnel bits, ECN with UDP, an unparsable frame', () => {
    const seg = new GsoSegmenter();
    const c = new Collect();
    const tcp4 = buildIpFrame({ dst: B, src: A, payload: 3000 });
    assert.equal(seg.segment(gsoPacket(tcp4.slice(), NetGsoType.TCPV4, 0), c), false);
    assert.equal(seg.segment(gsoPacket(tcp4.slice(), NetGsoType.TCPV6, 1000), c), false);
    assert.equal(seg.segment(gsoPacket(tcp4.slice(), NetGsoType.UDP_L4, 1000), c), false);
    assert.equal(seg.segment(gsoPacket(tcp4.slice(), NetGsoType.TCPV4 | NetGsoType.UDP_TUNNEL_IPV4, 1000), c), false);
    const udp = buildIpFrame({ dst: B, src: A, udp: true, payload: 3000 });
    assert.equal(seg.segment(gsoPacket(udp, NetGsoType.UDP_L4 | NetGsoType.ECN, 1000), c), false);
    const p = gsoPacket(tcp4.slice(), NetGsoType.TCPV4, 1000);
    p.data[23] = 99; // not TCP or UDP
    assert.equal(seg.segment(p, c), false);
    assert.equal(c.frames.length, 0);
    assert.equal(seg.refused, 6);
  });

  it('the switch delivers a GSO packet whole to a port with takesGso and as segments to others (the port contract)', () => {
    const sw = new NetSwitch();
    const whole: NetPacket[] = [];
    const gsoPort: NetPort = { name: 'gso', takesGso: true, deliver: (p) => void whole.push(p) };
    const plain = new Collect();
    const src = sw.attach({ name: 'src', deliver() {} });
    sw.attach(gsoPort);
    sw.attach({ name: 'plain', deliver: (p) => plain.deliver(p) });
    const f = buildIpFrame({ dst: Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), src: A, payload: 5000 });
    src.send(gsoPacket(f, NetGsoType.TCPV4, 1000));
    assert.equal(whole.length, 1);
    assert.equal(plain.frames.length, 5);
    assert.ok(plain.frames.every((s) => checksumsValid(s)));
    assert.deepEqual(sw.segmentation, { packets: 1, segments: 5, refused: 0 });
  });
});
