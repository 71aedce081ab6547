/**
 * The mesh of per-thread switches of `virtio-ts net --threads` (switch-mesh.ts, frame-ring.ts),
 * driven on one thread: each node's rings are drained by hand (`drainOnce`), so every step is
 * deterministic. The same rings between real threads: test/net-threads.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Doorbell, FrameRingConsumer, FrameRingProducer, createFrameRing } from './frame-ring.js';
import { NetPacket } from './packet.js';
import type { NetPort } from './port.js';
import { NetSwitch, type SwitchPort } from './switch.js';
import { SwitchMeshNode, createSwitchMesh } from './switch-mesh.js';

class Recorder implements NetPort {
  frames: Uint8Array[] = [];
  constructor(readonly name: string) {}
  deliver(p: NetPacket): void {
    this.frames.push(p.bytes());
  }
}

const mac = (last: number): Uint8Array => Uint8Array.of(0x02, 0, 0, 0, 0, last);
const BROADCAST = new Uint8Array(6).fill(0xff);
function pkt(dst: Uint8Array, src: Uint8Array, len = 60, vlan = -1): NetPacket {
  const p = new NetPacket(1522);
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  if (vlan >= 0) f.set([0x81, 0x00, vlan >> 8, vlan & 0xff, 0x08, 0x00], 12);
  else f.set([0x08, 0x00], 12);
  for (let i = 18; i < len; i++) f[i] = i & 0xff;
  p.set(f);
  return p;
}

/** `nodes` switches in a mesh, each with `perNode` recorded ports (port k of node n: name n.k). */
function mesh(nodes: number, perNode: number, slots = 16, captureNode: number | null = null, capture?: NetPort) {
  const spec = createSwitchMesh(nodes, { slots, frameBytes: 1522, captureNode });
  const sws = Array.from({ length: nodes }, () => new NetSwitch());
  const meshNodes = sws.map((sw, n) => new SwitchMeshNode(spec, n, sw, n === captureNode ? capture : undefined));
  const ports: Recorder[][] = [];
  const links: SwitchPort[][] = [];
  for (let n = 0; n < nodes; n++) {
    ports.push(Array.from({ length: perNode }, (_, k) => new Recorder(`${n}.${k}`)));
    links.push(ports[n]!.map((p) => sws[n]!.attach(p)));
  }
  /** Drains every node until no ring holds a frame. */
  const settle = (): void => {
    for (let round = 0; round < 10; round++) if (meshNodes.reduce((n, m) => n + m.drainOnce(), 0) === 0) return;
    assert.fail('the mesh did not settle');
  };
  const counts = (): number[][] => ports.map((ps) => ps.map((p) => p.frames.length));
  return { spec, sws, meshNodes, ports, links, settle, counts };
}

describe('net --threads: the mesh of per-thread switches', () => {
  it('a frame between ports of different switches crosses once, bytes and checksum state intact', () => {
    const m = mesh(2, 1);
    const p = pkt(mac(2), mac(1), 300);
    p.needsCsum = true;
    p.csumStart = 34;
    p.csumOffset = 6;
    m.links[0]![0]!.send(p);
    m.settle();
    assert.deepEqual(m.counts(), [[0], [1]]);
    assert.deepEqual(m.ports[1]![0]!.frames[0], p.bytes());
    assert.deepEqual(m.meshNodes[0]!.linkCounters, [{ node: 1, sent: 1, dropped: 0, oversize: 0 }]);
  });

  it('broadcast reaches every port of every switch exactly once (split horizon: no loop in a 3-switch mesh)', () => {
    const m = mesh(3, 2);
    m.links[1]![0]!.send(pkt(BROADCAST, mac(10)));
    m.settle();
    assert.deepEqual(m.counts(), [
      [1, 1],
      [0, 1],
      [1, 1],
    ]);
    // Each link carried it once: node 1 to 0 and to 2, nothing between 0 and 2.
    assert.deepEqual(
      m.meshNodes.map((n) => n.linkCounters.map((c) => c.sent)),
      [
        [0, 0],
        [1, 1],
        [0, 0],
      ],
    );
  });

  it('learning: the owner switch learns the port, the others learn the link to the owner; unicast then goes one way only', () => {
    const m = mesh(3, 1);
    const [a, b] = [mac(1), mac(2)];
    m.links[0]![0]!.send(pkt(b, a)); // b unknown: flooded everywhere
    m.settle();
    assert.deepEqual(m.counts(), [[0], [1], [1]]);
    assert.equal(m.sws[0]!.lookup(a), m.links[0]![0]);
    assert.equal(m.sws[1]!.lookup(a)!.link, true);
    assert.equal(m.sws[1]!.lookup(a)!.name, 'thread link 1->0');
    m.links[1]![0]!.send(pkt(a, b)); // a known everywhere: to node 0 only
    m.settle();
    assert.deepEqual(m.counts(), [[1], [1], [1]]);
    m.links[0]![0]!.send(pkt(b, a)); // b learned on node 0's link to 1: node 2 sees nothing
    m.settle();
    assert.deepEqual(m.counts(), [[1], [2], [1]]);
    assert.equal(m.meshNodes[0]!.linkCounters.find((l) => l.node === 2)!.sent, 1, 'node 0 sent to node 2 once (the first flood)');
    // An address moving to another thread's port is relearned from its next frame (a
    // broadcast: nodes 0 and 1 get it), then unicast to it goes to its new thread only.
    m.links[2]![0]!.send(pkt(BROADCAST, b));
    m.settle();
    assert.deepEqual(m.counts(), [[2], [3], [1]]);
    m.links[0]![0]!.send(pkt(b, a));
    m.settle();
    assert.deepEqual(m.counts(), [[2], [3], [2]]);
  });

  it('VLANs: a port gets only its VLANs, whichever switch the frame entered', () => {
    const spec = createSwitchMesh(2, { slots: 16, frameBytes: 1522, captureNode: null });
    const sws = [new NetSwitch(), new NetSwitch()];
    const nodes = sws.map((sw, n) => new SwitchMeshNode(spec, n, sw));
    const src = new Recorder('src');
    const v10 = new Recorder('v10');
    const v20 = new Recorder('v20');
    const untaggedOnly = new Recorder('untagged');
    const from = sws[0]!.attach(src, { vlans: [10, 20] });
    sws[1]!.attach(v10, { vlans: [10], untagged: false });
    sws[1]!.attach(v20, { vlans: [20] });
    sws[1]!.attach(untaggedOnly, { vlans: [] });
    const settle = (): void => {
      while (nodes[0]!.drainOnce() + nodes[1]!.drainOnce() > 0);
    };
    from.send(pkt(BROADCAST, mac(1), 64, 10));
    settle();
    from.send(pkt(BROADCAST, mac(1), 64, 20));
    settle();
    from.send(pkt(BROADCAST, mac(1), 64));
    settle();
    // VLAN 30: src is not a member, dropped where it entered, never crosses.
    from.send(pkt(BROADCAST, mac(1), 64, 30));
    settle();
    assert.deepEqual([v10, v20, untaggedOnly].map((r) => r.frames.length), [1, 2, 1]);
    assert.equal(v10.frames[0]![14]! & 0x0f, 0, 'tag passes unchanged');
    assert.equal(v10.frames[0]![15], 10);
    assert.equal(from.counters.dropped, 1);
    assert.equal(nodes[0]!.linkCounters[0]!.sent, 3);
  });

  it('a full ring drops and counts, never blocks or grows; it takes frames again once drained', () => {
    const m = mesh(2, 1, 4);
    for (let i = 0; i < 10; i++) m.links[0]![0]!.send(pkt(BROADCAST, mac(1), 60 + i));
    assert.deepEqual(m.meshNodes[0]!.linkCounters, [{ node: 1, sent: 4, dropped: 6, oversize: 0 }]);
    m.settle();
    assert.equal(m.ports[1]![0]!.frames.length, 4);
    assert.deepEqual(
      m.ports[1]![0]!.frames.map((f) => f.length),
      [60, 61, 62, 63],
    );
    m.links[0]![0]!.send(pkt(BROADCAST, mac(1)));
    m.settle();
    assert.equal(m.ports[1]![0]!.frames.length, 5);
    assert.equal(m.meshNodes[0]!.linkCounters[0]!.dropped, 6);
  });

  it('a frame larger than a slot is dropped and counted as oversize (GSO packets are segmented before the ring)', () => {
    const spec = createSwitchMesh(2, { slots: 4, frameBytes: 100, captureNode: null });
    const sws = [new NetSwitch(), new NetSwitch()];
    const nodes = sws.map((sw, n) => new SwitchMeshNode(spec, n, sw));
    const r = new Recorder('r');
    sws[1]!.attach(r);
    const from = sws[0]!.attach(new Recorder('s'));
    from.send(pkt(BROADCAST, mac(1), 200));
    assert.equal(nodes[0]!.linkCounters[0]!.oversize, 1);
    nodes[1]!.drainOnce();
    assert.equal(r.frames.length, 0);
  });

  it('capture: every frame is shown to the capture port once, on the thread where it entered', () => {
    const cap = new Recorder('pcap');
    const m = mesh(3, 1, 16, 2, cap);
    m.sws[2]!.monitor(cap);
    m.links[0]![0]!.send(pkt(BROADCAST, mac(1)));
    m.settle();
    m.links[1]![0]!.send(pkt(mac(1), mac(2)));
    m.settle();
    m.links[2]![0]!.send(pkt(mac(2), mac(3)));
    m.settle();
    assert.equal(cap.frames.length, 3);
    assert.deepEqual(
      cap.frames.map((f) => f[11]),
      [1, 2, 3],
    );
  });

  it('stop ends the drain loop at once and detaches the links', async () => {
    const m = mesh(2, 1);
    for (const n of m.meshNodes) n.start();
    const got = new Promise<void>((resolve) => {
      m.ports[1]![0]!.deliver = (p) => {
        m.ports[1]![0]!.frames.push(p.bytes());
        resolve();
      };
    });
    m.links[0]![0]!.send(pkt(mac(2), mac(1)));
    await got;
    const t0 = Date.now();
    await Promise.all(m.meshNodes.map((n) => n.stop()));
    assert.ok(Date.now() - t0 < 500, 'stopped without waiting for the idle timeout');
    assert.equal(m.sws[0]!.attached.length, 1);
  });

  it('frames cross between real threads through the ring, with the doorbell waking the consumer', { timeout: 30_000 }, async () => {
    const bell = Doorbell.create();
    const spec = createFrameRing(8, 256, bell);
    const total = 2000;
    // The producer thread pushes `total` frames numbered in their first 4 bytes, retrying when
    // the ring is full (a test producer; a switch drops instead).
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { spec, total } = workerData;
      import(${JSON.stringify(new URL('./frame-ring.js', import.meta.url).href)}).then(async ({ FrameRingProducer }) => {
        const { NetPacket } = await import(${JSON.stringify(new URL('./packet.js', import.meta.url).href)});
        const ring = new FrameRingProducer(spec);
        const p = new NetPacket(256);
        p.length = 64;
        for (let i = 0; i < total; i++) {
          new DataView(p.data.buffer).setUint32(0, i);
          while (!ring.push(p)) await new Promise((r) => setImmediate(r));
        }
        parentPort.postMessage('done');
      });`;
    const w = new Worker(code, { eval: true, workerData: { spec, total } });
    try {
      const consumer = new FrameRingConsumer(spec);
      const door = new Doorbell(bell);
      const seen: number[] = [];
      const take = (p: NetPacket): void => {
        seen.push(new DataView(p.data.buffer, p.data.byteOffset).getUint32(0));
      };
      const deadline = Date.now() + 20_000;
      while (seen.length < total && Date.now() < deadline) {
        if (consumer.drain(take, 64) === 0) await door.sleep(() => consumer.pending > 0, 1000);
      }
      assert.equal(seen.length, total);
      assert.ok(
        seen.every((v, i) => v === i),
        'in order, none lost',
      );
      // Every frame was published once (the producer's refused pushes are counted as drops).
      assert.equal(new FrameRingProducer(spec).pushed, total);
    } finally {
      await w.terminate();
    }
  });
});
