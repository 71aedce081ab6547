/**
 * Heap over 10^7 packets (issue 11: "heap stays flat over 10^7 packets; no allocation per packet
 * on the data path"). In process: device A's transmit queue -> A's switch port -> NetSwitch
 * (learned unicast) -> device B's receive path -> B's receive queue, both devices on the real
 * DeviceCore and in-process transport. The driver side is the bare ring (DriverQueue add /
 * kick / takeUsed with segment arrays made once, synchronous interrupts), so what allocates per
 * packet is the device and switch path, not a promise-based driver.
 *
 * Every 10^6 packets it prints heapUsed and RSS after a forced full GC (retained memory: flat
 * means nothing leaks), and, as evidence of no per-packet allocation without --trace-gc, what
 * the interval allocated: the heapUsed growth from the previous sample to just before the forced
 * GC and the number of young-generation collections (scavenges) the allocator triggered in the
 * interval, from a PerformanceObserver on 'gc' entries. Zero scavenges and a growth of a few
 * KiB over 10^6 packets mean less than a byte per packet.
 *
 * With `mesh`, A and B are on two switches joined as `virtio-ts net --threads` joins its
 * threads' switches (switch-mesh.ts): A's frames go through A's switch, the link port, the
 * SharedArrayBuffer frame ring, and B's switch (drained after each batch). With `worker`, all of
 * it runs on a worker thread (node:worker_threads), as the ring threads do, and the counts are
 * the worker's own heap and collections.
 *
 *   node --expose-gc dist/bench/net-heap.js [packets, default 1e7] [frame bytes, default 64] [packed] [mesh] [worker]
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { Worker, isMainThread } from 'node:worker_threads';
import { SwitchMeshNode, createSwitchMesh } from '../src/devices/net/switch-mesh.js';
import { NetDevice } from '../src/devices/net/net-device.js';
import { buildIpFrame } from '../src/devices/net/ip-frames.js';
import { NetSwitch } from '../src/devices/net/switch.js';
import type { Segment } from '../src/queue/types.js';
import { netHeaderSize } from '../src/spec/net.js';
import { createLoopback } from '../src/testing/loopback.js';

const A_MAC = Uint8Array.of(2, 0, 0, 0, 0, 0xa);
const B_MAC = Uint8Array.of(2, 0, 0, 0, 0, 0xb);
const QUEUE = 256;
const BATCH = 64;
const SAMPLE = 1_000_000;

const total = Number(process.argv[2] ?? 1e7);
const frameBytes = Number(process.argv[3] ?? 64);
const flags = process.argv.slice(4);
const packed = flags.includes('packed');
const mesh = flags.includes('mesh');
if (flags.includes('worker') && isMainThread) {
  // The same run on a worker thread (argv is inherited): the main thread only waits for it.
  const w = new Worker(new URL(import.meta.url), { argv: process.argv.slice(2) });
  const code = await new Promise<number>((resolve) => w.on('exit', resolve));
  process.exit(code);
}
const gcNow = (globalThis as { gc?: () => void }).gc;
if (gcNow === undefined) {
  console.error('run with node --expose-gc');
  process.exit(2);
}

let scavenges = 0;
let majors = 0;
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
    else majors++;
  }
});
obs.observe({ entryTypes: ['gc'] });

const sw = new NetSwitch();
const swB = mesh ? new NetSwitch() : sw;
const a = new NetDevice({ mac: A_MAC, queueSize: QUEUE, name: 'a' });
const b = new NetDevice({ mac: B_MAC, queueSize: QUEUE, name: 'b' });
a.attachTo(sw);
b.attachTo(swB);
// Two mesh nodes on this thread: drained by hand after each batch (the drain loop's own
// wake-ups are per batch, not per packet).
const spec = mesh ? createSwitchMesh(2, { slots: 512, frameBytes: 1522, captureNode: null }) : null;
const nodes = spec ? [new SwitchMeshNode(spec, 0, sw), new SwitchMeshNode(spec, 1, swB)] : [];
const drain = (): void => {
  for (const n of nodes) while (n.drainOnce() > 0);
};
const la = await createLoopback(a, { queueSize: QUEUE, packed, interrupts: 'sync' });
const lbb = await createLoopback(b, { queueSize: QUEUE, packed, interrupts: 'sync' });
const ca = la.context;
const cb = lbb.context;
ca.onUsed(1, () => {});
cb.onUsed(0, () => {});

// A's one transmit buffer: a zero virtio_net_hdr and an IPv4/UDP frame to B.
const hlA = netHeaderSize(ca.features);
const frame = buildIpFrame({ dst: B_MAC, src: A_MAC, udp: true, payload: Math.max(0, frameBytes - 42) });
const txAddr = ca.dma.alloc(hlA + frame.length);
ca.memory.write(txAddr, new Uint8Array(hlA));
ca.memory.write(txAddr + hlA, frame);
const txOut: Segment[] = [{ addr: txAddr, len: hlA + frame.length }];
const NONE: Segment[] = [];
const txq = ca.queue(1);
// B's receive buffers, each posted again as soon as it is used.
const rxq = cb.queue(0);
const rxIn: Segment[][] = [];
for (let i = 0; i < QUEUE; i++) {
  rxIn.push([{ addr: cb.dma.alloc(2048), len: 2048 }]);
  rxq.add(NONE, rxIn[i]!, i);
}
cb.kick(0);

// B learns nothing until it sends: teach the switch B's port with one frame from B (unicast then, not flooding).
{
  const hlB = netHeaderSize(cb.features);
  const hello = buildIpFrame({ dst: A_MAC, src: B_MAC, udp: true, payload: 22 });
  const addr = cb.dma.alloc(hlB + hello.length);
  cb.memory.write(addr + hlB, hello);
  cb.memory.write(addr, new Uint8Array(hlB));
  cb.queue(1).add([{ addr, len: hlB + hello.length }], NONE, 0);
  cb.kick(1);
  drain();
}

function pump(n: number): void {
  let sent = 0;
  while (sent < n) {
    const k = Math.min(BATCH, n - sent);
    for (let i = 0; i < k; i++) txq.add(txOut, NONE, i);
    ca.kick(1);
    drain();
    while (txq.takeUsed() !== undefined);
    let t: number | undefined;
    while ((t = rxq.takeUsed()) !== undefined) rxq.add(NONE, rxIn[t]!, t);
    cb.kick(0);
    sent += k;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
pump(10_000); // warm-up (JIT, chains made once per queue)
gcNow();
await sleep(50);
const rx0 = b.stats.rxFrames;
const rows: string[] = [];
const mib = (x: number): string => (x / 1048576).toFixed(2);
let prevHeap = process.memoryUsage().heapUsed;
const firstHeap = prevHeap;
const firstRss = process.memoryUsage().rss;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const path = mesh ? 'A -> switch -> frame ring -> switch -> B' : 'A -> switch -> B';
console.log(`net-heap: ${total} packets of ${frame.length} bytes, ${path}${isMainThread ? '' : ' on a worker thread'}, ${packed ? 'packed' : 'split'} rings, header ${hlA} bytes, features 0x${ca.features.toString(16)}`);
console.log('packets    heapUsed MiB  rss MiB  growth in interval KiB  scavenges  major GCs (the forced one)');
for (let done = 0; done < total; ) {
  const n = Math.min(SAMPLE, total - done);
  scavenges = 0;
  majors = 0;
  pump(n);
  done += n;
  const grown = process.memoryUsage().heapUsed - prevHeap;
  // GC entries reach the observer a few event-loop turns after the GC: wait for this interval's.
  await sleep(50);
  const intervalScavenges = scavenges;
  gcNow();
  await sleep(50);
  const m = process.memoryUsage();
  prevHeap = m.heapUsed;
  const row = `${String(done).padStart(9)}  ${mib(m.heapUsed).padStart(12)}  ${mib(m.rss).padStart(7)}  ${(grown / 1024).toFixed(1).padStart(22)}  ${String(intervalScavenges).padStart(9)}  ${String(majors).padStart(9)}`;
  rows.push(row);
  console.log(row);
}
const ns = Number(process.hrtime.bigint() - t0);
const cpu = process.cpuUsage(cpu0);
const received = b.stats.rxFrames - rx0;
const end = process.memoryUsage();
console.log(
  JSON.stringify({
    packets: total,
    received,
    dropped: b.stats.rxNoBuffer,
    packetsPerSec: Math.round((total / ns) * 1e9),
    cpuNsPerPacket: Math.round(((cpu.user + cpu.system) * 1000) / total),
    heapDeltaKiB: Math.round((end.heapUsed - firstHeap) / 1024),
    rssDeltaMiB: Number(mib(end.rss - firstRss)),
  }),
);
obs.disconnect();
await la.close();
await lbb.close();
if (received !== total) {
  console.error(`received ${received} of ${total}`);
  process.exitCode = 1;
}
