import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GuestMemory } from '../../memory/guest-memory.js';
import { F } from '../../spec/features.js';
import { legacySplitLayout } from '../../spec/ring.js';
import { Status } from '../../spec/status.js';
import { BadAccess, type BadAccessReport, LoopbackBus } from '../bus.js';
import { TestCore, stubDevice } from '../test-core.js';
import { CapField, CommonCfg, LegacyReg, ModernBarLayout, Msix, NO_VECTOR, PciBar, PciCfg, PciCommand, PciStatus, VirtioPciCap } from './constants.js';
import { PciDeviceTransport, type PciDeviceOptions } from './pci-device.js';
import { PciDriverTransport } from './pci-driver.js';

function setup(opts: PciDeviceOptions = {}, dev = stubDevice()) {
  const mem = GuestMemory.allocate(1 << 20);
  const bus = new LoopbackBus(mem);
  const cores: TestCore[] = [];
  const bad: BadAccessReport[] = [];
  const t = new PciDeviceTransport(bus, TestCore.factory(dev, mem, cores), { ...opts, onBadAccess: (b) => bad.push(b) });
  const core = () => cores.at(-1)!;
  const cr = (off: number, w: number) => t.barRead(PciBar.MODERN, ModernBarLayout.COMMON + off, w);
  const cw = (off: number, w: number, v: number) => t.barWrite(PciBar.MODERN, ModernBarLayout.COMMON + off, w, v);
  return { mem, bus, t, cores, core, bad, dev, cr, cw };
}

function negotiate(cw: (o: number, w: number, v: number) => void, features: bigint): void {
  cw(CommonCfg.DEVICE_STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER);
  cw(CommonCfg.DRIVER_FEATURE_SELECT, 4, 0);
  cw(CommonCfg.DRIVER_FEATURE, 4, Number(features & 0xffffffffn));
  cw(CommonCfg.DRIVER_FEATURE_SELECT, 4, 1);
  cw(CommonCfg.DRIVER_FEATURE, 4, Number(features >> 32n));
  cw(CommonCfg.DEVICE_STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
}

/** Capabilities as a driver sees them: [offset, cap id, cfg_type]. */
function walkCaps(t: PciDeviceTransport): [number, number, number][] {
  const out: [number, number, number][] = [];
  let p = t.configRead(PciCfg.CAPABILITIES_POINTER, 1);
  for (let i = 0; i < 48 && p !== 0; i++) {
    out.push([p, t.configRead(p, 1), t.configRead(p + 3, 1)]);
    p = t.configRead(p + 1, 1);
  }
  return out;
}

describe('PCI configuration space', () => {
  it('device/transport-pci/2 /3 /5 /6 /7: vendor 0x1af4, device 0x1040 + id, revision 1, subsystem >= 0x40', () => {
    const { t } = setup();
    assert.equal(t.configRead(PciCfg.VENDOR_ID, 2), 0x1af4);
    assert.equal(t.configRead(PciCfg.DEVICE_ID, 2), 0x1044);
    assert.ok(t.configRead(PciCfg.REVISION_ID, 1) >= 1);
    assert.ok(t.configRead(PciCfg.SUBSYSTEM_ID, 2) >= 0x40);
    assert.ok(t.configRead(PciCfg.STATUS, 2) & PciStatus.CAP_LIST);
  });

  it('device/transport-pci/3: transitional devices use the transitional id, subsystem id = device id, revision 0', () => {
    const { t } = setup({ transitional: true }, stubDevice({ deviceId: 2 }));
    assert.equal(t.configRead(PciCfg.DEVICE_ID, 2), 0x1001);
    assert.equal(t.configRead(PciCfg.SUBSYSTEM_ID, 2), 2);
    assert.equal(t.configRead(PciCfg.REVISION_ID, 1), 0);
    assert.equal(t.barIsIo(0), true);
  });

  it('device/transport-pci/13 /28 /37 /48 /9 /12: the virtio capabilities, aligned, lengths covering their structures', () => {
    const { t } = setup();
    const caps = walkCaps(t);
    const types = caps.filter(([, id]) => id === 0x09).map(([, , type]) => type);
    assert.deepEqual(types, [VirtioPciCap.COMMON_CFG, VirtioPciCap.NOTIFY_CFG, VirtioPciCap.ISR_CFG, VirtioPciCap.DEVICE_CFG, VirtioPciCap.PCI_CFG]);
    assert.equal(caps.filter(([, id]) => id === 0x11).length, 1);
    for (const [p, id, type] of caps) {
      assert.equal(p % 4, 0);
      if (id !== 0x09) continue;
      const len = t.configRead(p + CapField.LEN, 1);
      assert.ok(len >= (type === VirtioPciCap.NOTIFY_CFG || type === VirtioPciCap.PCI_CFG ? 20 : 16));
      const bar = t.configRead(p + CapField.BAR, 1);
      const off = t.configRead(p + CapField.OFFSET, 4);
      const length = t.configRead(p + CapField.LENGTH, 4);
      if (type === VirtioPciCap.PCI_CFG) continue;
      assert.equal(off % 4, 0, 'device/transport-pci/12');
      // device/transport-pci/43: inside the BAR.
      assert.ok(off + length <= t.barSize(bar));
    }
  });

  it('device/transport-pci/30 /31 /32 /35 /36: notify_off_multiplier and a notify length covering every queue', () => {
    const { t, cr, cw } = setup();
    const p = t.caps.notify;
    const mult = t.configRead(p + CapField.EXTRA, 4);
    assert.ok(mult === 0 || (mult & (mult - 1)) === 0);
    assert.equal(mult % 4, 0);
    const len = t.configRead(p + CapField.LENGTH, 4);
    for (let q = 0; q < 2; q++) {
      cw(CommonCfg.QUEUE_SELECT, 2, q);
      assert.ok(len >= cr(CommonCfg.QUEUE_NOTIFY_OFF, 2) * mult + 4);
    }
  });

  it('device/transport-pci/43 /44: shared memory capabilities (cap64) with unique ids inside BAR2', () => {
    const { t } = setup({}, stubDevice({ sharedMemoryRegions: [{ id: 0, length: 0x20000 }, { id: 3, length: 0x1000 }] }));
    const shm = walkCaps(t).filter(([, id, type]) => id === 0x09 && type === VirtioPciCap.SHARED_MEMORY_CFG);
    assert.equal(shm.length, 2);
    const ids = shm.map(([p]) => t.configRead(p + CapField.ID, 1));
    assert.deepEqual(ids, [0, 3]);
    for (const [p] of shm) {
      assert.equal(t.configRead(p + CapField.LEN, 1), 24);
      assert.equal(t.configRead(p + CapField.BAR, 1), PciBar.SHM);
      const off = t.configRead(p + CapField.OFFSET, 4) + t.configRead(p + CapField.EXTRA, 4) * 2 ** 32;
      const len = t.configRead(p + CapField.LENGTH, 4) + t.configRead(p + CapField.EXTRA2, 4) * 2 ** 32;
      assert.ok(off + len <= t.barSize(PciBar.SHM));
    }
    assert.equal(t.configRead(shm[0]![0] + CapField.LENGTH, 4), 0x20000);
  });

  it('BAR sizing: writing all ones reads back the size mask and the type bits', () => {
    const { t } = setup({ transitional: true });
    const bar4 = PciCfg.BAR0 + 16;
    t.configWrite(bar4, 4, 0xffffffff);
    const v = t.configRead(bar4, 4);
    assert.equal(v & 0xf, 4, '64-bit memory BAR');
    assert.equal(((~(v & ~0xf) >>> 0) + 1) >>> 0, t.barSize(4));
    t.configWrite(bar4, 4, 0xfe000000);
    t.configWrite(bar4 + 4, 4, 1);
    assert.equal(t.barAddress(4), 0x1_fe00_0000);
    t.configWrite(PciCfg.BAR0, 4, 0xffffffff);
    assert.equal(t.configRead(PciCfg.BAR0, 4) & 3, 1, 'I/O BAR');
  });

  it('device/transport-pci/49 /50: the PCI configuration access capability reads and writes a BAR', () => {
    const { t, cr } = setup();
    const c = t.caps.pciCfg;
    t.configWrite(c + CapField.BAR, 1, PciBar.MODERN);
    t.configWrite(c + CapField.LENGTH, 4, 2);
    t.configWrite(c + CapField.OFFSET, 4, CommonCfg.NUM_QUEUES);
    assert.equal(t.configRead(c + CapField.EXTRA, 4) & 0xffff, 2);
    t.configWrite(c + CapField.LENGTH, 4, 1);
    t.configWrite(c + CapField.OFFSET, 4, CommonCfg.DEVICE_STATUS);
    t.configWrite(c + CapField.EXTRA, 4, Status.ACKNOWLEDGE);
    assert.equal(cr(CommonCfg.DEVICE_STATUS, 1), Status.ACKNOWLEDGE);
  });

  it('writes into read-only capability bytes change nothing and are reported', () => {
    const { t, bad } = setup();
    const before = t.configRead(t.caps.common + CapField.OFFSET, 4);
    t.configWrite(t.caps.common + CapField.OFFSET, 4, 0x1234);
    assert.equal(t.configRead(t.caps.common + CapField.OFFSET, 4), before);
    assert.equal(bad.at(-1)!.reason, BadAccess.READ_ONLY);
    t.configRead(3, 2);
    assert.equal(bad.at(-1)!.reason, BadAccess.WIDTH);
    assert.equal(t.configRead(0x100, 4), 0);
    assert.equal(bad.at(-1)!.reason, BadAccess.OFFSET);
  });
});

describe('PCI common configuration', () => {
  it('device/transport-pci/14 /15: feature windows by select', () => {
    const { cr, cw } = setup();
    cw(CommonCfg.DEVICE_FEATURE_SELECT, 4, 1);
    assert.equal(cr(CommonCfg.DEVICE_FEATURE, 4), Number((F.VERSION_1 | F.RING_RESET | F.NOTIFICATION_DATA) >> 32n));
    cw(CommonCfg.DEVICE_FEATURE_SELECT, 4, 5);
    assert.equal(cr(CommonCfg.DEVICE_FEATURE, 4), 0);
    cw(CommonCfg.DRIVER_FEATURE_SELECT, 4, 1);
    cw(CommonCfg.DRIVER_FEATURE, 4, 1);
    assert.equal(cr(CommonCfg.DRIVER_FEATURE, 4), 1);
  });

  it('device/transport-pci/25 /26: queue_size is the max after reset, 0 for an unavailable queue; non powers of two refused', () => {
    const { cr, cw, core, bad } = setup();
    assert.equal(cr(CommonCfg.NUM_QUEUES, 2), 2);
    cw(CommonCfg.QUEUE_SELECT, 2, 1);
    assert.equal(cr(CommonCfg.QUEUE_SIZE, 2), 128);
    cw(CommonCfg.QUEUE_SIZE, 2, 100);
    assert.equal(cr(CommonCfg.QUEUE_SIZE, 2), 128);
    assert.equal(bad.at(-1)!.reason, BadAccess.VALUE);
    cw(CommonCfg.QUEUE_SIZE, 2, 64);
    assert.equal(core().queueRegisters(1)!.size, 64);
    cw(CommonCfg.QUEUE_SELECT, 2, 7);
    assert.equal(cr(CommonCfg.QUEUE_SIZE, 2), 0);
    assert.equal(cr(CommonCfg.QUEUE_ENABLE, 2), 0);
  });

  it('device/transport-pci/8: 64-bit queue addresses through either 32-bit half or whole', () => {
    const { cr, cw, core } = setup();
    cw(CommonCfg.QUEUE_DESC, 4, 0x2000);
    cw(CommonCfg.QUEUE_DESC + 4, 4, 2);
    cw(CommonCfg.QUEUE_DRIVER, 8, 0x3_0000_4000);
    assert.equal(core().queueRegisters(0)!.descAddr, 0x2_0000_2000);
    assert.equal(cr(CommonCfg.QUEUE_DESC + 4, 4), 2);
    assert.equal(cr(CommonCfg.QUEUE_DRIVER, 8), 0x3_0000_4000);
    assert.equal(cr(CommonCfg.QUEUE_DRIVER, 4), 0x4000);
  });

  it('read-only fields and queue_enable 0 are refused', () => {
    const { cr, cw, bad } = setup();
    cw(CommonCfg.NUM_QUEUES, 2, 9);
    cw(CommonCfg.CONFIG_GENERATION, 1, 9);
    cw(CommonCfg.QUEUE_NOTIFY_OFF, 2, 9);
    cw(CommonCfg.QUEUE_ENABLE, 2, 0);
    assert.equal(cr(CommonCfg.NUM_QUEUES, 2), 2);
    assert.deepEqual(
      bad.map((b) => b.reason),
      [BadAccess.READ_ONLY, BadAccess.READ_ONLY, BadAccess.READ_ONLY, BadAccess.VALUE],
    );
  });

  it('wrong widths on common fields are refused', () => {
    const { cr, cw, core, bad } = setup();
    cw(CommonCfg.DEVICE_STATUS, 2, 1);
    cw(CommonCfg.QUEUE_SELECT, 4, 1);
    assert.equal(cr(CommonCfg.NUM_QUEUES, 4), 0);
    assert.equal(cr(CommonCfg.QUEUE_DESC + 2, 4), 0);
    assert.equal(core().status, 0);
    assert.ok(bad.every((b) => b.reason === BadAccess.WIDTH));
    assert.equal(bad.length, 4);
  });

  it('device/transport-pci/18 /19 /57: reset clears status, queue_enable and every vector mapping', () => {
    const { cr, cw, core } = setup();
    negotiate(cw, F.VERSION_1);
    cw(CommonCfg.CONFIG_MSIX_VECTOR, 2, 0);
    cw(CommonCfg.QUEUE_MSIX_VECTOR, 2, 1);
    cw(CommonCfg.QUEUE_SIZE, 2, 64);
    cw(CommonCfg.QUEUE_ENABLE, 2, 1);
    assert.equal(cr(CommonCfg.QUEUE_ENABLE, 2), 1);
    cw(CommonCfg.DEVICE_STATUS, 1, 0);
    assert.equal(cr(CommonCfg.QUEUE_SIZE, 2), 256, 'queue_size back to the maximum');
    assert.equal(cr(CommonCfg.DEVICE_STATUS, 1), 0);
    assert.equal(cr(CommonCfg.QUEUE_ENABLE, 2), 0);
    assert.equal(cr(CommonCfg.CONFIG_MSIX_VECTOR, 2), NO_VECTOR);
    assert.equal(cr(CommonCfg.QUEUE_MSIX_VECTOR, 2), NO_VECTOR);
    assert.equal(core().deviceResets, 1);
  });

  it('device/transport-pci/20, /21, /22, /24 (a reset completes within the write, so /23 never arises): queue_reset resets the queue and reads 0 with queue_enable 0', () => {
    const { cr, cw, core, bad } = setup();
    negotiate(cw, F.VERSION_1 | F.RING_RESET);
    cw(CommonCfg.QUEUE_SELECT, 2, 1);
    assert.equal(cr(CommonCfg.QUEUE_RESET, 2), 0);
    cw(CommonCfg.QUEUE_ENABLE, 2, 1);
    assert.equal(cr(CommonCfg.QUEUE_RESET, 2), 0);
    cw(CommonCfg.QUEUE_RESET, 2, 1);
    assert.deepEqual(core().resets, [1]);
    assert.equal(cr(CommonCfg.QUEUE_RESET, 2), 0);
    assert.equal(cr(CommonCfg.QUEUE_ENABLE, 2), 0);
    cw(CommonCfg.DEVICE_STATUS, 1, 0);
    negotiate(cw, F.VERSION_1);
    cw(CommonCfg.QUEUE_RESET, 2, 1);
    assert.equal(bad.at(-1)!.reason, BadAccess.MODE);
  });

  it('device/transport-pci/17: config_generation comes from the core', () => {
    const { cr, core } = setup();
    core().configGeneration = 0x105;
    assert.equal(cr(CommonCfg.CONFIG_GENERATION, 1), 5);
  });
});

describe('PCI notifications and interrupts', () => {
  it('a 16-bit notification at the queue notify address; disabled queues ignored', () => {
    const { t, cr, cw, core, bad } = setup();
    negotiate(cw, F.VERSION_1);
    cw(CommonCfg.QUEUE_SELECT, 2, 1);
    const off = cr(CommonCfg.QUEUE_NOTIFY_OFF, 2) * t.notifyOffMultiplier;
    t.barWrite(PciBar.MODERN, ModernBarLayout.NOTIFY + off, 2, 1);
    assert.deepEqual(core().notifications, []);
    assert.equal(bad.at(-1)!.reason, BadAccess.QUEUE_DISABLED);
    cw(CommonCfg.QUEUE_ENABLE, 2, 1);
    t.barWrite(PciBar.MODERN, ModernBarLayout.NOTIFY + off, 2, 1);
    assert.deepEqual(core().notifications, [{ index: 1, data: undefined }]);
    t.barWrite(PciBar.MODERN, ModernBarLayout.NOTIFY + 2, 2, 1);
    assert.equal(bad.at(-1)!.reason, BadAccess.OFFSET, 'not a queue notify address');
    t.barWrite(PciBar.MODERN, ModernBarLayout.NOTIFY + 100, 2, 1);
    assert.equal(bad.at(-1)!.reason, BadAccess.OFFSET, 'outside the notify region');
  });

  it('32-bit notification data with NOTIFICATION_DATA', () => {
    const { t, cw, core } = setup();
    negotiate(cw, F.VERSION_1 | F.NOTIFICATION_DATA);
    cw(CommonCfg.QUEUE_ENABLE, 2, 1);
    t.barWrite(PciBar.MODERN, ModernBarLayout.NOTIFY, 4, 0x8003_0000);
    assert.deepEqual(core().notifications, [{ index: 0, data: 0x8003_0000 }]);
  });

  it('notify_off_multiplier 0: every queue shares one address, the value names the queue', () => {
    const { t, cw, core } = setup({ notifyOffMultiplier: 0 });
    negotiate(cw, F.VERSION_1);
    cw(CommonCfg.QUEUE_SELECT, 2, 1);
    cw(CommonCfg.QUEUE_ENABLE, 2, 1);
    t.barWrite(PciBar.MODERN, ModernBarLayout.NOTIFY, 2, 1);
    assert.deepEqual(core().notifications, [{ index: 1, data: undefined }]);
  });

  it('device/transport-pci/38 /39 /40 /41: INTx: ISR bits, PCI status interrupt bit, read clears', () => {
    const { t, bus, bad } = setup({ msixVectors: 0 });
    assert.equal(walkCaps(t).some(([, id]) => id === 0x11), false);
    t.usedBuffer(0);
    assert.equal(bus.irqLevel, true);
    assert.ok(t.configRead(PciCfg.STATUS, 2) & PciStatus.INTERRUPT);
    t.configChange();
    assert.equal(t.barRead(PciBar.MODERN, ModernBarLayout.ISR, 1), 3);
    assert.equal(bus.irqLevel, false);
    assert.equal(t.configRead(PciCfg.STATUS, 2) & PciStatus.INTERRUPT, 0);
    assert.equal(t.barRead(PciBar.MODERN, ModernBarLayout.ISR, 1), 0);
    t.barWrite(PciBar.MODERN, ModernBarLayout.ISR, 1, 1);
    assert.equal(bad.at(-1)!.reason, BadAccess.READ_ONLY);
    // Interrupt Disable in the command register keeps the line low.
    t.configWrite(PciCfg.COMMAND, 2, PciCommand.INTX_DISABLE);
    t.usedBuffer(0);
    assert.equal(bus.irqLevel, false);
  });

  it('device/transport-pci/52 /54 /56 /59: MSI-X table size, mapping, NO_VECTOR on failure', () => {
    const { t, cr, cw, bad } = setup({ msixVectors: 3 });
    assert.equal((t.configRead(t.caps.msix + Msix.CTRL, 2) & Msix.CTRL_SIZE_MASK) + 1, 3);
    cw(CommonCfg.CONFIG_MSIX_VECTOR, 2, 2);
    assert.equal(cr(CommonCfg.CONFIG_MSIX_VECTOR, 2), 2);
    cw(CommonCfg.QUEUE_MSIX_VECTOR, 2, 3);
    assert.equal(cr(CommonCfg.QUEUE_MSIX_VECTOR, 2), NO_VECTOR);
    assert.equal(bad.at(-1)!.reason, BadAccess.VALUE);
    // device/transport-pci/55: unmapping.
    cw(CommonCfg.CONFIG_MSIX_VECTOR, 2, NO_VECTOR);
    assert.equal(cr(CommonCfg.CONFIG_MSIX_VECTOR, 2), NO_VECTOR);
  });

  it('device/transport-pci/60 /61: MSI-X messages per vector, none for NO_VECTOR; masked vectors pend', () => {
    const { t, bus, cw } = setup({ msixVectors: 3 });
    const msgs: [number, number][] = [];
    bus.onMsi = (a, d) => msgs.push([a, d]);
    for (let v = 0; v < 3; v++) {
      t.barWrite(PciBar.MSIX, v * 16 + Msix.ENTRY_ADDR_LO, 4, 0xfee00000);
      t.barWrite(PciBar.MSIX, v * 16 + Msix.ENTRY_DATA, 4, 0x40 + v);
      t.barWrite(PciBar.MSIX, v * 16 + Msix.ENTRY_CTRL, 4, 0);
    }
    t.configWrite(t.caps.msix + Msix.CTRL, 2, Msix.CTRL_ENABLE);
    cw(CommonCfg.QUEUE_SELECT, 2, 0);
    cw(CommonCfg.QUEUE_MSIX_VECTOR, 2, 1);
    cw(CommonCfg.CONFIG_MSIX_VECTOR, 2, 2);
    t.usedBuffer(0);
    t.usedBuffer(1); // NO_VECTOR
    t.configChange();
    assert.deepEqual(msgs, [
      [0xfee00000, 0x41],
      [0xfee00000, 0x42],
    ]);
    assert.equal(bus.irqLevel, false);
    // Mask vector 1: the message pends (PBA bit) and goes out on unmask.
    t.barWrite(PciBar.MSIX, 16 + Msix.ENTRY_CTRL, 4, 1);
    t.usedBuffer(0);
    assert.equal(msgs.length, 2);
    assert.equal(t.barRead(PciBar.MSIX, t.msixTable!.pbaOffset, 4), 2);
    t.barWrite(PciBar.MSIX, 16 + Msix.ENTRY_CTRL, 4, 0);
    assert.equal(msgs.length, 3);
    assert.equal(t.barRead(PciBar.MSIX, t.msixTable!.pbaOffset, 4), 0);
    // Function mask holds everything back.
    t.configWrite(t.caps.msix + Msix.CTRL, 2, Msix.CTRL_ENABLE | Msix.CTRL_MASKALL);
    t.configChange();
    assert.equal(msgs.length, 3);
    t.configWrite(t.caps.msix + Msix.CTRL, 2, Msix.CTRL_ENABLE);
    assert.equal(msgs.length, 4);
  });

  it('device config through the modern BAR: natural widths only, within the config size', () => {
    const { t, dev, bad } = setup();
    const d = ModernBarLayout.DEVICE;
    assert.equal(t.barRead(PciBar.MODERN, d + 4, 4), 0x08070605);
    assert.equal(t.barRead(PciBar.MODERN, d + 1, 2), 0);
    assert.equal(bad.at(-1)!.reason, BadAccess.WIDTH);
    assert.equal(t.barRead(PciBar.MODERN, d + 16, 1), 0);
    assert.equal(bad.at(-1)!.reason, BadAccess.OFFSET);
    t.barWrite(PciBar.MODERN, d + 2, 2, 0xbeef);
    assert.deepEqual([...dev.config.subarray(2, 4)], [0xef, 0xbe]);
  });

  it('never throws for any BAR or configuration access (property)', () => {
    const { t } = setup({ transitional: true });
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            kind: fc.constantFrom('cfg', 'bar'),
            bar: fc.integer({ min: 0, max: 6 }),
            off: fc.oneof(fc.integer({ min: 0, max: 0x40 }), fc.integer({ min: 0, max: 0x4010 }), fc.integer({ min: 0, max: 0x120 })),
            width: fc.constantFrom(0, 1, 2, 3, 4, 8),
            value: fc.integer({ min: 0, max: 0xffffffff }),
            write: fc.boolean(),
          }),
          { maxLength: 60 },
        ),
        (ops) => {
          for (const o of ops) {
            if (o.kind === 'cfg') {
              if (o.write) t.configWrite(o.off, o.width, o.value);
              else assert.equal(typeof t.configRead(o.off, o.width), 'number');
            } else if (o.write) t.barWrite(o.bar, o.off, o.width, o.value);
            else assert.equal(typeof t.barRead(o.bar, o.off, o.width), 'number');
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('PCI legacy I/O BAR (transitional)', () => {
  it('the first legacy access switches the core to the legacy interface; header layout without MSI-X', () => {
    const { t, cores, core } = setup({ transitional: true, msixVectors: 0, guestLittleEndian: false });
    assert.equal(t.barRead(PciBar.LEGACY_IO, LegacyReg.STATUS, 1), 0);
    assert.equal(cores.length, 2);
    assert.deepEqual(core().mode, { legacy: true, littleEndian: false });
    assert.equal(t.barRead(PciBar.LEGACY_IO, LegacyReg.HOST_FEATURES, 4), 0, 'only bits 0-31, no VERSION_1');
    t.barWrite(PciBar.LEGACY_IO, LegacyReg.QUEUE_SELECT, 2, 1);
    assert.equal(t.barRead(PciBar.LEGACY_IO, LegacyReg.QUEUE_SIZE, 2), 128);
    assert.equal(t.barRead(PciBar.LEGACY_IO, LegacyReg.CONFIG_NO_MSIX, 1), 1);
    assert.equal(t.barRead(PciBar.LEGACY_IO, LegacyReg.CONFIG_NO_MSIX + 1, 4), 0x05040302, 'any width, unaligned');
  });

  it('legacy queue PFN, notify, ISR; a modern access while legacy-driven is refused', () => {
    const { t, core, bus, bad } = setup({ transitional: true, msixVectors: 0 });
    const io = (o: number, w: number, v?: number) => (v === undefined ? t.barRead(PciBar.LEGACY_IO, o, w) : (t.barWrite(PciBar.LEGACY_IO, o, w, v), 0));
    io(LegacyReg.STATUS, 1, 0);
    io(LegacyReg.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER);
    io(LegacyReg.QUEUE_SELECT, 2, 0);
    io(LegacyReg.QUEUE_PFN, 4, 5);
    const r = core().queueRegisters(0)!;
    const l = legacySplitLayout(256, 4096);
    assert.equal(r.descAddr, 5 * 4096);
    assert.equal(r.deviceAddr, 5 * 4096 + l.used);
    assert.equal(r.enabled, true);
    assert.equal(io(LegacyReg.QUEUE_PFN, 4), 5);
    io(LegacyReg.QUEUE_NOTIFY, 2, 0);
    io(LegacyReg.QUEUE_NOTIFY, 2, 1);
    assert.deepEqual(core().notifications, [{ index: 0, data: undefined }]);
    assert.equal(bad.at(-1)!.reason, BadAccess.QUEUE_DISABLED);
    t.usedBuffer(0);
    assert.equal(bus.irqLevel, true);
    assert.equal(io(LegacyReg.ISR, 1), 1);
    assert.equal(bus.irqLevel, false);
    // Modern access to a live legacy device.
    assert.equal(t.barRead(PciBar.MODERN, CommonCfg.NUM_QUEUES, 2), 0);
    assert.equal(bad.at(-1)!.reason, BadAccess.MODE);
    // A modern reset takes it back.
    t.barWrite(PciBar.MODERN, CommonCfg.DEVICE_STATUS, 1, 0);
    assert.equal(t.legacyActive, false);
    assert.equal(t.barRead(PciBar.MODERN, CommonCfg.NUM_QUEUES, 2), 2);
  });

  it('with MSI-X enabled the vector registers appear and the config moves to offset 24', () => {
    const { t } = setup({ transitional: true, msixVectors: 2 });
    t.configWrite(t.caps.msix + Msix.CTRL, 2, Msix.CTRL_ENABLE);
    t.barWrite(PciBar.LEGACY_IO, LegacyReg.CONFIG_MSIX_VECTOR, 2, 1);
    assert.equal(t.barRead(PciBar.LEGACY_IO, LegacyReg.CONFIG_MSIX_VECTOR, 2), 1);
    assert.equal(t.barRead(PciBar.LEGACY_IO, LegacyReg.CONFIG_MSIX, 1), 1);
  });

  it('a non-transitional device has no I/O BAR', () => {
    const { t, bad } = setup();
    assert.equal(t.barRead(PciBar.LEGACY_IO, LegacyReg.STATUS, 1), 0);
    assert.equal(bad.at(-1)!.reason, BadAccess.OFFSET);
  });
});

describe('PCI driver transport', () => {
  function pair(opts: PciDeviceOptions = {}, legacy = false, useMsix = true) {
    const s = setup(opts);
    const d = new PciDriverTransport(s.t, s.mem, { legacy, useMsix });
    s.bus.onMsi = (a, v) => d.handleMsi(a, v);
    s.bus.onIrq = () => d.handleIntx();
    return { ...s, d };
  }

  it('driver/transport-pci/1 /8: discovers the device through its capabilities', () => {
    const { d } = pair();
    assert.equal(d.deviceId, 4);
    assert.equal(d.pciDeviceId, 0x1044);
    assert.equal(d.legacy, false);
    assert.equal(d.msixSize, 3);
    assert.equal(d.numQueues(), 2);
  });

  it('driver/transport-pci/2: matches transitional ids through the subsystem id', () => {
    const { d } = pair({ transitional: true }, true);
    assert.equal(d.deviceId, 4);
    assert.equal(d.pciDeviceId, 0x1005);
    assert.equal(d.legacy, true);
  });

  it('negotiates, sets up queues with vectors, notifies and receives MSI-X interrupts', () => {
    const { d, core, t } = pair();
    const seen: string[] = [];
    d.setInterruptHandler({ used: (q) => seen.push(`u${q}`), configChange: () => seen.push('c') });
    d.setStatus(0);
    d.setStatus(Status.ACKNOWLEDGE);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    assert.equal(d.getDeviceFeatures(), F.VERSION_1 | F.RING_RESET | F.NOTIFICATION_DATA);
    d.setDriverFeatures(F.VERSION_1 | F.RING_RESET);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    d.setupQueue(0, { size: 64, descAddr: 0x1000, driverAddr: 0x2000, deviceAddr: 0x3000 });
    d.setupQueue(1, { size: 32, descAddr: 0x5000, driverAddr: 0x6000, deviceAddr: 0x7000 });
    assert.equal(core().queueRegisters(1)!.msixVector, 2);
    d.notify(1);
    assert.deepEqual(core().notifications, [{ index: 1, data: undefined }]);
    t.usedBuffer(1);
    t.usedBuffer(0);
    t.configChange();
    assert.deepEqual(seen, ['u1', 'u0', 'c']);
    const cfg = new Uint8Array(4);
    d.readConfig(4, cfg);
    assert.deepEqual([...cfg], [5, 6, 7, 8]);
    d.resetQueue(1);
    assert.equal(core().queueRegisters(1)!.enabled, false);
  });

  it('INTx: the driver reads ISR and dispatches', () => {
    const { d, t } = pair({ msixVectors: 0 });
    const seen: string[] = [];
    d.setInterruptHandler({ used: (q) => seen.push(`u${q}`), configChange: () => seen.push('c') });
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    d.setDriverFeatures(F.VERSION_1);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    d.setupQueue(0, { size: 64, descAddr: 0x1000, driverAddr: 0x2000, deviceAddr: 0x3000 });
    t.usedBuffer(0);
    t.configChange();
    assert.deepEqual(seen, ['u0', 'c']);
    assert.equal(t.isrValue, 0);
  });

  it('legacy driver through the I/O BAR with MSI-X', () => {
    const { d, core, t } = pair({ transitional: true }, true);
    const seen: string[] = [];
    d.setInterruptHandler({ used: (q) => seen.push(`u${q}`), configChange: () => seen.push('c') });
    d.setStatus(0);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    d.setDriverFeatures(0n);
    assert.equal(d.numQueues(), 2);
    const size = d.queueMaxSize(0);
    const l = legacySplitLayout(size, 4096);
    d.setupQueue(0, { size, descAddr: 0x10000, driverAddr: 0x10000 + l.avail, deviceAddr: 0x10000 + l.used });
    assert.equal(core().queueRegisters(0)!.enabled, true);
    assert.equal(core().mode.legacy, true);
    d.notify(0);
    assert.deepEqual(core().notifications, [{ index: 0, data: undefined }]);
    t.usedBuffer(0);
    assert.deepEqual(seen, ['u0']);
    const cfg = new Uint8Array(2);
    d.readConfig(0, cfg);
    assert.deepEqual([...cfg], [1, 2]);
    assert.throws(() => d.setupQueue(1, { size: 4, descAddr: 0x30000, driverAddr: 0x30040, deviceAddr: 0x31000 }), { code: 'INVALID_ARGUMENT' });
  });

  it('device/transport-pci/12 /43: modern structures in a compact I/O BAR (modernIoBar), driven end to end', () => {
    const { d, core, t, bad } = pair({ modernIoBar: true, msixVectors: 0 }, false, false);
    // BAR4 is a 32-bit I/O BAR small enough for 16-bit port space; BAR5 is free.
    assert.equal(t.barIsIo(PciBar.MODERN), true);
    assert.ok(t.barSize(PciBar.MODERN) <= 0x100);
    assert.equal(t.barSize(PciBar.MODERN + 1), 0);
    assert.equal(t.configRead(PciCfg.BAR0 + 4 * PciBar.MODERN, 4) & 3, 1);
    const caps = walkCaps(t).filter(([, id]) => id === 0x09);
    const ends: [number, number][] = [];
    for (const [p, , type] of caps) {
      if (type === VirtioPciCap.PCI_CFG) continue;
      assert.equal(t.configRead(p + CapField.BAR, 1), PciBar.MODERN);
      const off = t.configRead(p + CapField.OFFSET, 4);
      const len = t.configRead(p + CapField.LENGTH, 4);
      assert.equal(off % 4, 0, 'device/transport-pci/12');
      assert.ok(off + len <= t.barSize(PciBar.MODERN), 'device/transport-pci/43');
      ends.push([off, off + len]);
    }
    // The structures do not overlap.
    ends.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ends.length; i++) assert.ok(ends[i]![0] >= ends[i - 1]![1]);
    const seen: string[] = [];
    d.setInterruptHandler({ used: (q) => seen.push(`u${q}`), configChange: () => seen.push('c') });
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    d.setDriverFeatures(F.VERSION_1);
    d.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    d.setupQueue(1, { size: 32, descAddr: 0x5000, driverAddr: 0x6000, deviceAddr: 0x7000 });
    d.notify(1);
    assert.deepEqual(core().notifications, [{ index: 1, data: undefined }]);
    t.usedBuffer(1);
    assert.deepEqual(seen, ['u1']);
    const cfg = new Uint8Array(4);
    d.readConfig(4, cfg);
    assert.deepEqual([...cfg], [5, 6, 7, 8]);
    // Past the device configuration: refused, not served from another structure.
    const before = bad.length;
    assert.equal(t.barRead(PciBar.MODERN, t.layout.device + 16, 1), 0);
    assert.equal(bad.slice(before).filter((r) => r.reason === BadAccess.OFFSET).length, 1);
  });

  it('refuses a function that is not virtio', () => {
    const mem = GuestMemory.allocate(4096);
    const fn = { configRead: () => 0x8086, configWrite: () => {}, barRead: () => 0, barWrite: () => {} };
    assert.throws(() => new PciDriverTransport(fn, mem), { code: 'TRANSPORT_BAD_ACCESS' });
  });
});
