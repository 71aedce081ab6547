/**
 * The host side of a shared folder (virtio-fs now, 9p next): an inode table and a file-handle
 * table over one host directory, every operation a *at system call relative to a descriptor the
 * table holds (src/platform/fs-at.ts), never a path the guest spelled.
 *
 * How the guest is kept inside the folder (it is untrusted):
 *  - Every inode the guest knows holds an `O_PATH | O_NOFOLLOW` descriptor of its object, as
 *    virtiofsd does. A name is always looked up, created, removed or renamed *in* such a
 *    directory descriptor (openat/mkdirat/unlinkat/renameat2/... with that dirfd), and `name`
 *    is one component (no `/`, no NUL, not `.` or `..`; LOOKUP handles those two explicitly,
 *    `..` of the root is refused): renames above it, or a directory swapped for a symlink after
 *    LOOKUP, change nothing.
 *  - The last component is never followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH on
 *    the inode's own descriptor): a symlink is a symlink inode, never opened or walked through;
 *    a reopened file (through `/proc/self/fd/N`, the only way to turn an O_PATH descriptor into
 *    an open file) is checked to be the inode it came from.
 *  - Device nodes are not created for the guest (mknod of a char/block device: EPERM), a FIFO
 *    planted under a name cannot block CREATE (O_NONBLOCK), extended attributes go through
 *    XattrMap (no `security.capability` or ACL reaches the host by default).
 *  - Tables are bounded (inodes, handles, directory entries, lock owners): a guest that looks up
 *    without forgetting gets ENFILE, never unbounded host memory or descriptors.
 * Limits accepted: reopening an inode and chmod/utimes/xattrs need `/proc` mounted (there is no
 * other way from an O_PATH descriptor); `..` below the root is the kernel's `..` of the pinned
 * directory, so a directory the *host* moves out of the share leads out of it.
 *
 * Two API layers: the allocation-free one (`lookupEntry`, `statInto`, ... into a caller's
 * Float64Array of StatField slots, ids translated to the guest's), used by the FUSE server, and
 * the original one returning fs.Stats (`lookup`, `stat`, `mkdir`, ...), kept for other users.
 */
import * as fs from 'node:fs';
import { At, OpenFlag, StatField, procFdPath } from '../../platform/fs-at.js';
import { Errno, FuseErrno, check, errnoOf, fail } from './fs-errno.js';
import { HostFsAttrs, type SetattrValues } from './host-fs-attrs.js';
import { S_IFDIR, S_IFREG, type Inode } from './host-fs-tables.js';

export { Errno, FuseErrno, errnoOf };
export { O_PATH, S_IFDIR, S_IFLNK, S_IFREG } from './host-fs-tables.js';
export type { FileHandle, HostFsLimits, Inode } from './host-fs-tables.js';
export type { HostFsOptions } from './host-fs-core.js';
export type { SetattrValues } from './host-fs-attrs.js';
export type { DirEntry } from './dir-snapshot.js';
export type { LockRange, PendingLock } from './host-locks.js';

const { RDONLY, DIRECTORY } = OpenFlag;
const ACL_ACCESS = Buffer.from('system.posix_acl_access');
const S_ISGID = 0o2000;

/**
 * The host side of a shared folder: every guest name resolved with *at calls in descriptors the
 * tables pin, never a path the guest spelled (how the guest is kept inside: the file comment).
 * Used by the virtio-fs FUSE server (FsDevice, virtio spec 5.11) and the 9p server; errors are
 * thrown as errno failures (fs-errno.ts) that the server turns into the FUSE or 9P error reply.
 */
export class HostFs extends HostFsAttrs {
  // --- data, sync, space -----------------------------------------------------------------

  /**
   * READ: up to `len` bytes of the open file `fh` at byte `position` into `buf` from `offset`; the count read (0 at end of file).
   */
  pread(fh: number, buf: Uint8Array, offset: number, len: number, position: number): number {
    return check(this.fsAt.pread(this.fileFd(fh), buf, offset, len, position), 'read');
  }

  /** A file handle's descriptor for writing (EROFS on a read-only share). */
  writeFd(fh: number): number {
    this.writable();
    return this.fileFd(fh);
  }

  /**
   * WRITE: `len` bytes of `buf` from `offset` to the open file `fh` at byte `position`; the count written (EROFS on a read-only share).
   */
  pwrite(fh: number, buf: Uint8Array, offset: number, len: number, position: number): number {
    this.writable();
    return check(this.fsAt.pwrite(this.fileFd(fh), buf, offset, len, position), 'write');
  }

  /** FSYNC / FSYNCDIR: a directory handle syncs the directory (opened in its pinned descriptor). */
  fsync(fh: number, datasync: boolean): void {
    const h = this.handle(fh);
    if (h.fd >= 0) {
      check(this.fsAt.fsync(h.fd, datasync), 'fsync');
      return;
    }
    this.fsyncDir(h.nodeid, datasync);
  }

  /** fsync of a directory inode: opened read-only in its own pinned descriptor (`.`), synced, closed. */
  fsyncDir(nodeid: number, datasync: boolean): void {
    const fd = check(this.fsAt.openat(this.dir(nodeid).fd, '.', RDONLY | DIRECTORY), 'open for fsync');
    try {
      check(this.fsAt.fsync(fd, datasync), 'fsync');
    } finally {
      this.fsAt.close(fd);
    }
  }

  /** SYNCFS: the file system of the share (syncfs needs an open descriptor, not an O_PATH one). */
  syncfs(): void {
    const fd = check(this.fsAt.openat(this.root.fd, '.', RDONLY | DIRECTORY), 'open for syncfs');
    try {
      check(this.fsAt.syncfs(fd), 'syncfs');
    } finally {
      this.fsAt.close(fd);
    }
  }

  /**
   * FALLOCATE: fallocate(2) `mode` (FALLOC_FL_* bits: keep size, punch hole, ...) over `len` bytes at `offset` of the open file (EROFS on a read-only share).
   */
  fallocate(fh: number, mode: number, offset: number, len: number): void {
    this.writable();
    check(this.fsAt.fallocate(this.fileFd(fh), mode, offset, len), 'fallocate');
  }

  /** LSEEK (SEEK_DATA / SEEK_HOLE mostly): the new offset. */
  lseek(fh: number, offset: number, whence: number): number {
    return check(this.fsAt.lseek(this.fileFd(fh), offset, whence), 'lseek');
  }

  /**
   * COPY_FILE_RANGE: copy_file_range(2) of `len` bytes between two open handles of this share, in the host kernel; the count copied (may be short, 0 at the end of the source).
   */
  copyFileRange(fhIn: number, offIn: number, fhOut: number, offOut: number, len: number, flags: number): number {
    this.writable();
    return check(this.fsAt.copyFileRange(this.fileFd(fhIn), offIn, this.fileFd(fhOut), offOut, len, flags), 'copy_file_range');
  }

  // --- names checked against the inode a caller holds (9p's fid-relative operations) ------

  /**
   * lstat of `name` in the directory `parentId` into `out` (fstatat in the pinned descriptor,
   * never following the last component), host ids as they are.
   */
  statChildInto(parentId: number, name: Uint8Array, out: Float64Array): void {
    const parent = this.dir(parentId);
    HostFs.checkName(name);
    check(this.fsAt.fstatat(parent.fd, name, At.SYMLINK_NOFOLLOW, out), 'lstat');
  }

  /**
   * unlink (or rmdir for a directory) of `name` in `parentId` when the name still refers to the
   * inode `nodeid` the caller holds (ENOENT when it was renamed away or replaced): a 9P Tremove
   * removes its fid's object, never whatever took its name (the check and the unlinkat are two
   * calls: a host racer in between can only make it remove another object *inside* the share).
   */
  removeNamed(parentId: number, name: Uint8Array, nodeid: number): void {
    this.checkNamed(parentId, name, nodeid);
    if (this.inode(nodeid).type === S_IFDIR) this.rmdir(parentId, name);
    else this.unlink(parentId, name);
  }

  /** Fails ENOENT unless `name` in `parentId` still refers to the inode `nodeid` (renamed away or replaced). */
  checkNamed(parentId: number, name: Uint8Array, nodeid: number): void {
    const inode = this.inode(nodeid);
    this.statChildInto(parentId, name, this.tmp);
    if (this.tmp[StatField.DEV] !== inode.dev || this.tmp[StatField.INO] !== inode.ino) fail(Errno.ENOENT, 'the name no longer refers to the inode');
  }

  // --- extended attributes (regular files and directories only) -------------------------

  private xattrPath(nodeid: number, forChange: boolean): string {
    const inode = this.inode(nodeid);
    if (forChange) this.writable();
    // Reaching a symlink or device through its /proc magic link is not done (user xattrs are refused there anyway).
    if (inode.type !== S_IFREG && inode.type !== S_IFDIR) fail(forChange ? Errno.EPERM : Errno.ENODATA, 'xattr of a symlink or special file');
    return procFdPath(inode.fd);
  }

  /** GETXATTR: the value's length, written into `buf` when it is not empty (ERANGE when too small). */
  getxattr(nodeid: number, name: Buffer, buf: Uint8Array): number {
    const path = this.xattrPath(nodeid, false);
    const host = this.xattrs.toHost(name);
    if (host === null) fail(Errno.ENODATA, 'xattr name not mapped');
    return check(this.fsAt.getxattr(path, host, buf), 'getxattr');
  }

  /**
   * SETXATTR. `killSgid` (FUSE_SETXATTR_ACL_KILL_SGID, with POSIX ACLs): the guest caller is
   * neither in the file's group nor privileged, so setting system.posix_acl_access must clear
   * S_ISGID, as the guest's own kernel would. The host kernel does not (this process has
   * CAP_FSETID), so it is cleared here after the set (virtiofsd drops CAP_FSETID instead).
   */
  setxattr(nodeid: number, name: Buffer, value: Uint8Array, flags: number, killSgid = false): void {
    const path = this.xattrPath(nodeid, true);
    const host = this.xattrs.toHost(name);
    if (host === null) fail(Errno.EPERM, 'xattr name not allowed');
    check(this.fsAt.setxattr(path, host, value, flags & 3), 'setxattr');
    if (killSgid && this.posixAcl && ACL_ACCESS.equals(name)) {
      check(this.fsAt.fstatat(this.inode(nodeid).fd, '', At.EMPTY_PATH, this.tmp), 'fstat');
      const mode = this.tmp[StatField.MODE]!;
      if ((mode & S_ISGID) !== 0) check(this.fsAt.fchmodat(At.FDCWD, path, mode & 0o7777 & ~S_ISGID), 'chmod to clear S_ISGID');
    }
  }

  /** LISTXATTR: the guest's names, NUL-separated. */
  listxattr(nodeid: number): Buffer {
    const path = this.xattrPath(nodeid, false);
    const size = check(this.fsAt.listxattr(path, new Uint8Array(0)), 'listxattr');
    if (size === 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(size);
    const n = check(this.fsAt.listxattr(path, buf), 'listxattr');
    return this.xattrs.listToGuest(buf.subarray(0, n));
  }

  /** REMOVEXATTR: `name` as the guest spells it (EPERM when the xattr map does not let it reach the host). */
  removexattr(nodeid: number, name: Buffer): void {
    const path = this.xattrPath(nodeid, true);
    const host = this.xattrs.toHost(name);
    if (host === null) fail(Errno.EPERM, 'xattr name not allowed');
    check(this.fsAt.removexattr(path, host), 'removexattr');
  }

  // --- the original fs.Stats layer (kept for other users; ids translated like the rest) ---

  private stats(inode: Inode): fs.Stats {
    const st = fs.fstatSync(inode.fd);
    st.uid = this.uidMap.toGuest(st.uid);
    st.gid = this.gidMap.toGuest(st.gid);
    return st;
  }

  /** fstat of the inode's object (never follows a symlink inode). */
  stat(nodeid: number): fs.Stats {
    return this.stats(this.inode(nodeid));
  }

  /**
   * LOOKUP of `name` in `parentId` (one lookup count more), with fs.Stats in guest ids; the allocation-free form is `lookupEntry`.
   */
  lookup(parentId: number, name: Buffer): {
    /** The inode found (one lookup more: FORGET it when done). */
    inode: Inode;
    /** Its attributes, uid and gid as the guest's (never follows a symlink). */
    stat: fs.Stats;
  } {
    const inode = this.lookupEntry(parentId, name, this.tmp);
    return { inode, stat: this.stats(inode) };
  }

  /**
   * CREATE of the regular file `name` in `parentId`, opened with `flags` (open(2)), permission bits `mode`; the allocation-free form is `createEntry`.
   */
  create(parentId: number, name: Buffer, flags: number, mode: number): {
    /** The created (or, without O_EXCL, existing) file's inode, one lookup more. */
    inode: Inode;
    /** Its attributes after creation (owner as the guest's). */
    stat: fs.Stats;
    /** The open handle of the file (RELEASE it when done). */
    fh: number;
  } {
    const { inode, fh } = this.createEntry(parentId, name, flags, mode, this.tmp);
    return { inode, stat: this.stats(inode), fh };
  }

  /** MKDIR of `name` in `parentId` with permission bits `mode`; the allocation-free form is `mkdirEntry`. */
  mkdir(parentId: number, name: Buffer, mode: number): {
    /** The new directory's inode, one lookup more. */
    inode: Inode;
    /** Its attributes (owner as the guest's). */
    stat: fs.Stats;
  } {
    const inode = this.mkdirEntry(parentId, name, mode, this.tmp);
    return { inode, stat: this.stats(inode) };
  }

  /**
   * SETATTR of the inode (through `fh` when the driver passed an open handle, else null): the fields of `valid` that are not null; the attributes after the change.
   */
  setattr(nodeid: number, fh: number | null, valid: SetattrValues): fs.Stats {
    this.setattrInto(nodeid, fh, valid, this.tmp);
    return this.stat(nodeid);
  }

  /** STATFS of the host file system holding the inode (fs.StatsFs); the allocation-free form is `statfsInto`. */
  statfs(nodeid: number): fs.StatsFs {
    return fs.statfsSync(procFdPath(this.inode(nodeid).fd));
  }

}
