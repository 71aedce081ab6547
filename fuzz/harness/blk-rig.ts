/** A blk device on the memory backend, the device most targets put behind a ring. */
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';

export const BLK_SECTORS = 64;

export function memoryBlk(queueSize: number): { device: BlkDevice; backend: MemoryBackend } {
  const backend = new MemoryBackend(BLK_SECTORS * 512);
  const device = new BlkDevice(backend, { queueSize, serial: 'fuzz', numQueues: 1 });
  return { device, backend };
}
