export { BALLOON_DEVICE_FEATURES, BalloonDevice, type BalloonDeviceOptions, type BalloonPfnListener, type BalloonStats } from './balloon-device.js';
export { BalloonDriver, type BalloonDriverOptions } from './balloon-driver.js';
export { BALLOON_TYPE, type BalloonDeviceArgs } from './balloon-type.js';
