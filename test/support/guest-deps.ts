/**
 * Host prerequisites of real-guest tests, installed on demand by the scripts `npm test` also runs
 * as root: scripts/install-guest-deps.sh (QEMU x86, cloud kernel, busybox) and
 * scripts/install-guest-kit.sh (generic kernel, headers and driver sources, s390x kernel and
 * busybox, socat/iperf3/gcc -m32/qemu-system-s390x). Outside CI a missing prerequisite gives
 * `{ ok: false, reason }` for `describe(..., { skip })`; under CI it throws, so the test fails.
 */
import { existsSync } from 'node:fs';
import { GuestError, GuestFailure } from './guest-errors.js';
import { GuestKitPart, inCI, isRoot, kitPartDir, onPath, runInstallScript } from './guest-host.js';
import { findCloudKernel } from './guest-kernels.js';

const QEMU_X86 = 'qemu-system-x86_64';

export type GuestDeps = { ok: true } | { ok: false; reason: string };

function depsPresent(): boolean {
  if (!onPath(QEMU_X86) || !existsSync('/bin/busybox')) return false;
  try {
    findCloudKernel();
    return true;
  } catch {
    return false;
  }
}

/** Under CI a reason becomes a thrown MISSING_DEPS; elsewhere it is returned for a skip. */
function missing(reason: string): GuestDeps {
  if (inCI) throw new GuestError(GuestFailure.MISSING_DEPS, reason);
  return { ok: false, reason };
}

/**
 * Makes sure QEMU, the cloud kernel and busybox are there, running scripts/install-guest-deps.sh
 * when they are not (needs root; CI is). Returns `{ ok: false, reason }` outside CI when they
 * cannot be had, so a test can skip with the reason; under CI it throws instead (never skip there).
 */
export function ensureGuestDeps(): GuestDeps {
  if (depsPresent()) return { ok: true };
  if (!isRoot && !inCI) return missing(`${QEMU_X86} or the cloud kernel is missing; run (as root) scripts/install-guest-deps.sh`);
  const failed = runInstallScript('install-guest-deps.sh');
  if (failed !== undefined) return missing(failed);
  return depsPresent() ? { ok: true } : missing(`scripts/install-guest-deps.sh ran but ${QEMU_X86}, /bin/busybox or the cloud kernel is still missing`);
}

/** The host programs and files the TOOLS part installs. */
function toolsPresent(): boolean {
  return (
    ['qemu-system-s390x', 'socat', 'iperf3', 'make', 'gcc'].every(onPath) &&
    existsSync('/usr/lib/x86_64-linux-gnu/libc.a') &&
    (existsSync('/usr/lib32/libc.a') || existsSync('/usr/lib/i386-linux-gnu/libc.a'))
  );
}

function partPresent(part: GuestKitPart): boolean {
  return part === GuestKitPart.TOOLS ? toolsPresent() : kitPartDir(part) !== undefined;
}

/**
 * `ensureGuestDeps()` plus the guest-kit parts asked for, fetched by scripts/install-guest-kit.sh
 * when missing (root). Same contract: `{ ok: false, reason }` outside CI, a throw under CI.
 */
export function ensureGuestKit(parts: readonly GuestKitPart[]): GuestDeps {
  const base = ensureGuestDeps();
  if (!base.ok) return base;
  const absent = parts.filter((p) => !partPresent(p));
  if (absent.length === 0) return { ok: true };
  if (!isRoot && !inCI) return missing(`guest kit parts missing: ${absent.join(' ')}; run (as root) scripts/install-guest-kit.sh ${absent.join(' ')}`);
  const failed = runInstallScript('install-guest-kit.sh', absent);
  if (failed !== undefined) return missing(failed);
  const still = parts.filter((p) => !partPresent(p));
  return still.length === 0 ? { ok: true } : missing(`scripts/install-guest-kit.sh ran but these parts are still missing: ${still.join(' ')}`);
}
