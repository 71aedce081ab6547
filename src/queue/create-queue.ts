/**
 * Picks the ring format the features negotiated: packed (2.8) with RING_PACKED, else split (2.7).
 * The only place on the device side that branches on the format; everything else talks to
 * DeviceQueue. (The driver side's factory is driver/create-queue.ts.)
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { PackedQueue } from './packed-queue.js';
import { SplitQueue } from './split-queue.js';
import type { DeviceQueue, QueueConfig } from './types.js';

/** Whether a queue with these negotiated features uses the packed layout. */
export function isPackedConfig(config: QueueConfig): boolean {
  return (config.features & F.RING_PACKED) !== 0n;
}

/** Device side of the queue `config` describes: PackedQueue with RING_PACKED, else SplitQueue. */
export function createDeviceQueue(memory: GuestMemory, config: QueueConfig): DeviceQueue {
  return isPackedConfig(config) ? new PackedQueue(memory, config) : new SplitQueue(memory, config);
}
