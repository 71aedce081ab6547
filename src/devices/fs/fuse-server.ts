/**
 * The FUSE request dispatcher of virtio-fs (5.11.6): one request's bytes in (the device-readable
 * part: fuse_in_header and the operation's arguments), one reply's bytes out (fuse_out_header
 * and the result), over a HostFs. Nothing here throws at the guest: every failure, malformed
 * input included, is a reply with a negated errno.
 *
 * Byte order: FUSE over virtio-fs is in the driver's native order. FUSE_INIT decides it: the
 * opcode reads 26 in one order only (QEMU-NOTES.md: a big-endian s390x guest sends big-endian
 * FUSE, which QEMU 7.2's virtiofsd misreads).
 *
 * One operation completes later: SETLKW on a lock another owner holds. `handle` then returns
 * FUSE_REPLY_DEFERRED and `takeDeferred()` gives the reply's promise (INTERRUPT or reset ends
 * it with EINTR). Operations on names, xattrs, locks and space are in fuse-ops.ts.
 */
import { StatField, StatfsField } from '../../platform/fs-at.js';
import {
  FUSE_COMPAT_22_INIT_OUT_SIZE,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FattrBit,
  FopenFlag,
  FuseAttrOut,
  FuseBatchForgetIn,
  FuseCreateIn,
  FuseDirent,
  FuseDirentplus,
  FuseEntryOut,
  FuseFlushInOwner,
  FuseForgetIn,
  FuseFsyncIn,
  FuseGetattrInField,
  FuseInHeader,
  FuseInitFlag,
  FuseInitIn,
  FuseInitOut,
  FuseMkdirIn,
  FuseOpcode,
  FuseOpenIn,
  FuseOpenOut,
  FuseOutHeader,
  FuseReadIn,
  FuseReleaseIn,
  FuseRenameIn,
  FuseSetattrIn,
  FuseStatfsOut,
  FuseWriteIn,
  FuseWriteOut,
} from '../../spec/fs.js';
import { Utime } from '../../platform/fs-at.js';
import { Errno, FuseErrno, errnoOf } from './fs-errno.js';
import { FuseOps } from './fuse-ops.js';
import type { FsNotifier } from './fs-notifier.js';
import { FuseWire } from './fuse-wire.js';
import type { HostFs, SetattrValues } from './host-fs.js';

/** virtiofsd's cache= policies: entry/attr timeouts 0 / 1 s / 1 day and the open flags that go with them. */
export type FsCachePolicy = 'never' | 'auto' | 'always';
/** Every {@link FsCachePolicy}, for option parsing and validation. */
export const FS_CACHE_POLICIES: readonly FsCachePolicy[] = ['never', 'auto', 'always'];

/** Options of {@link FuseServer}. */
export interface FuseServerOptions {
  /** max_write offered at INIT and the largest READ served (bytes). Default 1 MiB. */
  readonly maxWrite?: number;
  /** Default 'auto'. */
  readonly cache?: FsCachePolicy;
  /** entry_valid / attr_valid in seconds, overriding the policy's. */
  readonly cacheSeconds?: number;
}

/** Default max_write (bytes) offered at FUSE_INIT: 1 MiB. */
export const FUSE_DEFAULT_MAX_WRITE = 1 << 20;
/** Bytes of a request beyond its data: in header, write_in, names (two of NAME_MAX + NUL). */
export const FUSE_REQUEST_OVERHEAD = 4096;
/** `handle` result: the reply comes later, from `takeDeferred()`. */
export const FUSE_REPLY_DEFERRED = -1;
/** `handle` result: the data path took the READ or WRITE and answers it itself (thread pool). */
export const FUSE_REPLY_ASYNC = -2;
/** fuse_in_header + fuse_write_in: what a WRITE needs copied; its data may stay in guest memory. */
export const FUSE_WRITE_HEAD = FuseInHeader.SIZE + FuseWriteIn.SIZE;

/**
 * Zero-copy file data (the device's): READ reads from the file straight into the reply's data
 * area in guest memory (after the 16-byte out header), WRITE writes the request's data (after
 * FUSE_WRITE_HEAD) straight from guest memory. Both return bytes moved, or -errno.
 */
export interface FuseDataPath {
  /** READ of `len` bytes at byte `position` of host fd `fd` into the reply's data area; bytes read or -errno. */
  readInto(fd: number, position: number, len: number): number;
  /** WRITE of `len` bytes of the request's data to host fd `fd` at byte `position`; bytes written or -errno. */
  writeFrom(fd: number, position: number, len: number): number;
  /**
   * Optional: READ of `len` bytes at byte `position` of host fd `fd` queued for a batched read
   * (fs-read-batch.ts: one io_uring_enter for a pass's READs), answered by the data path itself
   * (true); false to read it now with `readInto`.
   */
  readQueued?(fd: number, position: number, len: number): boolean;
  /**
   * Optional: the transfer on the thread pool, answered by the data path itself (true), or
   * false to have it served synchronously (no slot free). Throws FuseErrno for a bad handle.
   */
  readAsync?(fh: number, position: number, len: number): boolean;
  /**
   * Optional: WRITE of `len` bytes at byte `position` of handle `fh` from the request's data in
   * guest memory, on the thread pool; true when the data path took it and answers the request
   * itself, false to have it served synchronously with `writeFrom` (no slot free). Throws
   * FuseErrno for a bad handle.
   */
  writeAsync?(fh: number, position: number, len: number): boolean;
}

/**
 * The FUSE request dispatcher of virtio-fs (5.11.6): decodes one request, runs it on a
 * {@link HostFs} and encodes the reply; every failure is a reply with a negated errno.
 */
export class FuseServer {
  /** FUSE_INIT has been answered (until a reset or DESTROY); other requests before it get EIO. */
  initialized = false;
  /** Negotiated protocol minor (0 before INIT). */
  minor = 0;
  /** max_write offered at INIT and the largest READ served, in bytes (4 KiB..16 MiB). */
  readonly maxWrite: number;
  /** The cache policy: it sets the entry/attr timeouts and the open flags. */
  readonly cache: FsCachePolicy;
  /** entry_valid and attr_valid of replies, in seconds (0 / 1 / 86400 by policy unless overridden). */
  readonly validSeconds: number;
  /** fuse_open_out.open_flags for files under the cache policy. */
  readonly openFlags: number;
  /** The request and reply bytes of the operation being served. */
  readonly w = new FuseWire();
  /** The request's arguments start here. */
  static readonly A = FuseInHeader.SIZE;
  /** Scratch attributes (StatField slots) for the reply being built. */
  readonly st = new Float64Array(StatField.COUNT + 2);
  private readonly sfs = new Float64Array(StatfsField.COUNT);
  private readonly ops: FuseOps;
  private deferred: Promise<Buffer> | null = null;
  /** Set by the device: file data moves between the file and guest memory directly. */
  dataPath: FuseDataPath | null = null;
  /** FUSE_POSIX_ACL (with DONT_MASK) negotiated: ACLs pass through, the umask is the host's to apply. */
  posixAclOn = false;
  /** FUSE_SETXATTR_EXT negotiated: fuse_setxattr_in is 16 bytes. */
  setxattrExt = false;
  /** Set by the device: the notification queue (SETLKW results go there when it is active). */
  notifier: FsNotifier | null = null;
  /** After `handle`: the reply's data (READ) is already in guest memory; only the header is in `out`. */
  replyInPlace = false;
  /** Bytes of the request in `inb` (a WRITE may leave its data in guest memory). */
  private inCopied = 0;

  constructor(
    /** The shared directory the operations act on. */
    readonly host: HostFs,
    opts: FuseServerOptions = {},
  ) {
    this.maxWrite = opts.maxWrite ?? FUSE_DEFAULT_MAX_WRITE;
    if (!Number.isInteger(this.maxWrite) || this.maxWrite < 4096 || this.maxWrite > 16 << 20) {
      throw new FuseErrno(Errno.EINVAL, `maxWrite ${this.maxWrite} not in 4 KiB..16 MiB`);
    }
    this.cache = opts.cache ?? 'auto';
    if (!FS_CACHE_POLICIES.includes(this.cache)) throw new FuseErrno(Errno.EINVAL, `cache policy ${String(this.cache)}`);
    this.validSeconds = opts.cacheSeconds ?? (this.cache === 'never' ? 0 : this.cache === 'auto' ? 1 : 86400);
    this.openFlags = this.cache === 'never' ? FopenFlag.DIRECT_IO : this.cache === 'always' ? FopenFlag.KEEP_CACHE : 0;
    this.ops = new FuseOps(this);
  }

  /** The driver's FUSE byte order, settled by FUSE_INIT. */
  get littleEndian(): boolean {
    return this.w.littleEndian;
  }

  /** Reset (device reset or DESTROY): a new INIT is needed; the host tables are emptied, lock waits end. */
  reset(): void {
    this.initialized = false;
    this.minor = 0;
    this.w.littleEndian = true;
    this.posixAclOn = false;
    this.setxattrExt = false;
    this.host.setCreateUmask(-1);
    this.ops.cancelAll();
    this.host.clear();
  }

  /**
   * Serves one request. `inb[0, min(inLen, inb.length))` holds the request's first bytes and
   * `inLen` its full length; the reply goes to `out[0, outCap)`. Returns the reply length, 0 for
   * no reply (FORGET, BATCH_FORGET, INTERRUPT, or a writable part too small for even a header),
   * or FUSE_REPLY_DEFERRED (then call `takeDeferred`). `inCopied`: bytes of the request in
   * `inb` when fewer than `inLen` (a WRITE whose data the data path reads from guest memory).
   */
  handle(inb: Buffer, inLen: number, out: Buffer, outCap: number, inCopied = Math.min(inLen, inb.length)): number {
    const w = this.w;
    w.bind(inb, inLen, out, outCap);
    this.replyInPlace = false;
    this.inCopied = inCopied;
    if (inLen < FuseInHeader.SIZE) return w.reply(Errno.EINVAL, 0, false);
    let opcode = w.u32(FuseInHeader.OPCODE);
    if (!this.initialized && opcode !== FuseOpcode.INIT && w.u32Other(FuseInHeader.OPCODE) === FuseOpcode.INIT) {
      // The driver speaks the other byte order (decided for good by this INIT).
      w.littleEndian = !w.littleEndian;
      opcode = FuseOpcode.INIT;
    }
    const noReply = opcode === FuseOpcode.FORGET || opcode === FuseOpcode.BATCH_FORGET || opcode === FuseOpcode.INTERRUPT;
    // The header's length must be the request's: a shorter or longer chain is malformed. Only a
    // WRITE over the data path may leave bytes uncopied (its data); never beyond the bound.
    const partial = inLen > inCopied && !(opcode === FuseOpcode.WRITE && this.dataPath !== null && inCopied >= FUSE_WRITE_HEAD);
    if (w.u32(FuseInHeader.LEN) !== inLen || partial || inLen > this.maxWrite + FUSE_REQUEST_OVERHEAD) return w.reply(Errno.EINVAL, 0, noReply);
    if (!this.initialized && opcode !== FuseOpcode.INIT) return w.reply(Errno.EIO, 0, noReply);
    try {
      this.host.setCaller(w.u32(FuseInHeader.UID), w.u32(FuseInHeader.GID));
      return this.dispatch(opcode, w.id(FuseInHeader.NODEID));
    } catch (e) {
      return w.reply(errnoOf(e), 0, noReply);
    }
  }

  /** The reply of the request `handle` answered FUSE_REPLY_DEFERRED for (a complete reply, header included). */
  takeDeferred(): Promise<Buffer> {
    const p = this.deferred;
    this.deferred = null;
    if (p === null) throw new FuseErrno(Errno.EIO, 'no deferred reply');
    return p;
  }

  /** @internal fuse-ops.ts: the current request's reply comes from `p`. */
  defer(p: Promise<Buffer>): number {
    this.deferred = p;
    return FUSE_REPLY_DEFERRED;
  }

  private dispatch(opcode: number, nodeid: number): number {
    const A = FuseServer.A;
    const host = this.host;
    const w = this.w;
    const st = this.st;
    switch (opcode) {
      case FuseOpcode.INIT:
        return this.init();
      case FuseOpcode.DESTROY:
        this.reset();
        return w.reply(0, 0, false);
      case FuseOpcode.LOOKUP: {
        w.need(FuseEntryOut.SIZE);
        const inode = host.lookupEntry(nodeid, w.name(A).name, st);
        return this.entry(inode.nodeid);
      }
      case FuseOpcode.FORGET:
        w.args(FuseForgetIn.SIZE);
        host.forget(nodeid, w.count(A + FuseForgetIn.NLOOKUP));
        return 0;
      case FuseOpcode.BATCH_FORGET: {
        w.args(FuseBatchForgetIn.SIZE);
        const n = w.u32(A + FuseBatchForgetIn.COUNT);
        // The count must match the request's length (a larger one would read past it).
        if (A + FuseBatchForgetIn.SIZE + n * FuseBatchForgetIn.ONE_SIZE > w.inLen) return 0;
        for (let i = 0, p = A + FuseBatchForgetIn.SIZE; i < n; i++, p += FuseBatchForgetIn.ONE_SIZE) {
          host.forget(w.id(p), w.count(p + 8));
        }
        return 0;
      }
      case FuseOpcode.GETATTR: {
        w.need(FuseAttrOut.SIZE);
        w.args(FuseGetattrInField.FH + 8);
        if ((w.u32(A + FuseGetattrInField.FLAGS) & FuseGetattrInField.FLAG_FH) !== 0) host.statHandleInto(w.id(A + FuseGetattrInField.FH), st);
        else host.statInto(nodeid, st);
        return w.attrOut(st, this.validSeconds);
      }
      case FuseOpcode.SETATTR:
        w.need(FuseAttrOut.SIZE);
        w.args(FuseSetattrIn.SIZE);
        this.setattr(nodeid);
        return w.attrOut(st, this.validSeconds);
      case FuseOpcode.OPEN:
      case FuseOpcode.OPENDIR: {
        w.need(FuseOpenOut.SIZE);
        w.args(FuseOpenIn.SIZE);
        const file = opcode === FuseOpcode.OPEN;
        const fh = file ? host.open(nodeid, w.u32(A + FuseOpenIn.FLAGS)) : host.opendir(nodeid);
        w.openOut(FuseOutHeader.SIZE, fh, file ? this.openFlags : this.cache === 'always' ? FopenFlag.CACHE_DIR | FopenFlag.KEEP_CACHE : 0);
        return w.reply(0, FuseOpenOut.SIZE, false);
      }
      case FuseOpcode.CREATE:
      case FuseOpcode.TMPFILE: {
        w.need(FuseEntryOut.SIZE + FuseOpenOut.SIZE);
        w.args(FuseCreateIn.SIZE);
        const flags = w.u32(A + FuseCreateIn.FLAGS);
        const mode = w.u32(A + FuseCreateIn.MODE) & ~this.umask(w.u32(A + FuseCreateIn.UMASK));
        // TMPFILE carries a placeholder name ("/"): the file has none.
        const { inode, fh } = opcode === FuseOpcode.CREATE ? host.createEntry(nodeid, w.name(A + FuseCreateIn.SIZE).name, flags, mode, st) : host.tmpfileEntry(nodeid, flags, mode, st);
        w.entryOut(FuseOutHeader.SIZE, inode.nodeid, st, this.validSeconds, this.validSeconds);
        w.openOut(FuseOutHeader.SIZE + FuseEntryOut.SIZE, fh, this.openFlags);
        return w.reply(0, FuseEntryOut.SIZE + FuseOpenOut.SIZE, false);
      }
      case FuseOpcode.MKDIR: {
        w.need(FuseEntryOut.SIZE);
        w.args(FuseMkdirIn.SIZE);
        const mode = w.u32(A + FuseMkdirIn.MODE) & ~this.umask(w.u32(A + FuseMkdirIn.UMASK));
        return this.entry(host.mkdirEntry(nodeid, w.name(A + FuseMkdirIn.SIZE).name, mode, st).nodeid);
      }
      case FuseOpcode.UNLINK:
        host.unlink(nodeid, w.name(A).name);
        return w.reply(0, 0, false);
      case FuseOpcode.RMDIR:
        host.rmdir(nodeid, w.name(A).name);
        return w.reply(0, 0, false);
      case FuseOpcode.RENAME: {
        w.args(FuseRenameIn.SIZE);
        const newdir = w.id(A + FuseRenameIn.NEWDIR);
        const from = w.name(A + FuseRenameIn.SIZE);
        const to = w.name(from.next);
        host.rename(nodeid, from.name, newdir, to.name);
        return w.reply(0, 0, false);
      }
      case FuseOpcode.READ:
        return this.read();
      case FuseOpcode.WRITE:
        return this.write();
      case FuseOpcode.READDIR:
      case FuseOpcode.READDIRPLUS:
        return this.readdir(nodeid, opcode === FuseOpcode.READDIRPLUS);
      case FuseOpcode.RELEASE:
      case FuseOpcode.RELEASEDIR:
        w.args(FuseReleaseIn.SIZE);
        host.release(w.id(A + FuseReleaseIn.FH));
        return w.reply(0, 0, false);
      case FuseOpcode.FLUSH: {
        // Data goes to the host file at WRITE (no buffering here). The owner closed the file:
        // its POSIX locks go, as close(2) drops them.
        w.args(8);
        const h = host.handle(w.id(A));
        if (w.inLen >= A + FuseFlushInOwner.LOCK_OWNER + 8) host.locks.dropOwner(h.nodeid, w.u64Key(A + FuseFlushInOwner.LOCK_OWNER));
        return w.reply(0, 0, false);
      }
      case FuseOpcode.FSYNC:
      case FuseOpcode.FSYNCDIR:
        w.args(FuseFsyncIn.SIZE);
        host.fsync(w.id(A + FuseFsyncIn.FH), (w.u32(A + FuseFsyncIn.FLAGS) & FuseFsyncIn.DATASYNC) !== 0);
        return w.reply(0, 0, false);
      case FuseOpcode.STATFS:
        w.need(FuseStatfsOut.SIZE);
        host.statfsInto(nodeid, this.sfs);
        return this.statfs();
      default:
        return this.ops.dispatch(opcode, nodeid);
    }
  }

  /** A fuse_entry_out reply for `nodeid` with the attributes in `st`. */
  entry(nodeid: number): number {
    this.w.entryOut(FuseOutHeader.SIZE, nodeid, this.st, this.validSeconds, this.validSeconds);
    return this.w.reply(0, FuseEntryOut.SIZE, false);
  }

  // --- operations -------------------------------------------------------------------------

  private init(): number {
    const w = this.w;
    w.args(FuseInitIn.SIZE - 4); // minor < 6 drivers sent no flags; we need major, minor
    const A = FuseServer.A;
    const major = w.u32(A + FuseInitIn.MAJOR);
    const minor = w.u32(A + FuseInitIn.MINOR);
    if (major !== FUSE_KERNEL_VERSION) return w.reply(Errno.EPROTO, 0, false);
    const theirFlags = w.inLen >= A + FuseInitIn.SIZE ? w.u32(A + FuseInitIn.FLAGS) : 0;
    this.minor = Math.min(minor, FUSE_KERNEL_MINOR_VERSION);
    const size = this.minor < 23 ? FUSE_COMPAT_22_INIT_OUT_SIZE : FuseInitOut.SIZE;
    w.need(size);
    let flags =
      FuseInitFlag.ASYNC_READ | FuseInitFlag.BIG_WRITES | FuseInitFlag.PARALLEL_DIROPS | FuseInitFlag.POSIX_LOCKS | FuseInitFlag.ATOMIC_O_TRUNC | FuseInitFlag.DO_READDIRPLUS | FuseInitFlag.READDIRPLUS_AUTO;
    if (this.minor >= 28) flags |= FuseInitFlag.MAX_PAGES;
    // POSIX ACLs as virtiofsd's posix_acl: with DONT_MASK (the umask is applied here, or not at
    // all under a default ACL) and SETXATTR_EXT (the guest says when S_ISGID must go).
    if (this.host.posixAcl) flags |= FuseInitFlag.POSIX_ACL | FuseInitFlag.DONT_MASK | FuseInitFlag.SETXATTR_EXT;
    this.posixAclOn = (flags & theirFlags & FuseInitFlag.POSIX_ACL) !== 0 && (theirFlags & FuseInitFlag.DONT_MASK) !== 0;
    this.setxattrExt = (flags & theirFlags & FuseInitFlag.SETXATTR_EXT) !== 0;
    if (!this.posixAclOn) flags &= ~(FuseInitFlag.POSIX_ACL | FuseInitFlag.DONT_MASK);
    const at = FuseOutHeader.SIZE;
    w.zero(at, size);
    w.setU32(at + FuseInitOut.MAJOR, FUSE_KERNEL_VERSION);
    w.setU32(at + FuseInitOut.MINOR, this.minor);
    w.setU32(at + FuseInitOut.MAX_READAHEAD, w.u32(A + FuseInitIn.MAX_READAHEAD));
    w.setU32(at + FuseInitOut.FLAGS, flags & theirFlags);
    w.setU16(at + FuseInitOut.MAX_BACKGROUND, 64);
    w.setU16(at + FuseInitOut.CONGESTION_THRESHOLD, 48);
    w.setU32(at + FuseInitOut.MAX_WRITE, this.maxWrite);
    if (size > FUSE_COMPAT_22_INIT_OUT_SIZE) {
      w.setU32(at + FuseInitOut.TIME_GRAN, 1);
      w.setU16(at + FuseInitOut.MAX_PAGES, Math.floor(this.maxWrite / 4096));
    }
    this.initialized = true;
    return w.reply(0, size, false);
  }

  /**
   * The umask the server applies to a new object's mode: the request's, or with POSIX ACLs none
   * (the host applies the request's umask unless the directory has a default ACL).
   */
  umask(requestUmask: number): number {
    this.host.setCreateUmask(this.posixAclOn ? requestUmask : -1);
    return this.posixAclOn ? 0 : requestUmask;
  }

  private setattr(nodeid: number): void {
    const w = this.w;
    const A = FuseServer.A;
    const valid = w.u32(A + FuseSetattrIn.VALID);
    const values: SetattrValues = { mode: null, uid: null, gid: null, size: null, atime: null, mtime: null };
    if (valid & FattrBit.MODE) values.mode = w.u32(A + FuseSetattrIn.MODE);
    if (valid & FattrBit.UID) values.uid = w.u32(A + FuseSetattrIn.UID);
    if (valid & FattrBit.GID) values.gid = w.u32(A + FuseSetattrIn.GID);
    if (valid & FattrBit.SIZE) values.size = w.offset(A + FuseSetattrIn.SIZE_FIELD, Errno.EFBIG);
    if (valid & FattrBit.ATIME_NOW) [values.atime, values.atimeNsec] = [0, Utime.NOW];
    else if (valid & FattrBit.ATIME) [values.atime, values.atimeNsec] = [w.offset(A + FuseSetattrIn.ATIME), Math.min(w.u32(A + FuseSetattrIn.ATIMENSEC), 999_999_999)];
    if (valid & FattrBit.MTIME_NOW) [values.mtime, values.mtimeNsec] = [0, Utime.NOW];
    else if (valid & FattrBit.MTIME) [values.mtime, values.mtimeNsec] = [w.offset(A + FuseSetattrIn.MTIME), Math.min(w.u32(A + FuseSetattrIn.MTIMENSEC), 999_999_999)];
    const fh = valid & FattrBit.FH ? w.id(A + FuseSetattrIn.FH) : null;
    this.host.setattrInto(nodeid, fh, values, this.st);
  }

  private read(): number {
    const w = this.w;
    w.args(FuseReadIn.SIZE);
    const A = FuseServer.A;
    const fh = w.id(A + FuseReadIn.FH);
    const offset = w.offset(A + FuseReadIn.OFFSET);
    // Bounded three ways: what was asked, max_write (= the largest read), the driver's buffer.
    const want = Math.min(w.u32(A + FuseReadIn.SIZE_FIELD), this.maxWrite, w.outCap - FuseOutHeader.SIZE);
    let got = 0;
    if (this.dataPath !== null && want > 0) {
      if (this.dataPath.readAsync !== undefined && this.dataPath.readAsync(fh, offset, want)) return FUSE_REPLY_ASYNC;
      const fd = this.host.fileFd(fh);
      if (this.dataPath.readQueued !== undefined && this.dataPath.readQueued(fd, offset, want)) return FUSE_REPLY_ASYNC;
      const n = this.dataPath.readInto(fd, offset, want);
      if (n < 0) throw new FuseErrno(-n, 'read');
      this.replyInPlace = true;
      return w.reply(0, n, false);
    }
    while (got < want) {
      const n = this.host.pread(fh, w.out, FuseOutHeader.SIZE + got, want - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return w.reply(0, got, false);
  }

  private write(): number {
    const w = this.w;
    w.args(FuseWriteIn.SIZE);
    w.need(FuseWriteOut.SIZE);
    const A = FuseServer.A;
    const fh = w.id(A + FuseWriteIn.FH);
    const offset = w.offset(A + FuseWriteIn.OFFSET, Errno.EFBIG);
    const size = w.u32(A + FuseWriteIn.SIZE_FIELD);
    const data = A + FuseWriteIn.SIZE;
    if (size > this.maxWrite || data + size !== w.inLen) throw new FuseErrno(Errno.EINVAL, 'WRITE size disagrees with the request');
    if (offset + size > Number.MAX_SAFE_INTEGER) throw new FuseErrno(Errno.EFBIG, 'WRITE past 2^53');
    let done = 0;
    if (this.inCopied < w.inLen) {
      // The data is still in guest memory (FsDevice's data path): written from there.
      const fd = this.host.writeFd(fh);
      if (this.dataPath!.writeAsync !== undefined && size > 0 && this.dataPath!.writeAsync(fh, offset, size)) return FUSE_REPLY_ASYNC;
      const n = this.dataPath!.writeFrom(fd, offset, size);
      if (n < 0) throw new FuseErrno(-n, 'write');
      done = n;
    } else while (done < size) done += this.host.pwrite(fh, w.inb, data + done, size - done, offset + done);
    w.zero(FuseOutHeader.SIZE, FuseWriteOut.SIZE);
    w.setU32(FuseOutHeader.SIZE + FuseWriteOut.SIZE_FIELD, done);
    return w.reply(0, FuseWriteOut.SIZE, false);
  }

  /** READDIR(PLUS): entries of the handle's snapshot from `offset` (an index), as many as fit. */
  private readdir(nodeid: number, plus: boolean): number {
    const w = this.w;
    w.args(FuseReadIn.SIZE);
    const A = FuseServer.A;
    const h = this.host.handle(w.id(A + FuseReadIn.FH));
    if (h.entries === null) throw new FuseErrno(Errno.ENOTDIR, 'READDIR of a file handle');
    const start = w.u64(A + FuseReadIn.OFFSET);
    const limit = Math.min(w.u32(A + FuseReadIn.SIZE_FIELD), w.outCap - FuseOutHeader.SIZE);
    let used = 0;
    for (let i = Math.max(0, start); start >= 0 && i < h.entries.length; i++) {
      const e = h.entries[i]!;
      const direntSize = (FuseDirent.NAME + e.name.length + 7) & ~7;
      const size = (plus ? FuseDirentplus.DIRENT : 0) + direntSize;
      if (used + size > limit) break;
      let at = FuseOutHeader.SIZE + used;
      let ino = e.ino;
      if (plus) {
        const dots = e.name[0] === 0x2e && (e.name.length === 1 || (e.name.length === 2 && e.name[1] === 0x2e));
        w.zero(at, FuseDirentplus.DIRENT);
        if (!dots) {
          // A lookup per entry (the driver will FORGET it); an entry gone since OPENDIR is skipped.
          let id: number;
          try {
            id = this.host.lookupEntry(nodeid, e.name, this.st).nodeid;
          } catch {
            continue;
          }
          w.entryOut(at, id, this.st, this.validSeconds, this.validSeconds);
          ino = this.st[StatField.INO]!;
        }
        at += FuseDirentplus.DIRENT;
      }
      w.zero(at, direntSize);
      w.setU64(at + FuseDirent.INO, ino);
      w.setU64(at + FuseDirent.OFF, i + 1);
      w.setU32(at + FuseDirent.NAMELEN, e.name.length);
      w.setU32(at + FuseDirent.TYPE, e.type);
      e.name.copy(w.out, at + FuseDirent.NAME);
      used += size;
    }
    return w.reply(0, used, false);
  }

  private statfs(): number {
    const w = this.w;
    const s = this.sfs;
    const at = FuseOutHeader.SIZE;
    w.zero(at, FuseStatfsOut.SIZE);
    w.setU64(at + FuseStatfsOut.BLOCKS, s[StatfsField.BLOCKS]!);
    w.setU64(at + FuseStatfsOut.BFREE, s[StatfsField.BFREE]!);
    w.setU64(at + FuseStatfsOut.BAVAIL, s[StatfsField.BAVAIL]!);
    w.setU64(at + FuseStatfsOut.FILES, s[StatfsField.FILES]!);
    w.setU64(at + FuseStatfsOut.FFREE, s[StatfsField.FFREE]!);
    w.setU32(at + FuseStatfsOut.BSIZE, s[StatfsField.BSIZE]!);
    w.setU32(at + FuseStatfsOut.NAMELEN, s[StatfsField.NAMELEN]!);
    w.setU32(at + FuseStatfsOut.FRSIZE, s[StatfsField.FRSIZE]!);
    return w.reply(0, FuseStatfsOut.SIZE, false);
  }
}
