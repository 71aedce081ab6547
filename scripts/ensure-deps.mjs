// Installs the npm dependencies (and builds the native addon) when a fresh clone has none yet,
// then compiles the TypeScript. Shared by `npm test`, `npm run demo` and `npm run bench`.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

export function run(cmd, args, opts = {}) {
  execFileSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
}

export function ensureDeps() {
  if (!existsSync(`${root}/node_modules/.package-lock.json`)) {
    run('npm', ['install', '--no-audit', '--no-fund']);
  }
  run('npx', ['tsc', '-p', 'tsconfig.json']);
}
