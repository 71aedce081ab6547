/**
 * The FUSE request decoder and dispatcher of virtio-fs (5.11.6): one request's bytes in (the
 * device-readable part: fuse_in_header and the operation's arguments), one reply's bytes out
 * (fuse_out_header and the result), over a HostFs. Nothing here throws at the guest: every
 * failure, malformed input included, is a reply with a negated errno.
 *
 * Byte order: FUSE over virtio-fs is in the driver's native order. FUSE_INIT decides it: the
 * opcode reads 26 in one order only (QEMU-NOTES.md: a big-endian s390x guest sends big-endian
 * FUSE, which QEMU 7.2's virtiofsd misreads).
 *
 * Buffers are the device's, reused for every request: the data path (READ, WRITE) allocates
 * nothing; name-based operations allocate their path strings.
 */
import type * as fs from 'node:fs';
import { fdatasyncSync, fstatSync, fsyncSync, readSync, writeSync } from 'node:fs';
import {
  FUSE_COMPAT_22_INIT_OUT_SIZE,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FattrBit,
  FuseAttr,
  FuseAttrNsec,
  FuseAttrOut,
  FuseAttrOutValid,
  FuseBatchForgetIn,
  FuseCreateIn,
  FuseDirent,
  FuseDirentplus,
  FuseEntryOut,
  FuseEntryValid,
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
import { Errno, FuseErrno, errnoOf, type HostFs, type Inode, type SetattrValues } from './host-fs.js';

const U32 = 0x1_0000_0000;
/** The largest u64 taken as a number; above it an offset or id is refused (EINVAL / EFBIG / ENOENT). */
const MAX_SAFE_HI = 0x1f_ffff;
const NAME_BUF = Buffer.alloc(0);

export interface FuseServerOptions {
  /** max_write offered at INIT and the largest READ served (bytes). Default 1 MiB. */
  readonly maxWrite?: number;
  /** entry_valid / attr_valid given to the driver, in seconds. Default 1 (virtiofsd cache=auto). */
  readonly cacheSeconds?: number;
}

export const FUSE_DEFAULT_MAX_WRITE = 1 << 20;
/** Bytes of a request beyond its data: in header, write_in, names (two of NAME_MAX + NUL). */
export const FUSE_REQUEST_OVERHEAD = 4096;

export class FuseServer {
  /** The driver's FUSE byte order, settled by FUSE_INIT. */
  littleEndian = true;
  initialized = false;
  /** Negotiated protocol minor (0 before INIT). */
  minor = 0;
  readonly maxWrite: number;
  private readonly cacheSeconds: number;
  private inb: Buffer = NAME_BUF;
  private inv: DataView = new DataView(new ArrayBuffer(0));
  private inLen = 0;
  private out: Buffer = NAME_BUF;
  private outv: DataView = new DataView(new ArrayBuffer(0));
  private outCap = 0;

  constructor(
    readonly host: HostFs,
    opts: FuseServerOptions = {},
  ) {
    this.maxWrite = opts.maxWrite ?? FUSE_DEFAULT_MAX_WRITE;
    if (!Number.isInteger(this.maxWrite) || this.maxWrite < 4096 || this.maxWrite > 16 << 20) {
      throw new FuseErrno(Errno.EINVAL, `maxWrite ${this.maxWrite} not in 4 KiB..16 MiB`);
    }
    this.cacheSeconds = opts.cacheSeconds ?? 1;
  }

  /** Reset (device reset or DESTROY): a new INIT is needed; the host tables are emptied. */
  reset(): void {
    this.initialized = false;
    this.minor = 0;
    this.littleEndian = true;
    this.host.clear();
  }

  /**
   * Serves one request. `inb[0, min(inLen, inb.length))` holds the request's first bytes and
   * `inLen` its full length; the reply goes to `out[0, outCap)`. Returns the reply length, or 0
   * for no reply (FORGET, BATCH_FORGET, or a writable part too small for even a header).
   */
  handle(inb: Buffer, inLen: number, out: Buffer, outCap: number): number {
    if (this.inb !== inb) {
      this.inb = inb;
      this.inv = new DataView(inb.buffer, inb.byteOffset, inb.length);
    }
    if (this.out !== out) {
      this.out = out;
      this.outv = new DataView(out.buffer, out.byteOffset, out.length);
    }
    this.inLen = inLen;
    this.outCap = Math.min(outCap, out.length);
    if (inLen < FuseInHeader.SIZE) return this.reply(Errno.EINVAL, 0, false);
    const v = this.inv;
    let opcode = v.getUint32(FuseInHeader.OPCODE, this.littleEndian);
    if (!this.initialized && opcode !== FuseOpcode.INIT && v.getUint32(FuseInHeader.OPCODE, !this.littleEndian) === FuseOpcode.INIT) {
      // The driver speaks the other byte order (decided for good by this INIT).
      this.littleEndian = !this.littleEndian;
      opcode = FuseOpcode.INIT;
    }
    const noReply = opcode === FuseOpcode.FORGET || opcode === FuseOpcode.BATCH_FORGET;
    // The header's length must be the request's: a shorter or longer chain is malformed.
    if (this.u32(FuseInHeader.LEN) !== inLen || inLen > inb.length) return this.reply(Errno.EINVAL, 0, noReply);
    if (!this.initialized && opcode !== FuseOpcode.INIT) return this.reply(Errno.EIO, 0, noReply);
    try {
      return this.dispatch(opcode, this.id(FuseInHeader.NODEID));
    } catch (e) {
      return this.reply(errnoOf(e), 0, noReply);
    }
  }

  private dispatch(opcode: number, nodeid: number): number {
    const A = FuseInHeader.SIZE; // arguments start here
    const host = this.host;
    switch (opcode) {
      case FuseOpcode.INIT:
        return this.init();
      case FuseOpcode.DESTROY:
        this.reset();
        return this.reply(0, 0, false);
      case FuseOpcode.LOOKUP: {
        this.need(FuseEntryOut.SIZE);
        const { inode, stat } = host.lookup(nodeid, this.name(A).name);
        return this.entry(inode, stat);
      }
      case FuseOpcode.FORGET:
        this.args(FuseForgetIn.SIZE);
        host.forget(nodeid, this.count(A + FuseForgetIn.NLOOKUP));
        return 0;
      case FuseOpcode.BATCH_FORGET: {
        this.args(FuseBatchForgetIn.SIZE);
        const n = this.u32(A + FuseBatchForgetIn.COUNT);
        // The count must match the request's length (a larger one would read past it).
        if (A + FuseBatchForgetIn.SIZE + n * FuseBatchForgetIn.ONE_SIZE > this.inLen) return 0;
        for (let i = 0, p = A + FuseBatchForgetIn.SIZE; i < n; i++, p += FuseBatchForgetIn.ONE_SIZE) {
          host.forget(this.id(p), this.count(p + 8));
        }
        return 0;
      }
      case FuseOpcode.GETATTR: {
        this.need(FuseAttrOut.SIZE);
        this.args(FuseGetattrInField.FH + 8);
        const viaFh = (this.u32(A + FuseGetattrInField.FLAGS) & FuseGetattrInField.FLAG_FH) !== 0;
        const h = viaFh ? host.handle(this.id(A + FuseGetattrInField.FH)) : null;
        const st = h !== null && h.fd >= 0 ? fstatSync(h.fd) : host.stat(nodeid);
        return this.attrOut(st);
      }
      case FuseOpcode.SETATTR:
        this.need(FuseAttrOut.SIZE);
        this.args(FuseSetattrIn.SIZE);
        return this.attrOut(this.setattr(nodeid));
      case FuseOpcode.OPEN:
      case FuseOpcode.OPENDIR: {
        this.need(FuseOpenOut.SIZE);
        this.args(FuseOpenIn.SIZE);
        const fh = opcode === FuseOpcode.OPEN ? host.open(nodeid, this.u32(A + FuseOpenIn.FLAGS)) : host.opendir(nodeid);
        this.openOut(FuseOutHeader.SIZE, fh);
        return this.reply(0, FuseOpenOut.SIZE, false);
      }
      case FuseOpcode.CREATE: {
        this.need(FuseEntryOut.SIZE + FuseOpenOut.SIZE);
        this.args(FuseCreateIn.SIZE);
        const flags = this.u32(A + FuseCreateIn.FLAGS);
        const mode = this.u32(A + FuseCreateIn.MODE) & ~this.u32(A + FuseCreateIn.UMASK);
        const { inode, stat, fh } = host.create(nodeid, this.name(A + FuseCreateIn.SIZE).name, flags, mode);
        this.entryOut(FuseOutHeader.SIZE, inode, stat);
        this.openOut(FuseOutHeader.SIZE + FuseEntryOut.SIZE, fh);
        return this.reply(0, FuseEntryOut.SIZE + FuseOpenOut.SIZE, false);
      }
      case FuseOpcode.MKDIR: {
        this.need(FuseEntryOut.SIZE);
        this.args(FuseMkdirIn.SIZE);
        const mode = this.u32(A + FuseMkdirIn.MODE) & ~this.u32(A + FuseMkdirIn.UMASK);
        const { inode, stat } = host.mkdir(nodeid, this.name(A + FuseMkdirIn.SIZE).name, mode);
        return this.entry(inode, stat);
      }
      case FuseOpcode.UNLINK:
        host.unlink(nodeid, this.name(A).name);
        return this.reply(0, 0, false);
      case FuseOpcode.RMDIR:
        host.rmdir(nodeid, this.name(A).name);
        return this.reply(0, 0, false);
      case FuseOpcode.RENAME: {
        this.args(FuseRenameIn.SIZE);
        const newdir = this.id(A + FuseRenameIn.NEWDIR);
        const from = this.name(A + FuseRenameIn.SIZE);
        const to = this.name(from.next);
        host.rename(nodeid, from.name, newdir, to.name);
        return this.reply(0, 0, false);
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
        this.args(FuseReleaseIn.SIZE);
        host.release(this.id(A + FuseReleaseIn.FH));
        return this.reply(0, 0, false);
      case FuseOpcode.FLUSH:
        // Data goes to the host file at WRITE (no buffering here): nothing to flush but the handle check.
        this.args(8);
        host.handle(this.id(A));
        return this.reply(0, 0, false);
      case FuseOpcode.FSYNC: {
        this.args(FuseFsyncIn.SIZE);
        const h = host.handle(this.id(A + FuseFsyncIn.FH));
        if (h.fd >= 0) {
          if (this.u32(A + FuseFsyncIn.FLAGS) & FuseFsyncIn.DATASYNC) fdatasyncSync(h.fd);
          else fsyncSync(h.fd);
        }
        return this.reply(0, 0, false);
      }
      case FuseOpcode.STATFS:
        this.need(FuseStatfsOut.SIZE);
        return this.statfs(host.statfs(nodeid));
      default:
        return this.reply(Errno.ENOSYS, 0, false);
    }
  }

  // --- decoding ---------------------------------------------------------------------------

  private u32(at: number): number {
    return this.inv.getUint32(at, this.littleEndian);
  }

  /** A u64 as a number, or -1 above 2^53 - 1. */
  private u64(at: number): number {
    const le = this.littleEndian;
    const lo = this.inv.getUint32(le ? at : at + 4, le);
    const hi = this.inv.getUint32(le ? at + 4 : at, le);
    return hi > MAX_SAFE_HI ? -1 : hi * U32 + lo;
  }

  /** A nodeid or fh: ids above 2^53 are never handed out, so they are unknown (ENOENT / EBADF). */
  private id(at: number): number {
    const n = this.u64(at);
    return n < 0 ? 0 : n;
  }

  /** A lookup count: a huge one forgets everything (clamped by HostFs.forget). */
  private count(at: number): number {
    const n = this.u64(at);
    return n < 0 ? Number.MAX_SAFE_INTEGER : n;
  }

  /** The request carries at least `size` argument bytes. */
  private args(size: number): void {
    if (FuseInHeader.SIZE + size > this.inLen) throw new FuseErrno(Errno.EINVAL, 'arguments shorter than the operation needs');
  }

  /** The driver's writable part holds a reply of `size` argument bytes (checked before acting). */
  private need(size: number): void {
    if (FuseOutHeader.SIZE + size > this.outCap) throw new FuseErrno(Errno.EINVAL, 'reply buffer too small');
  }

  /** A NUL-terminated name starting at `at`, inside the request; the offset after its NUL. */
  private name(at: number): { name: Buffer; next: number } {
    if (at >= this.inLen) throw new FuseErrno(Errno.EINVAL, 'name missing');
    const end = this.inb.indexOf(0, at);
    if (end < 0 || end >= this.inLen) throw new FuseErrno(Errno.EINVAL, 'name without its terminator');
    return { name: this.inb.subarray(at, end), next: end + 1 };
  }

  // --- encoding ---------------------------------------------------------------------------

  private setU32(at: number, v: number): void {
    this.outv.setUint32(at, v >>> 0, this.littleEndian);
  }

  private setU64(at: number, v: number): void {
    const lo = v % U32 >>> 0;
    const hi = Math.floor(v / U32) >>> 0;
    const le = this.littleEndian;
    this.outv.setUint32(le ? at : at + 4, lo, le);
    this.outv.setUint32(le ? at + 4 : at, hi, le);
  }

  /**
   * Writes the out header for `argBytes` of result (error: negated errno, no result). The
   * unique id is copied byte for byte, so it needs no decoding in either order.
   */
  private reply(errno: number, argBytes: number, noReply: boolean): number {
    if (noReply || this.outCap < FuseOutHeader.SIZE) return 0;
    const len = FuseOutHeader.SIZE + (errno === 0 ? argBytes : 0);
    this.setU32(FuseOutHeader.LEN, len);
    this.outv.setInt32(FuseOutHeader.ERROR, -errno, this.littleEndian);
    if (this.inLen >= FuseInHeader.UNIQUE + 8 && this.inb.length >= FuseInHeader.UNIQUE + 8) {
      this.inb.copy(this.out, FuseOutHeader.UNIQUE, FuseInHeader.UNIQUE, FuseInHeader.UNIQUE + 8);
    } else this.out.fill(0, FuseOutHeader.UNIQUE, FuseOutHeader.UNIQUE + 8);
    return len;
  }

  private attr(at: number, st: fs.Stats): void {
    this.out.fill(0, at, at + FuseAttr.BYTES);
    this.setU64(at + FuseAttr.INO, st.ino);
    this.setU64(at + FuseAttr.SIZE, st.size);
    this.setU64(at + FuseAttr.BLOCKS, st.blocks);
    this.time(at + FuseAttr.ATIME, at + FuseAttrNsec.ATIME, st.atimeMs);
    this.time(at + FuseAttr.MTIME, at + FuseAttrNsec.MTIME, st.mtimeMs);
    this.time(at + FuseAttr.CTIME, at + FuseAttrNsec.CTIME, st.ctimeMs);
    this.setU32(at + FuseAttr.MODE, st.mode);
    this.setU32(at + FuseAttr.NLINK, st.nlink);
    this.setU32(at + FuseAttr.UID, st.uid);
    this.setU32(at + FuseAttr.GID, st.gid);
    this.setU32(at + FuseAttr.RDEV, st.rdev);
    this.setU32(at + FuseAttrNsec.BLKSIZE, st.blksize);
  }

  private time(secAt: number, nsecAt: number, ms: number): void {
    const sec = Math.floor(ms / 1000);
    const nsec = Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6));
    if (sec < 0) {
      // Before 1970: the u64 carries the two's complement of the signed seconds.
      this.outv.setInt32(this.littleEndian ? secAt + 4 : secAt, -1, this.littleEndian);
      this.setU32(this.littleEndian ? secAt : secAt + 4, sec >>> 0);
    } else this.setU64(secAt, sec);
    this.setU32(nsecAt, nsec);
  }

  private entryOut(at: number, inode: Inode, st: fs.Stats): void {
    this.out.fill(0, at, at + FuseEntryOut.ATTR);
    this.setU64(at + FuseEntryOut.NODEID, inode.nodeid);
    this.setU64(at + FuseEntryValid.ENTRY_VALID, this.cacheSeconds);
    this.setU64(at + FuseEntryValid.ATTR_VALID, this.cacheSeconds);
    this.attr(at + FuseEntryOut.ATTR, st);
  }

  private entry(inode: Inode, st: fs.Stats): number {
    this.entryOut(FuseOutHeader.SIZE, inode, st);
    return this.reply(0, FuseEntryOut.SIZE, false);
  }

  private attrOut(st: fs.Stats): number {
    const at = FuseOutHeader.SIZE;
    this.out.fill(0, at, at + FuseAttrOut.ATTR);
    this.setU64(at + FuseAttrOutValid.ATTR_VALID, this.cacheSeconds);
    this.attr(at + FuseAttrOut.ATTR, st);
    return this.reply(0, FuseAttrOut.SIZE, false);
  }

  private openOut(at: number, fh: number): void {
    this.out.fill(0, at, at + FuseOpenOut.SIZE);
    this.setU64(at + FuseOpenOut.FH, fh);
  }

  // --- operations -------------------------------------------------------------------------

  private init(): number {
    this.args(FuseInitIn.SIZE - 4); // minor < 6 drivers sent no flags; we need major, minor
    const A = FuseInHeader.SIZE;
    const major = this.u32(A + FuseInitIn.MAJOR);
    const minor = this.u32(A + FuseInitIn.MINOR);
    if (major !== FUSE_KERNEL_VERSION) return this.reply(Errno.EPROTO, 0, false);
    const theirFlags = this.inLen >= A + FuseInitIn.SIZE ? this.u32(A + FuseInitIn.FLAGS) : 0;
    this.minor = Math.min(minor, FUSE_KERNEL_MINOR_VERSION);
    const size = this.minor < 23 ? FUSE_COMPAT_22_INIT_OUT_SIZE : FuseInitOut.SIZE;
    this.need(size);
    let flags = FuseInitFlag.ASYNC_READ | FuseInitFlag.BIG_WRITES | FuseInitFlag.PARALLEL_DIROPS;
    if (this.minor >= 28) flags |= FuseInitFlag.MAX_PAGES;
    const at = FuseOutHeader.SIZE;
    this.out.fill(0, at, at + size);
    this.setU32(at + FuseInitOut.MAJOR, FUSE_KERNEL_VERSION);
    this.setU32(at + FuseInitOut.MINOR, this.minor);
    this.setU32(at + FuseInitOut.MAX_READAHEAD, this.u32(A + FuseInitIn.MAX_READAHEAD));
    this.setU32(at + FuseInitOut.FLAGS, flags & theirFlags);
    this.outv.setUint16(at + FuseInitOut.MAX_BACKGROUND, 64, this.littleEndian);
    this.outv.setUint16(at + FuseInitOut.CONGESTION_THRESHOLD, 48, this.littleEndian);
    this.setU32(at + FuseInitOut.MAX_WRITE, this.maxWrite);
    if (size > FUSE_COMPAT_22_INIT_OUT_SIZE) {
      this.setU32(at + FuseInitOut.TIME_GRAN, 1);
      this.outv.setUint16(at + FuseInitOut.MAX_PAGES, Math.floor(this.maxWrite / 4096), this.littleEndian);
    }
    this.initialized = true;
    return this.reply(0, size, false);
  }

  private setattr(nodeid: number): fs.Stats {
    const A = FuseInHeader.SIZE;
    const valid = this.u32(A + FuseSetattrIn.VALID);
    const values: SetattrValues = { mode: null, uid: null, gid: null, size: null, atime: null, mtime: null };
    if (valid & FattrBit.MODE) values.mode = this.u32(A + FuseSetattrIn.MODE);
    if (valid & FattrBit.UID) values.uid = this.u32(A + FuseSetattrIn.UID);
    if (valid & FattrBit.GID) values.gid = this.u32(A + FuseSetattrIn.GID);
    if (valid & FattrBit.SIZE) {
      const size = this.u64(A + FuseSetattrIn.SIZE_FIELD);
      if (size < 0) throw new FuseErrno(Errno.EFBIG, 'size above 2^53');
      values.size = size;
    }
    const now = Date.now() / 1000;
    if (valid & FattrBit.ATIME_NOW) values.atime = now;
    else if (valid & FattrBit.ATIME) values.atime = this.seconds(A + FuseSetattrIn.ATIME, A + FuseSetattrIn.ATIMENSEC);
    if (valid & FattrBit.MTIME_NOW) values.mtime = now;
    else if (valid & FattrBit.MTIME) values.mtime = this.seconds(A + FuseSetattrIn.MTIME, A + FuseSetattrIn.MTIMENSEC);
    const fh = valid & FattrBit.FH ? this.id(A + FuseSetattrIn.FH) : null;
    return this.host.setattr(nodeid, fh, values);
  }

  private seconds(secAt: number, nsecAt: number): number {
    const s = this.u64(secAt);
    if (s < 0) throw new FuseErrno(Errno.EINVAL, 'time out of range');
    return s + Math.min(this.u32(nsecAt), 999_999_999) / 1e9;
  }

  private read(): number {
    this.args(FuseReadIn.SIZE);
    const A = FuseInHeader.SIZE;
    const h = this.host.handle(this.id(A + FuseReadIn.FH));
    if (h.fd < 0) throw new FuseErrno(Errno.EISDIR, 'READ of a directory handle');
    const offset = this.u64(A + FuseReadIn.OFFSET);
    if (offset < 0) throw new FuseErrno(Errno.EINVAL, 'offset above 2^53');
    // Bounded three ways: what was asked, max_write (= the largest read), the driver's buffer.
    const want = Math.min(this.u32(A + FuseReadIn.SIZE_FIELD), this.maxWrite, this.outCap - FuseOutHeader.SIZE);
    let got = 0;
    while (got < want) {
      const n = readSync(h.fd, this.out, FuseOutHeader.SIZE + got, want - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return this.reply(0, got, false);
  }

  private write(): number {
    this.args(FuseWriteIn.SIZE);
    this.need(FuseWriteOut.SIZE);
    const A = FuseInHeader.SIZE;
    const h = this.host.handle(this.id(A + FuseWriteIn.FH));
    if (h.fd < 0) throw new FuseErrno(Errno.EISDIR, 'WRITE of a directory handle');
    const offset = this.u64(A + FuseWriteIn.OFFSET);
    if (offset < 0) throw new FuseErrno(Errno.EFBIG, 'offset above 2^53');
    const size = this.u32(A + FuseWriteIn.SIZE_FIELD);
    const data = A + FuseWriteIn.SIZE;
    if (size > this.maxWrite || data + size !== this.inLen) throw new FuseErrno(Errno.EINVAL, 'WRITE size disagrees with the request');
    let done = 0;
    while (done < size) done += writeSync(h.fd, this.inb, data + done, size - done, offset + done);
    this.out.fill(0, FuseOutHeader.SIZE, FuseOutHeader.SIZE + FuseWriteOut.SIZE);
    this.setU32(FuseOutHeader.SIZE + FuseWriteOut.SIZE_FIELD, done);
    return this.reply(0, FuseWriteOut.SIZE, false);
  }

  /** READDIR(PLUS): entries of the handle's snapshot from `offset` (an index), as many as fit. */
  private readdir(nodeid: number, plus: boolean): number {
    this.args(FuseReadIn.SIZE);
    const A = FuseInHeader.SIZE;
    const h = this.host.handle(this.id(A + FuseReadIn.FH));
    if (h.entries === null) throw new FuseErrno(Errno.ENOTDIR, 'READDIR of a file handle');
    const start = this.u64(A + FuseReadIn.OFFSET);
    const limit = Math.min(this.u32(A + FuseReadIn.SIZE_FIELD), this.outCap - FuseOutHeader.SIZE);
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
        this.out.fill(0, at, at + FuseDirentplus.DIRENT);
        if (!dots) {
          // A lookup per entry (the driver will FORGET it); an entry gone since OPENDIR is skipped.
          let found: { inode: Inode; stat: fs.Stats };
          try {
            found = this.host.lookup(nodeid, e.name);
          } catch {
            continue;
          }
          this.entryOut(at, found.inode, found.stat);
          ino = found.stat.ino;
        }
        at += FuseDirentplus.DIRENT;
      }
      this.out.fill(0, at, at + direntSize);
      this.setU64(at + FuseDirent.INO, ino);
      this.setU64(at + FuseDirent.OFF, i + 1);
      this.setU32(at + FuseDirent.NAMELEN, e.name.length);
      this.setU32(at + FuseDirent.TYPE, e.type);
      e.name.copy(this.out, at + FuseDirent.NAME);
      used += size;
    }
    return this.reply(0, used, false);
  }

  private statfs(s: fs.StatsFs): number {
    const at = FuseOutHeader.SIZE;
    this.out.fill(0, at, at + FuseStatfsOut.SIZE);
    this.setU64(at + FuseStatfsOut.BLOCKS, s.blocks);
    this.setU64(at + FuseStatfsOut.BFREE, s.bfree);
    this.setU64(at + FuseStatfsOut.BAVAIL, s.bavail);
    this.setU64(at + FuseStatfsOut.FILES, s.files);
    this.setU64(at + FuseStatfsOut.FFREE, s.ffree);
    this.setU32(at + FuseStatfsOut.BSIZE, s.bsize);
    this.setU32(at + FuseStatfsOut.NAMELEN, 255);
    this.setU32(at + FuseStatfsOut.FRSIZE, s.bsize);
    return this.reply(0, FuseStatfsOut.SIZE, false);
  }
}
