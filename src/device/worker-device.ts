/**
 * How a device type serves queues on worker threads: it names a module and an export (a
 * WorkerDeviceSpec, structured-cloneable, so it crosses to the worker in workerData) whose
 * function builds, inside the worker, what the worker needs: the device's storage opened once
 * per worker, and a fresh device over it for each front-end session. The main thread keeps its
 * own instance of the device for the features, status and config space; the worker's instance
 * serves only the rings the worker owns (its other queues are never lent to it).
 *
 * Storage must be reachable from every thread by itself: a file is opened again by path in each
 * worker, a RAM disk lives in a SharedArrayBuffer (posting a SharedArrayBuffer shares it, any
 * other buffer would be copied).
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { Logger } from '../log.js';
import type { VirtioDevice } from './types.js';

/** Where a worker thread finds the function that builds the device's ring side (module and export), and its argument. */
export interface WorkerDeviceSpec {
  /** URL of the module (file: URL, e.g. `new URL('./x-worker.js', import.meta.url).href`). */
  readonly module: string;
  /** The export: `(args, logger, thread) => WorkerDeviceFactory | Promise<WorkerDeviceFactory>` (thread: the worker's index). */
  readonly export: string;
  /** Its arguments (structured-cloneable; SharedArrayBuffers are shared, not copied). */
  readonly args: unknown;
}

/** What a worker builds from a WorkerDeviceSpec. */
export interface WorkerDeviceFactory {
  /**
   * A device in reset state for one front-end session, over the worker's storage. `args` are the
   * session's own (a net port's number when a thread serves several sockets), or undefined.
   */
  device(args?: unknown): VirtioDevice;
  /** The session `device(args)` was built for ended (its back-end is closed). */
  endSession?(args: unknown): void;
  /** Closes the worker's storage (the worker is ending). */
  close?(): Promise<void> | void;
}

/** A device type's worker entry: opens what thread `thread` (0-based) serves from (storage, its part of a switch). */
export type WorkerDeviceOpener = (args: unknown, logger: Logger, thread: number) => WorkerDeviceFactory | Promise<WorkerDeviceFactory>;

/** Loads a spec's module and opens the factory (in the worker). */
export async function openWorkerDevice(spec: WorkerDeviceSpec, logger: Logger, thread = 0): Promise<WorkerDeviceFactory> {
  const mod = (await import(spec.module)) as Record<string, unknown>;
  const open = mod[spec.export];
  if (typeof open !== 'function') {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `worker device: ${spec.module} has no function ${spec.export}`);
  }
  return (open as WorkerDeviceOpener)(spec.args, logger, thread);
}
