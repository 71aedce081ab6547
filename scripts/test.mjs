// `npm test`: everything CI runs. Installs what is missing, builds, lints, then runs every test
// (unit tests beside the modules in src/, integration tests in test/) with node's test runner.
// Besides node's usual report on stdout, every test's result goes to .work/test-results.jsonl
// (scripts/results-reporter.mjs): `npm run spec-coverage` counts only tests that passed there.
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureDeps, root, run } from './ensure-deps.mjs';

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.js')) out.push(relative(root, p));
  }
  return out;
}

ensureDeps();
run('npx', ['eslint', '--no-error-on-unmatched-pattern', 'src', 'test', 'bench', 'scripts', 'demo', 'fuzz', 'ui', 'docs/guide/examples']);
// The real-guest tests need QEMU, a Debian cloud kernel and a static busybox. Install them up
// front where we can (root, as in CI), so those tests run instead of discovering it one by one.
if (typeof process.getuid === 'function' && process.getuid() === 0) {
  run('bash', [join(root, 'scripts/install-guest-deps.sh')]);
  // The guest kit (test/support): generic and s390x kernels, headers, driver sources, socat, gcc -m32.
  run('bash', [join(root, 'scripts/install-guest-kit.sh')]);
  // The v86 real-driver test: SeaBIOS, an i386 Debian kernel and busybox (fetched, not installed).
  run('bash', [join(root, 'scripts/install-v86-deps.sh')]);
}
const files = [...collect(join(root, 'dist/src'), []), ...collect(join(root, 'dist/test'), [])].sort();
const only = process.argv.slice(2);
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
// Naming a reporter replaces node's default one, so name that default too (spec on a terminal,
// tap otherwise, as node chooses): stdout and its closing summary stay exactly as before.
const resultsDir = join(root, '.work');
mkdirSync(resultsDir, { recursive: true });
const reporters = [
  `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`,
  '--test-reporter-destination=stdout',
  `--test-reporter=${pathToFileURL(join(root, 'scripts/results-reporter.mjs')).href}`,
  `--test-reporter-destination=${join(resultsDir, 'test-results.jsonl')}`,
];
run(process.execPath, ['--test', '--test-timeout=600000', '--test-concurrency=1', ...reporters, ...selected]);
