import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetPacket, completeChecksum, formatMac, parseMac } from './packet.js';
import type { NetPort } from './port.js';
import { ReflectorPort } from './reflector-port.js';
import { MAX_FORWARD_DEPTH, NetSwitch, type SwitchPort } from './switch.js';

class Recorder implements NetPort {
  frames: Uint8Array[] = [];
  constructor(readonly name: string) {}
  deliver(p: NetPacket): void {
    this.frames.push(p.bytes());
  }
}

const mac = (last: number): Uint8Array => Uint8Array.of(0x02, 0, 0, 0, 0, last);
function pkt(dst: Uint8Array, src: Uint8Array, len = 60): NetPacket {
  const p = new NetPacket(1518);
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  p.set(f);
  return p;
}

function rig(n: number): { sw: NetSwitch; ports: Recorder[]; links: SwitchPort[] } {
  const sw = new NetSwitch({ maxAddresses: 4 });
  const ports = Array.from({ length: n }, (_, i) => new Recorder(`p${i}`));
  const links = ports.map((p) => sw.attach(p));
  return { sw, ports, links };
}

describe('NetSwitch: a learning L2 switch', () => {
  it('floods unknown unicast and broadcast to every other port, then forwards to the learned port only', () => {
    const { sw, ports, links } = rig(3);
    links[0]!.send(pkt(mac(2), mac(1))); // 2 unknown: flooded
    assert.deepEqual(ports.map((p) => p.frames.length), [0, 1, 1]);
    links[1]!.send(pkt(mac(1), mac(2))); // 1 learned on port 0
    assert.deepEqual(ports.map((p) => p.frames.length), [1, 1, 1]);
    links[0]!.send(pkt(mac(2), mac(1))); // 2 learned on port 1
    assert.deepEqual(ports.map((p) => p.frames.length), [1, 2, 1]);
    links[2]!.send(pkt(new Uint8Array(6).fill(0xff), mac(3)));
    assert.deepEqual(ports.map((p) => p.frames.length), [2, 3, 1]);
    assert.equal(sw.lookup(mac(3)), links[2]);
    assert.deepEqual(links[0]!.counters, { rxFrames: 2, rxBytes: 120, txFrames: 2, txBytes: 120, dropped: 0 });
  });

  it('a runt is dropped and counted; a frame to the port it came from is not sent back', () => {
    const { ports, links } = rig(2);
    const runt = pkt(mac(9), mac(1));
    runt.length = 10;
    links[0]!.send(runt);
    assert.equal(links[0]!.counters.dropped, 1);
    links[0]!.send(pkt(mac(1), mac(1))); // to itself, learned on port 0
    assert.deepEqual(ports.map((p) => p.frames.length), [0, 0]);
  });

  it('a detached port is forgotten and gets nothing; ports can be added while others run', () => {
    const { sw, ports, links } = rig(2);
    links[1]!.send(pkt(mac(1), mac(2)));
    assert.equal(sw.addressCount, 1);
    links[1]!.detach();
    assert.equal(sw.addressCount, 0);
    links[0]!.send(pkt(mac(2), mac(1)));
    assert.equal(ports[1]!.frames.length, 0);
    const late = new Recorder('late');
    sw.attach(late);
    links[0]!.send(pkt(mac(2), mac(1)));
    assert.equal(late.frames.length, 1);
    links[1]!.send(pkt(mac(1), mac(2)));
    assert.equal(links[1]!.counters.dropped, 1, 'a detached port cannot send');
  });

  it('untrusted senders: the address table stays bounded (flooding beyond it); group source addresses are not learned', () => {
    const { sw, links } = rig(2);
    for (let i = 1; i <= 50; i++) links[0]!.send(pkt(mac(200), mac(i)));
    assert.equal(sw.addressCount, 4);
    links[0]!.send(pkt(mac(200), Uint8Array.of(1, 0, 0x5e, 0, 0, 1)));
    assert.equal(sw.addressCount, 4);
  });

  it('two reflectors answering each other are cut at MAX_FORWARD_DEPTH', () => {
    const sw = new NetSwitch();
    const a = new ReflectorPort('a', mac(1), () => new NetPacket(1518));
    const b = new ReflectorPort('b', mac(2), () => new NetPacket(1518));
    a.link = sw.attach(a);
    b.link = sw.attach(b);
    a.link.send(pkt(mac(2), mac(1)));
    assert.ok(a.reflected + b.reflected <= MAX_FORWARD_DEPTH + 1, `${a.reflected} + ${b.reflected}`);
    assert.ok(b.reflected >= 1);
  });
});

describe('NetPacket helpers', () => {
  it('completeChecksum: the one\'s complement of the sum from csum_start, stored at csum_start + csum_offset', () => {
    const p = new NetPacket(100);
    const f = new Uint8Array(40);
    for (let i = 0; i < f.length; i++) f[i] = (i * 37 + 11) & 0xff;
    f[20] = 0;
    f[21] = 0;
    p.set(f);
    p.needsCsum = true;
    p.csumStart = 14;
    p.csumOffset = 6;
    assert.equal(completeChecksum(p), true);
    // The whole range, checksum included, now sums to 0xffff.
    let sum = 0;
    for (let i = 14; i < 40; i += 2) sum += (p.data[i]! << 8) | p.data[i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    assert.equal(sum, 0xffff);
    p.needsCsum = true;
    p.csumStart = 30;
    p.csumOffset = 9; // 39 + 2 > 40
    assert.equal(completeChecksum(p), false);
  });

  it('parseMac / formatMac', () => {
    assert.deepEqual(parseMac('52:54:00:12:34:5a'), Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x5a));
    assert.equal(parseMac('52:54:00:12:34'), null);
    assert.equal(parseMac('52:54:00:12:34:zz'), null);
    assert.equal(formatMac(Uint8Array.of(2, 0, 0xab, 0, 0, 1)), '02:00:ab:00:00:01');
  });
});
