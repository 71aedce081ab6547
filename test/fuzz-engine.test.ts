/**
 * The fuzz engine reports what it must: a broken invariant, an exception, an execution that
 * never finishes (step budget) and unbounded heap growth (the worker's heap cap), each with the
 * input that caused it; and a clean target runs its corpus with coverage measured.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runFuzz } from '../fuzz/engine/run.js';

function corpusOf(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-engine-'));
  writeFileSync(join(dir, 'a'), Buffer.from('okay'));
  writeFileSync(join(dir, 'b'), Buffer.from(tag));
  return dir;
}

describe('fuzz engine findings', () => {
  const cases: [string, string, number][] = [
    ['INV!', 'chain-not-completed', 20_000],
    ['THR!', 'exception-escaped', 20_000],
    ['HNG!', 'step-budget', 1500],
    ['MEM!', 'memory-growth', 20_000],
  ];
  for (const [tag, invariant, hangMs] of cases) {
    it(`an input tagged ${tag} is reported as ${invariant}, with the input`, { timeout: 60_000 }, async () => {
      const dir = corpusOf(tag);
      try {
        const r = await runFuzz({ target: 'engine-selftest', corpusDirs: [dir], corpusOnly: true, hangMs, heapMb: 64 });
        assert.ok(r.finding, 'a finding');
        assert.equal(r.finding.invariant, invariant, r.finding.message);
        assert.equal(Buffer.from(r.finding.input).toString(), tag);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('a clean run counts executions and reports no finding', { timeout: 60_000 }, async () => {
    const r = await runFuzz({ target: 'engine-selftest', runs: 300, seed: 1, maxLen: 3 });
    assert.equal(r.finding, null);
    assert.ok(r.execs >= 300, `${r.execs} executions`);
  });
});
