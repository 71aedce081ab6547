/**
 * The rings across two threads: the driver here, the device in a worker over guest memory in a
 * SharedArrayBuffer, publishing in passes of random size (pushDeferred + publish) mixed with
 * per-buffer push. Each buffer carries a token the device transforms into the writable part, so
 * a descriptor read before it was published, a used entry or length seen before it was written,
 * or a held packed descriptor never published (a hang, caught by the time bound) fails the test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { PackedDriverQueue } from '../driver/packed-driver-queue.js';
import { SplitDriverQueue } from '../driver/split-driver-queue.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescriptorChain } from './chain.js';
import { PackedQueue } from './packed-queue.js';
import { SplitQueue } from './split-queue.js';
import type { DriverQueue, QueueConfig } from './types.js';

const SIZE = 64;
const CHAINS = 100_000;
const MEM = 1 << 20;
const IN_BASE = 0x40000;
const OUT_BASE = 0x60000;
const MAGIC = 0xa5a5a5a5;

interface Job {
  buffer: SharedArrayBuffer;
  packed: boolean;
  chains: number;
  seed: number;
}

function config(packed: boolean): QueueConfig {
  const l = packed ? PackedDriverQueue.layout(SIZE, 0x1000) : SplitDriverQueue.layout(SIZE, 0x1000);
  const features = F.VERSION_1 | (packed ? F.RING_PACKED : 0n);
  return { size: SIZE, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features, index: 0 };
}

/** Device side, in the worker: echo token ^ MAGIC into the writable segment, in passes. */
function device(job: Job): void {
  const mem = new GuestMemory([{ guestBase: 0, bytes: new Uint8Array(job.buffer) }]);
  const cfg = config(job.packed);
  const dev = job.packed ? new PackedQueue(mem, cfg) : new SplitQueue(mem, cfg);
  const chain = new DescriptorChain(mem, SIZE);
  let seed = job.seed >>> 0;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed % n;
  };
  parentPort!.postMessage('ready');
  let done = 0;
  while (done < job.chains) {
    const pass = 1 + rand(8);
    for (let i = 0; i < pass && dev.pop(chain); i++) {
      const token = mem.readU32(chain.addrs[0]!);
      mem.writeU32(chain.addrs[1]!, (token ^ MAGIC) >>> 0);
      if (rand(4) === 0) dev.push(chain, 4);
      else dev.pushDeferred(chain, 4);
      done++;
    }
    dev.publish();
  }
}

async function run(packed: boolean, seed: number): Promise<void> {
  const mem = GuestMemory.allocate(MEM, { shared: true });
  const cfg = config(packed);
  const drv: DriverQueue<number> = packed ? new PackedDriverQueue<number>(mem, cfg) : new SplitDriverQueue<number>(mem, cfg);
  const job: Job = { buffer: mem.bytesOf(0).buffer as SharedArrayBuffer, packed, chains: CHAINS, seed };
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  try {
    await new Promise<void>((res, rej) => {
      worker.once('message', () => res());
      worker.once('error', rej);
    });
    const t0 = Date.now();
    let added = 0;
    let expect = 0;
    let spins = 0;
    while (expect < CHAINS) {
      // Bounded: a lost publication would otherwise spin here forever.
      if ((++spins & 0xffff) === 0) assert.ok(Date.now() - t0 < 60_000, `stalled at ${expect} of ${CHAINS} (added ${added})`);
      while (added < CHAINS && added - expect < SIZE / 2) {
        const slot = added % (SIZE / 2);
        mem.writeU32(IN_BASE + 16 * slot, added);
        mem.writeU32(OUT_BASE + 16 * slot, 0);
        assert.equal(drv.add([{ addr: IN_BASE + 16 * slot, len: 4 }], [{ addr: OUT_BASE + 16 * slot, len: 4 }], added), true);
        added++;
        if ((added & 3) === 0) drv.kick();
      }
      drv.kick();
      for (let t = drv.takeUsed(); t !== undefined; t = drv.takeUsed()) {
        assert.equal(t, expect);
        assert.equal(drv.lastUsedLen, 4);
        assert.equal(mem.readU32(OUT_BASE + 16 * (t % (SIZE / 2))), (t ^ MAGIC) >>> 0);
        expect++;
      }
    }
  } finally {
    await worker.terminate();
  }
}

if (isMainThread) {
  describe('rings across threads (device in a worker, SharedArrayBuffer guest memory)', { timeout: 180_000 }, () => {
    it('device/split-ring/13, driver/split-ring/24: split, passes of random size mixed with push: every buffer once, in order, with its data', async () => {
      await run(false, 1);
    });
    it('device/packed-ring/6, driver/packed-ring/16: packed, passes of random size mixed with push: every buffer once, in order, with its data', async () => {
      await run(true, 2);
    });
  });
} else {
  device(workerData as Job);
}
