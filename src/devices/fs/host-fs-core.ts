/**
 * HostFs's name operations (LOOKUP, CREATE, MKDIR, MKNOD, SYMLINK, LINK, TMPFILE, UNLINK, RMDIR,
 * RENAME2, OPEN, OPENDIR), every one a *at call relative to a descriptor the tables hold
 * (host-fs-tables.ts). How this keeps the guest inside the folder: see host-fs.ts.
 */
import { readFileSync } from 'node:fs';
import { At, OpenFlag, RenameFlag, StatField, procFdPath } from '../../platform/fs-at.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readDirSnapshot, type DirEntry } from './dir-snapshot.js';
import { Errno, check, fail } from './fs-errno.js';
import { IdMap } from './id-map.js';
import { XattrMap } from './xattr-map.js';
import { HostFsTables, O_PATH, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type HostFsLimits, type Inode } from './host-fs-tables.js';

const { NOFOLLOW, DIRECTORY, CREAT, EXCL, TRUNC, APPEND, NONBLOCK, ACCMODE, DIRECT, DSYNC, SYNC, RDONLY, RDWR } = OpenFlag;

/** Options of a HostFs: the table limits plus how the share is presented to the guest (read-only, id maps, xattrs, ACLs). */
export interface HostFsOptions extends HostFsLimits {
  /** Every change refused with EROFS (writes, creation, removal, attributes, xattrs). */
  readonly readOnly?: boolean;
  /** guest ↔ host uid and gid translation. Default: identity. */
  readonly uidMap?: IdMap;
  /** guest ↔ host gid translation. Default: identity. */
  readonly gidMap?: IdMap;
  /** Guest xattr names stored under this host prefix (in `user.`); default: `user.` passthrough only. */
  readonly xattrPrefix?: string | null;
  /**
   * POSIX ACLs (virtiofsd's posix_acl): system.posix_acl_access / _default pass through to the
   * host file system, which stores and enforces them; new objects take the request's umask
   * unless their directory has a default ACL. Not with uid/gid maps (the ACL entries' ids
   * would need translating).
   */
  readonly posixAcl?: boolean;
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const NAME_MAX = 255;
const SLASH = 0x2f;
const DOT = 0x2e;
/**
 * The empty name of fstatat(fd, "", AT_EMPTY_PATH) (fstat of a pinned O_PATH descriptor) as
 * bytes: the addon takes a byte name in one N-API call, a string in three (GETATTR's path).
 */
const NO_NAME = new Uint8Array(0);
const { DEV, INO, MODE, UID, GID } = StatField;
/** open(2) flags the guest may pass on OPEN/CREATE (creation flags are CREATE's own). */
const PASSED_OPEN_FLAGS = ACCMODE | APPEND | TRUNC | DIRECT | DSYNC | SYNC;

/**
 * LOOKUP predicts whether the name's object is one the table holds (the kernel revalidating a
 * cached entry) or whose descriptor it retains after a FORGET (one fstatat answers both), or a
 * new one (open + fstat in one call, no fstatat first). A saturating score: +1 per new object,
 * -KNOWN_STEP per known one; at OPEN_FIRST_AT or more it opens first. Both ways are equally
 * safe; a wrong guess costs one system call.
 */
const OPEN_FIRST_AT = 8;
const OPEN_FIRST_MAX = 16;
const KNOWN_STEP = 4;

function isDots(name: Uint8Array): boolean {
  return name[0] === DOT && (name.length === 1 || (name.length === 2 && name[1] === DOT));
}

/** The process's umask (/proc/self/status "Umask:", Linux 4.7), or 0 when unreadable. */
function processUmaskNow(): number {
  try {
    const m = /^Umask:\s+([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
    return m === null ? 0 : parseInt(m[1]!, 8) & 0o777;
  } catch {
    return 0;
  }
}

/** The name operations of HostFs over its tables (host-fs-attrs.ts and host-fs.ts add the rest). */
export class HostFsCore extends HostFsTables {
  /** True when every change is refused with EROFS (HostFsOptions.readOnly). */
  readonly readOnly: boolean;
  /** Translates uids between the guest's view and the host's (identity unless configured). */
  readonly uidMap: IdMap;
  /** Translates gids between the guest's view and the host's (identity unless configured). */
  readonly gidMap: IdMap;
  /** Which guest xattr names reach the host and under which host name (xattr-map.ts). */
  readonly xattrs: XattrMap;
  /** Entries of one directory snapshot at most (OPENDIR/listDir fail EOVERFLOW beyond). */
  protected readonly maxDirEntries: number;
  /** The guest caller's ids (setCaller): the owner of what it creates, when we may chown. */
  private callerUid = -1;
  private callerGid = -1;
  private readonly canChown = process.geteuid?.() === 0;
  /** POSIX ACLs pass through to the host (HostFsOptions.posixAcl). */
  readonly posixAcl: boolean;
  /** The umask for the next creations (POSIX ACL mode: the request's), or -1: the process's. */
  private createUmask = -1;
  /** The process's umask when the HostFs was made (exactMode undoes it on new objects). */
  private readonly processUmask = processUmaskNow();
  /** open_tree(2) gives O_PATH descriptors (pathFdOf); false once it failed ENOSYS or EPERM. */
  private openPathWorks = true;
  /** LOOKUP's prediction score (OPEN_FIRST_AT). */
  private lookupOpensFirst = 0;

  constructor(rootDir: string, opts: HostFsOptions = {}) {
    super(rootDir, opts);
    this.maxDirEntries = opts.maxDirEntries ?? 1_000_000;
    this.readOnly = opts.readOnly ?? false;
    this.uidMap = opts.uidMap ?? new IdMap();
    this.gidMap = opts.gidMap ?? new IdMap();
    this.posixAcl = opts.posixAcl ?? false;
    if (this.posixAcl && (!this.uidMap.isIdentity || !this.gidMap.isIdentity)) {
      this.close();
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'POSIX ACLs with uid/gid translation: the ACL entries would keep untranslated ids');
    }
    this.xattrs = new XattrMap(opts.xattrPrefix ?? null, this.posixAcl);
  }


  /**
   * The guest's ids for the requests that follow (FUSE in_header uid/gid, 9P's attach uid and
   * request gid): new objects get them (when we run as root). A uid of -1: no owner change; a
   * gid of -1 with a uid: the group stays.
   */
  setCaller(uid: number, gid: number): void {
    this.callerUid = uid;
    this.callerGid = gid;
  }

  /**
   * The umask the host applies to the objects created next (-1: the process's own). With POSIX
   * ACLs the server passes the request's umask here and the mode unmasked: the host kernel then
   * applies the umask only where the directory has no default ACL, as Linux does locally.
   */
  setCreateUmask(umask: number): void {
    this.createUmask = umask < 0 ? -1 : umask & 0o777;
  }

  /**
   * Gives an object just created (O_PATH descriptor `fd`, attributes in `out`) exactly the
   * permission bits `mode` the driver asked for, where the host kernel took away those of the
   * process's umask: the driver applied the guest's umask already (FUSE without POSIX ACLs, as
   * virtiofsd, which runs with umask 0; 9P2000.L, as QEMU's passthrough, which chmods), so a guest
   * with umask 002 gets group-writable files. Only when the difference is the process umask's doing
   * (a default ACL on the host directory decided otherwise: left alone) and not with POSIX ACLs
   * passed through (the host applies the request's umask itself). No system call in the common
   * case (the guest's umask covers the process's). `out` follows the change.
   */
  private exactMode(fd: number, mode: number, out: Float64Array): void {
    if (this.createUmask >= 0 || this.processUmask === 0) return;
    const have = out[MODE]! & 0o777;
    const want = mode & 0o777;
    if (have === want || have !== (want & ~this.processUmask)) return;
    const exact = (out[MODE]! & 0o7000) | want;
    // chmod through the descriptor's /proc magic link (no fchmodat of an O_PATH descriptor
    // before Linux 6.6's fchmodat2); it reaches this very object, never a name.
    if (this.fsAt.fchmodat(At.FDCWD, procFdPath(fd), exact) === 0) out[MODE] = (out[MODE]! & ~0o7777) | exact;
  }

  /** Process umask for one creating call (single-threaded: nothing else runs in between); returns the old one. */
  private umaskIn(): number {
    return this.createUmask < 0 ? -1 : process.umask(this.createUmask);
  }

  private umaskOut(old: number): void {
    if (old >= 0) process.umask(old);
  }

  /**
   * An O_PATH descriptor of the very object the open descriptor `fd` is on (not of its name,
   * which may have changed since): open_tree without a clone, one system call, or where the
   * kernel (or a seccomp filter) refuses it, the /proc/self/fd/N magic link reopened with
   * O_PATH. fd or -errno.
   */
  private pathFdOf(fd: number): number {
    if (this.openPathWorks) {
      const r = this.fsAt.openPath(fd);
      if (r !== -Errno.ENOSYS && r !== -Errno.EPERM) return r;
      this.openPathWorks = false;
    }
    return this.fsAt.openat(At.FDCWD, procFdPath(fd), O_PATH);
  }

  /** A name as one path component: no `/`, not empty, at most NAME_MAX bytes, not `.` or `..`. */
  static checkName(name: Uint8Array): void {
    if (name.length === 0) fail(Errno.EINVAL, 'empty name');
    if (name.length > NAME_MAX) fail(Errno.ENAMETOOLONG, 'name too long');
    // One loop over the bytes (at most NAME_MAX): Buffer.includes is a call into C++ each.
    for (let i = 0; i < name.length; i++) {
      const b = name[i];
      if (b === SLASH) fail(Errno.EINVAL, 'name with /');
      if (b === 0) fail(Errno.EINVAL, 'name with NUL');
    }
    if (isDots(name)) fail(Errno.EINVAL, '. or ..');
  }

  /** The inode `nodeid` when it is a directory (ENOTDIR otherwise, ENOENT when unknown). */
  protected dir(nodeid: number): Inode {
    const d = this.inode(nodeid);
    if (d.type !== S_IFDIR) fail(Errno.ENOTDIR, `nodeid ${nodeid} is not a directory`);
    return d;
  }

  /** Fails EROFS on a read-only share; called first by every changing operation. */
  protected writable(): void {
    if (this.readOnly) fail(Errno.EROFS, 'read-only share');
  }
  /** Host ids of `st` as the guest's (in place). */
  private toGuest(st: Float64Array): void {
    if (!this.uidMap.isIdentity) st[UID] = this.uidMap.toGuest(st[UID]!);
    if (!this.gidMap.isIdentity) st[GID] = this.gidMap.toGuest(st[GID]!);
  }

  // --- the allocation-free layer ---------------------------------------------------------

  /** fstat of the inode's object into `out` (never follows a symlink inode), ids as the guest's. */
  statInto(nodeid: number, out: Float64Array): void {
    check(this.fsAt.fstatat(this.inode(nodeid).fd, NO_NAME, At.EMPTY_PATH, out), 'fstat');
    this.toGuest(out);
  }

  /** fstat of an open handle's descriptor (a directory handle: its inode). */
  statHandleInto(fh: number, out: Float64Array): void {
    const h = this.handle(fh);
    if (h.fd < 0) return this.statInto(h.nodeid, out);
    check(this.fsAt.fstatat(h.fd, NO_NAME, At.EMPTY_PATH, out), 'fstat');
    this.toGuest(out);
  }

  /**
   * LOOKUP: the inode of `name` in `parent`, its lookup count raised by one, its attributes in
   * `out`. `.` is the directory itself, `..` its parent; `..` of the root is refused (the guest
   * must not see above the shared folder; the kernel never asks for it, 9p walks might).
   */
  lookupEntry(parentId: number, name: Uint8Array, out: Float64Array): Inode {
    const parent = this.dir(parentId);
    let fd: number;
    if (name.length === 1 && name[0] === DOT) {
      fd = check(this.fsAt.openat(parent.fd, '.', O_PATH | NOFOLLOW), 'lookup .');
    } else if (name.length === 2 && name[0] === DOT && name[1] === DOT) {
      if (parent === this.root) fail(Errno.EACCES, '.. of the shared folder');
      fd = check(this.fsAt.openat(parent.fd, '..', O_PATH | NOFOLLOW), 'lookup ..');
    } else {
      HostFsCore.checkName(name);
      if (this.lookupOpensFirst < OPEN_FIRST_AT) {
        // An object already in the table needs no new descriptor: the pinned one is that object.
        check(this.fsAt.fstatat(parent.fd, name, At.SYMLINK_NOFOLLOW, out), 'lookup');
        const known = this.find(out[DEV]!, out[INO]!);
        if (known !== undefined) {
          this.lookupOpensFirst = this.lookupOpensFirst > KNOWN_STEP ? this.lookupOpensFirst - KNOWN_STEP : 0;
          known.nlookup++;
          this.toGuest(out);
          return known;
        }
        // Forgotten but its descriptor still retained: that descriptor is this object.
        const revived = this.revive(out);
        if (revived !== undefined) {
          this.lookupOpensFirst = this.lookupOpensFirst > KNOWN_STEP ? this.lookupOpensFirst - KNOWN_STEP : 0;
          this.toGuest(out);
          return revived;
        }
      }
      // A new object (or, opening first, any): opened and stat'ed in one call, the attributes
      // of the very object opened (the name may have changed since a fstatat above).
      this.newInodeWasRetained = false;
      const inode = this.adoptStat(check(this.fsAt.openStat(parent.fd, name, O_PATH | NOFOLLOW, out), 'lookup'), out);
      // Known, or forgotten with its descriptor retained: the fstatat-first way would have been cheaper.
      if (inode.nlookup > 1 || this.newInodeWasRetained) this.lookupOpensFirst = this.lookupOpensFirst > KNOWN_STEP ? this.lookupOpensFirst - KNOWN_STEP : 0;
      else if (this.lookupOpensFirst < OPEN_FIRST_MAX) this.lookupOpensFirst++;
      return inode;
    }
    return this.adopt(fd, out);
  }

  /** Takes an O_PATH descriptor into the table (or finds its inode there), one lookup more; attributes in `out`. */
  private adopt(fd: number, out: Float64Array): Inode {
    const r = this.fsAt.fstatat(fd, NO_NAME, At.EMPTY_PATH, out);
    if (r < 0) {
      this.fsAt.close(fd);
      check(r, 'fstat');
    }
    return this.adoptStat(fd, out);
  }

  /** `adopt` when `out` already holds the attributes of `fd`'s object (host ids). */
  private adoptStat(fd: number, out: Float64Array): Inode {
    const known = this.find(out[DEV]!, out[INO]!);
    if (known !== undefined) {
      this.fsAt.close(fd);
      known.nlookup++;
      this.toGuest(out);
      return known;
    }
    const inode = this.newInode(fd, out);
    this.toGuest(out);
    return inode;
  }

  /**
   * The new name `name` in `dir` (just made by us), adopted; `owned`: a new object, given to the
   * caller (chownToCaller). A new name of an existing object (LINK) keeps its owner.
   */
  private adoptNew(dir: Inode, name: Uint8Array, flags: number, out: Float64Array, owned = true): Inode {
    const fd = check(this.fsAt.openStat(dir.fd, name, O_PATH | NOFOLLOW | flags, out), 'open of the new object');
    return owned && this.chownToCaller(fd, out) ? this.adopt(fd, out) : this.adoptStat(fd, out);
  }

  /**
   * New objects belong to the guest caller when the back-end runs as root. `st`: the object's
   * attributes (host ids); no call when they already match. True when the owner changed (the
   * attributes are then stale).
   */
  private chownToCaller(fd: number, st: Float64Array): boolean {
    if (!this.canChown || this.callerUid < 0) return false;
    const uid = this.uidMap.toHost(this.callerUid);
    const gid = this.callerGid < 0 ? st[GID]! : this.gidMap.toHost(this.callerGid);
    if (st[UID] === uid && st[GID] === gid) return false;
    // Best effort, like virtiofsd's fsuid switch: the object exists either way.
    this.fsAt.fchownat(fd, '', uid, gid, At.EMPTY_PATH);
    return true;
  }

  /**
   * MKDIR: the new directory `name` in `parentId` with permission bits `mode` (umask applied), owned by the caller; its inode, attributes in `out`.
   */
  mkdirEntry(parentId: number, name: Uint8Array, mode: number, out: Float64Array): Inode {
    const parent = this.dir(parentId);
    HostFsCore.checkName(name);
    this.writable();
    const old = this.umaskIn();
    const r = this.fsAt.mkdirat(parent.fd, name, mode & 0o7777);
    this.umaskOut(old);
    check(r, 'mkdir');
    const inode = this.adoptNew(parent, name, DIRECTORY, out);
    this.exactMode(inode.fd, mode, out);
    return inode;
  }

  /** MKNOD: regular files, FIFOs and sockets; device nodes are refused (EPERM): no host device reachable through the share. */
  mknodEntry(parentId: number, name: Uint8Array, mode: number, rdev: number, out: Float64Array): Inode {
    const parent = this.dir(parentId);
    HostFsCore.checkName(name);
    this.writable();
    const type = mode & S_IFMT;
    if (type === S_IFCHR || type === S_IFBLK) fail(Errno.EPERM, 'device nodes are not created for the guest');
    if (type === S_IFDIR || type === S_IFLNK) fail(Errno.EINVAL, 'MKNOD of a directory or symlink');
    const old = this.umaskIn();
    const r = this.fsAt.mknodat(parent.fd, name, mode, rdev);
    this.umaskOut(old);
    check(r, 'mknod');
    const inode = this.adoptNew(parent, name, 0, out);
    this.exactMode(inode.fd, mode, out);
    return inode;
  }

  /** SYMLINK: `name` in `parent` pointing at `target` (any bytes: it is never followed here). */
  symlinkEntry(parentId: number, name: Uint8Array, target: Uint8Array, out: Float64Array): Inode {
    const parent = this.dir(parentId);
    HostFsCore.checkName(name);
    this.writable();
    if (target.length === 0 || target.length >= 4096) fail(target.length === 0 ? Errno.ENOENT : Errno.ENAMETOOLONG, 'symlink target length');
    check(this.fsAt.symlinkat(target, parent.fd, name), 'symlink');
    return this.adoptNew(parent, name, 0, out);
  }

  /** LINK: a new name for an inode the guest holds (never a host object outside the table). */
  linkEntry(nodeid: number, newParentId: number, newName: Uint8Array, out: Float64Array): Inode {
    const inode = this.inode(nodeid);
    const parent = this.dir(newParentId);
    HostFsCore.checkName(newName);
    this.writable();
    if (inode.type === S_IFDIR) fail(Errno.EPERM, 'hard link of a directory');
    let r = this.fsAt.linkat(inode.fd, '', parent.fd, newName, At.EMPTY_PATH);
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc magic link reaches the same object.
    if (r === -Errno.ENOENT || r === -Errno.EPERM) r = this.fsAt.linkat(At.FDCWD, procFdPath(inode.fd), parent.fd, newName, At.SYMLINK_FOLLOW);
    check(r, 'link');
    // The object has a name again (an O_TMPFILE file, or one whose last name was removed).
    inode.removed = false;
    // link(2) changes no owner (nor does virtiofsd's lo_link): the object stays its owner's.
    return this.adoptNew(parent, newName, 0, out, false);
  }

  /** READLINK: the target of a symlink inode into `buf`; its length (ENAMETOOLONG beyond buf). */
  readlink(nodeid: number, buf: Uint8Array): number {
    const inode = this.inode(nodeid);
    if (inode.type !== S_IFLNK) fail(Errno.EINVAL, 'READLINK of a non-symlink');
    const n = check(this.fsAt.readlinkat(inode.fd, '', buf), 'readlink');
    if (n >= buf.length) fail(Errno.ENAMETOOLONG, 'symlink target longer than the reply');
    return n;
  }

  /** CREATE: a new regular file (O_EXCL unless the driver allows an existing one); its handle. */
  createEntry(parentId: number, name: Uint8Array, flags: number, mode: number, out: Float64Array): {
    /** The file's inode, one lookup more. */
    inode: Inode;
    /** The open handle (opened with the request's access mode and flags). */
    fh: number;
  } {
    const parent = this.dir(parentId);
    HostFsCore.checkName(name);
    this.writable();
    // O_NONBLOCK: a FIFO planted under the name must not block the device in open(2) (regular
    // files ignore it); anything but a regular file is then refused. O_NOFOLLOW: never through a symlink.
    const base = (flags & PASSED_OPEN_FLAGS) | CREAT | NONBLOCK | NOFOLLOW;
    let created = true;
    const old = this.umaskIn();
    let fd = this.fsAt.openat(parent.fd, name, base | EXCL, mode & 0o7777);
    if (fd === -Errno.EEXIST && (flags & EXCL) === 0) {
      created = false;
      fd = this.fsAt.openat(parent.fd, name, base, mode & 0o7777);
    }
    this.umaskOut(old);
    check(fd, 'create');
    try {
      check(this.fsAt.fstatat(fd, NO_NAME, At.EMPTY_PATH, out), 'fstat');
      if ((out[MODE]! & S_IFMT) !== S_IFREG) fail(Errno.EINVAL, 'CREATE over something that is not a regular file');
      // The O_PATH descriptor of the very object opened (not the name again: it may have
      // changed), so `out` is its attributes too unless the owner changes now.
      const pathFd = check(this.pathFdOf(fd), 'O_PATH of the created file');
      const inode = created && this.chownToCaller(pathFd, out) ? this.adopt(pathFd, out) : this.adoptStat(pathFd, out);
      if (created) this.exactMode(inode.fd, mode, out);
      return { inode, fh: this.addHandle(inode.nodeid, fd, null) };
    } catch (e) {
      this.fsAt.close(fd);
      throw e;
    }
  }

  /** TMPFILE: an unnamed regular file in `parent` (O_TMPFILE), opened; linkable later with LINK. */
  tmpfileEntry(parentId: number, flags: number, mode: number, out: Float64Array): {
    /** The unnamed file's inode, one lookup more. */
    inode: Inode;
    /** The open handle (read-write when the request asked read-only: O_TMPFILE needs write access). */
    fh: number;
  } {
    const parent = this.dir(parentId);
    this.writable();
    const acc = (flags & ACCMODE) === RDONLY ? RDWR : flags & ACCMODE;
    const old = this.umaskIn();
    const r = this.fsAt.openat(parent.fd, '.', OpenFlag.TMPFILE | acc | (flags & (APPEND | DIRECT | DSYNC | SYNC)), mode & 0o7777);
    this.umaskOut(old);
    const fd = check(r, 'O_TMPFILE');
    try {
      const pathFd = check(this.pathFdOf(fd), 'O_PATH of the tmpfile');
      const st = this.fsAt.fstatat(pathFd, NO_NAME, At.EMPTY_PATH, out);
      if (st < 0) this.fsAt.close(pathFd);
      check(st, 'fstat');
      const inode = this.chownToCaller(pathFd, out) ? this.adopt(pathFd, out) : this.adoptStat(pathFd, out);
      this.exactMode(inode.fd, mode, out);
      // No name: not retained after its FORGET unless a LINK names it first.
      inode.removed = true;
      return { inode, fh: this.addHandle(inode.nodeid, fd, null) };
    } catch (e) {
      this.fsAt.close(fd);
      throw e;
    }
  }

  /** UNLINK of the non-directory `name` in `parentId` (EROFS on a read-only share). */
  unlink(parentId: number, name: Uint8Array): void {
    const parent = this.dir(parentId);
    HostFsCore.checkName(name);
    this.writable();
    const last = this.lastNameOf(parent, name);
    check(this.fsAt.unlinkat(parent.fd, name, 0), 'unlink');
    if (last) this.removed(this.tmp);
  }

  /** RMDIR of the empty directory `name` in `parentId` (EROFS on a read-only share). */
  rmdir(parentId: number, name: Uint8Array): void {
    const parent = this.dir(parentId);
    HostFsCore.checkName(name);
    this.writable();
    const last = this.lastNameOf(parent, name);
    check(this.fsAt.unlinkat(parent.fd, name, At.REMOVEDIR), 'rmdir');
    if (last) this.removed(this.tmp);
  }

  /**
   * Whether `name` in `dir` is the last name of its object (a directory, or a file with one
   * link), which the removal about to happen then takes away; its attributes stay in `tmp` for
   * `removed` (HostFsTables: such an object is not retained after its FORGET). False when the
   * name does not exist (the removal fails anyway).
   */
  private lastNameOf(dir: Inode, name: Uint8Array): boolean {
    // Nothing is retained (retainedDescriptors 0): no need to know.
    if (this.retained.capacity === 0 || this.fsAt.fstatat(dir.fd, name, At.SYMLINK_NOFOLLOW, this.tmp) !== 0) return false;
    return (this.tmp[StatField.MODE]! & S_IFMT) === S_IFDIR || this.tmp[StatField.NLINK]! <= 1;
  }

  /** RENAME / RENAME2: flags RENAME_NOREPLACE and RENAME_EXCHANGE (WHITEOUT is refused: EINVAL). */
  rename2(oldParentId: number, oldName: Uint8Array, newParentId: number, newName: Uint8Array, flags: number): void {
    const from = this.dir(oldParentId);
    const to = this.dir(newParentId);
    HostFsCore.checkName(oldName);
    HostFsCore.checkName(newName);
    this.writable();
    if ((flags & ~(RenameFlag.NOREPLACE | RenameFlag.EXCHANGE)) !== 0) fail(Errno.EINVAL, `rename flags 0x${flags.toString(16)}`);
    // A plain rename over an existing object removes that object's name.
    const last = (flags & (RenameFlag.NOREPLACE | RenameFlag.EXCHANGE)) === 0 && this.lastNameOf(to, newName);
    check(this.fsAt.renameat2(from.fd, oldName, to.fd, newName, flags), 'rename');
    if (last) this.removed(this.tmp);
  }

  /** RENAME (no flags): `rename2` with flags 0, replacing any target. */
  rename(oldParentId: number, oldName: Uint8Array, newParentId: number, newName: Uint8Array): void {
    this.rename2(oldParentId, oldName, newParentId, newName, 0);
  }

  /**
   * OPEN: a regular file inode reopened through its O_PATH descriptor, checked to be the same
   * object. Honoured: the access mode, O_APPEND, O_TRUNC, O_DIRECT, O_DSYNC, O_SYNC.
   */
  open(nodeid: number, flags: number): number {
    const inode = this.inode(nodeid);
    if (inode.type === S_IFDIR) fail(Errno.EISDIR, 'OPEN of a directory');
    if (inode.type !== S_IFREG) fail(Errno.ELOOP, 'OPEN of a symlink or special file');
    if ((flags & ACCMODE) !== RDONLY || (flags & TRUNC) !== 0) this.writable();
    // Reopening /proc/self/fd/N is a magic-link jump to the object: O_NOFOLLOW would refuse it.
    const fd = check(this.fsAt.openat(At.FDCWD, procFdPath(inode.fd), flags & PASSED_OPEN_FLAGS), 'open');
    return this.addHandle(nodeid, this.checkSame(fd, inode), null);
  }

  private checkSame(fd: number, inode: Inode): number {
    const r = this.fsAt.fstatat(fd, NO_NAME, At.EMPTY_PATH, this.tmp);
    if (r < 0 || this.tmp[DEV] !== inode.dev || this.tmp[INO] !== inode.ino) {
      this.fsAt.close(fd);
      fail(Errno.EIO, 'reopened object is not the inode');
    }
    return fd;
  }

  /** OPENDIR: a snapshot of the entries (bounded, real inode numbers), `.` and `..` first. */
  opendir(nodeid: number): number {
    return this.addHandle(nodeid, -1, this.listDir(nodeid));
  }

  /**
   * The entries of a directory inode (getdents64 in its pinned descriptor; `.` and `..` first,
   * `..` of the root is the root itself), bounded by maxDirEntries (EOVERFLOW beyond).
   */
  listDir(nodeid: number): DirEntry[] {
    const inode = this.dir(nodeid);
    let parentIno = inode.ino;
    if (inode !== this.root && this.fsAt.fstatat(inode.fd, '..', At.SYMLINK_NOFOLLOW, this.tmp) === 0) parentIno = this.tmp[INO]!;
    return readDirSnapshot(this.fsAt, inode.fd, inode.ino, parentIno, this.maxDirEntries);
  }

  /** RELEASE / RELEASEDIR: closes the handle (unknown handles: EBADF). */
}
