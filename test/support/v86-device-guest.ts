/**
 * The common path for a real-guest test of any virtio-ts device on v86: put one or more
 * `VirtioDevice`s on v86's PCI bus (each on its own slot, modern or transitional), boot the i386
 * 686 kernel with the drivers they need (from the declarative table in v86-modules.ts, in
 * dependency order), run a guest script, and hand back the results with the adapters, so the test
 * can check the device's side. The emulator is always stopped, with a time bound.
 *
 * ```ts
 * const deps = ensureV86Deps();
 * const rng = new EntropyDevice({ source: counting.fill });
 * const run = await runV86DeviceGuest({
 *   assets: deps, devices: [{ device: rng }], timeoutMs: 8 * 60_000,
 *   script: 'dd if=/dev/hwrng bs=64 count=1 | hexdump -C; result ok 1',
 * });
 * ```
 */
import type { VirtioDevice } from '../../src/device/types.js';
import type { BadAccessReport } from '../../src/transport/bus.js';
import { attachV86Devices } from '../../src/transport/v86/v86-attach.js';
import type { V86PciAdapter } from '../../src/transport/v86/v86-pci-adapter.js';
import { GuestError, GuestFailure } from './guest.js';
import { type V86Assets, type V86GuestOptions, type V86GuestResult, runV86Guest } from './v86-guest.js';
import { type V86DeviceSpec, type V86ExtraModule, v86ModulesForDeviceId } from './v86-modules.js';

export interface V86GuestDevice {
  readonly device: VirtioDevice;
  /** Serve the legacy interface too (transitional device); the guest driver picks one. */
  readonly transitional?: boolean;
  /** Guest drivers (modules.dep names); the table's list for the device id when absent. */
  readonly modules?: readonly string[];
  /** Out-of-tree driver files for this device. */
  readonly extraModules?: readonly V86ExtraModule[];
  /** PCI slot as v86's `pci_id` (device << 3); the first free one from 0x0d by default. */
  readonly pciId?: number;
}

export interface V86DeviceGuestOptions {
  readonly assets: V86Assets;
  /** The devices, attached in this order from the first free slot (0x0d) on. */
  readonly devices: readonly V86GuestDevice[];
  /** The guest program (busybox sh), with the helpers of test/support/guest.ts. */
  readonly script: string;
  /** Hard bound of the whole run, boot included; the emulator is destroyed after it. */
  readonly timeoutMs: number;
  /**
   * Load virtio_pci with `force_legacy=1`: the legacy driver then drives every transitional
   * device through its legacy I/O BAR (4.1.2.3) and ignores modern-only ones.
   */
  readonly legacyDriver?: boolean;
  /** More in-tree modules to load (after the virtio PCI stack and the devices' drivers). */
  readonly modules?: readonly string[];
  /** More out-of-tree modules, loaded after every device's own. */
  readonly extraModules?: readonly V86ExtraModule[];
  readonly extraFiles?: V86GuestOptions['extraFiles'];
  readonly append?: string;
  readonly memoryMiB?: number;
  readonly fastBoot?: boolean;
  readonly onLine?: (line: string) => void;
  readonly allowFailure?: boolean;
  /**
   * Called once the devices are attached, with the attachment's `refreshMemory`: a test that
   * makes a device write guest memory outside any guest access (host events, timers) calls it
   * first, since v86's RAM buffer may have grown since the last access (docs/v86.md).
   */
  readonly onAttach?: (refreshMemory: () => void) => void;
  /**
   * Called when the run ends, before the devices are detached (detaching resets them, so their
   * state after the run, such as an agreed msize or a balloon's `actual`, is read here).
   */
  readonly beforeDetach?: () => void;
}

export interface V86DeviceGuestResult extends V86GuestResult {
  /** One adapter per device, in the order of `devices`: slot, interrupts, interface in use. */
  readonly adapters: readonly V86PciAdapter[];
  /** Accesses the transports refused, with the device's index. */
  readonly badAccesses: readonly V86BadAccess[];
}

export interface V86BadAccess extends BadAccessReport {
  readonly deviceIndex: number;
}

/** Most refused accesses kept (a looping driver must not grow the list without bound). */
const MAX_BAD_ACCESSES = 256;

/** A registry's device spec as a device of the run (builds the device). */
export function v86GuestDevice(spec: V86DeviceSpec, transitional = false): V86GuestDevice {
  return {
    device: spec.create(),
    transitional,
    ...(spec.guestModules ? { modules: spec.guestModules } : {}),
    ...(spec.extraModules ? { extraModules: spec.extraModules } : {}),
  };
}

/** A device's in-tree drivers: its own list, the table's, or none when it brings out-of-tree ones. */
function modulesOf(d: V86GuestDevice): readonly string[] {
  const mods = d.modules ?? v86ModulesForDeviceId(d.device.deviceId) ?? (d.extraModules ? [] : undefined);
  if (mods === undefined) {
    throw new GuestError(GuestFailure.BAD_OPTION, `no guest driver known for device id ${d.device.deviceId}: pass modules or extraModules`);
  }
  return mods;
}

/**
 * Boots the guest with the devices attached and runs the script. Resolves with the results and
 * the adapters; rejects with a GuestError holding the console (and the refused accesses, if
 * any) on timeout, a failed module load, or a non-zero exit unless `allowFailure`.
 */
export async function runV86DeviceGuest(opts: V86DeviceGuestOptions): Promise<V86DeviceGuestResult> {
  if (opts.devices.length === 0 && (opts.modules ?? []).length === 0) {
    throw new GuestError(GuestFailure.BAD_OPTION, 'runV86DeviceGuest needs at least one device or module');
  }
  const modules = [...opts.devices.flatMap(modulesOf), ...(opts.modules ?? [])];
  const extraModules = [...opts.devices.flatMap((d) => d.extraModules ?? []), ...(opts.extraModules ?? [])];
  const badAccesses: V86BadAccess[] = [];
  let adapters: readonly V86PciAdapter[] = [];
  try {
    const res = await runV86Guest({
      assets: opts.assets,
      modules,
      extraModules,
      script: opts.script,
      timeoutMs: opts.timeoutMs,
      ...(opts.legacyDriver ? { moduleParams: { virtio_pci: 'force_legacy=1' } } : {}),
      ...(opts.extraFiles ? { extraFiles: opts.extraFiles } : {}),
      ...(opts.append ? { append: opts.append } : {}),
      ...(opts.memoryMiB ? { memoryMiB: opts.memoryMiB } : {}),
      ...(opts.fastBoot !== undefined ? { fastBoot: opts.fastBoot } : {}),
      ...(opts.onLine ? { onLine: opts.onLine } : {}),
      ...(opts.allowFailure ? { allowFailure: opts.allowFailure } : {}),
      attach: (cpu) => {
        const attached = attachV86Devices(
          cpu,
          opts.devices.map((d) => ({ device: d.device, transitional: d.transitional ?? false, ...(d.pciId !== undefined ? { pciId: d.pciId } : {}) })),
          {
            onBadAccess: (deviceIndex, r) => {
              if (badAccesses.length < MAX_BAD_ACCESSES) badAccesses.push({ ...r, deviceIndex });
            },
          },
        );
        adapters = attached.adapters;
        opts.onAttach?.(attached.refreshMemory);
        return () => {
          try {
            opts.beforeDetach?.();
          } finally {
            attached.detach();
          }
        };
      },
    });
    return { ...res, adapters, badAccesses };
  } catch (e) {
    if (e instanceof GuestError && badAccesses.length > 0) {
      // The same failure, its reason followed by what the transports refused, then the console.
      const reason = e.message.split('\n----- console -----')[0]!.slice(e.failure.length + 2);
      throw new GuestError(e.failure, `${reason}\nrefused accesses: ${JSON.stringify(badAccesses.slice(0, 20))}`, e.output, { cause: e });
    }
    throw e;
  }
}
