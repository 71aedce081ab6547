/**
 * QueueServer with VIRTIO_F_IN_ORDER (2.7.9 / 2.8.8 "In-order use of descriptors"): the
 * requests of a pass completed synchronously, in pop order, with every writable byte written,
 * go back as ONE used entry for the batch (the driver takes the buffers it skips as wholly
 * written), so a device such as virtio-net's transmit queue writes one used element per pass
 * instead of one per frame. Anything else keeps its own entry, in order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F } from '../spec/features.js';
import { HAND_OVER_EVERY } from './queue-server.js';
import { Rig, settle } from './queue-server-test-support.js';

/** The writable bytes of each buffer Rig.offer adds. */
const WRITABLE = 32;

for (const packed of [false, true]) {
  const kind = packed ? 'packed' : 'split';
  describe(`QueueServer IN_ORDER batches (${kind} ring)`, () => {
    it('the synchronous completions of a pass that wrote every writable byte are one used entry with the last id', () => {
      const ids: number[] = [];
      const rig = new Rig(
        packed,
        (req) => {
          ids.push(req.chain.id);
          return req.chain.writableBytes;
        },
        {},
        16,
        { features: F.IN_ORDER },
      );
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(5);
      rig.server.onQueueNotify(0);
      assert.deepEqual(rig.dq!.batches, [[ids[4], 5, WRITABLE]], 'one batch for the pass');
      assert.equal(rig.dq!.deferred, 0, 'no entry of its own');
      const used = rig.used();
      assert.deepEqual(
        used.map(([t]) => t),
        tokens,
        'the driver gets every buffer back, in order',
      );
      assert.equal(used[4]![1], WRITABLE, 'the batch entry carries the last buffer’s length');
      assert.deepEqual(rig.resets, []);
    });

    it('a completion that leaves writable bytes unwritten gets its own entry, after the batch so far', () => {
      const written = [WRITABLE, WRITABLE, 10, WRITABLE, WRITABLE];
      const ids: number[] = [];
      let k = 0;
      const rig = new Rig(
        packed,
        (req) => {
          ids.push(req.chain.id);
          return written[k++]!;
        },
        {},
        16,
        { features: F.IN_ORDER },
      );
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(5);
      rig.server.onQueueNotify(0);
      assert.deepEqual(rig.dq!.batches, [
        [ids[1], 2, WRITABLE],
        [ids[4], 2, WRITABLE],
      ]);
      assert.equal(rig.dq!.deferred, 1, 'the short one alone');
      const used = rig.used();
      assert.deepEqual(
        used.map(([t]) => t),
        tokens,
      );
      assert.equal(used[2]![1], 10, 'its own length');
      assert.equal(used[4]![1], WRITABLE);
    });

    it('without IN_ORDER every completion has its own used entry', () => {
      const rig = new Rig(packed, (req) => req.chain.writableBytes, {}, 16, {});
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(5);
      rig.server.onQueueNotify(0);
      assert.deepEqual(rig.dq!.batches, []);
      assert.equal(rig.dq!.deferred, 5);
      assert.deepEqual(
        rig.used().map(([t]) => t),
        tokens,
      );
    });

    it('a request completed after its pass is pushed on its own; the batch before it is published with the pass', async () => {
      let release: ((n: number) => void) | null = null;
      const ids: number[] = [];
      let k = 0;
      const rig = new Rig(
        packed,
        (req) => {
          ids.push(req.chain.id);
          if (k++ < 2) return req.chain.writableBytes;
          return new Promise<number>((r) => (release = r));
        },
        {},
        16,
        { features: F.IN_ORDER },
      );
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(3);
      rig.server.onQueueNotify(0);
      assert.deepEqual(rig.dq!.batches, [[ids[1], 2, WRITABLE]]);
      assert.deepEqual(
        rig.used().map(([t]) => t),
        tokens.slice(0, 2),
        'the batch is visible when the pass ends',
      );
      assert.ok(release !== null);
      (release as (n: number) => void)(WRITABLE);
      await settle();
      assert.equal(rig.dq!.pushes, 1, 'the late one alone');
      assert.deepEqual(rig.dq!.batches.length, 1);
      assert.deepEqual(
        rig.used().map(([t]) => t),
        tokens.slice(2),
      );
    });

    it(`a hand-over to a driver alongside (EVENT_IDX) publishes the batch so far: batches of ${HAND_OVER_EVERY}`, () => {
      const rig = new Rig(packed, (req) => req.chain.writableBytes, {}, 32, { features: F.IN_ORDER | F.EVENT_IDX, notifyNow: true });
      rig.server.activate(rig.ctx);
      const n = 2 * HAND_OVER_EVERY + 1;
      const tokens = rig.offer(n);
      rig.server.onQueueNotify(0);
      assert.deepEqual(
        rig.dq!.batches.map(([, count]) => count),
        [HAND_OVER_EVERY, HAND_OVER_EVERY, 1],
      );
      assert.deepEqual(
        rig.used().map(([t]) => t),
        tokens,
      );
    });
  });
}
