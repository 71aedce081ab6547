// `npm pack` (prepack): builds the native addon for linux-x64 and linux-arm64 into prebuilds/,
// where node-gyp-build finds it at install and at load, so a user needs no C toolchain
// (prebuildify's convention). It builds in a copy of native/ and binding.gyp, so the tree's own
// build/Release (this machine's architecture, used by the tests) is left alone. arm64 is
// cross-compiled with Debian's gcc-aarch64-linux-gnu; `npm test` installs it (as root), and
// without it the pack fails rather than ship a package missing a platform.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from './ensure-deps.mjs';

const TARGETS = [
  { arch: 'x64', env: {} },
  {
    arch: 'arm64',
    env: { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', LINK: 'aarch64-linux-gnu-gcc', AR: 'aarch64-linux-gnu-ar', PREBUILD_STRIP_BIN: 'aarch64-linux-gnu-strip' },
  },
];

// npm sets npm_config_node_gyp to its own node-gyp for lifecycle scripts (prepack); run by hand,
// take the one npm bundles.
const nodeGyp =
  process.env.npm_config_node_gyp ?? join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm/node_modules/node-gyp/bin/node-gyp.js');

// The Node headers: npm's `nodedir` (Debian's nodejs-dev puts them under /usr), as `npm install`
// uses them; node-gyp would otherwise download them from nodejs.org.
const configured = execFileSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' }).trim();
const nodedir = process.env.npm_config_nodedir ?? (configured === '' || configured === 'undefined' || configured === 'null' ? undefined : configured);

const work = mkdtempSync(join(tmpdir(), 'vts-prebuild-'));
try {
  for (const f of ['native', 'binding.gyp', 'package.json']) cpSync(join(root, f), join(work, f), { recursive: true });
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  for (const t of TARGETS) {
    // N-API: one binary per platform serves every Node version; the headers are this Node's
    // (npm's nodedir, /usr on Debian), never downloaded.
    const args = ['--napi', '--strip', '--arch', t.arch, '--target', `node@${process.versions.node}`, '--cwd', work, '--out', root];
    execFileSync(process.execPath, [join(root, 'node_modules/prebuildify/bin.js'), ...args], {
      // Build chatter to stderr: `npm pack --json` keeps stdout for its JSON.
      stdio: ['ignore', 2, 2],
      env: { ...process.env, PREBUILD_NODE_GYP: nodeGyp, ...(nodedir ? { npm_config_nodedir: nodedir } : {}), ...t.env },
    });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
