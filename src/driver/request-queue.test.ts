/**
 * RequestQueue: the request queue every device-type driver uses. A scripted driver queue shows
 * the token map, the overflow FIFO and the used loop exactly; a loopback device shows reset,
 * DEVICE_NEEDS_RESET and queue reset failing pending requests through VirtioDriver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext, VirtioDevice } from '../device/types.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain } from '../queue/chain.js';
import type { DriverQueue, Segment } from '../queue/types.js';
import { F } from '../spec/features.js';
import { createLoopback } from '../testing/loopback.js';
import { DmaAllocator } from './dma-allocator.js';
import { RequestAbortReason, RequestAbortedError, RequestQueue } from './request-queue.js';
import { type DriverContext, type DriverStopEvent, DriverStopReason } from './types.js';

const T = { timeout: 20_000 };

/** A driver queue played by the test: one descriptor per segment, used entries given by the test. */
class ScriptedQueue implements DriverQueue<number> {
  readonly packed = false;
  /** Buffers in the ring, in the order they were added. */
  readonly ring: { token: number; out: readonly Segment[]; inn: readonly Segment[] }[] = [];
  readonly used: [number, number][] = [];
  lastUsedLen = 0;
  enables = 0;
  /** Called by enableInterrupts: the device completing something between drain and re-enable. */
  onEnable: (() => boolean) | null = null;
  private descsInUse = 0;
  constructor(readonly size: number) {}
  get freeCount(): number {
    return this.size - this.descsInUse;
  }
  add(out: readonly Segment[], inn: readonly Segment[], token: number): boolean {
    const n = out.length + inn.length;
    if (n > this.freeCount) return false;
    this.descsInUse += n;
    this.ring.push({ token, out, inn });
    return true;
  }
  kick(): boolean {
    return true;
  }
  notificationData(): number {
    return 0;
  }
  takeUsed(): number | undefined {
    const u = this.used.shift();
    if (!u) return undefined;
    this.lastUsedLen = u[1];
    return u[0];
  }
  disableInterrupts(): void {}
  enableInterrupts(): boolean {
    this.enables++;
    return this.onEnable ? this.onEnable() : this.used.length > 0;
  }
  /** The device uses the oldest buffer in the ring with `len` bytes written. */
  complete(len: number): { token: number; out: readonly Segment[]; inn: readonly Segment[] } {
    const b = this.ring.shift();
    assert.ok(b, 'nothing in the ring');
    this.descsInUse -= b.out.length + b.inn.length;
    this.used.push([b.token, len]);
    return b;
  }
}

class ScriptedContext implements DriverContext {
  readonly memory = GuestMemory.allocate(1 << 16);
  readonly dma = new DmaAllocator(0, 1 << 16);
  readonly littleEndian = true;
  readonly features = 0n;
  readonly numQueues = 1;
  q: ScriptedQueue;
  kicks = 0;
  usedCb: (() => void) | null = null;
  readonly stopListeners = new Set<(e: DriverStopEvent) => void>();
  constructor(size: number) {
    this.q = new ScriptedQueue(size);
  }
  queue(): DriverQueue<number> {
    return this.q;
  }
  kick(): void {
    this.kicks++;
  }
  onUsed(_i: number, cb: () => void): void {
    this.usedCb = cb;
  }
  onConfigChange(): void {}
  readConfig(_o: number, len: number): Uint8Array {
    return new Uint8Array(len);
  }
  writeConfig(): void {}
  onStop(l: (e: DriverStopEvent) => void): () => void {
    this.stopListeners.add(l);
    return () => this.stopListeners.delete(l);
  }
  stop(reason: DriverStopReason, queueIndex = -1): void {
    for (const l of this.stopListeners) l({ reason, queueIndex });
  }
  /** Interrupt: the used-buffer callback. */
  interrupt(): void {
    this.usedCb?.();
  }
}

const seg = (addr: number, len = 16): Segment[] => [{ addr, len }];
const aborted = (reason: RequestAbortReason) => (e: unknown) =>
  e instanceof RequestAbortedError && e.reason === reason && e.code === ErrorCode.DEVICE_NEEDS_RESET;
/** Settles pending promise callbacks. */
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('RequestQueue (scripted driver queue)', T, () => {
  it('resolves each request with the used (written) length', async () => {
    const ctx = new ScriptedContext(8);
    const rq = new RequestQueue(ctx, 0);
    const a = rq.submit(seg(0x100), seg(0x200, 64));
    const b = rq.submit([], seg(0x300, 64));
    assert.equal(ctx.kicks, 2);
    assert.equal(rq.inFlight, 2);
    ctx.q.complete(17);
    ctx.q.complete(0);
    ctx.interrupt();
    assert.equal(await a, 17);
    assert.equal(await b, 0);
    assert.equal(rq.inFlight, 0);
  });

  it('ring full: requests wait and go in, in submission order, as used buffers free descriptors', async () => {
    const ctx = new ScriptedContext(4);
    const rq = new RequestQueue(ctx, 0);
    const done: number[] = [];
    const ps = Array.from({ length: 10 }, (_, i) => rq.submit(seg(0x1000 + i * 0x10, 16)).then((n) => void done.push(n)));
    assert.equal(ctx.q.ring.length, 4);
    assert.equal(rq.waiting, 6);
    assert.equal(rq.inFlight, 10);
    // Two used buffers free two descriptors: exactly the next two requests go in, in order, with one kick.
    ctx.q.complete(1);
    ctx.q.complete(2);
    const kicks = ctx.kicks;
    ctx.interrupt();
    assert.equal(ctx.kicks, kicks + 1);
    assert.deepEqual(
      ctx.q.ring.map((b) => b.out[0]!.addr),
      [0x1020, 0x1030, 0x1040, 0x1050],
    );
    assert.equal(rq.waiting, 4);
    // A new request goes behind the waiting ones, never ahead of them.
    const late = rq.submit(seg(0x9000));
    const order: number[] = [];
    for (let i = 0; i < 9; i++) {
      const b = ctx.q.complete(100 + i);
      order.push(b.out[0]!.addr);
      ctx.interrupt();
    }
    assert.deepEqual(order, [0x1020, 0x1030, 0x1040, 0x1050, 0x1060, 0x1070, 0x1080, 0x1090, 0x9000]);
    assert.equal(ctx.q.ring.length, 0);
    await Promise.all(ps);
    assert.equal(await late, 108);
    assert.equal(done.length, 10);
    assert.deepEqual(done, [1, 2, 100, 101, 102, 103, 104, 105, 106, 107]);
    assert.equal(rq.inFlight, 0);
  });

  it('a request needing more descriptors than the whole ring is refused, not parked forever', async () => {
    const ctx = new ScriptedContext(2);
    const rq = new RequestQueue(ctx, 0);
    await assert.rejects(rq.submit(seg(0x100), [...seg(0x200), ...seg(0x300)]), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_FULL);
    // Behind a busy ring it waits, and is refused once the ring is empty and it still does not fit.
    const small = rq.submit(seg(0x100));
    const big = rq.submit(seg(0x100), [...seg(0x200), ...seg(0x300)]);
    const after = rq.submit(seg(0x400));
    assert.equal(rq.waiting, 2);
    ctx.q.complete(5);
    ctx.interrupt();
    assert.equal(await small, 5);
    await assert.rejects(big, (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_FULL);
    ctx.q.complete(6);
    ctx.interrupt();
    assert.equal(await after, 6);
    await assert.rejects(rq.submit([], []), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  it('interrupt re-enable race: a buffer used between the drain and enableInterrupts is taken in the same pass', async () => {
    const ctx = new ScriptedContext(8);
    const rq = new RequestQueue(ctx, 0);
    let second = false;
    const a = rq.submit(seg(0x100)).then((n) => n);
    const b = rq.submit(seg(0x200)).then((n) => {
      second = true;
      return n;
    });
    ctx.q.complete(11);
    let raced = false;
    ctx.q.onEnable = () => {
      // The device uses the second buffer just as the driver re-enables interrupts and sends
      // no further interrupt: enableInterrupts reports it (returns true).
      if (raced) return false;
      raced = true;
      ctx.q.complete(22);
      return true;
    };
    ctx.interrupt(); // the only interrupt
    assert.equal(ctx.q.enables, 2, 'polled again after enableInterrupts returned true');
    assert.equal(await a, 11);
    assert.equal(await b, 22);
    assert.ok(second);
  });

  it('used loop is bounded when enableInterrupts keeps saying more arrived', () => {
    const ctx = new ScriptedContext(4);
    const rq = new RequestQueue(ctx, 0);
    ctx.q.onEnable = () => true;
    rq.poll();
    assert.equal(ctx.q.enables, 5); // size + 1 passes
  });

  it('stale or forged tokens are ignored; a used entry completes each request once', async () => {
    const ctx = new ScriptedContext(4);
    const rq = new RequestQueue(ctx, 0);
    const p = rq.submit(seg(0x100));
    const token = ctx.q.complete(3).token;
    ctx.q.used.push([token, 99], [-1, 1], [1e9, 1], [2, 1]);
    ctx.interrupt();
    assert.equal(await p, 3);
    assert.equal(rq.inFlight, 0);
  });

  it('device reset and DEVICE_NEEDS_RESET fail every pending request (ring and waiting) with a typed error; later submits fail', async () => {
    for (const reason of [DriverStopReason.DEVICE_RESET, DriverStopReason.NEEDS_RESET]) {
      const ctx = new ScriptedContext(2);
      const rq = new RequestQueue(ctx, 0);
      const ps = Array.from({ length: 5 }, (_, i) => rq.submit(seg(0x100 * (i + 1))));
      assert.equal(rq.waiting, 3);
      ctx.stop(reason);
      for (const p of ps) await assert.rejects(p, aborted(reason));
      assert.equal(rq.inFlight, 0);
      assert.ok(rq.stopped);
      await assert.rejects(rq.submit(seg(0x100)), aborted(reason));
      // A late used entry from the stopped device is ignored.
      ctx.q.complete(1);
      ctx.interrupt();
      assert.equal(rq.inFlight, 0);
    }
  });

  it('queue reset fails the pending requests of that queue only and continues on the fresh ring', async () => {
    const ctx = new ScriptedContext(2);
    const rq = new RequestQueue(ctx, 0);
    const old = [rq.submit(seg(0x100)), rq.submit(seg(0x200)), rq.submit(seg(0x300))];
    ctx.stop(DriverStopReason.QUEUE_RESET, 1); // another queue: nothing happens
    assert.equal(rq.inFlight, 3);
    ctx.q = new ScriptedQueue(2); // VirtioDriver.resetQueue builds a new driver queue
    ctx.stop(DriverStopReason.QUEUE_RESET, 0);
    for (const p of old) await assert.rejects(p, aborted(RequestAbortReason.QUEUE_RESET));
    assert.ok(!rq.stopped);
    const p = rq.submit(seg(0x400));
    assert.equal(ctx.q.ring.length, 1);
    ctx.q.complete(7);
    ctx.interrupt();
    assert.equal(await p, 7);
  });

  it('detach fails pending requests and stops listening', async () => {
    const ctx = new ScriptedContext(4);
    const rq = new RequestQueue(ctx, 0);
    const p = rq.submit(seg(0x100));
    rq.detach();
    await assert.rejects(p, aborted(RequestAbortReason.DETACHED));
    assert.equal(ctx.stopListeners.size, 0);
    await assert.rejects(rq.submit(seg(0x100)), aborted(RequestAbortReason.DETACHED));
  });

  it('no slot leak: 10^5 requests through a ring of 8 with overflow keep the slot pool at its peak', async () => {
    const ctx = new ScriptedContext(8);
    const rq = new RequestQueue(ctx, 0);
    const segs = seg(0x100);
    let completed = 0;
    const onDone = (): void => {
      completed++;
    };
    for (let round = 0; round < 100_000 / 20; round++) {
      // 20 outstanding: 8 in the ring, 12 waiting.
      for (let i = 0; i < 20; i++) void rq.submit(segs).then(onDone);
      while (ctx.q.ring.length > 0) {
        ctx.q.complete(1);
        ctx.q.complete(1);
        ctx.interrupt();
      }
      assert.equal(rq.inFlight, 0);
      if (round % 500 === 0) await tick();
    }
    await tick();
    assert.equal(completed, 100_000);
    assert.equal(rq.inFlight, 0);
    assert.ok(rq.slotCapacity <= 32, `slot pool grew to ${rq.slotCapacity}`);
  });
});

/** A device that holds the buffers it is given until the test serves them (or breaks). */
class HoldingDevice implements VirtioDevice {
  readonly deviceId = 0x3f;
  readonly offeredFeatures = F.VERSION_1 | F.EVENT_IDX | F.RING_RESET | F.RING_PACKED;
  readonly queueMaxSizes = [4];
  readonly configSize = 0;
  ctx: DeviceContext | null = null;
  readConfig(_o: number, dst: Uint8Array): void {
    dst.fill(0);
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  onQueueNotify(): void {}
  reset(): void {
    this.ctx = null;
  }
  resetQueue(): void {}
  /** Uses every available buffer with `written` bytes. */
  serve(written: number): number {
    const q = this.ctx!.queue(0)!;
    const chain = new DescriptorChain(q.memory, 8);
    let n = 0;
    while (q.pop(chain)) {
      q.push(chain, written);
      n++;
    }
    this.ctx!.notifyUsed(0);
    return n;
  }
}

describe('RequestQueue over VirtioDriver (loopback)', T, () => {
  for (const packed of [false, true]) {
    const ring = packed ? 'packed' : 'split';
    it(`${ring}: overflow drains through a real ring; device reset fails what is pending with RequestAbortedError`, async () => {
      const dev = new HoldingDevice();
      const lb = await createLoopback(dev, { packed, queueSize: 4 });
      const rq = new RequestQueue(lb.context, 0);
      const buf = lb.dma.alloc(64, 16);
      const ps = Array.from({ length: 6 }, () => rq.submit([], [{ addr: buf, len: 64 }]).then((n) => n, (e: unknown) => e));
      assert.equal(rq.waiting, 2);
      assert.equal(dev.serve(9), 4);
      for (const p of ps.slice(0, 4)) assert.equal(await p, 9);
      assert.equal(rq.waiting, 0);
      assert.equal(rq.inFlight, 2);
      await lb.close(); // VirtioDriver.reset()
      for (const p of ps.slice(4)) assert.ok(aborted(RequestAbortReason.DEVICE_RESET)(await p));
    });
  }

  it('DEVICE_NEEDS_RESET (config change with the bit set) fails pending requests', async () => {
    const dev = new HoldingDevice();
    const lb = await createLoopback(dev, { queueSize: 4 });
    try {
      const rq = new RequestQueue(lb.context, 0);
      const buf = lb.dma.alloc(64, 16);
      const p = rq.submit([], [{ addr: buf, len: 64 }]);
      dev.ctx!.needsReset('test: the device broke');
      await assert.rejects(p, aborted(RequestAbortReason.NEEDS_RESET));
      assert.ok(rq.stopped);
    } finally {
      await lb.close();
    }
  });

  it('VirtioDriver.resetQueue (2.6.1) fails the old ring requests; the queue works on afterwards', async () => {
    const dev = new HoldingDevice();
    const lb = await createLoopback(dev, { queueSize: 4 });
    try {
      const rq = new RequestQueue(lb.context, 0);
      const buf = lb.dma.alloc(64, 16);
      const p = rq.submit([], [{ addr: buf, len: 64 }]);
      lb.driver.resetQueue(0);
      await assert.rejects(p, aborted(RequestAbortReason.QUEUE_RESET));
      const q = rq.submit([], [{ addr: buf, len: 64 }]);
      assert.equal(dev.serve(5), 1);
      assert.equal(await q, 5);
    } finally {
      await lb.close();
    }
  });
});
