// `npm run demo`: the main job. Installs and builds on a fresh clone, runs the in-process demo
// (a driver and virtio-ts devices in one process), then, where QEMU can run, the guest demo: the
// `virtio-ts blk` and `rng` back-ends serving a real Linux guest (demo/guest-demo.ts). As root
// (as in CI) it installs QEMU, the kernel and busybox first; otherwise it uses what is there.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureDeps, root, run } from './ensure-deps.mjs';

ensureDeps();
run(process.execPath, ['dist/src/cli/main.js', 'demo', ...process.argv.slice(2)]);
if (typeof process.getuid === 'function' && process.getuid() === 0) {
  run('bash', [join(root, 'scripts/install-guest-deps.sh')]);
}
console.log('');
try {
  execFileSync(process.execPath, ['dist/demo/guest-demo.js'], { stdio: 'inherit', cwd: root });
} catch (e) {
  // 2: QEMU or the kernel is missing; the in-process demo above is the main job then.
  if (e.status !== 2) process.exit(e.status ?? 1);
}
