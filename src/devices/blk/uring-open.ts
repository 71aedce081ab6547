/**
 * Opening an image for `virtio-ts blk --image`: io_uring (UringBackend; with `--aio auto` its
 * buffered writes beyond the first in flight on libuv's threads) unless `--aio threads` asks for
 * positional I/O on libuv's threads (FileBackend), and positional I/O as well, with
 * the reason logged, where the kernel refuses io_uring (ENOSYS: not built in; EPERM:
 * kernel.io_uring_disabled or a seccomp filter such as Docker's default profile).
 */
import type { Logger } from '../../log.js';
import { PlatformError } from '../../platform/platform-error.js';
import type { BlkBackend } from './backend.js';
import { BlkAio } from './cli.js';
import { FileBackend } from './file-backend.js';
import { BufferedWriteRoute, UringBackend } from './uring-backend.js';

/** How {@link openImage} opens an image file (the `blk --image` options). */
export interface ImageOpenOptions {
  /** Open the file O_RDONLY: the backend refuses writes (`--read-only`). Default false. */
  readonly readOnly?: boolean;
  /** Default io_uring (the `blk` command's default is auto). */
  readonly aio?: BlkAio;
  /**
   * O_DIRECT, bypassing the host page cache (`--direct`, QEMU's cache.direct=on). io_uring only:
   * the positional-I/O fallback ignores it (with a warning).
   */
  readonly direct?: boolean;
  /** O_DSYNC: every write stable before it completes, the device offered writethrough (`--write-through`). */
  readonly writeThrough?: boolean;
  /** io_uring: how long a lone operation's io_uring_enter waits for its completion, in µs (UringBackend `waitUs`). */
  readonly waitUs?: number;
  /** io_uring: a buffered write alone on the file made inline (UringBackend `inlineWrites`, default true). */
  readonly inlineWrites?: boolean;
  /** Where the fallback from io_uring to positional I/O is reported (warn); none by default. */
  readonly logger?: Logger;
  /** Tests: stands in for UringBackend.open (to simulate a kernel that refuses io_uring). */
  readonly openUring?: typeof UringBackend.open;
}

/** What {@link openImage} opened, and with which I/O engine. */
export interface OpenedImage {
  /** The backend serving the image: a UringBackend, or a FileBackend for threads. */
  readonly backend: BlkBackend;
  /** What serves it (auto or io_uring: a UringBackend; threads: a FileBackend). */
  readonly aio: BlkAio;
  /** Why io_uring is not used when it was asked for (null when it is, or threads was asked). */
  readonly fallbackReason: string | null;
}

/** Whether an io_uring setup failure means "not here" (fall back) rather than a fault. */
function refused(e: unknown): e is PlatformError {
  return e instanceof PlatformError && ['ENOSYS', 'EPERM', 'EACCES', 'EINVAL', 'ENOMEM', 'ENOENT'].includes(e.errno);
}

/**
 * Opens the image file `path` for a virtio-blk device: with io_uring unless `opts.aio` asks
 * for threads, falling back to positional I/O on libuv's threads (logged, and the reason in
 * `fallbackReason`) when the kernel refuses io_uring. Rejects with a VirtioError BACKEND_IO
 * when the file cannot be served.
 */
export async function openImage(path: string, opts: ImageOpenOptions = {}): Promise<OpenedImage> {
  const aio = opts.aio ?? BlkAio.IO_URING;
  const readOnly = opts.readOnly ?? false;
  const writeThrough = opts.writeThrough ?? false;
  let fallbackReason: string | null = null;
  if (aio !== BlkAio.THREADS) {
    try {
      const open = opts.openUring ?? ((p, o) => UringBackend.open(p, o));
      const bufferedWrites = aio === BlkAio.AUTO ? BufferedWriteRoute.OVERFLOW : BufferedWriteRoute.URING;
      const backend = await open(path, { readOnly, direct: opts.direct ?? false, writeThrough, bufferedWrites, waitUs: opts.waitUs ?? 0, inlineWrites: opts.inlineWrites ?? true });
      return { backend, aio, fallbackReason: null };
    } catch (e) {
      // ENOENT here is the addon missing (the file's own ENOENT is a BACKEND_IO error).
      if (!refused(e)) throw e;
      fallbackReason = e.message;
      opts.logger?.warn(
        `io_uring unavailable (${e.message}): serving ${path} with positional I/O on libuv's threads` +
          (opts.direct === true ? '; --direct is not honoured (the host page cache is used)' : ''),
      );
    }
  }
  const backend = await FileBackend.open(path, { readOnly, writeThrough });
  return { backend, aio: BlkAio.THREADS, fallbackReason };
}
