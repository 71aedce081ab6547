/**
 * In-process virtio-blk: 4 KiB random reads through the real BlkDriver, VirtioDriver,
 * InProcessTransport, DeviceCore and BlkDevice on a RAM disk (createLoopback), at queue depth 1
 * and 32, split and packed rings. Prints IOPS, ns per request and the heap delta over the run
 * (after a GC on both ends: retained memory, not garbage).
 *
 *   node --expose-gc dist/bench/blk-inprocess-bench.js [requests per run]
 */
import { BlkDevice } from '../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../src/devices/blk/memory-backend.js';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import { createLoopback } from '../src/testing/loopback.js';

const DISK_BYTES = 64 << 20;
const BLOCK = 4096;
const BLOCKS = DISK_BYTES / BLOCK;

/** `read` allocates and returns the data; `readInto` fills a buffer the caller keeps. */
type Api = 'read' | 'readInto';

interface Result {
  packed: boolean;
  api: Api;
  qd: number;
  iops: number;
  nsPerRequest: number;
  /** CPU time (user + system) of this process per request: less disturbed by a loaded machine. */
  cpuNsPerRequest: number;
  heapDeltaKiB: number | null;
}

function gc(): boolean {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) return false;
  g();
  return true;
}

/** `n` random 4 KiB reads with `qd` requests in flight at all times. */
async function readLoop(drv: BlkDriver, api: Api, n: number, qd: number, seed: number): Promise<void> {
  let issued = 0;
  let x = seed | 1;
  const worker = async (): Promise<void> => {
    const buf = new Uint8Array(BLOCK);
    while (issued < n) {
      issued++;
      // xorshift32: a random 4 KiB-aligned block.
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const block = (x >>> 0) % BLOCKS;
      if (api === 'read') await drv.read(block * (BLOCK / 512), BLOCK);
      else await drv.readInto(block * (BLOCK / 512), buf);
    }
  };
  await Promise.all(Array.from({ length: qd }, worker));
}

async function run(packed: boolean, api: Api, qd: number, n: number): Promise<Result> {
  const backend = new MemoryBackend(DISK_BYTES);
  for (let i = 0; i < DISK_BYTES; i += 4096) backend.data[i] = i >>> 12;
  const lb = await createLoopback(new BlkDevice(backend, { queueSize: 256 }), { packed, queueSize: 256, memorySize: 32 << 20 });
  try {
    const drv = new BlkDriver(lb.context);
    await readLoop(drv, api, Math.min(n, 20_000), qd, 7); // JIT warm-up
    const hasGc = gc();
    const heap0 = process.memoryUsage().heapUsed;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await readLoop(drv, api, n, qd, 12345);
    const ns = Number(process.hrtime.bigint() - t0);
    const c1 = process.cpuUsage(c0);
    gc();
    const heap1 = process.memoryUsage().heapUsed;
    if (drv.inFlight !== 0) throw new Error(`${drv.inFlight} requests still in flight`);
    return { packed, api, qd, iops: (n / ns) * 1e9, nsPerRequest: ns / n, cpuNsPerRequest: ((c1.user + c1.system) * 1000) / n, heapDeltaKiB: hasGc ? (heap1 - heap0) / 1024 : null };
  } finally {
    await lb.close();
    await backend.close();
  }
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 100_000);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bad request count ${process.argv[2]}`);
  if (!gc()) console.log('(run with --expose-gc for the heap delta)');
  console.log(`in-process virtio-blk, RAM disk ${DISK_BYTES >> 20} MiB, 4 KiB random reads, ${n} requests per run`);
  console.log('| ring | API | QD | IOPS | ns/request (wall) | CPU ns/request | heap delta over the run |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const api of ['read', 'readInto'] as const) {
    for (const packed of [false, true]) {
      for (const qd of [1, 32]) {
        const r = await run(packed, api, qd, n);
        const heap = r.heapDeltaKiB === null ? '-' : `${r.heapDeltaKiB.toFixed(0)} KiB`;
        console.log(`| ${packed ? 'packed' : 'split'} | ${api} | ${qd} | ${Math.round(r.iops)} | ${Math.round(r.nsPerRequest)} | ${Math.round(r.cpuNsPerRequest)} | ${heap} |`);
      }
    }
  }
}

await main();
