/**
 * VIRTIO_PMEM_F_SHMEM_REGION end to end over the PCI transport: the device presents its range as
 * shared memory region 0 (a VIRTIO_PCI_CAP_SHARED_MEMORY_CFG capability in a memory BAR), the
 * PmemDriver takes the range from the region the PCI driver transport found, never from start
 * and size, and writes through the BAR land in the backend's bytes, which a flush then persists.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DmaAllocator } from '../../driver/dma-allocator.js';
import { VirtioDriver } from '../../driver/virtio-driver.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { PmemF } from '../../spec/pmem.js';
import { TransportKind, createTransportPair, deviceCoreFactory } from '../../transport/loopback.js';
import { PciDriverTransport } from '../../transport/pci/pci-driver.js';
import { PmemMemoryBackend } from './pmem-backend.js';
import { PmemDevice } from './pmem-device.js';
import { PmemDriver } from './pmem-driver.js';

const ALL = (1n << 64n) - 1n;

describe('PmemDevice over PCI with SHMEM_REGION', { timeout: 20_000 }, () => {
  it('device/pmem/1 device/pmem/2 device/pmem/3 driver/pmem/1: region 0 in a PCI BAR is the range; start and size read 0; BAR writes reach the backend and a flush persists them', async () => {
    const backend = new PmemMemoryBackend(64 * 1024);
    const device = new PmemDevice(backend, { shmemRegion: true, start: 0x7_0000_0000 });
    const memory = GuestMemory.allocate(4 << 20);
    const pair = createTransportPair(TransportKind.PCI_MODERN, memory, deviceCoreFactory(device, memory));
    const transport = pair.driver as PciDriverTransport;
    const driver = await VirtioDriver.init(transport, { wantedFeatures: ALL, dma: new DmaAllocator(0x10_0000, 3 << 20), queueSizes: [16] });
    assert.notEqual(driver.features & PmemF.SHMEM_REGION, 0n);
    const regions = transport.sharedMemoryRegions();
    assert.deepEqual(regions.map((r) => [r.id, r.length]), [[0, 64 * 1024]]);
    assert.deepEqual([...driver.context.readConfig(0, 16)], new Array(16).fill(0), 'start and size 0');
    const pmem = new PmemDriver(driver.context, { regions });
    assert.deepEqual(pmem.range, { base: regions[0]!.base, length: 64 * 1024 });
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 17 + 3) & 0xff);
    transport.writeSharedMemory(0, 0x1234, data);
    assert.deepEqual(backend.bytes.subarray(0x1234, 0x1234 + 300), data, 'the write reached the backend');
    await pmem.flush();
    assert.equal(backend.flushes, 1);
    const back = new Uint8Array(300);
    transport.readSharedMemory(0, 0x1234, back);
    assert.deepEqual(back, data);
    pmem.detach();
    driver.reset();
  });
});
