export type { BlkBackend, BlkLifetimeInfo } from './backend.js';
export { BlkDevice, type BlkDeviceOptions, type BlkGeometry } from './blk-device.js';
export { ZonedModel, type ZonedOptions } from './zoned-model.js';
export { ZonedBlkDriver, BLK_ZONED_DRIVER_FEATURES, type BlkZoneInfo, type BlkZonedCharacteristics } from './blk-zoned-driver.js';
export { FileBackend } from './file-backend.js';
export { MemoryBackend } from './memory-backend.js';
export { BLK_TYPE, type BlkMemoryDeviceArgs } from './blk-type.js';
export { BLK_CLI, type BlkOptions } from './cli.js';
export * from './nbd/index.js';
