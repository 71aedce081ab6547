export { PmemDevice, type PmemDeviceOptions } from './pmem-device.js';
export { PmemFileBackend, PmemMemoryBackend, PMEM_ALIGN, type PmemBackend } from './pmem-backend.js';
export { PmemDriver, PmemFlushError, type PmemDriverOptions, type PmemRange } from './pmem-driver.js';
export { PMEM_TYPE, type PmemDeviceArgs } from './pmem-type.js';
