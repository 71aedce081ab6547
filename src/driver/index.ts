/** Public driver API: the generic driver, driver-side queues, the DMA allocator and the contracts. */
export type { DriverContext, DriverInterruptHandler, DriverQueueAddresses, DriverTransport } from './types.js';
export { DmaAllocator } from './dma-allocator.js';
export { SplitDriverQueue, type SplitDriverQueueOptions } from './split-driver-queue.js';
export { PackedDriverQueue, type PackedDriverQueueOptions } from './packed-driver-queue.js';
export { type DriverQueueOptions, createDriverQueue } from './create-queue.js';
export { VirtioDriver, type VirtioDriverOptions } from './virtio-driver.js';
export {
  BLK_DRIVER_FEATURES,
  BlkDriver,
  type BlkDriverConfig,
  type BlkDriverOptions,
  type BlkLifetimeReport,
  type BlkRange,
  BlkRequestError,
} from './blk-driver.js';
export { EntropyDriver, type EntropyDriverOptions } from './entropy-driver.js';
