/**
 * Which Linux drivers a virtio device needs in the i386 Debian 686 kernel booted under v86, as a
 * declarative table keyed by device type. Dependencies come from the kernel's modules.dep
 * (`resolveModules`), so a list names the drivers and whatever a driver needs without a symbol
 * dependency (evdev for input events, 9p the file system over 9pnet_virtio, the failover pair
 * virtio_net pulls anyway, listed so the table says what gets loaded).
 *
 * Checked against 6.1.0-*-686's modules.dep (test/v86-modules.test.ts) and loaded, all lists in
 * one boot, by test/v86-devices.test.ts. Not in that kernel: snd-virtio, i2c-virtio, gpio-virtio (out-of-tree modules, passed
 * as `extraModules`), virtio_mem and virtio_pmem (64-bit only), virtio_iommu.
 */
import { DeviceId } from '../../src/spec/device-id.js';
import type { VirtioDevice } from '../../src/device/types.js';

/** The virtio PCI stack of the 686 kernel, in load order (loaded before any device driver). */
export const V86_VIRTIO_PCI_MODULES = ['virtio', 'virtio_ring', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci'] as const;

/** Guest drivers per device type (names as in modules.dep, `-` or `_`). */
export const V86_DEVICE_MODULES = {
  blk: ['virtio_blk'],
  entropy: ['virtio-rng'],
  console: ['virtio_console'],
  balloon: ['virtio_balloon'],
  input: ['virtio_input', 'evdev'],
  net: ['failover', 'net_failover', 'virtio_net'],
  '9p': ['9pnet_virtio', '9p'],
  gpu: ['virtio-gpu'],
  crypto: ['virtio_crypto'],
} as const satisfies Record<string, readonly string[]>;
export type V86DeviceType = keyof typeof V86_DEVICE_MODULES;

/** The device type of each device id the table knows. */
const TYPE_OF_ID: ReadonlyMap<number, V86DeviceType> = new Map<number, V86DeviceType>([
  [DeviceId.BLOCK, 'blk'],
  [DeviceId.ENTROPY, 'entropy'],
  [DeviceId.CONSOLE, 'console'],
  [DeviceId.BALLOON_TRADITIONAL, 'balloon'],
  [DeviceId.INPUT, 'input'],
  [DeviceId.NET, 'net'],
  [DeviceId.NINEP, '9p'],
  [DeviceId.GPU, 'gpu'],
  [DeviceId.CRYPTO, 'crypto'],
]);

/** The guest drivers for a device id, or undefined when the table has none (pass them yourself). */
export function v86ModulesForDeviceId(deviceId: number): readonly string[] | undefined {
  const type = TYPE_OF_ID.get(deviceId);
  return type === undefined ? undefined : V86_DEVICE_MODULES[type];
}

/** Every module of the table, each once, in table order: what the module-list boot loads. */
export function allV86DeviceModules(): string[] {
  return [...new Set(Object.values(V86_DEVICE_MODULES).flat())];
}

/**
 * What a device registry hands the v86 harness for one device type: how to build the device and
 * which guest drivers it needs (out-of-tree ones as files). A registry record maps onto it
 * directly; tests may also write one by hand.
 */
export interface V86DeviceSpec {
  readonly name: string;
  create(): VirtioDevice;
  /** In-tree drivers (modules.dep names); the table's list for the device id when absent. */
  readonly guestModules?: readonly string[];
  /** Out-of-tree driver files (`.ko` built for the 686 kernel), loaded after the in-tree ones. */
  readonly extraModules?: readonly V86ExtraModule[];
}

/**
 * A kernel module that is not part of the kernel package (e.g. virtio_snd, i2c-virtio built for
 * i386 by the guest kit). It is copied into the initramfs and loaded with `insmod` after the
 * in-tree modules; the in-tree modules it depends on come from its own `depends=` field
 * (modinfo) unless `dependsOn` says otherwise.
 */
export interface V86ExtraModule {
  /** Host path of the `.ko` file. */
  readonly path: string;
  /** Module parameters for insmod, e.g. `debug=1`. */
  readonly params?: string;
  /** In-tree modules to load first; read from the module's modinfo when absent. */
  readonly dependsOn?: readonly string[];
}
