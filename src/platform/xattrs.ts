/**
 * Extended attributes of an object held as an O_PATH descriptor (native/xattrs.c): get, list,
 * set and remove through `/proc/self/fd/N`. Node has no xattr calls. Only regular files and
 * directories may be passed (the native side would follow a symlink's magic link).
 */
import { constants } from 'node:os';
import { loadNativeAddon } from './native-platform.js';
import { PlatformError, toPlatformError } from './platform-error.js';

interface XattrAddon {
  xattrGet(fd: number, name: Uint8Array, dst: Uint8Array): number;
  xattrList(fd: number, dst: Uint8Array): number;
  xattrSet(fd: number, name: Uint8Array, value: Uint8Array, flags: number): void;
  xattrRemove(fd: number, name: Uint8Array): void;
}

/** setxattr(2) flags. */
export const XattrFlags = { CREATE: 1, REPLACE: 2 } as const;

export interface Xattrs {
  /** The value's length, written into `dst` (an empty `dst`: the length only). */
  get(fd: number, name: Uint8Array, dst: Uint8Array): number;
  /** The NUL-separated names' length, written into `dst` (empty: the length only). */
  list(fd: number, dst: Uint8Array): number;
  set(fd: number, name: Uint8Array, value: Uint8Array, flags: number): void;
  remove(fd: number, name: Uint8Array): void;
}

/** The errno number of a PlatformError from these calls (EIO when unknown). */
export function xattrErrno(e: unknown): number {
  if (!(e instanceof PlatformError)) return constants.errno.EIO;
  return (constants.errno as Readonly<Record<string, number>>)[e.errno] ?? constants.errno.EIO;
}

function wrap<A extends unknown[], R>(op: string, fn: (...a: A) => R): (...a: A) => R {
  return (...a: A): R => {
    try {
      return fn(...a);
    } catch (e) {
      throw toPlatformError(op, e);
    }
  };
}

/** The xattr calls of the native addon (throws PlatformError when the addon is missing or older). */
export function loadXattrs(): Xattrs {
  let a: XattrAddon;
  try {
    a = loadNativeAddon() as unknown as XattrAddon;
  } catch (e) {
    throw toPlatformError('load xattr calls', e);
  }
  if (typeof a.xattrGet !== 'function') throw new PlatformError('ENOSYS', 'the native addon has no xattr calls (rebuild it: npm run install)');
  return {
    get: wrap('getxattr', (fd: number, name: Uint8Array, dst: Uint8Array) => a.xattrGet(fd, name, dst)),
    list: wrap('listxattr', (fd: number, dst: Uint8Array) => a.xattrList(fd, dst)),
    set: wrap('setxattr', (fd: number, name: Uint8Array, value: Uint8Array, flags: number) => a.xattrSet(fd, name, value, flags)),
    remove: wrap('removexattr', (fd: number, name: Uint8Array) => a.xattrRemove(fd, name)),
  };
}
