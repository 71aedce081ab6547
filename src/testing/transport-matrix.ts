/**
 * The device x transport matrix as a library: runs a device type's matrix case (its registry
 * record's `matrixCase`) over every transport virtio-ts has, so the same device meets the same
 * lifecycle everywhere: in process, PCI (modern with MSI-X or INTx, transitional through the
 * legacy I/O BAR), MMIO (version 2 and legacy), Channel I/O (revisions 0, 1, 2, adapter
 * interrupts) and vhost-user over a real Unix socket (the native platform). The device side is
 * always the real DeviceCore, the driver side the real VirtioDriver and the type's driver.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceCore } from '../device/device-core.js';
import type { VirtioDevice } from '../device/types.js';
import type { DeviceType } from '../devices/device-type.js';
import { DmaAllocator } from '../driver/dma-allocator.js';
import { VirtioDriver } from '../driver/virtio-driver.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { loadNativePlatform } from '../platform/native-platform.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import type { BadAccessReport } from '../transport/bus.js';
import { TransportKind, createTransportPair, deviceCoreFactory, isLegacyKind } from '../transport/loopback.js';
import { TRANSITIONAL_DEVICE_IDS } from '../transport/pci/constants.js';
import { startVhostUserDriver, VhostUserDriverTransport } from '../vhost-user/frontend-transport.js';
import { serveVhostUser } from '../vhost-user/server.js';
import { createLoopback } from './loopback.js';

/** Every transport of the matrix: the register-level kinds, in process, and vhost-user. */
export const MatrixTransport = {
  ...TransportKind,
  IN_PROCESS: 'in-process',
  VHOST_USER: 'vhost-user',
} as const;
export type MatrixTransport = (typeof MatrixTransport)[keyof typeof MatrixTransport];

/** Every MatrixTransport value. */
export const MATRIX_TRANSPORTS: readonly MatrixTransport[] = Object.values(MatrixTransport);

/** Whether the transport drives the legacy interface (split rings in the legacy layout only). */
export function isLegacyTransport(t: MatrixTransport): boolean {
  return t !== MatrixTransport.IN_PROCESS && t !== MatrixTransport.VHOST_USER && isLegacyKind(t);
}

/**
 * Whether a device of `deviceId` exists on `transport`: a transitional PCI device (driven through
 * its legacy I/O BAR) needs a transitional PCI device ID, which only the device types of
 * 4.1.2.1 have.
 */
export function transportServes(t: MatrixTransport, deviceId: number): boolean {
  return t !== MatrixTransport.PCI_LEGACY || TRANSITIONAL_DEVICE_IDS[deviceId] !== undefined;
}

/** The (transport, packed) cells of the matrix for a device type, legacy ones split only. */
export function matrixCells(deviceId: number): {
  /** The transport the device is driven over, one that serves this device type. */
  transport: MatrixTransport;
  /** Whether the cell uses packed virtqueues (2.8) rather than split ones (2.7). */
  packed: boolean;
}[] {
  const cells: { transport: MatrixTransport; packed: boolean }[] = [];
  for (const transport of MATRIX_TRANSPORTS) {
    if (!transportServes(transport, deviceId)) continue;
    cells.push({ transport, packed: false });
    if (!isLegacyTransport(transport)) cells.push({ transport, packed: true });
  }
  return cells;
}

/** Options of runMatrixCase. */
export interface MatrixRunOptions {
  /** Features the driver wants (default: everything the device offers). */
  readonly wantedFeatures?: bigint;
}

const MEM = 4 << 20;
const SCRATCH = { addr: 0xf000, size: 4096 };
const DMA_BASE = 0x10_0000;
const ALL = (1n << 128n) - 1n;
const QUEUE_SIZE = 64;

/**
 * Runs `type`'s matrix case on `transport` with split or packed rings: negotiation and
 * DRIVER_OK, the case's exercise, then reset; asserts the lifecycle on the way (device active,
 * features agreed, nothing beyond what the driver wanted, reset to 0, no refused access).
 */
export async function runMatrixCase(type: DeviceType, transport: MatrixTransport, packed: boolean, opts: MatrixRunOptions = {}): Promise<void> {
  const wanted = packed ? (opts.wantedFeatures ?? ALL) : (opts.wantedFeatures ?? ALL) & ~F.RING_PACKED;
  const c = type.matrixCase();
  assert.equal(c.device.deviceId, type.deviceId, 'the case builds a device of its type');
  if (transport === MatrixTransport.IN_PROCESS) {
    const lb = await createLoopback(c.device, { packed, queueSize: QUEUE_SIZE, refuseFeatures: ~wanted & ALL & ~F.RING_PACKED });
    assert.ok(lb.core.active, 'device activated');
    assert.equal((lb.driver.features & F.RING_PACKED) !== 0n, packed);
    await c.exercise(lb.driver);
    await lb.close();
    assert.equal(lb.core.status, 0);
    return;
  }
  if (transport === MatrixTransport.VHOST_USER) {
    await runOverVhostUser(c.device, c.exercise, wanted, packed);
    return;
  }
  const mem = GuestMemory.allocate(MEM);
  const cores: DeviceCore[] = [];
  const bad: BadAccessReport[] = [];
  const pair = createTransportPair(transport, mem, deviceCoreFactory(c.device, mem, {}, cores), {
    ccwScratch: SCRATCH,
    onBadAccess: (b) => bad.push(b),
    deferredInterrupts: true,
  });
  const legacy = isLegacyKind(transport);
  assert.equal(pair.driver.legacy, legacy);
  assert.equal(pair.driver.littleEndian, transport !== TransportKind.CCW_REV0);
  assert.equal(pair.driver.deviceId, type.deviceId);
  const driver = await VirtioDriver.init(pair.driver, {
    wantedFeatures: wanted,
    dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE),
    queueSizes: [QUEUE_SIZE],
  });
  const core = cores.at(-1)!;
  assert.equal(core.legacy, legacy);
  assert.equal(core.littleEndian, transport !== TransportKind.CCW_REV0);
  assert.ok(core.active, 'device activated');
  assert.equal((driver.features & F.RING_PACKED) !== 0n, packed);
  assert.equal((driver.features & F.VERSION_1) !== 0n, !legacy);
  assert.equal(core.negotiatedFeatures, driver.features);
  assert.equal(driver.features & ~wanted, 0n, 'nothing negotiated beyond what the driver wanted');
  await c.exercise(driver);
  driver.reset();
  assert.equal(core.status, 0);
  assert.equal(core.active, false);
  assert.equal(core.status & Status.DEVICE_NEEDS_RESET, 0);
  assert.deepEqual(bad, [], 'no access was refused');
}

/** The case over vhost-user: virtio-ts's back-end and front-end on a Unix socket in this process. */
async function runOverVhostUser(
  device: VirtioDevice,
  exercise: (d: VirtioDriver) => Promise<void>,
  wanted: bigint,
  packed: boolean,
): Promise<void> {
  const platform = loadNativePlatform();
  const dir = mkdtempSync(join(tmpdir(), 'vts-matrix-'));
  const socketPath = join(dir, 'd.sock');
  const server = await serveVhostUser({ device, platform, socketPath });
  let t: VhostUserDriverTransport | null = null;
  try {
    t = await VhostUserDriverTransport.connect(socketPath, { deviceId: device.deviceId, platform });
    const driver = await startVhostUserDriver(t, { wantedFeatures: wanted, queueSizes: [QUEUE_SIZE] });
    assert.equal((driver.features & F.RING_PACKED) !== 0n, packed);
    assert.equal(driver.features & ~wanted, 0n, 'nothing negotiated beyond what the driver wanted');
    await exercise(driver);
    driver.reset();
  } finally {
    t?.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
