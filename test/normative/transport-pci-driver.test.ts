/**
 * Driver rules of 4.1 proven on the library's PCI driver (PciDriverTransport under VirtioDriver):
 * whole driver sessions (initialization, buffers on every queue, queue reset, configuration
 * access, MSI-X fallback, device reset) run through a PCI function that records every access,
 * and each rule is checked on what the driver actually wrote. A device refusing a bad write
 * proves nothing about the driver, so nothing here writes to the device itself.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { F } from '../../src/spec/features.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { CapField, CommonCfg, ModernBarLayout, NO_VECTOR, PCI_CAP_ID_VNDR, PciBar, PciCfg, VirtioPciCap } from '../../src/transport/pci/constants.js';
import { type PciDeviceOptions, PciDeviceTransport } from '../../src/transport/pci/pci-device.js';
import { ALL, type PciAccess, isCommon, rig } from './pci-rig.js';
import { roundTrip } from './rig.js';

const QUEUES = 3;

interface Session {
  readonly t: PciDeviceTransport;
  readonly log: readonly PciAccess[];
  readonly features: bigint;
  /** Buffers made available per queue, in order, for the notification data check. */
  readonly kicks: number;
}

/**
 * One driver session: init with `wanted`, `rounds` buffers on every queue, a queue reset of
 * queue 1 (when RING_RESET is negotiated) with more buffers, a config read and write, and
 * the device reset at the end.
 */
function session(wanted: bigint, opts: PciDeviceOptions = {}, useMsix = true, rounds = 5): Session {
  const { t, fn, mem, dma, d } = rig(opts, new EchoDevice({ queues: Array.from({ length: QUEUES }, () => 64) }), useMsix);
  const drv = VirtioDriver.initSync(d, { wantedFeatures: wanted, dma, queueSizes: [32] });
  let kicks = 0;
  const exercise = (q: number, n: number): void => {
    for (let i = 0; i < n; i++) {
      const p = new Uint8Array(24 + i).fill(q * 16 + i);
      const got = roundTrip(mem, dma, drv.queue(q), () => {
        fn.kicking = q;
        drv.kick(q);
        fn.kicking = -1;
        kicks++;
      }, p);
      assert.deepEqual(got.data, p);
    }
  };
  for (let q = 0; q < QUEUES; q++) exercise(q, rounds);
  if ((drv.features & F.RING_RESET) !== 0n) {
    drv.resetQueue(1);
    exercise(1, rounds);
  }
  drv.context.writeConfig(4, new Uint8Array([1, 2, 3, 4]));
  drv.context.readConfig(0, 16);
  const features = drv.features;
  drv.reset();
  return { t, log: fn.log, features, kicks };
}

const isNotify = (s: Session, a: PciAccess): boolean =>
  a.kind === 'bar' && a.bar === PciBar.MODERN && a.off >= s.t.layout.notify && a.off < s.t.layout.notify + ModernBarLayout.PAGE;

const NO_ND = ALL & ~F.RING_PACKED & ~F.NOTIFICATION_DATA;
const SESSIONS: readonly (readonly [string, () => Session])[] = [
  ['split', () => session(NO_ND)],
  ['split, notification data', () => session(ALL & ~F.RING_PACKED)],
  ['packed, notification data, no indirect', () => session(ALL & ~F.INDIRECT_DESC)],
  ['packed', () => session(ALL & ~F.NOTIFICATION_DATA)],
  ['split, notify_off_multiplier 0', () => session(NO_ND, { notifyOffMultiplier: 0 })],
  ['split, 2 MSI-X vectors', () => session(NO_ND, { msixVectors: 2 })],
  ['split, 1 MSI-X vector', () => session(NO_ND, { msixVectors: 1 })],
  ['split, INTx', () => session(NO_ND, { msixVectors: 0 }, false)],
];

describe('4.1 PCI: the driver\'s own accesses', () => {
  /** Every session, run once and shared by the checks below. */
  let runs: { name: string; s: Session }[] = [];
  before(() => {
    runs = SESSIONS.map(([name, run]) => ({ name, s: run() }));
  });

  it('driver/transport-pci/36, 38: without NOTIFICATION_DATA every notification is a 16-bit write of the virtqueue index', () => {
    let checked = 0;
    for (const { name, s } of runs.filter((r) => (r.s.features & F.NOTIFICATION_DATA) === 0n)) {
      const writes = s.log.filter((a) => a.op === 'w' && isNotify(s, a));
      assert.equal(writes.length, s.kicks, `${name}: one notification per kick (the device asked for each)`);
      for (const a of writes) {
        assert.notEqual(a.kicking, -1, `${name}: a notification outside a kick`);
        assert.equal(a.width, 2, `${name}: 16-bit notification`);
        assert.equal(a.value, a.kicking, `${name}: the value is the index of the queue kicked (${a.kicking}), not ${a.value}`);
        checked++;
      }
      // Queues 1 and 2 are among them: a driver writing 0 for every queue cannot pass.
      assert.ok(writes.some((a) => a.value === 2), name);
    }
    assert.ok(checked > 50);
  });

  it('driver/transport-pci/37, 39: with NOTIFICATION_DATA every notification is a 32-bit write whose vq_index is the virtqueue index', () => {
    const nd = runs.filter((r) => (r.s.features & F.NOTIFICATION_DATA) !== 0n);
    assert.equal(nd.length, 2);
    for (const { name, s } of nd) {
      const writes = s.log.filter((a) => a.op === 'w' && isNotify(s, a));
      assert.equal(writes.length, s.kicks, name);
      const published = new Map<number, number>();
      for (const a of writes) {
        assert.equal(a.width, 4, `${name}: 32-bit notification`);
        assert.equal(a.value & 0xffff, a.kicking, `${name}: vq_index`);
        if ((s.features & F.RING_PACKED) === 0n) {
          // 2.9: split rings: next_off and next_wrap together are the new avail idx.
          const n = (published.get(a.kicking) ?? 0) + 1;
          published.set(a.kicking, n);
          const afterReset = a.kicking === 1 && n > 5 ? n - 5 : n;
          assert.equal(a.value >>> 16, afterReset, `${name}: avail idx in the notification data`);
        }
      }
    }
  });

  it('driver/transport-pci/13: the driver never writes into a virtio capability structure (nor any capability list byte)', () => {
    for (const { name, s } of runs) {
      // The vendor capabilities as the device presents them: [start, end) of each.
      const caps: [number, number][] = [];
      for (let p = s.t.configRead(PciCfg.CAPABILITIES_POINTER, 1) & 0xfc, n = 0; p !== 0 && n < 48; p = s.t.configRead(p + CapField.NEXT, 1) & 0xfc, n++) {
        if (s.t.configRead(p + CapField.VNDR, 1) !== PCI_CAP_ID_VNDR) continue;
        if (s.t.configRead(p + CapField.CFG_TYPE, 1) === VirtioPciCap.PCI_CFG) continue; // 4.1.4.9: its fields are for the driver
        caps.push([p, p + s.t.configRead(p + CapField.LEN, 1)]);
      }
      assert.ok(caps.length >= 4, `${name}: common, notify, ISR, device capabilities`);
      const into = s.log.filter((a) => a.kind === 'cfg' && a.op === 'w' && caps.some(([lo, hi]) => a.off < hi && a.off + a.width > lo));
      assert.deepEqual(into, [], name);
      assert.ok(s.log.some((a) => a.kind === 'cfg' && a.op === 'r'), `${name}: the driver did read the capabilities`);
    }
  });

  it('driver/transport-pci/14: the driver never writes device_feature, num_queues, config_generation, queue_notify_off nor queue_notif_config_data', () => {
    // [offset, size] of each field (4.1.4.3 struct virtio_pci_common_cfg).
    const readOnly: [number, number][] = [
      [CommonCfg.DEVICE_FEATURE, 4], [CommonCfg.NUM_QUEUES, 2], [CommonCfg.CONFIG_GENERATION, 1], [CommonCfg.QUEUE_NOTIFY_OFF, 2], [CommonCfg.QUEUE_NOTIF_CONFIG_DATA, 2],
    ];
    for (const { name, s } of runs) {
      const common = s.t.layout.common;
      const bad = s.log.filter(
        (a) => a.kind === 'bar' && a.op === 'w' && a.bar === PciBar.MODERN && readOnly.some(([f, size]) => a.off < common + f + size && a.off + a.width > common + f),
      );
      assert.deepEqual(bad, [], name);
      // It does read them (the rule is not met by never touching the structure).
      assert.ok(s.log.some((a) => a.op === 'r' && isCommon(s, a, CommonCfg.NUM_QUEUES)), name);
    }
  });

  it('driver/transport-pci/16: without RING_PACKED every queue_size written is a power of 2', () => {
    let seen = 0;
    for (const { name, s } of runs.filter((r) => (r.s.features & F.RING_PACKED) === 0n)) {
      for (const a of s.log.filter((x) => x.op === 'w' && isCommon(s, x, CommonCfg.QUEUE_SIZE))) {
        assert.ok(a.value > 0 && (a.value & (a.value - 1)) === 0, `${name}: queue_size ${a.value}`);
        seen++;
      }
    }
    assert.ok(seen >= QUEUES);
  });

  it('driver/transport-pci/17, 19: each queue is configured before queue_enable, which is only ever written with 1', () => {
    const fields = [CommonCfg.QUEUE_SIZE, CommonCfg.QUEUE_DESC, CommonCfg.QUEUE_DESC + 4, CommonCfg.QUEUE_DRIVER, CommonCfg.QUEUE_DRIVER + 4, CommonCfg.QUEUE_DEVICE, CommonCfg.QUEUE_DEVICE + 4];
    for (const { name, s } of runs) {
      let selected = -1;
      let written = new Set<number>();
      let enables = 0;
      for (const a of s.log) {
        if (a.op !== 'w') continue;
        if (isCommon(s, a, CommonCfg.QUEUE_SELECT)) {
          selected = a.value;
          written = new Set();
        } else if (isCommon(s, a, CommonCfg.QUEUE_ENABLE)) {
          assert.equal(a.value, 1, `${name}: queue_enable written with ${a.value} (driver/transport-pci/19)`);
          for (const f of fields) assert.ok(written.has(f), `${name}: queue ${selected} enabled before field 0x${f.toString(16)} was written`);
          enables++;
        } else {
          for (const f of fields) if (isCommon(s, a, f)) written.add(f);
        }
      }
      assert.ok(enables >= QUEUES, `${name}: every queue was enabled (${enables})`);
    }
  });

  it('driver/transport-pci/33, 34: vectors written are inside the MSI-X table (or NO_VECTOR) and each mapping is read back before going on', () => {
    let mappings = 0;
    for (const { name, s } of runs.filter((r) => r.name.includes('MSI-X') || r.name === 'split')) {
      const table = tableSize(s);
      const fields = [CommonCfg.CONFIG_MSIX_VECTOR, CommonCfg.QUEUE_MSIX_VECTOR];
      s.log.forEach((a, i) => {
        if (a.op !== 'w' || !fields.some((f) => isCommon(s, a, f))) return;
        assert.ok(a.value === NO_VECTOR || a.value < table, `${name}: vector ${a.value} outside a table of ${table}`);
        if (a.value === NO_VECTOR) return;
        mappings++;
        // The next access to the common configuration is the read of that same field.
        const next = s.log.slice(i + 1).find((b) => b.kind === 'bar' && b.bar === PciBar.MODERN && b.off >= s.t.layout.common && b.off < s.t.layout.common + CommonCfg.SIZE);
        assert.ok(next && next.op === 'r' && next.off === a.off && next.width === 2, `${name}: vector mapping at 0x${a.off.toString(16)} not verified`);
      });
    }
    assert.ok(mappings >= 8);
  });
});

/** MSI-X Table Size + 1, read from the device's MSI-X capability (not through the driver). */
function tableSize(s: Session): number {
  for (let p = s.t.configRead(PciCfg.CAPABILITIES_POINTER, 1) & 0xfc, n = 0; p !== 0 && n < 48; p = s.t.configRead(p + CapField.NEXT, 1) & 0xfc, n++) {
    if (s.t.configRead(p, 1) === 0x11) return (s.t.configRead(p + 2, 2) & 0x7ff) + 1;
  }
  return 0;
}
