/**
 * Ring throughput: ns per chain through the device-side queue and the reference driver queue,
 * split and packed, batch 1 and 32, in one thread and with the device in a worker thread.
 * Also shows that the heap stays flat over 10^6 chains (no allocation per descriptor).
 *
 *   node --expose-gc dist/bench/ring-bench.js [chains]
 */
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { DescriptorChain } from '../src/queue/chain.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { F } from '../src/spec/features.js';
import { SplitQueue } from '../src/queue/split-queue.js';
import { PackedQueue } from '../src/queue/packed-queue.js';
import { SplitDriverQueue } from '../src/driver/split-driver-queue.js';
import { PackedDriverQueue } from '../src/driver/packed-driver-queue.js';
import type { DeviceQueue, DriverQueue, QueueConfig, Segment } from '../src/queue/types.js';

export const QUEUE_SIZE = 256;
export const RING_BASE = 0x10000;

export function ringConfig(packed: boolean, features: bigint): QueueConfig {
  // Fixed, generously aligned areas: desc table, driver area, device area.
  const descAddr = RING_BASE;
  const driverAddr = RING_BASE + 16 * QUEUE_SIZE;
  const deviceAddr = driverAddr + 0x1000;
  return { size: QUEUE_SIZE, descAddr, driverAddr, deviceAddr, features: features | (packed ? F.RING_PACKED : 0n) | F.VERSION_1, index: 0 };
}

export function makeDeviceQueue(mem: GuestMemory, packed: boolean, features: bigint): DeviceQueue {
  const cfg = ringConfig(packed, features);
  return packed ? new PackedQueue(mem, cfg) : new SplitQueue(mem, cfg);
}

function makeDriverQueue(mem: GuestMemory, packed: boolean, features: bigint): DriverQueue<number> {
  const cfg = ringConfig(packed, features);
  return packed ? new PackedDriverQueue<number>(mem, cfg) : new SplitDriverQueue<number>(mem, cfg);
}

interface Result {
  nsPerChain: number;
  heapDelta: number;
}

function runOneThread(packed: boolean, batch: number, chains: number): Result {
  const mem = GuestMemory.allocate(1 << 22);
  const dev = makeDeviceQueue(mem, packed, 0n);
  const drv = makeDriverQueue(mem, packed, 0n);
  const chain = new DescriptorChain(mem, QUEUE_SIZE);
  const out: Segment[] = [{ addr: 0x100000, len: 4096 }];
  const none: Segment[] = [];
  const step = (): void => {
    for (let i = 0; i < batch; i++) drv.add(out, none, i);
    drv.kick();
    while (dev.pop(chain)) dev.push(chain, 0);
    dev.needsNotification();
    while (drv.takeUsed() !== undefined);
  };
  // Warm up the JIT, then measure time and heap.
  for (let i = 0; i < 20000; i++) step();
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const rounds = Math.ceil(chains / batch);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) step();
  const ns = Number(process.hrtime.bigint() - t0);
  gc?.();
  const heapDelta = process.memoryUsage().heapUsed - heap0;
  return { nsPerChain: ns / (rounds * batch), heapDelta };
}

async function runWorker(packed: boolean, batch: number, chains: number): Promise<Result> {
  const mem = GuestMemory.allocate(1 << 22, { shared: true });
  const drv = makeDriverQueue(mem, packed, 0n);
  const buffer = mem.bytesOf(0).buffer as SharedArrayBuffer;
  const worker = new Worker(new URL('./ring-worker.js', import.meta.url), { workerData: { buffer, packed, chains } });
  const ready = new Promise<void>((res) => worker.once('message', () => res()));
  const exited = new Promise<void>((res, rej) => {
    worker.once('exit', () => res());
    worker.once('error', rej);
  });
  await ready;
  const out: Segment[] = [{ addr: 0x100000, len: 4096 }];
  const none: Segment[] = [];
  let added = 0;
  let done = 0;
  let inflight = 0;
  const t0 = process.hrtime.bigint();
  while (done < chains) {
    if (added < chains && inflight + batch <= QUEUE_SIZE) {
      for (let i = 0; i < batch; i++) drv.add(out, none, i);
      drv.kick();
      added += batch;
      inflight += batch;
    }
    while (drv.takeUsed() !== undefined) {
      done++;
      inflight--;
    }
  }
  const ns = Number(process.hrtime.bigint() - t0);
  await exited;
  return { nsPerChain: ns / chains, heapDelta: 0 };
}

/**
 * The C floor of bench/c/ring-floor.c (built by scripts/bench.mjs), measured in this same run:
 * `mode/batch` -> ns per chain. Empty when the binary is absent.
 */
function cFloor(binary: string | undefined): Map<string, number> {
  const floor = new Map<string, number>();
  if (!binary || !existsSync(binary)) return floor;
  const out = execFileSync(binary, ['10000000'], { encoding: 'utf8' });
  for (const m of out.matchAll(/c-floor split (one-thread|two-threads) batch=(\d+) ns\/chain=([\d.]+)/g)) {
    floor.set(`${m[1]}/${m[2]}`, Number(m[3]));
  }
  return floor;
}

async function main(): Promise<void> {
  const chains = Number(process.argv[2] ?? 1_000_000);
  const floor = cFloor(process.argv[3]);
  const rows: string[][] = [['ring', 'mode', 'batch', 'ns/chain', 'C floor', 'ratio', 'heap delta']];
  const row = (packed: boolean, mode: string, batch: number, r: Result): void => {
    const f = floor.get(`${mode === 'one-thread' ? 'one-thread' : 'two-threads'}/${batch}`);
    rows.push([
      packed ? 'packed' : 'split',
      mode,
      String(batch),
      r.nsPerChain.toFixed(1),
      f === undefined ? '-' : f.toFixed(1),
      f === undefined ? '-' : `${(r.nsPerChain / f).toFixed(2)}x`,
      mode === 'one-thread' ? `${(r.heapDelta / 1024).toFixed(0)} KiB / ${chains} chains` : '-',
    ]);
  };
  for (const packed of [false, true]) {
    for (const batch of [1, 32]) row(packed, 'one-thread', batch, runOneThread(packed, batch, chains));
    for (const batch of [1, 32]) row(packed, 'device-in-worker', batch, await runWorker(packed, batch, chains));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  console.log('C floor: a C split ring on this machine, same run (bench/c/ring-floor.c); ratio = virtio-ts / C.');
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
