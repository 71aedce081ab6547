/**
 * Normative statements of 4.1 (Virtio Over PCI Bus), the device's requirements, proven against
 * the real DeviceCore behind the PCI device transport and the library's PCI driver transport,
 * with a PCI function in between that records (and, for some tests, alters) configuration
 * cycles and BAR accesses (pci-rig.ts). The driver's requirements: transport-pci-driver-rules.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { CapField, CommonCfg, Msix, NO_VECTOR, PciBar, PciCfg, VirtioPciCap } from '../../src/transport/pci/constants.js';
import type { PciDeviceOptions } from '../../src/transport/pci/pci-device.js';
import { commonOff, device, payload, rig, start } from './pci-rig.js';
import { roundTrip } from './rig.js';

describe('4.1 PCI: device requirements', () => {
  it('device/transport-pci/21, 22, 24: queue_reset reads 0 once enabled; writing 1 resets the queue; then queue_reset and queue_enable read 0', () => {
    const r = rig();
    const drv = start(r);
    assert.ok((drv.features & F.RING_RESET) !== 0n);
    const p = payload(48, 2);
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(1), () => drv.kick(1), p).data, p);
    const cr = (f: number, w: number): number => r.t.barRead(PciBar.MODERN, commonOff(r, f), w);
    const cw = (f: number, w: number, v: number): void => r.t.barWrite(PciBar.MODERN, commonOff(r, f), w, v);
    cw(CommonCfg.QUEUE_SELECT, 2, 1);
    assert.equal(cr(CommonCfg.QUEUE_ENABLE, 2), 1);
    assert.equal(cr(CommonCfg.QUEUE_RESET, 2), 0, 'device/transport-pci/21');
    assert.ok(r.core().queue(1));
    cw(CommonCfg.QUEUE_RESET, 2, 1);
    assert.deepEqual(r.dev.queueResets, [1], 'device/transport-pci/22');
    assert.equal(r.core().queue(1), null);
    assert.equal(cr(CommonCfg.QUEUE_RESET, 2), 0, 'device/transport-pci/24');
    assert.equal(cr(CommonCfg.QUEUE_ENABLE, 2), 0, 'device/transport-pci/24');
    // The queue's registers are back to their defaults: the maximum size, no vector.
    assert.equal(cr(CommonCfg.QUEUE_SIZE, 2), 64);
    assert.equal(cr(CommonCfg.QUEUE_MSIX_VECTOR, 2), NO_VECTOR);
    // Queue 0 is untouched and still serves.
    assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
    drv.reset();
  });

  it('device/transport-pci/29, 33, 34: the notification capability offset is 4-byte aligned and notify_off_multiplier a power of 2 multiple of 4 (or 0)', () => {
    for (const opts of [{}, { modernIoBar: true }, { notifyOffMultiplier: 0 }, { notifyOffMultiplier: 8 }, { notifyOffMultiplier: 0x1000 }] as PciDeviceOptions[]) {
      const r = device(opts);
      // The device offers NOTIFICATION_DATA: the stricter rules (/33, /34) apply, implying /29.
      assert.ok((r.core().deviceFeatures() & F.NOTIFICATION_DATA) !== 0n);
      const p = r.t.caps.notify;
      assert.equal(r.t.configRead(p + CapField.CFG_TYPE, 1), VirtioPciCap.NOTIFY_CFG);
      const off = r.t.configRead(p + CapField.OFFSET, 4);
      assert.equal(off % 4, 0);
      assert.equal(off % 2, 0);
      const mult = r.t.configRead(p + CapField.EXTRA, 4);
      assert.ok(mult === 0 || ((mult & (mult - 1)) === 0 && mult % 4 === 0), `multiplier ${mult}`);
      assert.equal(mult, opts.notifyOffMultiplier ?? 4);
    }
  });

  it('device/transport-pci/42: the device-specific configuration offset is 4-byte aligned (memory and I/O BAR layouts)', () => {
    for (const modernIoBar of [false, true]) {
      for (const queues of [[8], [8, 8, 8], [8, 8, 8, 8, 8, 8, 8]]) {
        const r = device({ modernIoBar }, new EchoDevice({ queues }));
        const p = r.t.caps.device;
        assert.ok(p > 0);
        assert.equal(r.t.configRead(p + CapField.CFG_TYPE, 1), VirtioPciCap.DEVICE_CFG);
        assert.equal(r.t.configRead(p + CapField.OFFSET, 4) % 4, 0);
      }
    }
  });

  it('device/transport-pci/51, 53: an MSI-X table of at least 2 and at most 0x800 vectors, by default one per queue plus configuration', () => {
    for (const [queues, want] of [
      [[8], 2],
      [[8, 8], 3],
      [[8, 8, 8, 8], 5],
    ] as const) {
      const r = device({}, new EchoDevice({ queues: [...queues] }));
      const ctrl = r.t.configRead(r.t.caps.msix + Msix.CTRL, 2);
      assert.equal((ctrl & Msix.CTRL_SIZE_MASK) + 1, want);
    }
    const big = device({ msixVectors: 0x1000 });
    assert.equal((big.t.configRead(big.t.caps.msix + Msix.CTRL, 2) & Msix.CTRL_SIZE_MASK) + 1, 0x800);
  });

  it('device/transport-pci/55, 58: any event maps to any valid vector, and unmapping (NO_VECTOR) any event stops its messages', () => {
    const r = rig({ msixVectors: 4 });
    const drv = start(r);
    const msgs: number[] = [];
    r.bus.onMsi = (_a, v) => msgs.push(v);
    const cr = (f: number, w: number): number => r.t.barRead(PciBar.MODERN, commonOff(r, f), w);
    const cw = (f: number, w: number, v: number): void => r.t.barWrite(PciBar.MODERN, commonOff(r, f), w, v);
    // device/transport-pci/58: every mapping within the table succeeds.
    for (let v = 0; v < 4; v++) {
      cw(CommonCfg.CONFIG_MSIX_VECTOR, 2, v);
      assert.equal(cr(CommonCfg.CONFIG_MSIX_VECTOR, 2), v);
      for (let q = 0; q < 2; q++) {
        cw(CommonCfg.QUEUE_SELECT, 2, q);
        cw(CommonCfg.QUEUE_MSIX_VECTOR, 2, v);
        assert.equal(cr(CommonCfg.QUEUE_MSIX_VECTOR, 2), v);
      }
    }
    cw(CommonCfg.CONFIG_MSIX_VECTOR, 2, 2);
    cw(CommonCfg.QUEUE_SELECT, 2, 0);
    cw(CommonCfg.QUEUE_MSIX_VECTOR, 2, 1);
    r.t.usedBuffer(0);
    r.t.configChange();
    assert.deepEqual(msgs, [1, 2]);
    // device/transport-pci/55: unmap both event types.
    cw(CommonCfg.CONFIG_MSIX_VECTOR, 2, NO_VECTOR);
    cw(CommonCfg.QUEUE_MSIX_VECTOR, 2, NO_VECTOR);
    assert.equal(cr(CommonCfg.CONFIG_MSIX_VECTOR, 2), NO_VECTOR);
    assert.equal(cr(CommonCfg.QUEUE_MSIX_VECTOR, 2), NO_VECTOR);
    msgs.length = 0;
    r.t.usedBuffer(0);
    r.t.configChange();
    assert.deepEqual(msgs, []);
    drv.reset();
  });

  it('device/transport-pci/16: driver_feature presents the bits the driver wrote, invalid ones included', () => {
    const r = device();
    const cr = (f: number, w: number): number => r.t.barRead(PciBar.MODERN, commonOff(r, f), w);
    const cw = (f: number, w: number, v: number): void => r.t.barWrite(PciBar.MODERN, commonOff(r, f), w, v);
    cw(CommonCfg.DEVICE_STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER);
    cw(CommonCfg.DRIVER_FEATURE_SELECT, 4, 0);
    cw(CommonCfg.DRIVER_FEATURE, 4, 0xdead_beef);
    assert.equal(cr(CommonCfg.DRIVER_FEATURE, 4), 0xdead_beef);
    // Not offered, so FEATURES_OK is refused.
    cw(CommonCfg.DEVICE_STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.equal(cr(CommonCfg.DEVICE_STATUS, 1) & Status.FEATURES_OK, 0);
  });

  it('device/transport-pci/4, driver/transport-pci/4: the subsystem vendor id may reflect the environment and the driver matches any', () => {
    for (const sub of [0x1af4, 0x1b36, 0x8086, 0xffff]) {
      const r = rig({ subsystemVendorId: sub });
      assert.equal(r.t.configRead(PciCfg.SUBSYSTEM_VENDOR_ID, 2), sub);
      const drv = start(r);
      const p = payload(16, sub & 0xff);
      assert.deepEqual(roundTrip(r.mem, r.dma, drv.queue(0), () => drv.kick(0), p).data, p);
      drv.reset();
    }
  });
});
