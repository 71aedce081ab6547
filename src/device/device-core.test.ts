/**
 * DeviceCore: the status state machine (2.1, 3.1.1), feature negotiation (2.2), config space and
 * its generation (2.5), device reset (2.4), driven directly through the core's API as a
 * transport would. DEVICE_NEEDS_RESET, queues and memory changes: device-core-queues.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { VirtioError } from '../errors.js';
import { F, TRANSPORT_FEATURES_SUPPORTED, bit, isDeviceTypeBit } from '../spec/features.js';
import { ACK_DRIVER, ALL_UP, BUF_BASE, S, addEcho, negotiate, rig, running, setupQueue } from './device-core-test-support.js';

describe('DeviceCore: features (2.2)', () => {
  it('device/content/20: a modern interface offers VERSION_1; a legacy one offers no bit above 31', () => {
    const modern = rig({ transportFeatures: 0n });
    assert.notEqual(modern.core.deviceFeatures() & F.VERSION_1, 0n);
    const legacy = rig({}, { legacy: true });
    assert.equal(legacy.core.deviceFeatures() >> 32n, 0n);
    assert.equal(legacy.core.deviceFeatureWord(1), 0);
  });

  it('device/content/5, device/content/3: only transport bits the transport supports are offered, never legacy-only bits on a modern interface', () => {
    const r = rig({ transportFeatures: TRANSPORT_FEATURES_SUPPORTED | F.NOTIFY_ON_EMPTY | F.ANY_LAYOUT | F.SUSPEND }, { transportFeatures: F.INDIRECT_DESC | F.EVENT_IDX });
    const offered = r.core.deviceFeatures();
    assert.equal(offered & (F.RING_PACKED | F.IN_ORDER | F.RING_RESET | F.SUSPEND), 0n, 'unsupported transport bits hidden');
    assert.equal(offered & (F.NOTIFY_ON_EMPTY | F.ANY_LAYOUT), 0n, 'legacy bits hidden on a modern interface');
    assert.equal(offered & (F.INDIRECT_DESC | F.EVENT_IDX | F.VERSION_1), F.INDIRECT_DESC | F.EVENT_IDX | F.VERSION_1);
    for (let b = 0; b < 128; b++) {
      if (((offered >> BigInt(b)) & 1n) === 0n || isDeviceTypeBit(b)) continue;
      assert.ok([28, 29, 32].includes(b), `bit ${b} offered`);
    }
  });

  it('device/transport-pci/14, device/transport-pci/15: 32-bit feature windows; selects past the last word read 0 and ignore writes', () => {
    const r = rig();
    const offered = r.core.deviceFeatures();
    for (let w = 0; w < 4; w++) assert.equal(r.core.deviceFeatureWord(w), Number((offered >> BigInt(32 * w)) & 0xffff_ffffn));
    assert.equal(r.core.deviceFeatureWord(4), 0);
    assert.equal(r.core.deviceFeatureWord(-1), 0);
    assert.equal(r.core.deviceFeatureWord(1.5), 0);
    r.core.setStatus(S.ACKNOWLEDGE);
    r.core.setStatus(ACK_DRIVER);
    r.core.setDriverFeatureWord(0, 0x3);
    r.core.setDriverFeatureWord(1, 0x1);
    r.core.setDriverFeatureWord(9, 0xffff_ffff);
    assert.equal(r.core.driverFeatures, 0x1_0000_0003n);
    r.core.setDriverFeatureWord(0, 0x1);
    assert.equal(r.core.driverFeatures, 0x1_0000_0001n, 'a word write replaces only its window');
  });

  it('device/content/4: FEATURES_OK is refused for a bit that was not offered', () => {
    const r = rig({ transportFeatures: F.VERSION_1 });
    for (const extra of [F.RING_PACKED, F.UNUSED, F.NOTIFY_ON_EMPTY, bit(44), bit(127)]) {
      assert.equal(negotiate(r.core, F.VERSION_1 | extra), false, `bit ${extra.toString(16)}`);
      assert.equal(r.core.status, ACK_DRIVER, 'FEATURES_OK reads back clear');
      assert.equal(r.core.negotiatedFeatures, 0n);
    }
    assert.equal(negotiate(r.core, F.VERSION_1 | 0b1n), true);
  });

  it('device/content/21: a modern interface refuses FEATURES_OK without VERSION_1 (RING_PACKED without VERSION_1 included)', () => {
    const r = rig();
    assert.equal(negotiate(r.core, F.RING_PACKED), false);
    assert.equal(negotiate(r.core, F.RING_PACKED | F.EVENT_IDX | 0b1n), false);
    assert.equal(negotiate(r.core, 0n), false);
    assert.equal(negotiate(r.core, F.RING_PACKED | F.VERSION_1), true);
    assert.equal(r.core.negotiatedFeatures, F.RING_PACKED | F.VERSION_1);
  });

  it('device/content/4: a device-specific dependency refuses FEATURES_OK; a throwing validator refuses too', () => {
    const r = rig({ refuse: bit(1) });
    assert.equal(negotiate(r.core, F.VERSION_1 | 0b11n), false);
    assert.equal(negotiate(r.core, F.VERSION_1 | 0b01n), true);
    const t = rig();
    t.dev.validateFeatures = (): string | null => {
      throw new Error('validator bug');
    };
    assert.equal(negotiate(t.core, F.VERSION_1), false);
  });

  it('device/content/4: every valid subset of the offered features is accepted', () => {
    const r = rig();
    const offered = r.core.deviceFeatures();
    const bits = [];
    for (let b = 0; b < 64; b++) if ((offered >> BigInt(b)) & 1n) bits.push(b);
    fc.assert(
      fc.property(fc.subarray(bits), (sub) => {
        const f = sub.reduce((a, b) => a | bit(b), F.VERSION_1);
        assert.equal(negotiate(r.core, f), true);
        assert.equal(r.core.negotiatedFeatures, f);
      }),
      { numRuns: 200 },
    );
  });

  it('device/content/6: the same features are accepted again after a reset', () => {
    const { r } = running();
    const first = r.core.negotiatedFeatures;
    r.core.setStatus(0);
    assert.equal(negotiate(r.core, first), true);
    assert.equal(r.core.negotiatedFeatures, first);
  });

  it('driver_feature is frozen once FEATURES_OK is set', () => {
    const r = rig();
    assert.ok(negotiate(r.core, F.VERSION_1 | 0b1n));
    r.core.setDriverFeatures(F.VERSION_1 | 0b11n);
    r.core.setDriverFeatureWord(0, 0);
    assert.equal(r.core.driverFeatures, F.VERSION_1 | 0b1n);
    assert.equal(r.core.negotiatedFeatures, F.VERSION_1 | 0b1n);
  });

  it('6.3: a legacy interface takes the features when written and has no FEATURES_OK', () => {
    const r = rig({}, { legacy: true });
    r.core.setStatus(S.ACKNOWLEDGE);
    r.core.setStatus(ACK_DRIVER);
    r.core.setDriverFeatures(F.VERSION_1 | F.EVENT_IDX | 0b1n);
    assert.equal(r.core.negotiatedFeatures, F.EVENT_IDX | 0b1n, 'unoffered VERSION_1 dropped');
    r.core.setStatus(ACK_DRIVER | S.DRIVER_OK);
    assert.equal(r.core.status, ACK_DRIVER | S.DRIVER_OK, 'DRIVER_OK without FEATURES_OK on legacy');
    assert.equal(r.dev.activations, 1);
  });
});

describe('DeviceCore: status (2.1, 3.1.1)', () => {
  it('the 3.1.1 sequence reaches DRIVER_OK and activates the device once', () => {
    const { r } = running();
    assert.equal(r.dev.activations, 1);
    assert.ok(r.core.active);
    r.core.setStatus(ALL_UP);
    assert.equal(r.dev.activations, 1, 'writing the same status again does not re-activate');
  });

  it('3.1.1 order: bits written before their earlier steps are ignored', () => {
    const r = rig();
    r.core.setStatus(S.DRIVER);
    assert.equal(r.core.status, 0, 'DRIVER before ACKNOWLEDGE');
    r.core.setStatus(S.ACKNOWLEDGE | S.FEATURES_OK);
    assert.equal(r.core.status, S.ACKNOWLEDGE, 'FEATURES_OK before DRIVER');
    r.core.setDriverFeatures(F.VERSION_1);
    r.core.setStatus(ACK_DRIVER | S.DRIVER_OK);
    assert.equal(r.core.status, ACK_DRIVER, 'DRIVER_OK before FEATURES_OK (modern)');
    assert.equal(r.dev.activations, 0);
    r.core.setStatus(ALL_UP);
    assert.equal(r.core.status, ALL_UP, 'all steps in one write are in order');
    assert.equal(r.dev.activations, 1);
  });

  it('a status write that clears a bit (other than reset) is ignored', () => {
    const { r } = running();
    r.core.setStatus(ACK_DRIVER | S.FEATURES_OK);
    assert.equal(r.core.status, ALL_UP);
    assert.ok(r.core.active);
  });

  it('after FAILED the device takes nothing but a reset', () => {
    const r = rig();
    r.core.setStatus(S.ACKNOWLEDGE);
    r.core.setStatus(S.ACKNOWLEDGE | S.FAILED);
    assert.equal(r.core.status, S.ACKNOWLEDGE | S.FAILED);
    r.core.setDriverFeatures(F.VERSION_1);
    r.core.setStatus(ALL_UP | S.FAILED);
    assert.equal(r.core.status, S.ACKNOWLEDGE | S.FAILED);
    assert.equal(r.dev.activations, 0);
    assert.throws(() => setupQueue(r, 0), (e: unknown) => e instanceof VirtioError);
    r.core.setStatus(0);
    assert.equal(r.core.status, 0);
    assert.ok(negotiate(r.core));
  });

  it('the status byte is 8 bits; SUSPEND and reserved bits are not taken from the driver', () => {
    const r = rig();
    r.core.setStatus(0x100 | S.ACKNOWLEDGE | S.SUSPEND | 0x20);
    assert.equal(r.core.status, S.ACKNOWLEDGE);
  });

  it('device/content/1: no buffer is consumed and no notification sent before DRIVER_OK', () => {
    const r = rig();
    assert.ok(negotiate(r.core));
    const q = setupQueue(r, 0);
    assert.ok(addEcho(r, q, 0xabcd, 0));
    r.core.notifyQueue(0);
    assert.equal(r.dev.served, 0);
    assert.deepEqual(r.irq.used, []);
    assert.equal(q.takeUsed(), undefined);
    r.core.setStatus(ALL_UP);
    // Buffers made available before DRIVER_OK are served at activation.
    assert.equal(q.takeUsed(), 0xabcd);
    assert.equal(q.lastUsedLen, 4);
    assert.equal(r.memory.readU32(BUF_BASE + 32), 0xabcd);
    assert.deepEqual(r.irq.used, [0]);
  });
});

describe('DeviceCore: reset (2.4)', () => {
  it('device/content/7, device/transport-pci/18, device/transport-pci/19: reset clears status, features, queue registers and queues', () => {
    const { r, q } = running(F.VERSION_1 | F.EVENT_IDX | 0b1n);
    addEcho(r, q, 1, 0);
    r.core.notifyQueue(0);
    const resets = r.dev.resets;
    r.core.setStatus(0);
    assert.equal(r.core.status, 0);
    assert.equal(r.core.driverFeatures, 0n);
    assert.equal(r.core.negotiatedFeatures, 0n);
    assert.equal(r.core.active, false);
    assert.equal(r.dev.resets, resets + 1);
    const regs = r.core.queueRegisters(0)!;
    assert.deepEqual(regs, { size: 256, descAddr: 0, driverAddr: 0, deviceAddr: 0, enabled: false, msixVector: 0xffff, notifyData: 0 });
    assert.equal(r.core.queue(0), null);
    assert.equal(r.core.needsResetReason, null);
  });

  it('device/content/8: after reset the old activation touches no queue and sends nothing', () => {
    const { r, q } = running();
    const ctx = r.dev.context!;
    const gen = r.core.configGeneration;
    r.core.setStatus(0);
    addEcho(r, q, 7, 0);
    assert.equal(ctx.queue(0), null);
    ctx.notifyUsed(0);
    ctx.notifyConfigChange();
    ctx.needsReset('late');
    assert.deepEqual(r.irq.used, []);
    assert.equal(r.irq.config, 0);
    assert.equal(r.core.status, 0);
    assert.equal(r.core.configGeneration, gen);
    r.core.notifyQueue(0);
    assert.equal(r.dev.served, 0, 'a notification after reset is not served');
  });

  it('device/content/8: a device reset that throws still completes', () => {
    const { r } = running();
    r.dev.reset = (): void => {
      throw new Error('backend');
    };
    r.core.setStatus(0);
    assert.equal(r.core.status, 0);
    assert.equal(r.core.active, false);
  });
});

describe('DeviceCore: configuration space (2.5)', () => {
  it('device/content/9: config fields are readable before FEATURES_OK', () => {
    const r = rig();
    r.dev.setConfigSilently(0x11223344);
    r.core.setStatus(S.ACKNOWLEDGE);
    r.core.setStatus(ACK_DRIVER);
    assert.equal(r.core.readConfig(0, 4), 0x11223344);
    assert.equal(r.core.readConfig(0, 2), 0x3344);
    assert.equal(r.core.readConfig(3, 1), 0x11);
    const b = new Uint8Array(4);
    r.core.readConfigBytes(0, b);
    assert.deepEqual([...b], [0x44, 0x33, 0x22, 0x11]);
  });

  it('device/transport-mmio/6, device/transport-pci/17: every device-side config change makes a new generation', () => {
    const r = rig();
    const seen = new Set<number>([r.core.configGeneration]);
    for (let i = 0; i < 50; i++) {
      r.core.configChanged();
      assert.ok(!seen.has(r.core.configGeneration), 'a generation is never reused between changes');
      seen.add(r.core.configGeneration);
    }
    assert.equal(r.irq.config, 0, 'no configuration change notification before DRIVER_OK');
    const { r: up } = running();
    const g = up.core.configGeneration;
    up.dev.bumpConfig();
    assert.notEqual(up.core.configGeneration, g);
    assert.equal(up.irq.config, 1, 'one configuration change notification after DRIVER_OK');
    assert.equal(up.core.readConfig(0, 4), 1);
    // Reads and driver writes do not change the generation.
    const g2 = up.core.configGeneration;
    up.core.readConfig(8, 4);
    up.core.writeConfig(4, 4, 0x55);
    assert.equal(up.core.readConfig(4, 4), 0x55);
    assert.equal(up.core.configGeneration, g2);
  });

  it('2.5: reads outside the config or with a bad width give 0, writes there are ignored', () => {
    const r = rig();
    r.dev.setConfigSilently(0xffffffff);
    assert.equal(r.core.readConfig(16, 1), 0);
    assert.equal(r.core.readConfig(14, 4), 0);
    assert.equal(r.core.readConfig(0, 3), 0);
    assert.equal(r.core.readConfig(-1, 1), 0);
    assert.equal(r.core.readConfig(0.5, 1), 0);
    const b = new Uint8Array(8).fill(9);
    r.core.readConfigBytes(12, b);
    assert.deepEqual([...b.subarray(4)], [0, 0, 0, 0], 'bytes past the end read 0');
    r.core.writeConfig(14, 4, 0x1234);
    r.core.writeConfig(4, 3, 0x1234);
    assert.equal(r.core.readConfig(4, 4), 0);
    r.dev.readConfig = (): void => {
      throw new Error('device bug');
    };
    assert.equal(r.core.readConfig(0, 4), 0, 'a throwing device reads 0');
  });

  it('legacy big-endian guests see config in guest endian', () => {
    const r = rig({}, { legacy: true, littleEndian: false });
    r.dev.setConfigSilently(0x11223344);
    assert.equal(r.core.readConfig(0, 4), 0x11223344);
    const b = new Uint8Array(4);
    r.core.readConfigBytes(0, b);
    assert.deepEqual([...b], [0x11, 0x22, 0x33, 0x44]);
  });
});
