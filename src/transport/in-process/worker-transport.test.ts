/**
 * Device in a worker_thread, driver on the main thread, rings in a SharedArrayBuffer: 10^4
 * random chains per ring layout go through the echo device across threads; every buffer must
 * come back exactly once with its data intact, and no used-buffer notification may be lost
 * (a lost one stalls the loop and fails the bounded wait).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BLK_DRIVER_FEATURES, BlkDriver } from '../../devices/blk/blk-driver.js';
import { VirtioDriver } from '../../driver/virtio-driver.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { F, bit } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
import { DEVICE_FACTORIES_MODULE } from '../../testing/device-factories.js';
import { type DeviceWorkerConnection, startDeviceWorker } from './worker-transport.js';
import { xorshiftBelow } from '../../testing/xorshift.js';

const N = 10_000;
const STALL_MS = 10_000;

/** Reproducible shapes from a seed. */
const rng = xorshiftBelow;

async function withWorker(args: unknown, body: (c: DeviceWorkerConnection) => Promise<void>): Promise<void> {
  const c = await startDeviceWorker({ module: DEVICE_FACTORIES_MODULE, factory: 'echoDevice', args, memorySize: 8 << 20 });
  let exited = false;
  c.worker.once('exit', () => {
    exited = true;
  });
  try {
    await body(c);
  } finally {
    await c.close();
    assert.ok(exited, 'the worker is gone');
  }
}

interface Rec {
  out: Segment[];
  inn: Segment[];
  data: Uint8Array;
  inLen: number;
}

async function run(c: DeviceWorkerConnection, wanted: bigint, seed: number): Promise<{ irqs: number; features: bigint }> {
  const d = VirtioDriver.initSync(c.transport, { wantedFeatures: wanted, dma: c.dma, queueSizes: [64] });
  const ctx = d.context;
  const q = ctx.queue(0);
  const r = rng(seed);
  const pending = new Map<number, Rec>();
  let irqs = 0;
  let waiter: (() => void) | null = null;
  d.onUsed(0, () => {
    irqs++;
    waiter?.();
  });
  /** Resolves at the first used-buffer notification after `since` (bounded: a stall fails). */
  const waitIrq = (since: number): Promise<void> =>
    irqs !== since
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => {
            waiter = null;
            reject(new Error(`no used-buffer notification for ${STALL_MS} ms with ${pending.size} in flight`));
          }, STALL_MS);
          waiter = (): void => {
            clearTimeout(t);
            waiter = null;
            resolve();
          };
        });
  const drain = (): number => {
    let n = 0;
    for (let tok = q.takeUsed(); tok !== undefined; tok = q.takeUsed()) {
      const rec = pending.get(tok);
      assert.ok(rec, `token ${tok} returned twice or never added`);
      pending.delete(tok);
      const want = Math.min(rec.data.length, rec.inLen);
      assert.equal(q.lastUsedLen, want, `token ${tok} length`);
      let at = 0;
      for (const s of rec.inn) {
        const k = Math.min(s.len, want - at);
        if (k <= 0) break;
        assert.deepEqual(ctx.memory.slice(s.addr, k), rec.data.subarray(at, at + k), `token ${tok} data`);
        at += k;
      }
      for (const s of rec.out) ctx.dma.free(s.addr);
      for (const s of rec.inn) ctx.dma.free(s.addr);
      n++;
    }
    return n;
  };
  let next = 0;
  let done = 0;
  while (done < N) {
    const since = irqs;
    const batch = 1 + r(32);
    for (let b = 0; b < batch && next < N; b++) {
      const out: Segment[] = [];
      const inn: Segment[] = [];
      const nOut = 1 + r(3);
      const nIn = 1 + r(3);
      let outLen = 0;
      let inLen = 0;
      for (let i = 0; i < nOut; i++) {
        const len = 1 + r(300);
        out.push({ addr: ctx.dma.alloc(len, 1), len });
        outLen += len;
      }
      for (let i = 0; i < nIn; i++) {
        const len = 1 + r(300);
        inn.push({ addr: ctx.dma.alloc(len, 1), len });
        inLen += len;
      }
      const data = new Uint8Array(outLen);
      for (let i = 0; i < outLen; i++) data[i] = r(256);
      let at = 0;
      for (const s of out) {
        ctx.memory.write(s.addr, data, at, s.len);
        at += s.len;
      }
      for (const s of inn) ctx.memory.fill(s.addr, s.len, 0xee);
      if (!q.add(out, inn, next)) {
        for (const s of [...out, ...inn]) ctx.dma.free(s.addr);
        break;
      }
      pending.set(next, { out, inn, data, inLen });
      next++;
    }
    ctx.kick(0);
    // The DriverQueue contract (as Linux's virtqueue_enable_cb): after draining, re-arm the
    // used-buffer notification and drain again when something arrived meanwhile.
    let got = drain();
    for (let pass = 0; pass <= q.size && q.enableInterrupts(); pass++) got += drain();
    done += got;
    if (got === 0 && done < N) await waitIrq(since);
  }
  assert.equal(pending.size, 0);
  assert.equal(done, N);
  const features = d.features;
  d.reset();
  return { irqs, features };
}

const ALL = (1n << 128n) - 1n;

describe('device in a worker_thread over SharedArrayBuffer', { timeout: 240_000 }, () => {
  for (const [name, wanted, must] of [
    ['split, INDIRECT_DESC + EVENT_IDX', ALL & ~F.RING_PACKED & ~F.IN_ORDER, F.INDIRECT_DESC | F.EVENT_IDX],
    ['split, no INDIRECT_DESC, no EVENT_IDX', ALL & ~(F.RING_PACKED | F.IN_ORDER | F.INDIRECT_DESC | F.EVENT_IDX), 0n],
    ['packed, INDIRECT_DESC + EVENT_IDX', ALL & ~F.IN_ORDER, F.RING_PACKED | F.INDIRECT_DESC | F.EVENT_IDX],
    ['packed, IN_ORDER, no EVENT_IDX', ALL & ~F.EVENT_IDX & ~F.INDIRECT_DESC, F.RING_PACKED | F.IN_ORDER],
  ] as const) {
    it(`${name}: 10^4 random chains come back exactly once with intact data, no notification lost`, async () => {
      await withWorker({ queues: [64] }, async (c) => {
        const { irqs, features } = await run(c, wanted, 0x5eed + name.length);
        assert.equal(features & must, must, 'the variant was negotiated');
        assert.ok(irqs > 0);
        assert.ok(c.transport.usedDelivered <= c.transport.interruptCounts.used, 'deliveries coalesce, never invent');
      });
    });
  }

  for (const packed of [false, true]) {
    it(`virtio-blk on a RAM disk in the worker (${packed ? 'packed' : 'split'}): 2000 concurrent random writes, then every sector reads back as the model says`, async () => {
      const SECTORS = 2048;
      const disk = new Uint8Array(new SharedArrayBuffer(SECTORS * 512));
      const model = new Uint8Array(SECTORS * 512);
      const c = await startDeviceWorker({ module: DEVICE_FACTORIES_MODULE, factory: 'blkMemoryDevice', args: { data: disk, queueSize: 64 }, memorySize: 8 << 20 });
      try {
        const wanted = BLK_DRIVER_FEATURES | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | (packed ? F.RING_PACKED : 0n);
        const d = VirtioDriver.initSync(c.transport, { wantedFeatures: wanted, dma: c.dma, queueSizes: [64] });
        assert.equal(d.features & F.RING_PACKED, packed ? F.RING_PACKED : 0n);
        const blk = new BlkDriver(d.context);
        assert.equal(blk.capacity, SECTORS);
        const r = rng(packed ? 7 : 11);
        for (let round = 0; round < 2000 / 25; round++) {
          // Non-overlapping writes within a round, so completion order does not matter.
          const used = new Set<number>();
          const batch: Promise<void>[] = [];
          for (let k = 0; k < 25; k++) {
            const n = 1 + r(8);
            const at = r(SECTORS - n);
            let clash = false;
            for (let i = 0; i < n; i++) if (used.has(at + i)) clash = true;
            if (clash) continue;
            for (let i = 0; i < n; i++) used.add(at + i);
            const data = new Uint8Array(n * 512);
            for (let i = 0; i < data.length; i++) data[i] = r(256);
            model.set(data, at * 512);
            batch.push(blk.write(at, data));
          }
          await Promise.all(batch);
        }
        const reads: Promise<void>[] = [];
        for (let at = 0; at < SECTORS; at += 64) {
          reads.push(
            blk.read(at, 64 * 512).then((b) => {
              assert.deepEqual(b, model.subarray(at * 512, (at + 64) * 512), `sectors ${at}..${at + 63}`);
            }),
          );
        }
        await Promise.all(reads);
        assert.deepEqual(disk, model, 'the disk the worker wrote is the model');
        d.reset();
      } finally {
        await c.close();
      }
    });
  }

  it('register accesses cross threads: refused FEATURES_OK, queue errors as typed VirtioErrors, config reads', async () => {
    await withWorker({ refuse: bit(1), queues: [8, 4] }, async (c) => {
      const t = c.transport;
      assert.equal(t.deviceId, 0x3f);
      assert.equal(t.numQueues(), 2);
      assert.equal(t.queueMaxSize(1), 4);
      assert.throws(
        () => VirtioDriver.initSync(t, { wantedFeatures: ALL & ~F.RING_PACKED, dma: c.dma }),
        (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.FEATURES_REJECTED,
      );
      assert.equal(t.getStatus() & Status.FAILED, Status.FAILED);
      const d = VirtioDriver.initSync(t, { wantedFeatures: ALL & ~F.RING_PACKED & ~bit(1), dma: c.dma, queueSizes: [8] });
      assert.equal(t.getStatus(), Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
      d.context.writeConfig(4, Uint8Array.of(9, 8, 7, 6));
      assert.deepEqual([...d.readConfig(0, 8)], [0, 0, 0, 0, 9, 8, 7, 6]);
      assert.equal(t.getDeviceFeatures() & F.VERSION_1, F.VERSION_1);
      // A queue size the device refuses comes back as the core's typed error.
      t.setStatus(0);
      t.setStatus(Status.ACKNOWLEDGE);
      t.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
      t.setDriverFeatures(F.VERSION_1);
      t.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
      assert.throws(
        () => t.setupQueue(0, { size: 16, descAddr: 0x10000, driverAddr: 0x11000, deviceAddr: 0x12000 }),
        (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_BAD_CONFIG,
      );
    });
  });

  it('a closed transport refuses register accesses and drops kicks', async () => {
    const c = await startDeviceWorker({ module: DEVICE_FACTORIES_MODULE, factory: 'echoDevice', args: {}, memorySize: 1 << 20 });
    await c.close();
    assert.throws(() => c.transport.getStatus(), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.DEVICE_NEEDS_RESET);
    assert.doesNotThrow(() => c.transport.notify(0));
    await c.close();
  });

  it('a factory that does not exist fails the start with a typed error and no worker left', async () => {
    await assert.rejects(
      startDeviceWorker({ module: DEVICE_FACTORIES_MODULE, factory: 'nope', memorySize: 1 << 20 }),
      (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT,
    );
  });
});

describe('device worker failure', { timeout: 60_000 }, () => {
  it('a worker that dies makes register accesses fail at once with a typed error; close still completes', async () => {
    const c = await startDeviceWorker({ module: DEVICE_FACTORIES_MODULE, factory: 'echoDevice', args: {}, memorySize: 1 << 20 });
    const gone = new Promise<void>((r) => c.worker.once('exit', () => r()));
    await c.worker.terminate();
    await gone;
    const t0 = Date.now();
    assert.throws(() => c.transport.getStatus(), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.DEVICE_NEEDS_RESET);
    assert.ok(Date.now() - t0 < 1000, 'no wait for the call timeout');
    await c.close();
  });
});
