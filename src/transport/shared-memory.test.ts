/**
 * 2.10 shared memory regions declared by a device (`VirtioDevice.sharedMemoryRegions`) and
 * served by the PCI transport (a 64-bit memory BAR with one VIRTIO_PCI_CAP_SHARED_MEMORY_CFG
 * capability per region, 4.1.4.7) and the MMIO transport (SHMSel / SHMLen / SHMBase, 4.2.2);
 * the driver side finds them by id, with base and length, and on PCI reads and writes them
 * through the BAR, reaching the device's host memory.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SharedMemoryRegion } from '../device/types.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { BadAccess, type BadAccessReport, LoopbackBus } from './bus.js';
import { MmioDeviceTransport, type MmioDeviceOptions } from './mmio/mmio-device.js';
import { MmioDriverTransport } from './mmio/mmio-driver.js';
import { CapField, PciBar, PciCfg, VirtioPciCap } from './pci/constants.js';
import { PciDeviceTransport } from './pci/pci-device.js';
import { PciDriverTransport } from './pci/pci-driver.js';
import { TestCore, stubDevice } from './test-core.js';

/** A test device with two regions of host memory: id 0 (8 KiB) and id 5 (4 KiB). */
function twoRegions(): { regions: SharedMemoryRegion[]; mem0: Uint8Array; mem5: Uint8Array } {
  const mem0 = new Uint8Array(0x2000);
  const mem5 = new Uint8Array(0x1000);
  for (let i = 0; i < mem0.length; i++) mem0[i] = (i * 7) & 0xff;
  return { regions: [{ id: 0, length: mem0.length, memory: mem0 }, { id: 5, length: mem5.length, memory: mem5 }], mem0, mem5 };
}

const isCode = (code: string) => (e: unknown) => e instanceof VirtioError && e.code === code;

function pci(regions: readonly SharedMemoryRegion[]) {
  const mem = GuestMemory.allocate(1 << 16);
  const bad: BadAccessReport[] = [];
  const dev = new PciDeviceTransport(new LoopbackBus(mem), TestCore.factory(stubDevice({ sharedMemoryRegions: regions }), mem), { onBadAccess: (b) => bad.push(b) });
  return { mem, dev, bad };
}

function mmio(regions: readonly SharedMemoryRegion[], opts: MmioDeviceOptions) {
  const mem = GuestMemory.allocate(1 << 16);
  const dev = new MmioDeviceTransport(new LoopbackBus(mem), TestCore.factory(stubDevice({ sharedMemoryRegions: regions }), mem), opts);
  return { mem, dev, drv: new MmioDriverTransport(dev, mem) };
}

describe('shared memory regions on PCI (4.1.4.7)', () => {
  it('device/transport-pci/43 device/transport-pci/44: the driver finds both regions by their unique id, inside the BAR, at the BAR address the firmware gave it', () => {
    const { regions } = twoRegions();
    const { dev, mem } = pci(regions);
    // Firmware places the 64-bit BAR above 4 GiB.
    dev.configWrite(PciCfg.BAR0 + 4 * PciBar.SHM, 4, 0xc000_0000);
    dev.configWrite(PciCfg.BAR0 + 4 * PciBar.SHM + 4, 4, 0x8);
    const drv = new PciDriverTransport(dev, mem);
    const found = drv.sharedMemoryRegions();
    const barBase = 0x8_c000_0000;
    assert.deepEqual(
      found.map((r) => [r.id, r.bar, r.length, r.base - barBase]),
      [
        [0, PciBar.SHM, 0x2000, found[0]!.offset],
        [5, PciBar.SHM, 0x1000, found[1]!.offset],
      ],
    );
    assert.equal(dev.barAddress(PciBar.SHM), barBase);
    for (const r of found) assert.ok(r.offset + r.length <= dev.barSize(PciBar.SHM), `region ${r.id} inside its BAR`);
    assert.ok(found[0]!.offset + found[0]!.length <= found[1]!.offset, 'regions do not overlap');
    assert.equal(new Set(dev.caps.shm.map((c) => dev.configRead(c + CapField.ID, 1))).size, 2, 'ids unique');
    for (const c of dev.caps.shm) assert.equal(dev.configRead(c + CapField.CFG_TYPE, 1), VirtioPciCap.SHARED_MEMORY_CFG);
    assert.equal(drv.sharedMemoryRegion(1), null, 'no region 1');
    assert.equal(drv.sharedMemoryRegion(5)!.length, 0x1000);
  });

  it('reads and writes through the BAR reach the device memory (aligned words and odd bytes); a nonexistent id or a range past the region is refused', () => {
    const { regions, mem0, mem5 } = twoRegions();
    const { dev, mem, bad } = pci(regions);
    const drv = new PciDriverTransport(dev, mem);
    const got = new Uint8Array(11);
    drv.readSharedMemory(0, 0x101, got);
    assert.deepEqual(got, mem0.subarray(0x101, 0x101 + got.length));
    const src = Uint8Array.from({ length: 13 }, (_, i) => 0xa0 + i);
    drv.writeSharedMemory(5, 0xff3, src);
    assert.deepEqual(mem5.subarray(0xff3), src, 'the last 13 bytes of region 5');
    mem5[0] = 0x5a;
    const one = new Uint8Array(4);
    drv.readSharedMemory(5, 0, one);
    assert.equal(one[0], 0x5a, 'a device-side change is seen by the driver');
    assert.throws(() => drv.readSharedMemory(3, 0, one), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => drv.writeSharedMemory(5, 0xffe, one), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.deepEqual(bad.splice(0), [], 'no access of the driver was refused');
    // Device side: past the last region (inside the BAR, which is a power of two) and a
    // 64-bit access are refused and reported.
    const end = drv.sharedMemoryRegion(5)!.offset + 0x1000;
    assert.ok(end < dev.barSize(PciBar.SHM));
    assert.equal(dev.barRead(PciBar.SHM, end, 4), 0);
    assert.equal(bad.pop()?.reason, BadAccess.OFFSET);
    dev.barWrite(PciBar.SHM, end - 2, 4, 0xffff_ffff);
    assert.equal(bad.pop()?.reason, BadAccess.OFFSET, 'straddling the end of region 5');
    assert.deepEqual(mem5.subarray(0xffe), Uint8Array.of(0xab, 0xac), 'unchanged');
    assert.equal(dev.barRead(PciBar.SHM, 0, 8), 0);
    assert.equal(bad.pop()?.reason, BadAccess.WIDTH);
  });

  it('a device without regions has no shared memory BAR; bad declarations (duplicate id, id above 255, memory shorter than the region) are refused when the function is built', () => {
    const { dev, mem } = pci([]);
    assert.equal(dev.barSize(PciBar.SHM), 0);
    assert.deepEqual(new PciDriverTransport(dev, mem).sharedMemoryRegions(), []);
    assert.throws(() => pci([{ id: 1, length: 0x1000 }, { id: 1, length: 0x1000 }]), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => pci([{ id: 256, length: 0x1000 }]), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => pci([{ id: 0, length: 0x2000, memory: new Uint8Array(0x1000) }]), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => pci([0, 1, 2, 3, 4, 5].map((id) => ({ id, length: 0x1000 }))), isCode(ErrorCode.INVALID_ARGUMENT), 'more capabilities than configuration space holds');
  });
});

describe('shared memory regions on MMIO (4.2.2)', () => {
  it('the driver finds both regions by id with base and length; a nonexistent id reads length -1 (not found)', () => {
    const { regions, mem0 } = twoRegions();
    const { dev, drv } = mmio(regions, { sharedMemoryBase: 0x1_0000_0000 });
    assert.deepEqual(drv.sharedMemoryRegions(), [
      { id: 0, base: 0x1_0000_0000, length: 0x2000 },
      { id: 5, base: 0x1_0000_2000, length: 0x1000 },
    ]);
    assert.equal(drv.sharedMemoryRegion(4), null);
    assert.equal(drv.sharedMemoryRegion(0x7fff_ffff), null);
    // What the emulator maps at those addresses: the device's own memory.
    assert.equal(dev.sharedMemoryRegions[0]!.memory, mem0);
    assert.equal(dev.sharedMemoryRegions[1]!.base, 0x1_0000_2000);
  });

  it('without a base, or on a legacy (version 1) device, no region is presented', () => {
    const { regions } = twoRegions();
    assert.deepEqual(mmio(regions, {}).drv.sharedMemoryRegions(8), []);
    const legacy = mmio(regions, { version: 1, sharedMemoryBase: 0x1000_0000 });
    assert.deepEqual(legacy.dev.sharedMemoryRegions, []);
    assert.equal(legacy.drv.sharedMemoryRegion(0), null);
  });
});
