/**
 * Public queue API: types, descriptor chains, both ring formats, their layouts and the factory.
 *
 * @module queue
 */
export type { DeviceQueue, DriverQueue, QueueConfig, QueuePeek, QueueState, Segment } from './types.js';
export { ChainCursor, DescriptorChain, REGION_SPLIT_SLACK, chainCapacityForQueue, writeWritableByteAt, type SpanFn } from './chain.js';
export { SplitQueue } from './split-queue.js';
export { DIRECT_BATCH, DIRECT_MAX_SEGMENTS, DirectBatch } from './direct-batch.js';
export { PackedQueue } from './packed-queue.js';
export { createDeviceQueue, isPackedConfig } from './create-queue.js';
export { type SplitRingAddresses, legacySplitRingLayout, splitRingLayout } from './split-layout.js';
export { type PackedRingAddresses, packedNeedEvent, packedRingLayout } from './packed-layout.js';
