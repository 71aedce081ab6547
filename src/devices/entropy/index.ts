export { EntropyDevice, type EntropyDeviceOptions } from './entropy-device.js';
