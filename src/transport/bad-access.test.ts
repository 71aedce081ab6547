/**
 * Bad register accesses and malformed channel commands on each transport, against the real
 * DeviceCore and a live blk device (brought up by the real drivers): wrong widths, undefined
 * offsets, writes to read-only registers, queue registers with an out-of-range selector,
 * notifications for disabled or absent queues, MSI-X vectors outside the table, and on CCW
 * unknown commands, wrong counts and bad revisions. Each one must get its defined answer
 * (0 / all ones / NO_VECTOR read back, the write ignored, a command reject...), be reported to
 * the bad-access listener with its reason, never throw out of the bus call, and leave the
 * device working: every case ends with a write and read back through the driver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
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
import { CcwCmd, CcwFlag, CcwStatus } from './ccw/constants.js';
import { TransportKind, type TransportPair, createTransportPair, deviceCoreFactory } from './loopback.js';
import { MmioDeviceTransport } from './mmio/mmio-device.js';
import { MMIO_MAGIC, MmioReg } from './mmio/registers.js';
import { CommonCfg, LegacyReg, Msix, NO_VECTOR, PCI_CAP_ID_MSIX, PciBar, PciCfg, PCI_VENDOR_VIRTIO } from './pci/constants.js';
import { PciDeviceTransport } from './pci/pci-device.js';

const T = { timeout: 20_000 };
const MEM = 4 << 20;
const DMA_BASE = 0x10_0000;
/** Where the tests put CCW data areas (below the driver's scratch at 0xf000). */
const CCW_DATA = 0xe000;
const SECTORS = 64;

interface Live {
  readonly pair: TransportPair;
  readonly mem: GuestMemory;
  readonly cores: DeviceCore[];
  readonly bad: BadAccessReport[];
  readonly backend: MemoryBackend;
  readonly notifies: number[];
  driver: VirtioDriver | null;
  blk: BlkDriver | null;
}

function setup(kind: TransportKind): Live {
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
async function live(kind: TransportKind): Promise<Live> {
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

function core(l: Live): DeviceCore {
  return l.cores.at(-1)!;
}

/** The reports since the last call (and forgets them). */
function reports(l: Live): BadAccessReport[] {
  return l.bad.splice(0);
}

function expectReports(l: Live, reasons: BadAccess[], what: string): void {
  assert.deepEqual(
    reports(l).map((r) => r.reason),
    reasons,
    what,
  );
}

/** The device still serves I/O after the bad accesses; and nothing further was refused. */
async function stillWorks(l: Live, seed: number): Promise<void> {
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

// ---- PCI -----------------------------------------------------------------------------------

function pci(l: Live): PciDeviceTransport {
  assert.ok(l.pair.device instanceof PciDeviceTransport);
  return l.pair.device;
}

describe('bad accesses: PCI modern', () => {
  const C = (p: PciDeviceTransport, off: number): number => p.layout.common + off;

  it('device/transport-pci/8: wrong widths on common, notify, ISR and device config are refused without effect', T, async () => {
    const l = await live(TransportKind.PCI_MODERN);
    const p = pci(l);
    const st = core(l).status;
    const M = PciBar.MODERN;
    assert.equal(p.barRead(M, C(p, CommonCfg.DEVICE_STATUS), 2), 0);
    p.barWrite(M, C(p, CommonCfg.DEVICE_STATUS), 4, 0); // would be a reset at width 1
    p.barWrite(M, C(p, CommonCfg.QUEUE_SELECT), 1, 3);
    p.barWrite(M, C(p, CommonCfg.QUEUE_DESC) + 2, 4, 0x1234);
    assert.equal(p.barRead(M, C(p, CommonCfg.DEVICE_FEATURE), 2), 0);
    assert.equal(p.barRead(M, p.layout.isr, 4), 0);
    p.barWrite(M, p.layout.notify, 1, 0);
    p.barWrite(M, p.layout.notify, 8, 0);
    assert.equal(p.barRead(M, p.layout.device, 8), 0); // capacity is 64 bits: two 32-bit halves (driver/transport-pci/5)
    assert.equal(p.barRead(M, p.layout.device + 1, 2), 0);
    assert.equal(p.barRead(M, 0, 3), 0);
    p.barWrite(M, 0, 16, 1);
    expectReports(l, Array<BadAccess>(12).fill(BadAccess.WIDTH), 'each reported as WIDTH');
    assert.equal(core(l).status, st, 'status untouched');
    assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_SELECT), 2), 0, 'queue_select untouched');
    // The 64-bit capacity through its independent 32-bit halves (device/transport-pci/8).
    assert.equal(p.barRead(M, p.layout.device, 4), SECTORS);
    assert.equal(p.barRead(M, p.layout.device + 4, 4), 0);
    await stillWorks(l, 1);
  });

  it('undefined offsets and BARs read 0 and ignore writes (OFFSET)', T, async () => {
    const l = await live(TransportKind.PCI_MODERN);
    const p = pci(l);
    const cfgSize = core(l).device.configSize;
    const end = p.layout.barSize - 4;
    assert.equal(p.barRead(PciBar.MODERN, end, 4), 0);
    p.barWrite(PciBar.MODERN, end, 4, 0xffff_ffff);
    assert.equal(p.barRead(PciBar.MODERN, p.layout.device + cfgSize, 1), 0);
    p.barWrite(PciBar.MODERN, p.layout.device + cfgSize - 2, 4, 0);
    assert.equal(p.barRead(3, 0, 4), 0);
    p.barWrite(5, 0, 4, 1);
    assert.equal(p.barRead(PciBar.LEGACY_IO, 0, 4), 0, 'a non-transitional device has no legacy BAR');
    expectReports(l, Array<BadAccess>(7).fill(BadAccess.OFFSET), 'each reported as OFFSET');
    // Negative offsets and non-integer widths are refused the same way.
    assert.equal(p.barRead(PciBar.MODERN, -4, 4), 0);
    expectReports(l, [BadAccess.WIDTH], 'negative offset');
    // Configuration space past its 256 bytes: nothing there.
    assert.equal(p.configRead(PciCfg.SIZE, 4) >>> 0, p.configRead(PciCfg.SIZE, 4) >>> 0);
    reports(l);
    await stillWorks(l, 2);
  });

  it('writes to read-only fields and capability bytes change nothing and are reported', T, async () => {
    const l = await live(TransportKind.PCI_MODERN);
    const p = pci(l);
    const M = PciBar.MODERN;
    const feat0 = p.barRead(M, C(p, CommonCfg.DEVICE_FEATURE), 4);
    p.barWrite(M, C(p, CommonCfg.DEVICE_FEATURE), 4, 0);
    p.barWrite(M, C(p, CommonCfg.NUM_QUEUES), 2, 9);
    p.barWrite(M, C(p, CommonCfg.CONFIG_GENERATION), 1, 7);
    p.barWrite(M, C(p, CommonCfg.QUEUE_NOTIFY_OFF), 2, 5);
    p.barWrite(M, C(p, CommonCfg.QUEUE_NOTIF_CONFIG_DATA), 2, 5);
    p.barWrite(M, p.layout.isr, 1, 3);
    expectReports(l, Array<BadAccess>(6).fill(BadAccess.READ_ONLY), 'each reported as READ_ONLY');
    assert.equal(p.barRead(M, C(p, CommonCfg.DEVICE_FEATURE), 4), feat0);
    assert.equal(p.barRead(M, C(p, CommonCfg.NUM_QUEUES), 2), 1);
    assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_NOTIFY_OFF), 2), 0);
    assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_NOTIF_CONFIG_DATA), 2), 0);
    // Read-only configuration header and capability bytes.
    p.configWrite(PciCfg.VENDOR_ID, 2, 0x1234);
    p.configWrite(p.caps.common + 4, 1, 3); // cap.bar
    assert.equal(p.configRead(PciCfg.VENDOR_ID, 2), PCI_VENDOR_VIRTIO);
    assert.equal(p.configRead(p.caps.common + 4, 1), PciBar.MODERN);
    reports(l);
    await stillWorks(l, 3);
  });

  it('device/transport-pci/25: queue registers with an out-of-range queue_select read 0 (NO_VECTOR for the vector) and refuse writes', T, async () => {
    const l = setup(TransportKind.PCI_MODERN);
    const p = pci(l);
    const M = PciBar.MODERN;
    // Before any queue_select write, after reset, the selector is 0: queue 0 is presented.
    p.barWrite(M, C(p, CommonCfg.DEVICE_STATUS), 1, 0);
    assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_SELECT), 2), 0);
    assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_SIZE), 2), 64);
    for (const sel of [1, 0x7fff, 0xffff]) {
      p.barWrite(M, C(p, CommonCfg.QUEUE_SELECT), 2, sel);
      assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_SIZE), 2), 0);
      assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_ENABLE), 2), 0);
      assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_MSIX_VECTOR), 2), NO_VECTOR);
      assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_DESC), 8), 0);
      p.barWrite(M, C(p, CommonCfg.QUEUE_SIZE), 2, 16);
      p.barWrite(M, C(p, CommonCfg.QUEUE_DESC), 4, 0x1000);
      p.barWrite(M, C(p, CommonCfg.QUEUE_DRIVER) + 4, 4, 1);
      p.barWrite(M, C(p, CommonCfg.QUEUE_MSIX_VECTOR), 2, 0);
      p.barWrite(M, C(p, CommonCfg.QUEUE_ENABLE), 2, 1);
      p.barWrite(M, C(p, CommonCfg.QUEUE_RESET), 2, 1);
      expectReports(l, Array<BadAccess>(6).fill(BadAccess.NO_QUEUE), `select ${sel}`);
    }
    const q0 = core(l).queueRegisters(0)!;
    assert.equal(q0.size, 64);
    assert.equal(q0.descAddr, 0);
    assert.equal(q0.enabled, false);
    assert.equal(q0.msixVector, NO_VECTOR);
  });

  it('bad queue_size values, fields of an enabled queue, queue_enable 0 are refused', T, async () => {
    const l = await live(TransportKind.PCI_MODERN);
    const p = pci(l);
    const M = PciBar.MODERN;
    const q = core(l).queueRegisters(0)!;
    const before = { ...q };
    p.barWrite(M, C(p, CommonCfg.QUEUE_SELECT), 2, 0);
    p.barWrite(M, C(p, CommonCfg.QUEUE_SIZE), 2, 32);
    p.barWrite(M, C(p, CommonCfg.QUEUE_DESC), 8, 0x2000);
    p.barWrite(M, C(p, CommonCfg.QUEUE_DEVICE) + 4, 4, 1);
    expectReports(l, Array<BadAccess>(3).fill(BadAccess.QUEUE_ENABLED), 'fields frozen while enabled');
    p.barWrite(M, C(p, CommonCfg.QUEUE_ENABLE), 2, 0);
    expectReports(l, [BadAccess.VALUE], 'queue_enable 0');
    assert.deepEqual({ ...q }, before);
    assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_ENABLE), 2), 1);
    await stillWorks(l, 4);
    // On a queue not yet enabled: a size that is 0, not a power of two, or above the maximum.
    const f = setup(TransportKind.PCI_MODERN);
    const pf = pci(f);
    pf.barWrite(M, C(pf, CommonCfg.DEVICE_STATUS), 1, 0);
    for (const size of [0, 48, 128]) pf.barWrite(M, C(pf, CommonCfg.QUEUE_SIZE), 2, size);
    expectReports(f, Array<BadAccess>(3).fill(BadAccess.VALUE), 'sizes refused');
    assert.equal(pf.barRead(M, C(pf, CommonCfg.QUEUE_SIZE), 2), 64);
  });

  it('device/content/8: notifications for a disabled, absent or reset queue never reach the device', T, async () => {
    const l = setup(TransportKind.PCI_MODERN);
    const p = pci(l);
    const M = PciBar.MODERN;
    const mult = p.notifyOffMultiplier;
    p.barWrite(M, C(p, CommonCfg.DEVICE_STATUS), 1, 0);
    p.barWrite(M, C(p, CommonCfg.DEVICE_STATUS), 1, Status.ACKNOWLEDGE | Status.DRIVER);
    p.barWrite(M, p.layout.notify, 2, 0); // queue 0 not enabled
    expectReports(l, [BadAccess.QUEUE_DISABLED], 'disabled');
    p.barWrite(M, p.layout.notify + mult, 2, 1); // queue 1 does not exist: past the notification area
    expectReports(l, [mult === 0 ? BadAccess.NO_QUEUE : BadAccess.OFFSET], 'absent');
    if (mult > 1) {
      p.barWrite(M, p.layout.notify + 1, 2, 0); // between two queues' addresses
      expectReports(l, [BadAccess.OFFSET], 'misplaced');
    }
    assert.equal(p.barRead(M, p.layout.notify, 2), 0, 'the notification area is write-only');
    expectReports(l, [BadAccess.WRITE_ONLY], 'notify read');
    assert.deepEqual(l.notifies, []);
    // After a reset of a live device, its queue is disabled again.
    const r = await live(TransportKind.PCI_MODERN);
    const pr = pci(r);
    const n = r.notifies.length;
    pr.barWrite(M, C(pr, CommonCfg.DEVICE_STATUS), 1, 0);
    assert.equal(core(r).status, 0);
    pr.barWrite(M, pr.layout.notify, 2, 0);
    expectReports(r, [BadAccess.QUEUE_DISABLED], 'after reset');
    assert.equal(r.notifies.length, n);
  });

  it('device/transport-pci/59: an MSI-X vector outside the table reads back NO_VECTOR', T, async () => {
    const l = await live(TransportKind.PCI_MODERN);
    const p = pci(l);
    const M = PciBar.MODERN;
    const size = p.msixTable!.size;
    const cfgVec = p.barRead(M, C(p, CommonCfg.CONFIG_MSIX_VECTOR), 2);
    assert.notEqual(cfgVec, NO_VECTOR, 'the driver mapped the config vector');
    for (const v of [size, 0x7ff, 0xfffe]) {
      p.barWrite(M, C(p, CommonCfg.CONFIG_MSIX_VECTOR), 2, v);
      assert.equal(p.barRead(M, C(p, CommonCfg.CONFIG_MSIX_VECTOR), 2), NO_VECTOR);
      p.barWrite(M, C(p, CommonCfg.QUEUE_SELECT), 2, 0);
      p.barWrite(M, C(p, CommonCfg.QUEUE_MSIX_VECTOR), 2, v);
      assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_MSIX_VECTOR), 2), NO_VECTOR);
      expectReports(l, [BadAccess.VALUE, BadAccess.VALUE], `vector ${v}`);
    }
    // Map them back so the driver keeps its interrupts (driver/transport-pci/34 then passes).
    p.barWrite(M, C(p, CommonCfg.CONFIG_MSIX_VECTOR), 2, size - 1);
    assert.equal(p.barRead(M, C(p, CommonCfg.CONFIG_MSIX_VECTOR), 2), size - 1);
    p.barWrite(M, C(p, CommonCfg.QUEUE_MSIX_VECTOR), 2, 1 % size);
    assert.equal(p.barRead(M, C(p, CommonCfg.QUEUE_MSIX_VECTOR), 2), 1 % size);
    await stillWorks(l, 5);
  });
});

describe('bad accesses: PCI legacy I/O BAR (transitional)', () => {
  const L = PciBar.LEGACY_IO;

  it('wrong widths, undefined offsets and read-only registers of the legacy header are refused without effect', T, async () => {
    const l = await live(TransportKind.PCI_LEGACY);
    const p = pci(l);
    assert.ok(p.legacyActive);
    const st = core(l).status;
    const host = p.barRead(L, LegacyReg.HOST_FEATURES, 4);
    assert.equal(p.barRead(L, LegacyReg.STATUS, 2), 0);
    p.barWrite(L, LegacyReg.STATUS, 4, 0);
    p.barWrite(L, LegacyReg.QUEUE_SELECT, 1, 1);
    assert.equal(p.barRead(L, LegacyReg.HOST_FEATURES, 2), 0);
    p.barWrite(L, LegacyReg.QUEUE_NOTIFY, 4, 0);
    expectReports(l, Array<BadAccess>(5).fill(BadAccess.WIDTH), 'widths');
    p.barWrite(L, LegacyReg.HOST_FEATURES, 4, 0);
    p.barWrite(L, LegacyReg.QUEUE_SIZE, 2, 8);
    p.barWrite(L, LegacyReg.ISR, 1, 1);
    expectReports(l, Array<BadAccess>(3).fill(BadAccess.READ_ONLY), 'read-only');
    const cfgBase = p.msixEnabled ? LegacyReg.CONFIG_MSIX : LegacyReg.CONFIG_NO_MSIX;
    assert.equal(p.barRead(L, cfgBase + core(l).device.configSize, 1), 0);
    p.barWrite(L, cfgBase + core(l).device.configSize - 1, 2, 0);
    assert.equal(p.barRead(L, 1, 1), 0, 'inside host features, not a register start');
    expectReports(l, [BadAccess.OFFSET, BadAccess.OFFSET, BadAccess.OFFSET], 'offsets');
    assert.equal(core(l).status, st);
    assert.equal(p.barRead(L, LegacyReg.HOST_FEATURES, 4), host);
    assert.equal(p.barRead(L, LegacyReg.QUEUE_SELECT, 2), 0);
    // A modern access while the legacy interface drives the device is refused (MODE).
    assert.equal(p.barRead(PciBar.MODERN, p.layout.common + CommonCfg.NUM_QUEUES, 2), 0);
    expectReports(l, [BadAccess.MODE], 'modern access to a legacy-driven device');
    await stillWorks(l, 6);
  });

  it('out-of-range queue select, notify of an absent queue, MSI-X vectors outside the table (NO_VECTOR)', T, async () => {
    const l = await live(TransportKind.PCI_LEGACY);
    const p = pci(l);
    p.barWrite(L, LegacyReg.QUEUE_SELECT, 2, 9);
    assert.equal(p.barRead(L, LegacyReg.QUEUE_SIZE, 2), 0);
    assert.equal(p.barRead(L, LegacyReg.QUEUE_PFN, 4), 0);
    p.barWrite(L, LegacyReg.QUEUE_PFN, 4, 0x200);
    expectReports(l, [BadAccess.NO_QUEUE], 'PFN of an absent queue');
    p.barWrite(L, LegacyReg.QUEUE_SELECT, 2, 0);
    p.barWrite(L, LegacyReg.QUEUE_PFN, 4, 0x300);
    expectReports(l, [BadAccess.QUEUE_ENABLED], 'PFN of a live queue');
    p.barWrite(L, LegacyReg.QUEUE_NOTIFY, 2, 3);
    expectReports(l, [BadAccess.NO_QUEUE], 'notify of an absent queue');
    if (p.msixEnabled) {
      const size = p.msixTable!.size;
      const cfgVec = p.barRead(L, LegacyReg.CONFIG_MSIX_VECTOR, 2);
      const qVec = p.barRead(L, LegacyReg.QUEUE_MSIX_VECTOR, 2);
      p.barWrite(L, LegacyReg.CONFIG_MSIX_VECTOR, 2, size);
      assert.equal(p.barRead(L, LegacyReg.CONFIG_MSIX_VECTOR, 2), NO_VECTOR);
      p.barWrite(L, LegacyReg.QUEUE_MSIX_VECTOR, 2, 0x7ff);
      assert.equal(p.barRead(L, LegacyReg.QUEUE_MSIX_VECTOR, 2), NO_VECTOR);
      expectReports(l, [BadAccess.VALUE, BadAccess.VALUE], 'vectors');
      p.barWrite(L, LegacyReg.CONFIG_MSIX_VECTOR, 2, cfgVec);
      p.barWrite(L, LegacyReg.QUEUE_MSIX_VECTOR, 2, qVec);
    }
    await stillWorks(l, 7);
  });
});

// ---- MMIO ----------------------------------------------------------------------------------

function mmio(l: Live): MmioDeviceTransport {
  assert.ok(l.pair.device instanceof MmioDeviceTransport);
  return l.pair.device;
}

for (const kind of [TransportKind.MMIO, TransportKind.MMIO_LEGACY]) {
  const v1 = kind === TransportKind.MMIO_LEGACY;
  describe(`bad accesses: ${kind}`, () => {
    it('8/16/64-bit and unaligned control register accesses are refused without effect', T, async () => {
      const l = await live(kind);
      const m = mmio(l);
      const st = core(l).status;
      assert.equal(m.read(MmioReg.MAGIC_VALUE, 2), 0);
      assert.equal(m.read(MmioReg.STATUS, 1), 0);
      m.write(MmioReg.STATUS, 1, 0); // would reset at width 4
      m.write(MmioReg.STATUS, 2, 0);
      m.write(MmioReg.QUEUE_SEL + 2, 4, 5);
      assert.equal(m.read(MmioReg.DEVICE_ID + 1, 4), 0);
      m.write(MmioReg.QUEUE_NOTIFY, 8, 0);
      expectReports(l, Array<BadAccess>(7).fill(BadAccess.WIDTH), 'widths');
      assert.equal(core(l).status, st);
      assert.equal(m.read(MmioReg.MAGIC_VALUE, 4), MMIO_MAGIC);
      assert.equal(m.read(MmioReg.QUEUE_SIZE_MAX, 4), 64, 'QueueSel still 0');
      await stillWorks(l, 10);
    });

    it('undefined offsets, config beyond its size, and the other version\'s registers read 0 and ignore writes', T, async () => {
      const l = await live(kind);
      const m = mmio(l);
      const cfg = core(l).device.configSize;
      const undefinedOffsets = [0x018, 0x048, 0x0c4, 0x0f8];
      for (const off of undefinedOffsets) {
        assert.equal(m.read(off, 4), 0);
        m.write(off, 4, 0xffff_ffff);
      }
      assert.equal(m.read(MmioReg.CONFIG + cfg, 1), 0);
      m.write(MmioReg.CONFIG + cfg - 2, 4, 0);
      const other = v1 ? [MmioReg.QUEUE_READY, MmioReg.QUEUE_DESC_LOW, MmioReg.CONFIG_GENERATION, MmioReg.QUEUE_RESET] : [MmioReg.QUEUE_PFN, MmioReg.GUEST_PAGE_SIZE, MmioReg.QUEUE_ALIGN];
      for (const off of other) m.write(off, 4, 1);
      for (const off of other) assert.equal(m.read(off, 4), 0);
      const got = reports(l);
      assert.equal(got.length, undefinedOffsets.length * 2 + 2 + other.length * 2);
      // Legacy ConfigGeneration is outside version 1 but reads as undefined and refuses writes as read-only.
      const allowed: BadAccess[] = [BadAccess.OFFSET, BadAccess.WRITE_ONLY, BadAccess.READ_ONLY];
      for (const r of got) assert.ok(allowed.includes(r.reason), `${r.reason} at 0x${r.offset.toString(16)}`);
      await stillWorks(l, 11);
    });

    it('read-only registers ignore writes; write-only registers read 0', T, async () => {
      const l = await live(kind);
      const m = mmio(l);
      const ro: number[] = [MmioReg.MAGIC_VALUE, MmioReg.VERSION, MmioReg.DEVICE_ID, MmioReg.VENDOR_ID, MmioReg.DEVICE_FEATURES, MmioReg.QUEUE_SIZE_MAX, MmioReg.INTERRUPT_STATUS];
      if (!v1) ro.push(MmioReg.CONFIG_GENERATION);
      const before = ro.map((o) => m.read(o, 4));
      for (const o of ro) m.write(o, 4, 0x5a5a_5a5a);
      expectReports(l, Array<BadAccess>(ro.length).fill(BadAccess.READ_ONLY), 'read-only');
      assert.deepEqual(
        ro.map((o) => m.read(o, 4)),
        before,
      );
      const wo = [MmioReg.DEVICE_FEATURES_SEL, MmioReg.DRIVER_FEATURES, MmioReg.DRIVER_FEATURES_SEL, MmioReg.QUEUE_SEL, MmioReg.QUEUE_SIZE, MmioReg.QUEUE_NOTIFY, MmioReg.INTERRUPT_ACK];
      for (const o of wo) assert.equal(m.read(o, 4), 0);
      expectReports(l, Array<BadAccess>(wo.length).fill(BadAccess.WRITE_ONLY), 'write-only');
      await stillWorks(l, 12);
    });

    it('out-of-range QueueSel: QueueSizeMax 0, writes refused; oversize QueueSize and fields of a ready queue refused', T, async () => {
      const l = await live(kind);
      const m = mmio(l);
      for (const sel of [1, 0xffff, 0xffff_ffff]) {
        m.write(MmioReg.QUEUE_SEL, 4, sel);
        assert.equal(m.read(MmioReg.QUEUE_SIZE_MAX, 4), 0);
        if (!v1) assert.equal(m.read(MmioReg.QUEUE_READY, 4), 0);
        else assert.equal(m.read(MmioReg.QUEUE_PFN, 4), 0);
        m.write(MmioReg.QUEUE_SIZE, 4, 16);
        if (!v1) {
          m.write(MmioReg.QUEUE_DESC_LOW, 4, 0x1000);
          m.write(MmioReg.QUEUE_READY, 4, 1);
        } else m.write(MmioReg.QUEUE_PFN, 4, 0x20);
        expectReports(l, Array<BadAccess>(v1 ? 2 : 3).fill(BadAccess.NO_QUEUE), `select ${sel}`);
      }
      m.write(MmioReg.QUEUE_SEL, 4, 0);
      const q = { ...core(l).queueRegisters(0)! };
      m.write(MmioReg.QUEUE_SIZE, 4, 32);
      if (!v1) {
        m.write(MmioReg.QUEUE_DESC_LOW, 4, 0x2000);
        m.write(MmioReg.QUEUE_DEVICE_HIGH, 4, 1);
        expectReports(l, Array<BadAccess>(3).fill(BadAccess.QUEUE_ENABLED), 'ready queue');
      } else {
        // Legacy: QueueNum of a live queue is refused the same way.
        expectReports(l, [BadAccess.QUEUE_ENABLED], 'live queue');
      }
      assert.deepEqual({ ...core(l).queueRegisters(0)! }, q);
      await stillWorks(l, 13);
      const f = setup(kind);
      const mf = mmio(f);
      mf.write(MmioReg.STATUS, 4, 0);
      mf.write(MmioReg.QUEUE_SEL, 4, 0);
      mf.write(MmioReg.QUEUE_SIZE, 4, 65);
      mf.write(MmioReg.QUEUE_SIZE, 4, 0);
      expectReports(f, [BadAccess.VALUE, BadAccess.VALUE], 'QueueSize above QueueSizeMax, or 0');
    });

    it('device/transport-mmio/7: notifications for a queue that is not ready, or absent, never reach the device', T, async () => {
      const l = setup(kind);
      const m = mmio(l);
      m.write(MmioReg.STATUS, 4, 0);
      m.write(MmioReg.STATUS, 4, Status.ACKNOWLEDGE | Status.DRIVER);
      m.write(MmioReg.QUEUE_NOTIFY, 4, 0);
      expectReports(l, [BadAccess.QUEUE_DISABLED], 'not ready');
      m.write(MmioReg.QUEUE_NOTIFY, 4, 7);
      expectReports(l, [BadAccess.NO_QUEUE], 'absent');
      assert.deepEqual(l.notifies, []);
      const r = await live(kind);
      const mr = mmio(r);
      const n = r.notifies.length;
      mr.write(MmioReg.STATUS, 4, 0);
      mr.write(MmioReg.QUEUE_NOTIFY, 4, 0);
      expectReports(r, [BadAccess.QUEUE_DISABLED], 'after reset');
      assert.equal(r.notifies.length, n);
    });
  });
}

// ---- CCW -----------------------------------------------------------------------------------

function ccw(l: Live): CcwDeviceTransport {
  assert.ok(l.pair.device instanceof CcwDeviceTransport);
  return l.pair.device;
}

const EINVAL_MIN = -1; // the hypercall's error answers are negative

for (const kind of [TransportKind.CCW_REV2, TransportKind.CCW_REV1, TransportKind.CCW_REV0]) {
  describe(`bad accesses: ${kind}`, () => {
    it('device/transport-ccw/1: unknown commands end in a unit check with command reject', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      const unknown = [0x00, 0x01, 0x02, 0x04, 0x14, 0x7f, 0xff];
      for (const cmd of unknown) assert.equal(c.execute(cmd, CCW_DATA, 8).status, CcwStatus.COMMAND_REJECT, `cmd 0x${cmd.toString(16)}`);
      expectReports(l, Array<BadAccess>(unknown.length).fill(BadAccess.OFFSET), 'unknown commands');
      await stillWorks(l, 20);
    });

    it('device/transport-ccw/2 /3 /4: a count that does not match is an incorrect length (no SLI), a short one with SLI a command reject, a long one with SLI accepted', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      l.mem.fill(CCW_DATA, 64, 0);
      // READ_VQ_CONF for queue 0: 4 bytes.
      assert.equal(c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 3).status, CcwStatus.INCORRECT_LENGTH);
      assert.equal(c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 6).status, CcwStatus.INCORRECT_LENGTH);
      expectReports(l, [BadAccess.WIDTH, BadAccess.WIDTH], 'length mismatch');
      assert.equal(c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 2, CcwFlag.SLI).status, CcwStatus.COMMAND_REJECT);
      expectReports(l, [BadAccess.WIDTH], 'short with SLI');
      const long = c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 16, CcwFlag.SLI);
      assert.equal(long.status, CcwStatus.OK);
      assert.equal(long.residual, 12);
      assert.equal(l.mem.readU16(CCW_DATA + 2, false), 64, 'queue 0 max size');
      // WRITE_STATUS with a zero count: nothing is written, the status is unchanged.
      const st = core(l).status;
      assert.equal(c.execute(CcwCmd.WRITE_STATUS, CCW_DATA, 0).status, CcwStatus.INCORRECT_LENGTH);
      assert.equal(core(l).status, st);
      reports(l);
      await stillWorks(l, 21);
    });

    it('device/transport-ccw/9 /5 /6: SET_VIRTIO_REV on a live device, an unknown revision, a bad length: command reject', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      const rev = c.revision;
      // revision 2, length 0: a valid struct virtio_rev_info.
      l.mem.writeU16(CCW_DATA, 2, false);
      l.mem.writeU16(CCW_DATA + 2, 0, false);
      assert.equal(c.execute(CcwCmd.SET_VIRTIO_REV, CCW_DATA, 4).status, CcwStatus.COMMAND_REJECT);
      assert.equal(c.revision, rev, 'revision kept');
      expectReports(l, [BadAccess.MODE], 'second SET_VIRTIO_REV');
      await stillWorks(l, 22);
      // On a freshly enabled subchannel: revision 9 and revision 1 with trailing data are refused.
      const f = setup(kind);
      const cf = ccw(f);
      cf.enableSubchannel();
      f.mem.writeU16(CCW_DATA, 9, false);
      assert.equal(cf.execute(CcwCmd.SET_VIRTIO_REV, CCW_DATA, 4).status, CcwStatus.COMMAND_REJECT);
      f.mem.writeU16(CCW_DATA, 1, false);
      f.mem.writeU16(CCW_DATA + 2, 4, false);
      assert.equal(cf.execute(CcwCmd.SET_VIRTIO_REV, CCW_DATA, 8).status, CcwStatus.COMMAND_REJECT);
      assert.equal(cf.revision, -1);
      assert.equal(reports(f).length, 2);
    });

    it('device/transport-ccw/8: commands outside the selected revision are rejected', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      if (c.revision < 2) {
        assert.equal(c.execute(CcwCmd.READ_STATUS, CCW_DATA, 1).status, CcwStatus.COMMAND_REJECT);
        expectReports(l, [BadAccess.MODE], 'READ_STATUS below revision 2');
      } else {
        const o = c.execute(CcwCmd.READ_STATUS, CCW_DATA, 1);
        assert.equal(o.status, CcwStatus.OK);
        assert.equal(l.mem.readU8(CCW_DATA), core(l).status);
      }
      await stillWorks(l, 23);
    });

    it('SET_VQ and READ_VQ_CONF for an absent queue; notification hypercall for an absent or disabled queue (device/transport-ccw/16)', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      l.mem.fill(CCW_DATA, 64, 0);
      l.mem.writeU16(CCW_DATA, 5, false);
      assert.equal(c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 4).status, CcwStatus.OK);
      assert.equal(l.mem.readU16(CCW_DATA + 2, false), 0, 'absent queue: max 0');
      // SET_VQ for queue 5 (legacy block 16 bytes: queue u64, align u32, index u16, num u16).
      l.mem.fill(CCW_DATA, 64, 0);
      const legacy = c.revision === 0;
      if (legacy) {
        l.mem.writeU32(CCW_DATA + 4, 0x20000, false);
        l.mem.writeU32(CCW_DATA + 8, 4096, false);
        l.mem.writeU16(CCW_DATA + 12, 5, false);
        l.mem.writeU16(CCW_DATA + 14, 64, false);
      } else {
        l.mem.writeU32(CCW_DATA + 4, 0x20000, false);
        l.mem.writeU16(CCW_DATA + 24, 5, false);
        l.mem.writeU16(CCW_DATA + 26, 64, false);
      }
      assert.equal(c.execute(CcwCmd.SET_VQ, CCW_DATA, legacy ? 16 : 32).status, CcwStatus.COMMAND_REJECT);
      assert.equal(reports(l).length, 1);
      // 4.3.3.2.1: the high half of GPR2 is ignored; queue 3 does not exist.
      assert.ok(c.hypercallNotify(0xdead_0000_0000 + 0x0001_0000, 3) <= EINVAL_MIN);
      expectReports(l, [BadAccess.NO_QUEUE], 'absent queue');
      assert.ok(c.hypercallNotify(0x0002_0000, 0) <= EINVAL_MIN);
      expectReports(l, [BadAccess.VALUE], 'other subchannel');
      await stillWorks(l, 24);
      // After VDEV_RESET the queue is disabled: the notification does not reach the device.
      const n = l.notifies.length;
      assert.equal(c.execute(CcwCmd.VDEV_RESET, 0, 0).status, CcwStatus.OK);
      assert.ok(c.hypercallNotify(0x0001_0000, 0) <= EINVAL_MIN);
      expectReports(l, [BadAccess.QUEUE_DISABLED], 'after VDEV_RESET');
      assert.equal(l.notifies.length, n);
    });

    it('unmapped data addresses end in a program check, never a throw', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      for (const cmd of [CcwCmd.READ_FEAT, CcwCmd.READ_CONF, CcwCmd.WRITE_CONF, CcwCmd.SET_VQ, CcwCmd.SET_IND, CcwCmd.READ_VQ_CONF]) {
        const count = cmd === CcwCmd.READ_FEAT ? 5 : cmd === CcwCmd.SET_VQ ? (c.revision === 0 ? 16 : 32) : cmd === CcwCmd.SET_IND ? 8 : 4;
        assert.equal(c.execute(cmd, MEM + 0x1000, count).status, CcwStatus.PROGRAM_CHECK, `cmd 0x${cmd.toString(16)}`);
      }
      const got = reports(l);
      assert.ok(got.length >= 6 && got.every((r) => r.reason === BadAccess.MEMORY));
      await stillWorks(l, 25);
    });
  });
}

// ---- any access sequence, real core (property) --------------------------------------------------

/**
 * Arbitrary accesses after a real bring-up: register offsets near the defined ones and anywhere,
 * every width, values that are often meaningful (status bits, queue indexes, ring addresses in
 * guest memory), so the core and the device really act on them: queues enabled over garbage,
 * notifications that make the device walk garbage rings. Nothing may throw out of the bus call,
 * every refusal carries a known reason, and the device ends in a state a reset recovers from.
 */
const REASONS = new Set<string>(Object.values(BadAccess));
const value = fc.oneof(
  fc.integer({ min: 0, max: 0xff }),
  fc.constantFrom(0, 1, 0xffff, 0xffff_ffff, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK),
  fc.integer({ min: 0, max: 0xffff_ffff }),
  fc.integer({ min: 0, max: MEM }).map((a) => a & ~0xf),
);

async function recoverable(l: Live): Promise<void> {
  for (const r of l.bad) assert.ok(REASONS.has(r.reason), `unknown reason ${r.reason}`);
  l.bad.length = 0;
  l.driver = null;
  // driver/content/10: a reset takes the device back, whatever the accesses did.
  l.driver = await VirtioDriver.init(l.pair.driver, {
    wantedFeatures: ((1n << 128n) - 1n) & ~F.RING_PACKED,
    dma: new DmaAllocator(DMA_BASE, MEM - DMA_BASE),
    queueSizes: [64],
  });
  l.blk = new BlkDriver(l.driver.context);
  await stillWorks(l, 99);
}

describe('bad accesses: any sequence on a live device never throws (property, real DeviceCore)', () => {
  const runs = { numRuns: 40 };
  const TP = { timeout: 120_000 };

  // Found by the property below: MSI-X switched off behind the driver's back moves the legacy
  // device config (4.1.4.10: 20 without MSI-X, 24 with); the driver re-programs MSI-X at reset.
  for (const kind of [TransportKind.PCI_MODERN, TransportKind.PCI_LEGACY]) {
    it(`${kind}: MSI-X turned off from outside is set up again by the driver's reset, and the device works`, TP, async () => {
      const l = await live(kind);
      const p = pci(l);
      let cap = p.configRead(PciCfg.CAPABILITIES_POINTER, 1) & 0xfc;
      for (let n = 0; n < 48 && cap !== 0 && p.configRead(cap, 1) !== PCI_CAP_ID_MSIX; n++) cap = p.configRead(cap + 1, 1) & 0xfc;
      assert.ok(cap !== 0, 'the function has an MSI-X capability');
      assert.ok((p.configRead(cap + Msix.CTRL, 2) & Msix.CTRL_ENABLE) !== 0, 'the driver turned MSI-X on');
      p.configWrite(cap, 4, 0);
      assert.equal(p.configRead(cap + Msix.CTRL, 2) & Msix.CTRL_ENABLE, 0, 'now off');
      await recoverable(l);
      assert.ok((p.configRead(cap + Msix.CTRL, 2) & Msix.CTRL_ENABLE) !== 0, 'on again after the reset');
    });
  }

  for (const kind of [TransportKind.PCI_MODERN, TransportKind.PCI_LEGACY]) {
    it(`${kind}: BAR and configuration accesses`, TP, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              cfg: fc.boolean(),
              bar: fc.constantFrom(PciBar.LEGACY_IO, PciBar.MSIX, PciBar.MODERN, PciBar.MODERN, 3),
              off: fc.oneof(fc.integer({ min: 0, max: 0x40 }), fc.integer({ min: 0, max: 0x4010 }), fc.integer({ min: 0, max: 0x100 })),
              width: fc.constantFrom(0, 1, 2, 2, 4, 4, 8),
              value,
              write: fc.boolean(),
            }),
            { maxLength: 80 },
          ),
          async (ops) => {
            const l = await live(kind);
            const p = pci(l);
            for (const o of ops) {
              if (o.cfg) {
                if (o.write) p.configWrite(o.off & 0xff, o.width, o.value);
                else assert.equal(typeof p.configRead(o.off & 0xff, o.width), 'number');
              } else if (o.write) p.barWrite(o.bar, o.off, o.width, o.value);
              else assert.equal(typeof p.barRead(o.bar, o.off, o.width), 'number');
            }
            await Promise.resolve();
            // Memory and I/O decoding back on (a sequence may have cleared the command register).
            p.configWrite(PciCfg.COMMAND, 2, 7);
            await recoverable(l);
          },
        ),
        runs,
      );
    });
  }

  for (const kind of [TransportKind.MMIO, TransportKind.MMIO_LEGACY]) {
    it(`${kind}: register accesses`, TP, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              off: fc.oneof(fc.integer({ min: 0, max: 0x40 }).map((x) => x * 4), fc.integer({ min: 0, max: 0x180 })),
              width: fc.constantFrom(0, 1, 2, 4, 4, 4, 8),
              value,
              write: fc.boolean(),
            }),
            { maxLength: 80 },
          ),
          async (ops) => {
            const l = await live(kind);
            const m = mmio(l);
            for (const o of ops) {
              if (o.write) m.write(o.off, o.width, o.value);
              else assert.equal(typeof m.read(o.off, o.width), 'number');
            }
            await Promise.resolve();
            await recoverable(l);
          },
        ),
        runs,
      );
    });
  }

  for (const kind of [TransportKind.CCW_REV2, TransportKind.CCW_REV0]) {
    it(`${kind}: channel commands and notification hypercalls`, TP, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              cmd: fc.oneof(fc.constantFrom(...Object.values(CcwCmd)), fc.integer({ min: 0, max: 0xff })),
              count: fc.oneof(fc.constantFrom(0, 1, 4, 5, 8, 16, 25, 32), fc.integer({ min: 0, max: 0x2000 })),
              flags: fc.constantFrom(0, CcwFlag.SLI),
              bytes: fc.uint8Array({ minLength: 32, maxLength: 32 }),
              addr: fc.oneof(fc.constant(CCW_DATA), fc.integer({ min: 0, max: MEM + 0x1000 })),
              hypercall: fc.boolean(),
              q: fc.integer({ min: 0, max: 3 }),
            }),
            { maxLength: 60 },
          ),
          async (ops) => {
            const l = await live(kind);
            const c = ccw(l);
            for (const o of ops) {
              if (o.hypercall) {
                assert.equal(typeof c.hypercallNotify(0x0001_0000, o.q), 'number');
                continue;
              }
              l.mem.write(CCW_DATA, o.bytes);
              const r = c.execute(o.cmd, o.addr, o.count, o.flags);
              assert.ok(Object.values(CcwStatus).includes(r.status));
            }
            await Promise.resolve();
            await recoverable(l);
          },
        ),
        runs,
      );
    });
  }
});
