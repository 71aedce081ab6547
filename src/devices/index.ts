/**
 * Every device type of virtio 1.4 (chapter 5) with its driver, backends and CLI options, and the device registry
 * (`deviceTypes`, `registerDeviceType`) that feeds the CLI, the capabilities and the transport matrix.
 *
 * @module devices
 */
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
export * from './mem/index.js';
export * from './rtc/index.js';
export * from './i2c/index.js';
export * from './gpio/index.js';
export * from './gpu/index.js';
export * from './pmem/index.js';
export * from './crypto/index.js';
export * from './sound/index.js';
export * from './can/index.js';
export * from './spi/index.js';
export type { DeviceCli, DeviceType, MatrixCase, VhostUserTypeInfo } from './device-type.js';
export { BUILTIN_DEVICE_TYPES, deviceType, deviceTypes, registerDeviceType, unregisterDeviceType } from './registry.js';
export * from './rpmb/index.js';
export * from './scmi/index.js';
export * from './media/index.js';
export * from './iommu/index.js';
export type { BackendOptions, CliIo, MetricsAddress, OptionValues } from '../cli/options.js';
