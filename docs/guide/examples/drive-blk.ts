// Drive a device with the library's own driver, to test it: a virtio-blk device on a RAM disk,
// BlkDriver over the in-process loopback (split, then packed rings), then the same device type
// through the transport matrix (PCI, MMIO, Channel I/O, vhost-user at register level).
// Run: node dist/docs/guide/examples/drive-blk.js
import assert from 'node:assert/strict';
import { DeviceId } from 'virtio-ts';
import { BLK_TYPE, BlkDevice, MemoryBackend } from 'virtio-ts/devices';
import { BlkDriver } from 'virtio-ts/driver';
import { MatrixTransport, createLoopback, matrixCells, runMatrixCase } from 'virtio-ts/testing';

for (const packed of [false, true]) {
  const disk = new MemoryBackend(1 << 20); // 1 MiB: 2048 sectors of 512 bytes
  const lb = await createLoopback(new BlkDevice(disk, { serial: 'guide-disk' }), { packed });
  try {
    const blk = new BlkDriver(lb.context);
    assert.equal(blk.capacity, 2048);
    const data = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
    await blk.write(8, data); // sector 8, eight sectors
    await blk.flush();
    assert.deepEqual(await blk.read(8, 4096), data);
    assert.deepEqual(disk.data.subarray(8 * 512, 8 * 512 + 4096), data, 'the bytes are on the RAM disk');
    assert.equal(await blk.getId(), 'guide-disk');
    console.log(`${packed ? 'packed' : 'split'} ring: wrote, flushed and read back 4 KiB`);
  } finally {
    await lb.close();
  }
}

// The registry record's matrix case (a fresh device and an `exercise(driver)` that checks it) on
// every transport that serves block devices, split and packed where the transport allows.
for (const { transport, packed } of matrixCells(DeviceId.BLOCK)) {
  if (transport === MatrixTransport.VHOST_USER) continue; // needs the native addon: see serve-vhost-user.ts
  await runMatrixCase(BLK_TYPE, transport, packed);
  console.log(`matrix: blk on ${transport}${packed ? ' (packed)' : ''} passed`);
}
