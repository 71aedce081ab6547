import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NET_RSS_MAX_TABLE, NetHashReport, NetHashType, NetRss, toeplitzHash } from './net-rss.js';
import { buildIpFrame } from './ip-frames.js';

/** The key and vectors of Microsoft's "Verifying the RSS Hash Calculation". */
const MS_KEY = Uint8Array.from(Buffer.from('6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa', 'hex'));
const v4 = (s: string): number[] => s.split('.').map(Number);

describe('RSS: the Toeplitz hash (5.1.6.4.3)', () => {
  it('matches the published IPv4 and IPv6 verification vectors, with and without ports', () => {
    // source 66.9.149.187:2794, destination 161.142.100.80:1766
    const ip = Uint8Array.from([...v4('66.9.149.187'), ...v4('161.142.100.80')]);
    assert.equal(toeplitzHash(MS_KEY, 40, ip, 8), 0x323e8fc2);
    const tcp = Uint8Array.from([...ip, 2794 >> 8, 2794 & 0xff, 1766 >> 8, 1766 & 0xff]);
    assert.equal(toeplitzHash(MS_KEY, 40, tcp, 12), 0x51ccc178);
    // source 3ffe:2501:200:1fff::7 :2794, destination 3ffe:2501:200:3::1 :1766
    const src6 = Uint8Array.from(Buffer.from('3ffe250102001fff0000000000000007', 'hex'));
    const dst6 = Uint8Array.from(Buffer.from('3ffe2501020000030000000000000001', 'hex'));
    const ip6 = Uint8Array.from([...src6, ...dst6]);
    assert.equal(toeplitzHash(MS_KEY, 40, ip6, 32), 0x2cc18cd5);
    assert.equal(toeplitzHash(MS_KEY, 40, Uint8Array.from([...ip6, 0x0a, 0xea, 0x06, 0xe6]), 36), 0x40207d3d);
  });

  it('hash types select the fields and the report type; nothing enabled reports NONE', () => {
    const r = new NetRss();
    const a = Uint8Array.of(2, 0, 0, 0, 0, 1);
    const tcp = buildIpFrame({ dst: a, src: a, payload: 10 });
    assert.equal(r.hash(tcp, tcp.length), false);
    assert.equal(r.hashReport, NetHashReport.NONE);
    r.key.set(MS_KEY);
    r.keyLength = 40;
    r.hashTypes = NetHashType.IPV4;
    assert.equal(r.hash(tcp, tcp.length), true);
    assert.equal(r.hashReport, NetHashReport.IPV4);
    r.hashTypes = NetHashType.IPV4 | NetHashType.TCPV4;
    r.hash(tcp, tcp.length);
    assert.equal(r.hashReport, NetHashReport.TCPV4);
    const udp6 = buildIpFrame({ dst: a, src: a, payload: 10, ipv6: true, udp: true });
    r.hash(udp6, udp6.length);
    assert.equal(r.hashReport, NetHashReport.NONE, 'no IPv6 type enabled');
    r.hashTypes = NetHashType.UDPV6;
    r.hash(udp6, udp6.length);
    assert.equal(r.hashReport, NetHashReport.UDPV6);
  });

  it('driver/net/80 driver/net/81 driver/net/82: RSS_CONFIG with a table not a power of two, too long, an unsupported hash type, a key too long, or a size that does not add up is refused and changes nothing', () => {
    const r = new NetRss();
    const cfg = (mask: number, table: number[], types = NetHashType.TCPV4, keyLen = 40, maxTx = 1, extra = 0): Uint8Array => {
      const b = Buffer.alloc(8 + 2 * table.length + 3 + keyLen + extra);
      b.writeUInt32LE(types, 0);
      b.writeUInt16LE(mask, 4);
      b.writeUInt16LE(0, 6);
      table.forEach((q, i) => b.writeUInt16LE(q, 8 + 2 * i));
      b.writeUInt16LE(maxTx, 8 + 2 * table.length);
      b[10 + 2 * table.length] = keyLen;
      return Uint8Array.from(b);
    };
    const ok = cfg(3, [0, 1, 0, 1]);
    assert.equal(r.setRssConfig(ok, 0, ok.length, true, 2), 1);
    r.reset();
    for (const bad of [cfg(2, [0, 1, 0]), cfg(NET_RSS_MAX_TABLE * 2 - 1, new Array<number>(NET_RSS_MAX_TABLE * 2).fill(0)), cfg(3, [0, 1, 0, 1], 1 << 6), cfg(3, [0, 1, 0, 1], 1, 41), cfg(3, [0, 1, 0, 1], 1, 40, 1, 1), cfg(3, [0, 1, 0, 1], 1, 40, 3), cfg(3, [0, 1, 0, 1], 1, 40, 0)]) {
      assert.equal(r.setRssConfig(bad, 0, bad.length, true, 2), -1);
    }
    assert.equal(r.steering, false);
    assert.equal(r.hashTypes, 0);
    assert.equal(r.setRssConfig(ok, 0, ok.length - 1, true, 2), -1, 'short');
  });
});
