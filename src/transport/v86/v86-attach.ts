/**
 * Attaches any number of virtio-ts devices to one v86 emulator's PCI bus, each on its own slot
 * and I/O ports, each driven through its own DeviceCore: the one call an embedder (a test
 * harness, a page running v86) needs between building the emulator and starting it.
 */
import { DeviceCore } from '../../device/device-core.js';
import type { VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import type { BadAccessReport } from '../bus.js';
import { type V86Cpu, V86PciAdapter, v86GuestMemory } from './v86-pci-adapter.js';

/** One device to attach, and where. */
export interface V86DeviceSlot {
  /** The device (any VirtioDevice). */
  readonly device: VirtioDevice;
  /**
   * Serve the legacy interface too (4.1.2.1: transitional device id, legacy I/O BAR0); which
   * interface is used is the guest driver's choice. Default false (modern only).
   */
  readonly transitional?: boolean;
  /** Name shown in v86's debug log; `virtio-ts-<device id>` by default. */
  readonly name?: string;
  /** PCI slot as v86's `pci_id`; the first free one by default. */
  readonly pciId?: number;
}

/** Options of attachV86Devices. */
export interface V86AttachOptions {
  /** Every access the transport refused, with the index of the device in the list. */
  readonly onBadAccess?: (deviceIndex: number, report: BadAccessReport) => void;
  /** Where the device cores log. */
  readonly logger?: Logger;
}

/** The adapters attached by `attachV86Devices`, in the order of the list, and how to undo them. */
export interface V86Attachment {
  /** The adapters, one per device, in the order given. */
  readonly adapters: readonly V86PciAdapter[];
  /** Detaches every adapter (idempotent); call before destroying the emulator. */
  detach(): void;
  /**
   * Rebinds every adapter's view of guest RAM if v86 grew its wasm memory. Work done inside a
   * guest access needs nothing; a device completing later (a timer, a host event) calls this
   * before touching guest RAM.
   */
  refreshMemory(): void;
}

/**
 * Puts each device on the PCI bus of `cpu` (`emulator.v86.cpu`). Must run before the firmware
 * enumerates the bus, i.e. after v86's `emulator-loaded` event and before `run()`. Each device
 * gets its own GuestMemory view, so a wasm memory growth is noticed by each adapter on its own
 * next access. On a failure half-way, the adapters attached so far are detached again.
 */
export function attachV86Devices(cpu: V86Cpu, slots: readonly V86DeviceSlot[], opts: V86AttachOptions = {}): V86Attachment {
  const adapters: V86PciAdapter[] = [];
  const detach = (): void => {
    for (const a of adapters) a.detach();
  };
  try {
    slots.forEach((slot, index) => {
      const memory = v86GuestMemory(cpu);
      const { device } = slot;
      const onBad = opts.onBadAccess;
      // The core's deferred notifications read guest RAM outside any port access: they rebind
      // it first if v86 grew its memory since (the adapter exists once the core is in use).
      let adapter: V86PciAdapter | undefined;
      adapters.push(
        (adapter = new V86PciAdapter(
          cpu,
          (sink, mode) =>
            new DeviceCore(device, {
              memory,
              interrupts: sink,
              legacy: mode.legacy,
              littleEndian: mode.littleEndian,
              beforeHostAccess: () => adapter?.refreshMemory(),
              ...(opts.logger ? { logger: opts.logger } : {}),
            }),
          {
            memory,
            transitional: slot.transitional ?? false,
            name: slot.name ?? `virtio-ts-${device.deviceId}`,
            ...(slot.pciId !== undefined ? { pciId: slot.pciId } : {}),
            ...(onBad ? { onBadAccess: (r: BadAccessReport) => onBad(index, r) } : {}),
          },
        )),
      );
    });
  } catch (e) {
    detach();
    throw e;
  }
  const refreshMemory = (): void => {
    for (const a of adapters) a.refreshMemory();
  };
  return { adapters, detach, refreshMemory };
}
