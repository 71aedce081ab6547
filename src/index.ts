/**
 * The package root: errors (`VirtioError` and its codes), the specification's numbers, guest memory and logging.
 *
 * @module virtio-ts
 */
export * from './errors.js';
export * from './spec/index.js';
export * from './memory/index.js';
export * from './log.js';
export * from './admin/index.js';
