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
import { HAND_OVER_EVERY, type QueueRequest, type RequestResult } from './queue-server.js';
import { Rig, settle } from './queue-server-test-support.js';

/** The writable bytes of each buffer Rig.offer adds. */
const WRITABLE = 32;

/**
 * An activated Rig whose handler records each request's id (in pop order) and answers the k-th
 * request with `answer(k, req)`.
 */
function inOrderRig(
  packed: boolean,
  answer: (k: number, req: QueueRequest) => RequestResult,
  transport: { features: bigint; notifyNow?: boolean } = { features: F.IN_ORDER },
  size = 16,
): { rig: Rig; ids: number[] } {
  const ids: number[] = [];
  const rig = new Rig(
    packed,
    (req) => {
      ids.push(req.chain.id);
      return answer(ids.length - 1, req);
    },
    {},
    size,
    transport,
  );
  rig.server.activate(rig.ctx);
  return { rig, ids };
}

const whole = (_k: number, req: QueueRequest): number => req.chain.writableBytes;

for (const packed of [false, true]) {
  const kind = packed ? 'packed' : 'split';
  describe(`QueueServer IN_ORDER batches (${kind} ring)`, () => {
    it('the synchronous completions of a pass that wrote every writable byte are one used entry with the last id', () => {
      const { rig, ids } = inOrderRig(packed, whole);
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
      const { rig, ids } = inOrderRig(packed, (k) => written[k]!);
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
      const { rig } = inOrderRig(packed, whole, { features: 0n });
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
      const { rig, ids } = inOrderRig(packed, (k, req) => (k < 2 ? req.chain.writableBytes : new Promise<number>((r) => (release = r))));
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
      const { rig } = inOrderRig(packed, whole, { features: F.IN_ORDER | F.EVENT_IDX, notifyNow: true }, 32);
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
