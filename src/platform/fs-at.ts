/**
 * Typed wrapper of native/fs-at.c: the *at system calls a file server needs to act relative to
 * a directory it holds open (openat with O_PATH/O_NOFOLLOW, fstatat, mkdirat, unlinkat,
 * renameat2, linkat, symlinkat, readlinkat, ...), positioned I/O straight into a Uint8Array
 * range (guest memory, zero-copy), OFD locks, getdents64.
 *
 * Results: a failed system call is a value, the negated errno (e.g. -2 for ENOENT), because a
 * file server answers its guest with it (see the comment in native/fs-at.c); `isErr` tells.
 * Bad arguments (wrong types) throw PlatformError EINVAL; an addon that is not built throws
 * PlatformError ENOENT at `loadFsAt()`.
 */
import { loadNativeAddon } from './native-platform.js';
import { toPlatformError } from './platform-error.js';

/** A name: the guest's bytes (not necessarily UTF-8) or a string. */
export type FsName = Uint8Array | string;

/**
 * The *at system calls and positioned I/O a file server needs (native/fs-at.c): every call returns
 * its result or the negated errno (a value, not an exception), because the file server answers its
 * guest with it.
 */
export interface FsAt {
  /** fd, or -errno. O_CLOEXEC is always added. */
  openat(dirfd: number, name: FsName, flags: number, mode?: number): number;
  /**
   * openat and fstat of the descriptor it returns, in one call: fd (attributes of the very
   * object opened in `out`), or -errno (a failed fstat closes the fd). O_CLOEXEC is added.
   */
  openStat(dirfd: number, name: FsName, flags: number, out: Float64Array): number;
  /** 0 or -errno; `out` gets StatField slots. `''` with AT_EMPTY_PATH stats `dirfd` itself. */
  fstatat(dirfd: number, name: FsName, flags: number, out: Float64Array): number;
  /** fstatat plus birth time in out[STAT_FIELDS], out[STAT_FIELDS + 1] (-1 when unknown). */
  statx(dirfd: number, name: FsName, flags: number, out: Float64Array): number;
  /** mkdirat(2): 0, or -errno. */
  mkdirat(dirfd: number, name: FsName, mode: number): number;
  /** mknodat(2): 0, or -errno. */
  mknodat(dirfd: number, name: FsName, mode: number, rdev: number): number;
  /** unlinkat(2) (flags: AT_REMOVEDIR): 0, or -errno. */
  unlinkat(dirfd: number, name: FsName, flags: number): number;
  /** renameat2(2) (flags: RENAME_NOREPLACE, RENAME_EXCHANGE, ...): 0, or -errno. */
  renameat2(olddirfd: number, oldname: FsName, newdirfd: number, newname: FsName, flags: number): number;
  /** linkat(2): 0, or -errno. */
  linkat(olddirfd: number, oldname: FsName, newdirfd: number, newname: FsName, flags: number): number;
  /** symlinkat(2): 0, or -errno. */
  symlinkat(target: FsName, dirfd: number, name: FsName): number;
  /** Bytes of the target written into `buf` (a full `buf` may mean truncated), or -errno. */
  readlinkat(dirfd: number, name: FsName, buf: Uint8Array): number;
  /** fchmodat(2): 0, or -errno. */
  fchmodat(dirfd: number, name: FsName, mode: number): number;
  /** uid/gid -1: unchanged. */
  fchownat(dirfd: number, name: FsName, uid: number, gid: number, flags: number): number;
  /** nsec may be UTIME_NOW or UTIME_OMIT. */
  utimensat(dirfd: number, name: FsName, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number, flags: number): number;
  /** Value length (an empty `buf` asks for the size), or -errno. */
  getxattr(path: FsName, name: FsName, buf: Uint8Array): number;
  /** setxattr(2) on a path (a /proc/self/fd path for an O_PATH fd): 0, or -errno. */
  setxattr(path: FsName, name: FsName, value: Uint8Array, flags: number): number;
  /** NUL-separated names' length (an empty `buf` asks for the size), or -errno. */
  listxattr(path: FsName, buf: Uint8Array): number;
  /** removexattr(2) on a path: 0, or -errno. */
  removexattr(path: FsName, name: FsName): number;
  /** pread(2) into buf[offset, offset + len): bytes or -errno. */
  pread(fd: number, buf: Uint8Array, offset: number, len: number, position: number): number;
  /**
   * pwrite(2) of `len` bytes of `buf` from `offset` at file position `position`: bytes written, or
   * -errno.
   */
  pwrite(fd: number, buf: Uint8Array, offset: number, len: number, position: number): number;
  /** fallocate(2): 0, or -errno. */
  fallocate(fd: number, mode: number, offset: number, len: number): number;
  /** lseek(2) (SEEK_DATA and SEEK_HOLE included): the new position, or -errno. */
  lseek(fd: number, offset: number, whence: number): number;
  /** copy_file_range(2): bytes copied, or -errno. */
  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number, flags: number): number;
  /** fsync(2), or fdatasync(2) with `datasync`: 0, or -errno. */
  fsync(fd: number, datasync: boolean): number;
  /** syncfs(2): 0, or -errno. */
  syncfs(fd: number): number;
  /** 0 or -errno; `out` gets StatfsField slots. */
  fstatfs(fd: number, out: Float64Array): number;
  /** F_OFD_GETLK / F_OFD_SETLK (SETLKW is refused: it would block; retry SETLK). GETLK fills out[LockField]. */
  ofdLock(fd: number, cmd: number, type: number, start: number, len: number, out?: Float64Array): number;
  /** linux_dirent64 records into `buf`: bytes, 0 at the end, or -errno. */
  getdents64(fd: number, buf: Uint8Array): number;
  /**
   * An O_PATH descriptor of the object `fd` is open on (open_tree(2) without a clone, Linux
   * 5.2): fd, or -errno (-ENOSYS where the kernel or the addon lacks it, -EPERM under some
   * seccomp filters: then reopen `procFdPath(fd)` with O_PATH instead).
   */
  openPath(fd: number): number;
  /** close(2): 0, or -errno. */
  close(fd: number): number;
}

/** Float64Array slots of a stat result (native/fs-at.c STAT_*). */
export const StatField = {
  DEV: 0,
  INO: 1,
  MODE: 2,
  NLINK: 3,
  UID: 4,
  GID: 5,
  RDEV: 6,
  SIZE: 7,
  BLKSIZE: 8,
  BLOCKS: 9,
  ATIME: 10,
  ATIME_NSEC: 11,
  MTIME: 12,
  MTIME_NSEC: 13,
  CTIME: 14,
  CTIME_NSEC: 15,
  /** Slots a stat result needs (statx: two more for birth time). */
  COUNT: 16,
} as const;

/** Float64Array slots of a statfs result. */
export const StatfsField = { TYPE: 0, BSIZE: 1, BLOCKS: 2, BFREE: 3, BAVAIL: 4, FILES: 5, FFREE: 6, NAMELEN: 7, FRSIZE: 8, FLAGS: 9, COUNT: 10 } as const;

/** Float64Array slots of a GETLK result. */
export const LockField = { TYPE: 0, START: 1, LEN: 2, PID: 3, COUNT: 4 } as const;

/** Linux constants the calls take (x86-64, aarch64 and the other generic-ABI architectures). */
export const At = {
  FDCWD: -100,
  SYMLINK_NOFOLLOW: 0x100,
  REMOVEDIR: 0x200,
  SYMLINK_FOLLOW: 0x400,
  EMPTY_PATH: 0x1000,
} as const;
export const OpenFlag = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  ACCMODE: 3,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DSYNC: 0o10000,
  DIRECT: 0o40000,
  LARGEFILE: 0o100000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  NOATIME: 0o1000000,
  CLOEXEC: 0o2000000,
  SYNC: 0o4010000,
  PATH: 0o10000000,
  TMPFILE: 0o20200000,
} as const;
export const RenameFlag = { NOREPLACE: 1, EXCHANGE: 2, WHITEOUT: 4 } as const;
export const Lock = { F_OFD_GETLK: 36, F_OFD_SETLK: 37, RDLCK: 0, WRLCK: 1, UNLCK: 2 } as const;
export const Seek = { SET: 0, CUR: 1, END: 2, DATA: 3, HOLE: 4 } as const;
export const Utime = { NOW: (1 << 30) - 1, OMIT: (1 << 30) - 2 } as const;
export const Xattr = { CREATE: 1, REPLACE: 2 } as const;

/** A result of an FsAt call is a negated errno. */
export function isErr(r: number): boolean {
  return r < 0;
}

/** `/proc/self/fd/N`: how an O_PATH descriptor is reached by calls that take no dirfd (chmod, xattrs). */
export function procFdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** errno ENOSYS (Linux): what `openPath` answers without the addon's function. */
const ENOSYS = 38;

let cached: FsAt | undefined;

/** The *at calls of the native addon. Throws PlatformError (ENOENT) when the addon is not built. */
export function loadFsAt(): FsAt {
  if (cached) return cached;
  let a: Readonly<Record<string, unknown>>;
  try {
    a = loadNativeAddon();
  } catch (e) {
    throw toPlatformError('loadFsAt', e);
  }
  if (typeof a['fsOpenat'] !== 'function') throw toPlatformError('loadFsAt', Object.assign(new Error('the native addon has no fs-at functions (rebuild it)'), { code: 'ENOSYS' }));
  // Argument errors (a programming error here, never the guest's) become PlatformError EINVAL.
  const f = (name: string): never => {
    const fn = a[name] as (...args: unknown[]) => number;
    return ((...args: unknown[]): number => {
      try {
        return fn(...args);
      } catch (e) {
        throw toPlatformError(name, e);
      }
    }) as never;
  };
  // The per-request calls get fixed-arity wrappers: no arguments array allocated per call.
  type Raw5 = (a: unknown, b: unknown, c: unknown, d: unknown, e: unknown) => number;
  const rawPread = a['fsPread'] as Raw5;
  const rawPwrite = a['fsPwrite'] as Raw5;
  const rawFstatat = a['fsFstatat'] as Raw5;
  const rawOpenat = a['fsOpenat'] as Raw5;
  const rawOpenStat = a['fsOpenStat'] as Raw5;
  // Per-request calls (FORGET closes, UNLINK): direct wrappers, no rest-argument array per call.
  const rawClose = a['fsClose'] as (fd: number) => number;
  // Absent from an addon built before it: -ENOSYS, the caller's fallback.
  const rawOpenPath = typeof a['fsOpenPath'] === 'function' ? (a['fsOpenPath'] as (fd: number) => number) : (): number => -ENOSYS;
  const rawUnlinkat = a['fsUnlinkat'] as (dirfd: number, name: FsName, flags: number) => number;
  cached = {
    openat: (dirfd, name, flags, mode) => {
      try {
        return rawOpenat(dirfd, name, flags, mode, undefined);
      } catch (e) {
        throw toPlatformError('fsOpenat', e);
      }
    },
    openStat: (dirfd, name, flags, out) => {
      try {
        return rawOpenStat(dirfd, name, flags, out, undefined);
      } catch (e) {
        throw toPlatformError('fsOpenStat', e);
      }
    },
    fstatat: (dirfd, name, flags, out) => {
      try {
        return rawFstatat(dirfd, name, flags, out, undefined);
      } catch (e) {
        throw toPlatformError('fsFstatat', e);
      }
    },
    statx: f('fsStatx'),
    mkdirat: f('fsMkdirat'),
    mknodat: f('fsMknodat'),
    unlinkat: (dirfd, name, flags) => {
      try {
        return rawUnlinkat(dirfd, name, flags);
      } catch (e) {
        throw toPlatformError('fsUnlinkat', e);
      }
    },
    renameat2: f('fsRenameat2'),
    linkat: f('fsLinkat'),
    symlinkat: f('fsSymlinkat'),
    readlinkat: f('fsReadlinkat'),
    fchmodat: f('fsFchmodat'),
    fchownat: f('fsFchownat'),
    utimensat: f('fsUtimensat'),
    getxattr: f('fsGetxattr'),
    setxattr: f('fsSetxattr'),
    listxattr: f('fsListxattr'),
    removexattr: f('fsRemovexattr'),
    pread: (fd, buf, offset, len, position) => {
      try {
        return rawPread(fd, buf, offset, len, position);
      } catch (e) {
        throw toPlatformError('fsPread', e);
      }
    },
    pwrite: (fd, buf, offset, len, position) => {
      try {
        return rawPwrite(fd, buf, offset, len, position);
      } catch (e) {
        throw toPlatformError('fsPwrite', e);
      }
    },
    fallocate: f('fsFallocate'),
    lseek: f('fsLseek'),
    copyFileRange: f('fsCopyFileRange'),
    fsync: f('fsFsync'),
    syncfs: f('fsSyncfs'),
    fstatfs: f('fsFstatfs'),
    ofdLock: f('fsOfdLock'),
    getdents64: f('fsGetdents64'),
    openPath: (fd) => {
      try {
        return rawOpenPath(fd);
      } catch (e) {
        throw toPlatformError('fsOpenPath', e);
      }
    },
    close: (fd) => {
      try {
        return rawClose(fd);
      } catch (e) {
        throw toPlatformError('fsClose', e);
      }
    },
  };
  return cached;
}
