/**
 * Wires a device-side transport to its driver-side counterpart in one process, over one guest
 * memory and a LoopbackBus: the driver's register accesses and channel commands go straight to
 * the device adapter, and the device's interrupts come back to the driver's handler. Used by the
 * transport matrix tests and handy for examples.
 */
import { DeviceCore } from '../device/device-core.js';
import type { DeviceCoreOptions } from '../device/device-core-options.js';
import type { VirtioDevice } from '../device/types.js';
import type { DriverTransport } from '../driver/types.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { TRANSPORT_FEATURES_SUPPORTED } from '../spec/features.js';
import { type BadAccessListener, type CoreFactory, LoopbackBus } from './bus.js';
import { CcwDeviceTransport } from './ccw/ccw-device.js';
import { CCW_DRIVER_SCRATCH, CcwDriverTransport } from './ccw/ccw-driver.js';
import { MmioDeviceTransport } from './mmio/mmio-device.js';
import { MmioDriverTransport } from './mmio/mmio-driver.js';
import { PciDeviceTransport } from './pci/pci-device.js';
import { PciDriverTransport } from './pci/pci-driver.js';

/** The transports `createTransportPair` can build (chapter 4: PCI 4.1, MMIO 4.2, channel I/O 4.3). */
export const TransportKind = {
  /** Modern (virtio 1.x) PCI with MSI-X. */
  PCI_MODERN: 'pci-modern',
  /** Modern PCI with INTx instead of MSI-X. */
  PCI_MODERN_INTX: 'pci-modern-intx',
  /** A transitional PCI device driven through its legacy I/O BAR. */
  PCI_LEGACY: 'pci-legacy',
  /** MMIO version 2 (4.2.2). */
  MMIO: 'mmio',
  /** MMIO version 1, the legacy register layout (4.2.4). */
  MMIO_LEGACY: 'mmio-legacy',
  /** Channel I/O revision 0: the legacy interface, big-endian by default (4.3.2.1.1). */
  CCW_REV0: 'ccw-rev0',
  /** Channel I/O revision 1: virtio 1.x, with classic indicators. */
  CCW_REV1: 'ccw-rev1',
  /** Channel I/O revision 2: adds CCW_CMD_READ_STATUS. */
  CCW_REV2: 'ccw-rev2',
  /** Revision 2 with two-stage adapter indicators. */
  CCW_REV2_ADAPTER: 'ccw-rev2-adapter',
} as const;
export type TransportKind = (typeof TransportKind)[keyof typeof TransportKind];

/** Whether the kind drives the legacy interface (split rings in the legacy layout only). */
export function isLegacyKind(kind: TransportKind): boolean {
  return kind === TransportKind.PCI_LEGACY || kind === TransportKind.MMIO_LEGACY || kind === TransportKind.CCW_REV0;
}

/**
 * A device transport and a driver transport of one kind wired over a LoopbackBus
 * (createTransportPair).
 */
export interface TransportPair {
  /** Which transport. */
  readonly kind: TransportKind;
  /** The bus between them. */
  readonly bus: LoopbackBus;
  /** The device side. */
  readonly device: PciDeviceTransport | MmioDeviceTransport | CcwDeviceTransport;
  /** The driver side, for VirtioDriver.init or startDeviceDriver. */
  readonly driver: DriverTransport;
}

/** Options of createTransportPair. */
export interface TransportPairOptions {
  /** Guest address of a scratch area the CCW driver may use (CCW_DRIVER_SCRATCH + config size). */
  readonly ccwScratch?: {
    /** Guest physical address of the first scratch byte. */
    readonly addr: number;
    /** Bytes available from `addr`. */
    readonly size: number;
  };
  /** Legacy kinds: false for a big-endian guest (CCW revision 0 defaults to big-endian). */
  readonly guestLittleEndian?: boolean;
  /** Told of every access the device side refused. */
  readonly onBadAccess?: BadAccessListener;
  /** Deliver interrupts in a microtask (as a real interrupt arrives after the access). */
  readonly deferredInterrupts?: boolean;
}

/**
 * A CoreFactory building the real DeviceCore for `device`. Every call (a transitional
 * transport switching interface) makes a fresh core; the transport resets the previous one
 * first, which resets the device. `made` collects the cores, newest last.
 */
export function deviceCoreFactory(
  device: VirtioDevice,
  memory: GuestMemory,
  opts: Omit<DeviceCoreOptions, 'memory' | 'interrupts' | 'legacy' | 'littleEndian'> = {},
  made: DeviceCore[] = [],
): CoreFactory {
  return (sink, mode) => {
    const transportFeatures = (opts.transportFeatures ?? TRANSPORT_FEATURES_SUPPORTED) | (mode.transportFeatures ?? 0n);
    const core = new DeviceCore(device, { ...opts, transportFeatures, memory, interrupts: sink, legacy: mode.legacy, littleEndian: mode.littleEndian });
    made.push(core);
    return core;
  };
}

/**
 * Builds the device and driver sides of transport `kind` over one LoopbackBus and `memory`, the
 * device side making its cores with `factory` (deviceCoreFactory): a device driven at register
 * level as a guest would.
 */
export function createTransportPair(kind: TransportKind, memory: GuestMemory, factory: CoreFactory, opts: TransportPairOptions = {}): TransportPair {
  const bus = new LoopbackBus(memory, opts.deferredInterrupts ?? false);
  const onBadAccess = opts.onBadAccess;
  const bad = onBadAccess ? { onBadAccess } : {};
  switch (kind) {
    case TransportKind.PCI_MODERN:
    case TransportKind.PCI_MODERN_INTX:
    case TransportKind.PCI_LEGACY: {
      const legacy = kind === TransportKind.PCI_LEGACY;
      const le = opts.guestLittleEndian ?? true;
      const device = new PciDeviceTransport(bus, factory, { transitional: legacy, guestLittleEndian: le, ...bad });
      const driver = new PciDriverTransport(device, memory, { legacy, useMsix: kind !== TransportKind.PCI_MODERN_INTX, guestLittleEndian: le });
      bus.onMsi = (a, d) => driver.handleMsi(a, d);
      bus.onIrq = () => driver.handleIntx();
      return { kind, bus, device, driver };
    }
    case TransportKind.MMIO:
    case TransportKind.MMIO_LEGACY: {
      const legacy = kind === TransportKind.MMIO_LEGACY;
      const le = opts.guestLittleEndian ?? true;
      const device = new MmioDeviceTransport(bus, factory, { version: legacy ? 1 : 2, guestLittleEndian: le, ...bad });
      const driver = new MmioDriverTransport(device, memory, { guestLittleEndian: le });
      bus.onIrq = () => driver.handleInterrupt();
      return { kind, bus, device, driver };
    }
    default: {
      const revision = kind === TransportKind.CCW_REV0 ? 0 : kind === TransportKind.CCW_REV1 ? 1 : 2;
      const le = opts.guestLittleEndian ?? false;
      const device = new CcwDeviceTransport(bus, factory, { guestLittleEndian: le, subchannelId: 0x0001_0000, ...bad });
      const scratch = opts.ccwScratch ?? { addr: 0, size: CCW_DRIVER_SCRATCH + 4096 };
      const driver = new CcwDriverTransport(device, memory, {
        scratchAddr: scratch.addr,
        scratchSize: scratch.size,
        revision,
        adapter: kind === TransportKind.CCW_REV2_ADAPTER,
        subchannelId: 0x0001_0000,
        guestLittleEndian: le,
      });
      bus.onIo = () => driver.handleIoInterrupt();
      bus.onAdapter = (isc) => driver.handleAdapterInterrupt(isc);
      return { kind, bus, device, driver };
    }
  }
}
