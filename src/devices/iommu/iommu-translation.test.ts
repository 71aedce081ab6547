/**
 * The device side of translation: another device (virtio-rng) whose buffers are IOVAs mapped
 * through the IOMMU. Its DeviceCore gets the endpoint's view of guest memory
 * (IommuTranslation.endpointMemory): every address the entropy device touches is translated by
 * the domain's mappings, as a device behind a real IOMMU.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceCore } from '../../device/device-core.js';
import { createDriverQueue } from '../../driver/create-queue.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { createDeviceQueue } from '../../queue/create-queue.js';
import { splitRingLayout } from '../../queue/split-layout.js';
import type { DriverQueue } from '../../queue/types.js';
import { IommuFaultReason, IommuMapFlag } from '../../spec/iommu.js';
import { F } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
import { createTestPair } from '../blk/test-pair.js';
import { EntropyDevice } from '../entropy/entropy-device.js';
import { IommuDevice } from './iommu-device.js';
import { IommuDriver, type IommuFaultReport } from './iommu-driver.js';

const T = { timeout: 10_000 };
const EP = 5;
const DOMAIN = 2;
const IOVA_OFFSET = 0x4000_0000;

/** virtio-rng as endpoint EP: its device side sees `view`, the driver side physical memory. */
function entropyBehind(view: GuestMemory, physical: GuestMemory, ringGpa: number) {
  let n = 0;
  const device = new EntropyDevice({ source: (d) => d.forEach((_, i) => (d[i] = ++n & 0xff)) });
  const used: (() => void)[] = [];
  const core = new DeviceCore(device, {
    memory: view,
    legacy: false,
    littleEndian: true,
    interrupts: { usedBuffer: () => queueMicrotask(() => used.shift()?.()), configChange() {} },
  });
  const features = core.deviceFeatures() & ~F.RING_PACKED & ~F.EVENT_IDX;
  core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  core.setDriverFeatures(features);
  core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  const l = splitRingLayout(16, ringGpa);
  // The rings are identity-mapped (IOVA = GPA), so both sides name them with one address.
  const config = { size: 16, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features, littleEndian: true, index: 0 };
  core.attachQueue(0, createDeviceQueue(view, config));
  const drv: DriverQueue<number> = createDriverQueue<number>(physical, config);
  core.activateWithLentQueues();
  /** One device-writable buffer at `iova` of `len` bytes; resolves with the used length. */
  const fill = (iova: number, len: number): Promise<number> =>
    new Promise((resolve) => {
      assert.ok(drv.add([], [{ addr: iova, len }], 1));
      used.push(() => {
        drv.takeUsed();
        resolve(drv.lastUsedLen);
      });
      if (drv.kick()) device.onQueueNotify(0);
    });
  return { fill, core, ringBytes: l.total };
}

describe('IOMMU translation for other devices', T, () => {
  it('device/iommu/34 device/iommu/28: an entropy device writes through IOVAs into the guest-physical pages they map; unmapped, read-only or detached IOVAs fault', async () => {
    const iommu = new IommuDevice({ endpoints: [{ id: EP }] });
    const pair = createTestPair(iommu, { memSize: 16 << 20 });
    const drv = new IommuDriver(pair.ctx);
    const faults: IommuFaultReport[] = [];
    drv.onFault((f) => faults.push(f));
    const physical = pair.memory;
    const view = iommu.translation.endpointMemory(EP);
    const ring = pair.ctx.dma.alloc(0x2000, 0x1000);
    const buf = pair.ctx.dma.alloc(0x1000, 0x1000);
    await drv.attach(DOMAIN, EP);
    await drv.map(DOMAIN, ring, ring + 0x1fff, ring, { read: true, write: true });
    await drv.map(DOMAIN, buf + IOVA_OFFSET, buf + IOVA_OFFSET + 0xfff, buf, { read: true, write: true });
    const rng = entropyBehind(view, physical, ring);
    physical.fill(buf, 0x1000, 0xee);
    // The device filled IOVA buf + 1 GiB; the bytes are in the guest-physical page buf.
    assert.equal(await rng.fill(buf + IOVA_OFFSET, 64), 64);
    assert.deepEqual(physical.slice(buf, 64), Uint8Array.from({ length: 64 }, (_, i) => i + 1));
    assert.ok(physical.slice(buf + 64, 64).every((b) => b === 0xee));
    // The guest-physical address itself is no IOVA of the domain: the device cannot reach it.
    assert.equal(await rng.fill(buf, 64), 0);
    assert.ok(physical.slice(buf + 64, 64).every((b) => b === 0xee));
    // A mapping without WRITE: the device cannot write through it (device/iommu/34).
    await drv.unmap(DOMAIN, buf + IOVA_OFFSET, buf + IOVA_OFFSET + 0xfff);
    await drv.map(DOMAIN, buf + IOVA_OFFSET, buf + IOVA_OFFSET + 0xfff, buf, { read: true });
    assert.equal(await rng.fill(buf + IOVA_OFFSET + 128, 64), 0);
    assert.ok(physical.slice(buf + 128, 64).every((b) => b === 0xee));
    assert.equal(iommu.translation.translate(EP, buf + IOVA_OFFSET, 4, IommuMapFlag.WRITE).ok, false);
    assert.equal(iommu.translation.translate(EP, buf + IOVA_OFFSET, 4, IommuMapFlag.READ).address, buf);
    for (let i = 0; i < 20 && faults.length === 0; i++) await new Promise((r) => setImmediate(r));
    assert.ok(faults.some((f) => f.endpoint === EP && f.reason === IommuFaultReason.MAPPING && f.address === buf), JSON.stringify(faults));
    // Remapped writable, then the endpoint detached: no access at all any more (device/iommu/28).
    await drv.unmap(DOMAIN, buf + IOVA_OFFSET, buf + IOVA_OFFSET + 0xfff);
    await drv.map(DOMAIN, buf + IOVA_OFFSET, buf + IOVA_OFFSET + 0xfff, buf, { read: true, write: true });
    assert.equal(await rng.fill(buf + IOVA_OFFSET + 256, 8), 8);
    await drv.detachEndpoint(DOMAIN, EP);
    assert.equal(view.isMapped(buf + IOVA_OFFSET, 8), false);
    assert.equal(view.isMapped(ring, 8), false);
    assert.equal(iommu.translation.translate(EP, buf + IOVA_OFFSET, 8, IommuMapFlag.READ).reason, IommuFaultReason.DOMAIN);
    assert.deepEqual(pair.resets, []);
  });

  it('device/iommu/12: an unattached endpoint out of bypass mode reaches nothing; with config bypass 1 it sees guest-physical memory', async () => {
    const iommu = new IommuDevice({ endpoints: [{ id: EP }] });
    const pair = createTestPair(iommu, { memSize: 4 << 20 });
    const drv = new IommuDriver(pair.ctx);
    const view = iommu.translation.endpointMemory(EP);
    assert.equal(view.isMapped(0x1000, 16), false);
    assert.equal(iommu.translation.translate(EP, 0x1000, 16, IommuMapFlag.READ).ok, false);
    drv.setBypass(true);
    assert.equal(iommu.bypassField, 1);
    assert.equal(view.isMapped(0x1000, 16), true);
    assert.deepEqual(iommu.translation.translate(EP, 0x1000, 16, IommuMapFlag.WRITE), { ok: true, address: 0x1000, reason: 0 });
    // Attached to a (non-bypass) domain: translated again.
    await drv.attach(DOMAIN, EP);
    assert.equal(view.isMapped(0x1000, 16), false);
  });
});
