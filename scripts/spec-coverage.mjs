// `npm run spec-coverage`: which normative statements of the specification the tests prove.
// A test proves a statement when its title (the first argument of it / test / describe) names the
// statement's id from ../shared/virtio-spec/normative.jsonl (or a copy given as the argument).
// Titles may list ids compactly: `device/blk/1, device/blk/3`, `driver/split-ring/2, 24`,
// `driver/blk/13..20`, `device/transport-pci/20 to /24`, `device/transport-pci/2 /13`.
//
//   node scripts/spec-coverage.mjs [normative.jsonl] [--list]
//
// Prints a table per spec file (statements, proven, MUST proven) and, with --list, every proven
// id with the test files that name it. Ids named in titles that the spec does not have are
// reported too (a typo proves nothing).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { root } from './ensure-deps.mjs';

const args = process.argv.slice(2);
const list = args.includes('--list');
const specPath = args.find((a) => !a.startsWith('--')) ?? join(root, '..', 'shared', 'virtio-spec', 'normative.jsonl');
if (!existsSync(specPath)) {
  console.error(`spec-coverage: ${specPath} not found (pass the path of normative.jsonl)`);
  process.exit(2);
}
const statements = new Map();
for (const line of readFileSync(specPath, 'utf8').split('\n')) {
  if (line.trim() === '') continue;
  const s = JSON.parse(line);
  statements.set(s.id, s);
}

function testFiles(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collectDir(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
function collectDir(p, out) {
  if (!p.endsWith('node_modules')) testFiles(p, out);
}

// The first string literal after it( / test( / describe( on a line (titles fit on one line here).
const TITLE = /\b(?:it|test|describe)(?:\.(?:skip|only|todo))?\s*\(\s*(['"`])((?:\\.|(?!\1).)*)\1/g;
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

const proven = new Map(); // id -> Set(file)
const unknown = new Map();
for (const file of [...testFiles(join(root, 'src'), []), ...testFiles(join(root, 'test'), [])]) {
  const rel = relative(root, file);
  for (const m of readFileSync(file, 'utf8').matchAll(TITLE)) {
    for (const id of idsIn(m[2])) {
      const target = statements.has(id) ? proven : unknown;
      if (!target.has(id)) target.set(id, new Set());
      target.get(id).add(rel);
    }
  }
}

const byFile = new Map();
for (const s of statements.values()) {
  const row = byFile.get(s.file) ?? { total: 0, proven: 0, must: 0, mustProven: 0 };
  row.total++;
  if (s.level === 'MUST') row.must++;
  if (proven.has(s.id)) {
    row.proven++;
    if (s.level === 'MUST') row.mustProven++;
  }
  byFile.set(s.file, row);
}
const rows = [...byFile.entries()].filter(([, r]) => r.proven > 0).sort((a, b) => b[1].proven - a[1].proven);
const w = Math.max(...rows.map(([f]) => f.length), 10);
console.log(`${'spec file'.padEnd(w)}  proven / statements   MUST proven / MUST`);
for (const [f, r] of rows) {
  console.log(`${f.padEnd(w)}  ${String(r.proven).padStart(6)} / ${String(r.total).padEnd(10)}  ${String(r.mustProven).padStart(6)} / ${r.must}`);
}
const totalMust = [...statements.values()].filter((s) => s.level === 'MUST').length;
const mustProven = [...proven.keys()].filter((id) => statements.get(id).level === 'MUST').length;
console.log(`${'all'.padEnd(w)}  ${String(proven.size).padStart(6)} / ${String(statements.size).padEnd(10)}  ${String(mustProven).padStart(6)} / ${totalMust}`);
console.log(`(${byFile.size - rows.length} spec files with none proven: devices and areas not implemented yet)`);
if (unknown.size > 0) {
  console.log(`\nids named in test titles that normative.jsonl does not have (${unknown.size}):`);
  for (const [id, files] of unknown) console.log(`  ${id}  (${[...files].join(', ')})`);
}
if (list) {
  console.log('\nproven:');
  for (const id of [...proven.keys()].sort()) console.log(`  ${id}  ${[...proven.get(id)].join(', ')}`);
}
