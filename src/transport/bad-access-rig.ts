/**
 * The rig of the bad-access tests (bad-access*.test.ts): a blk device on the real DeviceCore
 * behind one transport of each kind, brought up by the real drivers, whose refused accesses are
 * collected with their reasons, and the check that it still serves I/O afterwards.
 */
import assert from 'node:assert/strict';
import type { DeviceCore } from '../device/device-core.js';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { BlkDriver } from '../devices/blk/blk-driver.js';
import { DmaAllocator } from '../driver/dma-allocator.js';
import { VirtioDriver } from '../driver/virtio-driver.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { BadAccess, type BadAccessReport } from './bus.js';
import { CcwDeviceTransport } from './ccw/ccw-device.js';
import { type TransportKind, type TransportPair, createTransportPair, deviceCoreFactory } from './loopback.js';
import { MmioDeviceTransport } from './mmio/mmio-device.js';
import { PciDeviceTransport } from './pci/pci-device.js';

export const T = { timeout: 20_000 };
export const MEM = 4 << 20;
export const DMA_BASE = 0x10_0000;
/** Where the tests put CCW data areas (below the driver's scratch at 0xf000). */
export const CCW_DATA = 0xe000;
export const SECTORS = 64;

export interface Live {
  readonly pair: TransportPair;
  readonly mem: GuestMemory;
  readonly cores: DeviceCore[];
  readonly bad: BadAccessReport[];
  readonly backend: MemoryBackend;
  readonly notifies: number[];
  driver: VirtioDriver | null;
  blk: BlkDriver | null;
}

export function setup(kind: TransportKind): Live {
  const mem = GuestMemory.allocate(MEM);
  const backend = new MemoryBackend(SECTORS * 512);
  const device = new BlkDevice(backend, { queueSize: 64 });
  const notifies: number[] = [];
  const orig = device.onQueueNotify.bind(device);
  device.onQueueNotify = (i: number): void => {
    notifies.push(i);
    orig(i);
  };
  const cores: DeviceCore[] = [];
  const bad: BadAccessReport[] = [];
  const pair = createTransportPair(kind, mem, deviceCoreFactory(device, mem, {}, cores), {
    ccwScratch: { addr: 0xf000, size: 4096 },
    onBadAccess: (b) => bad.push(b),
    deferredInterrupts: true,
  });
  return { pair, mem, cores, bad, backend, notifies, driver: null, blk: null };
}

/** A device brought up by the real drivers (all features but packed). */
export async function live(kind: TransportKind): Promise<Live> {
  const l = setup(kind);
  l.driver = await VirtioDriver.init(l.pair.driver, {
    wantedFeatures: ((1n << 128n) - 1n) & ~F.RING_PACKED,
    dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE),
    queueSizes: [64],
  });
  l.blk = new BlkDriver(l.driver.context);
  assert.deepEqual(l.bad, []);
  return l;
}

export function core(l: Live): DeviceCore {
  return l.cores.at(-1)!;
}

/** The reports since the last call (and forgets them). */
export function reports(l: Live): BadAccessReport[] {
  return l.bad.splice(0);
}

export function expectReports(l: Live, reasons: BadAccess[], what: string): void {
  assert.deepEqual(
    reports(l).map((r) => r.reason),
    reasons,
    what,
  );
}

/** The device still serves I/O after the bad accesses; and nothing further was refused. */
export async function stillWorks(l: Live, seed: number): Promise<void> {
  assert.ok(l.blk, 'device was brought up');
  assert.ok(core(l).active, 'device still active');
  assert.equal(core(l).status & Status.DEVICE_NEEDS_RESET, 0);
  const data = new Uint8Array(2048);
  for (let i = 0; i < data.length; i++) data[i] = (i * 5 + seed) & 0xff;
  await l.blk.write(4, data);
  assert.deepEqual(l.backend.data.subarray(4 * 512, 4 * 512 + data.length), data);
  assert.deepEqual(await l.blk.read(4, data.length), data);
  assert.deepEqual(reports(l), [], 'no access of the driver itself was refused');
  l.driver?.reset();
}

/** The PCI transport of a PCI rig. */
export function pci(l: Live): PciDeviceTransport {
  assert.ok(l.pair.device instanceof PciDeviceTransport);
  return l.pair.device;
}

/** The MMIO transport of an MMIO rig. */
export function mmio(l: Live): MmioDeviceTransport {
  assert.ok(l.pair.device instanceof MmioDeviceTransport);
  return l.pair.device;
}

/** The CCW transport of a CCW rig. */
export function ccw(l: Live): CcwDeviceTransport {
  assert.ok(l.pair.device instanceof CcwDeviceTransport);
  return l.pair.device;
}
