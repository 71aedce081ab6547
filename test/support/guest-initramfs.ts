/**
 * The guest's initramfs: a gzip'd newc cpio written here (device nodes need no root and equal
 * inputs give equal archives), holding /init, a static busybox and its applet links, the modules
 * in load order, the test script and extra files. Images are cached by content hash in
 * `initramfsCacheDir`, so a test that did not change boots from the same file.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { GuestError, GuestFailure } from './guest-errors.js';
import { findCloudKernel, type GuestKernel } from './guest-kernels.js';
import { moduleDependencies, normModName, readModule, resolveModules } from './guest-modules.js';

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
  readonly kernel?: GuestKernel;
  /**
   * Static busybox to put in the image (another architecture's, e.g. i386 for v86); the host's
   * /bin/busybox by default. Its applet list is taken from the host's busybox when it cannot run here.
   */
  readonly busybox?: string;
  /**
   * Modules built outside the kernel tree (guest-oot-modules.ts), loaded after the others; the
   * in-tree modules their `.modinfo` depends on are added.
   */
  readonly outOfTreeModules?: readonly OutOfTreeKo[];
}

/** A module file that is not in the kernel's modules.dep. */
export interface OutOfTreeKo {
  readonly name: string;
  readonly data: Uint8Array;
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

function initScriptFor(kernel: GuestKernel, modulePaths: readonly string[]): string {
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
  // stderr is kept: a foreign binary makes the shell fallback print a syntax error there.
  return execFileSync(path, ['--list-full'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
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
  const oot = opts.outOfTreeModules ?? [];
  const ootNames = new Set(oot.map((m) => normModName(m.name)));
  const ootDeps = oot.flatMap((m) => moduleDependencies(m.data)).filter((d) => !ootNames.has(d));
  const treePaths = resolveModules(kernel, [...opts.modules, ...ootDeps]);
  const treeData = await Promise.all(treePaths.map((m) => readModule(join(kernel.modulesDir, m))));
  // Out-of-tree modules go under extra/, as `make modules_install` puts them, after the tree's.
  const modulePaths = [...treePaths, ...oot.map((m) => `extra/${m.name}.ko`)];
  const moduleData = [...treeData, ...oot.map((m) => m.data)];
  const init = initScriptFor(kernel, modulePaths);
  const bb = busybox(opts.busybox);

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
