/**
 * One call for a device test against a real Linux driver: which kernel and driver lists, the QEMU
 * device line, the guest userspace, the guest script and the checks on what it reported. The
 * initramfs is cached by content hash; QEMU is always ended within `timeoutMs`.
 *
 *   const res = await runDeviceGuest({
 *     kernel: 'generic', devices: ['9p'],
 *     qemuArgs: ['-fsdev', `local,id=f0,path=${dir},security_model=none`],
 *     qemuDevices: ['virtio-9p-pci,fsdev=f0,mount_tag=host0'],
 *     script: 'mount -t 9p -o trans=virtio host0 /mnt && result data "$(cat /mnt/a)"',
 *     checks: { results: { data: 'hello' } },
 *   });
 */
import { GuestError, GuestFailure } from './guest-errors.js';
import { GuestKitPart } from './guest-host.js';
import type { ExtraFile } from './guest-initramfs.js';
import { findKernel, KernelFlavour } from './guest-kernels.js';
import { modulesForDevices, type GuestDeviceType } from './guest-modules.js';
import { buildOutOfTreeModules, OutOfTreeTarget } from './guest-oot-modules.js';
import { bootGuest, type BootGuestOptions, type GuestResult } from './guest-qemu.js';
import { compileStatic, copyBinaryWithLibs, StaticArch, type StaticProgram } from './guest-userspace.js';

/** What must hold after the run; a failed check rejects with CHECK_FAILED and the console. */
export interface DeviceGuestChecks {
  /** `RESULT key=value` lines: the value equals the string, or matches the pattern. */
  readonly results?: Readonly<Record<string, string | RegExp>>;
  /** Patterns that must each match somewhere in the console (kernel messages included). */
  readonly console?: readonly RegExp[];
}

export interface DeviceGuestOptions extends Omit<BootGuestOptions, 'machine' | 'kernel' | 'modules' | 'extraFiles' | 'outOfTreeModules'> {
  /** Which Debian kernel; `cloud` by default (fastest boot). */
  readonly kernel?: KernelFlavour;
  /** Device types whose guest drivers to load (GUEST_DEVICE_MODULES); out-of-tree ones are built. */
  readonly devices: readonly GuestDeviceType[];
  /** More modules of the kernel to load (dependencies are added). */
  readonly extraModules?: readonly string[];
  /** q35 (virtio-pci) by default; microvm for virtio-mmio. */
  readonly machine?: BootGuestOptions['machine'];
  /** Each becomes `-device VALUE` after `qemuArgs`. */
  readonly qemuDevices?: readonly string[];
  /** Host binaries copied into the guest with their libraries (`socat`, `/usr/bin/iperf3`). */
  readonly userspace?: readonly string[];
  /** Static C programs compiled for the guest. */
  readonly programs?: readonly StaticProgram[];
  /** More files for the initramfs. */
  readonly files?: readonly ExtraFile[];
  readonly checks?: DeviceGuestChecks;
}

/** The guest-kit parts a run with these options needs, for `ensureGuestKit(...)`. */
export function guestKitPartsFor(opts: Pick<DeviceGuestOptions, 'kernel' | 'devices' | 'userspace' | 'programs'>): GuestKitPart[] {
  const parts: GuestKitPart[] = [];
  if (opts.kernel === KernelFlavour.GENERIC) parts.push(GuestKitPart.GENERIC);
  if ((opts.kernel === KernelFlavour.GENERIC ? modulesForDevices(KernelFlavour.GENERIC, opts.devices).outOfTree : []).length > 0) {
    parts.push(GuestKitPart.HEADERS_AMD64, GuestKitPart.SOURCE);
  }
  if ((opts.userspace ?? []).length > 0 || (opts.programs ?? []).some((p) => p.arch === StaticArch.I386)) parts.push(GuestKitPart.TOOLS);
  return parts;
}

/** Throws CHECK_FAILED (with the console) unless every check holds. */
export function checkGuestResult(res: GuestResult, checks: DeviceGuestChecks): void {
  const failed: string[] = [];
  for (const [key, want] of Object.entries(checks.results ?? {})) {
    const got = res.results.get(key);
    const ok = got !== undefined && (typeof want === 'string' ? got === want : want.test(got));
    if (!ok) failed.push(`result ${key}: got ${got === undefined ? '(none)' : JSON.stringify(got)}, want ${typeof want === 'string' ? JSON.stringify(want) : String(want)}`);
  }
  for (const re of checks.console ?? []) if (!re.test(res.output)) failed.push(`console does not match ${String(re)}`);
  if (failed.length > 0) throw new GuestError(GuestFailure.CHECK_FAILED, failed.join('; '), res.output);
}

/**
 * Boots the kernel with the devices' drivers and the userspace, runs the script, and checks what
 * it reported. Resolves with the run (results, console, timings, QEMU argv); rejects with a
 * GuestError as `runGuest` does, or CHECK_FAILED.
 */
export async function runDeviceGuest(opts: DeviceGuestOptions): Promise<GuestResult> {
  const flavour = opts.kernel ?? KernelFlavour.CLOUD;
  const kernel = findKernel(flavour);
  const { modules, outOfTree } = modulesForDevices(flavour, opts.devices);
  let outOfTreeModules: Awaited<ReturnType<typeof buildOutOfTreeModules>>['modules'] = [];
  if (outOfTree.length > 0) {
    const built = await buildOutOfTreeModules(OutOfTreeTarget.AMD64, outOfTree);
    if (built.kernelRelease !== kernel.version) {
      throw new GuestError(GuestFailure.NOT_FOUND, `out-of-tree modules are for ${built.kernelRelease}, the kernel is ${kernel.version}`);
    }
    outOfTreeModules = built.modules;
  }
  const programs = await Promise.all((opts.programs ?? []).map((p) => compileStatic(p)));
  const files = [...copyBinaryWithLibs(opts.userspace ?? []), ...programs, ...(opts.files ?? [])];
  const res = await bootGuest({
    ...opts,
    machine: opts.machine ?? 'q35',
    kernel,
    modules: [...modules, ...(opts.extraModules ?? [])],
    outOfTreeModules,
    extraFiles: files,
    qemuArgs: [...(opts.qemuArgs ?? []), ...(opts.qemuDevices ?? []).flatMap((d) => ['-device', d])],
  });
  if (opts.checks) checkGuestResult(res, opts.checks);
  return res;
}
