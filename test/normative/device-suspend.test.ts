/**
 * Device Suspend (VIRTIO_F_SUSPEND, content.tex "Device Suspend"): the core runs the protocol
 * for a device with suspend and resume hooks (blk here, on the queue server), and VirtioDriver
 * suspends and resumes it. Each test drives a real BlkDevice through the in-process transport.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { BlkDriver } from '../../src/devices/blk/blk-driver.js';
import type { BlkBackend } from '../../src/devices/blk/backend.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { DeviceCore } from '../../src/device/device-core.js';
import { createLoopback, type Loopback } from '../../src/testing/loopback.js';

const SIZE = 1 << 20;

/** A memory disk whose reads wait for `release()` while `holding`. */
class HoldingBackend extends MemoryBackend {
  holding = false;
  private held: (() => void)[] = [];
  get heldCount(): number {
    return this.held.length;
  }
  override read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> | void {
    if (!this.holding) return super.read(offset, dst, dstOff, len);
    return new Promise((resolve) => this.held.push(() => resolve(super.read(offset, dst, dstOff, len))));
  }
  release(): void {
    for (const r of this.held.splice(0)) r();
  }
}

async function rig(backend: BlkBackend = new MemoryBackend(SIZE)): Promise<{ lb: Loopback; blk: BlkDevice; drv: BlkDriver; configChanges: () => number }> {
  const blk = new BlkDevice(backend);
  const lb = await createLoopback(blk, { queueSize: 16 });
  const drv = new BlkDriver(lb.context);
  // After the driver's own handler is set: this one replaces it and counts (the tests read
  // the configuration themselves).
  let changes = 0;
  lb.context.onConfigChange(() => void changes++);
  return { lb, blk, drv, configChanges: () => changes };
}

const isCode = (code: string) => (e: unknown) => e instanceof VirtioError && e.code === code;

describe('Device Suspend (VIRTIO_F_SUSPEND)', { timeout: 20_000 }, () => {
  it('the core offers SUSPEND for a device with suspend and resume hooks, and the driver accepts it (a device without them never offers it)', async () => {
    const { lb } = await rig();
    try {
      assert.ok((lb.core.deviceFeatures() & F.SUSPEND) !== 0n);
      assert.ok((lb.driver.features & F.SUSPEND) !== 0n);
      const echo = new DeviceCore(new EchoDevice({ transportFeatures: F.VERSION_1 | F.SUSPEND }), {
        memory: GuestMemory.allocate(SIZE),
        interrupts: { usedBuffer: () => undefined, configChange: () => undefined },
      });
      assert.equal(echo.deviceFeatures() & F.SUSPEND, 0n, 'listing the bit is not enough');
    } finally {
      await lb.close();
    }
  });

  it('device/content/13: SUSPEND written before the device is initialized is ignored', () => {
    const blk = new BlkDevice(new MemoryBackend(SIZE));
    const core = new DeviceCore(blk, { memory: GuestMemory.allocate(SIZE), interrupts: { usedBuffer: () => undefined, configChange: () => undefined } });
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    core.setDriverFeatures(F.VERSION_1 | F.SUSPEND);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.ok((core.negotiatedFeatures & F.SUSPEND) !== 0n);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.SUSPEND);
    assert.equal(core.status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK, 'no SUSPEND before DRIVER_OK');
    assert.equal(core.suspended, false);
  });

  it('device/content/19, driver/content/26: buffers being processed are used and notified before the device presents SUSPEND 1 and DRIVER_OK 0; the driver waits for that', async () => {
    const backend = new HoldingBackend(SIZE);
    backend.data.fill(0x3c, 0, 4096);
    const { lb, drv } = await rig(backend);
    try {
      backend.holding = true;
      const reads = [drv.read(0, 512), drv.read(1, 512), drv.read(2, 512)];
      await new Promise((r) => setImmediate(r));
      assert.equal(backend.heldCount, 3);
      let suspended = false;
      const suspending = lb.driver.suspend().then(() => (suspended = true));
      await new Promise((r) => setTimeout(r, 5));
      // Still processing: DRIVER_OK stays set and SUSPEND clear until the reads are used.
      assert.equal(suspended, false);
      assert.equal(lb.transport.getStatus() & (Status.SUSPEND | Status.DRIVER_OK), Status.DRIVER_OK);
      backend.holding = false;
      backend.release();
      for (const r of await Promise.all(reads)) assert.ok(r.every((b) => b === 0x3c), 'every read in flight was used with its data');
      await suspending;
      const st = lb.transport.getStatus();
      assert.equal(st & Status.SUSPEND, Status.SUSPEND);
      assert.equal(st & Status.DRIVER_OK, 0);
    } finally {
      await lb.close();
    }
  });

  it('device/content/14, driver/content/27, driver/content/28: while suspended the driver makes no buffer available and sends no notification; the device consumes nothing', async () => {
    const { lb, drv } = await rig();
    try {
      await lb.driver.suspend();
      await assert.rejects(drv.read(0, 512), isCode(ErrorCode.DEVICE_SUSPENDED));
      assert.throws(() => lb.context.kick(0), isCode(ErrorCode.DEVICE_SUSPENDED));
      // A buffer put in the ring behind the driver's back and notified: the device does not touch it.
      const q = lb.context.queue(0);
      const hdr = lb.dma.alloc(16);
      const status = lb.dma.alloc(1);
      lb.memory.fill(status, 1, 0xee);
      assert.ok(q.add([{ addr: hdr, len: 16 }], [{ addr: status, len: 1 }], 99));
      q.kick();
      lb.transport.notify(0);
      await new Promise((r) => setTimeout(r, 5));
      assert.equal(lb.memory.readU8(status), 0xee, 'the suspended device did not process it');
      assert.equal(q.takeUsed(), undefined);
    } finally {
      await lb.close();
    }
  });

  it('device/content/15, device/content/16: a configuration change while suspended is not notified until the device resumes', async () => {
    const backend = new MemoryBackend(SIZE);
    const { lb, configChanges } = await rig(backend);
    try {
      await lb.driver.suspend();
      const before = configChanges();
      lb.core.configChanged();
      await new Promise((r) => setTimeout(r, 2));
      assert.equal(configChanges(), before, 'no notification while suspended');
      await lb.driver.resume();
      await new Promise((r) => setTimeout(r, 2));
      assert.equal(configChanges(), before + 1, 'sent when it resumed');
    } finally {
      await lb.close();
    }
  });

  it('driver/content/29, device: no configuration write while suspended (the driver refuses, the device ignores)', async () => {
    const { lb, blk } = await rig();
    try {
      await lb.driver.suspend();
      assert.throws(() => lb.context.writeConfig(32, new Uint8Array([0])), isCode(ErrorCode.DEVICE_SUSPENDED));
      const wb = blk.writeback;
      lb.core.writeConfigBytes(32, new Uint8Array([wb ? 0 : 1]));
      assert.equal(blk.writeback, wb, 'the device ignored a write while suspended');
    } finally {
      await lb.close();
    }
  });

  it('device/content/18, driver/content/30: resume sets DRIVER_OK; the device clears SUSPEND and serves again, including requests made while it was suspending', async () => {
    const { lb, drv } = await rig();
    try {
      await drv.write(8, new Uint8Array(512).fill(0x77));
      await lb.driver.suspend();
      await lb.driver.resume();
      const st = lb.transport.getStatus();
      assert.equal(st & (Status.SUSPEND | Status.DRIVER_OK), Status.DRIVER_OK);
      assert.equal(lb.driver.suspended, false);
      assert.ok((await drv.read(8, 512)).every((b) => b === 0x77));
      // Suspend and resume again: the protocol repeats.
      await lb.driver.suspend();
      await lb.driver.resume();
      assert.ok((await drv.read(8, 512)).every((b) => b === 0x77));
    } finally {
      await lb.close();
    }
  });

  it('device/content/17, device/content/18: a device that fails to suspend or to resume sets DEVICE_NEEDS_RESET; the driver sees it', async () => {
    for (const failing of ['suspend', 'resume'] as const) {
      const blk = new BlkDevice(new MemoryBackend(SIZE));
      if (failing === 'suspend') blk.suspend = () => Promise.reject(new VirtioError(ErrorCode.DEVICE_ERROR, 'cannot stop'));
      else
        blk.resume = () => {
          throw new VirtioError(ErrorCode.DEVICE_ERROR, 'cannot restart');
        };
      const lb = await createLoopback(blk, { queueSize: 16 });
      try {
        if (failing === 'suspend') {
          await assert.rejects(lb.driver.suspend(), isCode(ErrorCode.DEVICE_NEEDS_RESET));
        } else {
          await lb.driver.suspend();
          await assert.rejects(lb.driver.resume(), isCode(ErrorCode.DEVICE_NEEDS_RESET));
        }
        assert.ok(lb.transport.getStatus() & Status.DEVICE_NEEDS_RESET, failing);
      } finally {
        await lb.close();
      }
    }
  });

  it('driver/content/25: the driver does not suspend a device without VIRTIO_F_SUSPEND', async () => {
    const blk = new BlkDevice(new MemoryBackend(SIZE));
    const lb = await createLoopback(blk, { queueSize: 16, refuseFeatures: F.SUSPEND });
    try {
      assert.equal(lb.driver.features & F.SUSPEND, 0n);
      await assert.rejects(lb.driver.suspend(), isCode(ErrorCode.FEATURES_REJECTED));
      assert.equal(lb.transport.getStatus() & Status.SUSPEND, 0, 'the bit was never written');
    } finally {
      await lb.close();
    }
  });
});
