/**
 * 6 VIRTIO_F_ACCESS_PLATFORM: a device whose memory accesses the platform translates (an
 * endpoint of the virtio-iommu, reaching guest memory through IommuTranslation.endpointMemory)
 * offers it and will not run without it; without the bit, the driver hands the device
 * guest-physical addresses only.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import { createTestPair } from '../../src/devices/blk/test-pair.js';
import { EntropyDevice } from '../../src/devices/entropy/entropy-device.js';
import { IommuDevice } from '../../src/devices/iommu/iommu-device.js';
import { IommuDriver } from '../../src/devices/iommu/iommu-driver.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { MmioDeviceTransport } from '../../src/transport/mmio/mmio-device.js';
import { MmioDriverTransport } from '../../src/transport/mmio/mmio-driver.js';
import { MmioReg } from '../../src/transport/mmio/registers.js';
import { RecordingWindow } from './rig.js';

const T = { timeout: 20_000 };
const EP = 7;
const DOMAIN = 3;
const MEM = 16 << 20;
const IOVA_OFFSET = 0x4000_0000;
const ALL = (1n << 128n) - 1n;
/** Bytes of a split ring descriptor (2.7.5). */
const DESC_SIZE = 16;

/** An IOMMU with endpoint EP and an entropy device behind it on MMIO; its core sees the endpoint's view. */
async function entropyBehindIommu(platformTranslated: boolean) {
  const iommu = new IommuDevice({ endpoints: [{ id: EP }] });
  const pair = createTestPair(iommu, { memSize: MEM });
  const iommuDrv = new IommuDriver(pair.ctx);
  const physical = pair.memory;
  const view = iommu.translation.endpointMemory(EP);
  await iommuDrv.attach(DOMAIN, EP);
  // Rings are identity-mapped (the generic driver names them by guest-physical address).
  await iommuDrv.map(DOMAIN, 0, MEM - 1, 0, { read: true, write: true });
  let n = 0;
  const dev = new EntropyDevice({ source: (d) => d.forEach((_, i) => (d[i] = ++n & 0xff)) });
  const cores: DeviceCore[] = [];
  const t = new MmioDeviceTransport(new LoopbackBus(physical), deviceCoreFactory(dev, view, { platformTranslated }, cores));
  const d = new MmioDriverTransport(t, physical);
  return { iommuDrv, physical, d, core: () => cores.at(-1)!, dma: pair.ctx.dma };
}

describe('6 ACCESS_PLATFORM', T, () => {
  it('device/content/22, 23: a device reaching memory through IOMMU-translated addresses offers ACCESS_PLATFORM and refuses FEATURES_OK without it', async () => {
    const r = await entropyBehindIommu(true);
    assert.ok((r.core().deviceFeatures() & F.ACCESS_PLATFORM) !== 0n, 'device/content/22: offered');
    // A driver that declines it: FEATURES_OK does not stick, the driver gives up.
    assert.throws(
      () => VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED & ~F.ACCESS_PLATFORM, dma: r.dma, queueSizes: [16] }),
      (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.FEATURES_REJECTED,
    );
    assert.equal(r.core().status & Status.FEATURES_OK, 0, 'device/content/23: the device did not accept');
    assert.equal(r.core().activeContext, null, 'and never ran');
    // Accepted: the device serves a buffer named by an IOVA the IOMMU maps elsewhere.
    const drv = VirtioDriver.initSync(r.d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
    assert.ok((drv.features & F.ACCESS_PLATFORM) !== 0n);
    const buf = r.dma.alloc(0x1000, 0x1000);
    await r.iommuDrv.map(DOMAIN, buf + IOVA_OFFSET, buf + IOVA_OFFSET + 0xfff, buf, { read: true, write: true });
    r.physical.fill(buf, 64, 0xee);
    const q = drv.queue(0);
    assert.ok(q.add([], [{ addr: buf + IOVA_OFFSET, len: 32 }], 1));
    drv.kick(0);
    assert.equal(q.takeUsed(), 1);
    assert.equal(q.lastUsedLen, 32);
    assert.deepEqual(r.physical.slice(buf, 32), Uint8Array.from({ length: 32 }, (_, i) => i + 1), 'written at the guest-physical page the IOVA maps');
    assert.ok(r.physical.slice(buf + 32, 32).every((b) => b === 0xee));
    drv.reset();
    // The same device on untranslated memory does not offer the bit.
    const plain = await entropyBehindIommu(false);
    assert.equal(plain.core().deviceFeatures() & F.ACCESS_PLATFORM, 0n);
  });

  it('driver/content/34: without ACCESS_PLATFORM offered the driver passes guest-physical addresses only (queue registers, descriptors, indirect tables)', () => {
    const mem = GuestMemory.allocate(4 << 20);
    const dev = new EchoDevice({ queues: [32, 32], transportFeatures: F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX });
    const t = new MmioDeviceTransport(new LoopbackBus(mem), deviceCoreFactory(dev, mem));
    const w = new RecordingWindow(t);
    const d = new MmioDriverTransport(w, mem);
    const dma = new DmaAllocator(0x10_0000, (4 << 20) - 0x10_0000);
    const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL, dma, queueSizes: [16] });
    assert.equal(drv.features & F.ACCESS_PLATFORM, 0n);
    // Ring addresses written to the device: inside guest memory, as allocated (no translation).
    const regs = new Map<number, number>();
    const addrs: number[] = [];
    for (const a of w.log) {
      if (a.op !== 'w') continue;
      regs.set(a.off, a.value);
      if (a.off === MmioReg.QUEUE_READY && a.value === 1) {
        for (const lo of [MmioReg.QUEUE_DESC_LOW, MmioReg.QUEUE_DRIVER_LOW, MmioReg.QUEUE_DEVICE_LOW]) addrs.push(regs.get(lo)! + regs.get(lo + 4)! * 2 ** 32);
      }
    }
    assert.equal(addrs.length, 6);
    for (const a of addrs) assert.ok(mem.isMapped(a, 16) && a >= 0x10_0000, `ring at 0x${a.toString(16)}`);
    // Buffers: direct and through an indirect table; every address the device finds is the
    // guest-physical one the caller allocated.
    const q = drv.queue(0);
    const segs = [1, 2, 3].map((k) => ({ addr: dma.alloc(64 * k), len: 64 * k }));
    const outSeg = { addr: dma.alloc(16), len: 16 };
    assert.ok(q.add([outSeg], [segs[0]!], 1));
    assert.ok(q.add([outSeg], segs, 2, true));
    drv.kick(0);
    assert.equal(q.takeUsed(), 1);
    assert.equal(q.takeUsed(), 2);
    const descAddr = addrs[0]!;
    const seen: number[] = [];
    const walkTable = (base: number, count: number): void => {
      for (let i = 0; i < count; i++) {
        const at = base + i * DESC_SIZE;
        const addr = mem.readU32(at) + mem.readU32(at + 4) * 2 ** 32;
        const len = mem.readU32(at + 8);
        const flags = mem.readU16(at + 12);
        if (len === 0) continue;
        if (flags & 4) walkTable(addr, len / DESC_SIZE);
        else seen.push(addr);
      }
    };
    walkTable(descAddr, 16);
    const expected = new Set([outSeg.addr, ...segs.map((s) => s.addr)]);
    assert.ok(seen.length >= 4);
    for (const a of seen) assert.ok(expected.has(a), `descriptor address 0x${a.toString(16)} is one the caller allocated`);
    drv.reset();
  });
});
