/**
 * Picks the driver-side ring format the features negotiated: packed (2.8) with RING_PACKED,
 * else split (2.7). The device side has its own factory in queue/ (createDeviceQueue); this
 * one lives with the driver queues it builds, so queue/ never depends on driver/.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import { isPackedConfig } from '../queue/create-queue.js';
import type { DriverQueue, QueueConfig } from '../queue/types.js';
import { PackedDriverQueue, type PackedDriverQueueOptions } from './packed-driver-queue.js';
import { SplitDriverQueue } from './split-driver-queue.js';

/** Options for either driver queue (the split and packed option shapes are the same). */
export type DriverQueueOptions = PackedDriverQueueOptions;

/** Driver side of the queue `config` describes: PackedDriverQueue with RING_PACKED, else SplitDriverQueue. */
export function createDriverQueue<T>(memory: GuestMemory, config: QueueConfig, opts: DriverQueueOptions = {}): DriverQueue<T> {
  return isPackedConfig(config) ? new PackedDriverQueue<T>(memory, config, opts) : new SplitDriverQueue<T>(memory, config, opts);
}
