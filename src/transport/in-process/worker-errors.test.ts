/**
 * A device in a worker that throws: the error object stays on the worker's thread, its message
 * does not. The driver's DEVICE_NEEDS_RESET VirtioError carries it as `cause` (code
 * DEVICE_ERROR), at initialization (activate) and later (a queue handler).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioDriver } from '../../driver/virtio-driver.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { F } from '../../spec/features.js';
import { DEVICE_FACTORIES_MODULE, type FailingEchoDeviceArgs } from '../../testing/device-factories.js';
import { type DeviceWorkerConnection, startDeviceWorker } from './worker-transport.js';

async function withFailingWorker(args: FailingEchoDeviceArgs, body: (c: DeviceWorkerConnection) => Promise<void>): Promise<void> {
  const c = await startDeviceWorker({ module: DEVICE_FACTORIES_MODULE, factory: 'failingEchoDevice', args, memorySize: 1 << 20 });
  try {
    await body(c);
  } finally {
    await c.close();
  }
}

const WANTED = ((1n << 128n) - 1n) & ~F.RING_PACKED;

describe('device errors across a device worker', () => {
  it('a device throwing in activate: init fails with DEVICE_NEEDS_RESET whose cause carries the device message', async () => {
    await withFailingWorker({ failIn: 'activate', message: 'worker device: no backing file' }, async (c) => {
      const err = (() => {
        try {
          VirtioDriver.initSync(c.transport, { wantedFeatures: WANTED, dma: c.dma, queueSizes: [16] });
        } catch (e) {
          return e;
        }
        return assert.fail('init succeeded');
      })();
      assert.ok(err instanceof VirtioError);
      assert.equal(err.code, ErrorCode.DEVICE_NEEDS_RESET);
      assert.match(err.message, /worker device: no backing file/);
      assert.ok(err.cause instanceof VirtioError);
      assert.equal(err.cause.code, ErrorCode.DEVICE_ERROR);
      assert.equal(err.cause.message, 'worker device: no backing file');
    });
  });

  it('a device throwing in its queue handler: onNeedsReset gets the device message as cause', async () => {
    await withFailingWorker({ failIn: 'notify', message: 'worker device: handler bug' }, async (c) => {
      const drv = VirtioDriver.initSync(c.transport, { wantedFeatures: WANTED, dma: c.dma, queueSizes: [16] });
      assert.equal(drv.needsResetError, null);
      const seen = new Promise<VirtioError>((resolve, reject) => {
        const timer = setTimeout(() => reject(new VirtioError(ErrorCode.TIMEOUT, 'no DEVICE_NEEDS_RESET within 10 s')), 10_000);
        drv.onNeedsReset((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
      const buf = c.dma.alloc(16);
      assert.equal(drv.queue(0).add([{ addr: buf, len: 16 }], [], 1), true);
      drv.kick(0);
      const err = await seen;
      assert.equal(err.code, ErrorCode.DEVICE_NEEDS_RESET);
      assert.ok(err.cause instanceof VirtioError);
      assert.equal(err.cause.message, 'worker device: handler bug');
      assert.match(err.message, /handler bug/);
      drv.reset();
    });
  });
});
