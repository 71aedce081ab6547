/**
 * The package's public entry points, imported by name as a user's program would (`virtio-ts`,
 * `virtio-ts/devices`, ...: package.json "exports"), and one round trip through them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

// Imported by package name at run time: this checks the "exports" map itself, not the sources.
const load = (name: string): Promise<Record<string, unknown>> => import(name) as Promise<Record<string, unknown>>;

const ENTRY_POINTS: Record<string, readonly string[]> = {
  'virtio-ts': ['VirtioError', 'ErrorCode', 'F', 'Status', 'DeviceId', 'GuestMemory', 'createLogger'],
  'virtio-ts/spec': ['F', 'Status', 'DeviceId'],
  'virtio-ts/memory': ['GuestMemory'],
  'virtio-ts/queue': ['SplitQueue', 'PackedQueue', 'DescriptorChain', 'createDeviceQueue'],
  'virtio-ts/device': ['DeviceCore', 'QueueServer', 'QueueRequest'],
  'virtio-ts/devices': ['BlkDevice', 'MemoryBackend', 'FileBackend', 'EntropyDevice', 'deviceTypes', 'registerDeviceType', 'BLK_TYPE', 'ENTROPY_TYPE'],
  'virtio-ts/driver': ['VirtioDriver', 'BlkDriver', 'EntropyDriver', 'SplitDriverQueue', 'PackedDriverQueue', 'DmaAllocator', 'createDriverQueue'],
  'virtio-ts/transport': ['PciDeviceTransport', 'MmioDeviceTransport', 'CcwDeviceTransport', 'LoopbackBus'],
  'virtio-ts/vhost-user': ['serveVhostUser', 'VhostUserServer', 'VhostUserBackend', 'VhostUserDriverTransport', 'startVhostUserDriver', 'capabilities'],
  'virtio-ts/platform': ['loadNativePlatform', 'FakePlatform', 'defaultPlatform'],
  'virtio-ts/testing': ['createLoopback', 'EchoDevice', 'startDeviceWorker', 'registryDevice', 'runMatrixCase', 'matrixCells'],
};

describe('public API (package.json exports)', () => {
  for (const [name, names] of Object.entries(ENTRY_POINTS)) {
    it(`${name} exports ${names.join(', ')}`, async () => {
      const m = await load(name);
      for (const n of names) assert.ok(m[n] !== undefined, `${name} has no export ${n}`);
    });
  }

  it('a user program: BlkDevice on a RAM disk, driven by BlkDriver over the in-process loopback', async () => {
    const devices = await load('virtio-ts/devices');
    const driver = await load('virtio-ts/driver');
    const testing = await load('virtio-ts/testing');
    type Ctor = new (...a: unknown[]) => unknown;
    const backend = new (devices['MemoryBackend'] as Ctor)(1 << 20);
    const device = new (devices['BlkDevice'] as Ctor)(backend, { serial: 'public-api' });
    const lb = (await (testing['createLoopback'] as (d: unknown, o: unknown) => Promise<unknown>)(device, { packed: true })) as {
      context: unknown;
      close(): Promise<void>;
    };
    try {
      const blk = new (driver['BlkDriver'] as Ctor)(lb.context) as {
        capacity: number;
        write(s: number, d: Uint8Array): Promise<void>;
        read(s: number, n: number): Promise<Uint8Array>;
        getId(): Promise<string>;
      };
      assert.equal(blk.capacity, 2048);
      const data = Uint8Array.from({ length: 4096 }, (_, i) => (i * 31) & 0xff);
      await blk.write(8, data);
      assert.deepEqual(await blk.read(8, 4096), data);
      assert.equal(await blk.getId(), 'public-api');
    } finally {
      await lb.close();
    }
  });
});
