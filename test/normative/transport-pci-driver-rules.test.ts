/**
 * Normative statements of 4.1 (Virtio Over PCI Bus), the driver's requirements, proven against
 * the library's PCI driver transport in front of the real DeviceCore, through a PCI function that
 * records (and, for some tests, alters) configuration cycles and BAR accesses (pci-rig.ts).
 * The device's requirements: transport-pci.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { BlkDriver } from '../../src/devices/blk/blk-driver.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { createDriverQueue } from '../../src/driver/create-queue.js';
import { splitRingLayout } from '../../src/queue/split-layout.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { TransportKind, createTransportPair, deviceCoreFactory } from '../../src/transport/loopback.js';
import { CapField, CommonCfg, IsrBit, NO_VECTOR, PCI_CAP_ID_VNDR, PciBar, PciCfg, VirtioPciCap } from '../../src/transport/pci/constants.js';
import { PciDeviceTransport } from '../../src/transport/pci/pci-device.js';
import { PciDriverTransport } from '../../src/transport/pci/pci-driver.js';
import { ALL, DMA_BASE, MEM, type PciAccess, RecordingFunction, commonOff, device, isCommon, payload, rig, start } from './pci-rig.js';
import { blkFieldAccessProblem, roundTrip } from './rig.js';

describe('4.1 PCI: driver requirements', () => {
  it('driver/transport-pci/3: the driver matches any PCI Revision ID', () => {
    for (const rev of [0, 1, 2, 0x7f, 0xff]) {
      const r = device();
      r.fn.onConfigRead = (off, w, v) => (off === PciCfg.REVISION_ID && w === 1 ? rev : v);
      const d = new PciDriverTransport(r.fn, r.mem);
      assert.equal(d.deviceId, 0x3f);
      r.bus.onMsi = (a, v) => d.handleMsi(a, v);
      const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
      assert.ok(drv.running);
      drv.reset();
    }
  });

  it('driver/transport-pci/7, 9, 10, 12: reserved cfg_type and bar values are ignored; larger cap_len and length are accepted', () => {
    const r = device();
    const t = r.t;
    // Fake capabilities in the free end of configuration space, ahead of the device's own list.
    const fake = new Uint8Array(PciCfg.SIZE);
    const FAKE = 0xc0;
    const first = t.configRead(PciCfg.CAPABILITIES_POINTER, 1);
    const put = (at: number, type: number, bar: number, offset: number, length: number, next: number): void => {
      fake[at + CapField.VNDR] = PCI_CAP_ID_VNDR;
      fake[at + CapField.NEXT] = next;
      fake[at + CapField.LEN] = 16;
      fake[at + CapField.CFG_TYPE] = type;
      fake[at + CapField.BAR] = bar;
      new DataView(fake.buffer).setUint32(at + CapField.OFFSET, offset, true);
      new DataView(fake.buffer).setUint32(at + CapField.LENGTH, length, true);
    };
    // driver/transport-pci/7: reserved types (6, 7, 0x20) with a structure pointing at garbage.
    put(FAKE, 6, PciBar.MODERN, 0x3ff0, 0x40, FAKE + 0x10);
    put(FAKE + 0x10, 0x20, PciBar.MODERN, 0x3ff0, 0x40, FAKE + 0x20);
    // driver/transport-pci/10: a common configuration and an ISR in reserved BARs 6 and 0xff.
    put(FAKE + 0x20, VirtioPciCap.COMMON_CFG, 6, 0, 0x40, FAKE + 0x30);
    put(FAKE + 0x30, VirtioPciCap.ISR_CFG, 0xff, 0, 4, first);
    const commonCap = t.caps.common;
    r.fn.onConfigRead = (off, w, v) => {
      if (off === PciCfg.CAPABILITIES_POINTER) return FAKE;
      if (off >= FAKE && off + w <= FAKE + 0x40) {
        let x = 0;
        for (let i = w - 1; i >= 0; i--) x = x * 256 + fake[off + i]!;
        return x;
      }
      // driver/transport-pci/9: a cap_len larger than the structure needs.
      if (off === commonCap + CapField.LEN && w === 1) return 0x30;
      // driver/transport-pci/12: an unexpectedly large length.
      if (off === commonCap + CapField.LENGTH && w === 4) return 0x1000;
      return v;
    };
    const d = new PciDriverTransport(r.fn, r.mem);
    r.bus.onMsi = (a, v) => d.handleMsi(a, v);
    const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
    assert.ok(drv.running);
    assert.ok(r.core().active);
    // The fake structures were never used: no BAR access outside the device's own BARs.
    assert.ok(r.fn.log.every((a) => a.kind !== 'bar' || a.bar <= 5));
    assert.ok(!r.fn.log.some((a) => a.kind === 'bar' && a.off >= 0x3ff0));
    const p = payload(64, 5);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
    drv.reset();
  });

  it('driver/transport-pci/6: 64-bit queue addresses are written as independent 32-bit halves', () => {
    const r = rig();
    r.fn.clear();
    const drv = start(r);
    const halves = r.fn.log.filter(
      (a) =>
        a.op === 'w' &&
        (isCommon(r, a, CommonCfg.QUEUE_DESC) || isCommon(r, a, CommonCfg.QUEUE_DESC + 4) || isCommon(r, a, CommonCfg.QUEUE_DEVICE) || isCommon(r, a, CommonCfg.QUEUE_DEVICE + 4)),
    );
    assert.ok(halves.length >= 4);
    assert.ok(halves.every((a) => a.width === 4));
    // The halves joined on the device side give the driver's ring addresses.
    const lo = halves.find((a) => isCommon(r, a, CommonCfg.QUEUE_DESC))!.value;
    const hi = halves.find((a) => isCommon(r, a, CommonCfg.QUEUE_DESC + 4))!.value;
    assert.equal(r.core().queueConfig(0)!.descAddr, hi * 2 ** 32 + lo);
    assert.ok(lo >= DMA_BASE);
    drv.reset();
  });

  it('driver/transport-pci/36, 38, 40, 41: notifications name the queue by its index, or with NOTIF_CONFIG_DATA by queue_notif_config_data (16 bits, or the low half of 32 with NOTIFICATION_DATA)', () => {
    for (const [notifConfig, notificationData] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const dev = new EchoDevice({ queues: [64, 64] });
      const mem = GuestMemory.allocate(MEM);
      const bus = new LoopbackBus(mem);
      const cores: DeviceCore[] = [];
      // Values that differ from the indices, so a driver using the index would name no queue.
      const t = new PciDeviceTransport(bus, deviceCoreFactory(dev, mem, { queueNotifyData: (i) => 0x5a00 + 7 * i }, cores));
      const fn = new RecordingFunction(t);
      const d = new PciDriverTransport(fn, mem, { useMsix: true });
      bus.onMsi = (a, v) => d.handleMsi(a, v);
      const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
      let wanted = ALL & ~F.RING_PACKED;
      if (!notifConfig) wanted &= ~F.NOTIF_CONFIG_DATA;
      if (!notificationData) wanted &= ~F.NOTIFICATION_DATA;
      const drv = VirtioDriver.initSync(d, { wantedFeatures: wanted, dma, queueSizes: [32] });
      const what = `NOTIF_CONFIG_DATA ${notifConfig}, NOTIFICATION_DATA ${notificationData}`;
      assert.equal((drv.features & F.NOTIF_CONFIG_DATA) !== 0n, notifConfig, `${what}: negotiated as wanted (the modern PCI device offers it)`);
      fn.clear();
      for (const q of [0, 1]) {
        const p = payload(40 + q, q);
        // The echo device answers only if the device side resolved the notification to queue q.
        assert.deepEqual(roundTrip(mem, dma, drv.queue(q), () => drv.kick(q), p).data, p, `${what}: queue ${q}`);
      }
      const writes = fn.log.filter((a) => a.kind === "bar" && a.bar === PciBar.MODERN && a.op === "w" && a.off >= t.layout.notify && a.off < t.layout.notify + 4096);
      assert.ok(writes.length >= 2, what);
      for (const w of writes) {
        const q = (w.off - t.layout.notify) / 4; // notify_off_multiplier 4, queue_notify_off = index
        // driver/transport-pci/36, 37: 16-bit notifications without NOTIFICATION_DATA, 32-bit with it.
        assert.equal(w.width, notificationData ? 4 : 2, what);
        const name = w.value & 0xffff;
        assert.equal(name, notifConfig ? 0x5a00 + 7 * q : q, `${what}: queue ${q} named ${name.toString(16)}`);
      }
      drv.reset();
    }
  });

  it('NOTIF_CONFIG_DATA is a PCI bit: offered and accepted there (MSI-X or INTx), not on MMIO or CCW', () => {
    const mem = GuestMemory.allocate(MEM);
    for (const kind of [TransportKind.PCI_MODERN, TransportKind.PCI_MODERN_INTX, TransportKind.MMIO, TransportKind.CCW_REV2]) {
      const pair = createTransportPair(kind, mem, deviceCoreFactory(new EchoDevice({ queues: [8] }), mem), { ccwScratch: { addr: 0xf000, size: 4096 } });
      const offered = (pair.driver.getDeviceFeatures() & F.NOTIF_CONFIG_DATA) !== 0n;
      assert.equal(offered, kind.startsWith("pci"), kind);
      assert.equal(((pair.driver.transportFeatures ?? 0n) & F.NOTIF_CONFIG_DATA) !== 0n, kind.startsWith("pci"), `${kind} driver side`);
    }
  });

  it('driver/transport-pci/15: with RING_PACKED negotiated the driver never writes 0 to queue_size', () => {
    const r = rig();
    r.fn.clear();
    const drv = start(r, ALL);
    assert.ok((drv.features & F.RING_PACKED) !== 0n);
    const sizes = r.fn.log.filter((a) => a.op === 'w' && isCommon(r, a, CommonCfg.QUEUE_SIZE)).map((a) => a.value);
    assert.equal(sizes.length, 2);
    assert.ok(sizes.every((s) => s !== 0));
    const p = payload(33, 8);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
    drv.reset();
  });

  it('driver/transport-pci/18: after writing 0 to device_status the driver waits for a read of 0 before reinitializing', () => {
    const r = rig();
    let busy = 0;
    r.fn.onBarRead = (bar, off, w, v) => (bar === PciBar.MODERN && off === commonOff(r, CommonCfg.DEVICE_STATUS) && w === 1 && busy > 0 ? (busy--, Status.ACKNOWLEDGE) : v);
    r.fn.onBarWrite = (bar, off, w, v) => {
      if (bar === PciBar.MODERN && off === commonOff(r, CommonCfg.DEVICE_STATUS) && v === 0) busy = 5;
      return true;
    };
    r.fn.clear();
    const drv = start(r);
    const log = r.fn.log;
    const iReset = log.findIndex((a) => a.op === 'w' && isCommon(r, a, CommonCfg.DEVICE_STATUS) && a.value === 0);
    const iAck = log.findIndex((a) => a.op === 'w' && isCommon(r, a, CommonCfg.DEVICE_STATUS) && a.value === Status.ACKNOWLEDGE);
    assert.ok(iReset >= 0 && iAck > iReset);
    const between = log.slice(iReset + 1, iAck).filter((a) => isCommon(r, a, CommonCfg.DEVICE_STATUS));
    // Five reads still showing the old status, then the read of 0, and only then ACKNOWLEDGE.
    assert.deepEqual(
      between.filter((a) => a.op === 'r').map((a) => a.value).slice(0, 6),
      [1, 1, 1, 1, 1, 0],
    );
    assert.ok(!log.slice(iReset + 1, iAck).some((a) => a.op === 'w' && isCommon(r, a, CommonCfg.DEVICE_STATUS)));
    drv.reset();
    // A device that never reads 0 is not reinitialized.
    r.fn.onBarWrite = (bar, off, w, v) => {
      if (bar === PciBar.MODERN && off === commonOff(r, CommonCfg.DEVICE_STATUS) && v === 0) busy = 1e9;
      return true;
    };
    assert.throws(() => start(r));
    assert.equal(r.core().status, 0, 'nothing written after the reset');
  });

  it('driver/transport-pci/20: the driver does not consider a queue reset complete until queue_reset reads back 0', () => {
    const r = rig();
    const drv = start(r);
    let busy = 4;
    r.fn.onBarRead = (bar, off, w, v) => (bar === PciBar.MODERN && off === commonOff(r, CommonCfg.QUEUE_RESET) && busy-- > 0 ? 1 : v);
    r.fn.clear();
    r.d.resetQueue(0);
    assert.deepEqual(
      r.fn.log.filter((a) => a.op === 'r' && isCommon(r, a, CommonCfg.QUEUE_RESET)).map((a) => a.value),
      [1, 1, 1, 1, 0],
    );
    r.fn.onBarRead = (bar, off, w, v) => (bar === PciBar.MODERN && off === commonOff(r, CommonCfg.QUEUE_RESET) ? 1 : v);
    assert.throws(() => r.d.resetQueue(1), { code: 'TIMEOUT' });
    r.fn.onBarRead = null;
    drv.reset();
  });

  it('driver/transport-pci/21, 22: after a queue reset the driver re-enables the queue with a different size and addresses', () => {
    const r = rig();
    const drv = start(r);
    r.d.resetQueue(1);
    const size = 8;
    const base = r.dma.alloc(splitRingLayout(size, 0).total, 4096);
    const a = splitRingLayout(size, base);
    r.mem.fill(a.descAddr, a.deviceAddr + 4096 - a.descAddr);
    r.d.setupQueue(1, { size, descAddr: a.descAddr, driverAddr: a.driverAddr, deviceAddr: a.deviceAddr });
    const cfg = r.core().queueConfig(1)!;
    assert.deepEqual([cfg.size, cfg.descAddr, cfg.driverAddr, cfg.deviceAddr], [size, a.descAddr, a.driverAddr, a.deviceAddr]);
    assert.ok(r.core().queue(1));
    const q = createDriverQueue<number>(r.mem, { size, descAddr: a.descAddr, driverAddr: a.driverAddr, deviceAddr: a.deviceAddr, features: drv.features, littleEndian: true, index: 1 });
    let used = 0;
    r.d.setInterruptHandler({ used: (i) => (i === 1 ? used++ : undefined), configChange: () => {} });
    const p = payload(20, 4);
    const got = roundTrip(r.mem, r.dma, q, () => (q.kick() ? r.d.notify(1, q.notificationData()) : undefined), p);
    assert.deepEqual(got.data, p);
    assert.ok(used >= 1, 'the re-enabled queue has a vector again');
    drv.reset();
  });

  it('driver/transport-pci/25: with MSI-X enabled the driver does not read ISR on a queue interrupt', () => {
    const r = rig();
    const drv = start(r);
    let used = 0;
    drv.onUsed(0, () => used++);
    r.fn.clear();
    const p = payload(10, 1);
    roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p);
    r.t.usedBuffer(0);
    assert.ok(used >= 1);
    assert.ok(!r.fn.log.some((a) => a.kind === 'bar' && a.bar === PciBar.MODERN && a.off === r.t.layout.isr));
    drv.reset();
  });

  it('driver/transport-pci/30: the driver works with any MSI-X table size, 1 (Table Size 0) to 0x800 (Table Size 0x7FF)', () => {
    for (const vectors of [1, 2, 3, 7, 0x800]) {
      const r = rig({ msixVectors: vectors });
      assert.equal(r.d.msixSize, vectors);
      const drv = start(r);
      const seen: string[] = [];
      drv.onUsed(0, () => seen.push('u0'));
      drv.onUsed(1, () => seen.push('u1'));
      drv.onConfigChange(() => seen.push('c'));
      r.t.usedBuffer(1);
      r.t.configChange();
      assert.ok(seen.includes('u1') && seen.includes('c'), `${vectors} vectors: ${seen.join()}`);
      const p = payload(12, vectors & 0xff);
      assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(1), () => drv.kick(1), p).data, p);
      drv.reset();
    }
  });

  it('driver/transport-pci/35: when the device fails a queue vector mapping the driver retries with fewer vectors (the shared one)', () => {
    const r = rig({ msixVectors: 3 });
    // The device cannot map vector 2 to anything: the read gives NO_VECTOR.
    let refused = 0;
    r.fn.onBarWrite = (bar, off, _w, v) => {
      if (bar === PciBar.MODERN && off === commonOff(r, CommonCfg.QUEUE_MSIX_VECTOR) && v === 2) {
        refused++;
        r.t.barWrite(bar, off, 2, NO_VECTOR);
        return false;
      }
      return true;
    };
    const drv = start(r);
    assert.equal(refused, 1);
    const cr = (f: number, w: number): number => r.t.barRead(PciBar.MODERN, commonOff(r, f), w);
    r.t.barWrite(PciBar.MODERN, commonOff(r, CommonCfg.QUEUE_SELECT), 2, 1);
    assert.equal(cr(CommonCfg.QUEUE_MSIX_VECTOR, 2), 0);
    let used = 0;
    drv.onUsed(1, () => used++);
    r.t.usedBuffer(1);
    assert.equal(used, 1);
    drv.reset();
  });

  it('driver/transport-pci/42: one interrupt for both a configuration change and used buffers is handled as both (MSI-X with one vector, INTx)', () => {
    for (const [opts, useMsix] of [
      [{ msixVectors: 1 }, true],
      [{}, false],
    ] as const) {
      const r = rig(opts, undefined, useMsix);
      const drv = start(r);
      const seen: string[] = [];
      drv.onUsed(0, () => seen.push('u0'));
      drv.onConfigChange(() => seen.push('c'));
      const msgs: number[] = [];
      r.bus.onMsi = (a, v) => {
        msgs.push(v);
        r.d.handleMsi(a, v);
      };
      if (useMsix) {
        // One vector carries both: one message, both events.
        r.t.usedBuffer(0);
        assert.deepEqual(msgs, [0]);
        assert.ok(seen.includes('c') && seen.includes('u0'), seen.join());
      } else {
        // INTx: both ISR bits before the driver looks.
        r.bus.onIrq = null;
        r.t.usedBuffer(0);
        r.t.configChange();
        assert.equal(r.t.isrValue, IsrBit.QUEUE | IsrBit.CONFIG);
        r.d.handleIntx();
        assert.deepEqual(seen.sort(), ['c', 'u0']);
        assert.equal(r.t.isrValue, 0);
      }
      drv.reset();
    }
  });

  it('driver/transport-pci/5: device configuration fields are accessed with their own width (blk driver, memory and I/O BAR layouts)', () => {
    for (const modernIoBar of [false, true]) {
      const r = rig({ modernIoBar }, new BlkDevice(new MemoryBackend(64 * 512), { writeback: true }));
      const vd = start(r);
      r.fn.clear();
      const drv = new BlkDriver(vd.context);
      assert.equal(drv.capacity, 64);
      drv.setWriteback(false);
      assert.equal(drv.config.writeback, 0);
      const base = r.t.layout.device;
      const cfg = r.fn.log.filter((a) => a.kind === 'bar' && a.bar === PciBar.MODERN && a.off >= base && a.off < base + 96);
      assert.ok(cfg.some((a) => a.op === 'w'));
      assert.ok(cfg.length > 20);
      assert.deepEqual(
        cfg.map((a) => blkFieldAccessProblem(a.off - base, a.width)).filter((x) => x !== null),
        [],
      );
      vd.reset();
    }
  });

  it('driver/transport-pci/26, 27, 28, 29: the driver leaves a vendor data capability and the PCI configuration access capability alone', () => {
    const r = device();
    const t = r.t;
    // A vendor data capability (cfg_type 9, vendor_id 0x1b36) ahead of the device's list.
    const V = 0xc0;
    const first = t.configRead(PciCfg.CAPABILITIES_POINTER, 1);
    const vndr = new Uint8Array(16);
    vndr.set([PCI_CAP_ID_VNDR, first, 16, VirtioPciCap.VENDOR_CFG, 0x36, 0x1b, 0xaa, 0xbb, 1, 2, 3, 4, 5, 6, 7, 8]);
    r.fn.onConfigRead = (off, w, v) => {
      if (off === PciCfg.CAPABILITIES_POINTER) return V;
      if (off >= V && off + w <= V + 16) {
        let x = 0;
        for (let i = w - 1; i >= 0; i--) x = x * 256 + vndr[off - V + i]!;
        return x;
      }
      return v;
    };
    const d = new PciDriverTransport(r.fn, r.mem);
    r.bus.onMsi = (a, v) => d.handleMsi(a, v);
    const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
    const p = payload(16, 6);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
    drv.readConfig(0, 16);
    drv.reset();
    const cfg = r.fn.log.filter((a) => a.kind === 'cfg');
    const touches = (a: PciAccess, start: number, len: number): boolean => a.off < start + len && a.off + a.width > start;
    // driver/transport-pci/26, 27: the vendor data (past the generic header bytes) is never read,
    // and nothing in the capability is written.
    assert.ok(cfg.some((a) => touches(a, V, 4)), 'the capability was walked');
    assert.deepEqual(
      cfg.filter((a) => touches(a, V + 5, 11) || (a.op === 'w' && touches(a, V, 16))),
      [],
    );
    // driver/transport-pci/28, 29: cap.offset, cap.length and pci_cfg_data of the access
    // capability are never written nor read.
    const pc = t.caps.pciCfg;
    assert.deepEqual(
      cfg.filter((a) => touches(a, pc + CapField.OFFSET, 12)),
      [],
    );
  });

  it('driver/transport-pci/32: the driver takes the Table Size as the number of vectors to use: queues spread over the vectors the table has', () => {
    for (const vectors of [2, 3, 5]) {
      const r = rig({ msixVectors: vectors }, new EchoDevice({ queues: [8, 8, 8, 8, 8, 8] }));
      const drv = start(r);
      const cr = (f: number): number => r.t.barRead(PciBar.MODERN, commonOff(r, f), 2);
      const used = new Set<number>();
      for (let q = 0; q < 6; q++) {
        r.t.barWrite(PciBar.MODERN, commonOff(r, CommonCfg.QUEUE_SELECT), 2, q);
        const v = cr(CommonCfg.QUEUE_MSIX_VECTOR);
        assert.ok(v < vectors, `queue ${q} vector ${v}`);
        used.add(v);
      }
      // Vector 0 is the configuration's; the queues use all the others.
      assert.equal(cr(CommonCfg.CONFIG_MSIX_VECTOR), 0);
      assert.equal(used.size, vectors - 1);
      drv.reset();
    }
  });
});
