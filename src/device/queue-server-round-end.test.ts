/**
 * QueueServerOptions.roundEnd: a device that holds requests back to do them together (virtio-fs
 * READs in one io_uring_enter) completes them when a round of pops ends, and they go out with
 * the round: deferred, published once, one notification; a roundEnd that throws is a device
 * failure (DEVICE_NEEDS_RESET), as a handler that throws.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QueueRequest } from './queue-server.js';
import { Rig, settle } from './queue-server-test-support.js';

for (const packed of [false, true]) {
  describe(`QueueServer roundEnd (${packed ? 'packed' : 'split'} ring)`, () => {
    it('requests held by the handler and completed in roundEnd are published with the round: deferred, one notification', async () => {
      const held: QueueRequest[] = [];
      const rounds: number[] = [];
      let rig: Rig | null = null;
      rig = new Rig(packed, (req) => void held.push(req), {
        roundEnd: (i) => {
          rounds.push(held.length);
          for (const req of held.splice(0)) assert.ok(rig!.server.complete(req, 9));
          assert.equal(i, 0);
        },
      });
      rig.server.activate(rig.ctx);
      const tokens = rig.offer(5);
      rig.notifications = 0;
      rounds.length = 0; // activation served the empty ring: a round of nothing
      rig.server.onQueueNotify(0);
      assert.deepEqual(rounds, [5], 'one round, its five requests held until its end');
      assert.deepEqual(rig.used(), tokens.map((t) => [t, 9]), 'answered within the pass');
      assert.equal(rig.dq!.deferred, 5, 'completions in roundEnd are deferred to the round publication');
      assert.equal(rig.dq!.pushes, 0);
      assert.equal(rig.notifications, 1);
      await settle();
      assert.equal(rig.notifications, 1, 'no notification after the pass');
      assert.equal(rig.server.inFlight(0), 0);
    });

    it('a roundEnd that throws: DEVICE_NEEDS_RESET with the reason, the pass ends', () => {
      let fail = false;
      const rig = new Rig(packed, () => 0, {
        roundEnd: () => {
          if (fail) throw new Error('batch failed');
        },
      });
      rig.server.activate(rig.ctx);
      fail = true;
      rig.offer(2);
      rig.server.onQueueNotify(0);
      assert.equal(rig.resets.length, 1);
      assert.match(rig.resets[0]!, /batch failed/);
    });
  });
}
