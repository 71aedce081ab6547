/**
 * The guest kernels: Debian's cloud kernel (installed by scripts/install-guest-deps.sh) and the
 * generic amd64 kernel at the same ABI (fetched and unpacked by scripts/install-guest-kit.sh, with
 * modules.dep made by `depmod -b`). The cloud kernel has net, blk, console, balloon, scsi, input,
 * vsock, virtiofs, mem, pmem and rng drivers; the generic one adds virtio-gpu, virtio_crypto and
 * 9p, and takes the out-of-tree modules (guest-oot-modules.ts). shared/QEMU-NOTES.md has the facts.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GuestError, GuestFailure } from './guest-errors.js';
import { GuestKitPart, kitPartDir } from './guest-host.js';

/** Which Debian kernel a guest boots. */
export const KernelFlavour = {
  /** `linux-image-cloud-amd64`, installed: boots fastest, the common virtio drivers. */
  CLOUD: 'cloud',
  /** `linux-image-<abi>-amd64`, unpacked: adds gpu, crypto, 9p and takes out-of-tree modules. */
  GENERIC: 'generic',
} as const;
export type KernelFlavour = (typeof KernelFlavour)[keyof typeof KernelFlavour];

export interface GuestKernel {
  /** `uname -r` of the kernel, e.g. `6.1.0-56-cloud-amd64`. */
  readonly version: string;
  /** Path of the bootable image (`/boot/vmlinuz-<version>`). */
  readonly image: string;
  /** `/lib/modules/<version>` (or its unpacked copy). */
  readonly modulesDir: string;
  /** Which Debian kernel (absent for kernels the kit does not manage, e.g. v86's i386 one). */
  readonly flavour?: KernelFlavour;
}
/** The name the harness used first; any kernel with its modules folder fits. */
export type CloudKernel = GuestKernel;

/** Orders Debian kernel versions (`6.1.0-9` before `6.1.0-10`). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const c = Number.isInteger(nx) && Number.isInteger(ny) && x !== '' && y !== '' ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

/** The newest installed Debian cloud kernel (`linux-image-cloud-amd64`) that has its modules. */
export function findCloudKernel(): GuestKernel {
  let names: string[] = [];
  try {
    names = readdirSync('/boot');
  } catch {
    names = [];
  }
  const versions = names
    .filter((n) => /^vmlinuz-.+-cloud-amd64$/.test(n))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((v) => existsSync(join('/lib/modules', v, 'modules.dep')))
    .sort(compareVersions);
  const version = versions[versions.length - 1];
  if (version === undefined) {
    throw new GuestError(GuestFailure.NOT_FOUND, 'no /boot/vmlinuz-*-cloud-amd64 with /lib/modules/<version>/modules.dep');
  }
  return { version, image: join('/boot', `vmlinuz-${version}`), modulesDir: join('/lib/modules', version), flavour: KernelFlavour.CLOUD };
}

/**
 * The generic amd64 kernel unpacked by scripts/install-guest-kit.sh (`ensureGuestKit(['generic'])`
 * fetches it). Throws NOT_FOUND when it is not there.
 */
export function findGenericKernel(): GuestKernel {
  const dir = kitPartDir(GuestKitPart.GENERIC);
  const version = dir === undefined ? undefined : readdirSync(join(dir, 'lib', 'modules')).filter((v) => v.endsWith('-amd64')).sort(compareVersions).pop();
  if (dir === undefined || version === undefined || !existsSync(join(dir, 'boot', `vmlinuz-${version}`)) || !existsSync(join(dir, 'lib', 'modules', version, 'modules.dep'))) {
    throw new GuestError(GuestFailure.NOT_FOUND, 'no generic amd64 kernel unpacked; run (as root) scripts/install-guest-kit.sh generic');
  }
  return { version, image: join(dir, 'boot', `vmlinuz-${version}`), modulesDir: join(dir, 'lib', 'modules', version), flavour: KernelFlavour.GENERIC };
}

/** The kernel of a flavour. */
export function findKernel(flavour: KernelFlavour): GuestKernel {
  return flavour === KernelFlavour.GENERIC ? findGenericKernel() : findCloudKernel();
}
