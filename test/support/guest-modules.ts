/**
 * Kernel modules for the guest: the transport's stack, a declarative list per device type with the
 * kernels that have it, and resolution in load order from the kernel's modules.dep (dependencies
 * first, each once), since busybox `insmod` loads one file and resolves nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { GuestError, GuestFailure } from './guest-errors.js';
import { KernelFlavour, type GuestKernel } from './guest-kernels.js';
import type { GuestMachine } from './guest-qemu.js';

/** Modules each transport needs before any device driver (dependencies are added automatically). */
export const TRANSPORT_MODULES = {
  q35: ['virtio_pci'],
  microvm: ['virtio_mmio'],
} as const satisfies Record<GuestMachine, readonly string[]>;

/** A device type's guest driver: in-tree modules, out-of-tree ones (built by guest-oot-modules.ts), and the kernels that have it. */
export interface DeviceModules {
  readonly kernels: readonly KernelFlavour[];
  readonly modules: readonly string[];
  /** Built at test time from linux-source-6.1 (no Debian 6.1 kernel ships them); generic kernel only. */
  readonly outOfTree?: readonly OutOfTreeModule[];
}

/** Virtio drivers Debian's 6.1 kernels leave unbuilt, which guest-oot-modules.ts builds. */
export const OutOfTreeModule = {
  I2C_VIRTIO: 'i2c-virtio',
  GPIO_VIRTIO: 'gpio-virtio',
  VIRTIO_SND: 'virtio_snd',
} as const;
export type OutOfTreeModule = (typeof OutOfTreeModule)[keyof typeof OutOfTreeModule];

const BOTH = [KernelFlavour.CLOUD, KernelFlavour.GENERIC] as const;
const GENERIC_ONLY = [KernelFlavour.GENERIC] as const;

/**
 * The guest driver of each device type (names as in modules.dep; dependencies are added). Every
 * list is loaded in a guest by test/guest-kernels.test.ts, on each kernel it names.
 */
export const GUEST_DEVICE_MODULES = {
  net: { kernels: BOTH, modules: ['virtio_net'] },
  blk: { kernels: BOTH, modules: ['virtio_blk'] },
  console: { kernels: BOTH, modules: ['virtio_console'] },
  rng: { kernels: BOTH, modules: ['virtio-rng'] },
  balloon: { kernels: BOTH, modules: ['virtio_balloon'] },
  // sd_mod gives the disks behind the SCSI host their /dev/sdX.
  scsi: { kernels: BOTH, modules: ['virtio_scsi', 'sd_mod'] },
  // evdev gives /dev/input/eventN to read the events from.
  input: { kernels: BOTH, modules: ['virtio_input', 'evdev'] },
  vsock: { kernels: BOTH, modules: ['vmw_vsock_virtio_transport'] },
  fs: { kernels: BOTH, modules: ['virtiofs'] },
  mem: { kernels: BOTH, modules: ['virtio_mem'] },
  // nd_pmem makes the region a /dev/pmemN block device.
  pmem: { kernels: BOTH, modules: ['virtio_pmem', 'nd_pmem'] },
  gpu: { kernels: GENERIC_ONLY, modules: ['virtio-gpu'] },
  crypto: { kernels: GENERIC_ONLY, modules: ['virtio_crypto'] },
  '9p': { kernels: GENERIC_ONLY, modules: ['9pnet_virtio', '9p'] },
  // i2c-dev gives /dev/i2c-N for busybox's i2c tools.
  i2c: { kernels: GENERIC_ONLY, modules: ['i2c-dev'], outOfTree: [OutOfTreeModule.I2C_VIRTIO] },
  gpio: { kernels: GENERIC_ONLY, modules: [], outOfTree: [OutOfTreeModule.GPIO_VIRTIO] },
  snd: { kernels: GENERIC_ONLY, modules: [], outOfTree: [OutOfTreeModule.VIRTIO_SND] },
} as const satisfies Record<string, DeviceModules>;
export type GuestDeviceType = keyof typeof GUEST_DEVICE_MODULES;

/** The device types whose drivers a kernel flavour has (in-tree or out of tree). */
export function deviceTypesOf(flavour: KernelFlavour): GuestDeviceType[] {
  return (Object.keys(GUEST_DEVICE_MODULES) as GuestDeviceType[]).filter((d) => (GUEST_DEVICE_MODULES[d].kernels as readonly KernelFlavour[]).includes(flavour));
}

/** In-tree and out-of-tree module names for device types on a kernel; throws BAD_OPTION when the kernel lacks one. */
export function modulesForDevices(flavour: KernelFlavour, devices: readonly GuestDeviceType[]): { modules: string[]; outOfTree: OutOfTreeModule[] } {
  const modules: string[] = [];
  const outOfTree: OutOfTreeModule[] = [];
  for (const d of devices) {
    const entry: DeviceModules | undefined = GUEST_DEVICE_MODULES[d];
    if (entry === undefined) throw new GuestError(GuestFailure.BAD_OPTION, `unknown device type ${d}`);
    if (!entry.kernels.includes(flavour)) {
      throw new GuestError(GuestFailure.BAD_OPTION, `the ${flavour} kernel has no ${d} driver (kernels: ${entry.kernels.join(', ')})`);
    }
    for (const m of entry.modules) if (!modules.includes(m)) modules.push(m);
    for (const m of entry.outOfTree ?? []) if (!outOfTree.includes(m)) outOfTree.push(m);
  }
  return { modules, outOfTree };
}

/** `virtio-rng` and `virtio_rng` name the same module. */
export const normModName = (s: string): string => s.replace(/-/g, '_');

/** The module name of a `.ko` (or compressed) file path. */
export function modNameOfPath(p: string): string {
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

function moduleIndex(kernel: GuestKernel): ModuleIndex {
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
export function resolveModules(kernel: GuestKernel, names: readonly string[]): string[] {
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

/** The modules a `.ko` needs, from its `.modinfo` `depends=` string (for modules outside modules.dep). */
export function moduleDependencies(ko: Uint8Array): string[] {
  const text = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength).toString('latin1');
  const m = /\0depends=([^\0]*)\0/.exec(text);
  return m?.[1] ? m[1].split(',').filter((s) => s !== '').map(normModName) : [];
}

/** Reads a module file; compressed modules are unpacked on the host (busybox insmod cannot). */
export async function readModule(path: string): Promise<Uint8Array> {
  if (path.endsWith('.ko')) return readFile(path);
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : undefined;
  if (tool === undefined) throw new GuestError(GuestFailure.NOT_FOUND, `unknown module format ${path}`);
  return execFileSync(tool, ['-dc', path], { maxBuffer: 256 << 20 });
}
