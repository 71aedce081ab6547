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

  it('a sender\'s last decision is reused only while the table is unchanged (learn, move, detach, full table)', () => {
    const sw = new NetSwitch({ maxAddresses: 2 });
    const ports = Array.from({ length: 3 }, (_, i) => new Recorder(`p${i}`));
    const links = ports.map((p) => sw.attach(p));
    const counts = (): number[] => ports.map((p) => p.frames.length);
    const p = pkt(mac(2), mac(1)); // one packet refilled per frame, as a device's
    links[0]!.send(p);
    links[0]!.send(p); // 2 still unknown: flooded again
    assert.deepEqual(counts(), [0, 2, 2]);
    links[1]!.send(pkt(mac(1), mac(2))); // 2 learned on port 1
    links[0]!.send(p);
    assert.deepEqual(counts(), [1, 3, 2]);
    links[2]!.send(pkt(mac(1), mac(2))); // 2 moved to port 2
    links[0]!.send(p);
    assert.deepEqual(counts(), [2, 3, 3]);
    links[2]!.detach(); // 2 forgotten: flooded to who is left
    links[0]!.send(p);
    assert.deepEqual(counts(), [2, 4, 3]);
    // A full table (1 and 7): 9 is never learned, frames to it are flooded.
    links[1]!.send(pkt(mac(1), mac(7)));
    assert.deepEqual(counts(), [3, 4, 3]);
    const q = pkt(mac(8), mac(9));
    links[1]!.send(q);
    links[1]!.send(q);
    assert.equal(sw.lookup(mac(9)), undefined);
    assert.equal(sw.addressCount, 2);
    assert.deepEqual(counts(), [5, 4, 3]);
    links[0]!.send(pkt(mac(9), mac(1)));
    assert.deepEqual(counts(), [5, 5, 3], 'to 9 (unknown, table full): flooded');
  });

  it('forwards as a plain learning switch for any sequence of frames, ports detached and attached (a reference model)', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (let round = 0; round < 20; round++) {
      const max = 1 + rnd(4);
      const sw = new NetSwitch({ maxAddresses: max });
      const recs: Recorder[] = [];
      const links: SwitchPort[] = [];
      const alive: boolean[] = [];
      // Some ports send from a packet of their own (reused), some from an unaligned packet (no words).
      const own: NetPacket[] = [];
      const attach = (): void => {
        const r = new Recorder(`p${recs.length}`);
        recs.push(r);
        links.push(sw.attach(r));
        alive.push(true);
        own.push(rnd(2) === 0 ? new NetPacket(64) : NetPacket.over(new Uint8Array(65).subarray(1)));
      };
      for (let i = 0; i < 4; i++) attach();
      const model = new Map<number, number>(); // address -> port
      const expected = recs.map(() => 0);
      for (let step = 0; step < 300; step++) {
        const op = rnd(20);
        if (op === 0 && alive.filter(Boolean).length > 1) {
          const k = rnd(links.length);
          if (!alive[k]) continue;
          links[k]!.detach();
          alive[k] = false;
          for (const [a, v] of model) if (v === k) model.delete(a);
          continue;
        }
        if (op === 1) {
          attach();
          expected.push(0);
          continue;
        }
        const from = rnd(links.length);
        const dst = rnd(7) === 0 ? 0xff : 1 + rnd(6);
        const src = 1 + rnd(6);
        const p = own[from]!;
        const f = new Uint8Array(60);
        // Addresses that differ in their second byte or in their last: every word compared.
        const addr = (k: number): Uint8Array => (k % 2 === 1 ? Uint8Array.of(0x02, k, 0, 0, 0, 0) : mac(k));
        f.set(dst === 0xff ? new Uint8Array(6).fill(0xff) : addr(dst), 0);
        f.set(addr(src), 6);
        f[12] = 0x08;
        p.data.set(f);
        p.length = 60;
        links[from]!.send(p);
        if (!alive[from]) continue;
        if (model.get(src) !== from && (model.has(src) || model.size < max)) model.set(src, from);
        const to = dst === 0xff ? undefined : model.get(dst);
        if (to !== undefined) {
          if (to !== from) expected[to]!++;
        } else for (let k = 0; k < links.length; k++) if (k !== from && alive[k]) expected[k]!++;
        assert.deepEqual(recs.map((r) => r.frames.length), expected, `round ${round} step ${step}`);
      }
    }
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
