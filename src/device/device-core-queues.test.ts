/**
 * DeviceCore: DEVICE_NEEDS_RESET (2.1.2), queue enable and RING_RESET queue reset (2.6.1),
 * memory and interface changes, and any driver sequence (property), driven directly through the
 * core's API as a transport would. Status, features, reset, config: device-core.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { splitRingLayout } from '../queue/split-layout.js';
import { F, bit } from '../spec/features.js';
import { SplitLayout } from '../spec/ring.js';
import { ACK_DRIVER, ALL_UP, RING_BASE, S, addEcho, negotiate, rig, running, setupQueue } from './device-core-test-support.js';
import { QueueArea } from './types.js';

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
