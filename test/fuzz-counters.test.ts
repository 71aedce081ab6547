/**
 * The fuzz engine's own coverage (fuzz/engine/instrument.ts, fuzz/engine/edge-counters.ts): the
 * instrumenter counts each branch where it is taken and nowhere else, the tracker turns counts
 * into features (hit-count classes, batch takes that only count), and the instrumented copy of
 * the library behaves as the library: the same outcome for the same inputs on every target that
 * digests one.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CounterTracker, installCounters } from '../fuzz/engine/edge-counters.js';
import { ensureInstrumented, instrumentSource } from '../fuzz/engine/instrument.js';
import { Mutator, Rng } from '../fuzz/engine/mutator.js';
import type { FuzzTarget } from '../fuzz/engine/target.js';
import { TARGETS } from '../fuzz/targets/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Instruments `body` (a function of `x` returning something) and returns it with its counters. */
function instrumented(body: string): { fn: (x: number) => unknown; counters: Uint32Array; count: number } {
  const { code, count } = instrumentSource(`export function f(x) {\n${body}\n}`, 'snippet.js', 0);
  const counters = new Uint32Array(count);
  // The module reads a global counter array; a function of the same text reads this one.
  const src = code.replace(/^const __vfz = .*\n/, '').replace('export function f', 'return function f');
  const fn = new Function('__vfz', src)(counters) as (x: number) => unknown;
  return { fn, counters, count };
}

const hits = (c: Uint32Array): number[] => [...c];

describe('fuzz engine counters', () => {
  it('an if without else counts the branch not taken; each branch only when taken', () => {
    const { fn, counters, count } = instrumented('if (x > 0) { return 1; } return 0;');
    assert.equal(count, 3, 'function body, then, the added else');
    fn(5);
    const taken = hits(counters);
    counters.fill(0);
    fn(-5);
    const notTaken = hits(counters);
    assert.notDeepEqual(taken, notTaken);
    assert.equal(taken.reduce((a, b) => a + b), 2);
    assert.equal(notTaken.reduce((a, b) => a + b), 2);
  });

  it('loops count per iteration; && || ?? and ?: count the operand that ran; arrow bodies and cases count', () => {
    const { fn, counters } = instrumented(
      'let s = 0; for (let i = 0; i < x; i++) s += i; const g = (v) => v * 2; ' +
        'const a = x > 100 && g(x); const b = x > 1000 ? 1 : 2; switch (x) { case 3: s++; break; default: s--; } return [s, a, b];',
    );
    fn(3);
    const three = hits(counters);
    assert.ok(three.includes(3), 'the loop body ran 3 times');
    counters.fill(0);
    fn(200);
    const big = hits(counters);
    assert.ok(big.includes(200), 'the loop body ran 200 times');
    // x = 200: && evaluated its right operand (and called g: its body and the operand count);
    // x = 3: the case ran instead of default. So each run hits counters the other does not.
    const ran = (c: number[]): Set<number> => new Set(c.flatMap((n, i) => (n > 0 ? [i] : [])));
    const onlyBig = [...ran(big)].filter((i) => !ran(three).has(i));
    const onlyThree = [...ran(three)].filter((i) => !ran(big).has(i));
    assert.equal(onlyBig.length, 3, `the && operand, g's body, default (both take the same ?: arm): ${onlyBig}`);
    assert.ok(onlyThree.length >= 1, 'case 3');
    assert.notDeepEqual(
      three.map((n) => (n > 0 ? 1 : 0)),
      big.map((n) => (n > 0 ? 1 : 0)),
    );
  });

  it('the tracker: a batch take only counts, a single take records; a deeper loop is a new feature; batch-only classes stop counting', () => {
    const size = 8;
    const counters = installCounters(size);
    const tracker = new CounterTracker(size);
    counters[1] = 1;
    assert.equal(tracker.collect(false), 1, 'counted');
    assert.equal(tracker.blocks.size, 0, 'not recorded by a batch take');
    counters[1] = 1;
    assert.equal(tracker.collect(true), 1);
    assert.equal(tracker.blocks.size, 1);
    counters[1] = 1;
    assert.equal(tracker.collect(true), 0, 'the same class again is nothing new');
    counters[1] = 5;
    assert.equal(tracker.collect(true), 1, '4-7 hits is another class');
    assert.equal(tracker.features.size, 2);
    assert.equal(tracker.blocks.size, 1);
    // A batch shows a class no single input brings: after settleBatch, batch takes skip it.
    counters[2] = 9;
    assert.equal(tracker.collect(false), 1);
    tracker.holdBatch();
    counters[2] = 1;
    assert.equal(tracker.collect(true), 1, 'the single input brings class 1 only');
    tracker.settleBatch();
    counters[2] = 9;
    assert.equal(tracker.collect(false), 0, 'class 8-15 of counter 2 is batch-only now');
    assert.equal(counters.reduce((a, b) => a + b), 0, 'takes clear the counters');
  });

  it('the instrumented library gives the same outcome as the library for the committed corpus and mutants of it, per target', { timeout: 300_000 }, async () => {
    const manifest = ensureInstrumented(root);
    installCounters(manifest.counters);
    assert.ok(manifest.counters > 10_000, `${manifest.counters} counters in the library`);
    const corpusRoot = fileURLToPath(new URL('../../fuzz/corpus', import.meta.url));
    const outcome = async (t: FuzzTarget, input: Uint8Array): Promise<string> => {
      try {
        await t.run(input);
      } catch (e) {
        return `threw ${e instanceof Error ? e.message : String(e)}`;
      }
      return t.outcome!();
    };
    let compared = 0;
    for (const name of TARGETS) {
      const plain = ((await import(`../fuzz/targets/${name}.js`)) as { target: FuzzTarget }).target;
      if (!plain.outcome) continue;
      const inst = ((await import(new URL(`dist-fuzz/fuzz/targets/${name}.js`, `file://${root}/`).href)) as { target: FuzzTarget }).target;
      const dir = `${corpusRoot}/${name}`;
      const corpus = readdirSync(dir).map((f) => new Uint8Array(readFileSync(`${dir}/${f}`)));
      const rng = new Rng(23);
      const mutator = new Mutator(rng, plain.maxLen);
      const inputs = [...corpus, ...Array.from({ length: 40 }, () => mutator.mutate(corpus[rng.below(corpus.length)]!, corpus[rng.below(corpus.length)]))];
      for (const input of inputs) {
        assert.equal(await outcome(inst, input), await outcome(plain, input), `${name}: ${Buffer.from(input).toString('hex')}`);
        compared++;
      }
    }
    assert.ok(compared > 500, `${compared} inputs compared`);
  });
});
