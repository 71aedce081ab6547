#!/usr/bin/env node
// npm run fuzz -- <target> [--runs N | --seconds S] [--seed N] [--max-len N] [--out DIR] [--coverage counters|v8]
//                          [--corpus-only] [--no-corpus] [--write-seeds] [--reproduce FILE] [--list]
// Coverage-guided fuzzing of one untrusted surface (fuzz/README.md). Runs the compiled targets
// in dist/ (npm run build first). A finding prints the broken invariant and writes the input to
// fuzz-findings/<target>-<sha1>.bin; the exit code is then 1.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'fuzz');
const { TARGETS } = await import(join(dist, 'targets', 'index.js'));
const args = process.argv.slice(2);
const usage = 'usage: npm run fuzz -- <target> [--runs N | --seconds S] [--seed N] [--out DIR] [--corpus-only] [--write-seeds] [--reproduce FILE] | --list';

if (args.includes('--list')) {
  for (const t of TARGETS) console.log(t);
  process.exit(0);
}
const name = args[0];
if (!name || !TARGETS.includes(name)) {
  console.error(name ? `unknown target '${name}' (--list shows them)` : usage);
  process.exit(2);
}
const opt = (flag) => {
  const i = args.indexOf(flag);
  return i > 0 ? args[i + 1] : undefined;
};
const corpusDir = join(root, 'fuzz', 'corpus', name);

if (args.includes('--write-seeds')) {
  const { target } = await import(join(dist, 'targets', `${name}.js`));
  rmSync(corpusDir, { recursive: true, force: true });
  mkdirSync(corpusDir, { recursive: true });
  target.seeds().forEach((s, i) => writeFileSync(join(corpusDir, `seed-${String(i).padStart(2, '0')}.bin`), s));
  console.log(`${name}: ${target.seeds().length} seeds written to ${corpusDir}`);
  process.exit(0);
}

const reproduce = opt('--reproduce');
if (reproduce) {
  const { target } = await import(join(dist, 'targets', `${name}.js`));
  try {
    await target.run(new Uint8Array(readFileSync(reproduce)));
    console.log(`${name}: ${reproduce} runs clean`);
    process.exit(0);
  } catch (e) {
    console.error(`${name}: ${reproduce}: ${e?.stack ?? e}`);
    process.exit(1);
  }
}

const { runFuzz } = await import(join(dist, 'engine', 'run.js'));
const runs = opt('--runs') === undefined ? undefined : Number(opt('--runs'));
const seconds = opt('--seconds') === undefined ? undefined : Number(opt('--seconds'));
const result = await runFuzz({
  target: name,
  runs,
  seconds,
  seed: opt('--seed') === undefined ? undefined : Number(opt('--seed')),
  maxLen: opt('--max-len') === undefined ? undefined : Number(opt('--max-len')),
  corpusDirs: args.includes('--no-corpus') ? [] : [corpusDir],
  outDir: opt('--out') ?? null,
  corpusOnly: args.includes('--corpus-only'),
  coverage: opt('--coverage'),
  onProgress: (p) => {
    if (p.type === 'progress') console.error(`#${p.execs} blocks: ${p.blocks} features: ${p.features} corpus: ${p.corpus} exec/s: ${Math.round(p.execs / p.seconds)} heap: ${p.heapMb.toFixed(0)} MB`);
  },
});
const rate = Math.round(result.execs / result.seconds);
console.log(`${name}: ${result.execs} executions in ${result.seconds.toFixed(1)} s (${rate}/s), blocks ${result.blocks}, features ${result.features}, corpus ${result.corpus}, heap ${result.heapMb.toFixed(0)} MB`);
if (result.finding) {
  const f = result.finding;
  const dir = join(root, 'fuzz-findings');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${createHash('sha1').update(f.input).digest('hex')}.bin`);
  writeFileSync(file, f.input);
  console.error(`FINDING (${f.invariant}): ${f.message}\ninput (${f.input.length} bytes): ${file}\nhex: ${Buffer.from(f.input).toString('hex')}`);
  process.exit(1);
}
