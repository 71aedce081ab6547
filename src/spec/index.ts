/**
 * Every number of the virtio 1.4 specification both sides use: device ids, status and feature bits, ring layouts, per-device structures, request codes and config layouts.
 *
 * @module spec
 */
export * from './features.js';
export * from './status.js';
export * from './device-id.js';
export * from './ring.js';
export * from './blk.js';
export * from './blk-zoned.js';
export * from './entropy.js';
export * from './input.js';
export * from './balloon.js';
export * from './config-layout.js';
export * from './fs.js';
export * from './vsock.js';
export * from './net.js';
export * from './console.js';
export * from './scsi.js';
export * from './9p.js';
export * from './mem.js';
export * from './rtc.js';
export * from './i2c.js';
export * from './gpio.js';
export * from './gpu.js';
export * from './pmem.js';
export * from './crypto.js';
export * from './sound.js';
export * from './can.js';
export * from './spi.js';
export * from './rpmb.js';
export * from './scmi.js';
export * from './media.js';
export * from './iommu.js';
export * from './admin.js';
