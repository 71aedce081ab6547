/**
 * An owner device with administration virtqueues on the in-process PCI bus, driven by the
 * library's driver (VirtioDriver + AdminDriver) or by hand (raw rings): the shared set-up of the
 * administration tests.
 */
import { AdminDevice, type AdminDeviceOptions } from '../../src/admin/admin-device.js';
import { AdminDriver, type AdminDriverOptions } from '../../src/admin/admin-driver.js';
import type { AdminCommandHandler, AdminCommandOutcome, AdminMember } from '../../src/admin/admin-command-handler.js';
import { adminOk } from '../../src/admin/admin-command-handler.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { type PciDeviceOptions, PciDeviceTransport, type PciFunction } from '../../src/transport/pci/pci-device.js';
import { PciDriverTransport } from '../../src/transport/pci/pci-driver.js';

export const MEM = 4 << 20;
export const DMA_BASE = 0x10_0000;

/** A test command: opcode 0x20 answers its data with every bit flipped; 0x21 is async. */
export const ECHO_OPCODE = 0x20;
export const ASYNC_OPCODE = 0x21;

/** Records every command it handles. */
export class EchoHandler implements AdminCommandHandler {
  readonly opcodes = [ECHO_OPCODE, ASYNC_OPCODE];
  readonly seen: { opcode: number; member: AdminMember; data: Uint8Array; resultLen: number }[] = [];
  resets = 0;
  /** Pending async completions (ASYNC_OPCODE), resolved by the test in any order. */
  readonly waiting: (() => void)[] = [];
  constructor(readonly groupTypes: readonly number[] = [0]) {}
  handle(opcode: number, member: AdminMember, data: Uint8Array, result: Uint8Array): AdminCommandOutcome | Promise<AdminCommandOutcome> {
    this.seen.push({ opcode, member, data: data.slice(), resultLen: result.length });
    const n = Math.min(data.length, result.length);
    for (let i = 0; i < n; i++) result[i] = data[i]! ^ 0xff;
    if (opcode === ASYNC_OPCODE) return new Promise((resolve) => this.waiting.push(() => resolve(adminOk(n))));
    return adminOk(n);
  }
  reset(): void {
    this.resets++;
  }
}

export interface AdminRig {
  readonly mem: GuestMemory;
  readonly dma: DmaAllocator;
  readonly device: AdminDevice;
  readonly pci: PciDeviceTransport;
  readonly cores: DeviceCore[];
  readonly driverTransport: PciDriverTransport;
  readonly bus: LoopbackBus;
}

export interface AdminRigOptions {
  readonly admin?: AdminDeviceOptions;
  readonly pci?: PciDeviceOptions;
  /** Wrap the function the driver sees (to record or alter accesses). */
  readonly wrap?: (fn: PciFunction) => PciFunction;
  readonly deferredInterrupts?: boolean;
}

/** The owner device (an EchoDevice with two queues plus administration queues) on PCI. */
export function adminRig(opts: AdminRigOptions = {}): AdminRig {
  const inner = new EchoDevice({ queues: [64, 64] });
  const device = new AdminDevice(inner, opts.admin ?? {});
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem, opts.deferredInterrupts ?? false);
  const cores: DeviceCore[] = [];
  const factory = deviceCoreFactory(device, mem, {}, cores);
  const pci = new PciDeviceTransport(
    bus,
    (sink, mode) => {
      const core = factory(sink, mode);
      device.bindOwner(core);
      return core;
    },
    opts.pci ?? {},
  );
  const fn = opts.wrap ? opts.wrap(pci) : pci;
  const driverTransport = new PciDriverTransport(fn, mem, { useMsix: true });
  bus.onMsi = (a, d) => driverTransport.handleMsi(a, d);
  bus.onIrq = () => driverTransport.handleIntx();
  return { mem, dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE), device, pci, cores, driverTransport, bus };
}

/** VirtioDriver (ADMIN_VQ, split or packed) and an AdminDriver on the rig. */
export function startAdminDriver(rig: AdminRig, packed: boolean, extra: { adminQueues?: number; wanted?: bigint; admin?: AdminDriverOptions } = {}): { virtio: VirtioDriver; admin: AdminDriver } {
  const virtio = startVirtio(rig, packed, extra);
  return { virtio, admin: AdminDriver.attach(virtio, extra.admin ?? {}) };
}

/** VirtioDriver with ADMIN_VQ only (the test drives the administration queue by hand). */
export function startVirtio(rig: AdminRig, packed: boolean, extra: { adminQueues?: number; wanted?: bigint } = {}): VirtioDriver {
  const wanted = (extra.wanted ?? 0n) | F.VERSION_1 | F.EVENT_IDX | F.INDIRECT_DESC | F.ADMIN_VQ | (packed ? F.RING_PACKED : 0n);
  return VirtioDriver.initSync(rig.driverTransport, { wantedFeatures: wanted, dma: rig.dma, queueSizes: [32], adminQueues: extra.adminQueues ?? 1 });
}
