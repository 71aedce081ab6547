/**
 * The host side of a shared folder: an inode table and a file-handle table over one host
 * directory, every operation relative to a directory the table holds open, never to a path the
 * guest spelled.
 *
 * How the guest is kept inside the folder (it is untrusted):
 *  - Every inode the guest knows holds an `O_PATH | O_NOFOLLOW` descriptor of its object, as
 *    virtiofsd does. A name is always looked up or created *in* such a descriptor, through the
 *    kernel's `/proc/self/fd/N/name` walk: `/proc/self/fd/N` resolves to the pinned directory
 *    itself (renames and symlinks swapped in above it change nothing), and `name` is a single
 *    component (no `/`, no NUL; `.` and `..` refused here, LOOKUP handles them explicitly).
 *  - The last component is never followed: lookups open with O_NOFOLLOW (a symlink becomes a
 *    symlink inode, never its target), a symlink or special inode is never opened or walked
 *    through (ENOTDIR / ELOOP), and a reopened file is checked to be the inode it came from.
 *  - Tables are bounded (inodes, handles, directory snapshot entries): a guest that looks up
 *    without forgetting gets ENFILE, never unbounded host memory or descriptors.
 * Limits accepted (Node has no *at calls): the `/proc/self/fd` walk needs /proc mounted; mkdir,
 * unlink, rmdir and rename act on `/proc/self/fd/N/name`, which is as safe as the *at call
 * (the directory is pinned, the last component is not followed by those calls). utimes and
 * chmod of a symlink inode are refused rather than risk following it.
 */
import * as fs from 'node:fs';
import { ErrorCode, VirtioError } from '../../errors.js';

/** O_PATH (Linux, every architecture Node runs on except alpha/parisc/sparc). */
export const O_PATH = 0o10000000;
const { O_NOFOLLOW, O_DIRECTORY, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NONBLOCK } = fs.constants;
/** O_RDONLY | O_WRONLY | O_RDWR (not in Node's fs.constants). */
const O_ACCMODE = 3;

/** errno values the server answers with (Linux). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EFBIG: 27,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ELOOP: 40,
  EPROTO: 71,
  EOVERFLOW: 75,
} as const;

/** A FUSE operation failed with `errno` (the reply carries -errno; nothing was thrown to the guest). */
export class FuseErrno extends VirtioError {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(ErrorCode.REQUEST_FAILED, message);
  }
}

/** The errno of a Node fs error (negative `errno` on Linux), EIO for anything else. */
export function errnoOf(e: unknown): number {
  if (e instanceof FuseErrno) return e.errno;
  const n = (e as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' && n < 0 ? -n : Errno.EIO;
}

function fail(errno: number, message: string): never {
  throw new FuseErrno(errno, message);
}

export interface Inode {
  readonly nodeid: number;
  /** O_PATH | O_NOFOLLOW descriptor of the object. */
  readonly fd: number;
  readonly dev: number;
  readonly ino: number;
  /** S_IFMT bits of the object when looked up. */
  readonly type: number;
  /** Lookups the driver holds (FORGET takes them back); the root's never reaches 0. */
  nlookup: number;
}

export interface FileHandle {
  readonly fh: number;
  readonly nodeid: number;
  /** An ordinary descriptor (files), or -1 for a directory handle. */
  readonly fd: number;
  /** Directory handles: the entries, snapshot at OPENDIR (`.` and `..` first). */
  readonly entries: DirEntry[] | null;
}

export interface DirEntry {
  readonly name: Buffer;
  /** DT_* type. */
  readonly type: number;
  readonly ino: number;
}

export interface HostFsLimits {
  /** Inodes the guest may hold at once (root included). Default 65536. */
  readonly maxInodes?: number;
  /** Open file and directory handles at once. Default 4096. */
  readonly maxHandles?: number;
  /** Entries of one directory snapshot at most. Default 1,000,000 (about 100 MiB of names at worst). */
  readonly maxDirEntries?: number;
}

const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
const NAME_MAX = 255;
const SLASH = 0x2f;
const DOT = 0x2e;
const DT_DIR = 4;

/** The DT_* value of an S_IFMT type (fuse_dirent.type is the d_type of readdir(3)). */
function dtOf(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}

function procPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

export class HostFs {
  private readonly inodes = new Map<number, Inode>();
  /** `${dev}:${ino}` → nodeid: one inode per host object, however many names reach it. */
  private readonly byKey = new Map<string, number>();
  private readonly handles = new Map<number, FileHandle>();
  private nextNodeid = 2;
  private nextFh = 1;
  readonly root: Inode;
  private readonly maxInodes: number;
  private readonly maxHandles: number;
  private readonly maxDirEntries: number;

  constructor(rootDir: string, limits: HostFsLimits = {}) {
    this.maxInodes = limits.maxInodes ?? 65536;
    this.maxHandles = limits.maxHandles ?? 4096;
    this.maxDirEntries = limits.maxDirEntries ?? 1_000_000;
    let fd: number;
    try {
      fd = fs.openSync(rootDir, O_PATH | O_DIRECTORY);
    } catch (e) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `shared directory ${rootDir}: ${(e as Error).message}`);
    }
    const st = fs.fstatSync(fd);
    this.root = { nodeid: 1, fd, dev: st.dev, ino: st.ino, type: S_IFDIR, nlookup: 1 };
    this.inodes.set(1, this.root);
    this.byKey.set(`${st.dev}:${st.ino}`, 1);
  }

  get inodeCount(): number {
    return this.inodes.size;
  }
  get handleCount(): number {
    return this.handles.size;
  }

  /** The inode `nodeid`, or ENOENT-style failure for a nodeid never looked up (or forgotten). */
  inode(nodeid: number): Inode {
    const n = this.inodes.get(nodeid);
    if (n === undefined) fail(Errno.ENOENT, `nodeid ${nodeid} unknown`);
    return n;
  }

  /** A name as one path component: no `/`, not empty, at most NAME_MAX bytes, not `.` or `..`. */
  static checkName(name: Buffer): void {
    if (name.length === 0) fail(Errno.EINVAL, 'empty name');
    if (name.length > NAME_MAX) fail(Errno.ENAMETOOLONG, 'name too long');
    if (name.includes(SLASH)) fail(Errno.EINVAL, 'name with /');
    if (name[0] === DOT && (name.length === 1 || (name.length === 2 && name[1] === DOT))) fail(Errno.EINVAL, '. or ..');
  }

  private dir(nodeid: number): Inode {
    const d = this.inode(nodeid);
    if (d.type !== S_IFDIR) fail(Errno.ENOTDIR, `nodeid ${nodeid} is not a directory`);
    return d;
  }

  /** `/proc/self/fd/<dir fd>/<name>`: the name looked up in the pinned directory. */
  private child(dir: Inode, name: Buffer): Buffer {
    return Buffer.concat([Buffer.from(`${procPath(dir.fd)}/`), name]);
  }

  /** fstat of the inode's object (never follows a symlink inode). */
  stat(nodeid: number): fs.Stats {
    return fs.fstatSync(this.inode(nodeid).fd);
  }

  /**
   * LOOKUP: the inode of `name` in `parent`, its lookup count raised by one. `.` is the
   * directory itself, `..` its parent; `..` of the root is refused (the guest must not see
   * above the shared folder; the kernel never asks for it, 9p-style walks might).
   */
  lookup(parentId: number, name: Buffer): { inode: Inode; stat: fs.Stats } {
    const parent = this.dir(parentId);
    let path: Buffer | string;
    // `/proc/self/fd/N/.`, not `/proc/self/fd/N`: with O_NOFOLLOW the latter opens the magic link itself.
    if (name.length === 1 && name[0] === DOT) path = `${procPath(parent.fd)}/.`;
    else if (name.length === 2 && name[0] === DOT && name[1] === DOT) {
      if (parent === this.root) fail(Errno.EACCES, '.. of the shared folder');
      path = `${procPath(parent.fd)}/..`;
    } else {
      HostFs.checkName(name);
      path = this.child(parent, name);
    }
    return this.adopt(fs.openSync(path, O_PATH | O_NOFOLLOW));
  }

  /** Takes an O_PATH descriptor into the table (or finds its inode there), one lookup more. */
  private adopt(fd: number): { inode: Inode; stat: fs.Stats } {
    let st: fs.Stats;
    try {
      st = fs.fstatSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    const key = `${st.dev}:${st.ino}`;
    const known = this.byKey.get(key);
    if (known !== undefined) {
      fs.closeSync(fd);
      const inode = this.inodes.get(known)!;
      inode.nlookup++;
      return { inode, stat: st };
    }
    if (this.inodes.size >= this.maxInodes) {
      fs.closeSync(fd);
      fail(Errno.ENFILE, `inode table full (${this.maxInodes})`);
    }
    const inode: Inode = { nodeid: this.nextNodeid++, fd, dev: st.dev, ino: st.ino, type: st.mode & S_IFMT, nlookup: 1 };
    this.inodes.set(inode.nodeid, inode);
    this.byKey.set(key, inode.nodeid);
    return { inode, stat: st };
  }

  /** FORGET: `n` lookups fewer; at zero the inode leaves the table. Unknown or root: ignored. */
  forget(nodeid: number, n: number): void {
    const inode = this.inodes.get(nodeid);
    if (inode === undefined || inode === this.root) return;
    // A forget for more than was looked up (a confused or hostile driver) just drops the inode.
    inode.nlookup = n >= inode.nlookup ? 0 : inode.nlookup - n;
    if (inode.nlookup > 0) return;
    this.inodes.delete(nodeid);
    this.byKey.delete(`${inode.dev}:${inode.ino}`);
    fs.closeSync(inode.fd);
  }

  private addHandle(nodeid: number, fd: number, entries: DirEntry[] | null): number {
    if (this.handles.size >= this.maxHandles) {
      if (fd >= 0) fs.closeSync(fd);
      fail(Errno.ENFILE, `handle table full (${this.maxHandles})`);
    }
    const fh = this.nextFh++;
    this.handles.set(fh, { fh, nodeid, fd, entries });
    return fh;
  }

  handle(fh: number): FileHandle {
    const h = this.handles.get(fh);
    if (h === undefined) fail(Errno.EBADF, `fh ${fh} unknown`);
    return h;
  }

  /** open(2) flags a guest may pass: access mode, append, truncate (creation is CREATE's). */
  private static openFlags(flags: number): number {
    return (flags & (O_ACCMODE | O_APPEND | O_TRUNC)) | O_NOFOLLOW;
  }

  /** OPEN: a regular file inode reopened through its O_PATH descriptor, checked to be the same object. */
  open(nodeid: number, flags: number): number {
    const inode = this.inode(nodeid);
    if (inode.type === S_IFDIR) fail(Errno.EISDIR, 'OPEN of a directory');
    if (inode.type !== S_IFREG) fail(Errno.ELOOP, 'OPEN of a symlink or special file');
    // Reopening /proc/self/fd/N is a magic-link jump to the object: O_NOFOLLOW would refuse it.
    const fd = fs.openSync(procPath(inode.fd), HostFs.openFlags(flags) & ~O_NOFOLLOW);
    return this.addHandle(nodeid, this.checkSame(fd, inode), null);
  }

  private checkSame(fd: number, inode: Inode): number {
    const st = fs.fstatSync(fd);
    if (st.dev !== inode.dev || st.ino !== inode.ino) {
      fs.closeSync(fd);
      fail(Errno.EIO, 'reopened object is not the inode');
    }
    return fd;
  }

  /** CREATE: a new regular file `name` in `parent` (O_EXCL unless the driver allows an existing one). */
  create(parentId: number, name: Buffer, flags: number, mode: number): { inode: Inode; stat: fs.Stats; fh: number } {
    const parent = this.dir(parentId);
    HostFs.checkName(name);
    const path = this.child(parent, name);
    // O_NONBLOCK: a FIFO planted under the name must not block the device in open(2) (regular
    // files ignore the flag); anything but a regular file is then refused.
    const fd = fs.openSync(path, HostFs.openFlags(flags) | O_CREAT | O_NONBLOCK | (flags & O_EXCL), mode & 0o7777);
    let entry: { inode: Inode; stat: fs.Stats };
    try {
      if (!fs.fstatSync(fd).isFile()) fail(Errno.EINVAL, 'CREATE over something that is not a regular file');
      entry = this.adopt(fs.openSync(path, O_PATH | O_NOFOLLOW));
      this.checkSame(fd, entry.inode);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return { ...entry, fh: this.addHandle(entry.inode.nodeid, fd, null) };
  }

  mkdir(parentId: number, name: Buffer, mode: number): { inode: Inode; stat: fs.Stats } {
    const parent = this.dir(parentId);
    HostFs.checkName(name);
    const path = this.child(parent, name);
    fs.mkdirSync(path, { mode: mode & 0o7777 });
    return this.adopt(fs.openSync(path, O_PATH | O_NOFOLLOW));
  }

  unlink(parentId: number, name: Buffer): void {
    const parent = this.dir(parentId);
    HostFs.checkName(name);
    fs.unlinkSync(this.child(parent, name));
  }

  rmdir(parentId: number, name: Buffer): void {
    const parent = this.dir(parentId);
    HostFs.checkName(name);
    fs.rmdirSync(this.child(parent, name));
  }

  rename(oldParentId: number, oldName: Buffer, newParentId: number, newName: Buffer): void {
    const from = this.dir(oldParentId);
    const to = this.dir(newParentId);
    HostFs.checkName(oldName);
    HostFs.checkName(newName);
    fs.renameSync(this.child(from, oldName), this.child(to, newName));
  }

  /** OPENDIR: a snapshot of the entries (bounded), `.` and `..` first as readdir(3) gives them. */
  opendir(nodeid: number): number {
    const inode = this.dir(nodeid);
    const entries: DirEntry[] = [
      { name: Buffer.from('.'), type: DT_DIR, ino: inode.ino },
      { name: Buffer.from('..'), type: DT_DIR, ino: 0 },
    ];
    // Buffer names keep bytes that are not UTF-8 intact (the typings only admit string encodings).
    const d = fs.opendirSync(procPath(inode.fd), { encoding: 'buffer' as BufferEncoding });
    try {
      for (let e = d.readSync(); e !== null; e = d.readSync()) {
        if (entries.length >= this.maxDirEntries) fail(Errno.EOVERFLOW, `directory above ${this.maxDirEntries} entries`);
        const name = e.name as unknown as Buffer;
        const type = e.isDirectory() ? S_IFDIR : e.isFile() ? S_IFREG : e.isSymbolicLink() ? S_IFLNK : e.isFIFO() ? 0o010000 : e.isSocket() ? 0o140000 : e.isCharacterDevice() ? 0o020000 : e.isBlockDevice() ? 0o060000 : 0;
        // fs.Dirent carries no inode number; readdir(3) consumers only need it non-zero.
        entries.push({ name, type: dtOf(type), ino: 1 });
      }
    } finally {
      d.closeSync();
    }
    return this.addHandle(nodeid, -1, entries);
  }

  /** RELEASE / RELEASEDIR: closes the handle (unknown handles: EBADF). */
  release(fh: number): void {
    const h = this.handle(fh);
    this.handles.delete(fh);
    if (h.fd >= 0) fs.closeSync(h.fd);
  }

  /** A descriptor for attribute changes on `nodeid`: the given handle's, or the inode reopened. */
  setattr(nodeid: number, fh: number | null, valid: SetattrValues): fs.Stats {
    const inode = this.inode(nodeid);
    const viaFd = fh !== null ? this.handle(fh).fd : -1;
    const p = procPath(inode.fd);
    const plain = inode.type === S_IFREG || inode.type === S_IFDIR;
    if (valid.mode !== null) {
      if (!plain) fail(Errno.EPERM, 'chmod of a symlink or special file');
      fs.chmodSync(p, valid.mode & 0o7777);
    }
    if (valid.uid !== null || valid.gid !== null) {
      if (!plain) fail(Errno.EPERM, 'chown of a symlink or special file');
      const st = fs.fstatSync(inode.fd);
      fs.chownSync(p, valid.uid ?? st.uid, valid.gid ?? st.gid);
    }
    if (valid.size !== null) {
      if (inode.type !== S_IFREG) fail(Errno.EINVAL, 'truncate of a non-file');
      if (viaFd >= 0) fs.ftruncateSync(viaFd, valid.size);
      else fs.truncateSync(p, valid.size);
    }
    if (valid.atime !== null || valid.mtime !== null) {
      if (!plain) fail(Errno.EPERM, 'utimes of a symlink or special file');
      const st = fs.fstatSync(inode.fd);
      fs.utimesSync(p, valid.atime ?? st.atimeMs / 1000, valid.mtime ?? st.mtimeMs / 1000);
    }
    return fs.fstatSync(inode.fd);
  }

  statfs(nodeid: number): fs.StatsFs {
    return fs.statfsSync(procPath(this.inode(nodeid).fd));
  }

  /** DESTROY (and device reset): every handle closed, every inode but the root forgotten. */
  clear(): void {
    for (const h of this.handles.values()) if (h.fd >= 0) fs.closeSync(h.fd);
    this.handles.clear();
    for (const n of this.inodes.values()) if (n !== this.root) fs.closeSync(n.fd);
    this.inodes.clear();
    this.byKey.clear();
    this.inodes.set(1, this.root);
    this.byKey.set(`${this.root.dev}:${this.root.ino}`, 1);
  }

  /** Closes the root too: the object is unusable afterwards. */
  close(): void {
    this.clear();
    fs.closeSync(this.root.fd);
    this.inodes.clear();
  }
}

/** SETATTR changes (null: unchanged); times in seconds (fractions allowed). */
export interface SetattrValues {
  mode: number | null;
  uid: number | null;
  gid: number | null;
  size: number | null;
  atime: number | null;
  mtime: number | null;
}
