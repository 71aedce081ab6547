/**
 * The same random workload over a split and a packed ring of the same size: the device pops
 * the same buffers with the same segments, the driver takes back the same buffers with the same
 * lengths, and (without EVENT_IDX, where both rings reduce to an on/off flag) the same
 * notification decisions are made. With EVENT_IDX the decisions may differ (the split device
 * keeps flags at 0 and a stale avail_event, the packed one writes DISABLE), but neither loses
 * one: the workload itself checks that.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { opArb, runWorkload } from './ring-test-workload.js';

const featArb = fc.record({
  indirect: fc.boolean(),
  eventIdx: fc.boolean(),
  inOrder: fc.boolean(),
  size: fc.constantFrom(1, 2, 4, 8),
});

describe('split and packed rings are observably equivalent', { timeout: 120_000 }, () => {
  it('device/packed-ring/1, device/packed-ring/7: same buffers, segments, lengths and (without EVENT_IDX) notifications', () => {
    fc.assert(
      fc.property(featArb, fc.array(opArb, { maxLength: 300 }), (feat, ops) => {
        const split = runWorkload({ ...feat, packed: false }, ops);
        const packed = runWorkload({ ...feat, packed: true }, ops);
        assert.deepEqual(packed.added, split.added, 'the same adds fit');
        assert.deepEqual(packed.popped, split.popped, 'the device sees the same buffers');
        assert.deepEqual(packed.taken, split.taken, 'the driver gets the same buffers back');
        if (!feat.eventIdx) {
          assert.deepEqual(packed.kicks, split.kicks, 'same available-buffer notifications');
          assert.deepEqual(packed.checks, split.checks, 'same used-buffer notifications');
          assert.deepEqual(packed.enables, split.enables, 'same re-poll answers');
        }
      }),
      { numRuns: 300 },
    );
  });
});
