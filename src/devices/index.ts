/** Public device implementations: virtio-blk (5.2) with its backends, and entropy (5.4). */
export * from './blk/index.js';
export * from './entropy/index.js';
