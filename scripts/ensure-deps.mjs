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
  } else if (!existsSync(`${root}/build/Release/virtio_ts_platform.node`)) {
    // node_modules present but the addon missing (a tree from before the addon, or build/
    // removed): build just the addon, as `npm install` would.
    // (The install script is node-gyp-build, run with npm's own node-gyp; build_from_source
    // makes it compile even where a prebuilds/ folder from `npm pack` is present.)
    run('npm', ['run', 'install'], { env: { ...process.env, npm_config_build_from_source: 'true' } });
  }
  run('npx', ['tsc', '-p', 'tsconfig.json']);
}
