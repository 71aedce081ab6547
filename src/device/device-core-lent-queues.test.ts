/**
 * DeviceCore methods for transports that build their rings themselves (vhost-user): lent
 * queues, activation with them, deactivation that keeps the negotiation, checkFeatures.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { createDriverQueue } from '../driver/create-queue.js';
import { createDeviceQueue } from '../queue/create-queue.js';
import { splitRingLayout } from '../queue/split-layout.js';
import type { DeviceQueue } from '../queue/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { EchoDevice } from '../testing/echo-device.js';
import { DeviceCore } from './device-core.js';

const S = Status;
const NEGOTIATED = S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK;

function rig(refuse = 0n): { core: DeviceCore; dev: EchoDevice; memory: GuestMemory; irq: { used: number[]; config: number } } {
  const memory = GuestMemory.allocate(1 << 20);
  const irq = { used: [] as number[], config: 0 };
  const dev = new EchoDevice({ refuse });
  const core = new DeviceCore(dev, {
    memory,
    interrupts: {
      usedBuffer: (q) => irq.used.push(q),
      configChange: () => irq.config++,
    },
  });
  return { core, dev, memory, irq };
}

function negotiate(core: DeviceCore, features: bigint = F.VERSION_1 | F.EVENT_IDX): void {
  core.setStatus(S.ACKNOWLEDGE | S.DRIVER);
  core.setDriverFeatures(features);
  core.setStatus(NEGOTIATED);
}

function ownQueue(memory: GuestMemory, index: number, features: bigint = F.VERSION_1 | F.EVENT_IDX): DeviceQueue {
  const l = splitRingLayout(16, 0x1000 + index * 0x4000);
  return createDeviceQueue(memory, { size: 16, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features, littleEndian: true, index });
}

describe('DeviceCore with queues lent by the transport (vhost-user)', () => {
  it('device/content/4: checkFeatures gives the reason FEATURES_OK would be refused', () => {
    const { core } = rig(1n);
    assert.equal(core.checkFeatures(F.VERSION_1), null);
    assert.match(core.checkFeatures(F.VERSION_1 | 1n) ?? '', /./, "the device's validateFeatures refuses bit 0");
    assert.match(core.checkFeatures(0n) ?? '', /VERSION_1/);
    assert.match(core.checkFeatures(F.VERSION_1 | (1n << 20n)) ?? '', /not offered/);
  });

  it('device/content/1: activateWithLentQueues does nothing before FEATURES_OK, then activates with the lent queues and sets DRIVER_OK', () => {
    const { core, dev, memory } = rig();
    const q0 = ownQueue(memory, 0);
    core.attachQueue(0, q0);
    assert.equal(core.activateWithLentQueues(), false);
    assert.equal(dev.activations, 0);
    negotiate(core);
    assert.equal(core.activateWithLentQueues(), true);
    assert.equal(core.status, NEGOTIATED | S.DRIVER_OK);
    assert.equal(dev.activations, 1);
    const ctx = core.activeContext!;
    assert.equal(ctx, dev.context);
    assert.equal(ctx.queue(0), q0, 'the queue the transport built, not one from the registers');
    assert.equal(ctx.queue(1), null);
    assert.equal(ctx.features, F.VERSION_1 | F.EVENT_IDX);
    assert.equal(core.activateWithLentQueues(), true, 'idempotent');
    assert.equal(dev.activations, 1);
    assert.throws(() => core.attachQueue(7, q0), (e: VirtioError) => e.code === ErrorCode.INVALID_ARGUMENT);
  });

  it('detachQueue takes a queue back without a queue reset (2.6.1 is not involved); no notification is sent for it', () => {
    const { core, dev, memory, irq } = rig();
    negotiate(core);
    const q1 = ownQueue(memory, 1);
    core.attachQueue(1, q1);
    core.activateWithLentQueues();
    assert.equal(core.detachQueue(1), q1);
    assert.equal(core.detachQueue(1), null);
    assert.deepEqual(dev.queueResets, [], 'a stopped ring is not a 2.6.1 queue reset');
    core.activeContext!.notifyUsed(1);
    assert.deepEqual(irq.used, []);
    core.attachQueue(1, q1);
    assert.equal(core.activeContext!.queue(1), q1, 'lent again (a restarted ring)');
  });

  it('device/content/2: a device throwing in activate sets DEVICE_NEEDS_RESET with a configuration change; deactivate clears it and keeps the negotiation', () => {
    const { core, dev, irq } = rig();
    negotiate(core);
    dev.activate = () => {
      throw new Error('boom');
    };
    assert.equal(core.activateWithLentQueues(), false);
    assert.equal(core.status & S.DEVICE_NEEDS_RESET, S.DEVICE_NEEDS_RESET);
    assert.equal(irq.config, 1);
    assert.equal(core.activateWithLentQueues(), false, 'no start while it needs a reset');
    core.deactivate();
    assert.equal(core.status, NEGOTIATED);
    assert.equal(core.negotiatedFeatures, F.VERSION_1 | F.EVENT_IDX);
    assert.equal(core.needsResetReason, null);
    assert.equal(dev.resets, 1, '2.4: the device was reset');
  });

  it('deactivate kills the old context (device/content/8) and a new activation gets a fresh one', () => {
    const { core, dev, memory, irq } = rig();
    negotiate(core);
    core.attachQueue(0, ownQueue(memory, 0));
    core.activateWithLentQueues();
    const old = core.activeContext!;
    core.deactivate();
    assert.equal(core.active, false);
    assert.equal(old.queue(0), null, 'lent queues are dropped');
    old.notifyConfigChange();
    assert.equal(irq.config, 0);
    core.deactivate();
    assert.equal(dev.resets, 1, 'nothing to stop the second time');
    core.attachQueue(0, ownQueue(memory, 0));
    assert.equal(core.activateWithLentQueues(), true, 'no new negotiation needed');
    assert.notEqual(core.activeContext, old);
    assert.equal(dev.activations, 2);
  });

  it('notifyUsedNow: on a context only where the transport sends notifications at once (usedBufferNow), with event suppression applied', () => {
    const plain = rig();
    negotiate(plain.core, F.VERSION_1);
    plain.core.attachQueue(0, ownQueue(plain.memory, 0, F.VERSION_1));
    plain.core.activateWithLentQueues();
    assert.equal(plain.core.activeContext!.notifyUsedNow, undefined, 'a transport without usedBufferNow');

    const memory = GuestMemory.allocate(1 << 20);
    const calls: string[] = [];
    const core = new DeviceCore(new EchoDevice({}), {
      memory,
      interrupts: { usedBuffer: (q) => calls.push(`deferred ${q}`), usedBufferNow: (q) => calls.push(`now ${q}`), configChange: () => undefined },
    });
    negotiate(core, F.VERSION_1);
    const q0 = ownQueue(memory, 0, F.VERSION_1);
    core.attachQueue(0, q0);
    core.activateWithLentQueues();
    const ctx = core.activeContext!;
    const l = splitRingLayout(16, 0x1000);
    const drv = createDriverQueue<number>(memory, { size: 16, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.VERSION_1, index: 0 });
    const chain = q0.createChain();
    const useOne = (): void => {
      assert.ok(drv.add([], [{ addr: 0x80000, len: 8 }], 1));
      drv.kick();
      assert.ok(q0.pop(chain));
      q0.push(chain, 0);
    };
    useOne();
    ctx.notifyUsedNow!(0);
    useOne();
    ctx.notifyUsed(0);
    assert.deepEqual(calls, ['now 0', 'deferred 0']);
    // The driver suppresses notifications (2.7.7, VIRTQ_AVAIL_F_NO_INTERRUPT): none is sent.
    memory.writeU16(l.driverAddr, 1, true);
    useOne();
    ctx.notifyUsedNow!(0);
    memory.writeU16(l.driverAddr, 0, true);
    // A dead context sends nothing.
    useOne();
    core.deactivate();
    ctx.notifyUsedNow!(0);
    assert.deepEqual(calls, ['now 0', 'deferred 0']);
  });
});
