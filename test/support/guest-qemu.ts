/**
 * Running a guest under QEMU (TCG): the x86 command line (q35 or microvm, memfd RAM for
 * vhost-user), and the run itself: console lines, `RESULT key=value` collection, the script's exit
 * status, a hard time bound. Facts it relies on: shared/QEMU-NOTES.md.
 */
import { readFileSync } from 'node:fs';
import { GuestError, GuestFailure } from './guest-errors.js';
import { buildInitramfs, GUEST_EXIT_MARK, GUEST_START_MARK, INSMOD_FAIL_MARK, type ExtraFile, type OutOfTreeKo } from './guest-initramfs.js';
import { findCloudKernel, type GuestKernel } from './guest-kernels.js';
import { TRANSPORT_MODULES } from './guest-modules.js';
import { spawnBound } from './guest-process.js';

const QEMU_X86 = 'qemu-system-x86_64';

export type GuestMachine = 'q35' | 'microvm';

export interface RunGuestOptions {
  readonly machine: GuestMachine;
  /** Kernel image; the newest cloud kernel by default. */
  readonly kernel?: string;
  /** initramfs from `buildInitramfs`. */
  readonly initrd: string;
  /** Appended to the harness's command line (`console=ttyS0 panic=-1 quiet loglevel=4 ...`); later words win. */
  readonly append?: string;
  /** Devices and back-ends: `-drive`, `-device`, `-chardev`, `-object`, ... */
  readonly qemuArgs?: readonly string[];
  /** Guest RAM; 256 MiB by default. */
  readonly memoryMiB?: number;
  /**
   * Back guest RAM with `memory-backend-memfd,share=on` (id `mem`), as vhost-user needs: the
   * front-end passes its fds to the back-end.
   */
  readonly memfd?: boolean;
  /** vCPUs; 1 by default (vhost-user-blk-pci defaults to one queue per vCPU). */
  readonly smp?: number;
  /** Hard bound of the whole run; QEMU gets SIGKILL after it. 60 s by default. */
  readonly timeoutMs?: number;
  /** microvm only: keep QEMU's legacy (version 1) virtio-mmio instead of version 2. */
  readonly legacyMmio?: boolean;
  /**
   * Each console line as it arrives (without the line ending). `guest.send` types into the
   * guest's console, for a script waiting with `host_wait`.
   */
  readonly onLine?: (line: string, guest: GuestConsole) => void;
  /** Resolve instead of rejecting when the guest script exits non-zero. */
  readonly allowFailure?: boolean;
  /** Aborts the run (QEMU is killed) and rejects with the abort reason. */
  readonly signal?: AbortSignal;
  /** Called once QEMU is spawned, with its pid. */
  readonly onStart?: (pid: number) => void;
}

/** The host's side of the serial console during a run. */
export interface GuestConsole {
  /** Writes `text` to the guest's serial input (add the newline yourself). */
  send(text: string): void;
}

export interface GuestResult {
  /** The whole serial console (QEMU's stderr follows, marked, if it printed anything). */
  readonly output: string;
  /** Exit status of the guest script. */
  readonly exitCode: number;
  /** `RESULT key=value` lines; a later line with the same key wins. */
  readonly results: Map<string, string>;
  /** Start of QEMU to the first line of /init (firmware + kernel boot). */
  readonly bootMs: number;
  /** Start of QEMU to its exit. */
  readonly totalMs: number;
  /** The QEMU command line that ran (for reproducing by hand). */
  readonly argv: readonly string[];
}

/** The host's TSC in kHz, from /proc/cpuinfo, for `tsc_early_khz=` (0 when unknown). */
export function hostTscKhz(): number {
  try {
    const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m?.[1] ? Math.round(Number(m[1]) * 1000) : 0;
  } catch {
    return 0;
  }
}

/** Builds QEMU's argv for a run (exported so tests can show or tweak it). */
export function qemuArgv(opts: RunGuestOptions): string[] {
  const mem = opts.memoryMiB ?? 256;
  if (!Number.isInteger(mem) || mem < 32) throw new GuestError(GuestFailure.BAD_OPTION, `bad memoryMiB ${mem}`);
  const smp = opts.smp ?? 1;
  const kernel = opts.kernel ?? findCloudKernel().image;
  const machineProps: string[] = [opts.machine];
  const args: string[] = [];
  if (opts.memfd) {
    args.push('-object', `memory-backend-memfd,id=mem,size=${mem}M,share=on`);
    machineProps.push('memory-backend=mem');
  }
  // no_timer_check: the kernel's boot check that the IO-APIC timer ticks fails when TCG runs
  // slowly on a loaded host ("IO-APIC + timer doesn't work!", a panic; seen once in a clean-clone
  // CI run at load 6); the timer works, the check only gives up too early (cloud images set it).
  let append = 'console=ttyS0 panic=-1 quiet loglevel=4 no_timer_check';
  if (opts.machine === 'microvm') {
    // No HPET on microvm: under TCG and load the kernel can hang calibrating the TSC.
    const khz = hostTscKhz();
    if (khz > 0) append += ` tsc_early_khz=${khz}`;
    if (!opts.legacyMmio) args.push('-global', 'virtio-mmio.force-legacy=false');
  }
  if (opts.append) append += ' ' + opts.append;
  return [
    '-M', machineProps.join(','),
    '-accel', 'tcg',
    '-m', `${mem}M`,
    '-smp', String(smp),
    '-nographic', '-nodefaults', '-no-user-config',
    '-serial', 'stdio',
    '-no-reboot',
    '-kernel', kernel,
    '-initrd', opts.initrd,
    '-append', append,
    ...args,
    ...(opts.qemuArgs ?? []),
  ];
}

/**
 * Boots a guest and runs the initramfs's script. Resolves when QEMU exits after the guest
 * reported its exit status; rejects with a GuestError (holding the whole console) on timeout,
 * on a QEMU failure, a module that did not load, or a non-zero guest exit (unless allowFailure).
 * QEMU is always ended before the promise settles.
 */
export function runGuest(opts: RunGuestOptions): Promise<GuestResult> {
  return runQemu(QEMU_X86, qemuArgv(opts), opts);
}

/** How a run is bounded and watched, whatever the QEMU binary and machine. */
export type GuestRunControl = Pick<RunGuestOptions, 'timeoutMs' | 'onLine' | 'allowFailure' | 'signal' | 'onStart'>;

/**
 * Runs a QEMU binary whose guest boots a kit initramfs (any architecture): collects the `RESULT`
 * lines and the script's exit status from the console, and always ends QEMU (SIGKILL at the
 * latest on timeout or abort) before the promise settles.
 */
export function runQemu(binary: string, argv: readonly string[], opts: GuestRunControl): Promise<GuestResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise<GuestResult>((resolvePromise, rejectPromise) => {
    const t0 = performance.now();
    let bootMs = -1;
    let console_ = '';
    let stderr = '';
    let partial = '';
    let exitCode: number | undefined;
    let insmodFailed: string | undefined;
    const results = new Map<string, string>();
    let settled = false;

    const child = spawnBound(binary, argv, undefined, 'pipe');
    // A write after QEMU ended fails with EPIPE: the run's outcome is reported by 'close'.
    child.stdin?.on('error', () => undefined);
    const guestConsole: GuestConsole = {
      send: (text: string) => {
        if (!settled && child.stdin?.writable) child.stdin.write(text);
      },
    };
    if (child.pid !== undefined) opts.onStart?.(child.pid);
    const fullOutput = (): string => (stderr ? `${console_}\n----- qemu stderr -----\n${stderr}` : console_);

    const finish = (err: Error | undefined, value?: GuestResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const done = (): void => (err ? rejectPromise(err) : resolvePromise(value as GuestResult));
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        child.once('exit', done);
        child.kill('SIGKILL');
      } else {
        done();
      }
    };

    const onLineInternal = (raw: string): void => {
      const line = raw.replace(/\r/g, '');
      if (bootMs < 0 && line.includes(GUEST_START_MARK)) bootMs = performance.now() - t0;
      const r = /^RESULT ([A-Za-z0-9_.:-]+)=(.*)$/.exec(line);
      if (r?.[1] !== undefined) results.set(r[1], r[2] ?? '');
      const x = new RegExp(`^${GUEST_EXIT_MARK} (\\d+)$`).exec(line);
      if (x?.[1] !== undefined) exitCode = Number(x[1]);
      if (line.startsWith(INSMOD_FAIL_MARK)) insmodFailed = line.slice(INSMOD_FAIL_MARK.length).trim();
      opts.onLine?.(line, guestConsole);
    };

    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      console_ += chunk;
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        onLineInternal(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr += chunk;
    });

    const timer = setTimeout(() => {
      finish(new GuestError(GuestFailure.TIMEOUT, `guest run exceeded ${timeoutMs} ms; QEMU killed. argv: ${binary} ${argv.join(' ')}`, fullOutput()));
    }, timeoutMs);
    const onAbort = (): void => {
      const reason: unknown = opts.signal?.reason;
      finish(reason instanceof Error ? reason : new GuestError(GuestFailure.QEMU_FAILED, 'aborted', fullOutput()));
    };
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    child.once('error', (e) => {
      finish(new GuestError(GuestFailure.QEMU_FAILED, `cannot start ${binary}: ${e.message}`, fullOutput(), { cause: e }));
    });
    // 'close' (not 'exit'): all console output has been read by then.
    child.once('close', (code, sig) => {
      if (partial !== '') {
        onLineInternal(partial);
        partial = '';
      }
      const totalMs = performance.now() - t0;
      const out = fullOutput();
      if (insmodFailed !== undefined) {
        finish(new GuestError(GuestFailure.INSMOD_FAILED, `insmod ${insmodFailed} failed in the guest`, out));
      } else if (exitCode === undefined) {
        finish(new GuestError(GuestFailure.QEMU_FAILED, `QEMU exited (code ${String(code)}, signal ${String(sig)}) before the guest reported its exit. argv: ${binary} ${argv.join(' ')}`, out));
      } else if (exitCode !== 0 && !opts.allowFailure) {
        finish(new GuestError(GuestFailure.SCRIPT_FAILED, `guest script exited ${exitCode}; results: ${JSON.stringify(Object.fromEntries(results))}`, out));
      } else {
        finish(undefined, { output: out, exitCode, results, bootMs, totalMs, argv: [binary, ...argv] });
      }
    });
  });
}

/** What `bootGuest` takes: a run's options with the initramfs described instead of built. */
export type BootGuestOptions = Omit<RunGuestOptions, 'initrd' | 'kernel'> & {
  /** Kernel to boot, with its modules; the newest cloud kernel by default. */
  readonly kernel?: GuestKernel;
  readonly modules: readonly string[];
  readonly script: string;
  readonly extraFiles?: readonly ExtraFile[];
  readonly outOfTreeModules?: readonly OutOfTreeKo[];
};

/** Convenience: build the initramfs (with the transport's modules added) and run it. */
export async function bootGuest(opts: BootGuestOptions): Promise<GuestResult> {
  const kernel = opts.kernel ?? findCloudKernel();
  const initrd = await buildInitramfs({
    kernel,
    modules: [...TRANSPORT_MODULES[opts.machine], ...opts.modules],
    initScript: opts.script,
    extraFiles: opts.extraFiles,
    outOfTreeModules: opts.outOfTreeModules,
  });
  return runGuest({ ...opts, kernel: kernel.image, initrd });
}

/**
 * Runs the host-side checks of a finished guest run; when one fails, the error is rethrown with
 * the guest console (and `extra`, e.g. the back-end's log) appended, so a failing assertion
 * shows what the guest saw. The original error is the cause.
 */
export async function withConsole<T>(res: GuestResult, extra: string, checks: () => T | Promise<T>): Promise<T> {
  try {
    return await checks();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const err = new Error(`${msg}\n----- guest console -----\n${res.output}\n----- end console -----${extra ? `\n${extra}` : ''}`, { cause: e });
    throw err;
  }
}
