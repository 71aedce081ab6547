/**
 * `npm run spec-coverage` counts evidence from results: a fixture test file with passing,
 * failing, skipped and todo tests (some in nested describes) runs under node's test runner with
 * scripts/results-reporter.mjs, then scripts/spec-coverage.mjs reads those results. Only ids
 * named by a test that passed (or by a describe around a passing test) may count.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const reporter = new URL('../../scripts/results-reporter.mjs', import.meta.url).href;
const coverageScript = join(root, 'scripts', 'spec-coverage.mjs');

// Spelled in pieces so that this file's own source does not name the fixture's ids.
const FX = ['driver', 'fixture'].join('/');
// Ids driver/fixture/1..12 stand for normative statements; each fixture test names some of them.
const SPEC = Array.from({ length: 12 }, (_, i) =>
  JSON.stringify({ id: `${FX}/${i + 1}`, level: i % 2 === 0 ? 'MUST' : 'SHOULD', file: 'fixture.tex', text: `statement ${i + 1}` }),
).join('\n');

const FIXTURE_TEST = `
import { describe, it, test } from 'node:test';
it('${FX}/1: passes', () => {});
it('${FX}/2: fails', () => { throw new Error('no'); });
it.skip('${FX}/3: skipped', () => {});
it.todo('${FX}/4: todo');
it('${FX}/5: todo that passes proves nothing', { todo: true }, () => {});
describe('${FX}/6: outer describe', () => {
  describe('middle describe ${FX}/7', () => {
    it('deep test ${FX}/8, 9', () => {});
  });
});
describe('${FX}/10: a describe whose tests are all skipped', () => {
  it.skip('skipped inside', () => {});
});
describe('${FX}/11: a describe with a failing test', () => {
  it('passing sibling', () => {});
  it('failing sibling', () => { throw new Error('no'); });
});
for (const layout of ['split']) test(\`\${layout}: a title built at run time ${FX}/12\`, () => {});
`;

// A source file naming ids the run never passes (one commented out, one in a skipped test).
const FIXTURE_SOURCE = `
// it('${FX}/2: commented out', () => {});
it.skip('${FX}/3: skipped', () => {});
it('${FX}/999: a typo', () => {});
`;

function runCoverage(dir: string, extra: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [coverageScript, join(dir, 'normative.jsonl'), ...extra], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe('spec-coverage counts passing tests only', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spec-coverage-'));
    writeFileSync(join(dir, 'normative.jsonl'), SPEC);
    writeFileSync(join(dir, 'fixture.test.mjs'), FIXTURE_TEST);
    writeFileSync(join(dir, 'claims.test.mjs'), FIXTURE_SOURCE);
    // The nested runner must not think it is a child of this one (node sets this variable in
    // the processes it runs test files in).
    const env = { ...process.env };
    delete env['NODE_TEST_CONTEXT'];
    const run = spawnSync(
      process.execPath,
      ['--test', `--test-reporter=${reporter}`, `--test-reporter-destination=${join(dir, 'results.jsonl')}`, join(dir, 'fixture.test.mjs')],
      { cwd: dir, env, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(run.status, 1, `the fixture run fails (it has failing tests): ${run.stderr}`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the reporter records every test with its enclosing describe titles and its status', () => {
    const lines = readFileSync(join(dir, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines[0]?.['kind'], 'run');
    assert.equal(lines[lines.length - 1]?.['kind'], 'end');
    const byTitle = new Map(lines.filter((l) => l['kind'] === 'result').map((l) => [(l['path'] as string[]).join(' > '), l]));
    assert.equal(byTitle.get('driver/fixture/1: passes')?.['status'], 'pass');
    assert.equal(byTitle.get('driver/fixture/2: fails')?.['status'], 'fail');
    assert.equal(byTitle.get('driver/fixture/3: skipped')?.['status'], 'skip');
    assert.equal(byTitle.get('driver/fixture/4: todo')?.['status'], 'todo');
    assert.equal(byTitle.get('driver/fixture/5: todo that passes proves nothing')?.['status'], 'todo');
    const deep = byTitle.get('driver/fixture/6: outer describe > middle describe driver/fixture/7 > deep test driver/fixture/8, 9');
    assert.deepEqual([deep?.['type'], deep?.['status']], ['test', 'pass']);
    assert.deepEqual([byTitle.get('driver/fixture/6: outer describe')?.['type'], byTitle.get('driver/fixture/6: outer describe')?.['status']], ['suite', 'pass']);
    assert.equal(byTitle.get('driver/fixture/11: a describe with a failing test')?.['status'], 'fail');
  });

  it('only ids of passed tests and of passed describes around a passing test are proven', () => {
    const r = runCoverage(dir, [`--results=${join(dir, 'results.jsonl')}`, `--sources=${dir}`, '--list']);
    assert.equal(r.status, 0, r.err);
    const section = (title: string): string[] => {
      const start = r.out.indexOf(`\n${title}`);
      assert.notEqual(start, -1, `no "${title}" section in:\n${r.out}`);
      const body = r.out.slice(start + title.length + 1).split('\n\n')[0] ?? '';
      return body.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((id) => id.startsWith('driver/'));
    };
    const proven = section('proven:').sort();
    assert.deepEqual(proven, ['driver/fixture/1', 'driver/fixture/12', 'driver/fixture/6', 'driver/fixture/7', 'driver/fixture/8', 'driver/fixture/9']);
    // Failed (2, 11), skipped (3), todo (4, 5), a describe with only skipped tests (10): named
    // in the sources, not proven.
    assert.deepEqual(section('named in test sources, not proven').sort(), [
      'driver/fixture/10', 'driver/fixture/11', 'driver/fixture/2', 'driver/fixture/3', 'driver/fixture/4', 'driver/fixture/5',
    ]);
    // The table: 6 of 12 proven, MUST (odd ids) 1, 7, 9 => 3 of 6; 6 named but not passing.
    assert.match(r.out, /\nfixture\.tex\s+6 \/ 12\s+3 \/ 6\s+6\n/);
    assert.match(r.out, /0 spec files with none proven/);
    assert.match(r.out, /driver\/fixture\/999/, 'an id the spec does not have is reported');
    assert.match(r.out, /4 passed, 2 failed, 2 skipped, 2 todo/);
  });

  it('without a results file it says how to get one and counts nothing', () => {
    const missing = join(dir, 'absent.jsonl');
    assert.equal(existsSync(missing), false);
    const r = runCoverage(dir, [`--results=${missing}`]);
    assert.equal(r.status, 2);
    assert.equal(r.out, '');
    assert.match(r.err, /no test results at .*absent\.jsonl/);
    assert.match(r.err, /npm test/);
  });

  it('a run cut short is reported as partial', () => {
    const cut = readFileSync(join(dir, 'results.jsonl'), 'utf8').trim().split('\n').slice(0, -1).join('\n');
    writeFileSync(join(dir, 'cut.jsonl'), cut);
    const r = runCoverage(dir, [`--results=${join(dir, 'cut.jsonl')}`, `--sources=${dir}`]);
    assert.equal(r.status, 0, r.err);
    assert.match(r.out, /the run did not finish/);
  });
});
