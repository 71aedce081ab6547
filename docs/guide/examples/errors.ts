// Errors and their codes: what a driver sees when the device refuses a request, when the driver
// itself refuses one, and when the device fails. Run: node dist/docs/guide/examples/errors.js
import assert from 'node:assert/strict';
import { BlkStatus, ErrorCode, LogLevel, VirtioError, createLogger, isVirtioError } from 'virtio-ts';
import { BlkDevice, EntropyDevice, MemoryBackend } from 'virtio-ts/devices';
import { BlkDriver, BlkRequestError } from 'virtio-ts/driver';
import { createLoopback } from 'virtio-ts/testing';

const lb = await createLoopback(new BlkDevice(new MemoryBackend(64 * 1024))); // 128 sectors
try {
  // The device answers a read past the end with VIRTIO_BLK_S_IOERR: a REQUEST_FAILED error
  // carrying the status byte. The device and the ring are fine afterwards.
  const blk = new BlkDriver(lb.context);
  await assert.rejects(blk.read(128, 512), (e: unknown) => {
    assert.ok(e instanceof BlkRequestError);
    assert.equal(e.code, ErrorCode.REQUEST_FAILED);
    assert.equal(e.status, BlkStatus.IOERR);
    return true;
  });
  assert.equal((await blk.read(0, 512)).length, 512, 'the next request is served');

  // With checkBounds the driver refuses it before sending anything (driver/blk/11).
  const checked = new BlkDriver(lb.context, { checkBounds: true });
  await assert.rejects(checked.read(128, 512), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
} finally {
  await lb.close();
}

// A device that fails: DEVICE_NEEDS_RESET reaches the driver, with the device's own error as
// its cause (the loopback logs it as a warning too; a logger at ERROR level keeps it quiet).
class NoEntropySource extends EntropyDevice {
  override activate(): void {
    throw new VirtioError(ErrorCode.BACKEND_IO, 'the entropy source is gone');
  }
}
const quiet = createLogger(LogLevel.ERROR, 'example', () => {});
await assert.rejects(createLoopback(new NoEntropySource(), { logger: quiet }), (e: unknown) => {
  assert.ok(isVirtioError(e));
  assert.equal(e.code, ErrorCode.DEVICE_NEEDS_RESET);
  assert.ok(isVirtioError(e.cause) && e.cause.code === ErrorCode.BACKEND_IO);
  return true;
});
console.log('IOERR from the device, INVALID_ARGUMENT from the driver, DEVICE_NEEDS_RESET with its cause');
