/**
 * `virtio-ts blk`: a virtio-blk device (5.2) over vhost-user, on a raw image file or a RAM disk.
 * The storage is opened once and shared by the device of each successive front-end connection,
 * so a front-end that reconnects (QEMU `reconnect=`) finds the disk as it left it.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { createLogger, type Logger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { BlkDevice } from './blk-device.js';
import { MemoryBackend } from './memory-backend.js';
import { openImage } from './uring-open.js';
import type { BlkBackend } from './backend.js';
import { DEFAULT_POLL_US_MEMORY, type BlkOptions } from './cli.js';

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(bytes % (1 << 20) === 0 ? 0 : 1)} MiB` : `${bytes} bytes`;
}

/** Test hooks of runBlk (crash-recovery tests wrap the storage to hold writes in flight). */
export interface BlkHooks {
  /** Wraps the opened storage before any device uses it. */
  readonly wrapBackend?: (backend: BlkBackend, logger: Logger) => BlkBackend;
}

export async function runBlk(options: BlkOptions, io: CliIo, hooks: BlkHooks = {}): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts blk', io.stderr);
  let backend: BlkBackend;
  let what: string;
  let aio = '';
  if (options.image !== null) {
    try {
      const opened = await openImage(options.image, {
        readOnly: options.readOnly,
        ...(options.aio !== undefined ? { aio: options.aio } : {}),
        direct: options.direct === true,
        writeThrough: options.writeThrough === true,
        logger,
      });
      backend = opened.backend;
      aio = opened.aio;
    } catch (e) {
      throw new VirtioError(ErrorCode.BACKEND_IO, `cannot open image ${options.image}: ${(e as Error).message}`, { cause: e });
    }
    what = `image ${options.image} (aio=${aio}${options.direct === true ? ', O_DIRECT' : ''}${options.writeThrough === true ? ', write-through' : ''})`;
  } else {
    backend = new MemoryBackend(options.memoryBytes!, { sparse: true });
    what = 'RAM disk';
    if (options.aio !== undefined || options.direct === true) logger.warn('--aio and --direct apply to --image; a RAM disk ignores them');
  }
  if (backend.size < 512) {
    await backend.close();
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what} is ${backend.size} bytes: a disk holds at least one 512-byte sector`);
  }
  if (backend.size % 512 !== 0) {
    // 5.2.4: capacity counts whole 512-byte sectors; the tail cannot be reached by the driver.
    logger.warn(`${what} is ${backend.size} bytes, not a multiple of 512: its last ${backend.size % 512} bytes are not part of the disk`);
  }
  if (hooks.wrapBackend) backend = hooks.wrapBackend(backend, logger);
  const description =
    `virtio-blk on ${what} (${mib(backend.size)}${options.readOnly ? ', read-only' : ''}, ` +
    `${options.numQueues} queue${options.numQueues === 1 ? '' : 's'} of up to ${options.queueSize})`;
  // Busy-polling pays with a RAM disk, whose requests complete inside the pass; a file's
  // complete on the event loop, which a poll window would only delay.
  const pollUs = options.pollUs ?? (options.image === null ? DEFAULT_POLL_US_MEMORY : 0);
  return runBackend({
    options,
    logger,
    description,
    backend: { pollUs },
    device: () =>
      new BlkDevice(backend, {
        readOnly: options.readOnly,
        numQueues: options.numQueues,
        queueSize: options.queueSize,
        ...(options.serial !== null ? { serial: options.serial } : {}),
        // Write-through: the cache mode reads writethrough (WCE 0, 5.2.6.2).
        ...(options.writeThrough === true ? { writeback: false } : {}),
        logger,
      }),
    cleanup: () => backend.close(),
  });
}
