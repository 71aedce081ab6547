/**
 * HostFs's attribute operations: SETATTR (mode, owner, size, times), STATFS and ACCESS, each on
 * an inode's pinned descriptor (chmod and utimens through its /proc magic link: Linux has no *at
 * form of those for an O_PATH descriptor).
 */
import * as fs from 'node:fs';
import { At, OpenFlag, Utime, procFdPath } from '../../platform/fs-at.js';
import { Errno, check, errnoOf, fail } from './fs-errno.js';
import { HostFsCore } from './host-fs-core.js';
import { S_IFDIR, S_IFREG } from './host-fs-tables.js';

const { WRONLY, NONBLOCK } = OpenFlag;

export class HostFsAttrs extends HostFsCore {
  /** SETATTR into `out` (the attributes after the change). Guest ids are translated to the host's. */
  setattrInto(nodeid: number, fh: number | null, valid: SetattrValues, out: Float64Array): void {
    const inode = this.inode(nodeid);
    const viaFd = fh !== null ? this.handle(fh).fd : -1;
    const p = procFdPath(inode.fd);
    const plain = inode.type === S_IFREG || inode.type === S_IFDIR;
    const any = valid.mode !== null || valid.uid !== null || valid.gid !== null || valid.size !== null || valid.atime !== null || valid.mtime !== null;
    if (any) this.writable();
    if (valid.mode !== null) {
      if (!plain) fail(Errno.EPERM, 'chmod of a symlink or special file');
      check(this.fsAt.fchmodat(At.FDCWD, p, valid.mode & 0o7777), 'chmod');
    }
    if (valid.uid !== null || valid.gid !== null) {
      if (!plain) fail(Errno.EPERM, 'chown of a symlink or special file');
      const uid = valid.uid === null ? -1 : this.uidMap.toHost(valid.uid);
      const gid = valid.gid === null ? -1 : this.gidMap.toHost(valid.gid);
      check(this.fsAt.fchownat(inode.fd, '', uid, gid, At.EMPTY_PATH), 'chown');
    }
    if (valid.size !== null) {
      if (inode.type !== S_IFREG) fail(Errno.EINVAL, 'truncate of a non-file');
      const fd = viaFd >= 0 ? viaFd : check(this.fsAt.openat(At.FDCWD, p, WRONLY | NONBLOCK), 'open for truncate');
      try {
        fs.ftruncateSync(fd, valid.size);
      } finally {
        if (fd !== viaFd) this.fsAt.close(fd);
      }
    }
    if (valid.atime !== null || valid.mtime !== null) {
      if (!plain) fail(Errno.EPERM, 'utimes of a symlink or special file');
      const [as, ans] = valid.atime === null ? [0, Utime.OMIT] : timeSpec(valid.atime, valid.atimeNsec);
      const [ms, mns] = valid.mtime === null ? [0, Utime.OMIT] : timeSpec(valid.mtime, valid.mtimeNsec);
      check(this.fsAt.utimensat(At.FDCWD, p, as, ans, ms, mns, 0), 'utimens');
    }
    this.statInto(nodeid, out);
  }

  /** STATFS of the file system holding the inode, StatfsField slots into `out`. */
  statfsInto(nodeid: number, out: Float64Array): void {
    check(this.fsAt.fstatfs(this.inode(nodeid).fd, out), 'statfs');
  }

  /** ACCESS: mask R_OK 4 / W_OK 2 / X_OK 1 (0: existence) as the host sees it for this process. */
  access(nodeid: number, mask: number): void {
    const inode = this.inode(nodeid);
    if ((mask & 2) !== 0 && this.readOnly) fail(Errno.EROFS, 'read-only share');
    if (mask === 0 || (inode.type !== S_IFREG && inode.type !== S_IFDIR)) return;
    try {
      fs.accessSync(procFdPath(inode.fd), mask & 7);
    } catch (e) {
      fail(errnoOf(e), 'access');
    }
  }
}

/** Seconds (fractions allowed) or exact seconds + nanoseconds (UTIME_NOW allowed) as a timespec. */
function timeSpec(sec: number, nsec: number | undefined): [number, number] {
  if (nsec !== undefined) return [sec, nsec];
  const s = Math.floor(sec);
  return [s, Math.min(999_999_999, Math.round((sec - s) * 1e9))];
}

/**
 * SETATTR changes (null: unchanged); times in seconds (fractions allowed), or whole seconds with
 * `atimeNsec`/`mtimeNsec` for exact times (Utime.NOW there: the host's current time).
 */
export interface SetattrValues {
  /** FATTR_MODE: new permission bits (only the low 12 bits, `& 0o7777`, are applied); chmod. */
  mode: number | null;
  /** FATTR_UID: new owner as the guest sees it (mapped to the host through the uid map); chown. */
  uid: number | null;
  /** FATTR_GID: new group as the guest sees it (mapped to the host through the gid map); chown. */
  gid: number | null;
  /** FATTR_SIZE: new length in bytes of a regular file; truncate. */
  size: number | null;
  /** FATTR_ATIME: new access time, seconds since the epoch (fractions allowed unless `atimeNsec` is given). */
  atime: number | null;
  /** FATTR_MTIME: new modification time, seconds since the epoch (fractions allowed unless `mtimeNsec` is given). */
  mtime: number | null;
  /** Nanoseconds of `atime` (0..999999999), or Utime.NOW for the host's current time (FATTR_ATIME_NOW). */
  atimeNsec?: number;
  /** Nanoseconds of `mtime` (0..999999999), or Utime.NOW for the host's current time (FATTR_MTIME_NOW). */
  mtimeNsec?: number;
}
