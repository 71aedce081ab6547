/**
 * The device x transport matrix: every registered device type (src/devices/registry.ts) on
 * every transport (src/testing/transport-matrix.ts: in process, every register-level kind,
 * vhost-user over a Unix socket), with both ring layouts where the interface allows them
 * (legacy interfaces: the legacy split layout only, in guest endianness, CCW revision 0 being
 * big-endian). The device side is the real DeviceCore built by the transport's CoreFactory, the
 * driver side the real VirtioDriver and device-type drivers over the transport's driver half;
 * the two meet only through registers / channel programs and the loopback bus's interrupts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../src/device/device-core.js';
import { BlkDevice } from '../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../src/devices/blk/memory-backend.js';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import { DmaAllocator } from '../src/driver/dma-allocator.js';
import { VirtioDriver } from '../src/driver/virtio-driver.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { F } from '../src/spec/features.js';
import { Status } from '../src/spec/status.js';
import type { BadAccessReport } from '../src/transport/bus.js';
import { deviceTypes } from '../src/devices/registry.js';
import { matrixCells, runMatrixCase } from '../src/testing/transport-matrix.js';
import { TransportKind, createTransportPair, deviceCoreFactory, isLegacyKind } from '../src/transport/loopback.js';

const T = { timeout: 20_000 };
const MEM = 4 << 20;
const SCRATCH = { addr: 0xf000, size: 4096 };
const DMA_BASE = 0x10_0000;
const ALL = (1n << 128n) - 1n;
const SECTORS = 128;
const SERIAL = 'virtio-ts-matrix';

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

interface Rig {
  readonly mem: GuestMemory;
  readonly driver: VirtioDriver;
  readonly cores: DeviceCore[];
  readonly bad: BadAccessReport[];
}

async function rig(kind: TransportKind, packed: boolean, device: BlkDevice, wanted = ALL): Promise<Rig> {
  const mem = GuestMemory.allocate(MEM);
  const cores: DeviceCore[] = [];
  const bad: BadAccessReport[] = [];
  const pair = createTransportPair(kind, mem, deviceCoreFactory(device, mem, {}, cores), {
    ccwScratch: SCRATCH,
    onBadAccess: (b) => bad.push(b),
    deferredInterrupts: true,
  });
  const legacy = isLegacyKind(kind);
  assert.equal(pair.driver.legacy, legacy);
  assert.equal(pair.driver.littleEndian, kind !== TransportKind.CCW_REV0);
  assert.equal(pair.driver.deviceId, device.deviceId);
  const driver = await VirtioDriver.init(pair.driver, {
    wantedFeatures: packed ? wanted : wanted & ~F.RING_PACKED,
    dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE),
    queueSizes: [64],
  });
  const core = cores.at(-1)!;
  assert.equal(core.legacy, legacy);
  assert.equal(core.littleEndian, kind !== TransportKind.CCW_REV0);
  assert.ok(core.active, 'device activated');
  assert.equal((driver.features & F.RING_PACKED) !== 0n, packed);
  assert.equal((driver.features & F.VERSION_1) !== 0n, !legacy);
  assert.equal(core.negotiatedFeatures, driver.features);
  assert.equal(driver.features & ~wanted, 0n, 'nothing negotiated beyond what the driver wanted');
  return { mem, driver, cores, bad };
}

function finish(r: Rig): void {
  const core = r.cores.at(-1)!;
  r.driver.reset();
  assert.equal(core.status, 0);
  assert.equal(core.active, false);
  assert.equal(core.status & Status.DEVICE_NEEDS_RESET, 0);
  assert.deepEqual(r.bad, [], 'no access was refused');
}

const kinds = Object.values(TransportKind);

describe('device x transport matrix (real DeviceCore, real drivers)', () => {
  // Every registered device type on every transport: the same device, the same lifecycle.
  for (const type of deviceTypes())
    for (const { transport, packed } of matrixCells(type.deviceId))
      it(`${type.name} ${transport} ${packed ? 'packed' : 'split'}: its matrix case through the virtio-ts driver`, T, async () => {
        await runMatrixCase(type, transport, packed);
      });

  for (const kind of kinds)
    for (const packed of [false, true]) {
      if (packed && isLegacyKind(kind)) continue;
      const layout = packed ? 'packed' : 'split';

      it(`blk ${kind} ${layout}, without EVENT_IDX and INDIRECT_DESC (flag-based suppression, direct chains): 24 requests in flight`, T, async () => {
        const backend = new MemoryBackend(SECTORS * 512);
        const device = new BlkDevice(backend, { serial: SERIAL, queueSize: 64 });
        const r = await rig(kind, packed, device, ALL & ~(F.EVENT_IDX | F.INDIRECT_DESC));
        assert.equal(r.driver.features & (F.EVENT_IDX | F.INDIRECT_DESC), 0n);
        const blk = new BlkDriver(r.driver.context);
        // More requests than fit at once in a 64-entry ring of direct 3-descriptor chains: the
        // driver waits for room, so used-buffer interrupts under flag suppression must arrive.
        const writes = Array.from({ length: 24 }, (_, i) => ({ sector: 4 * i, data: pattern(2048, i + 40) }));
        await Promise.all(writes.map((w) => blk.write(w.sector, w.data)));
        const reads = await Promise.all(writes.map((w) => blk.read(w.sector, w.data.length)));
        for (let i = 0; i < writes.length; i++) {
          assert.deepEqual(reads[i], writes[i]!.data);
          assert.deepEqual(backend.data.subarray(writes[i]!.sector * 512, writes[i]!.sector * 512 + 2048), writes[i]!.data);
        }
        finish(r);
      });
    }
});
