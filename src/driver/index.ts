/**
 * Public driver API: the generic driver, driver-side queues, the DMA allocator and the contracts.
 *
 * @module driver
 */
export type { DriverContext, DriverInterruptHandler, DriverQueueAddresses, DriverStopEvent, DriverTransport, QueueResetWaitOptions } from './types.js';
export { DriverStopReason } from './types.js';
export {
  type DeviceDriver,
  type DeviceDriverInfo,
  type DeviceDriverType,
  ConfigSpaceTooSmallError,
  DeviceDriverMismatchError,
  DriverFeaturesError,
  attachDeviceDriver,
  checkDriverContext,
} from './device-driver.js';
export { RequestAbortReason, RequestAbortedError, RequestQueue, type RequestQueueOptions } from './request-queue.js';
export { DEFAULT_TRANSPORT_FEATURES, type StartDeviceDriverOptions, type StartedDeviceDriver, startDeviceDriver } from './start-device-driver.js';
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
} from '../devices/blk/blk-driver.js';
export { EntropyDriver, type EntropyDriverOptions } from '../devices/entropy/entropy-driver.js';
