/**
 * A real big-endian guest over Channel I/O: Debian's s390x kernel (virtio and virtio_ccw built
 * in) with an s390x static busybox, both fetched with `apt-get download` under an s390x
 * architecture option and unpacked by scripts/install-guest-kit.sh (part `s390x`), booted by
 * `qemu-system-s390x` (package qemu-system-misc) under TCG on the `s390-ccw-virtio` machine. The
 * console is the SCLP line console on stdio; the guest script and its helpers are the kit's
 * (guest-initramfs.ts), so results come back as `RESULT key=value` lines. Boot to the script
 * takes about 3 s.
 *
 * QEMU 7.2 puts vhost-user devices on the CCW bus for fs (`vhost-user-fs-ccw`) and net
 * (`virtio-net-ccw` with `-netdev vhost-user`), not blk; `virtio-blk-ccw,max_revision=0` makes the
 * Linux driver take the legacy revision-0 path (big-endian rings and config, 32 feature bits).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GuestError, GuestFailure } from './guest-errors.js';
import { GuestKitPart, kitPartDir } from './guest-host.js';
import { buildInitramfs, type ExtraFile } from './guest-initramfs.js';
import type { GuestKernel } from './guest-kernels.js';
import { runQemu, type GuestResult, type GuestRunControl } from './guest-qemu.js';

export const QEMU_S390X = 'qemu-system-s390x';

export interface S390xAssets {
  readonly kernel: GuestKernel;
  /** The s390x static busybox (its applet list is taken from the host's busybox). */
  readonly busybox: string;
}

/** The unpacked s390x kernel and busybox; throws NOT_FOUND when they are not there. */
export function findS390xAssets(): S390xAssets {
  const dir = kitPartDir(GuestKitPart.S390X);
  const modules = dir === undefined ? undefined : join(dir, 'lib', 'modules');
  const version = modules === undefined || !existsSync(modules) ? undefined : readdirSync(modules).find((v) => v.endsWith('-s390x'));
  if (dir === undefined || version === undefined || !existsSync(join(dir, 'boot', `vmlinuz-${version}`)) || !existsSync(join(dir, 'bin', 'busybox'))) {
    throw new GuestError(GuestFailure.NOT_FOUND, 'no s390x kernel and busybox unpacked; run (as root) scripts/install-guest-kit.sh s390x');
  }
  return {
    kernel: { version, image: join(dir, 'boot', `vmlinuz-${version}`), modulesDir: join(dir, 'lib', 'modules', version) },
    busybox: join(dir, 'bin', 'busybox'),
  };
}

export interface S390xGuestOptions extends GuestRunControl {
  /** Modules of the s390x kernel to load (virtio and virtio_ccw are built in; `virtio_blk` is a module). */
  readonly modules: readonly string[];
  /** The guest program (busybox sh) with the kit's helpers (`result`, `fail`, `wait_path`, ...). */
  readonly script: string;
  readonly extraFiles?: readonly ExtraFile[];
  /** Devices and back-ends: `-device virtio-blk-ccw,...`, `-chardev`, `-netdev`, ... */
  readonly qemuArgs?: readonly string[];
  /** Guest RAM; 512 MiB by default. */
  readonly memoryMiB?: number;
  /** Back guest RAM with `memory-backend-memfd,share=on` (id `mem`), as vhost-user needs. */
  readonly memfd?: boolean;
  /** Added to the kernel command line. */
  readonly append?: string;
}

/** QEMU's argv for an s390x run (exported so a test can show it for reproducing by hand). */
export function s390xQemuArgv(opts: S390xGuestOptions & { readonly kernelImage: string; readonly initrd: string }): string[] {
  const mem = opts.memoryMiB ?? 512;
  if (!Number.isInteger(mem) || mem < 64) throw new GuestError(GuestFailure.BAD_OPTION, `bad memoryMiB ${mem}`);
  const machine = ['s390-ccw-virtio'];
  const args: string[] = [];
  if (opts.memfd) {
    args.push('-object', `memory-backend-memfd,id=mem,size=${mem}M,share=on`);
    machine.push('memory-backend=mem');
  }
  return [
    '-M', machine.join(','),
    '-accel', 'tcg',
    '-m', `${mem}M`,
    '-smp', '1',
    // -serial stdio becomes the SCLP console: no console= needed on the command line.
    '-nographic', '-nodefaults', '-no-user-config',
    '-serial', 'stdio',
    '-no-reboot',
    '-kernel', opts.kernelImage,
    '-initrd', opts.initrd,
    '-append', `panic=-1 quiet loglevel=4${opts.append ? ' ' + opts.append : ''}`,
    ...args,
    ...(opts.qemuArgs ?? []),
  ];
}

/**
 * Boots the s390x guest and runs the script; resolves and rejects as `runGuest` does (QEMU is
 * ended before the promise settles, SIGKILL after `timeoutMs`, 90 s by default).
 */
export async function bootS390xGuest(opts: S390xGuestOptions): Promise<GuestResult> {
  const assets = findS390xAssets();
  const initrd = await buildInitramfs({
    kernel: assets.kernel,
    busybox: assets.busybox,
    modules: opts.modules,
    initScript: opts.script,
    extraFiles: opts.extraFiles,
  });
  return runQemu(QEMU_S390X, s390xQemuArgv({ ...opts, kernelImage: assets.kernel.image, initrd }), { ...opts, timeoutMs: opts.timeoutMs ?? 90_000 });
}
