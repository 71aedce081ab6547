export { RpmbDevice, type RpmbDeviceOptions } from './rpmb-device.js';
export { RpmbDriver, RpmbResultError, decodeRpmbFrame, rpmbFrame, type RpmbDriverConfig, type RpmbDriverOptions, type RpmbResponseFrame } from './rpmb-driver.js';
export { FileRpmbStore, MemoryRpmbStore, RPMB_KEY_SIZE, type RpmbInitialState, type RpmbStore } from './rpmb-store.js';
export { RPMB_TYPE, type RpmbDeviceArgs } from './rpmb-type.js';
