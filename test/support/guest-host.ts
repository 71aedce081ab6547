/**
 * What the guest kit knows about the host: the repository root, whether this is CI, the cache
 * folder of scripts/install-guest-kit.sh, and running the install scripts (root only).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestError, GuestFailure } from './guest-errors.js';

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'scripts'))) return dir;
    dir = dirname(dir);
  }
  throw new GuestError(GuestFailure.NOT_FOUND, 'cannot find the repository root from ' + import.meta.url);
}

/** Absolute path of the repository root (the folder holding package.json). */
export const repoRoot: string = findRepoRoot();

/** True when running under CI (`CI=true`): missing prerequisites are then failures, not skips. */
export const inCI: boolean = process.env['CI'] === 'true' || process.env['CI'] === '1';

export const isRoot: boolean = typeof process.getuid === 'function' && process.getuid() === 0;

/** True when `cmd` is an executable file in one of the PATH folders. */
export function onPath(cmd: string): boolean {
  const dirs = (process.env['PATH'] ?? '/usr/bin:/bin').split(':');
  return dirs.some((d) => d !== '' && existsSync(join(d, cmd)));
}

/**
 * Cache folder of scripts/install-guest-kit.sh (generic kernel, headers, driver sources, s390x
 * kernel and busybox), and of what the kit builds from them (out-of-tree modules, static programs).
 */
export const guestKitDir: string = process.env['VIRTIO_TS_GUESTKIT_DIR'] ?? join(tmpdir(), 'virtio-ts-guestkit');

/** The parts scripts/install-guest-kit.sh provides. */
export const GuestKitPart = {
  /** Host tools: qemu-system-s390x, socat, iperf3, make, gcc -m32 with an i386 libc. */
  TOOLS: 'tools',
  /** Debian's generic amd64 kernel at the cloud kernel's ABI, unpacked, with modules.dep. */
  GENERIC: 'generic',
  /** linux-headers for the generic amd64 kernel (out-of-tree modules). */
  HEADERS_AMD64: 'headers-amd64',
  /** linux-headers for the i386 686 kernel (v86's). */
  HEADERS_686: 'headers-686',
  /** The virtio driver sources Debian leaves unbuilt, from linux-source-6.1. */
  SOURCE: 'source',
  /** The s390x kernel and busybox. */
  S390X: 's390x',
  /** An s390x cross gcc with its static libc, unpacked (static s390x test programs). */
  S390X_GCC: 's390x-gcc',
} as const;
export type GuestKitPart = (typeof GuestKitPart)[keyof typeof GuestKitPart];

/** The folder of an unpacked kit part (named after its package version), or undefined. */
export function kitPartDir(part: Exclude<GuestKitPart, 'tools'>): string | undefined {
  try {
    const name = readFileSync(join(guestKitDir, `${part}.version`), 'utf8').trim();
    const dir = join(guestKitDir, name);
    return name !== '' && !name.includes('/') && existsSync(join(dir, 'READY')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** Runs one of scripts/*.sh (bounded to 20 minutes); returns its failure as text, or undefined. */
export function runInstallScript(name: string, args: readonly string[] = []): string | undefined {
  const script = join(repoRoot, 'scripts', name);
  try {
    execFileSync('bash', [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20 * 60_000, maxBuffer: 64 << 20 });
    return undefined;
  } catch (e) {
    const err = e as { stderr?: Buffer; stdout?: Buffer; message?: string };
    return `${script} ${args.join(' ')} failed: ${err.message ?? String(e)}\n${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}`;
  }
}
