/**
 * Out-of-tree guest modules: the virtio drivers Debian's 6.1 kernels leave unbuilt (i2c-virtio,
 * gpio-virtio, virtio_snd), compiled at test time from Debian's linux-source-6.1 against the
 * matching linux-headers package (both unpacked by scripts/install-guest-kit.sh: parts `source`
 * and `headers-amd64` or `headers-686`). They load into the generic kernel of the same ABI with a
 * taint warning (module signing is not enforced). Built modules are cached in the kit folder under
 * the headers' and sources' versions; a build takes some seconds (make -j2).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { GuestError, GuestFailure } from './guest-errors.js';
import { GuestKitPart, guestKitDir, kitPartDir } from './guest-host.js';
import type { OutOfTreeKo } from './guest-initramfs.js';
import { OutOfTreeModule } from './guest-modules.js';

/** Which kernel the modules are built for: the generic amd64 kernel or v86's i386 686 kernel. */
export const OutOfTreeTarget = {
  AMD64: 'amd64',
  I686: '686',
} as const;
export type OutOfTreeTarget = (typeof OutOfTreeTarget)[keyof typeof OutOfTreeTarget];

/** Source files of each module under the linux-source tree (what the kit unpacks). */
const SOURCES: Record<OutOfTreeModule, { readonly files: readonly string[]; readonly objects?: readonly string[] }> = {
  [OutOfTreeModule.I2C_VIRTIO]: { files: ['drivers/i2c/busses/i2c-virtio.c'] },
  [OutOfTreeModule.GPIO_VIRTIO]: { files: ['drivers/gpio/gpio-virtio.c'] },
  [OutOfTreeModule.VIRTIO_SND]: {
    files: ['sound/virtio/*'],
    // sound/virtio/Makefile's object list.
    objects: ['virtio_card', 'virtio_chmap', 'virtio_ctl_msg', 'virtio_jack', 'virtio_pcm', 'virtio_pcm_msg', 'virtio_pcm_ops'],
  },
};

export interface OutOfTreeBuild {
  /** `uname -r` of the kernel the modules are for, e.g. `6.1.0-57-amd64`. */
  readonly kernelRelease: string;
  /** The modules, stripped of debug info, in the order asked for. */
  readonly modules: OutOfTreeKo[];
  /** True when they came from the cache (no compiler run). */
  readonly cached: boolean;
}

function headersTree(target: OutOfTreeTarget): { root: string; tree: string; release: string } {
  const part = target === OutOfTreeTarget.AMD64 ? GuestKitPart.HEADERS_AMD64 : GuestKitPart.HEADERS_686;
  const root = kitPartDir(part);
  const src = root === undefined ? undefined : join(root, 'usr', 'src');
  const name = src === undefined || !existsSync(src) ? undefined : readdirSync(src).find((n) => n.startsWith('linux-headers-') && n.endsWith(`-${target}`));
  if (root === undefined || src === undefined || name === undefined) {
    throw new GuestError(GuestFailure.NOT_FOUND, `no linux-headers for ${target} unpacked; run (as root) scripts/install-guest-kit.sh ${part}`);
  }
  return { root, tree: join(src, name), release: name.slice('linux-headers-'.length) };
}

function run(cmd: string, args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolveP, rejectP) => {
    execFile(cmd, args, { cwd, timeout: 600_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) rejectP(new GuestError(GuestFailure.BUILD_FAILED, `${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolveP(stdout + stderr);
    });
  });
}

/** Copies the module's sources (a trailing `*` copies a whole folder) into the build folder. */
function copySources(sourceRoot: string, buildDir: string, module: OutOfTreeModule): void {
  for (const f of SOURCES[module].files) {
    const files = f.endsWith('/*') ? readdirSync(join(sourceRoot, f.slice(0, -2))).filter((n) => /\.[ch]$/.test(n)).map((n) => join(f.slice(0, -2), n)) : [f];
    for (const file of files) {
      const from = join(sourceRoot, file);
      if (!existsSync(from)) throw new GuestError(GuestFailure.NOT_FOUND, `${from} missing from the unpacked linux-source`);
      copyFileSync(from, join(buildDir, basename(file)));
    }
  }
}

/**
 * Builds (or takes from the cache) out-of-tree modules for a target kernel. Rejects with
 * NOT_FOUND when the headers or sources are not unpacked (`ensureGuestKit` fetches them).
 */
export async function buildOutOfTreeModules(
  target: OutOfTreeTarget = OutOfTreeTarget.AMD64,
  modules: readonly OutOfTreeModule[] = Object.values(OutOfTreeModule),
): Promise<OutOfTreeBuild> {
  const headers = headersTree(target);
  const source = kitPartDir(GuestKitPart.SOURCE);
  if (source === undefined) throw new GuestError(GuestFailure.NOT_FOUND, 'no linux-source unpacked; run (as root) scripts/install-guest-kit.sh source');
  // Keyed by both package versions: a new headers or source package gets a fresh build.
  const cacheDir = join(guestKitDir, `oot-${basename(headers.root)}-${basename(source)}`);
  const all = Object.values(OutOfTreeModule);
  const koPath = (m: OutOfTreeModule): string => join(cacheDir, `${m}.ko`);
  const cached = all.every((m) => existsSync(koPath(m)));
  if (!cached) {
    await mkdir(guestKitDir, { recursive: true });
    const build = await mkdtemp(join(guestKitDir, 'oot-build-'));
    try {
      for (const m of all) copySources(source, build, m);
      const kbuild = all.map((m) => `obj-m += ${m}.o\n${SOURCES[m].objects ? `${m}-objs := ${SOURCES[m].objects?.map((o) => `${o}.o`).join(' ')}\n` : ''}`).join('');
      await writeFile(join(build, 'Kbuild'), kbuild);
      await run('make', ['-C', headers.tree, `M=${build}`, '-j2', 'modules'], build);
      // Debug info is most of a .ko: strip it to keep the initramfs small.
      await run('strip', ['--strip-debug', ...all.map((m) => `${m}.ko`)], build);
      const staged = `${build}.out`;
      await mkdir(staged);
      for (const m of all) await rename(join(build, `${m}.ko`), join(staged, `${m}.ko`));
      await rename(staged, cacheDir).catch(async (e: unknown) => {
        // Another build got there first: its modules are the same.
        await rm(staged, { recursive: true, force: true });
        if (!all.every((m) => existsSync(koPath(m)))) throw e;
      });
    } finally {
      await rm(build, { recursive: true, force: true });
    }
  }
  const kos = await Promise.all(modules.map(async (m) => ({ name: m, data: new Uint8Array(await readFile(koPath(m))) })));
  return { kernelRelease: headers.release, modules: kos, cached };
}
