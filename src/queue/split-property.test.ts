/**
 * The reference driver against the device queue, in random interleavings, for every
 * combination of INDIRECT_DESC, EVENT_IDX and IN_ORDER (and both byte orders): every buffer
 * comes back exactly once with the length the device wrote, data crosses intact both ways, and
 * no notification is lost in either direction.
 */
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Op, opArb, runWorkload } from './ring-test-workload.js';

type Features = { indirect: boolean; eventIdx: boolean; inOrder: boolean; le: boolean; size: number };
const run = (feat: Features, ops: readonly Op[]): void => void runWorkload({ packed: false, ...feat }, ops);

const featArb = fc.record({
  indirect: fc.boolean(),
  eventIdx: fc.boolean(),
  inOrder: fc.boolean(),
  le: fc.boolean(),
  size: fc.constantFrom(1, 2, 4, 8, 16),
});

describe('split driver and device queues together', { timeout: 120_000 }, () => {
  it('driver/split-ring/2, device/split-ring/3, 13, 14: random interleavings keep every buffer, length and byte', () => {
    fc.assert(fc.property(featArb, fc.array(opArb, { maxLength: 300 }), run), { numRuns: 400 });
  });

  for (const indirect of [false, true]) {
    for (const eventIdx of [false, true]) {
      for (const inOrder of [false, true]) {
        const name = `indirect=${indirect} event_idx=${eventIdx} in_order=${inOrder}`;
        it(`device/split-ring/11, driver/split-ring/22: no lost notification (${name})`, () => {
          fc.assert(
            fc.property(fc.array(opArb, { minLength: 50, maxLength: 400 }), fc.boolean(), fc.constantFrom(2, 8), (ops, le, size) =>
              run({ indirect, eventIdx, inOrder, le, size }, ops),
            ),
            { numRuns: 60 },
          );
        });
      }
    }
  }

  it('a long run wraps the 16-bit indices', () => {
    const ops: Op[] = [];
    for (let i = 0; i < 70000; i++) {
      ops.push({ t: 'add', outLens: [1], inLens: [2], indirect: i % 3 === 0 }, { t: 'kick' }, { t: 'pop', n: 1 }, { t: 'push', pick: 0, frac: 1, check: i % 2 === 0 }, { t: 'take', n: 1 });
      if (i % 1000 === 0) ops.push({ t: 'drvEnable' }, { t: 'devEnable' });
    }
    for (const inOrder of [false, true]) run({ indirect: true, eventIdx: true, inOrder, le: true, size: 4 }, ops);
  });
});
