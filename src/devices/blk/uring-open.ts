/**
 * Opening an image for `virtio-ts blk --image`: io_uring (UringBackend) unless `--aio threads`
 * asks for positional I/O on libuv's threads (FileBackend), and positional I/O as well, with
 * the reason logged, where the kernel refuses io_uring (ENOSYS: not built in; EPERM:
 * kernel.io_uring_disabled or a seccomp filter such as Docker's default profile).
 */
import type { Logger } from '../../log.js';
import { PlatformError } from '../../platform/platform-error.js';
import type { BlkBackend } from './backend.js';
import { BlkAio } from './cli.js';
import { FileBackend } from './file-backend.js';
import { UringBackend } from './uring-backend.js';

export interface ImageOpenOptions {
  readonly readOnly?: boolean;
  /** Default io_uring. */
  readonly aio?: BlkAio;
  readonly direct?: boolean;
  readonly writeThrough?: boolean;
  readonly logger?: Logger;
  /** Tests: stands in for UringBackend.open (to simulate a kernel that refuses io_uring). */
  readonly openUring?: typeof UringBackend.open;
}

export interface OpenedImage {
  readonly backend: BlkBackend;
  /** What serves it. */
  readonly aio: BlkAio;
  /** Why io_uring is not used when it was asked for (null when it is, or threads was asked). */
  readonly fallbackReason: string | null;
}

/** Whether an io_uring setup failure means "not here" (fall back) rather than a fault. */
function refused(e: unknown): e is PlatformError {
  return e instanceof PlatformError && ['ENOSYS', 'EPERM', 'EACCES', 'EINVAL', 'ENOMEM', 'ENOENT'].includes(e.errno);
}

export async function openImage(path: string, opts: ImageOpenOptions = {}): Promise<OpenedImage> {
  const aio = opts.aio ?? BlkAio.IO_URING;
  const readOnly = opts.readOnly ?? false;
  const writeThrough = opts.writeThrough ?? false;
  let fallbackReason: string | null = null;
  if (aio === BlkAio.IO_URING) {
    try {
      const open = opts.openUring ?? ((p, o) => UringBackend.open(p, o));
      const backend = await open(path, { readOnly, direct: opts.direct ?? false, writeThrough });
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
