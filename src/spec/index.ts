export * from './features.js';
export * from './status.js';
export * from './device-id.js';
export * from './ring.js';
export * from './blk.js';
export * from './entropy.js';
export * from './config-layout.js';
export * from './console.js';
