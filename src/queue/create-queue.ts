/**
 * Picks the ring format the features negotiated: packed (2.8) with RING_PACKED, else split (2.7).
 * The only place that branches on the format; everything else talks to DeviceQueue/DriverQueue.
 */
import { PackedDriverQueue, type PackedDriverQueueOptions } from '../driver/packed-driver-queue.js';
import { SplitDriverQueue } from '../driver/split-driver-queue.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { PackedQueue } from './packed-queue.js';
import { SplitQueue } from './split-queue.js';
import type { DeviceQueue, DriverQueue, QueueConfig } from './types.js';

/** Options for either driver queue (the split and packed option shapes are the same). */
export type DriverQueueOptions = PackedDriverQueueOptions;

/** Whether a queue with these negotiated features uses the packed layout. */
export function isPackedConfig(config: QueueConfig): boolean {
  return (config.features & F.RING_PACKED) !== 0n;
}

/** Device side of the queue `config` describes: PackedQueue with RING_PACKED, else SplitQueue. */
export function createDeviceQueue(memory: GuestMemory, config: QueueConfig): DeviceQueue {
  return isPackedConfig(config) ? new PackedQueue(memory, config) : new SplitQueue(memory, config);
}

/** Driver side of the queue `config` describes: PackedDriverQueue with RING_PACKED, else SplitDriverQueue. */
export function createDriverQueue<T>(memory: GuestMemory, config: QueueConfig, opts: DriverQueueOptions = {}): DriverQueue<T> {
  return isPackedConfig(config) ? new PackedDriverQueue<T>(memory, config, opts) : new SplitDriverQueue<T>(memory, config, opts);
}
