export type { BlkBackend, BlkLifetimeInfo } from './backend.js';
export { BlkDevice, type BlkDeviceOptions, type BlkGeometry } from './blk-device.js';
export { FileBackend } from './file-backend.js';
export { MemoryBackend } from './memory-backend.js';
export { BLK_TYPE, type BlkMemoryDeviceArgs } from './blk-type.js';
export { BLK_CLI, BlkAio, type BlkOptions } from './cli.js';
export { UringBackend, type UringBackendOptions } from './uring-backend.js';
export { openImage, type ImageOpenOptions, type OpenedImage } from './uring-open.js';
