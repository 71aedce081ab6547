/**
 * QueueServer: the serving loop devices share. Driven here through a driver queue and a device
 * queue on one GuestMemory, with a hand-made DeviceContext that counts what the server asks of
 * the transport (notifications, DEVICE_NEEDS_RESET) and a queue wrapper counting ring calls.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDriverQueue } from '../driver/create-queue.js';
import { QueueFault } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { createDeviceQueue } from '../queue/create-queue.js';
import { splitRingLayout } from '../queue/split-layout.js';
import type { DeviceQueue, DriverQueue, QueueConfig } from '../queue/types.js';
import { F } from '../spec/features.js';
import { DEFAULT_SEGMENT_BUDGET, QueueRequest, QueueServer } from './queue-server.js';
import { QueueStats } from './queue-stats.js';
import { DATA, Rig, settle } from './queue-server-test-support.js';
import type { DeviceContext } from './types.js';

for (const packed of [false, true]) {
  const kind = packed ? 'packed' : 'split';
  describe(`QueueServer (${kind} ring)`, () => {
    it('synchronous completion: every buffer used with its length, deferred publish, one notification per pass', () => {
      const rig = new Rig(packed, (req) => req.chain.writableBytes - 2);
      rig.server.activate(rig.ctx);
      assert.deepEqual(rig.events, ['started 0 current']);
      const tokens = rig.offer(6);
      rig.notifications = 0;
      rig.dq!.publishes = 0;
      rig.server.onQueueNotify(0);
      assert.deepEqual(rig.used(), tokens.map((t) => [t, 30]));
      assert.equal(rig.notifications, 1);
      assert.equal(rig.dq!.deferred, 6, 'completions inside the pass are deferred');
      assert.equal(rig.dq!.pushes, 0);
      // One publication at the end of the round (and a no-op one when the pass ends).
      assert.ok(rig.dq!.publishes >= 1 && rig.dq!.publishes <= 2, `publishes ${rig.dq!.publishes}`);
      assert.equal(rig.server.inFlight(0), 0);
    });

    it('hasAvailable: whether a served queue holds buffers not popped yet, seen from inside a request (the blk wait gate)', () => {
      const seen: boolean[] = [];
      let rig: Rig | null = null;
      rig = new Rig(packed, (req) => {
        seen.push(rig!.server.hasAvailable());
        return req.chain.writableBytes;
      });
      assert.equal(rig.server.hasAvailable(), false, 'before activation');
      rig.server.activate(rig.ctx);
      rig.offer(3);
      assert.equal(rig.server.hasAvailable(), true, 'three posted, none popped');
      rig.server.onQueueNotify(0);
      // While serving the first two, more were posted behind them; serving the last, none.
      assert.deepEqual(seen, [true, true, false]);
      assert.equal(rig.server.hasAvailable(), false);
    });

    it('Promise completion: used when resolved, one notification per microtask batch, rejection returns the buffer', async () => {
      const resolvers: ((n: number) => void)[] = [];
      const rejecters: ((e: unknown) => void)[] = [];
      const rig = new Rig(packed, () => new Promise<number>((res, rej) => void (resolvers.push(res), rejecters.push(rej))));
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(5);
      rig.server.onQueueNotify(0);
      assert.equal(resolvers.length, 5);
      assert.equal(rig.server.inFlight(0), 5);
      assert.deepEqual(rig.used(), []);
      rig.notifications = 0;
      for (let i = 0; i < 4; i++) resolvers[i]!(i + 1);
      await settle();
      assert.deepEqual(rig.used(), tokens.slice(0, 4).map((t, i) => [t, i + 1]));
      assert.equal(rig.notifications, 1, 'four completions in one turn: one notification');
      assert.equal(rig.dq!.pushes, 4);
      rejecters[4]!(new Error('backend gone'));
      await settle();
      assert.deepEqual(rig.used(), [[tokens[4], 0]]);
      assert.equal(rig.server.inFlight(0), 0);
      assert.deepEqual(rig.resets, []);
    });

    it('later completion through complete(): in any order', async () => {
      const held: QueueRequest[] = [];
      const rig = new Rig(packed, (req) => void held.push(req));
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(3);
      rig.server.onQueueNotify(0);
      assert.equal(held.length, 3);
      assert.ok(rig.server.complete(held[2]!, 7));
      assert.ok(rig.server.complete(held[0]!, 5));
      assert.equal(rig.server.complete(held[0]!, 5), false, 'a request completes once');
      assert.ok(rig.server.complete(held[1]!, 6));
      await settle();
      assert.deepEqual(rig.used(), [[tokens[2], 7], [tokens[0], 5], [tokens[1], 6]]);
    });

    it('device reset cancels requests in flight: late completions are dropped without touching the ring', async () => {
      const held: QueueRequest[] = [];
      const rig = new Rig(packed, (req) => void held.push(req));
      rig.server.activate(rig.ctx);
      rig.offer(4);
      rig.server.onQueueNotify(0);
      assert.equal(held.length, 4);
      const before = rig.ringBytes();
      rig.server.reset();
      assert.deepEqual(rig.events, ['started 0 current', 'stopped 0']);
      for (const r of held) {
        assert.equal(rig.server.isLive(r), false);
        assert.equal(rig.server.complete(r, 1), false);
      }
      await settle();
      assert.deepEqual(rig.ringBytes(), before, 'no used entry written');
      assert.deepEqual(rig.used(), []);
      assert.equal(rig.dq!.pushes + rig.dq!.deferred, 0);
      // A notification after reset does nothing (no context).
      rig.server.onQueueNotify(0);
      assert.equal(held.length, 4);
    });

    it('queue reset (2.6.1) and a re-enabled queue: old requests dropped, the new queue served with queueStarted', async () => {
      const held: QueueRequest[] = [];
      const rig = new Rig(packed, (req) => void held.push(req));
      rig.server.activate(rig.ctx);
      rig.offer(2);
      rig.server.onQueueNotify(0);
      rig.server.resetQueue(0);
      assert.deepEqual(rig.events, ['started 0 current', 'stopped 0']);
      const oldQueue = rig.dq!;
      rig.enable(0x10000); // the driver sets the queue up again
      const tokens = rig.offer(2);
      rig.server.onQueueNotify(0);
      assert.deepEqual(rig.events, ['started 0 current', 'stopped 0', 'started 0 current']);
      assert.equal(held.length, 4);
      assert.equal(rig.server.complete(held[0]!, 1), false);
      assert.ok(rig.server.complete(held[2]!, 3));
      assert.ok(rig.server.complete(held[3]!, 4));
      await settle();
      assert.equal(oldQueue.pushes + oldQueue.deferred, 0);
      assert.deepEqual(rig.used(), [[tokens[0], 3], [tokens[1], 4]]);
    });

    it('a queue object replaced without a reset (vhost-user ring restart): stopped, then started with the new one', () => {
      const served: number[] = [];
      const rig = new Rig(packed, (req) => {
        served.push(req.chain.id);
        return 0;
      });
      rig.server.activate(rig.ctx);
      rig.enable(0x10000);
      rig.offer(1);
      rig.server.onQueueNotify(0);
      assert.deepEqual(rig.events, ['started 0 current', 'stopped 0', 'started 0 current']);
      assert.equal(served.length, 1);
      assert.equal(rig.used().length, 1);
    });

    it('a ring rule broken by the driver (QueueError) sets DEVICE_NEEDS_RESET; so does a handler that throws', () => {
      const rig = new Rig(packed, () => 0);
      rig.server.activate(rig.ctx);
      if (packed) {
        // An available descriptor with INDIRECT, which was not negotiated.
        rig.mem.writeU32(rig.cfg.descAddr + 8, 16, true);
        rig.mem.writeU16(rig.cfg.descAddr + 14, 0x80 | 0x4, true);
      } else {
        rig.mem.writeU16(rig.cfg.driverAddr + 4, 99, true); // head 99 of a queue of 8
        rig.mem.writeU16(rig.cfg.driverAddr + 2, 1, true);
      }
      rig.server.onQueueNotify(0);
      assert.equal(rig.resets.length, 1);
      assert.match(rig.resets[0]!, packed ? new RegExp(QueueFault.INDIRECT_NOT_NEGOTIATED) : new RegExp(QueueFault.HEAD_OUT_OF_RANGE));

      const rig2 = new Rig(packed, () => {
        throw new TypeError('device bug');
      });
      rig2.server.activate(rig2.ctx);
      rig2.offer(1);
      rig2.server.onQueueNotify(0);
      assert.equal(rig2.resets.length, 1);
      assert.match(rig2.resets[0]!, /unexpected: device bug/);
    });

    it('a notification while serving (a synchronous completion path) loops instead of recursing', () => {
      let depth = 0;
      let maxDepth = 0;
      let rig: Rig | null = null;
      rig = new Rig(packed, () => {
        depth++;
        maxDepth = Math.max(maxDepth, depth);
        rig!.server.onQueueNotify(0);
        depth--;
        return 1;
      });
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(5);
      rig.server.onQueueNotify(0);
      assert.equal(maxDepth, 1);
      assert.deepEqual(rig.used(), tokens.map((t) => [t, 1]));
    });

    it('maxInFlight: a starved pass resumes when a request completes', async () => {
      const held: QueueRequest[] = [];
      const rig = new Rig(packed, (req) => void held.push(req), { maxInFlight: 2 });
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(5);
      rig.server.onQueueNotify(0);
      assert.equal(held.length, 2);
      assert.equal(rig.server.poolSize(0), 2);
      rig.server.complete(held[0]!, 1); // resumes: one more popped
      assert.equal(held.length, 3);
      for (let i = 1; held.length < 5 || i < held.length; i++) rig.server.complete(held[i]!, 1);
      await settle();
      assert.deepEqual(rig.used().map(([t]) => t).sort(), tokens);
      assert.equal(rig.server.poolSize(0), 2);
    });

    it('the chain pool never exceeds the queue size and does not grow over 10^5 requests', async () => {
      const held: QueueRequest[] = [];
      let n = 0;
      // Every third request completes later (the next round), the others at once.
      const rig = new Rig(
        packed,
        (req) => {
          if (n++ % 3 === 0) {
            held.push(req);
            return undefined;
          }
          return 4;
        },
        {},
        16,
      );
      rig.server.activate(rig.ctx);
      let done = 0;
      let poolAfterWarmup = -1;
      while (done < 100_000) {
        // Two descriptors per buffer.
        const free = Math.floor(rig.drv.freeCount / 2);
        if (free > 0) rig.offer(free);
        rig.server.onQueueNotify(0);
        for (const r of held.splice(0)) assert.ok(rig.server.complete(r, 4));
        for (let t = rig.drv.takeUsed(); t !== undefined; t = rig.drv.takeUsed()) done++;
        const pool = rig.server.poolSize(0);
        assert.ok(pool <= 16, `pool ${pool}`);
        if (done > 1000 && poolAfterWarmup < 0) poolAfterWarmup = pool;
        if (poolAfterWarmup >= 0) assert.equal(pool, poolAfterWarmup, 'no growth after warm-up');
      }
      await settle();
      assert.deepEqual(rig.resets, []);
    });

    it('chain storage is bounded: long chains held in flight stop popping above segmentBudget, completions give storage back', () => {
      const held: QueueRequest[] = [];
      const BUDGET = 40;
      const rig = new Rig(packed, (req) => void held.push(req), { segmentBudget: BUDGET }, 128);
      rig.server.activate(rig.ctx);
      // Six chains of 20 segments each (a chain's storage starts at 8 and doubles to 32).
      const segs = Array.from({ length: 19 }, (_, i) => ({ addr: DATA + i * 0x10, len: 4 }));
      for (let t = 0; t < 6; t++) assert.ok(rig.drv.add(segs, [{ addr: DATA + 0x1000 + t * 0x10, len: 8 }], 100 + t));
      rig.drv.kick();
      rig.server.onQueueNotify(0);
      assert.equal(held.length, 2, 'popping stopped once the held chains went over the budget');
      assert.ok(rig.server.chainSegments <= BUDGET + 32, `held ${rig.server.chainSegments}`);
      const done: number[] = [];
      while (held.length > 0) {
        const req = held.shift()!;
        assert.equal(req.chain.count, 20);
        assert.ok(rig.server.complete(req, 0));
        assert.ok(rig.server.chainSegments <= BUDGET + 32, `held ${rig.server.chainSegments}`);
        for (const [t] of rig.used()) done.push(t);
      }
      assert.deepEqual(done, [100, 101, 102, 103, 104, 105], 'every chain served in the end');
      assert.ok(rig.server.inFlight(0) === 0);
      assert.deepEqual(rig.resets, []);
    });

    it('chains grow on demand: a slot costs what its chains held, not the longest chain the queue allows', () => {
      const rig = new Rig(packed, (req) => req.chain.writableBytes, {}, 1024);
      rig.server.activate(rig.ctx);
      rig.offer(4);
      rig.server.onQueueNotify(0);
      assert.equal(rig.used().length, 4);
      // One slot (synchronous completion), 8 segments of storage, not 1024 + slack.
      assert.equal(rig.server.poolSize(0), 1);
      assert.equal(rig.server.chainSegments, 8);
    });
  });
}

/** A context over `devices` (queue i is devices[i]) that ignores notifications and fails the test on DEVICE_NEEDS_RESET. */
function contextOf(mem: GuestMemory, devices: readonly DeviceQueue[]): DeviceContext {
  return {
    memory: mem,
    features: F.VERSION_1,
    littleEndian: true,
    queue: (i) => devices[i] ?? null,
    notifyUsed: () => undefined,
    notifyConfigChange: () => undefined,
    needsReset: (r) => assert.fail(r),
  };
}

describe('QueueServer memory under a driver that posts everything to a device that holds it', () => {
  it('256 queues of 32768 entries, 2048 requests posted on each and none completed: slots and chain storage stay bounded by the segment budget', { timeout: 120_000 }, () => {
    const QUEUES = 256;
    const SIZE = 32768;
    const POSTED = 2048;
    // Rings only (descriptor tables are 512 KiB each) and one shared 16-byte data area.
    const ringBytes = SIZE * 16 + 0x20000 + SIZE * 8 + 0x1000;
    const mem = GuestMemory.allocate(QUEUES * ringBytes + 0x10000);
    const data = QUEUES * ringBytes;
    const drivers: DriverQueue<number>[] = [];
    const devices: DeviceQueue[] = [];
    for (let i = 0; i < QUEUES; i++) {
      const l = splitRingLayout(SIZE, i * ringBytes);
      const cfg: QueueConfig = { size: SIZE, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.VERSION_1, index: i };
      const drv = createDriverQueue<number>(mem, cfg);
      for (let r = 0; r < POSTED; r++) assert.ok(drv.add([{ addr: data, len: 16 }], [{ addr: data + 16, len: 1 }], r));
      drv.kick();
      drivers.push(drv);
      devices.push(createDeviceQueue(mem, cfg));
    }
    const held: QueueRequest[] = [];
    const server = new QueueServer({ name: 'hold', numQueues: QUEUES, handler: () => (req) => void held.push(req) });
    const ctx = contextOf(mem, devices);
    const heap = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    global.gc?.();
    const before = heap();
    server.activate(ctx);
    for (let i = 0; i < QUEUES; i++) server.onQueueNotify(i);
    const grown = heap() - before;
    // 524288 requests were posted; the budget (2^17 segments, 8 per slot) admits 16384 slots
    // plus one per queue, each a few hundred bytes.
    assert.ok(held.length <= DEFAULT_SEGMENT_BUDGET / 8 + QUEUES, `${held.length} requests held`);
    assert.ok(held.length >= DEFAULT_SEGMENT_BUDGET / 8, `${held.length} requests held: the budget is used, not starved early`);
    assert.ok(server.chainSegments <= DEFAULT_SEGMENT_BUDGET + QUEUES * 8, `${server.chainSegments} segments`);
    assert.ok(grown < 32 * 2 ** 20, `heap grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
    // Completing what is held lets the queues go on, still within the budget.
    for (const req of held.splice(0, 4096)) server.complete(req, 1);
    assert.ok(server.chainSegments <= DEFAULT_SEGMENT_BUDGET + QUEUES * 8);
    assert.ok(held.length > 0);
  });
});

describe('QueueServer counts into the context\'s QueueStats', () => {
  it('popped, completed and their bytes; a throwing handler is an error; requests a reset drops are dropped', async () => {
    const held: ((n: number) => void)[] = [];
    let mode: 'sync' | 'hold' | 'throw' = 'sync';
    const rig = new Rig(false, (req) => {
      if (mode === 'throw') throw new Error('device bug');
      if (mode === 'hold') return new Promise<number>((res) => void held.push(res));
      return req.chain.writableBytes - 2;
    });
    const stats = new QueueStats();
    const ctx: DeviceContext = { ...rig.ctx, stats };
    rig.server.activate(ctx);
    rig.offer(3);
    rig.server.onQueueNotify(0);
    let q = stats.snapshot()[0]!;
    assert.deepEqual([q.requests, q.completed, q.bytesRead, q.bytesWritten, q.inFlight], [3, 3, 48, 90, 0]);
    mode = 'hold';
    rig.offer(2);
    rig.server.onQueueNotify(0);
    assert.equal(stats.snapshot()[0]!.inFlight, 2);
    rig.server.reset();
    for (const r of held) r(10);
    await settle();
    q = stats.snapshot()[0]!;
    assert.deepEqual([q.requests, q.completed, q.dropped, q.inFlight, q.bytesWritten], [5, 3, 2, 0, 90]);
    mode = 'throw';
    rig.server.activate(ctx);
    rig.offer(1);
    rig.server.onQueueNotify(0);
    assert.equal(stats.value(0, 'errors'), 1);
    assert.equal(rig.resets.length, 1);
  });
});

describe('QueueServer: a completion inside another queue\'s handler', () => {
  it('resumes its starved queue after that handler returns, never inside it (virtio-fs\'s READ batch completes other queues\' requests while it serves one)', async () => {
    const mem = GuestMemory.allocate(1 << 20);
    const drivers: DriverQueue<number>[] = [];
    const devices: DeviceQueue[] = [];
    for (let i = 0; i < 2; i++) {
      const l = splitRingLayout(16, 0x1000 + i * 0x4000);
      const cfg: QueueConfig = { size: 16, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.VERSION_1, index: i };
      drivers.push(createDriverQueue<number>(mem, cfg));
      devices.push(createDeviceQueue(mem, cfg));
    }
    const events: string[] = [];
    let held: QueueRequest | null = null;
    let server: QueueServer | null = null;
    let q1Served = 0;
    server = new QueueServer({
      name: 'reentry',
      numQueues: 2,
      // One request in flight per queue: queue 1's second request waits for its first (starved).
      maxInFlight: 1,
      handler: (i) =>
        i === 1
          ? (req) => {
              events.push(`q1 request ${++q1Served}`);
              if (held === null) held = req; // answered later, by queue 0's handler
              else return 0;
              return undefined;
            }
          : () => {
              events.push('q0 start');
              server!.complete(held!, 0);
              events.push('q0 end');
              return 0;
            },
    });
    const ctx = contextOf(mem, devices);
    server.activate(ctx);
    const post = (i: number, token: number): void => {
      assert.ok(drivers[i]!.add([{ addr: 0x20000 + token * 0x100, len: 16 }], [{ addr: 0x20080 + token * 0x100, len: 8 }], token));
      drivers[i]!.kick();
    };
    post(1, 1);
    post(1, 2);
    server.onQueueNotify(1);
    assert.deepEqual(events, ['q1 request 1'], 'the second request waits for a slot');
    post(0, 3);
    server.onQueueNotify(0);
    assert.deepEqual(events, ['q1 request 1', 'q0 start', 'q0 end'], 'queue 1 did not run inside queue 0\'s handler');
    await settle();
    assert.deepEqual(events, ['q1 request 1', 'q0 start', 'q0 end', 'q1 request 2'], 'and resumed right after');
    assert.equal(server.inFlight(1), 0);
  });
});
