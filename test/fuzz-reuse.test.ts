/**
 * Issue 17 section 1, fuzzing throughput: the targets reuse guest memory, device, core and
 * backends between executions, with a full reset before each input (fuzz/harness/reuse.ts).
 * This proves the reset leaks no state: for a few hundred random pairs (A, B) of inputs per
 * target, B run right after A on the reused parts leaves exactly what B leaves on fresh parts
 * (guest memory digest, chains popped and completed per queue, notifications, device status,
 * or the same error).
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Mutator, Rng } from '../fuzz/engine/mutator.js';
import type { FuzzTarget } from '../fuzz/engine/target.js';
import { harnessMode } from '../fuzz/harness/reuse.js';
import { TARGETS } from '../fuzz/targets/index.js';

const corpusRoot = fileURLToPath(new URL('../../fuzz/corpus', import.meta.url));
const PAIRS = 300;
/** Targets that build every part fresh for each input (nothing is reused, so nothing can leak). */
const FRESH_PER_INPUT = new Set<string>([]);
const loaded = await Promise.all(TARGETS.map(async (name) => ({ name, target: ((await import(`../fuzz/targets/${name}.js`)) as { target: FuzzTarget }).target })));

async function outcome(target: FuzzTarget, input: Uint8Array): Promise<string> {
  try {
    await target.run(input);
  } catch (e) {
    return `threw ${e instanceof Error ? e.message : String(e)}`;
  }
  return target.outcome!();
}

describe('fuzz harness reuse leaks no state between inputs', () => {
  it('every target either reuses its parts with an outcome() to compare, or is one that builds them fresh per input', () => {
    const fresh = loaded.filter((l) => !l.target.outcome).map((l) => l.name);
    assert.deepEqual(fresh, [...FRESH_PER_INPUT]);
  });
  for (const { name, target } of loaded.filter((l) => l.target.outcome)) {
    it(`${name}: B after A on reused parts ends as B on fresh parts (${PAIRS} random pairs)`, { timeout: 120_000 }, async () => {
      const dir = `${corpusRoot}/${name}`;
      const corpus = readdirSync(dir).map((f) => new Uint8Array(readFileSync(`${dir}/${f}`)));
      const rng = new Rng(17);
      const mutator = new Mutator(rng, target.maxLen);
      const pick = (): Uint8Array => {
        const base = corpus[rng.below(corpus.length)]!;
        return rng.below(4) === 0 ? base : mutator.mutate(base, corpus[rng.below(corpus.length)]);
      };
      try {
        for (let i = 0; i < PAIRS; i++) {
          const a = pick();
          const b = pick();
          harnessMode.reuse = false;
          const fresh = await outcome(target, b);
          harnessMode.reuse = true;
          await outcome(target, a);
          const reused = await outcome(target, b);
          assert.equal(reused, fresh, `pair ${i}: A ${Buffer.from(a).toString('hex')} then B ${Buffer.from(b).toString('hex')}`);
        }
      } finally {
        harnessMode.reuse = true;
      }
    });
  }
});
