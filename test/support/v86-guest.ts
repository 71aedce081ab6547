/**
 * Real-driver harness on v86 (npm `v86`, pinned in devDependencies): boots an i386 Debian kernel
 * with a busybox initramfs inside this Node process, headless, with Debian's SeaBIOS, and lets a
 * test put its own PCI device on the emulated PCI bus before the firmware runs
 * (src/transport/v86/v86-pci-adapter.ts). The guest script and its helpers are those of
 * test/support/guest.ts (`result`, `fail`, `wait_path`, `has_feature`, ...); results come back on
 * the serial console as `RESULT key=value` lines.
 *
 * The i386 kernel and busybox are fetched with `apt-get download` and unpacked into a cache
 * folder by scripts/install-v86-deps.sh (root; CI is). The emulator is always stopped and
 * destroyed before `runV86Guest` settles.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  type CloudKernel,
  type ExtraFile,
  GUEST_EXIT_MARK,
  GUEST_START_MARK,
  GuestError,
  GuestFailure,
  INSMOD_FAIL_MARK,
  buildInitramfs,
  inCI,
  repoRoot,
  resolveModules,
} from './guest.js';
import type { V86Cpu } from '../../src/transport/v86/v86-pci-adapter.js';
import { V86_VIRTIO_PCI_MODULES, type V86ExtraModule } from './v86-modules.js';

/** Where scripts/install-v86-deps.sh unpacks the i386 kernel and busybox. */
export const v86CacheDir: string = process.env['VIRTIO_TS_V86_CACHE'] ?? join(tmpdir(), 'virtio-ts-v86');

const SEABIOS = '/usr/share/seabios/bios.bin';
const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';

export interface V86Assets {
  readonly kernel: CloudKernel;
  readonly busybox: string;
  readonly bios: string;
  readonly vgaBios: string;
  /** v86's wasm module (from node_modules). */
  readonly wasm: string;
}

export type V86Deps = ({ ok: true } & V86Assets) | { ok: false; reason: string };

function findAssets(): V86Assets | string {
  const require = createRequire(join(repoRoot, 'package.json'));
  let wasm: string;
  try {
    wasm = require.resolve('v86/build/v86.wasm');
  } catch {
    return 'the npm package v86 is not installed (npm install)';
  }
  if (!existsSync(SEABIOS) || !existsSync(VGABIOS)) return `${SEABIOS} or ${VGABIOS} missing (package seabios)`;
  const ready = join(v86CacheDir, 'READY');
  if (!existsSync(ready)) return `no i386 kernel in ${v86CacheDir}`;
  const version = readFileSync(ready, 'utf8').trim();
  const image = join(v86CacheDir, 'kernel', 'boot', `vmlinuz-${version}`);
  const modulesDir = join(v86CacheDir, 'kernel', 'lib', 'modules', version);
  const busybox = join(v86CacheDir, 'busybox', 'bin', 'busybox');
  if (!existsSync(image) || !existsSync(join(modulesDir, 'modules.dep')) || !existsSync(busybox)) return `incomplete ${v86CacheDir}`;
  return { kernel: { version, image, modulesDir }, busybox, bios: SEABIOS, vgaBios: VGABIOS, wasm };
}

/**
 * Makes sure SeaBIOS, the i386 kernel and busybox are there, running scripts/install-v86-deps.sh
 * when they are not. Outside CI, returns `{ ok: false, reason }` when they cannot be had (pass it
 * to `describe(..., { skip })`); under CI it throws instead, so the test fails rather than skips.
 */
export function ensureV86Deps(): V86Deps {
  let found = findAssets();
  if (typeof found !== 'string') return { ok: true, ...found };
  const script = join(repoRoot, 'scripts', 'install-v86-deps.sh');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  let reason = found;
  if (!isRoot && !inCI) {
    reason = `${found}; run (as root) ${script}`;
  } else {
    try {
      execFileSync('bash', [script, v86CacheDir], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000, maxBuffer: 64 << 20 });
      found = findAssets();
      if (typeof found !== 'string') return { ok: true, ...found };
      reason = `${script} ran but: ${found}`;
    } catch (e) {
      const err = e as { stderr?: Buffer; stdout?: Buffer; message?: string };
      reason = `${script} failed: ${err.message ?? String(e)}\n${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}`;
    }
  }
  if (inCI) throw new GuestError(GuestFailure.MISSING_DEPS, reason);
  return { ok: false, reason };
}

/**
 * Kernel command line switches that shorten a v86 boot by seconds and change nothing a virtio
 * driver sees: no ISA PnP probe, no crypto self-tests at algorithm registration (a test of
 * virtio_crypto that wants them passes `fastBoot: false`).
 */
export const V86_FAST_BOOT_ARGS = 'noisapnp cryptomgr.notests=1';

/** Reads the `depends=` field of a module's .modinfo section (in-tree dependencies, comma separated). */
export function moduleDependsField(ko: Uint8Array): string[] {
  const buf = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength);
  const key = Buffer.from('\0depends=');
  const at = buf.indexOf(key);
  if (at < 0) return [];
  const start = at + key.length;
  const end = buf.indexOf(0, start);
  const field = buf.toString('latin1', start, end < 0 ? buf.length : end);
  return field === '' ? [] : field.split(',');
}

export interface V86GuestOptions {
  readonly assets: V86Assets;
  /** Device drivers to load after the virtio PCI stack (e.g. `virtio_blk`). */
  readonly modules: readonly string[];
  /** The guest program (busybox sh), as for test/support/guest.ts. */
  readonly script: string;
  readonly extraFiles?: readonly ExtraFile[];
  /** Added to the kernel command line (`console=ttyS0 ...`). */
  readonly append?: string;
  /**
   * Parameters for modules of the list, e.g. `{ virtio_pci: 'force_legacy=1' }`. The kernel
   * command line does not reach modules loaded with busybox `insmod` (modprobe is what copies
   * `module.param=` from /proc/cmdline), so these modules are left out of /init's loading and
   * loaded with their parameters at the start of the script instead.
   */
  readonly moduleParams?: Readonly<Record<string, string>>;
  /**
   * Modules from outside the kernel package (.ko files built for the 686 kernel), loaded with
   * insmod after the in-tree ones; their in-tree dependencies are added to `modules`.
   */
  readonly extraModules?: readonly V86ExtraModule[];
  /** Add V86_FAST_BOOT_ARGS to the command line; default true. */
  readonly fastBoot?: boolean;
  /** Guest RAM in MiB; 96 by default (v86 wants at least 64 with an initrd). */
  readonly memoryMiB?: number;
  /** Hard bound of the whole run; the emulator is destroyed after it. */
  readonly timeoutMs: number;
  /**
   * Called once the emulator is built and before the firmware runs: attach devices here (their
   * I/O ports and PCI slot must exist before SeaBIOS enumerates the bus). The function it
   * returns, if any, is called when the run ends, before the emulator is destroyed.
   */
  readonly attach?: (cpu: V86Cpu) => void | (() => void);
  /** Each console line as it arrives. */
  readonly onLine?: (line: string) => void;
  /** Resolve instead of rejecting when the guest script exits non-zero. */
  readonly allowFailure?: boolean;
}

export interface V86GuestResult {
  /** The serial console. */
  readonly output: string;
  readonly exitCode: number;
  readonly results: Map<string, string>;
  /** Start of the emulator to the first line of /init. */
  readonly bootMs: number;
  /** Start of the emulator to the guest's exit line. */
  readonly totalMs: number;
}

/** The parts of v86's `V86` class used here. */
interface V86Emulator {
  add_listener(event: string, fn: (arg: unknown) => void): void;
  run(): void;
  destroy(): Promise<void>;
  v86: { cpu: V86Cpu };
}
type V86Constructor = new (opts: Record<string, unknown>) => V86Emulator;

/** How long `destroy()` may take before the run settles without waiting for it. */
const DESTROY_BOUND_MS = 10_000;

function arrayBufferOf(path: string): ArrayBuffer {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
}

/**
 * Boots the i386 kernel in v86 and runs the script. Resolves when the guest reports its exit
 * status; rejects with a GuestError holding the console on timeout, a failed module load, an
 * emulator error, or a non-zero exit (unless allowFailure). The emulator is destroyed first.
 */
export async function runV86Guest(opts: V86GuestOptions): Promise<V86GuestResult> {
  const { assets } = opts;
  const params = opts.moduleParams ?? {};
  const deferred = Object.keys(params);
  const extraFiles = [...(opts.extraFiles ?? [])];
  const modules: string[] = [...V86_VIRTIO_PCI_MODULES, ...opts.modules];
  let prologue = '';
  for (const name of deferred) {
    const own = resolveModules(assets.kernel, [name]).find((m) => basename(m).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_') === name.replace(/-/g, '_'));
    if (own === undefined || !own.endsWith('.ko')) throw new GuestError(GuestFailure.NOT_FOUND, `module ${name} not found (uncompressed) for ${assets.kernel.version}`);
    extraFiles.push({ path: `/modparams/${name}.ko`, data: readFileSync(join(assets.kernel.modulesDir, own)) });
    prologue += `insmod /modparams/${name}.ko ${params[name] ?? ''} || { echo "${INSMOD_FAIL_MARK} ${name}"; exit 125; }\n`;
  }
  // Out-of-tree modules last: their in-tree dependencies (and any deferred module) are loaded by then.
  for (const [i, extra] of (opts.extraModules ?? []).entries()) {
    if (!existsSync(extra.path)) throw new GuestError(GuestFailure.NOT_FOUND, `extra module ${extra.path} does not exist`);
    const data = readFileSync(extra.path);
    modules.push(...(extra.dependsOn ?? moduleDependsField(data)));
    const file = `/extra-modules/${i}-${basename(extra.path)}`;
    extraFiles.push({ path: file, data });
    prologue += `insmod ${file} ${extra.params ?? ''} || { echo "${INSMOD_FAIL_MARK} ${basename(extra.path)}"; exit 125; }\n`;
  }
  const initrd = await buildInitramfs({
    kernel: assets.kernel,
    busybox: assets.busybox,
    modules: modules.filter((m) => !deferred.includes(m)),
    initScript: prologue + opts.script,
    extraFiles,
  });
  const mod = (await import('v86')) as unknown as { V86: V86Constructor };
  const mem = opts.memoryMiB ?? 96;
  let append = 'console=ttyS0 panic=-1 quiet loglevel=4';
  if (opts.fastBoot ?? true) append += ' ' + V86_FAST_BOOT_ARGS;
  if (opts.append) append += ' ' + opts.append;

  const t0 = performance.now();
  const emulator = new mod.V86({
    wasm_path: assets.wasm,
    memory_size: mem << 20,
    vga_memory_size: 2 << 20,
    bios: { buffer: arrayBufferOf(assets.bios) },
    vga_bios: { buffer: arrayBufferOf(assets.vgaBios) },
    bzimage: { buffer: arrayBufferOf(assets.kernel.image) },
    initrd: { buffer: arrayBufferOf(initrd) },
    cmdline: append,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    net_device: { type: 'none' },
  });

  return new Promise<V86GuestResult>((resolvePromise, rejectPromise) => {
    let output = '';
    let partial = '';
    let bootMs = -1;
    let settled = false;
    let detach: (() => void) | undefined;
    const results = new Map<string, string>();

    const finish = (err: Error | undefined, value?: V86GuestResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        detach?.();
      } catch {
        // The run's outcome matters more than a failed detach.
      }
      let answered = false;
      const done = (): void => {
        if (answered) return;
        answered = true;
        clearTimeout(destroyTimer);
        if (err) rejectPromise(err);
        else resolvePromise(value as V86GuestResult);
      };
      // destroy() stops the CPU loop at once; its promise is bounded too, so the run always settles.
      const destroyTimer = setTimeout(done, DESTROY_BOUND_MS);
      try {
        emulator.destroy().then(done, done);
      } catch {
        done();
      }
    };

    const onLine = (raw: string): void => {
      const line = raw.replace(/\r/g, '');
      if (bootMs < 0 && line.includes(GUEST_START_MARK)) bootMs = performance.now() - t0;
      const r = /^RESULT ([A-Za-z0-9_.:-]+)=(.*)$/.exec(line);
      if (r?.[1] !== undefined) results.set(r[1], r[2] ?? '');
      try {
        opts.onLine?.(line);
      } catch {
        // A listener must not stop the run.
      }
      if (line.startsWith(INSMOD_FAIL_MARK)) {
        const m = line.slice(INSMOD_FAIL_MARK.length).trim();
        finish(new GuestError(GuestFailure.INSMOD_FAILED, `insmod ${m} failed in the guest`, output));
        return;
      }
      const x = new RegExp(`^${GUEST_EXIT_MARK} (\\d+)$`).exec(line);
      if (x?.[1] !== undefined) {
        const exitCode = Number(x[1]);
        const totalMs = performance.now() - t0;
        if (exitCode !== 0 && !opts.allowFailure) {
          finish(new GuestError(GuestFailure.SCRIPT_FAILED, `guest script exited ${exitCode}; results: ${JSON.stringify(Object.fromEntries(results))}`, output));
        } else {
          finish(undefined, { output, exitCode, results, bootMs, totalMs });
        }
      }
    };

    emulator.add_listener('serial0-output-byte', (b) => {
      const c = String.fromCharCode(b as number);
      output += c;
      if (c === '\n') {
        const line = partial;
        partial = '';
        onLine(line);
      } else {
        partial += c;
      }
    });

    const timer = setTimeout(() => {
      finish(new GuestError(GuestFailure.TIMEOUT, `v86 guest run exceeded ${opts.timeoutMs} ms; emulator destroyed`, output));
    }, opts.timeoutMs);

    emulator.add_listener('emulator-loaded', () => {
      if (settled) return;
      try {
        const d = opts.attach?.(emulator.v86.cpu);
        if (typeof d === 'function') detach = d;
        emulator.run();
      } catch (e) {
        finish(new GuestError(GuestFailure.QEMU_FAILED, `attaching to v86 failed: ${String(e)}`, output, { cause: e }));
      }
    });
  });
}
