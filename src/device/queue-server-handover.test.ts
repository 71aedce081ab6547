/**
 * QueueServer with a driver that runs alongside the device (a vhost-user front-end: the context
 * has `notifyUsedNow`): with EVENT_IDX, requests completed inside a pass are published and
 * handed over in small groups at once, so the driver consumes and refills while the device
 * serves the rest; and a pass whose driver keeps refilling is bounded and goes on from the
 * event loop.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '../errors.js';
import { F } from '../spec/features.js';
import { HAND_OVER_EVERY, PASS_QUEUE_SIZES, type QueueRequest } from './queue-server.js';
import { Rig, settle } from './queue-server-test-support.js';

for (const packed of [false, true]) {
  const kind = packed ? 'packed' : 'split';
  describe(`QueueServer hand-over to a driver alongside (${kind} ring)`, () => {
    it(`EVENT_IDX and notifyUsedNow: every ${HAND_OVER_EVERY} synchronous completions are visible to the driver before the next request is served, and handed over`, () => {
      const seenBefore: number[] = [];
      const used: number[] = [];
      const rig: Rig = new Rig(
        packed,
        (req) => {
          // What the driver can take now, while the device is still in its pass.
          for (const [t] of rig.used()) used.push(t);
          seenBefore.push(used.length);
          return req.chain.writableBytes;
        },
        {},
        32,
        { features: F.EVENT_IDX, notifyNow: true },
      );
      rig.server.activate(rig.ctx);
      const n = 2 * HAND_OVER_EVERY + 1;
      const tokens = rig.offer(n);
      rig.notifications = 0;
      rig.server.onQueueNotify(0);
      const expected = Array.from({ length: n }, (_, k) => k - (k % HAND_OVER_EVERY));
      assert.deepEqual(seenBefore, expected, 'request k is served with the hand-overs before it already used');
      assert.equal(rig.nowNotifications, 2, 'one hand-over per group (the context applies event suppression)');
      for (const [t] of rig.used()) used.push(t);
      assert.deepEqual(used, tokens);
      assert.ok(rig.dq!.publishes >= 2, `publishes ${rig.dq!.publishes}`);
      assert.equal(rig.notifications, 1, 'and the usual notification at the end of the pass');
    });

    /** `n` synchronous requests offered at once under `handOverEvery`: what the driver could take before each was served. */
    const seenWith = (handOverEvery: number, n: number): { seenBefore: number[]; rig: Rig } => {
      const seenBefore: number[] = [];
      let taken = 0;
      const rig: Rig = new Rig(
        packed,
        (req) => {
          taken += rig.used().length;
          seenBefore.push(taken);
          return req.chain.writableBytes;
        },
        { handOverEvery },
        64,
        { features: F.EVENT_IDX, notifyNow: true },
      );
      rig.server.activate(rig.ctx);
      rig.offer(n);
      rig.server.onQueueNotify(0);
      return { seenBefore, rig };
    };
    /** Cumulative used counts seen before each request when hand-overs come every `every`. */
    const groupsOf = (every: number, n: number): number[] => Array.from({ length: n }, (_, k) => k - (k % every));

    if (!packed) {
      it('handOverEvery 8 (virtio-fs) on a split ring: half of what was made available, between 4 and 8', () => {
        // 32 available: 8 (the cap); 12: 6; 8: 4 (never below HAND_OVER_EVERY); 3: no hand-over before the end.
        for (const [n, every] of [[32, 8], [16, 8], [12, 6], [8, 4], [6, 4]] as const) {
          const { seenBefore, rig } = seenWith(8, n);
          assert.deepEqual(seenBefore, groupsOf(every, n), `${n} available: a hand-over every ${every}`);
          assert.equal(rig.server.handOverAt(0), every);
          assert.equal(rig.used().length, n - seenBefore[n - 1]!, 'the rest at the end of the pass');
        }
      });
    } else {
      it('handOverEvery 8 on a packed ring (no cheap count of what is available): every 8', () => {
        for (const n of [32, 12]) {
          const { seenBefore, rig } = seenWith(8, n);
          assert.deepEqual(seenBefore, groupsOf(8, n));
          assert.equal(rig.server.handOverAt(0), 8);
        }
      });
    }

    it(`the default and smaller values are fixed cadences (HAND_OVER_EVERY ${HAND_OVER_EVERY}; 1; 2), whatever is available`, () => {
      for (const [every, n] of [[undefined, 32], [1, 5], [2, 9]] as const) {
        const { seenBefore, rig } = every === undefined ? seenWith(HAND_OVER_EVERY, n) : seenWith(every, n);
        assert.deepEqual(seenBefore, groupsOf(every ?? HAND_OVER_EVERY, n));
        assert.equal(rig.server.handOverAt(0), every ?? HAND_OVER_EVERY);
      }
    });

    it('handOverEvery must be a positive integer: INVALID_ARGUMENT', () => {
      for (const bad of [0, -1, 2.5, NaN]) {
        assert.throws(() => new Rig(packed, () => 0, { handOverEvery: bad }, 16, {}), (e: unknown) => (e as { code?: string }).code === ErrorCode.INVALID_ARGUMENT, String(bad));
      }
    });

    /** Four synchronous requests in one pass: what the driver could take before each was served. */
    const seenDuringPass = (transport: { features?: bigint; notifyNow?: boolean }): { seenBefore: number[]; rig: Rig } => {
      const seenBefore: number[] = [];
      const rig: Rig = new Rig(
        packed,
        (req) => {
          seenBefore.push(rig.used().length);
          return req.chain.writableBytes;
        },
        {},
        16,
        transport,
      );
      rig.server.activate(rig.ctx);
      rig.offer(4);
      rig.server.onQueueNotify(0);
      return { seenBefore, rig };
    };

    it('without EVENT_IDX no hand-over: completions become visible at the end of the round, as before', () => {
      const { seenBefore, rig } = seenDuringPass({ notifyNow: true });
      assert.deepEqual(seenBefore, [0, 0, 0, 0]);
      assert.equal(rig.nowNotifications, 0);
      assert.equal(rig.used().length, 4);
    });

    it('a context without notifyUsedNow (driver in this thread): no hand-over with EVENT_IDX either', () => {
      const { seenBefore, rig } = seenDuringPass({ features: F.EVENT_IDX });
      assert.deepEqual(seenBefore, [0, 0, 0, 0]);
      assert.equal(rig.used().length, 4);
    });

    it('requests completed later (Promise, complete()) are not handed over inside the pass; they complete as before', async () => {
      const held: QueueRequest[] = [];
      const rig = new Rig(packed, (req) => void held.push(req), {}, 16, { features: F.EVENT_IDX, notifyNow: true });
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(3);
      rig.server.onQueueNotify(0);
      assert.equal(held.length, 3);
      assert.equal(rig.nowNotifications, 0);
      rig.notifications = 0;
      for (const r of held) assert.ok(rig.server.complete(r, 1));
      await settle();
      assert.deepEqual(rig.used().map(([t]) => t), tokens);
      assert.equal(rig.notifications, 1);
    });

    it(`a driver refilling as fast as the device serves: a pass pops at most ${PASS_QUEUE_SIZES} queue sizes, then goes on from the event loop`, async () => {
      const size = 16;
      const total = size * PASS_QUEUE_SIZES * 3 + 5;
      let served = 0;
      let offered = 0;
      const rig: Rig = new Rig(
        packed,
        (req) => {
          served++;
          // The driver takes what was used and posts another buffer, as a front-end on another CPU would.
          rig.used();
          if (offered < total && rig.tryOffer()) offered++;
          return req.chain.writableBytes;
        },
        {},
        size,
        { features: F.EVENT_IDX, notifyNow: true },
      );
      rig.server.activate(rig.ctx);
      rig.offer(size / 2);
      offered = size / 2;
      rig.server.onQueueNotify(0);
      // The call returned (the event loop can run vhost-user messages and other rings) with
      // buffers left on the ring.
      assert.equal(served, size * PASS_QUEUE_SIZES, 'the first pass stops at its bound');
      assert.ok(rig.dq!.hasAvailable(), 'work left for the continuation');
      for (let i = 0; i < 100 && served < total; i++) await settle();
      assert.equal(served, total, 'the rest is served by continuations');
      rig.used();
      assert.equal(rig.server.inFlight(0), 0);
      assert.deepEqual(rig.resets, []);
    });

    it('a bounded pass whose queue is reset before the continuation runs: the continuation does nothing', async () => {
      const size = 16;
      let served = 0;
      const rig: Rig = new Rig(
        packed,
        (req) => {
          served++;
          rig.used();
          rig.tryOffer();
          return req.chain.writableBytes;
        },
        {},
        size,
        { features: F.EVENT_IDX, notifyNow: true },
      );
      rig.server.activate(rig.ctx);
      rig.offer(size / 2);
      rig.server.onQueueNotify(0);
      assert.equal(served, size * PASS_QUEUE_SIZES);
      rig.server.resetQueue(0);
      await settle();
      await settle();
      assert.equal(served, size * PASS_QUEUE_SIZES, 'nothing served after the reset');
      assert.deepEqual(rig.resets, []);
    });
  });
}
