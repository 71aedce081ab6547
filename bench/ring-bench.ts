/**
 * Ring throughput: ns per chain through the device-side queue and the reference driver queue,
 * split and packed, batch 1 and 32, in one thread and with the device in a worker thread,
 * beside the C floor of bench/c/ring-floor.c measured in the same run. Also shows that the heap
 * stays flat over the measured chains (no allocation per descriptor).
 *
 * The device works in passes, as the C floor does: it pops what is available, returns each
 * buffer with `pushDeferred` and publishes the pass with one release store (`publish`, or
 * `needsNotification` which publishes first). The one-thread batch-32 case is also run with
 * `push` (one release store per buffer) to show what that costs.
 *
 * Every case runs in a fresh worker isolate (bench/ring-worker.ts), so the JIT sees one queue
 * class per call site, as an application using one ring layout does. The machine may be
 * shared: every figure is the minimum of several timed runs (in one isolate for one thread,
 * fresh isolates for device-in-worker, fresh processes for the C floor).
 *
 *   node --expose-gc dist/bench/ring-bench.js [chains] [c-floor-binary] [trials]
 */
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { GuestMemory } from '../src/memory/guest-memory.js';
import { F } from '../src/spec/features.js';
import { SplitQueue } from '../src/queue/split-queue.js';
import { PackedQueue } from '../src/queue/packed-queue.js';
import { SplitDriverQueue } from '../src/driver/split-driver-queue.js';
import { PackedDriverQueue } from '../src/driver/packed-driver-queue.js';
import type { DriverQueue, QueueConfig } from '../src/queue/types.js';

export const QUEUE_SIZE = 256;
export const RING_BASE = 0x10000;

export function ringConfig(packed: boolean, features: bigint): QueueConfig {
  // Fixed, generously aligned areas: desc table, driver area, device area.
  const descAddr = RING_BASE;
  const driverAddr = RING_BASE + 16 * QUEUE_SIZE;
  const deviceAddr = driverAddr + 0x1000;
  return { size: QUEUE_SIZE, descAddr, driverAddr, deviceAddr, features: features | (packed ? F.RING_PACKED : 0n) | F.VERSION_1, index: 0 };
}

/** Both device queues: the DeviceQueue interface plus the per-pass `pushDeferred`/`publish`. */
export type BenchDeviceQueue = SplitQueue | PackedQueue;

export function makeDeviceQueue(mem: GuestMemory, packed: boolean, features: bigint): BenchDeviceQueue {
  const cfg = ringConfig(packed, features);
  return packed ? new PackedQueue(mem, cfg) : new SplitQueue(mem, cfg);
}

export function makeDriverQueue(mem: GuestMemory, packed: boolean, features: bigint): DriverQueue<number> {
  const cfg = ringConfig(packed, features);
  return packed ? new PackedDriverQueue<number>(mem, cfg) : new SplitDriverQueue<number>(mem, cfg);
}

/** What a case reports: ns per chain and the heap growth over the first timed run. */
export interface RingResult {
  nsPerChain: number;
  heapDelta: number;
}

/** One benchmark case; each runs in a fresh worker isolate so no case sees another's classes. */
export interface RingCase {
  role: 'one-thread' | 'driver';
  packed: boolean;
  batch: number;
  chains: number;
  /** one-thread: publish once per pass (pushDeferred) rather than per buffer (push). */
  perPass: boolean;
  /** one-thread: timed runs in the isolate (the minimum is kept). */
  trials: number;
  /** Negotiate EVENT_IDX (what Linux guests do): event positions move per buffer. */
  eventIdx: boolean;
}

function runCase(c: RingCase): Promise<RingResult> {
  return new Promise<RingResult>((resolve, reject) => {
    const w = new Worker(new URL('./ring-worker.js', import.meta.url), { workerData: c });
    let result: RingResult | undefined;
    w.on('message', (m: RingResult) => {
      result = m;
    });
    w.once('error', reject);
    w.once('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`ring case worker exited with ${code}`))));
  });
}

/**
 * Device-in-worker: minimum over `trials` fresh runs (on a shared machine a descheduled spinner
 * inflates a run).
 */
async function runWorker(packed: boolean, batch: number, chains: number, trials: number): Promise<RingResult> {
  let best = Infinity;
  for (let t = 0; t < trials; t++) {
    const r = await runCase({ role: 'driver', packed, batch, chains, perPass: true, trials: 1, eventIdx: false });
    best = Math.min(best, r.nsPerChain);
  }
  return { nsPerChain: best, heapDelta: 0 };
}

/**
 * The C floor of bench/c/ring-floor.c (built by scripts/bench.mjs), measured in this same run,
 * minimum of `trials` runs: `mode/batch` -> ns per chain. Empty when the binary is absent.
 */
function cFloor(binary: string | undefined, trials: number): Map<string, number> {
  const floor = new Map<string, number>();
  if (!binary || !existsSync(binary)) return floor;
  for (let t = 0; t < trials; t++) {
    const out = execFileSync(binary, ['3000000'], { encoding: 'utf8', timeout: 120_000 });
    for (const m of out.matchAll(/c-floor split (one-thread|two-threads) batch=(\d+) ns\/chain=([\d.]+)/g)) {
      const k = `${m[1]}/${m[2]}`;
      floor.set(k, Math.min(floor.get(k) ?? Infinity, Number(m[3])));
    }
  }
  return floor;
}

async function main(): Promise<void> {
  const chains = Number(process.argv[2] ?? 1_000_000);
  const trials = Number(process.argv[4] ?? 5);
  const floor = cFloor(process.argv[3], trials);
  const rows: string[][] = [['ring', 'mode', 'batch', 'publish', 'ns/chain', 'C floor', 'ratio', 'heap delta']];
  const row = (packed: boolean, mode: string, batch: number, publish: string, r: RingResult, eventIdx = false): void => {
    const f = floor.get(`${mode === 'one-thread' ? 'one-thread' : 'two-threads'}/${batch}`);
    rows.push([
      packed ? 'packed' : 'split',
      eventIdx ? `${mode} EVENT_IDX` : mode,
      String(batch),
      publish,
      r.nsPerChain.toFixed(1),
      f === undefined ? '-' : f.toFixed(1),
      f === undefined ? '-' : `${(r.nsPerChain / f).toFixed(1)}x`,
      mode === 'one-thread' ? `${(r.heapDelta / 1024).toFixed(0)} KiB / ${chains} chains` : '-',
    ]);
  };
  for (const packed of [false, true]) {
    const one = { role: 'one-thread', packed, chains, trials, eventIdx: false } as const;
    for (const batch of [1, 32]) row(packed, 'one-thread', batch, 'per pass', await runCase({ ...one, batch, perPass: true }));
    row(packed, 'one-thread', 32, 'per buffer', await runCase({ ...one, batch: 32, perPass: false }));
    row(packed, 'one-thread', 32, 'per pass', await runCase({ ...one, batch: 32, perPass: true, eventIdx: true }), true);
    // Across threads each run spins two threads: fewer chains per run, as many runs.
    for (const batch of [1, 32]) row(packed, 'device-in-worker', batch, 'per pass', await runWorker(packed, batch, Math.ceil(chains / 4), trials));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  console.log(`Minimum of ${trials} runs each. C floor: a C split ring on this machine, same run (bench/c/ring-floor.c); ratio = virtio-ts / C.`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
