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
import { MemoryBackend, sparseMapBytes } from './memory-backend.js';
import { NbdBackend } from './nbd/nbd-backend.js';
import { loadNbdTlsFiles } from './nbd/nbd-tls.js';
import { openImage } from './uring-open.js';
import type { BlkBackend } from './backend.js';
import { BlkAio, DEFAULT_POLL_US_IMAGE, DEFAULT_POLL_US_MEMORY, DEFAULT_WAIT_US, type BlkOptions } from './cli.js';
import { type BlkWorkerArgs, blkDeviceOptions, blkWorkerSpec, sharedMemoryBackend } from './blk-worker.js';

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
  let disk: SharedArrayBuffer | null = null;
  let written: SharedArrayBuffer | null = null;
  let aio = '';
  /** Device settings the storage dictates (an NBD export's block sizes). */
  let storageHints: { blockSize?: number; optIoSize?: number; sizeMax?: number } = {};
  // Busy-polling pays where requests complete inside the pass: a RAM disk's, an image's reads
  // from the page cache and lone buffered writes (a request left in flight, O_DIRECT, ends the
  // window at once); an NBD export's all complete on the event loop, which a window would only
  // delay.
  const pollUs = options.pollUs ?? (options.nbd ? 0 : options.image !== null ? DEFAULT_POLL_US_IMAGE : DEFAULT_POLL_US_MEMORY);
  if (options.nbd) {
    // Ring threads open their storage themselves (an image by path, a shared RAM disk): an NBD
    // connection is not shared with them.
    if (options.threads > 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--threads does not work with --nbd yet: serve the export on the main thread');
    // An unreachable server or a missing export fails here with a one-line NbdError.
    const tls = options.nbd.tls === undefined ? undefined : loadNbdTlsFiles(options.nbd.tls);
    const nbd = await NbdBackend.open(options.nbd.uri, { readOnly: options.readOnly, connections: options.nbd.connections, logger, ...(tls === undefined ? {} : { tls }) });
    logger.info(nbd.summary());
    const h = nbd.hints;
    storageHints = { blockSize: h.blockSize, optIoSize: Math.floor(h.optIoSizeBytes / h.blockSize) };
    // size_max only for a server that really limits payloads (the backend splits larger requests
    // anyway): SeaBIOS 1.16 divides size_max by blk_size into a u16, and 32 MiB / 512 wraps to 0,
    // a firmware loop of empty requests.
    if (h.sizeMax !== null) storageHints.sizeMax = h.sizeMax;
    backend = nbd;
    what = nbd.description;
  } else if (options.image !== null) {
    // Ring threads reopen the image by path with positional I/O: the io_uring options stay on the main thread.
    if (options.threads > 0 && (options.direct === true || options.writeThrough === true)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--direct and --write-through do not work with --threads yet');
    }
    try {
      const opened = await openImage(options.image, {
        readOnly: options.readOnly,
        aio: options.aio ?? BlkAio.IO_URING,
        direct: options.direct === true,
        writeThrough: options.writeThrough === true,
        waitUs: options.waitUs ?? DEFAULT_WAIT_US,
        ...(options.inlineWrites === false ? { inlineWrites: false } : {}),
        logger,
      });
      backend = opened.backend;
      aio = opened.aio;
    } catch (e) {
      throw new VirtioError(ErrorCode.BACKEND_IO, `cannot open image ${options.image}: ${(e as Error).message}`, { cause: e });
    }
    const ringIo = options.threads > 0 ? 'positional I/O on the ring threads' : `aio=${aio}`;
    what = `image ${options.image} (${ringIo}${options.direct === true ? ', O_DIRECT' : ''}${options.writeThrough === true ? ', write-through' : ''})`;
  } else if (options.threads > 0) {
    // Every ring thread sees the disk: SharedArrayBuffers (posted, they are shared, not
    // copied), the sparse map too (pages never written read as zeroes without a copy).
    disk = new SharedArrayBuffer(options.memoryBytes!);
    written = new SharedArrayBuffer(sparseMapBytes(options.memoryBytes!));
    backend = sharedMemoryBackend(disk, written);
    what = 'RAM disk';
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
  if (hooks.wrapBackend) {
    if (options.threads > 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'wrapBackend (a test hook) does not reach ring threads');
    backend = hooks.wrapBackend(backend, logger);
  }
  const description =
    `virtio-blk on ${what} (${mib(backend.size)}${options.readOnly ? ', read-only' : ''}, ` +
    `${options.numQueues} queue${options.numQueues === 1 ? '' : 's'} of up to ${options.queueSize}` +
    `${options.threads > 0 ? ` on ${options.threads} ring thread${options.threads === 1 ? '' : 's'}` : ''})`;
  const workerArgs: BlkWorkerArgs = {
    image: options.image,
    disk,
    written,
    readOnly: options.readOnly,
    numQueues: options.numQueues,
    queueSize: options.queueSize,
    serial: options.serial,
  };
  return runBackend({
    options,
    logger,
    description,
    backend: { pollUs },
    device: () =>
      new BlkDevice(backend, {
        ...blkDeviceOptions(workerArgs, logger),
        ...storageHints,
        // Write-through: the cache mode reads writethrough (WCE 0, 5.2.6.2).
        ...(options.writeThrough === true ? { writeback: false } : {}),
      }),
    ...(options.threads > 0 ? { workers: { threads: options.threads, device: blkWorkerSpec(workerArgs) } } : {}),
    cleanup: () => backend.close(),
  });
}
