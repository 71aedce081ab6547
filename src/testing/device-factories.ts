/**
 * Device factories by name, for code that builds a device on another thread (a device worker
 * gets a module URL and an export name, since a device object cannot cross threads).
 */
import type { VirtioDevice } from '../device/types.js';
import { BlkDevice, type BlkDeviceOptions } from '../devices/blk/blk-device.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { EchoDevice, type EchoDeviceOptions } from './echo-device.js';

/** URL of this module, to pass as `module` to `startDeviceWorker`. */
export const DEVICE_FACTORIES_MODULE = import.meta.url;

/** `args`: EchoDeviceOptions. */
export function echoDevice(args: unknown): VirtioDevice {
  return new EchoDevice((args ?? {}) as EchoDeviceOptions);
}

export interface BlkMemoryDeviceArgs {
  /** Disk contents; pass a view of a SharedArrayBuffer to see the disk from another thread. */
  data?: Uint8Array;
  /** Disk size when `data` is not given (default 1 MiB). */
  size?: number;
  queueSize?: number;
}

/** A virtio-blk device on a RAM disk. `args`: BlkMemoryDeviceArgs. */
export function blkMemoryDevice(args: unknown): VirtioDevice {
  const a = (args ?? {}) as BlkMemoryDeviceArgs;
  const backend = a.data ? new MemoryBackend(a.data.length, { data: a.data }) : new MemoryBackend(a.size ?? 1 << 20);
  const opts: BlkDeviceOptions = {};
  if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
  return new BlkDevice(backend, opts);
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
