/**
 * Device factories by name, for code that builds a device on another thread (a device worker
 * gets a module URL and an export name, since a device object cannot cross threads). Every
 * registered device type is reachable through `registryDevice`.
 */
import type { VirtioDevice } from '../device/types.js';
import { BLK_TYPE } from '../devices/blk/blk-type.js';
import { deviceType } from '../devices/registry.js';
import { ErrorCode, VirtioError } from '../errors.js';
import { EchoDevice, type EchoDeviceOptions } from './echo-device.js';

export type { BlkMemoryDeviceArgs } from '../devices/blk/blk-type.js';

/** URL of this module, to pass as `module` to `startDeviceWorker`. */
export const DEVICE_FACTORIES_MODULE = import.meta.url;

/** `args`: EchoDeviceOptions. */
export function echoDevice(args: unknown): VirtioDevice {
  return new EchoDevice((args ?? {}) as EchoDeviceOptions);
}

/** A virtio-blk device on a RAM disk. `args`: BlkMemoryDeviceArgs. */
export function blkMemoryDevice(args: unknown): VirtioDevice {
  return BLK_TYPE.createDevice(args);
}

/** `registryDevice`'s arguments: a registered type's name and its `createDevice` arguments. */
export interface RegistryDeviceArgs {
  /** The registered device type's name (`blk`, `rng`, ...). */
  readonly type: string;
  /** The arguments of its createDevice (structured-clonable). */
  readonly args?: unknown;
}

/**
 * A device of any registered type (`factory: 'registryDevice'`). Only the built-in types exist
 * in a fresh worker: a type registered at run time must be registered by the worker's module too.
 */
export function registryDevice(args: unknown): VirtioDevice {
  const a = (args ?? {}) as Partial<RegistryDeviceArgs>;
  const t = typeof a.type === 'string' ? deviceType(a.type) : undefined;
  if (!t) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no registered device type ${String(a.type)}`);
  return t.createDevice(a.args);
}

export interface FailingEchoDeviceArgs {
  /** Where the device throws: in `activate`, or in its first queue notification. */
  failIn: 'activate' | 'notify';
  /** The message of the error it throws. */
  message: string;
}

/**
 * An EchoDevice that throws (for tests of how a device's error reaches the driver across a
 * thread). `args`: FailingEchoDeviceArgs.
 */
export function failingEchoDevice(args: unknown): VirtioDevice {
  const a = args as FailingEchoDeviceArgs;
  const failure = new RangeError(a.message);
  if (a.failIn === 'notify') {
    const dev = new EchoDevice();
    dev.throwOnNotify = failure;
    return dev;
  }
  return new (class extends EchoDevice {
    override activate(): void {
      throw failure;
    }
  })();
}
