/**
 * The main job (`npm run demo`) as a user runs it: the in-process demo, and the guest demo where
 * a virtio-ts blk and rng back-end serve a real Linux guest under QEMU.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureGuestDeps, repoRoot } from './support/guest.js';

const deps = ensureGuestDeps();

describe('demo', () => {
  it('in-process: every check holds, split and packed, blk and entropy', { timeout: 60_000 }, () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'demo'], { encoding: 'utf8', timeout: 50_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /split virtqueue[\s\S]*packed virtqueue[\s\S]*entropy device/);
    assert.doesNotMatch(r.stdout, /^ {2}FAIL /m);
    assert.match(r.stdout, /all checks held/);
  });

  it('guest: virtio-ts blk and rng serve a Linux guest; the image holds what it wrote', { skip: deps.ok ? false : deps.reason, timeout: 200_000 }, () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'dist/demo/guest-demo.js')], { encoding: 'utf8', timeout: 180_000, killSignal: 'SIGKILL' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal((r.stdout.match(/^ {2}ok {3}/gm) ?? []).length, 5, r.stdout);
    assert.match(r.stdout, /all checks held/);
  });
});
