/**
 * 4.1 PCI: the function as a PCI function (header, BARs, capability list), the optional parts
 * of its capability list (padding, a second notification structure, vendor data capabilities),
 * and the driver's use of them: what it reads of the structures, its configuration size check,
 * its INTx fallback with a single MSI-X vector, the features it accepts by default.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCore } from '../../src/device/device-core.js';
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { BlkDriver } from '../../src/devices/blk/blk-driver.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { ConfigSpaceTooSmallError, attachDeviceDriver } from '../../src/driver/device-driver.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { startDeviceDriver } from '../../src/driver/start-device-driver.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { MmioDeviceTransport } from '../../src/transport/mmio/mmio-device.js';
import { MmioDriverTransport } from '../../src/transport/mmio/mmio-driver.js';
import {
  CapField,
  CommonCfg,
  IsrBit,
  Msix,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_VENDOR_VIRTIO,
  PciBar,
  PciCfg,
  PciStatus,
  VirtioPciCap,
} from '../../src/transport/pci/constants.js';
import { type PciDeviceOptions, PciDeviceTransport, type PciFunction } from '../../src/transport/pci/pci-device.js';
import { PciDriverTransport } from '../../src/transport/pci/pci-driver.js';
import { ALL, DMA_BASE, MEM, RecordingFunction } from './pci-rig.js';
import { roundTrip } from './rig.js';

function device(opts: PciDeviceOptions = {}, dev: EchoDevice | BlkDevice = new EchoDevice({ queues: [64, 64] })) {
  const mem = GuestMemory.allocate(MEM);
  const bus = new LoopbackBus(mem);
  const cores: DeviceCore[] = [];
  const bad: string[] = [];
  const t = new PciDeviceTransport(bus, deviceCoreFactory(dev, mem, {}, cores), { ...opts, onBadAccess: (b) => bad.push(`${b.region} ${b.reason} ${b.offset}`) });
  const fn = new RecordingFunction(t);
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  return { mem, bus, t, fn, dev, dma, bad, core: () => cores.at(-1)! };
}

function driven(r: ReturnType<typeof device>, useMsix = true, intxWhenOneVector = false) {
  const d = new PciDriverTransport(r.fn, r.mem, { useMsix, intxWhenOneVector });
  r.bus.onMsi = (a, v) => d.handleMsi(a, v);
  r.bus.onIrq = () => d.handleIntx();
  return d;
}

function payload(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 11 + seed) & 0xff;
  return b;
}

interface CapEntry {
  readonly at: number;
  readonly id: number;
  readonly len: number;
  readonly cfgType: number;
  readonly bar: number;
}

/** Walks the capability list through configuration reads, checking the PCI rules on the way. */
function walkCaps(fn: PciFunction): CapEntry[] {
  const out: CapEntry[] = [];
  const seen = new Set<number>();
  let ptr = fn.configRead(PciCfg.CAPABILITIES_POINTER, 1);
  while (ptr !== 0) {
    // PCI 6.7: pointers are dword aligned, into the device-specific area 0x40..0xff; no loop.
    assert.equal(ptr % 4, 0, `capability at 0x${ptr.toString(16)} dword aligned`);
    assert.ok(ptr >= 0x40 && ptr < PciCfg.SIZE, `capability at 0x${ptr.toString(16)} in 0x40..0xff`);
    assert.ok(!seen.has(ptr), 'the list has no loop');
    seen.add(ptr);
    const id = fn.configRead(ptr, 1);
    const vndr = id === PCI_CAP_ID_VNDR;
    const len = vndr ? fn.configRead(ptr + CapField.LEN, 1) : id === PCI_CAP_ID_MSIX ? Msix.CAP_SIZE : 0;
    assert.ok(ptr + len <= PciCfg.SIZE, 'the capability fits the configuration space');
    out.push({ at: ptr, id, len, cfgType: vndr ? fn.configRead(ptr + CapField.CFG_TYPE, 1) : -1, bar: vndr ? fn.configRead(ptr + CapField.BAR, 1) : -1 });
    ptr = fn.configRead(ptr + CapField.NEXT, 1);
  }
  return out;
}

/** Reads a virtio capability's bytes with configuration reads of `width`. */
function capBytes(fn: PciFunction, at: number, len: number, width: 1 | 2 | 4): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i += width) {
    const v = fn.configRead(at + i, width);
    for (let k = 0; k < width; k++) b[i + k] = Math.floor(v / 256 ** k) & 0xff;
  }
  return b;
}

describe('4.1 PCI: a PCI function by the PCI rules', () => {
  it('device/transport-pci/1: header, read-only registers, BAR sizing, capability list and MSI-X structure follow the PCI specification', () => {
    const configs: [string, PciDeviceOptions][] = [
      ['default', {}],
      ['transitional', { transitional: true }],
      ['no MSI-X', { msixVectors: 0 }],
      ['I/O modern BAR', { modernIoBar: true }],
      ['I/O notify, padding, vendor data', { ioNotify: true, capabilityPadding: 4, vendorData: [{ vendorId: 0x1b36, data: Uint8Array.of(1, 2, 3) }] }],
    ];
    for (const [what, opts] of configs) {
      const r = device(opts);
      const fn = r.t;
      // Header: a valid vendor, type 0 single-function header, capability list announced.
      assert.equal(fn.configRead(PciCfg.VENDOR_ID, 2), PCI_VENDOR_VIRTIO, what);
      assert.notEqual(fn.configRead(PciCfg.DEVICE_ID, 2), 0xffff, what);
      assert.equal(fn.configRead(PciCfg.HEADER_TYPE, 1), 0, `${what}: type 0 header, single function`);
      assert.ok((fn.configRead(PciCfg.STATUS, 2) & PciStatus.CAP_LIST) !== 0, what);
      assert.equal(fn.configRead(PciCfg.INTERRUPT_PIN, 1), 1, `${what}: INTA#`);
      // Read-only registers ignore writes (ids, class, revision, header type, subsystem, pointer, pin).
      const ro: [number, 1 | 2][] = [
        [PciCfg.VENDOR_ID, 2], [PciCfg.DEVICE_ID, 2], [PciCfg.REVISION_ID, 1], [PciCfg.CLASS_PROG, 1], [PciCfg.CLASS_DEVICE, 2],
        [PciCfg.HEADER_TYPE, 1], [PciCfg.SUBSYSTEM_VENDOR_ID, 2], [PciCfg.SUBSYSTEM_ID, 2], [PciCfg.CAPABILITIES_POINTER, 1], [PciCfg.INTERRUPT_PIN, 1],
      ];
      for (const [off, w] of ro) {
        const before = fn.configRead(off, w);
        fn.configWrite(off, w, w === 1 ? 0x5a : 0x5a5a);
        assert.equal(fn.configRead(off, w), before, `${what}: register 0x${off.toString(16)} is read-only`);
      }
      // Interrupt Line is the system's scratch register: read-write.
      fn.configWrite(PciCfg.INTERRUPT_LINE, 1, 0x0b);
      assert.equal(fn.configRead(PciCfg.INTERRUPT_LINE, 1), 0x0b);
      // BAR sizing: all ones written, the size mask read back; type bits read-only; a 64-bit
      // BAR's upper half is the next BAR; unimplemented BARs read 0.
      for (let i = 0; i < 6; i++) {
        const off = PciCfg.BAR0 + 4 * i;
        const orig = fn.configRead(off, 4);
        fn.configWrite(off, 4, 0xffffffff);
        const mask = fn.configRead(off, 4);
        fn.configWrite(off, 4, orig);
        const size = r.t.barSize(i);
        if (size === 0) {
          const lowerIs64 = i > 0 && r.t.barSize(i - 1) > 0 && !r.t.barIsIo(i - 1) && (fn.configRead(off - 4, 4) & 6) === 4;
          if (!lowerIs64) assert.equal(mask, 0, `${what}: BAR${i} unimplemented reads 0`);
          continue;
        }
        assert.equal(size & (size - 1), 0, `${what}: BAR${i} size ${size} a power of 2`);
        const io = r.t.barIsIo(i);
        assert.equal(mask & 1, io ? 1 : 0, `${what}: BAR${i} space bit`);
        const addrMask = io ? mask & ~3 : mask & ~15;
        assert.equal((~addrMask + 1) >>> 0, size, `${what}: BAR${i} sizes to ${size}`);
        assert.ok(io ? size >= 4 && size <= 256 : size >= 16, `${what}: BAR${i} size within the PCI limits`);
        if (!io) assert.notEqual(mask & 6, 2, `${what}: BAR${i} memory type is 32 or 64 bits`);
      }
      // Capability list: aligned, inside 0x40..0xff, no loop; MSI-X table and PBA inside their BAR.
      const caps = walkCaps(fn);
      assert.ok(caps.length >= 5, what);
      const msix = caps.find((c) => c.id === PCI_CAP_ID_MSIX);
      assert.equal(msix !== undefined, opts.msixVectors !== 0, what);
      if (msix) {
        const n = (fn.configRead(msix.at + Msix.CTRL, 2) & Msix.CTRL_SIZE_MASK) + 1;
        for (const [field, bytes] of [[Msix.TABLE, n * Msix.ENTRY_SIZE], [Msix.PBA, Math.ceil(n / 64) * 8]] as const) {
          const v = fn.configRead(msix.at + field, 4);
          const bir = v & 7;
          const offset = v & ~7;
          assert.ok(bir <= 5 && r.t.barSize(bir) > 0 && !r.t.barIsIo(bir), `${what}: MSI-X BIR ${bir} is a memory BAR`);
          assert.ok(offset + bytes <= r.t.barSize(bir), `${what}: MSI-X structure inside BAR${bir}`);
        }
      }
      for (const c of caps.filter((x) => x.id === PCI_CAP_ID_VNDR)) assert.equal(c.len % 4, 0, `${what}: cap at 0x${c.at.toString(16)} a whole number of dwords`);
      // No PCI Express extended space: reads past 0xff give 0.
      assert.equal(fn.configRead(0x100, 4), 0, what);
      assert.deepEqual(r.bad.filter((b) => !b.includes('pci-config')), [], what);
    }
  });
});

describe('4.1.4 PCI: the capability list\'s optional parts', () => {
  it('device/transport-pci/10: with padding appended to every virtio structure capability (cap_len counts it) the device and driver still work', () => {
    for (const pad of [4, 8]) {
      const plain = walkCaps(device().t);
      const r = device({ capabilityPadding: pad });
      const caps = walkCaps(r.t);
      const virtio = caps.filter((c) => c.id === PCI_CAP_ID_VNDR && c.cfgType !== VirtioPciCap.VENDOR_CFG);
      assert.equal(virtio.length, plain.filter((c) => c.id === PCI_CAP_ID_VNDR).length);
      for (const c of virtio) {
        const base = plain.find((p) => p.cfgType === c.cfgType)!;
        assert.equal(c.len, base.len + pad, `cfg_type ${c.cfgType}: cap_len includes the padding`);
        // The padding reads as zeros.
        assert.deepEqual([...capBytes(r.t, c.at + base.len, pad, 1)], new Array<number>(pad).fill(0));
      }
      const d = driven(r);
      const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
      const p = payload(30, pad);
      assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(1), () => drv.kick(1), p).data, p);
      assert.equal(drv.readConfig(0, 4).length, 4);
      drv.reset();
    }
  });

  it('device/transport-pci/11, driver/transport-pci/8: two notification structures, memory BAR first and I/O BAR last; the driver uses the first; both work', () => {
    const r = device({ ioNotify: true });
    const caps = walkCaps(r.t).filter((c) => c.id === PCI_CAP_ID_VNDR);
    const notify = caps.filter((c) => c.cfgType === VirtioPciCap.NOTIFY_CFG);
    assert.equal(notify.length, 2);
    // Optimal first: the memory BAR's (any multiplier, per-queue addresses), then port I/O.
    assert.equal(notify[0]!.bar, PciBar.MODERN);
    assert.equal(r.t.barIsIo(notify[0]!.bar), false);
    assert.equal(r.t.barIsIo(notify[1]!.bar), true);
    assert.ok(notify[0]!.at < notify[1]!.at);
    assert.equal(r.t.configRead(notify[1]!.at + CapField.EXTRA, 4), 0, 'one I/O address for every queue');
    // Every other type appears once.
    for (const type of [VirtioPciCap.COMMON_CFG, VirtioPciCap.ISR_CFG, VirtioPciCap.DEVICE_CFG, VirtioPciCap.PCI_CFG]) {
      assert.equal(caps.filter((c) => c.cfgType === type).length, 1, `cfg_type ${type}`);
    }
    const d = driven(r);
    const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED & ~F.NOTIF_CONFIG_DATA, dma: r.dma, queueSizes: [16] });
    r.fn.log.length = 0;
    const p = payload(20, 1);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
    const notifies = r.fn.log.filter((a) => a.kind === 'bar' && a.op === 'w' && (a.bar === notify[1]!.bar || (a.bar === PciBar.MODERN && a.off >= r.t.layout.notify)));
    assert.ok(notifies.length > 0);
    assert.ok(notifies.every((a) => a.bar === PciBar.MODERN), 'driver/transport-pci/8: notifications through the first structure');
    // The I/O one reaches the same queues: the value names the queue.
    const q = drv.queue(1);
    const out = r.dma.alloc(8);
    const inn = r.dma.alloc(8);
    r.mem.write(out, payload(8, 9));
    assert.ok(q.add([{ addr: out, len: 8 }], [{ addr: inn, len: 8 }], 5));
    q.kick();
    assert.equal(q.takeUsed(), undefined, 'nothing served before the notification');
    r.t.barWrite(notify[1]!.bar, 0, 2, 1);
    assert.equal(q.takeUsed(), 5);
    assert.deepEqual(r.mem.slice(inn, 8), payload(8, 9));
    assert.deepEqual(r.bad, []);
    drv.reset();
  });

  it('device/transport-pci/45, 46, 47: vendor data capabilities: vendor_id never 0x1AF4, a multiple of 4 bytes, reads without side effects', () => {
    assert.throws(
      () => device({ vendorData: [{ vendorId: PCI_VENDOR_VIRTIO, data: Uint8Array.of(1) }] }),
      (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT,
      'device/transport-pci/45: the virtio vendor id is refused',
    );
    for (let n = 0; n <= 9; n++) {
      const data = Uint8Array.from({ length: n }, (_, i) => 0xa0 + i);
      const r = device({ vendorData: [{ vendorId: 0x1b36, data }, { vendorId: 0x8086, data: Uint8Array.of(7) }] });
      const caps = walkCaps(r.t).filter((c) => c.cfgType === VirtioPciCap.VENDOR_CFG);
      assert.equal(caps.length, 2);
      const [c] = caps;
      assert.equal(c!.len % 4, 0, `device/transport-pci/46: ${n} data bytes, cap_len ${c!.len}`);
      assert.ok(c!.len >= 6 + n);
      assert.equal(r.t.configRead(c!.at + 4, 2), 0x1b36, 'vendor_id');
      assert.equal(r.t.configRead(caps[1]!.at + 4, 2), 0x8086);
      assert.deepEqual(capBytes(r.t, c!.at + 6, n, 1), data);
    }
    // device/transport-pci/47: a running device with an interrupt pending (INTx, ISR set): reading
    // the capability in every width, many times, changes nothing.
    const r = device({ msixVectors: 0, vendorData: [{ vendorId: 0x1b36, data: Uint8Array.of(1, 2, 3, 4, 5, 6) }] });
    const d = driven(r, false);
    const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
    let irqs = 0;
    r.bus.onIrq = () => irqs++;
    r.t.configChange();
    const irqsBefore = irqs;
    const c = walkCaps(r.t).find((x) => x.cfgType === VirtioPciCap.VENDOR_CFG)!;
    const snapshot = (): unknown => ({
      isr: r.t.isrValue,
      status: r.core().status,
      generation: r.core().configGeneration,
      cfgStatus: r.t.configRead(PciCfg.STATUS, 2),
      header: [...capBytes(r.t, 0, 0x40, 4)],
      bad: r.bad.length,
    });
    const before = snapshot();
    const first = capBytes(r.t, c.at, c.len, 1);
    for (let k = 0; k < 50; k++) {
      for (const w of [1, 2, 4] as const) assert.deepEqual(capBytes(r.t, c.at, c.len, w), first);
    }
    assert.deepEqual(snapshot(), before);
    assert.equal(irqs, irqsBefore, 'no interrupt raised or lowered by the reads');
    assert.equal(r.t.isrValue, IsrBit.CONFIG, 'the pending configuration change is still there');
    drv.reset();
  });
});

describe('4.1.4 / 2.5: what the driver takes of the structures', () => {
  it('driver/transport-pci/11: with capabilities claiming 4 KiB structures the driver accesses only the part it needs of each', () => {
    const r = device({}, new BlkDevice(new MemoryBackend(64 * 512), { writeback: true }));
    const capAt = new Map<number, number>();
    for (const c of walkCaps(r.t)) if (c.id === PCI_CAP_ID_VNDR) capAt.set(c.at, c.cfgType);
    r.fn.onConfigRead = (off, w, v) => {
      const cap = off - CapField.LENGTH;
      const type = capAt.get(cap);
      return w === 4 && type !== undefined && type >= VirtioPciCap.COMMON_CFG && type <= VirtioPciCap.DEVICE_CFG ? 0x1000 : v;
    };
    const d = driven(r);
    const vd = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
    const blk = attachDeviceDriver(BlkDriver.type, vd.context);
    assert.equal(blk.capacity, 64);
    blk.setWriteback(false);
    r.t.configChange();
    const L = r.t.layout;
    const nq = r.core().numQueues;
    const regions: [string, number, number][] = [
      ['common', L.common, CommonCfg.SIZE],
      ['isr', L.isr, 1],
      ['notify', L.notify, r.t.notifyOffMultiplier * (nq - 1) + 4],
      ['device', L.device, 96],
    ];
    const modern = r.fn.log.filter((a) => a.kind === 'bar' && a.bar === PciBar.MODERN);
    assert.ok(modern.length > 20);
    for (const a of modern) {
      const region = regions.find(([, start]) => a.off >= start && a.off < start + 0x1000);
      assert.ok(region, `access at 0x${a.off.toString(16)}`);
      const [name, start, need] = region;
      assert.ok(a.off + a.width <= start + need, `${name}: access at +${a.off - start} (${a.width}) beyond the ${need} bytes needed`);
    }
    assert.ok(modern.some((a) => a.off >= L.device), 'the device configuration was read');
    vd.reset();
  });

  it('driver/content/13: the driver checks the configuration space is large enough for the fields it uses, never an exact size', () => {
    const attempt = (lengthSeen: number | null) => {
      const r = device({}, new BlkDevice(new MemoryBackend(64 * 512)));
      const devCap = walkCaps(r.t).find((c) => c.cfgType === VirtioPciCap.DEVICE_CFG)!;
      if (lengthSeen !== null) r.fn.onConfigRead = (off, w, v) => (off === devCap.at + CapField.LENGTH && w === 4 ? lengthSeen : v);
      const d = driven(r);
      const vd = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
      try {
        return { needed: BlkDriver.type.configBytesNeeded!(vd.features), size: vd.context.configSize, blk: attachDeviceDriver(BlkDriver.type, vd.context) };
      } finally {
        vd.reset();
      }
    };
    const real = attempt(null);
    assert.equal(real.blk.capacity, 64);
    assert.ok(real.needed >= 8 && typeof real.size === "number" && real.size >= real.needed, `needs ${real.needed} of ${String(real.size)}`);
    // Larger than this driver knows (a newer device with more fields): fine.
    assert.equal(attempt(real.needed + 0x200).blk.capacity, 64);
    // Exactly what it needs: fine.
    assert.equal(attempt(real.needed).blk.capacity, 64);
    // One byte short of the fields in use: refused.
    assert.throws(() => attempt(real.needed - 1), ConfigSpaceTooSmallError);
    // A transport that does not tell the size (MMIO): no check, the driver works.
    const mem = GuestMemory.allocate(MEM);
    const bus = new LoopbackBus(mem);
    const t = new MmioDeviceTransport(bus, deviceCoreFactory(new BlkDevice(new MemoryBackend(8 * 512)), mem));
    const md = new MmioDriverTransport(t, mem);
    const vd = VirtioDriver.initSync(md, { wantedFeatures: ALL & ~F.RING_PACKED, dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE), queueSizes: [16] });
    assert.equal(vd.context.configSize, null);
    assert.equal(attachDeviceDriver(BlkDriver.type, vd.context).capacity, 8);
    vd.reset();
  });

  it('driver/transport-pci/31: with one MSI-X vector (Table Size 0) the driver may fall back on INTx: MSI-X stays off, ISR tells the events', () => {
    const r = device({ msixVectors: 1 });
    const d = driven(r, true, true);
    assert.equal(d.msixSize, 1);
    assert.equal(d.msixActive, false);
    const drv = VirtioDriver.initSync(d, { wantedFeatures: ALL & ~F.RING_PACKED, dma: r.dma, queueSizes: [16] });
    assert.equal(r.t.msixEnabled, false, 'MSI-X Enable never set');
    assert.deepEqual(r.fn.log.filter((a) => a.kind === 'bar' && a.bar === PciBar.MSIX), [], 'the MSI-X table is left alone');
    const seen: string[] = [];
    drv.onConfigChange(() => seen.push('c'));
    drv.onUsed(1, () => seen.push('u1'));
    r.t.configChange();
    assert.deepEqual(seen, ['c']);
    const p = payload(33, 2);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(1), () => drv.kick(1), p).data, p);
    assert.ok(seen.includes('u1'), 'used buffer notification by INTx');
    assert.ok(r.fn.log.some((a) => a.kind === 'bar' && a.op === 'r' && a.off === r.t.layout.isr), 'ISR read');
    drv.reset();
    // Without the option the same table is used with its one vector (driver/transport-pci/30).
    const s = device({ msixVectors: 1 });
    assert.equal(driven(s).msixActive, true);
  });

  it('driver/content/42: a device-type driver started with the default features accepts NOTIF_CONFIG_DATA when the device offers it', async () => {
    const r = device({}, new BlkDevice(new MemoryBackend(16 * 512)));
    const d = driven(r);
    assert.ok((r.core().deviceFeatures() & F.NOTIF_CONFIG_DATA) !== 0n, 'the PCI device offers it');
    const started = await startDeviceDriver(d, BlkDriver.type, { dma: r.dma });
    try {
      assert.ok((started.virtio.features & F.NOTIF_CONFIG_DATA) !== 0n);
      assert.ok((r.core().negotiatedFeatures & F.NOTIF_CONFIG_DATA) !== 0n);
      const data = payload(512, 4);
      await started.driver.write(0, data);
      assert.deepEqual(await started.driver.read(0, 512), data);
    } finally {
      started.close();
    }
  });
});
