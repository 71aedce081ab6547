/**
 * A 9P2000.L file server over the shared host file layer (HostFs): one T-message in, one
 * R-message out, synchronously. The guest is untrusted: a message whose size field is not its
 * chain's length, strings or fields past its end, an unknown fid or message type, a walk of
 * more than 16 names, a name with `/` or `..` where a name is created: every one is answered
 * with Rlerror and a Linux errno, never a throw, and nothing is reached outside the shared
 * directory (HostFs resolves every name in a pinned directory, the operations on a fid's own
 * name check that it still refers to the fid's inode).
 *
 * Reads and writes move data between the host file and the request/reply buffers directly
 * (pread into the reply, pwrite from the request): nothing is allocated for them.
 */
import * as fs from 'node:fs';
import { StatField } from '../../platform/fs-at.js';
import { S_IFLNK, type HostFs, type SetattrValues } from '../fs/host-fs.js';
import {
  P9_AT_REMOVEDIR,
  P9_HEADER_BYTES,
  P9_IO_HEADER_BYTES,
  P9_MAX_WALK_NAMES,
  P9_MIN_MSIZE,
  P9_NOFID,
  P9_NONUNAME,
  P9_NOTAG,
  P9_VERSION_L,
  P9_VERSION_UNKNOWN,
  P9Errno,
  P9GetattrMask,
  P9SetattrValid,
  P9Type,
} from '../../spec/9p.js';
import { P9Reader, P9Writer, p9ErrnoOf, p9Fail } from './p9-codec.js';
import { P9_SYMLINK_TARGET_MAX, P9Create } from './p9-create.js';
import { FidTable, type FidTableLimits } from './p9-fids.js';
import { listDir } from './p9-listing.js';
import { P9Locks, serveGetlock, serveLock } from './p9-locks.js';
import { P9XattrOps } from './p9-xattr.js';

/** Bounds and policy of a P9Server. */
export interface P9ServerOptions extends FidTableLimits {
  /** Largest msize offered at Tversion (and the request/reply buffers' size). Default 512 KiB. */
  readonly maxMsize?: number;
  /** Refuse every change (EROFS). */
  readonly readOnly?: boolean;
  /** Lock ranges held at most (ENOLCK beyond). Default 4096. */
  readonly maxLocks?: number;
  /** Entries of one directory listing at most (EOVERFLOW beyond). Default 1,000,000. */
  readonly maxDirEntries?: number;
}

/** Default largest msize offered at Tversion: 512 KiB. */
export const P9_DEFAULT_MAX_MSIZE = 512 * 1024;
/** Rlerror: header and ecode[4]. */
const RLERROR_BYTES = P9_HEADER_BYTES + 4;
const O_ACCMODE = 3;
const { O_RDONLY, O_TRUNC } = fs.constants;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const DIRENT_FIXED = 13 + 8 + 1 + 2;
const ROOT_NAMES = new Set(['', '/']);

/**
 * A 9P2000.L server over a HostFs share: one request buffer in, one reply out (`handle`), fids,
 * locks and xattr fids bounded. Used by the 9P transport device (P9Device, device id 9).
 */
export class P9Server {
  /** Largest msize offered at Tversion, bytes (P9ServerOptions.maxMsize). */
  readonly maxMsize: number;
  /** Every change refused with EROFS. */
  readonly readOnly: boolean;
  /** msize agreed at Tversion (maxMsize before). */
  msize: number;
  /** Whether a Tversion of 9P2000.L started the session. */
  versioned = false;
  /** The fids the client holds, each naming an inode of `host` (bounded: FidTableLimits). */
  readonly fids: FidTable;
  /** Byte-range locks of Tlock / Tgetlock, kept in this server (not seen by host processes). */
  readonly locks: P9Locks;
  /** Txattrwalk / Txattrcreate state and its byte budget. */
  readonly xattr: P9XattrOps;
  /** Tlcreate, Tmkdir, Tsymlink, Tmknod: the requests that make a new object, and its owner (p9-create.ts). */
  private readonly create: P9Create;
  private readonly maxDirEntries: number;
  private readonly r = new P9Reader();
  private readonly w = new P9Writer();
  private req: Buffer = Buffer.alloc(0);
  private out: Buffer = Buffer.alloc(0);
  private readonly linkTarget = Buffer.alloc(P9_SYMLINK_TARGET_MAX + 1);
  private readonly st = new Float64Array(StatField.COUNT);

  constructor(
    /** The share the requests operate on (also used by virtio-fs: one confinement for both). */
    readonly host: HostFs,
    opts: P9ServerOptions = {},
  ) {
    this.maxMsize = opts.maxMsize ?? P9_DEFAULT_MAX_MSIZE;
    if (!Number.isInteger(this.maxMsize) || this.maxMsize < P9_MIN_MSIZE || this.maxMsize > 16 << 20) p9Fail(P9Errno.EINVAL, `maxMsize ${this.maxMsize} not in 4096..16 MiB`);
    this.msize = this.maxMsize;
    this.readOnly = opts.readOnly ?? false;
    this.fids = new FidTable(host, opts);
    this.locks = new P9Locks(opts.maxLocks);
    this.maxDirEntries = opts.maxDirEntries ?? 1_000_000;
    this.xattr = new P9XattrOps(host);
    this.create = new P9Create(host, this.fids, this.r, this.w, this.readOnly);
  }

  /**
   * Serves the T-message of `reqLen` bytes (the chain's readable length) whose first
   * `min(reqLen, req.length)` bytes are in `req`; writes the R-message into `out`, at most
   * `outCap` bytes. Returns the reply's length, or 0 when not even Rlerror fits.
   */
  handle(req: Buffer, reqLen: number, out: Buffer, outCap: number): number {
    const cap = Math.min(outCap, out.length, this.msize);
    if (cap < RLERROR_BYTES) return 0;
    this.req = req;
    this.out = out;
    let tag = P9_NOTAG;
    let type = 0;
    try {
      const r = this.r.reset(req, 0, Math.min(reqLen, req.length));
      if (reqLen < P9_HEADER_BYTES) p9Fail(P9Errno.EINVAL, `message of ${reqLen} bytes`);
      const size = r.u32();
      type = r.u8();
      tag = r.u16();
      if (size !== reqLen) p9Fail(P9Errno.EINVAL, `size field ${size}, chain ${reqLen} bytes`);
      const limit = type === P9Type.TVERSION ? this.maxMsize : this.msize;
      if (reqLen > limit || reqLen > req.length) p9Fail(P9Errno.EINVAL, `message of ${reqLen} bytes above msize ${limit}`);
      if (type !== P9Type.TVERSION && !this.versioned) p9Fail(P9Errno.EPROTO, 'no Tversion yet');
      this.w.reset(out, P9_HEADER_BYTES, cap);
      this.dispatch(type);
      out.writeUInt32LE(this.w.pos, 0);
      out[4] = type + 1;
      out.writeUInt16LE(tag, 5);
      return this.w.pos;
    } catch (e) {
      out.writeUInt32LE(RLERROR_BYTES, 0);
      out[4] = P9Type.RLERROR;
      out.writeUInt16LE(tag, 5);
      out.writeUInt32LE(p9ErrnoOf(e), 7);
      return RLERROR_BYTES;
    }
  }

  /** Device reset: every fid, handle, inode and lock dropped; the driver must Tversion again. */
  reset(): void {
    this.endSession();
    this.versioned = false;
    this.msize = this.maxMsize;
  }

  private endSession(): void {
    this.fids.clear();
    this.xattr.clear();
    this.locks.clear();
    this.host.clear();
  }

  private dispatch(type: number): void {
    switch (type) {
      case P9Type.TVERSION: return this.version();
      case P9Type.TATTACH: return this.attach();
      case P9Type.TWALK: return this.walk();
      case P9Type.TCLUNK: return this.clunk(this.r.u32());
      case P9Type.TLOPEN: return this.lopen();
      case P9Type.TLCREATE: return this.create.lcreate();
      case P9Type.TREAD: return this.read();
      case P9Type.TWRITE: return this.write();
      case P9Type.TGETATTR: return this.getattr();
      case P9Type.TSETATTR: return this.setattr();
      case P9Type.TREADDIR: return this.readdir();
      case P9Type.TMKDIR: return this.create.mkdir();
      case P9Type.TUNLINKAT: return this.unlinkat();
      case P9Type.TRENAMEAT: return this.renameat();
      case P9Type.TRENAME: return this.rename();
      case P9Type.TSYMLINK: return this.create.symlink();
      case P9Type.TMKNOD: return this.create.mknod();
      case P9Type.TLINK: return this.link();
      case P9Type.TREADLINK: return this.readlink();
      case P9Type.TSTATFS: return this.statfs();
      case P9Type.TFSYNC: return this.fsync();
      case P9Type.TLOCK: return this.lock(false);
      case P9Type.TGETLOCK: return this.lock(true);
      case P9Type.TREMOVE: return this.remove();
      // Every request is answered before the next is taken: the flushed one is already done.
      case P9Type.TFLUSH: return void this.r.u16();
      case P9Type.TXATTRWALK: return this.xattrwalk();
      case P9Type.TXATTRCREATE: return this.xattrcreate();
      default:
        return p9Fail(P9Errno.ENOSYS, `message type ${type}`);
    }
  }

  private mutating(): void {
    if (this.readOnly) p9Fail(P9Errno.EROFS, 'read-only share');
  }

  private version(): void {
    const msize = this.r.u32();
    const version = this.r.str();
    // A Tversion aborts everything outstanding and starts a new session.
    this.endSession();
    this.versioned = false;
    if (msize < P9_MIN_MSIZE) p9Fail(P9Errno.EINVAL, `msize ${msize} below ${P9_MIN_MSIZE}`);
    this.msize = Math.min(msize, this.maxMsize);
    this.w.u32(this.msize);
    if (version.toString('latin1').startsWith(P9_VERSION_L)) {
      this.versioned = true;
      this.w.str(Buffer.from(P9_VERSION_L));
    } else this.w.str(Buffer.from(P9_VERSION_UNKNOWN));
  }

  private attach(): void {
    const fid = this.r.u32();
    const afid = this.r.u32();
    this.r.str(); // uname: 9P2000.L names the user by n_uname (QEMU reads only that too)
    const aname = this.r.str();
    // The owner of what this fid's walks create (p9-create.ts); no access checks: the guest kernel makes them.
    const nUname = this.r.u32();
    if (afid !== P9_NOFID) p9Fail(P9Errno.EINVAL, 'no authentication is needed');
    if (!ROOT_NAMES.has(aname.toString('latin1'))) p9Fail(P9Errno.ENOENT, 'aname must be the share');
    this.fids.checkNew(fid);
    const root = this.host.root.nodeid;
    const st = this.host.stat(root);
    this.fids.hold(root, false);
    this.fids.add(fid, root, 0, null, nUname === P9_NONUNAME ? -1 : nUname);
    this.w.qid(this.fids.qidOf(st));
  }

  private walk(): void {
    const fid = this.r.u32();
    const newfid = this.r.u32();
    const n = this.r.u16();
    if (n > P9_MAX_WALK_NAMES) p9Fail(P9Errno.EINVAL, `walk of ${n} names`);
    const names: Buffer[] = [];
    for (let i = 0; i < n; i++) names.push(this.r.str());
    const src = this.fids.get(fid);
    if (newfid !== fid) this.fids.checkNew(newfid);
    else if (n > 0 && (src.fh >= 0 || src.openDir || src.xattr !== null)) p9Fail(P9Errno.EBADF, 'walk of an open fid in place');
    const root = this.host.root.nodeid;
    let cur = src.nodeid;
    let parent = src.parent;
    let name = src.name;
    let curFromLookup = false;
    const countAt = this.w.pos;
    this.w.u16(0);
    let walked = 0;
    for (const step of names) {
      try {
        let st: fs.Stats;
        if (cur === root && step.length === 2 && step[0] === 0x2e && step[1] === 0x2e) {
          // `..` of the share is the share (the guest never sees above it).
          st = this.host.stat(root);
          if (curFromLookup) this.host.forget(cur, 1);
          curFromLookup = false;
          parent = 0;
          name = null;
        } else {
          const dotdot = step.length === 2 && step[0] === 0x2e && step[1] === 0x2e;
          const dot = step.length === 1 && step[0] === 0x2e;
          const found = this.host.lookup(cur, step);
          // The previous step's lookup is given back: only the last object is kept.
          if (curFromLookup) this.host.forget(cur, 1);
          if (dotdot) {
            parent = 0;
            name = null;
          } else if (!dot) {
            parent = cur;
            name = step;
          }
          cur = found.inode.nodeid;
          curFromLookup = true;
          st = found.stat;
        }
        this.w.qid(this.fids.qidOf(st));
        walked++;
      } catch (e) {
        if (walked === 0) throw e;
        break;
      }
    }
    this.out.writeUInt16LE(walked, countAt);
    if (walked < n) {
      // Partial walk: the qids so far are the answer, newfid is not made.
      if (curFromLookup) this.host.forget(cur, 1);
      return;
    }
    this.fids.hold(cur, curFromLookup);
    const keptName = name === null ? null : Buffer.from(name);
    if (newfid === fid) {
      const old = src.nodeid;
      src.nodeid = cur;
      src.parent = parent;
      src.name = keptName;
      this.fids.drop(old);
    } else this.fids.add(newfid, cur, parent, keptName, src.uid);
  }

  private lopen(): void {
    const f = this.fids.get(this.r.u32());
    const flags = this.r.u32();
    if (f.fh >= 0 || f.openDir) p9Fail(P9Errno.EINVAL, 'fid already open');
    const st = this.host.stat(f.nodeid);
    if ((st.mode & S_IFMT) === S_IFDIR) {
      if ((flags & O_ACCMODE) !== O_RDONLY) p9Fail(P9Errno.EISDIR, 'directory opened for writing');
      f.openDir = true;
    } else {
      if ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0) this.mutating();
      f.fh = this.host.open(f.nodeid, flags);
    }
    this.w.qid(this.fids.qidOf(st));
    this.w.u32(0); // iounit: the client uses msize
  }

  private read(): void {
    const f = this.fids.get(this.r.u32());
    const offset = this.r.u64(P9Errno.EINVAL);
    const count = this.r.u32();
    const n = Math.min(count, this.w.room - 4);
    let got: number;
    if (f.xattr !== null) got = this.xattr.readInto(f.xattr, offset, this.out, P9_IO_HEADER_BYTES, n);
    else {
      if (f.fh < 0) p9Fail(f.openDir ? P9Errno.EISDIR : P9Errno.EBADF, 'read of a fid not open as a file');
      got = n > 0 ? this.host.pread(f.fh, this.out, P9_IO_HEADER_BYTES, n, offset) : 0;
    }
    this.w.u32(got);
    this.w.pos += got;
  }

  private write(): void {
    const f = this.fids.get(this.r.u32());
    const offset = this.r.u64(P9Errno.EFBIG);
    const count = this.r.u32();
    if (count > this.r.remaining) p9Fail(P9Errno.EINVAL, `write of ${count} bytes with ${this.r.remaining} in the message`);
    if (f.xattr !== null) return this.w.u32(this.xattr.write(f.xattr, offset, this.req, this.r.pos, count));
    if (f.fh < 0) p9Fail(f.openDir ? P9Errno.EISDIR : P9Errno.EBADF, 'write to a fid not open as a file');
    this.mutating();
    this.w.u32(count > 0 ? this.host.pwrite(f.fh, this.req, this.r.pos, count, offset) : 0);
  }

  private getattr(): void {
    const f = this.fids.get(this.r.u32());
    this.r.u64Clamped(); // request_mask: everything stat(2) gives is answered
    const st = this.host.stat(f.nodeid);
    const w = this.w;
    w.u64(P9GetattrMask.BASIC);
    w.qid(this.fids.qidOf(st));
    w.u32(st.mode);
    w.u32(st.uid);
    w.u32(st.gid);
    w.u64(st.nlink);
    w.u64(st.rdev);
    w.u64(st.size);
    w.u64(st.blksize);
    w.u64(st.blocks);
    this.time(st.atimeMs);
    this.time(st.mtimeMs);
    this.time(st.ctimeMs);
    this.time(0); // btime (not in BASIC)
    w.u64(0); // gen
    w.u64(0); // data_version
  }

  private time(ms: number): void {
    const sec = Math.floor(ms / 1000);
    this.w.u64(sec);
    this.w.u64(Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6)));
  }

  private setattr(): void {
    const r = this.r;
    const f = this.fids.get(r.u32());
    const valid = r.u32();
    const mode = r.u32();
    const uid = r.u32();
    const gid = r.u32();
    const size = r.u64(P9Errno.EFBIG);
    const atime = r.u64() + r.u64() / 1e9;
    const mtime = r.u64() + r.u64() / 1e9;
    const V = P9SetattrValid;
    // CTIME alone (what the kernel sends around other changes) changes nothing by itself.
    if ((valid & (V.MODE | V.UID | V.GID | V.SIZE | V.ATIME | V.MTIME)) === 0) return;
    this.mutating();
    const now = Date.now() / 1000;
    const values: SetattrValues = {
      mode: valid & V.MODE ? mode : null,
      uid: valid & V.UID ? uid : null,
      gid: valid & V.GID ? gid : null,
      size: valid & V.SIZE ? size : null,
      atime: valid & V.ATIME ? (valid & V.ATIME_SET ? atime : now) : null,
      mtime: valid & V.MTIME ? (valid & V.MTIME_SET ? mtime : now) : null,
    };
    this.host.setattr(f.nodeid, f.fh >= 0 ? f.fh : null, values);
  }

  private readdir(): void {
    const f = this.fids.get(this.r.u32());
    const offset = this.r.u64();
    const count = this.r.u32();
    if (!f.openDir) p9Fail(P9Errno.EBADF, 'readdir of a fid not open as a directory');
    if (offset === 0 || f.entries === null) {
      const listing = listDir(this.host, f.nodeid);
      if (listing.length > this.maxDirEntries) p9Fail(P9Errno.EOVERFLOW, `directory above ${this.maxDirEntries} entries`);
      this.fids.setEntries(f, listing);
    }
    const entries = f.entries!;
    const w = this.w;
    const countAt = w.pos;
    w.u32(0);
    const limit = Math.min(count, w.room);
    let used = 0;
    for (let i = offset; i < entries.length; i++) {
      const e = entries[i]!;
      const size = DIRENT_FIXED + e.name.length;
      if (used + size > limit) break;
      w.qid(this.fids.entryQid(e));
      w.u64(i + 1);
      w.u8(e.fmt >>> 12); // DT_* is S_IFMT >> 12
      w.str(e.name);
      used += size;
    }
    this.out.writeUInt32LE(used, countAt);
  }

  private unlinkat(): void {
    const d = this.fids.get(this.r.u32());
    const name = this.r.str();
    const flags = this.r.u32();
    this.mutating();
    if (flags & P9_AT_REMOVEDIR) this.host.rmdir(d.nodeid, name);
    else this.host.unlink(d.nodeid, name);
  }

  private renameat(): void {
    const from = this.fids.get(this.r.u32());
    const oldName = this.r.str();
    const to = this.fids.get(this.r.u32());
    const newName = this.r.str();
    this.mutating();
    this.host.rename(from.nodeid, oldName, to.nodeid, newName);
    this.fids.renamed(from.nodeid, oldName, to.nodeid, newName);
  }

  private rename(): void {
    const f = this.fids.get(this.r.u32());
    const d = this.fids.get(this.r.u32());
    const name = this.r.str();
    this.mutating();
    if (f.name === null) p9Fail(P9Errno.EBUSY, 'rename of the share itself');
    this.host.rename(f.parent, f.name, d.nodeid, name);
    this.fids.renamed(f.parent, f.name, d.nodeid, name);
  }

  private link(): void {
    const d = this.fids.get(this.r.u32());
    const f = this.fids.get(this.r.u32());
    const name = this.r.str();
    this.mutating();
    if (f.name === null) p9Fail(P9Errno.EPERM, 'link of the share itself');
    // As QEMU's path-based 9p: the fid's name must still be its object (else ENOENT) ...
    this.host.checkNamed(f.parent, f.name, f.nodeid);
    // ... and the link is made by linkat of the fid's own pinned descriptor: the object the fid holds, whatever its name is now.
    this.host.forget(this.host.linkEntry(f.nodeid, d.nodeid, name, this.st).nodeid, 1);
  }

  private readlink(): void {
    const f = this.fids.get(this.r.u32());
    if (this.host.inode(f.nodeid).type !== S_IFLNK || f.name === null) p9Fail(P9Errno.EINVAL, 'readlink of something that is not a symlink');
    this.host.checkNamed(f.parent, f.name, f.nodeid);
    const n = this.host.readlink(f.nodeid, this.linkTarget);
    this.w.str(this.linkTarget.subarray(0, n));
  }

  private statfs(): void {
    const f = this.fids.get(this.r.u32());
    const s = this.host.statfs(f.nodeid);
    const w = this.w;
    w.u32(s.type);
    w.u32(s.bsize);
    w.u64(s.blocks);
    w.u64(s.bfree);
    w.u64(s.bavail);
    w.u64(s.files);
    w.u64(s.ffree);
    w.u64(0); // fsid
    w.u32(255); // namelen (NAME_MAX, what HostFs accepts)
  }

  private fsync(): void {
    const f = this.fids.get(this.r.u32());
    const datasync = this.r.u32();
    if (f.fh >= 0) this.host.fsync(f.fh, datasync !== 0);
    else if (f.openDir) this.host.fsyncDir(f.nodeid, datasync !== 0);
    else p9Fail(P9Errno.EBADF, 'fsync of a fid not open');
  }

  /** Tlock / Tgetlock: the lock table keyed by the fid's object (dev, ino). */
  private lock(get: boolean): void {
    const inode = this.host.inode(this.fids.get(this.r.u32()).nodeid);
    const key = `${inode.dev}:${inode.ino}`;
    if (get) serveGetlock(this.r, this.w, this.locks, key);
    else serveLock(this.r, this.w, this.locks, key);
  }

  /** Tclunk: an xattr create fid sets its attribute first (its error is the answer; the fid goes anyway). */
  private clunk(n: number): void {
    const f = this.fids.get(n);
    const x = f.xattr;
    f.xattr = null;
    try {
      if (x !== null) this.xattr.clunk(f, x);
    } finally {
      this.fids.clunk(n);
    }
  }

  private xattrwalk(): void {
    const f = this.fids.get(this.r.u32());
    const newfid = this.r.u32();
    const name = this.r.str();
    this.fids.checkNew(newfid);
    const state = this.xattr.read(f.nodeid, name);
    this.fids.hold(f.nodeid, false);
    this.fids.add(newfid, f.nodeid, f.parent, f.name, f.uid).xattr = state;
    this.w.u64(state.value.length);
  }

  private xattrcreate(): void {
    const f = this.fids.get(this.r.u32());
    const name = this.r.str();
    const size = this.r.u64(P9Errno.E2BIG);
    const flags = this.r.u32();
    this.mutating();
    if (f.fh >= 0 || f.openDir || f.xattr !== null) p9Fail(P9Errno.EINVAL, 'xattrcreate on an open fid');
    f.xattr = this.xattr.create(f.nodeid, name, size, flags);
  }

  /** Tremove: the fid's object unlinked (or rmdir'ed), and the fid clunked whatever happens. */
  private remove(): void {
    const n = this.r.u32();
    const f = this.fids.get(n);
    try {
      this.mutating();
      if (f.name === null) p9Fail(P9Errno.EBUSY, 'remove of the share itself');
      this.host.removeNamed(f.parent, f.name, f.nodeid);
    } finally {
      if (f.xattr !== null) this.xattr.clunk(f, { ...f.xattr, writing: false });
      this.fids.clunk(n);
    }
  }
}
