/**
 * The reference packed driver against the packed device queue, in random interleavings, for
 * every combination of INDIRECT_DESC, EVENT_IDX and IN_ORDER and sizes that are not powers of
 * two: every buffer comes back exactly once with the length the device wrote, data crosses
 * intact both ways, the device never writes a readable byte, and no notification is lost in
 * either direction (suppressed only where the event suppression structures allow).
 */
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Op, opArb, runWorkload } from './ring-test-workload.js';

const featArb = fc.record({
  packed: fc.constant(true),
  indirect: fc.boolean(),
  eventIdx: fc.boolean(),
  inOrder: fc.boolean(),
  size: fc.constantFrom(1, 2, 3, 5, 8, 16),
});

describe('packed driver and device queues together', { timeout: 120_000 }, () => {
  it('device/packed-ring/1, device/packed-ring/2, device/packed-ring/4, device/packed-ring/7, driver/packed-ring/10: random interleavings keep every buffer, length and byte', () => {
    fc.assert(fc.property(featArb, fc.array(opArb, { maxLength: 300 }), (feat, ops) => void runWorkload(feat, ops)), { numRuns: 400 });
  });

  for (const indirect of [false, true]) {
    for (const eventIdx of [false, true]) {
      for (const inOrder of [false, true]) {
        const name = `indirect=${indirect} event_idx=${eventIdx} in_order=${inOrder}`;
        it(`2.8.10: no lost notification in either direction (${name})`, () => {
          fc.assert(
            fc.property(fc.array(opArb, { minLength: 50, maxLength: 400 }), fc.constantFrom(2, 3, 8), (ops, size) =>
              void runWorkload({ packed: true, indirect, eventIdx, inOrder, size }, ops),
            ),
            { numRuns: 60 },
          );
        });
      }
    }
  }

  it('2.8.1: a long run toggles the wrap counters many times', () => {
    const ops: Op[] = [];
    for (let i = 0; i < 20000; i++) {
      ops.push({ t: 'add', outLens: [1], inLens: i % 2 === 0 ? [2] : [2, 3], indirect: i % 3 === 0 }, { t: 'kick' }, { t: 'pop', n: 1 }, { t: 'push', pick: 0, frac: 1, check: i % 2 === 0 }, { t: 'take', n: 1 });
      if (i % 1000 === 0) ops.push({ t: 'drvEnable' }, { t: 'devEnable' });
    }
    for (const inOrder of [false, true]) for (const size of [3, 4]) runWorkload({ packed: true, indirect: true, eventIdx: true, inOrder, size }, ops);
  });
});
