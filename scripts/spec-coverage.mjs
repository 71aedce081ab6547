// `npm run spec-coverage`: which normative statements of the specification the tests prove.
// A test proves a statement when its title, or the title of a describe enclosing it, names the
// statement's id from normative.jsonl AND that test passed in the last recorded run. Evidence is
// counted from results, not from source text: a skipped, todo, failing, commented-out or
// never-run test proves nothing. `npm test` records the results (.work/test-results.jsonl, see
// scripts/results-reporter.mjs); a describe counts only when it passed with at least one test
// under it passing.
// Titles may list ids compactly: `device/blk/1, device/blk/3`, `driver/split-ring/2, 24`,
// `driver/blk/13..20`, `device/transport-pci/20 to /24`, `device/transport-pci/2 /13`.
//
//   node scripts/spec-coverage.mjs [normative.jsonl] [--list] [--results=<file>] [--sources=<dir>]...
//   node scripts/spec-coverage.mjs --devices
//
// --devices: per device type with a page in docs/devices/, its device/<type> and driver/<type>
// statements: proven by a passing test, or only listed on the page (not applicable / not yet,
// with the reason there), or neither (missing). A device is done when none is missing and
// what the page lists is a reason, not a plan.
//
// Prints a table per spec file (statements, proven, MUST proven, ids named in test sources
// whose tests did not pass) and, with --list, every proven id with the test files that prove it,
// then every id named in a test source without a passing test. --sources (default src and test)
// is where test sources are read to find those. Ids named in titles that the spec does not have
// are reported too (a typo proves nothing).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { root } from './ensure-deps.mjs';

const args = process.argv.slice(2);
const list = args.includes('--list');
const devices = args.includes('--devices');
const option = (name) => args.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));

/** normative.jsonl next to the project: ../shared (main checkout) or a level further up (worktrees). */
function defaultSpecPath() {
  for (let dir = root, up = 0; up < 4; dir = dirname(dir), up++) {
    const p = join(dir, '..', 'shared', 'virtio-spec', 'normative.jsonl');
    if (existsSync(p)) return p;
  }
  return join(root, '..', 'shared', 'virtio-spec', 'normative.jsonl');
}

const specPath = args.find((a) => !a.startsWith('--')) ?? defaultSpecPath();
if (!existsSync(specPath)) {
  console.error(`spec-coverage: ${specPath} not found (pass the path of normative.jsonl)`);
  process.exit(2);
}
const resultsPath = option('results')[0] ?? join(root, '.work', 'test-results.jsonl');
if (!existsSync(resultsPath)) {
  console.error(`spec-coverage: no test results at ${resultsPath}.`);
  console.error('Run `npm test` first (it records every test result there), or pass --results=<file>.');
  console.error('Coverage is counted from tests that passed, never from test source text.');
  process.exit(2);
}
const sourceDirs = option('sources');
if (sourceDirs.length === 0) sourceDirs.push(join(root, 'src'), join(root, 'test'));

const statements = new Map();
for (const line of readFileSync(specPath, 'utf8').split('\n')) {
  if (line.trim() === '') continue;
  const s = JSON.parse(line);
  statements.set(s.id, s);
}

const ID = /((?:device|driver)\/[a-z0-9-]+(?:\/[a-z0-9-]+)*)\/(\d+)((?:\s*(?:,|\/|\.\.|\bto\b)\s*\/?\d+(?![\d/a-z]))*)/g;

function idsIn(title) {
  const ids = [];
  for (const m of title.matchAll(ID)) {
    const prefix = m[1];
    let last = Number(m[2]);
    ids.push(`${prefix}/${last}`);
    for (const t of m[3].matchAll(/(,|\/|\.\.|\bto\b)\s*\/?(\d+)/g)) {
      const n = Number(t[2]);
      if (t[1] === '..' || t[1] === 'to') for (let k = last + 1; k <= n && k - last <= 200; k++) ids.push(`${prefix}/${k}`);
      else ids.push(`${prefix}/${n}`);
      last = n;
    }
  }
  return ids;
}

function addTo(map, id, file) {
  if (!map.has(id)) map.set(id, new Set());
  map.get(id).add(file);
}

// --- evidence: the recorded results -------------------------------------------------------
const records = [];
let started = null;
let finished = null;
for (const line of readFileSync(resultsPath, 'utf8').split('\n')) {
  if (line.trim() === '') continue;
  let r;
  try {
    r = JSON.parse(line);
  } catch {
    continue; // a line cut short by an interrupted run
  }
  if (r.kind === 'run') started = r.started;
  else if (r.kind === 'end') finished = r.finished;
  else if (r.kind === 'result' && Array.isArray(r.path) && r.path.length > 0) records.push(r);
}

/** dist/src/x/y.test.js -> src/x/y.test.ts: name the source a reader opens. */
const sourceName = (file) => file.replace(/^dist\//, '').replace(/\.js$/, '.ts');
const pathKey = (r) => `${r.file}\u0000${r.path.join('\u0000')}`;
// Suites that have a passing test somewhere under them (a describe whose tests were all
// skipped "passes" too, and proves nothing).
const suitesWithEvidence = new Set();
for (const r of records) {
  if (r.type !== 'test' || r.status !== 'pass') continue;
  for (let n = 1; n < r.path.length; n++) suitesWithEvidence.add(pathKey({ file: r.file, path: r.path.slice(0, n) }));
}
const proven = new Map(); // id -> Set(test file)
const unknown = new Map();
const counts = { pass: 0, fail: 0, skip: 0, todo: 0 };
for (const r of records) {
  if (r.type === 'test') counts[r.status] = (counts[r.status] ?? 0) + 1;
  if (r.status !== 'pass') continue;
  if (r.type === 'suite' && !suitesWithEvidence.has(pathKey(r))) continue;
  // Each record carries its own title last; enclosing describes are records of their own.
  for (const id of idsIn(r.path[r.path.length - 1])) addTo(statements.has(id) ? proven : unknown, id, sourceName(r.file));
}

// --- claims: ids named in test source titles (to show what is claimed but not proven) -------
function testFiles(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'node_modules') testFiles(p, out);
    } else if (/\.test\.(?:ts|mjs|js)$/.test(name)) out.push(p);
  }
  return out;
}
// The first string literal after it( / test( / describe( (titles fit on one line here).
const TITLE = /\b(?:it|test|describe)(?:\.(?:skip|only|todo))?\s*\(\s*(['"`])((?:\\.|(?!\1).)*)\1/g;
const named = new Map(); // id -> Set(source file)
for (const file of sourceDirs.flatMap((d) => testFiles(d, []))) {
  const rel = relative(root, file);
  for (const m of readFileSync(file, 'utf8').matchAll(TITLE)) {
    for (const id of idsIn(m[2])) addTo(statements.has(id) ? named : unknown, id, rel.startsWith('..') ? file : rel);
  }
}
const notPassing = new Map([...named].filter(([id]) => !proven.has(id)));

// --- report ---------------------------------------------------------------------------------
const filesRun = new Set(records.map((r) => r.file)).size;
console.log(`results: ${relative(process.cwd(), resultsPath) || resultsPath}, run of ${started ?? 'unknown time'} over ${filesRun} test files: ` +
  `${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped, ${counts.todo} todo`);
if (finished === null) console.log('warning: the run did not finish (no end record): results are partial');
console.log('');
const byFile = new Map();
for (const s of statements.values()) {
  const row = byFile.get(s.file) ?? { total: 0, proven: 0, must: 0, mustProven: 0, notPassing: 0 };
  row.total++;
  if (s.level === 'MUST') row.must++;
  if (proven.has(s.id)) {
    row.proven++;
    if (s.level === 'MUST') row.mustProven++;
  } else if (notPassing.has(s.id)) row.notPassing++;
  byFile.set(s.file, row);
}
const rows = [...byFile.entries()].filter(([, r]) => r.proven + r.notPassing > 0).sort((a, b) => b[1].proven - a[1].proven);
const w = Math.max(...rows.map(([f]) => f.length), 10);
console.log(`${'spec file'.padEnd(w)}  proven / statements   MUST proven / MUST   named, not passing`);
const line = (f, r) =>
  `${f.padEnd(w)}  ${String(r.proven).padStart(6)} / ${String(r.total).padEnd(10)}  ${String(r.mustProven).padStart(6)} / ${String(r.must).padEnd(9)}  ${String(r.notPassing).padStart(6)}`;
for (const [f, r] of rows) console.log(line(f, r));
const totalMust = [...statements.values()].filter((s) => s.level === 'MUST').length;
const mustProven = [...proven.keys()].filter((id) => statements.get(id).level === 'MUST').length;
console.log(line('all', { proven: proven.size, total: statements.size, mustProven, must: totalMust, notPassing: notPassing.size }));
console.log(`(${byFile.size - rows.length} spec files with none proven: devices and areas not implemented yet)`);
if (unknown.size > 0) {
  console.log(`\nids named in test titles that normative.jsonl does not have (${unknown.size}):`);
  for (const [id, files] of unknown) console.log(`  ${id}  (${[...files].join(', ')})`);
}
if (list) {
  console.log('\nproven:');
  for (const id of [...proven.keys()].sort()) console.log(`  ${id}  ${[...proven.get(id)].join(', ')}`);
  console.log('\nnamed in test sources, not proven (no passing test names them in this run):');
  for (const id of [...notPassing.keys()].sort()) console.log(`  ${id}  ${[...notPassing.get(id)].join(', ')}`);
}
if (devices) {
  const docsDir = join(root, 'docs', 'devices');
  // Pages write ranges as 12-18 too.
  // Pages write ranges as 12-18 or 51..54, and lists compactly: after `driver/net/1`, a bare
  // `/10` (after a space, comma or parenthesis) in the same paragraph or table row is driver/net/10.
  const docIds = (text) => {
    // The title syntax (`device/fs/5, 6, 8`, `..`, `to`) and the forms below, together.
    const ids = idsIn(text.replace(/((?:device|driver)\/[a-z0-9-]+\/\d+)-(\d+)/g, '$1..$2'));
    for (const block of text.split(/\n\s*\n|\n(?=\|)/)) {
      let prefix = null;
      for (const m of block.matchAll(/((?:device|driver)\/[a-z0-9-]+)\/(\d+)|(?<=[\s,(])\/(\d+)/g)) {
        if (m[1] !== undefined) prefix = m[1];
        if (prefix === null) continue;
        const first = Number(m[2] ?? m[3]);
        const rest = block.slice(m.index + m[0].length);
        const range = /^(?:-|\.\.)(\d+)/.exec(rest);
        const last = range ? Number(range[1]) : first;
        for (let k = first; k <= last && k - first <= 200; k++) ids.push(`${prefix}/${k}`);
      }
    }
    return ids;
  };
  console.log('\ndevice pages (docs/devices): statements proven / only listed on the page / missing');
  const pages = existsSync(docsDir) ? readdirSync(docsDir).filter((n) => n.endsWith('.md')).sort() : [];
  for (const page of pages) {
    const type = page.replace(/\.md$/, '');
    const ids = [...statements.keys()].filter((id) => id.startsWith(`device/${type}/`) || id.startsWith(`driver/${type}/`));
    if (ids.length === 0) {
      console.log(`  ${type.padEnd(10)} (no normative statements under device/${type} or driver/${type})`);
      continue;
    }
    const listed = new Set(docIds(readFileSync(join(docsDir, page), 'utf8')));
    const p = ids.filter((id) => proven.has(id));
    const l = ids.filter((id) => !proven.has(id) && listed.has(id));
    const m = ids.filter((id) => !proven.has(id) && !listed.has(id));
    console.log(`  ${type.padEnd(10)} ${String(p.length).padStart(4)} proven  ${String(l.length).padStart(4)} listed  ${String(m.length).padStart(4)} missing  of ${ids.length}`);
    if (m.length > 0) console.log(`             missing: ${m.join(' ')}`);
  }
}
