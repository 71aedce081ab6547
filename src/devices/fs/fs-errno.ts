/**
 * The errno values a file server answers its guest with, and the one error class that carries
 * one (FuseErrno: caught by the server and turned into a reply, never thrown at the guest).
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** errno values the servers answer with (Linux numbering, the guest's kernel's). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EPROTO: 71,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
} as const;

/** A FUSE (or 9p) operation failed with `errno` (the reply carries it; nothing was thrown to the guest). */
export class FuseErrno extends VirtioError {
  constructor(
    /** The positive Linux errno (ENOENT, EACCES, ...) the reply carries, negated, in its header. */
    readonly errno: number,
    message: string,
  ) {
    super(ErrorCode.REQUEST_FAILED, message);
  }
}

/** The errno of a FuseErrno or a Node fs error (negative `errno` on Linux), EIO for anything else. */
export function errnoOf(e: unknown): number {
  if (e instanceof FuseErrno) return e.errno;
  const n = (e as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' && n < 0 ? -n : Errno.EIO;
}

export function fail(errno: number, message: string): never {
  throw new FuseErrno(errno, message);
}

/** A native fs-at result: the value when it is not a negated errno, else FuseErrno(errno). */
export function check(r: number, what: string): number {
  if (r < 0) throw new FuseErrno(-r, what);
  return r;
}
