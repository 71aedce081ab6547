/**
 * Device factories by name, for code that builds a device on another thread (a device worker
 * gets a module URL and an export name, since a device object cannot cross threads).
 */
import type { VirtioDevice } from '../device/types.js';
import { EchoDevice, type EchoDeviceOptions } from './echo-device.js';

/** URL of this module, to pass as `module` to `startDeviceWorker`. */
export const DEVICE_FACTORIES_MODULE = import.meta.url;

export function echoDevice(args: unknown): VirtioDevice {
  return new EchoDevice((args ?? {}) as EchoDeviceOptions);
}
