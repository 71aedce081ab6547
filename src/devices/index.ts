/** Public device implementations: virtio-blk (5.2) with its backends, entropy (5.4), and the device registry. */
export * from './blk/index.js';
export * from './entropy/index.js';
export * from './fs/index.js';
export * from './input/index.js';
export * from './balloon/index.js';
export * from './vsock/index.js';
export * from './net/index.js';
export * from './console/index.js';
export * from './scsi/index.js';
export * from './9p/index.js';
export type { DeviceCli, DeviceType, MatrixCase, VhostUserTypeInfo } from './device-type.js';
export { BUILTIN_DEVICE_TYPES, deviceType, deviceTypes, registerDeviceType, unregisterDeviceType } from './registry.js';
export * from './rpmb/index.js';
export * from './scmi/index.js';
export * from './media/index.js';
export * from './iommu/index.js';
