/**
 * HostFs's tables: the shared directory's root, the inodes the guest holds (keyed by (device,
 * inode number): one inode per host object, however many names reach it; each an O_PATH |
 * O_NOFOLLOW descriptor) and the open file and directory handles, both bounded (ENFILE beyond).
 * A file handle with I/O in flight on the thread pool is pinned: RELEASE, DESTROY or a reset
 * then close its descriptor only when the last transfer completes, so a pool thread never
 * reads or writes a descriptor number the process has meanwhile reused for another file.
 */
import { readFileSync } from 'node:fs';
import { ErrorCode, VirtioError } from '../../errors.js';
import { At, OpenFlag, StatField, loadFsAt, type FsAt } from '../../platform/fs-at.js';
import type { DirEntry } from './dir-snapshot.js';
import { Errno, check, fail } from './fs-errno.js';
import { HostLocks } from './host-locks.js';
import { PairKeyMap } from './pair-key-map.js';
import { RetainedDescriptors } from './retained-descriptors.js';

/** O_PATH (Linux, every architecture Node runs on except alpha/parisc/sparc). */
export const O_PATH = OpenFlag.PATH;
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
const { DEV, INO } = StatField;

/** One host object the guest holds (FUSE nodeid): its pinned O_PATH descriptor and identity. */
export interface Inode {
  /** The number the guest names it by (FUSE nodeid; the root is 1). */
  readonly nodeid: number;
  /** O_PATH | O_NOFOLLOW descriptor of the object. */
  readonly fd: number;
  /** st_dev of the object: with `ino`, the key that makes two names of one object one inode. */
  readonly dev: number;
  /** st_ino of the object on the host. */
  readonly ino: number;
  /** S_IFMT bits of the object when looked up. */
  readonly type: number;
  /** Lookups the driver holds (FORGET takes them back); the root's never reaches 0. */
  nlookup: number;
  /**
   * The object has no name left that the guest knows of (it removed the last one with UNLINK,
   * RMDIR or a RENAME over it, or made it by TMPFILE and never linked it): FORGET closes its
   * descriptor rather than retaining it.
   */
  removed: boolean;
}

/** An open file or directory of the shared tree (FUSE OPEN, OPENDIR, CREATE). */
export interface FileHandle {
  /** The handle number given to the driver (fuse_open_out.fh); from 1, never reused while the table lives. */
  readonly fh: number;
  /** The node id of the inode the handle is open on. */
  readonly nodeid: number;
  /** An ordinary descriptor (files), or -1 for a directory handle. */
  readonly fd: number;
  /** Directory handles: the entries, snapshot at OPENDIR (`.` and `..` first). */
  readonly entries: DirEntry[] | null;
  /** Transfers in flight on the thread pool (pinHandle / unpinHandle). */
  pins: number;
  /** Released (or the tables cleared) while pinned: the descriptor is closed at the last unpin. */
  released: boolean;
}

/**
 * Bounds of the HostFs tables: a guest that exceeds them gets ENFILE (EOVERFLOW for a directory), never unbounded host memory or descriptors.
 */
export interface HostFsLimits {
  /** Inodes the guest may hold at once (root included). Default 65536. */
  readonly maxInodes?: number;
  /** Open file and directory handles at once. Default 4096. */
  readonly maxHandles?: number;
  /** Entries of one directory snapshot at most. Default 1,000,000 (about 100 MiB of names at worst). */
  readonly maxDirEntries?: number;
  /**
   * Descriptors of forgotten inodes kept open for a quick LOOKUP of the same object
   * (retained-descriptors.ts). Default 4096, at most a quarter of the process's open-file
   * limit; 0 closes at FORGET, as virtiofsd does.
   */
  readonly retainedDescriptors?: number;
}

/**
 * Default HostFsLimits.retainedDescriptors: enough for a walk of a few thousand names after
 * their FORGETs (fs-ops' lookup row cycles over 1000 names, 16 at a time in any order: 1024 held
 * 74 % of them, 4096 all).
 */
const DEFAULT_RETAINED = 4096;

/** The process's soft RLIMIT_NOFILE (/proc/self/limits; Node raises it to the hard limit at start), or 1024 when unreadable. */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    if (m === null) return 1024;
    return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    return 1024;
  }
}

export class HostFsTables {
  /** nodeid (with 0) → inode; PairKeyMap rather than Map: an insert and a delete per operation. */
  private readonly inodes = new PairKeyMap<Inode>();
  /** (dev, ino) → nodeid. */
  private readonly byKey = new PairKeyMap<number>();
  /** fh (with 0) → handle. */
  private readonly handles = new PairKeyMap<FileHandle>();
  private nextNodeid = 2;
  private nextFh = 1;
  /** The shared directory itself (nodeid 1), held for the life of the HostFs. */
  readonly root: Inode;
  /** The native *at system calls (src/platform/fs-at.ts) every operation goes through. */
  readonly fsAt: FsAt;
  /** POSIX record locks held for the guest's lock owners (GETLK/SETLK/SETLKW, 9P Tlock). */
  readonly locks: HostLocks;
  private readonly maxInodes: number;
  private readonly maxHandles: number;
  /** Descriptors of forgotten inodes, for LOOKUPs of them soon after (HostFsLimits.retainedDescriptors). */
  protected readonly retained: RetainedDescriptors;
  /** Whether the last newInode's object had a retained descriptor (closed then: the new one serves). */
  protected newInodeWasRetained = false;
  /** Scratch stat for internal checks (host ids). */
  protected readonly tmp = new Float64Array(StatField.COUNT);

  constructor(rootDir: string, limits: HostFsLimits) {
    this.maxInodes = limits.maxInodes ?? 65536;
    this.maxHandles = limits.maxHandles ?? 4096;
    this.fsAt = loadFsAt();
    this.locks = new HostLocks(this.fsAt);
    const retain = limits.retainedDescriptors ?? DEFAULT_RETAINED;
    if (!Number.isInteger(retain) || retain < 0 || retain > 1 << 20) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `retainedDescriptors ${retain}: an integer from 0 to ${1 << 20}`);
    // Never more than a quarter of the descriptor limit: the retained ones must not make the
    // guest's own opens fail with EMFILE.
    this.retained = new RetainedDescriptors(this.fsAt, Math.min(retain, Math.floor(openFileLimit() / 4)));
    const fd = this.fsAt.openat(At.FDCWD, rootDir, O_PATH | OpenFlag.DIRECTORY);
    if (fd < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `shared directory ${rootDir}: errno ${-fd}`);
    check(this.fsAt.fstatat(fd, '', At.EMPTY_PATH, this.tmp), 'fstat of the shared directory');
    this.root = { nodeid: 1, fd, dev: this.tmp[DEV]!, ino: this.tmp[INO]!, type: S_IFDIR, nlookup: 1, removed: false };
    this.insert(this.root);
  }

  /** Inodes the guest holds now (root included), bounded by maxInodes. */
  get inodeCount(): number {
    return this.inodes.size;
  }
  /** Open file and directory handles now, bounded by maxHandles. */
  get handleCount(): number {
    return this.handles.size;
  }

  /** The inode `nodeid`, or ENOENT-style failure for a nodeid never looked up (or forgotten). */
  inode(nodeid: number): Inode {
    const n = this.inodes.get(nodeid, 0);
    if (n === undefined) fail(Errno.ENOENT, `nodeid ${nodeid} unknown`);
    return n;
  }

  /**
   * The inode already in the table for the host object (st_dev `dev`, st_ino `ino`), or undefined:
   * a LOOKUP of an object known under another name or path returns the same nodeid.
   */
  protected find(dev: number, ino: number): Inode | undefined {
    const id = this.byKey.get(dev, ino);
    return id === undefined ? undefined : this.inodes.get(id, 0);
  }

  /**
   * The object (dev, ino) back in the table when its descriptor is still retained after a
   * FORGET (`st`: its attributes, host ids, from a fstatat of its name), or undefined.
   */
  protected revive(st: Float64Array): Inode | undefined {
    const fd = this.retained.take(st[DEV]!, st[INO]!);
    return fd < 0 ? undefined : this.newInode(fd, st);
  }

  /**
   * A new inode for the O_PATH descriptor `fd` of the object with attributes `st` (ENFILE when
   * full: `fd` is closed). The caller found no inode for the object in the table.
   */
  protected newInode(fd: number, st: Float64Array): Inode {
    if (this.inodes.size >= this.maxInodes) {
      this.fsAt.close(fd);
      fail(Errno.ENFILE, `inode table full (${this.maxInodes})`);
    }
    const inode: Inode = { nodeid: this.nextNodeid++, fd, dev: st[DEV]!, ino: st[INO]!, type: st[StatField.MODE]! & S_IFMT, nlookup: 1, removed: false };
    // A retained descriptor of the same object (it came back through a new open) is one too many.
    this.newInodeWasRetained = this.retained.drop(inode.dev, inode.ino);
    this.insert(inode);
    return inode;
  }

  private insert(inode: Inode): void {
    this.inodes.set(inode.nodeid, 0, inode);
    this.byKey.set(inode.dev, inode.ino, inode.nodeid);
  }

  /** FORGET: `n` lookups fewer; at zero the inode leaves the table. Unknown or root: ignored. */
  forget(nodeid: number, n: number): void {
    const inode = this.inodes.get(nodeid, 0);
    if (inode === undefined || inode === this.root) return;
    // A forget for more than was looked up (a confused or hostile driver) just drops the inode.
    inode.nlookup = n >= inode.nlookup ? 0 : inode.nlookup - n;
    if (inode.nlookup > 0) return;
    this.inodes.delete(nodeid, 0);
    this.byKey.delete(inode.dev, inode.ino);
    this.locks.dropInode(nodeid);
    // Only an object that still has a name can be looked up again; holding one the guest
    // removed would keep it on the host file system's orphan list (ext4: create+unlink at a
    // quarter of the rate with 1024 held) and its blocks allocated.
    if (inode.removed) this.fsAt.close(inode.fd);
    else this.retained.retain(inode.fd, inode.dev, inode.ino);
  }

  /**
   * The guest removed the last name of the object with attributes `st` (host ids): its inode,
   * if the guest still holds it, is closed at its FORGET rather than retained, and a retained
   * descriptor of it is closed now.
   */
  protected removed(st: Float64Array): void {
    const inode = this.find(st[DEV]!, st[INO]!);
    if (inode !== undefined) inode.removed = true;
    else this.retained.drop(st[DEV]!, st[INO]!);
  }

  /**
   * Registers an open handle of inode `nodeid` and returns its new fh (the FUSE file handle the
   * guest passes back): `fd` is the open descriptor (-1 for a directory handle, which keeps its
   * `entries` snapshot for READDIR instead; null for a file). When the table is full, closes `fd`
   * and fails with ENFILE.
   */
  protected addHandle(nodeid: number, fd: number, entries: DirEntry[] | null): number {
    if (this.handles.size >= this.maxHandles) {
      if (fd >= 0) this.fsAt.close(fd);
      fail(Errno.ENFILE, `handle table full (${this.maxHandles})`);
    }
    const fh = this.nextFh++;
    this.handles.set(fh, 0, { fh, nodeid, fd, entries, pins: 0, released: false });
    return fh;
  }

  /** The open handle `fh` (EBADF when unknown or released). */
  handle(fh: number): FileHandle {
    const h = this.handles.get(fh, 0);
    if (h === undefined) fail(Errno.EBADF, `fh ${fh} unknown`);
    return h;
  }

  /** A file handle's descriptor (EISDIR for a directory handle). */
  fileFd(fh: number): number {
    const h = this.handle(fh);
    if (h.fd < 0) fail(Errno.EISDIR, 'a directory handle');
    return h.fd;
  }

  /** A file handle whose descriptor stays open until `unpinHandle` (a transfer on the thread pool). */
  pinHandle(fh: number): FileHandle {
    const h = this.handle(fh);
    if (h.fd < 0) fail(Errno.EISDIR, 'a directory handle');
    h.pins++;
    return h;
  }

  /**
   * Ends a transfer `pinHandle` started: at the last unpin of a handle already released (RELEASE
   * came while the transfer ran), its descriptor is closed.
   */
  unpinHandle(h: FileHandle): void {
    if (--h.pins === 0 && h.released) this.fsAt.close(h.fd);
  }

  /** RELEASE / RELEASEDIR: closes the handle (unknown handles: EBADF); a pinned one at its last unpin. */
  release(fh: number): void {
    const h = this.handle(fh);
    this.handles.delete(fh, 0);
    this.closeHandle(h);
  }

  private closeHandle(h: FileHandle): void {
    h.released = true;
    if (h.fd >= 0 && h.pins === 0) this.fsAt.close(h.fd);
  }

  /** DESTROY (and device reset): every handle and lock closed, every inode but the root forgotten. */
  clear(): void {
    this.locks.clear();
    this.handles.forEachValue((h) => this.closeHandle(h));
    this.handles.clear();
    this.inodes.forEachValue((n) => {
      if (n !== this.root) this.fsAt.close(n.fd);
    });
    this.retained.clear();
    this.inodes.clear();
    this.byKey.clear();
    this.insert(this.root);
  }

  /** Closes the root too: the object is unusable afterwards. */
  close(): void {
    this.clear();
    this.fsAt.close(this.root.fd);
    this.inodes.clear();
  }
}
