/**
 * One case of bench/ring-bench.ts in its own isolate (workerData is a RingCase; it posts a
 * RingResult):
 * - `one-thread`: driver and device interleaved in this thread;
 * - `driver`: the driver here, the device in a nested worker (`device` role) over guest memory
 *   in a SharedArrayBuffer.
 * The device works in passes, as the C floor's does: pop what is available, return each buffer
 * with `pushDeferred`, publish the pass with one release store. Empty polls only read.
 */
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { DescriptorChain } from '../src/queue/chain.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { F } from '../src/spec/features.js';
import type { Segment } from '../src/queue/types.js';
import { type RingCase, type RingResult, QUEUE_SIZE, makeDeviceQueue, makeDriverQueue } from './ring-bench.js';

interface DeviceRole {
  role: 'device';
  buffer: SharedArrayBuffer;
  packed: boolean;
  chains: number;
}

const OUT: Segment[] = [{ addr: 0x100000, len: 4096 }];
const NONE: Segment[] = [];

function oneThread(c: RingCase): RingResult {
  const mem = GuestMemory.allocate(1 << 22);
  const features = c.eventIdx ? F.EVENT_IDX : 0n;
  const dev = makeDeviceQueue(mem, c.packed, features);
  const drv = makeDriverQueue(mem, c.packed, features);
  const chain = new DescriptorChain(mem, QUEUE_SIZE);
  const batch = c.batch;
  const step = c.perPass
    ? (): void => {
        for (let i = 0; i < batch; i++) drv.add(OUT, NONE, i);
        drv.kick();
        while (dev.pop(chain)) dev.pushDeferred(chain, 0);
        dev.needsNotification();
        while (drv.takeUsed() !== undefined);
      }
    : (): void => {
        for (let i = 0; i < batch; i++) drv.add(OUT, NONE, i);
        drv.kick();
        while (dev.pop(chain)) dev.push(chain, 0);
        dev.needsNotification();
        while (drv.takeUsed() !== undefined);
      };
  // Warm up the JIT, then measure time and heap.
  for (let i = 0; i < 20000; i++) step();
  const gc = (globalThis as { gc?: () => void }).gc;
  const rounds = Math.ceil(c.chains / batch);
  let best = Infinity;
  let heapDelta = 0;
  for (let t = 0; t < c.trials; t++) {
    gc?.();
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) step();
    const ns = Number(process.hrtime.bigint() - t0);
    gc?.();
    if (t === 0) heapDelta = process.memoryUsage().heapUsed - heap0;
    best = Math.min(best, ns / (rounds * batch));
  }
  return { nsPerChain: best, heapDelta };
}

async function driverSide(c: RingCase): Promise<RingResult> {
  const mem = GuestMemory.allocate(1 << 22, { shared: true });
  const drv = makeDriverQueue(mem, c.packed, 0n);
  const buffer = mem.bytesOf(0).buffer as SharedArrayBuffer;
  const role: DeviceRole = { role: 'device', buffer, packed: c.packed, chains: c.chains };
  const worker = new Worker(new URL(import.meta.url), { workerData: role });
  try {
    await new Promise<void>((res, rej) => {
      worker.once('message', () => res());
      worker.once('error', rej);
    });
    const exited = new Promise<void>((res) => worker.once('exit', () => res()));
    const { batch, chains } = c;
    let added = 0;
    let done = 0;
    let inflight = 0;
    let spins = 0;
    // As the C floor's driver: add a batch when it fits, reap what is used. takeUsed reads
    // nothing with no buffer outstanding and writes no shared line while polling.
    const t0 = process.hrtime.bigint();
    while (done < chains) {
      // A dead device would leave this loop spinning: give up after a minute.
      if ((++spins & 0xfffff) === 0 && process.hrtime.bigint() - t0 > 60_000_000_000n) throw new Error('ring device worker stalled');
      if (added < chains && inflight + batch <= QUEUE_SIZE) {
        for (let i = 0; i < batch; i++) drv.add(OUT, NONE, i);
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
  } finally {
    await worker.terminate();
  }
}

function deviceSide(d: DeviceRole): void {
  const mem = new GuestMemory([{ guestBase: 0, bytes: new Uint8Array(d.buffer) }]);
  const dev = makeDeviceQueue(mem, d.packed, 0n);
  const chain = new DescriptorChain(mem, QUEUE_SIZE);
  parentPort!.postMessage('ready');
  let done = 0;
  while (done < d.chains) {
    while (dev.pop(chain)) {
      dev.pushDeferred(chain, 0);
      done++;
    }
    dev.publish();
  }
}

const job = workerData as RingCase | DeviceRole;
if (job.role === 'device') deviceSide(job);
else if (job.role === 'one-thread') parentPort!.postMessage(oneThread(job));
else parentPort!.postMessage(await driverSide(job));
