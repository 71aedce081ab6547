export type { BlkBackend, BlkLifetimeInfo } from './backend.js';
export { BlkDevice, type BlkDeviceOptions, type BlkGeometry } from './blk-device.js';
export { FileBackend } from './file-backend.js';
export { MemoryBackend } from './memory-backend.js';
