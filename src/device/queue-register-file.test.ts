/**
 * The device core's queue register setters: each refusal reason, with the registers left as
 * they were; enable re-checks the size against the features finally negotiated; the legacy
 * address form; the thrown codes of enableQueue.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { splitRingLayout } from '../queue/split-layout.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { EchoDevice } from '../testing/echo-device.js';
import { DeviceCore } from './device-core.js';
import { QueueArea, QueueRefusalReason } from './types.js';

const ACK_DRIVER = Status.ACKNOWLEDGE | Status.DRIVER;
const RING = 0x1_0000;

function rig(legacy = false): DeviceCore {
  const memory = GuestMemory.allocate(1 << 20);
  return new DeviceCore(new EchoDevice({ queues: [64, 0] }), { memory, interrupts: { usedBuffer() {}, configChange() {} }, legacy });
}

function negotiate(c: DeviceCore, extra = 0n): void {
  c.setStatus(Status.ACKNOWLEDGE);
  c.setStatus(ACK_DRIVER);
  c.setDriverFeatures(c.deviceFeatures() & (F.VERSION_1 | extra));
  c.setStatus(ACK_DRIVER | Status.FEATURES_OK);
  assert.ok(c.status & Status.FEATURES_OK);
}

function setRing(c: DeviceCore, index: number, size: number, base: number): void {
  const l = splitRingLayout(size, base);
  assert.equal(c.setQueueSize(index, size), null);
  assert.equal(c.setQueueAddress(index, QueueArea.DESC, l.descAddr), null);
  assert.equal(c.setQueueAddress(index, QueueArea.DRIVER, l.driverAddr), null);
  assert.equal(c.setQueueAddress(index, QueueArea.DEVICE, l.deviceAddr), null);
}

const reason = (r: { reason: string } | null): string | null => r?.reason ?? null;

describe('DeviceCore queue register setters', () => {
  it('refusal reasons: no such queue, a value the register does not take; the registers stay as they were', () => {
    const c = rig();
    negotiate(c);
    const before = { ...c.queueRegisters(0)! };
    for (const i of [2, -1, 1.5, 0x1_0000]) {
      assert.equal(reason(c.setQueueSize(i, 8)), QueueRefusalReason.NO_QUEUE, `size of queue ${i}`);
      assert.equal(reason(c.setQueueAddress(i, QueueArea.DESC, 0x1000)), QueueRefusalReason.NO_QUEUE);
      assert.equal(reason(c.setQueueMsixVector(i, 1)), QueueRefusalReason.NO_QUEUE);
      assert.equal(reason(c.setQueueEnabled(i)), QueueRefusalReason.NO_QUEUE);
      assert.equal(reason(c.setQueueLegacyAddress(i, 0x4000, 4096)), QueueRefusalReason.NO_QUEUE);
    }
    for (const size of [0, 65, 48, -4, 2.5, Number.NaN]) assert.equal(reason(c.setQueueSize(0, size)), QueueRefusalReason.VALUE, `size ${size}`);
    assert.equal(reason(c.setQueueSize(1, 1)), QueueRefusalReason.VALUE, 'queue 1 is not available (maximum 0)');
    for (const a of [-1, 2 ** 53, 0.5]) assert.equal(reason(c.setQueueAddress(0, QueueArea.DRIVER, a)), QueueRefusalReason.VALUE, `address ${a}`);
    for (const v of [-1, 0x1_0000, 1.5]) assert.equal(reason(c.setQueueMsixVector(0, v)), QueueRefusalReason.VALUE, `vector ${v}`);
    assert.deepEqual({ ...c.queueRegisters(0)! }, before);
    assert.equal(c.setQueueMsixVector(0, 3), null);
    assert.equal(c.queueRegisters(0)!.msixVector, 3);
  });

  it('enable: refused before FEATURES_OK and in DEVICE_NEEDS_RESET (STATE), for a ring outside memory (RING); enableQueue throws the matching codes', () => {
    const c = rig();
    c.setStatus(Status.ACKNOWLEDGE);
    c.setStatus(ACK_DRIVER);
    setRing(c, 0, 16, RING);
    assert.equal(reason(c.setQueueEnabled(0)), QueueRefusalReason.STATE);
    assert.throws(() => c.enableQueue(0), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.STATUS_INVALID);
    c.setDriverFeatures(F.VERSION_1);
    c.setStatus(ACK_DRIVER | Status.FEATURES_OK);
    setRing(c, 0, 16, (1 << 20) - 64);
    assert.equal(reason(c.setQueueEnabled(0)), QueueRefusalReason.RING);
    assert.throws(() => c.enableQueue(0), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_BAD_CONFIG);
    assert.throws(() => c.enableQueue(7), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.equal(c.queueRegisters(0)!.enabled, false);
    setRing(c, 0, 16, RING);
    assert.equal(c.setQueueEnabled(0), null);
    assert.equal(c.setQueueEnabled(0), null, 'enabling twice is harmless');
    assert.equal(reason(c.setQueueSize(0, 8)), QueueRefusalReason.QUEUE_ENABLED);
    c.setNeedsReset('test');
    assert.equal(reason(c.setQueueEnabled(1)), QueueRefusalReason.STATE);
    assert.throws(() => c.enableQueue(1), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.DEVICE_NEEDS_RESET);
  });

  it('2.7 / 2.8: a size taken while the driver had accepted RING_PACKED is checked again at enable against the features finally negotiated', () => {
    const c = rig();
    c.setStatus(Status.ACKNOWLEDGE);
    c.setStatus(ACK_DRIVER);
    c.setDriverFeatures(F.VERSION_1 | F.RING_PACKED);
    assert.equal(c.setQueueSize(0, 48), null, 'packed accepted so far: any size');
    c.setDriverFeatures(F.VERSION_1);
    c.setStatus(ACK_DRIVER | Status.FEATURES_OK);
    const l = splitRingLayout(64, RING);
    c.setQueueAddress(0, QueueArea.DESC, l.descAddr);
    c.setQueueAddress(0, QueueArea.DRIVER, l.driverAddr);
    c.setQueueAddress(0, QueueArea.DEVICE, l.deviceAddr);
    const refusal = c.setQueueEnabled(0);
    assert.equal(reason(refusal), QueueRefusalReason.VALUE);
    assert.match(refusal!.message, /not a power of two/);
  });

  it('4.1.5.4 / 4.2.4: the legacy address form places a contiguous ring and enables it; 0 stops it; a live queue refuses a new address', () => {
    const c = rig(true);
    c.setStatus(Status.ACKNOWLEDGE);
    c.setStatus(ACK_DRIVER);
    assert.equal(reason(c.setQueueLegacyAddress(0, RING + 8, 4096)), QueueRefusalReason.RING, 'not aligned');
    assert.equal(reason(c.setQueueLegacyAddress(0, RING, 3000)), QueueRefusalReason.VALUE, 'align not a power of two');
    assert.equal(c.queueRegisters(0)!.enabled, false);
    assert.equal(c.setQueueLegacyAddress(0, RING, 4096), null);
    const q = c.queueRegisters(0)!;
    assert.equal(q.enabled, true);
    assert.equal(q.descAddr, RING);
    assert.equal(q.deviceAddr % 4096, 0);
    assert.equal(reason(c.setQueueLegacyAddress(0, RING + 0x10000, 4096)), QueueRefusalReason.QUEUE_ENABLED);
    assert.equal(c.setQueueLegacyAddress(0, 0, 4096), null);
    assert.deepEqual({ ...c.queueRegisters(0)! }, { size: 64, descAddr: 0, driverAddr: 0, deviceAddr: 0, enabled: false, msixVector: 0xffff, notifyData: 0 });
  });
});
