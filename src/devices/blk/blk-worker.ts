/**
 * virtio-blk on ring worker threads (`virtio-ts blk --threads T`): what each worker opens (the
 * image file again, by path, or the RAM disk's SharedArrayBuffer) and the device it builds per
 * front-end session. The options are those of the main thread's device, so every thread's
 * device offers the same features and config.
 */
import type { Logger } from '../../log.js';
import type { WorkerDeviceFactory, WorkerDeviceSpec } from '../../device/worker-device.js';
import type { BlkBackend } from './backend.js';
import { BlkDevice, type BlkDeviceOptions } from './blk-device.js';
import { FileBackend } from './file-backend.js';
import { MemoryBackend } from './memory-backend.js';

/** What a blk worker is given (structured-cloneable). */
export interface BlkWorkerArgs {
  /** The image file, or null with `disk`. */
  readonly image: string | null;
  /** The RAM disk every thread shares, or null with `image`. */
  readonly disk: SharedArrayBuffer | null;
  /** Its sparse map (MemoryBackend `written`, sparseMapBytes long), shared too. */
  readonly written: SharedArrayBuffer | null;
  readonly readOnly: boolean;
  readonly numQueues: number;
  readonly queueSize: number;
  readonly serial: string | null;
}

/** The spec `runBackend` hands the worker pool for blk. */
export function blkWorkerSpec(args: BlkWorkerArgs): WorkerDeviceSpec {
  return { module: new URL('./blk-worker.js', import.meta.url).href, export: 'openBlkWorker', args };
}

export function blkDeviceOptions(a: BlkWorkerArgs, logger: Logger): BlkDeviceOptions {
  return {
    readOnly: a.readOnly,
    numQueues: a.numQueues,
    queueSize: a.queueSize,
    ...(a.serial !== null ? { serial: a.serial } : {}),
    logger,
  };
}

/** A RAM disk over shared storage (the same disk on every thread). */
export function sharedMemoryBackend(disk: SharedArrayBuffer, written: SharedArrayBuffer | null): MemoryBackend {
  return new MemoryBackend(disk.byteLength, { data: new Uint8Array(disk), ...(written ? { written: new Uint8Array(written) } : {}) });
}

/** Runs in the worker (WorkerDeviceSpec.export). */
export async function openBlkWorker(args: unknown, logger: Logger): Promise<WorkerDeviceFactory> {
  const a = args as BlkWorkerArgs;
  const backend: BlkBackend = a.image !== null ? await FileBackend.open(a.image, { readOnly: a.readOnly }) : sharedMemoryBackend(a.disk!, a.written);
  return {
    device: () => new BlkDevice(backend, blkDeviceOptions(a, logger)),
    close: () => backend.close(),
  };
}
