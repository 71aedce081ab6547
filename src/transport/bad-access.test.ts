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
import { Status } from '../spec/status.js';
import { BadAccess } from './bus.js';
import { TransportKind } from './loopback.js';
import { CommonCfg, LegacyReg, NO_VECTOR, PciBar, PciCfg, PCI_VENDOR_VIRTIO } from './pci/constants.js';
import { PciDeviceTransport } from './pci/pci-device.js';
import { SECTORS, T, core, expectReports, live, pci, reports, setup, stillWorks } from './bad-access-rig.js';

// ---- PCI -----------------------------------------------------------------------------------


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
