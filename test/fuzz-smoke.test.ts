/**
 * Issue 17 section 1, CI part: every fuzz target runs for a few seconds, first over its
 * committed corpus (fuzz/corpus/<target>/, each input replayed as a regression input), then
 * mutating from it with coverage feedback. Any invariant the target checks (no exception out
 * of the transport, guard regions around guest memory intact, every popped chain completed or
 * NEEDS_RESET, protocol answers), an execution that does not finish within the step budget,
 * or heap growth past the worker's cap fails the test with the input, in hex.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runFuzz, type FuzzResult } from '../fuzz/engine/run.js';
import { TARGETS } from '../fuzz/targets/index.js';

const corpusRoot = fileURLToPath(new URL('../../fuzz/corpus', import.meta.url));
/** Seconds of mutation per target: the whole file stays under ~2 minutes for the targets. */
const SECONDS = Math.max(2, Math.min(4, Math.floor(90 / TARGETS.length)));

function describeFinding(r: FuzzResult): string {
  const f = r.finding;
  return f ? `${r.target}: ${f.invariant}: ${f.message}\ninput hex: ${Buffer.from(f.input).toString('hex')}` : '';
}

describe('fuzz targets on their committed corpus (short bounded runs)', () => {
  for (const target of TARGETS) {
    it(`${target}: corpus replay and ${SECONDS} s of mutation break no invariant`, { timeout: 60_000 }, async () => {
      const dir = `${corpusRoot}/${target}`;
      assert.ok(existsSync(dir) && readdirSync(dir).length > 0, `committed corpus in fuzz/corpus/${target}`);
      const replay = await runFuzz({ target, corpusDirs: [dir], corpusOnly: true, hangMs: 20_000 });
      assert.equal(replay.finding, null, describeFinding(replay));
      assert.ok(replay.execs >= readdirSync(dir).length, 'every corpus input ran');
      assert.ok(replay.blocks > 50, `coverage measured (${replay.blocks} blocks)`);
      const fuzz = await runFuzz({ target, corpusDirs: [dir], seconds: SECONDS, seed: 17, hangMs: 20_000 });
      assert.equal(fuzz.finding, null, describeFinding(fuzz));
      assert.ok(fuzz.execs > replay.execs, `mutation ran (${fuzz.execs} executions)`);
    });
  }
});
