export { MemDevice, type MemDeviceOptions, type MemHostMemory } from './mem-device.js';
export { MemDriver, MemDeviceBusyError, MemRequestError, type MemAnswer, type MemDriverOptions, type MemRegionInfo, type MemResizeResult, type MemSizes } from './mem-driver.js';
export { MemBlockMap } from './mem-block-map.js';
export { MEM_TYPE, type MemDeviceArgs } from './mem-type.js';
