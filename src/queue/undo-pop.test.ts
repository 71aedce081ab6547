/**
 * DeviceQueue.undoPop: popped buffers go back to the ring and the next pops yield them again,
 * exactly (same id, same segments, same ring position), for split and packed rings, across the
 * wrap of the indices, with indirect tables and with IN_ORDER batches.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createDriverQueue } from '../driver/create-queue.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import type { DescriptorChain } from './chain.js';
import { createDeviceQueue } from './create-queue.js';
import { packedRingLayout } from './packed-layout.js';
import { splitRingLayout } from './split-layout.js';
import type { DeviceQueue, DriverQueue, QueueConfig, Segment } from './types.js';

const DATA = 0x40000;

interface Pair {
  mem: GuestMemory;
  dev: DeviceQueue;
  drv: DriverQueue<number>;
  chain: DescriptorChain;
}

function pair(packed: boolean, size: number, extra = 0n): Pair {
  const mem = GuestMemory.allocate(1 << 20);
  const l = packed ? packedRingLayout(size, 0x1000) : splitRingLayout(size, 0x1000);
  const cfg: QueueConfig = {
    size,
    descAddr: l.descAddr,
    driverAddr: l.driverAddr,
    deviceAddr: l.deviceAddr,
    features: F.VERSION_1 | F.INDIRECT_DESC | (packed ? F.RING_PACKED : 0n) | extra,
    index: 0,
  };
  const dev = createDeviceQueue(mem, cfg);
  return { mem, dev, drv: createDriverQueue<number>(mem, cfg, { indirectTableAddr: 0x80000 }), chain: dev.createChain() };
}

/** Buffer `token`: `segs` readable segments of 16 bytes (the last writable), addresses unique per token. */
function add(p: Pair, token: number, segs: number, indirect = false): boolean {
  const base = DATA + (token % 256) * 0x400;
  const out: Segment[] = [];
  for (let i = 0; i < segs - 1; i++) out.push({ addr: base + i * 0x20, len: 16 });
  return p.drv.add(out, [{ addr: base + 0x300, len: 16 }], token, indirect);
}

/** What identifies a popped buffer: id, ring descriptors and its segments. */
function snapshot(c: DescriptorChain): string {
  const segs: string[] = [];
  for (let i = 0; i < c.count; i++) segs.push(`${c.addrs[i]!.toString(16)}+${c.lens[i]}`);
  return `${c.id}/${c.ringDescs}/${c.readableCount}:${segs.join(',')}`;
}

/** Cycles `n` single-segment buffers through the pair, to move the indices (and wrap counters). */
function cycle(p: Pair, n: number): void {
  for (let i = 0; i < n; i++) {
    assert.ok(add(p, 1000 + i, 1));
    p.drv.kick();
    assert.ok(p.dev.pop(p.chain));
    p.dev.push(p.chain, 0);
    assert.equal(p.drv.takeUsed(), 1000 + i);
  }
}

describe('DeviceQueue.undoPop', () => {
  for (const packed of [false, true]) {
    const kind = packed ? 'packed' : 'split';

    it(`${kind}: the last popped buffers come back in the same order, identical, and are used once`, () => {
      const p = pair(packed, 16);
      for (let t = 0; t < 4; t++) assert.ok(add(p, t, 1 + t));
      p.drv.kick();
      const first: string[] = [];
      for (let i = 0; i < 4; i++) {
        assert.ok(p.dev.pop(p.chain));
        first.push(snapshot(p.chain));
      }
      const before = p.dev.state();
      p.dev.undoPop(3);
      assert.ok(p.dev.hasAvailable());
      assert.notDeepEqual(p.dev.state(), before);
      for (let i = 1; i < 4; i++) {
        assert.ok(p.dev.pop(p.chain));
        assert.equal(snapshot(p.chain), first[i]);
        p.dev.push(p.chain, 0);
      }
      assert.deepEqual(p.dev.state().nextAvail, before.nextAvail);
      assert.equal(p.dev.pop(p.chain), false);
      // Token 0 is still in flight; the others were used exactly once.
      const got: number[] = [];
      for (let t = p.drv.takeUsed(); t !== undefined; t = p.drv.takeUsed()) got.push(t);
      assert.deepEqual(got.sort(), [1, 2, 3]);
    });

    it(`${kind}: undo across the wrap of the ring (${packed ? 'wrap counter flips back' : '16-bit index wraps back'})`, () => {
      const p = pair(packed, 8);
      // Split: avail index 0xfffe; packed: position 6 of 8, so a 3-descriptor buffer wraps.
      cycle(p, packed ? 6 : 0xfffe);
      assert.ok(add(p, 1, 3));
      assert.ok(add(p, 2, 2));
      p.drv.kick();
      const start = p.dev.state();
      assert.ok(p.dev.pop(p.chain));
      const a = snapshot(p.chain);
      assert.ok(p.dev.pop(p.chain));
      const b = snapshot(p.chain);
      const after = p.dev.state();
      if (packed) assert.equal(after.availWrap, !start.availWrap, 'the pops crossed the wrap');
      else assert.ok(after.nextAvail < start.nextAvail, 'the pops crossed 0xffff');
      p.dev.undoPop(2);
      assert.deepEqual(p.dev.state(), start);
      assert.ok(p.dev.pop(p.chain));
      assert.equal(snapshot(p.chain), a);
      p.dev.push(p.chain, 0);
      assert.ok(p.dev.pop(p.chain));
      assert.equal(snapshot(p.chain), b);
      p.dev.push(p.chain, 0);
      assert.deepEqual([p.drv.takeUsed(), p.drv.takeUsed(), p.drv.takeUsed()], [1, 2, undefined]);
      assert.equal(p.dev.state().nextAvail, after.nextAvail);
      assert.equal(p.dev.state().availWrap, after.availWrap);
    });

    it(`${kind}: indirect buffers are walked again from their table`, () => {
      const p = pair(packed, 8);
      assert.ok(add(p, 1, 5, true));
      assert.ok(add(p, 2, 1));
      p.drv.kick();
      assert.ok(p.dev.pop(p.chain));
      const ind = snapshot(p.chain);
      assert.equal(p.chain.count, 5);
      assert.equal(p.chain.ringDescs, 1);
      p.dev.undoPop(1);
      assert.ok(p.dev.pop(p.chain));
      assert.equal(snapshot(p.chain), ind);
      assert.ok(p.dev.pop(p.chain));
      const direct = snapshot(p.chain);
      p.dev.undoPop(2); // both: the indirect one comes first again
      assert.ok(p.dev.pop(p.chain));
      assert.equal(snapshot(p.chain), ind);
      const indId = p.chain.id;
      assert.ok(p.dev.pop(p.chain));
      assert.equal(snapshot(p.chain), direct);
      p.dev.push(p.chain, 0);
      p.dev.pushId(indId, 1, 0);
      assert.deepEqual([p.drv.takeUsed(), p.drv.takeUsed(), p.drv.takeUsed()], [2, 1, undefined]);
    });

    it(`${kind}: IN_ORDER: undone buffers leave the in-order batch consistent`, () => {
      const p = pair(packed, 8, F.IN_ORDER);
      for (let t = 1; t <= 3; t++) assert.ok(add(p, t, t));
      p.drv.kick();
      for (let i = 0; i < 3; i++) assert.ok(p.dev.pop(p.chain));
      p.dev.undoPop(1);
      assert.ok(p.dev.pop(p.chain));
      // One used entry for all three (the last one's id), as 2.7.9 / 2.8.8 allow.
      p.dev.pushInOrderBatch(p.chain.id, 3, 16);
      assert.deepEqual([p.drv.takeUsed(), p.drv.takeUsed(), p.drv.takeUsed(), p.drv.takeUsed()], [1, 2, 3, undefined]);
    });

    it(`${kind}: counts outside 1..buffers in flight are refused (INVALID_ARGUMENT)`, () => {
      const p = pair(packed, 8);
      assert.ok(add(p, 1, 1));
      p.drv.kick();
      assert.ok(p.dev.pop(p.chain));
      for (const n of [0, 2, -1, 1.5, Number.NaN]) {
        assert.throws(() => p.dev.undoPop(n), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT, String(n));
      }
      p.dev.push(p.chain, 0);
      assert.throws(() => p.dev.undoPop(1), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    });

    it(`${kind}: random pops, undos and in-order pushes deliver every buffer once, in the driver's order`, () => {
      const op = fc.oneof(
        fc.record({ t: fc.constant('add' as const), segs: fc.integer({ min: 1, max: 3 }), indirect: fc.boolean() }),
        fc.record({ t: fc.constant('pop' as const), n: fc.integer({ min: 1, max: 4 }) }),
        fc.record({ t: fc.constant('undo' as const), n: fc.integer({ min: 1, max: 4 }) }),
        fc.record({ t: fc.constant('push' as const), n: fc.integer({ min: 1, max: 4 }) }),
      );
      fc.assert(
        fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
          const p = pair(packed, 8);
          let next = 0;
          /** Tokens the driver added, not yet popped (in order), and popped but not pushed. */
          const waiting: number[] = [];
          const popped: { token: number; id: number; descs: number }[] = [];
          const used: number[] = [];
          const chainOf = new Map<number, string>();
          const run = (o: (typeof ops)[number]): void => {
            if (o.t === 'add') {
              if (add(p, next, o.segs, o.indirect)) {
                p.drv.kick();
                waiting.push(next++);
              }
            } else if (o.t === 'pop') {
              for (let i = 0; i < o.n; i++) {
                const got = p.dev.pop(p.chain);
                assert.equal(got, waiting.length > 0);
                if (!got) break;
                const token = waiting.shift()!;
                const s = snapshot(p.chain);
                // A buffer popped again after an undo is the same buffer.
                if (chainOf.has(token)) assert.equal(s, chainOf.get(token));
                chainOf.set(token, s);
                popped.push({ token, id: p.chain.id, descs: p.chain.ringDescs });
              }
            } else if (o.t === 'undo') {
              const n = Math.min(o.n, popped.length);
              if (n === 0) return;
              p.dev.undoPop(n);
              const back = popped.splice(popped.length - n, n);
              waiting.unshift(...back.map((b) => b.token));
            } else {
              // The oldest popped first, so undo never covers a pushed buffer.
              for (let i = 0; i < o.n && popped.length > 0; i++) {
                const b = popped.shift()!;
                p.dev.pushId(b.id, b.descs, 0);
                for (let t = p.drv.takeUsed(); t !== undefined; t = p.drv.takeUsed()) used.push(t);
              }
            }
          };
          for (const o of ops) run(o);
          // Drain: everything added comes out once, in order.
          run({ t: 'pop', n: waiting.length });
          run({ t: 'push', n: popped.length });
          assert.deepEqual(used, Array.from({ length: next }, (_, i) => i));
        }),
        { numRuns: 300 },
      );
    });
  }
});
