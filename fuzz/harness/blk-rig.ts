/** A blk device on the memory backend, the device most targets put behind a ring. */
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { CoreRig } from './core-rig.js';
import { Reusable } from './reuse.js';

export const BLK_SECTORS = 64;

export function memoryBlk(queueSize: number): { device: BlkDevice; backend: MemoryBackend } {
  const backend = new MemoryBackend(BLK_SECTORS * 512);
  const device = new BlkDevice(backend, { queueSize, serial: 'fuzz', numQueues: 1 });
  return { device, backend };
}

/** A reusable CoreRig with a blk device whose RAM disk is zeroed at each start. */
export function reusableBlkRig(queueSize: number): Reusable<CoreRig> {
  return new Reusable(() => {
    const { device, backend } = memoryBlk(queueSize);
    return new CoreRig({ device, queueSize, resetHost: () => backend.data.fill(0), hostState: () => [backend.data] });
  });
}
