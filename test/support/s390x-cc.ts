/**
 * Static s390x (big-endian) test programs: the kit's unpacked s390x cross gcc (part `s390x-gcc`
 * of scripts/install-guest-kit.sh; Debian's gcc-12-s390x-linux-gnu and the s390x libc unpacked,
 * never installed, because installing it would remove gcc-multilib). gcc finds cc1, as, ld and
 * the libc relative to its own folder; binutils' shared libraries come from the same tree.
 * Binaries are cached in the kit folder by content hash.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GuestError, GuestFailure } from './guest-errors.js';
import { GuestKitPart, guestKitDir, kitPartDir } from './guest-host.js';
import type { ExtraFile } from './guest-initramfs.js';

const FLAGS = ['-static', '-O2', '-Wall'];

/** Compiles `source` for s390x with `gcc -static -O2` into an ExtraFile at `path` (mode 0755). */
export async function compileStaticS390x(source: string, path: string): Promise<ExtraFile> {
  const root = kitPartDir(GuestKitPart.S390X_GCC);
  if (root === undefined) throw new GuestError(GuestFailure.NOT_FOUND, 'no s390x cross gcc unpacked; run (as root) scripts/install-guest-kit.sh s390x-gcc');
  const digest = createHash('sha256').update(`s390x\0${FLAGS.join(' ')}\0${source}`).digest('hex').slice(0, 32);
  const dir = join(guestKitDir, 'static-programs');
  const out = join(dir, `${digest}.s390x`);
  if (!existsSync(out)) {
    await mkdir(dir, { recursive: true });
    const src = `${out}.${process.pid}.c`;
    const tmp = `${out}.${process.pid}.tmp`;
    await writeFile(src, source);
    try {
      await new Promise<void>((resolve, reject) => {
        execFile(
          join(root, 'usr', 'bin', 's390x-linux-gnu-gcc-12'),
          [...FLAGS, '-o', tmp, src],
          { timeout: 120_000, maxBuffer: 16 << 20, env: { ...process.env, LD_LIBRARY_PATH: join(root, 'usr', 'lib', 'x86_64-linux-gnu') } },
          (err, _stdout, stderr) => (err ? reject(new GuestError(GuestFailure.BUILD_FAILED, `s390x gcc failed: ${err.message}\n${stderr}`)) : resolve()),
        );
      });
      await rename(tmp, out);
    } finally {
      await rm(src, { force: true });
      await rm(tmp, { force: true });
    }
  }
  return { path, data: await readFile(out), mode: 0o755 };
}
