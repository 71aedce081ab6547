export { EntropyDevice, type EntropyDeviceOptions } from './entropy-device.js';
export { ENTROPY_TYPE, type EntropyDeviceArgs } from './entropy-type.js';
export { ENTROPY_CLI } from './cli.js';
