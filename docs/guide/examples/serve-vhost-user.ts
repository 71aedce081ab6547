// The library side of `virtio-ts blk`: serve a device over vhost-user on a Unix socket, as QEMU
// or cloud-hypervisor would connect to it, and drive it from this process with virtio-ts's own
// vhost-user front-end (shared memory, eventfds and fd passing through the native addon).
// Run: node dist/docs/guide/examples/serve-vhost-user.js
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceId } from 'virtio-ts';
import { BlkDevice, MemoryBackend } from 'virtio-ts/devices';
import { BlkDriver } from 'virtio-ts/driver';
import { VhostUserDriverTransport, serveVhostUser, startVhostUserDriver } from 'virtio-ts/vhost-user';

const dir = mkdtempSync(join(tmpdir(), 'virtio-ts-guide-'));
const socketPath = join(dir, 'blk.sock');
const disk = new MemoryBackend(4 << 20);
// One device object, reset before each front-end after the first; or pass a factory.
const server = await serveVhostUser({ device: new BlkDevice(disk, { serial: 'vhost-user-disk' }), socketPath });
try {
  // What QEMU's vhost-user-blk does, from TypeScript: connect, negotiate, share memory, start rings.
  const transport = await VhostUserDriverTransport.connect(socketPath, { deviceId: DeviceId.BLOCK });
  try {
    const driver = await startVhostUserDriver(transport, { wantedFeatures: (1n << 64n) - 1n });
    const blk = new BlkDriver(driver.context);
    await blk.write(0, new Uint8Array(512).fill(0x5a));
    assert.equal((await blk.read(0, 512))[100], 0x5a);
    assert.equal(disk.data[100], 0x5a, 'the back-end wrote the RAM disk');
    assert.equal(await blk.getId(), 'vhost-user-disk');
    console.log(`served over vhost-user at ${socketPath}: ${blk.capacity} sectors, write and read back`);
  } finally {
    transport.close();
  }
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
