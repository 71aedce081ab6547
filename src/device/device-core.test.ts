/**
 * DeviceCore: the status state machine (2.1, 3.1.1), feature negotiation (2.2), config space and
 * its generation (2.5), device reset (2.4), DEVICE_NEEDS_RESET (2.1.2), queue enable and
 * RING_RESET queue reset (2.6.1), driven directly through the core's API as a transport would.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { createDriverQueue } from '../driver/create-queue.js';
import { splitRingLayout } from '../queue/split-layout.js';
import type { DriverQueue } from '../queue/types.js';
import { F, TRANSPORT_FEATURES_SUPPORTED, bit, isDeviceTypeBit } from '../spec/features.js';
import { SplitLayout } from '../spec/ring.js';
import { Status } from '../spec/status.js';
import { EchoDevice, type EchoDeviceOptions } from '../testing/echo-device.js';
import { DeviceCore } from './device-core.js';
import type { DeviceCoreOptions } from './device-core-options.js';
import { setUpQueue } from './queue-register-file.js';
import { type InterruptSink, QueueArea } from './types.js';

const S = Status;
const ACK_DRIVER = S.ACKNOWLEDGE | S.DRIVER;
const ALL_UP = S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK;
const RING_BASE = 0x1000;
const BUF_BASE = 0x40000;

class RecordingSink implements InterruptSink {
  used: number[] = [];
  config = 0;
  usedBuffer(q: number): void {
    this.used.push(q);
  }
  configChange(): void {
    this.config++;
  }
}

interface Rig {
  memory: GuestMemory;
  irq: RecordingSink;
  dev: EchoDevice;
  core: DeviceCore;
}

function rig(echo: EchoDeviceOptions = {}, core: Partial<DeviceCoreOptions> = {}): Rig {
  const memory = GuestMemory.allocate(1 << 20);
  const irq = new RecordingSink();
  const dev = new EchoDevice(echo);
  return { memory, irq, dev, core: new DeviceCore(dev, { memory, interrupts: irq, ...core }) };
}

/** Steps 1 to 6 of 3.1.1 with `features` (default: everything offered except RING_PACKED). */
function negotiate(core: DeviceCore, features?: bigint): boolean {
  core.setStatus(0);
  core.setStatus(S.ACKNOWLEDGE);
  core.setStatus(ACK_DRIVER);
  core.setDriverFeatures(features ?? core.deviceFeatures() & ~F.RING_PACKED);
  core.setStatus(ACK_DRIVER | S.FEATURES_OK);
  return (core.status & S.FEATURES_OK) !== 0;
}

/** Step 7 for queue `index`: a split ring at `base`; returns the driver side of it. */
function setupQueue(r: Rig, index: number, size = 8, base = RING_BASE + index * 0x4000): DriverQueue<number> {
  const l = splitRingLayout(size, base);
  setUpQueue(r.core, index, { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr });
  return createDriverQueue<number>(r.memory, r.core.queueConfig(index)!);
}

/** One echo buffer: 4 readable bytes `tag`, 16 writable bytes. Returns whether the device must be notified. */
function addEcho(r: Rig, q: DriverQueue<number>, tag: number, slot: number): boolean {
  const out = BUF_BASE + slot * 64;
  r.memory.writeU32(out, tag);
  assert.ok(q.add([{ addr: out, len: 4 }], [{ addr: out + 32, len: 16 }], tag));
  return q.kick();
}

function running(features?: bigint): { r: Rig; q: DriverQueue<number> } {
  const r = rig();
  assert.ok(negotiate(r.core, features));
  const q = setupQueue(r, 0);
  r.core.setStatus(ALL_UP);
  assert.equal(r.core.status, ALL_UP);
  return { r, q };
}

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

describe('DeviceCore: DEVICE_NEEDS_RESET (2.1.2)', () => {
  it('device/content/2: needsReset after DRIVER_OK sets the bit and sends a configuration change notification', () => {
    const { r, q } = running();
    r.dev.context!.needsReset('backend lost');
    assert.equal(r.core.status, ALL_UP | S.DEVICE_NEEDS_RESET);
    assert.equal(r.irq.config, 1);
    assert.equal(r.core.needsResetReason, 'backend lost');
    r.dev.context!.needsReset('again');
    assert.equal(r.irq.config, 1, 'set once');
    // The driver's status writes keep the bit; notifications are not served.
    r.core.setStatus(ALL_UP);
    assert.equal(r.core.status & S.DEVICE_NEEDS_RESET, S.DEVICE_NEEDS_RESET);
    addEcho(r, q, 3, 0);
    r.core.notifyQueue(0);
    assert.equal(r.dev.served, 0);
    assert.throws(() => setupQueue(r, 1), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.DEVICE_NEEDS_RESET);
    r.core.setStatus(0);
    assert.equal(r.core.status, 0, 'reset clears DEVICE_NEEDS_RESET');
  });

  it('device/content/2: before DRIVER_OK the bit is set without a notification, and DRIVER_OK is then refused', () => {
    const r = rig();
    assert.ok(negotiate(r.core));
    r.core.setNeedsReset('early');
    assert.equal(r.irq.config, 0);
    r.core.setStatus(ALL_UP);
    assert.equal(r.core.status & S.DRIVER_OK, 0);
    assert.equal(r.dev.activations, 0);
  });

  it('device/content/2: a device that throws from onQueueNotify puts the core in DEVICE_NEEDS_RESET, never throws to the transport', () => {
    const { r, q } = running();
    r.dev.throwOnNotify = new Error('device bug');
    addEcho(r, q, 1, 0);
    assert.doesNotThrow(() => r.core.notifyQueue(0));
    assert.equal(r.core.status & S.DEVICE_NEEDS_RESET, S.DEVICE_NEEDS_RESET);
    assert.equal(r.irq.config, 1);
    assert.match(r.core.needsResetReason ?? '', /device bug/);
  });

  it('device/content/2: a driver that breaks the ring (avail idx jumps past the queue size) gets DEVICE_NEEDS_RESET', () => {
    const { r } = running();
    const regs = r.core.queueRegisters(0)!;
    r.memory.writeU16(regs.driverAddr + SplitLayout.AVAIL_IDX, 100);
    assert.doesNotThrow(() => r.core.notifyQueue(0));
    assert.equal(r.core.status & S.DEVICE_NEEDS_RESET, S.DEVICE_NEEDS_RESET);
    assert.equal(r.irq.config, 1);
  });

  it('a device whose activate throws is left in DEVICE_NEEDS_RESET', () => {
    const r = rig();
    r.dev.activate = (): void => {
      throw new Error('no backend');
    };
    assert.ok(negotiate(r.core));
    r.core.setStatus(ALL_UP);
    assert.equal(r.core.status & S.DEVICE_NEEDS_RESET, S.DEVICE_NEEDS_RESET);
    assert.equal(r.irq.config, 1);
  });
});

describe('DeviceCore: queues (2.6)', () => {
  it('enableQueue checks its state and registers with typed errors', () => {
    const r = rig({ queues: [8, 0] });
    const code = (c: string) => (e: unknown) => e instanceof VirtioError && e.code === c;
    assert.throws(() => r.core.enableQueue(5), code(ErrorCode.INVALID_ARGUMENT));
    r.core.setStatus(S.ACKNOWLEDGE);
    r.core.setStatus(ACK_DRIVER);
    assert.throws(() => setupQueue(r, 0), code(ErrorCode.STATUS_INVALID), 'before FEATURES_OK');
    assert.ok(negotiate(r.core));
    assert.throws(() => setupQueue(r, 1, 8), code(ErrorCode.QUEUE_BAD_CONFIG), 'queue with max size 0');
    assert.throws(() => setupQueue(r, 0, 16), code(ErrorCode.QUEUE_BAD_CONFIG), 'size above the maximum');
    assert.throws(() => setupQueue(r, 0, 6), code(ErrorCode.QUEUE_BAD_CONFIG), 'split size not a power of two');
    assert.throws(() => setupQueue(r, 0, 8, (1 << 20) - 64), (e: unknown) => e instanceof VirtioError, 'ring outside memory');
    assert.equal(r.core.queueRegisters(0)!.enabled, false);
    setupQueue(r, 0, 8);
    assert.equal(r.core.queueRegisters(0)!.enabled, true);
    assert.doesNotThrow(() => r.core.enableQueue(0), 'enabling twice is harmless');
    assert.equal(r.core.queueRegisters(-1), null);
    assert.equal(r.core.queueConfig(2), null);
  });

  it('a queue not enabled is not given to the device and its notifications are ignored', () => {
    const { r } = running();
    assert.equal(r.dev.context!.queue(1), null);
    r.core.notifyQueue(1);
    r.core.notifyQueue(99);
    assert.deepEqual(r.dev.notifies, []);
  });

  it('device/content/10, device/content/11, device/content/12: RING_RESET queue reset stops the queue, forgets its state; re-enable takes new registers', () => {
    const { r, q } = running(F.VERSION_1 | F.RING_RESET);
    for (let i = 0; i < 3; i++) addEcho(r, q, 10 + i, i);
    r.core.notifyQueue(0);
    for (let i = 0; i < 3; i++) assert.equal(q.takeUsed(), 10 + i);
    assert.equal(r.core.queue(0)!.state().nextAvail, 3);
    const usedBefore = r.irq.used.length;
    r.core.resetQueue(0);
    assert.deepEqual(r.dev.queueResets, [0]);
    assert.equal(r.core.queue(0), null);
    assert.equal(r.core.queueRegisters(0)!.enabled, false, 'queue_enable reads 0 after reset');
    assert.equal(r.core.queueRegisters(0)!.size, 256, 'size back to the maximum');
    addEcho(r, q, 99, 5);
    r.core.notifyQueue(0);
    r.dev.context!.notifyUsed(0);
    assert.equal(q.takeUsed(), undefined, 'nothing executed from a reset queue');
    assert.equal(r.irq.used.length, usedBefore, 'no notification for a reset queue');
    // Re-enable with a different size and place: the device follows the new registers.
    const q2 = setupQueue(r, 0, 4, 0x20000);
    assert.equal(r.core.queue(0)!.size, 4);
    assert.deepEqual(r.core.queue(0)!.state(), { nextAvail: 0, nextUsed: 0, availWrap: true, usedWrap: true });
    addEcho(r, q2, 0x77, 6);
    r.core.notifyQueue(0);
    assert.equal(q2.takeUsed(), 0x77);
    assert.equal(r.core.status, ALL_UP);
  });

  it('2.6.1: a queue reset touches no other queue', () => {
    const r = rig();
    assert.ok(negotiate(r.core, F.VERSION_1 | F.RING_RESET));
    const q0 = setupQueue(r, 0);
    const q1 = setupQueue(r, 1);
    r.core.setStatus(ALL_UP);
    r.core.resetQueue(0);
    addEcho(r, q1, 0x42, 1);
    r.core.notifyQueue(1);
    assert.equal(q1.takeUsed(), 0x42);
    assert.equal(q0.takeUsed(), undefined);
  });

  it('4.1.5.4: the legacy PFN form places a contiguous ring; PFN 0 stops the queue', () => {
    const r = rig({ queues: [16] }, { legacy: true });
    r.core.setStatus(S.ACKNOWLEDGE);
    r.core.setStatus(ACK_DRIVER);
    r.core.setDriverFeatures(0n);
    r.core.setQueuePfn(0, 4);
    const regs = r.core.queueRegisters(0)!;
    assert.equal(regs.enabled, true);
    assert.equal(regs.descAddr, 4 * 4096);
    assert.equal(regs.deviceAddr % 4096, 0);
    r.core.setQueuePfn(0, 0);
    assert.equal(regs.enabled, false);
  });
});

describe('DeviceCore: memory and interface changes', () => {
  it('setMemory rebuilds live queues at the positions they reached', () => {
    const { r, q } = running();
    for (let i = 0; i < 3; i++) addEcho(r, q, 20 + i, i);
    r.core.notifyQueue(0);
    for (let i = 0; i < 3; i++) assert.equal(q.takeUsed(), 20 + i);
    // Same bytes seen through a new GuestMemory (a remapped region).
    const moved = new GuestMemory(r.memory.regionSpecs());
    r.core.setMemory(moved);
    assert.equal(r.core.memory, moved);
    assert.equal(r.core.queue(0)!.memory, moved);
    assert.equal(r.core.queue(0)!.state().nextAvail, 3);
    addEcho(r, q, 0x99, 4);
    r.core.notifyQueue(0);
    assert.equal(q.takeUsed(), 0x99);
    assert.equal(r.core.status, ALL_UP);
  });

  it('setMemory with the same GuestMemory rebound in place keeps the queue object: a chain held across it completes into the new buffer', () => {
    const { r, q } = running();
    addEcho(r, q, 0x51, 0);
    const dq = r.core.queue(0)!;
    const held = dq.createChain();
    assert.ok(dq.pop(held), 'the device holds a chain');
    // The region's buffer is replaced by a copy (v86: its wasm memory grew): the old one is dead.
    const oldBytes = r.memory.regionSpecs()[0]!.bytes;
    const fresh = oldBytes.slice();
    r.memory.rebindRegion(0, fresh);
    r.core.setMemory(r.memory);
    assert.equal(r.core.queue(0), dq, 'the same queue object (the queue server keeps its requests)');
    dq.push(held, 16);
    const usedIdx = r.core.queueConfig(0)!.deviceAddr + 2;
    assert.equal(r.memory.readU16(usedIdx), 1, 'the used entry is in the live buffer');
    assert.equal(new DataView(oldBytes.buffer, oldBytes.byteOffset).getUint16(usedIdx, true), 0, 'nothing went to the dead one');
    assert.equal(r.core.status, ALL_UP);
  });

  it('setMemory that no longer holds a live ring sets DEVICE_NEEDS_RESET with a configuration change', () => {
    const { r } = running();
    r.core.setMemory(GuestMemory.allocate(0x1000));
    assert.equal(r.core.queue(0), null);
    assert.equal(r.core.status & S.DEVICE_NEEDS_RESET, S.DEVICE_NEEDS_RESET);
    assert.equal(r.irq.config, 1);
  });

  it('setLegacy resets the device and changes what is offered', () => {
    const { r } = running();
    r.core.setLegacy(true);
    assert.equal(r.core.status, 0);
    assert.equal(r.core.legacy, true);
    assert.equal(r.core.deviceFeatures() & F.VERSION_1, 0n);
    r.core.setLegacy(false);
    assert.notEqual(r.core.deviceFeatures() & F.VERSION_1, 0n);
  });
});

describe('DeviceCore: any driver sequence (property)', () => {
  type CoreOp =
    | { k: 'status'; v: number }
    | { k: 'features'; v: bigint }
    | { k: 'word'; sel: number; v: number }
    | { k: 'enable'; q: number; size: number }
    | { k: 'notify'; q: number }
    | { k: 'qreset'; q: number }
    | { k: 'cfgChange' }
    | { k: 'needsReset' }
    | { k: 'cfgRead'; off: number; w: number }
    | { k: 'cfgWrite'; off: number; w: number; v: number };
  const statusVals = fc.oneof(
    fc.integer({ min: 0, max: 0x1ff }),
    fc.constantFrom(0, S.ACKNOWLEDGE, ACK_DRIVER, ACK_DRIVER | S.FEATURES_OK, ALL_UP, ALL_UP | S.FAILED, S.FAILED),
  );
  const op: fc.Arbitrary<CoreOp> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ k: fc.constant('status' as const), v: statusVals }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('features' as const), v: fc.bigInt({ min: 0n, max: (1n << 70n) - 1n }).map((x: bigint) => x | (x & 1n ? F.VERSION_1 : 0n)) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('word' as const), sel: fc.integer({ min: -1, max: 5 }), v: fc.integer({ min: 0, max: 0xffff_ffff }) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('enable' as const), q: fc.integer({ min: 0, max: 2 }), size: fc.constantFrom(0, 1, 3, 8, 512) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('notify' as const), q: fc.integer({ min: -1, max: 2 }) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('qreset' as const), q: fc.integer({ min: -1, max: 2 }) }) },
    { weight: 1, arbitrary: fc.constant({ k: 'cfgChange' as const }) },
    { weight: 1, arbitrary: fc.constant({ k: 'needsReset' as const }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('cfgRead' as const), off: fc.integer({ min: -2, max: 20 }), w: fc.constantFrom(0, 1, 2, 3, 4, 8) }) },
    {
      weight: 1,
      arbitrary: fc.record({ k: fc.constant('cfgWrite' as const), off: fc.integer({ min: -2, max: 20 }), w: fc.constantFrom(1, 2, 4), v: fc.integer({ min: 0, max: 0xffff_ffff }) }),
    },
  );

  it('device/content/4, device/content/7, device/content/1, device/content/2: the status invariants hold, and nothing but enableQueue throws (a typed VirtioError)', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(op, { maxLength: 60 }), (legacy, ops) => {
        const r = rig({ queues: [8, 8] }, { legacy });
        const offered = r.core.deviceFeatures();
        for (const o of ops) {
          const gen = r.core.configGeneration;
          const cfgBefore = r.irq.config;
          const usedBefore = r.irq.used.length;
          const activeBefore = r.core.active;
          switch (o.k) {
            case 'status':
              r.core.setStatus(o.v);
              break;
            case 'features':
              r.core.setDriverFeatures(o.v & (offered | (o.v & 0b10n ? bit(50) : 0n)));
              break;
            case 'word':
              r.core.setDriverFeatureWord(o.sel, o.v);
              break;
            case 'enable': {
              // The setters refuse what the rules forbid (never throwing); enableQueue then decides.
              r.core.setQueueSize(o.q, o.size);
              const l = splitRingLayout(512, RING_BASE + o.q * 0x8000);
              r.core.setQueueAddress(o.q, QueueArea.DESC, l.descAddr);
              r.core.setQueueAddress(o.q, QueueArea.DRIVER, l.driverAddr);
              r.core.setQueueAddress(o.q, QueueArea.DEVICE, l.deviceAddr);
              try {
                r.core.enableQueue(o.q);
              } catch (e) {
                assert.ok(e instanceof VirtioError, `enableQueue threw ${String(e)}`);
              }
              break;
            }
            case 'notify':
              r.core.notifyQueue(o.q);
              break;
            case 'qreset':
              r.core.resetQueue(o.q);
              break;
            case 'cfgChange':
              r.core.configChanged();
              assert.notEqual(r.core.configGeneration, gen, 'a device-side change makes a new generation');
              break;
            case 'needsReset': {
              const wasSet = (r.core.status & S.DEVICE_NEEDS_RESET) !== 0;
              r.core.setNeedsReset('test');
              // device/content/2
              if (!wasSet && r.core.status & S.DRIVER_OK) assert.equal(r.irq.config, cfgBefore + 1);
              break;
            }
            case 'cfgRead':
              assert.equal(typeof r.core.readConfig(o.off, o.w), 'number');
              break;
            case 'cfgWrite':
              r.core.writeConfig(o.off, o.w, o.v);
              break;
          }
          if (o.k !== 'cfgChange') assert.equal(r.core.configGeneration, gen, 'the generation moves only on device-side changes');
          const st = r.core.status;
          assert.equal(st & (S.SUSPEND | 0x20 | ~0xff), 0, 'no bit the driver may not set');
          if (st & S.DRIVER) assert.ok(st & S.ACKNOWLEDGE, '3.1.1: DRIVER after ACKNOWLEDGE');
          if (st & S.FEATURES_OK) assert.ok(st & S.DRIVER, '3.1.1: FEATURES_OK after DRIVER');
          if (st & S.DRIVER_OK) assert.ok(st & S.DRIVER && (legacy || st & S.FEATURES_OK), '3.1.1: DRIVER_OK after FEATURES_OK');
          if (st & S.FEATURES_OK && !legacy) {
            // device/content/4: what FEATURES_OK stands for is valid.
            const n = r.core.negotiatedFeatures;
            assert.equal(n & ~offered, 0n);
            assert.notEqual(n & F.VERSION_1, 0n);
          }
          if (legacy) assert.equal(r.core.negotiatedFeatures & ~offered, 0n);
          // Legacy devices also start on the first kick after DRIVER (QEMU's start_on_kick).
          if (r.core.active) assert.ok(st & S.DRIVER_OK || (legacy && st & S.DRIVER), 'active only after DRIVER_OK');
          if (st & S.DRIVER_OK) assert.ok(r.core.active || st & S.DEVICE_NEEDS_RESET, 'DRIVER_OK means active, or it failed');
          if (o.k === 'status' && (o.v & 0xff) === 0) {
            // device/content/7: a reset forgets everything.
            assert.equal(st, 0);
            assert.equal(r.core.driverFeatures, 0n);
            assert.equal(r.core.negotiatedFeatures, 0n);
            assert.equal(r.core.active, false);
            for (let q = 0; q < 2; q++) assert.equal(r.core.queue(q), null);
          }
          if (!activeBefore && !r.core.active) assert.equal(r.irq.used.length, usedBefore, 'device/content/1: no used notification before DRIVER_OK');
        }
      }),
      { numRuns: 400 },
    );
  });
});
