/**
 * Real-guest test harness: boots a Debian cloud kernel with a busybox initramfs under QEMU (TCG)
 * and runs a shell script in the guest. The guest reports `RESULT key=value` lines on the serial
 * console and powers off; the host collects them.
 *
 * Facts this relies on are recorded in shared/QEMU-NOTES.md (module order, microvm's legacy MMIO
 * default and TSC calibration hang, memfd backends for vhost-user).
 *
 * Every QEMU (and every process started with `startProcess`) is killed on timeout, when the run
 * settles, and when the Node process exits; it also gets SIGKILL from the kernel if Node dies
 * without running its exit handlers (`setpriv --pdeathsig KILL`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, watch, type FSWatcher } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { ErrorCode, VirtioError } from '../../src/errors.js';

// ---------------------------------------------------------------------------------------------
// Errors

/** Why a guest run failed; stable values for assertions. */
export const GuestFailure = {
  /** The run did not end within `timeoutMs`: QEMU was killed. */
  TIMEOUT: 'TIMEOUT',
  /** QEMU could not be started or exited without the guest reporting its exit status. */
  QEMU_FAILED: 'QEMU_FAILED',
  /** A kernel module failed to load in the guest. */
  INSMOD_FAILED: 'INSMOD_FAILED',
  /** The guest script exited non-zero (and `allowFailure` was not set). */
  SCRIPT_FAILED: 'SCRIPT_FAILED',
  /** Host prerequisites (QEMU, kernel, busybox) are missing and cannot be installed. */
  MISSING_DEPS: 'MISSING_DEPS',
  /** A module, kernel or path asked for does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** An option given to the harness is invalid. */
  BAD_OPTION: 'BAD_OPTION',
} as const;
export type GuestFailure = (typeof GuestFailure)[keyof typeof GuestFailure];

/** A failed guest run. `output` holds the whole serial console (and QEMU's stderr). */
export class GuestError extends VirtioError {
  constructor(
    readonly failure: GuestFailure,
    message: string,
    readonly output = '',
    options?: { cause?: unknown },
  ) {
    super(
      failure === GuestFailure.TIMEOUT
        ? ErrorCode.TIMEOUT
        : failure === GuestFailure.BAD_OPTION
          ? ErrorCode.INVALID_ARGUMENT
          : ErrorCode.PLATFORM,
      output ? `${failure}: ${message}\n----- console -----\n${output}\n----- end console -----` : `${failure}: ${message}`,
      options,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Host prerequisites

const QEMU = 'qemu-system-x86_64';

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

function onPath(cmd: string): boolean {
  const dirs = (process.env['PATH'] ?? '/usr/bin:/bin').split(':');
  return dirs.some((d) => d !== '' && existsSync(join(d, cmd)));
}

function depsPresent(): boolean {
  if (!onPath(QEMU) || !existsSync('/bin/busybox')) return false;
  try {
    findCloudKernel();
    return true;
  } catch {
    return false;
  }
}

/** True when running under CI (`CI=true`): missing prerequisites are then failures, not skips. */
export const inCI: boolean = process.env['CI'] === 'true' || process.env['CI'] === '1';

export type GuestDeps = { ok: true } | { ok: false; reason: string };

/**
 * Makes sure QEMU, the cloud kernel and busybox are there, running scripts/install-guest-deps.sh
 * when they are not (needs root; CI is). Returns `{ ok: false, reason }` outside CI when they
 * cannot be had, so a test can skip with the reason; under CI it throws instead (never skip there).
 */
export function ensureGuestDeps(): GuestDeps {
  if (depsPresent()) return { ok: true };
  const script = join(repoRoot, 'scripts', 'install-guest-deps.sh');
  let reason: string;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot && !inCI) {
    reason = `${QEMU} or the cloud kernel is missing; run (as root) ${script}`;
  } else {
    try {
      execFileSync('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000, maxBuffer: 64 << 20 });
      if (depsPresent()) return { ok: true };
      reason = `${script} ran but ${QEMU}, /bin/busybox or the cloud kernel is still missing`;
    } catch (e) {
      const err = e as { stderr?: Buffer; stdout?: Buffer; message?: string };
      reason = `${script} failed: ${err.message ?? String(e)}\n${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}`;
    }
  }
  if (inCI) throw new GuestError(GuestFailure.MISSING_DEPS, reason);
  return { ok: false, reason };
}

// ---------------------------------------------------------------------------------------------
// Kernel and modules

export interface CloudKernel {
  /** `uname -r` of the kernel, e.g. `6.1.0-56-cloud-amd64`. */
  readonly version: string;
  /** Path of the bootable image (`/boot/vmlinuz-<version>`). */
  readonly image: string;
  /** `/lib/modules/<version>`. */
  readonly modulesDir: string;
}

function compareVersions(a: string, b: string): number {
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
export function findCloudKernel(): CloudKernel {
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
  return { version, image: join('/boot', `vmlinuz-${version}`), modulesDir: join('/lib/modules', version) };
}

/** Modules each transport needs before any device driver (dependencies are added automatically). */
export const TRANSPORT_MODULES = {
  q35: ['virtio_pci'],
  microvm: ['virtio_mmio'],
} as const satisfies Record<GuestMachine, readonly string[]>;

const normModName = (s: string): string => s.replace(/-/g, '_');

function modNameOfPath(p: string): string {
  return normModName(basename(p).replace(/\.ko(\.(xz|zst|gz))?$/, ''));
}

interface ModuleIndex {
  /** module name -> path relative to modulesDir */
  readonly paths: Map<string, string>;
  /** relative path -> dependency relative paths */
  readonly deps: Map<string, string[]>;
  readonly builtin: Set<string>;
}

const moduleIndexes = new Map<string, ModuleIndex>();

function moduleIndex(kernel: CloudKernel): ModuleIndex {
  const cached = moduleIndexes.get(kernel.modulesDir);
  if (cached) return cached;
  const paths = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(join(kernel.modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const mod = line.slice(0, colon).trim();
    const rest = line.slice(colon + 1).trim();
    deps.set(mod, rest === '' ? [] : rest.split(/\s+/));
    paths.set(modNameOfPath(mod), mod);
  }
  const builtin = new Set<string>();
  const builtinFile = join(kernel.modulesDir, 'modules.builtin');
  if (existsSync(builtinFile)) {
    for (const line of readFileSync(builtinFile, 'utf8').split('\n')) {
      if (line.trim() !== '') builtin.add(modNameOfPath(line.trim()));
    }
  }
  const idx = { paths, deps, builtin };
  moduleIndexes.set(kernel.modulesDir, idx);
  return idx;
}

/**
 * Resolves module names (`virtio_blk`, `virtio-rng`, ...) to their paths under the kernel's modules
 * folder, with every dependency from modules.dep, in an order `insmod` accepts (dependencies
 * first, each once). Built-in modules are left out.
 */
export function resolveModules(kernel: CloudKernel, names: readonly string[]): string[] {
  const idx = moduleIndex(kernel);
  const order: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (rel: string, depth: number): void => {
    if (done.has(rel)) return;
    // modules.dep is acyclic; the bound guards against a corrupt file.
    if (visiting.has(rel) || depth > 64) {
      throw new GuestError(GuestFailure.NOT_FOUND, `module dependency cycle at ${rel}`);
    }
    visiting.add(rel);
    for (const d of idx.deps.get(rel) ?? []) visit(d, depth + 1);
    visiting.delete(rel);
    done.add(rel);
    order.push(rel);
  };
  for (const name of names) {
    const n = normModName(name);
    const rel = idx.paths.get(n);
    if (rel === undefined) {
      if (idx.builtin.has(n)) continue;
      throw new GuestError(GuestFailure.NOT_FOUND, `kernel module ${name} is neither in modules.dep nor built into ${kernel.version}`);
    }
    visit(rel, 0);
  }
  return order;
}

// ---------------------------------------------------------------------------------------------
// initramfs (newc cpio written here, so device nodes need no root and the archive is reproducible)

export interface ExtraFile {
  /** Absolute path in the guest, e.g. `/etc/expected.bin`. */
  readonly path: string;
  readonly data: string | Uint8Array;
  /** Permission bits; 0o644 by default (0o755 for scripts that need to run). */
  readonly mode?: number;
}

export interface InitramfsOptions {
  /** Kernel modules to load (names as in modules.dep, `-` or `_`); dependencies are added. */
  readonly modules: readonly string[];
  /**
   * The guest program, a busybox `sh` script. /init runs it in a subshell after mounting
   * /proc, /sys, /dev (devtmpfs), /tmp and loading the modules; its exit status is reported to
   * the host. It may use the helpers /init defines:
   *   `result KEY VALUE`   prints `RESULT KEY=VALUE` (collected into `results`)
   *   `fail MESSAGE`       prints `RESULT error=MESSAGE` and exits 1
   *   `wait_path PATH [TENTHS]`  waits up to TENTHS/10 s (default 100 = 10 s) for PATH to exist
   *   `virtio_features DEV` prints the 64-character feature bit string of /sys/bus/virtio/devices/DEV
   *   `has_feature DEV BIT` succeeds when feature BIT was negotiated on DEV
   *   `host_wait WORD`     reads console lines until one equals WORD (sent by the host with
   *                        `GuestConsole.send`); fails at end of input
   * stdin, stdout and stderr are the serial console.
   */
  readonly initScript: string;
  readonly extraFiles?: readonly ExtraFile[];
  /** Kernel whose modules are used; the newest cloud kernel by default. */
  readonly kernel?: CloudKernel;
  /**
   * Static busybox to put in the image (another architecture's, e.g. i386 for v86); the host's
   * /bin/busybox by default. Its applet list is taken from the host's busybox when it cannot run here.
   */
  readonly busybox?: string;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

interface CpioEntry {
  name: string; // without leading '/'
  mode: number;
  data: Uint8Array;
  rdevMajor?: number;
  rdevMinor?: number;
}

function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  const pad4 = (len: number): Buffer => Buffer.alloc((4 - (len % 4)) % 4);
  let ino = 1;
  const push = (e: CpioEntry): void => {
    const name = Buffer.from(e.name + '\0', 'utf8');
    const header =
      '070701' +
      hex(ino++) +
      hex(e.mode) +
      hex(0) + // uid
      hex(0) + // gid
      hex((e.mode & 0o170000) === S_IFDIR ? 2 : 1) +
      hex(0) + // mtime: fixed, so equal inputs give equal archives
      hex(e.data.length) +
      hex(0) +
      hex(0) +
      hex(e.rdevMajor ?? 0) +
      hex(e.rdevMinor ?? 0) +
      hex(name.length) +
      hex(0);
    const h = Buffer.from(header, 'ascii');
    parts.push(h, name, pad4(h.length + name.length), Buffer.from(e.data), pad4(e.data.length));
  };
  for (const e of entries) push(e);
  push({ name: 'TRAILER!!!', mode: 0, data: new Uint8Array(0) });
  return Buffer.concat(parts);
}

/** Console lines /init prints: `<EXIT> <status>`, the start of the script, a failed insmod. */
export const GUEST_EXIT_MARK = 'VIRTIO-TS-GUEST-EXIT';
export const GUEST_START_MARK = 'VIRTIO-TS-GUEST-START';
export const INSMOD_FAIL_MARK = 'VIRTIO-TS-INSMOD-FAILED';

function initScriptFor(kernel: CloudKernel, modulePaths: readonly string[]): string {
  const mods = modulePaths.map((m) => `/lib/modules/${kernel.version}/${m}`).join(' ');
  return `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1
echo ${GUEST_START_MARK}
result() { echo "RESULT $1=$2"; }
fail() { echo "RESULT error=$*"; exit 1; }
wait_path() {
  _n=0
  while [ ! -e "$1" ]; do
    [ "$_n" -ge "\${2:-100}" ] && return 1
    usleep 100000
    _n=$((_n + 1))
  done
  return 0
}
virtio_features() { cat "/sys/bus/virtio/devices/$1/features"; }
host_wait() {
  while read -r _l; do [ "$_l" = "$1" ] && return 0; done
  return 1
}
# The sysfs string is one character per bit, bit 0 first.
has_feature() { [ "$(virtio_features "$1" | cut -c$(($2 + 1)))" = 1 ]; }
for m in ${mods}; do
  if ! insmod "$m"; then
    echo "${INSMOD_FAIL_MARK} $m"
    echo "${GUEST_EXIT_MARK} 125"
    poweroff -f
  fi
done
( . /test.sh )
echo "${GUEST_EXIT_MARK} $?"
sync
# Let the serial line drain before powering off: stty applies its settings with TCSADRAIN.
stty onlcr 2>/dev/null
poweroff -f
`;
}

const busyboxCache = new Map<string, { bytes: Buffer; links: string[] }>();

function busyboxLinks(path: string): string[] {
  return execFileSync(path, ['--list-full'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== 'bin/busybox');
}

function busybox(path = '/bin/busybox'): { bytes: Buffer; links: string[] } {
  const cached = busyboxCache.get(path);
  if (cached) return cached;
  const bytes = readFileSync(path);
  let links: string[];
  try {
    links = busyboxLinks(path);
  } catch {
    links = busyboxLinks('/bin/busybox'); // a foreign-architecture binary that cannot run here
  }
  const entry = { bytes, links };
  busyboxCache.set(path, entry);
  return entry;
}

/** Folder where built initramfs images are cached by content hash. */
export const initramfsCacheDir: string = join(tmpdir(), 'virtio-ts-initramfs');

/**
 * Builds (or finds in the cache) a gzip'd newc initramfs with /init, /bin/busybox and its applet
 * links, the modules with their dependencies, the test script at /test.sh and any extra files.
 * Returns the path of the image.
 */
export async function buildInitramfs(opts: InitramfsOptions): Promise<string> {
  const kernel = opts.kernel ?? findCloudKernel();
  const modulePaths = resolveModules(kernel, opts.modules);
  const init = initScriptFor(kernel, modulePaths);
  const bb = busybox(opts.busybox);
  const moduleData = await Promise.all(modulePaths.map((m) => readModule(join(kernel.modulesDir, m))));

  const hash = createHash('sha256');
  hash.update('v1\0' + kernel.version + '\0' + init + '\0' + opts.initScript + '\0');
  hash.update(bb.bytes);
  for (let i = 0; i < modulePaths.length; i++) {
    hash.update(modulePaths[i] + '\0');
    hash.update(moduleData[i] ?? new Uint8Array(0));
  }
  for (const f of opts.extraFiles ?? []) {
    hash.update(`${f.path}\0${f.mode ?? 0o644}\0`);
    hash.update(typeof f.data === 'string' ? Buffer.from(f.data) : f.data);
  }
  const digest = hash.digest('hex').slice(0, 32);
  await mkdir(initramfsCacheDir, { recursive: true });
  const out = join(initramfsCacheDir, `${digest}.cpio.gz`);
  if (existsSync(out)) {
    const now = new Date();
    await utimes(out, now, now).catch(() => undefined); // keeps it among the recent ones
    return out;
  }

  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const empty = new Uint8Array(0);
  const addDir = (d: string): void => {
    if (d === '' || d === '.' || dirs.has(d)) return;
    addDir(dirname(d) === '.' ? '' : dirname(d));
    dirs.add(d);
    entries.push({ name: d, mode: S_IFDIR | 0o755, data: empty });
  };
  const addFile = (p: string, data: Uint8Array, mode: number): void => {
    const name = p.replace(/^\/+/, '');
    if (name === '' || name.split('/').includes('..')) {
      throw new GuestError(GuestFailure.BAD_OPTION, `bad initramfs path ${p}`);
    }
    addDir(dirname(name) === '.' ? '' : dirname(name));
    entries.push({ name, mode: S_IFREG | (mode & 0o7777), data });
  };
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'run', 'mnt', 'etc', 'root']) addDir(d);
  // The kernel opens /dev/console for init before devtmpfs is mounted.
  entries.push({ name: 'dev/console', mode: S_IFCHR | 0o600, data: empty, rdevMajor: 5, rdevMinor: 1 });
  entries.push({ name: 'dev/null', mode: S_IFCHR | 0o666, data: empty, rdevMajor: 1, rdevMinor: 3 });
  addFile('/bin/busybox', bb.bytes, 0o755);
  for (const link of bb.links) {
    addDir(dirname(link));
    entries.push({ name: link, mode: S_IFLNK | 0o777, data: Buffer.from('/bin/busybox') });
  }
  for (let i = 0; i < modulePaths.length; i++) {
    addFile(`/lib/modules/${kernel.version}/${modulePaths[i] ?? ''}`, moduleData[i] ?? empty, 0o644);
  }
  addFile('/init', Buffer.from(init), 0o755);
  addFile('/test.sh', Buffer.from(opts.initScript), 0o755);
  for (const f of opts.extraFiles ?? []) {
    addFile(f.path, typeof f.data === 'string' ? Buffer.from(f.data) : f.data, f.mode ?? 0o644);
  }
  // gzip level 1: the archive is mostly busybox and modules; speed matters more than size here.
  const image = gzipSync(cpioNewc(entries), { level: 1 });
  const tmp = `${out}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, image);
  await rename(tmp, out); // atomic: concurrent builders of the same image agree
  await pruneInitramfsCache();
  return out;
}

/** Most images kept in the cache; the least recently used beyond it are deleted. */
const CACHE_KEEP = 48;

async function pruneInitramfsCache(): Promise<void> {
  const names = (await readdir(initramfsCacheDir)).filter((n) => n.endsWith('.cpio.gz'));
  if (names.length <= CACHE_KEEP) return;
  const aged = await Promise.all(
    names.map(async (n) => {
      const p = join(initramfsCacheDir, n);
      return { p, t: await stat(p).then((s) => s.mtimeMs, () => 0) };
    }),
  );
  aged.sort((a, b) => b.t - a.t);
  await Promise.all(aged.slice(CACHE_KEEP).map((e) => rm(e.p, { force: true })));
}

async function readModule(path: string): Promise<Uint8Array> {
  if (path.endsWith('.ko')) return readFile(path);
  // Compressed modules: busybox insmod cannot read them, so unpack on the host.
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : undefined;
  if (tool === undefined) throw new GuestError(GuestFailure.NOT_FOUND, `unknown module format ${path}`);
  return execFileSync(tool, ['-dc', path], { maxBuffer: 256 << 20 });
}

// ---------------------------------------------------------------------------------------------
// Running QEMU

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
  let append = 'console=ttyS0 panic=-1 quiet loglevel=4';
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

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
}

/** Spawns `cmd` so that it dies with this process (parent-death signal) and on its exit hook. */
function spawnBound(cmd: string, args: readonly string[], cwd?: string, stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const viaSetpriv = existsSync('/usr/bin/setpriv');
  const child = viaSetpriv
    ? spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: [stdin, 'pipe', 'pipe'], cwd })
    : spawn(cmd, [...args], { stdio: [stdin, 'pipe', 'pipe'], cwd });
  track(child);
  return child;
}

/**
 * Boots a guest and runs the initramfs's script. Resolves when QEMU exits after the guest
 * reported its exit status; rejects with a GuestError (holding the whole console) on timeout,
 * on a QEMU failure, a module that did not load, or a non-zero guest exit (unless allowFailure).
 * QEMU is always ended before the promise settles.
 */
export function runGuest(opts: RunGuestOptions): Promise<GuestResult> {
  const argv = qemuArgv(opts);
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

    const child = spawnBound(QEMU, argv, undefined, 'pipe');
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
      finish(new GuestError(GuestFailure.TIMEOUT, `guest run exceeded ${timeoutMs} ms; QEMU killed. argv: ${QEMU} ${argv.join(' ')}`, fullOutput()));
    }, timeoutMs);
    const onAbort = (): void => {
      const reason: unknown = opts.signal?.reason;
      finish(reason instanceof Error ? reason : new GuestError(GuestFailure.QEMU_FAILED, 'aborted', fullOutput()));
    };
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    child.once('error', (e) => {
      finish(new GuestError(GuestFailure.QEMU_FAILED, `cannot start ${QEMU}: ${e.message}`, fullOutput(), { cause: e }));
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
        finish(new GuestError(GuestFailure.QEMU_FAILED, `QEMU exited (code ${String(code)}, signal ${String(sig)}) before the guest reported its exit. argv: ${QEMU} ${argv.join(' ')}`, out));
      } else if (exitCode !== 0 && !opts.allowFailure) {
        finish(new GuestError(GuestFailure.SCRIPT_FAILED, `guest script exited ${exitCode}; results: ${JSON.stringify(Object.fromEntries(results))}`, out));
      } else {
        finish(undefined, { output: out, exitCode, results, bootMs, totalMs, argv: [QEMU, ...argv] });
      }
    });
  });
}

/** Convenience: build the initramfs (with the transport's modules added) and run it. */
export async function bootGuest(
  opts: Omit<RunGuestOptions, 'initrd'> & { modules: readonly string[]; script: string; extraFiles?: readonly ExtraFile[] },
): Promise<GuestResult> {
  const initrd = await buildInitramfs({
    modules: [...TRANSPORT_MODULES[opts.machine], ...opts.modules],
    initScript: opts.script,
    extraFiles: opts.extraFiles,
  });
  return runGuest({ ...opts, initrd });
}

// ---------------------------------------------------------------------------------------------
// Helpers for back-end tests

/**
 * Resolves when `path` exists (e.g. a unix socket a back-end is about to listen on). Watches the
 * parent folder with inotify and re-checks every 50 ms as a fallback; rejects with a TIMEOUT
 * GuestError after `timeoutMs`, or at once if `process` exits first.
 */
export function waitForPath(
  path: string,
  opts: { timeoutMs?: number; process?: ChildProcess | ManagedProcess; signal?: AbortSignal } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const proc = opts.process === undefined ? undefined : 'child' in opts.process ? opts.process.child : opts.process;
  return new Promise<void>((resolveP, rejectP) => {
    let watcher: FSWatcher | undefined;
    let done = false;
    const cleanup = (): void => {
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
      proc?.off('exit', onExit);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const check = (): void => {
      if (!done && existsSync(path)) {
        cleanup();
        resolveP();
      }
    };
    const onExit = (code: number | null, sig: NodeJS.Signals | null): void => {
      if (done) return;
      cleanup();
      if (existsSync(path)) resolveP();
      else rejectP(new GuestError(GuestFailure.QEMU_FAILED, `process exited (code ${String(code)}, signal ${String(sig)}) before ${path} appeared`));
    };
    const onAbort = (): void => {
      if (done) return;
      cleanup();
      rejectP(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
    };
    const timer = setTimeout(() => {
      if (done) return;
      cleanup();
      rejectP(new GuestError(GuestFailure.TIMEOUT, `${path} did not appear within ${timeoutMs} ms`));
    }, timeoutMs);
    const poll = setInterval(check, 50);
    try {
      watcher = watch(dirname(resolve(path)), check);
      watcher.on('error', () => undefined);
    } catch {
      watcher = undefined; // folder missing: the poll still bounds the wait
    }
    proc?.once('exit', onExit);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (proc && (proc.exitCode !== null || proc.signalCode !== null)) onExit(proc.exitCode, proc.signalCode);
    check();
  });
}

export interface TempDir {
  readonly path: string;
  /** `join(path, ...parts)` */
  file(...parts: string[]): string;
  /** Removes the folder and everything in it (idempotent). */
  remove(): Promise<void>;
}

const liveTempDirs = new Set<string>();
let tempExitHook = false;

/**
 * Makes a fresh folder under the OS temp dir (short, so unix socket paths stay under 108 bytes).
 * It is removed by `remove()`, or when the process exits if the test forgot.
 */
export async function makeTempDir(prefix = 'vts-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  liveTempDirs.add(path);
  if (!tempExitHook) {
    tempExitHook = true;
    process.once('exit', () => {
      for (const d of liveTempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return {
    path,
    file: (...parts: string[]) => join(path, ...parts),
    remove: async () => {
      liveTempDirs.delete(path);
      await rm(path, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` with a fresh temp dir, removing it afterwards whatever happens. */
export async function withTempDir<T>(fn: (dir: TempDir) => Promise<T>, prefix?: string): Promise<T> {
  const dir = await makeTempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await dir.remove();
  }
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved as received. */
  output(): string;
  /** Resolves with the exit code (or signal) when the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 2000); resolves when it has exited. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts a helper process (qemu-storage-daemon, virtiofsd, a back-end under test) that is killed
 * when this process exits or dies. Always `stop()` it in a `finally`.
 */
export function startProcess(cmd: string, args: readonly string[], opts: { cwd?: string; onLine?: (line: string) => void } = {}): ManagedProcess {
  const child = spawnBound(cmd, args, opts.cwd);
  let out = '';
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const s = chunk.toString('utf8');
    out += s;
    if (opts.onLine) {
      partial += s;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        opts.onLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('error', (e) => {
      out += `\nspawn error: ${e.message}\n`;
      res({ code: null, signal: null });
    });
    child.once('close', (code, signal) => res({ code, signal }));
  });
  const stop = async (graceMs = 2000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    }
    return exited;
  };
  return { child, output: () => out, exited, stop };
}

/** Writes `size` bytes of a raw disk image at `path` filled with `fill` (0 by default). */
export async function makeRawImage(path: string, size: number, fill = 0): Promise<void> {
  await writeFile(path, Buffer.alloc(size, fill));
}

/** Size of a file in bytes. */
export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

/** True when `path` is a unix socket. */
export function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
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
