/**
 * The FUSE operations beyond the core set of fuse-server.ts: links and special files (READLINK,
 * SYMLINK, MKNOD, LINK, RENAME2), extended attributes, POSIX locks (GETLK, SETLK, SETLKW with
 * INTERRUPT), ACCESS and the space operations (FALLOCATE, LSEEK, COPY_FILE_RANGE, SYNCFS).
 * Every other opcode is ENOSYS (the Linux driver then stops asking). Same rules as the server:
 * every read bounded by the request, every write by the reply space, failures are errnos.
 */
import { Lock } from '../../platform/fs-at.js';
import {
  FuseAccessIn,
  FuseCopyFileRangeIn,
  FuseFallocateIn,
  FuseFileLock,
  FuseGetxattrIn,
  FuseGetxattrOut,
  FUSE_LOCK_WAIT_NOTIFY,
  FUSE_SETXATTR_ACL_KILL_SGID,
  FuseInHeader,
  FuseInterruptIn,
  FuseLinkIn,
  FuseLkIn,
  FuseLkOut,
  FuseLseekIn,
  FuseLseekOut,
  FuseMknodIn,
  FuseOpcode,
  FuseOutHeader,
  FuseRename2In,
  FuseSetxattrIn,
  FuseWriteOut,
} from '../../spec/fs.js';
import { Errno, FuseErrno, errnoOf } from './fs-errno.js';
import type { FuseServer } from './fuse-server.js';
import type { LockRange, PendingLock } from './host-locks.js';

const A = FuseInHeader.SIZE;
/** fuse_file_lock.end for "to the end of the file": OFFSET_MAX = 2^63 - 1 (hi 0x7fffffff, lo 0xffffffff). */
const OFFSET_MAX_HI = 0x7fff_ffff;
/** Largest xattr value (XATTR_SIZE_MAX) and list (XATTR_LIST_MAX). */
const XATTR_SIZE_MAX = 65536;
/** SETLKW waits at once at most (each also holds one of the queue's chains). */
const MAX_LOCK_WAITS = 256;

export class FuseOps {
  /** SETLKW waits by request unique (INTERRUPT finds them). */
  private readonly waits = new Map<string, PendingLock>();

  constructor(private readonly s: FuseServer) {}

  /** Ends every SETLKW wait (reset, DESTROY): each is answered EINTR. */
  cancelAll(): void {
    for (const p of [...this.waits.values()]) p.cancel();
    this.waits.clear();
  }

  dispatch(opcode: number, nodeid: number): number {
    const s = this.s;
    const w = s.w;
    const host = s.host;
    const st = s.st;
    switch (opcode) {
      case FuseOpcode.READLINK: {
        // The target goes straight into the reply (no NUL); longer than the reply space: ENAMETOOLONG.
        const room = Math.min(w.outCap - FuseOutHeader.SIZE, 4096);
        if (room <= 0) throw new FuseErrno(Errno.EINVAL, 'reply buffer too small');
        const n = host.readlink(nodeid, w.out.subarray(FuseOutHeader.SIZE, FuseOutHeader.SIZE + room));
        return w.reply(0, n, false);
      }
      case FuseOpcode.SYMLINK: {
        s.w.need(128);
        const name = w.name(A);
        const target = w.name(name.next);
        return s.entry(host.symlinkEntry(nodeid, name.name, target.name, st).nodeid);
      }
      case FuseOpcode.MKNOD: {
        w.need(128);
        w.args(FuseMknodIn.SIZE);
        const mode = w.u32(A + FuseMknodIn.MODE);
        const umask = w.u32(A + FuseMknodIn.UMASK);
        const perm = (mode & 0o7777) & ~s.umask(umask);
        return s.entry(host.mknodEntry(nodeid, w.name(A + FuseMknodIn.SIZE).name, (mode & 0o170000) | perm, w.u32(A + FuseMknodIn.RDEV), st).nodeid);
      }
      case FuseOpcode.LINK: {
        w.need(128);
        w.args(FuseLinkIn.SIZE);
        return s.entry(host.linkEntry(w.id(A + FuseLinkIn.OLDNODEID), nodeid, w.name(A + FuseLinkIn.SIZE).name, st).nodeid);
      }
      case FuseOpcode.RENAME2: {
        w.args(FuseRename2In.SIZE);
        const from = w.name(A + FuseRename2In.SIZE);
        const to = w.name(from.next);
        host.rename2(nodeid, from.name, w.id(A + FuseRename2In.NEWDIR), to.name, w.u32(A + FuseRename2In.FLAGS));
        return w.reply(0, 0, false);
      }
      case FuseOpcode.SETXATTR: {
        // FUSE_SETXATTR_EXT (offered with POSIX ACLs) makes the arguments 16 bytes, with setxattr_flags.
        const argBytes = s.setxattrExt ? FuseSetxattrIn.EXT_SIZE : FuseSetxattrIn.SIZE;
        w.args(argBytes);
        const size = w.u32(A + FuseSetxattrIn.SIZE_FIELD);
        const killSgid = s.setxattrExt && (w.u32(A + FuseSetxattrIn.SETXATTR_FLAGS) & FUSE_SETXATTR_ACL_KILL_SGID) !== 0;
        const name = w.name(A + argBytes);
        if (size > XATTR_SIZE_MAX) throw new FuseErrno(Errno.E2BIG, 'xattr value too large');
        if (name.next + size !== w.inLen) throw new FuseErrno(Errno.EINVAL, 'SETXATTR size disagrees with the request');
        host.setxattr(nodeid, name.name, w.inb.subarray(name.next, name.next + size), w.u32(A + FuseSetxattrIn.FLAGS), killSgid);
        return w.reply(0, 0, false);
      }
      case FuseOpcode.GETXATTR:
      case FuseOpcode.LISTXATTR:
        return this.getxattr(opcode, nodeid);
      case FuseOpcode.REMOVEXATTR:
        host.removexattr(nodeid, w.name(A).name);
        return w.reply(0, 0, false);
      case FuseOpcode.ACCESS:
        w.args(FuseAccessIn.SIZE);
        host.access(nodeid, w.u32(A + FuseAccessIn.MASK));
        return w.reply(0, 0, false);
      case FuseOpcode.GETLK:
      case FuseOpcode.SETLK:
      case FuseOpcode.SETLKW:
        return this.lock(opcode, nodeid);
      case FuseOpcode.INTERRUPT: {
        // No reply of its own; the interrupted SETLKW is answered EINTR. Unknown uniques: ignored.
        w.args(FuseInterruptIn.SIZE);
        this.waits.get(w.u64Key(A + FuseInterruptIn.UNIQUE))?.cancel();
        return 0;
      }
      case FuseOpcode.FALLOCATE:
        w.args(FuseFallocateIn.SIZE);
        host.fallocate(w.id(A + FuseFallocateIn.FH), w.u32(A + FuseFallocateIn.MODE), w.offset(A + FuseFallocateIn.OFFSET, Errno.EFBIG), w.offset(A + FuseFallocateIn.LENGTH, Errno.EFBIG));
        return w.reply(0, 0, false);
      case FuseOpcode.LSEEK: {
        w.args(FuseLseekIn.SIZE);
        w.need(FuseLseekOut.SIZE);
        const off = host.lseek(w.id(A + FuseLseekIn.FH), w.offset(A + FuseLseekIn.OFFSET, Errno.ENXIO), w.u32(A + FuseLseekIn.WHENCE));
        w.setU64(FuseOutHeader.SIZE + FuseLseekOut.OFFSET, off);
        return w.reply(0, FuseLseekOut.SIZE, false);
      }
      case FuseOpcode.COPY_FILE_RANGE: {
        w.args(FuseCopyFileRangeIn.SIZE);
        w.need(FuseWriteOut.SIZE);
        const len = Math.min(w.count(A + FuseCopyFileRangeIn.LEN), 0x7fff_f000);
        const flags = w.u64(A + FuseCopyFileRangeIn.FLAGS);
        if (flags !== 0) throw new FuseErrno(Errno.EINVAL, 'copy_file_range flags');
        const n = host.copyFileRange(w.id(A + FuseCopyFileRangeIn.FH_IN), w.offset(A + FuseCopyFileRangeIn.OFF_IN), w.id(A + FuseCopyFileRangeIn.FH_OUT), w.offset(A + FuseCopyFileRangeIn.OFF_OUT, Errno.EFBIG), len, 0);
        w.zero(FuseOutHeader.SIZE, FuseWriteOut.SIZE);
        w.setU32(FuseOutHeader.SIZE + FuseWriteOut.SIZE_FIELD, n);
        return w.reply(0, FuseWriteOut.SIZE, false);
      }
      case FuseOpcode.SYNCFS:
        host.syncfs();
        return w.reply(0, 0, false);
      default:
        // BMAP, IOCTL, POLL, NOTIFY_REPLY, SETUPMAPPING/REMOVEMAPPING (no DAX), unknown opcodes.
        return w.reply(Errno.ENOSYS, 0, false);
    }
  }

  /** GETXATTR / LISTXATTR: size 0 asks for the length (fuse_getxattr_out); else the bytes, ERANGE when they do not fit. */
  private getxattr(opcode: number, nodeid: number): number {
    const w = this.s.w;
    const host = this.s.host;
    w.args(FuseGetxattrIn.SIZE);
    const size = w.u32(A + FuseGetxattrIn.SIZE_FIELD);
    let value: Uint8Array;
    if (opcode === FuseOpcode.LISTXATTR) value = host.listxattr(nodeid);
    else {
      const name = w.name(A + FuseGetxattrIn.SIZE).name;
      // The value lands in the reply directly when it fits; the size query needs no buffer.
      const room = Math.max(0, Math.min(size, w.outCap - FuseOutHeader.SIZE, XATTR_SIZE_MAX));
      if (size === 0) {
        const len = host.getxattr(nodeid, name, new Uint8Array(0));
        return this.sizeReply(len);
      }
      const n = host.getxattr(nodeid, name, w.out.subarray(FuseOutHeader.SIZE, FuseOutHeader.SIZE + room));
      return w.reply(0, n, false);
    }
    if (size === 0) return this.sizeReply(value.length);
    if (value.length > size) throw new FuseErrno(Errno.ERANGE, 'xattr list larger than asked');
    w.need(value.length);
    w.out.set(value, FuseOutHeader.SIZE);
    return w.reply(0, value.length, false);
  }

  private sizeReply(len: number): number {
    const w = this.s.w;
    w.need(FuseGetxattrOut.SIZE);
    w.zero(FuseOutHeader.SIZE, FuseGetxattrOut.SIZE);
    w.setU32(FuseOutHeader.SIZE + FuseGetxattrOut.SIZE_FIELD, len);
    return w.reply(0, FuseGetxattrOut.SIZE, false);
  }

  /** GETLK / SETLK / SETLKW on (inode, lock owner); flock-style requests are refused (FLOCK_LOCKS is not offered). */
  private lock(opcode: number, nodeid: number): number {
    const s = this.s;
    const w = s.w;
    const host = s.host;
    w.args(FuseLkIn.SIZE);
    if ((w.u32(A + FuseLkIn.LK_FLAGS) & FuseLkIn.FLAG_FLOCK) !== 0) throw new FuseErrno(Errno.ENOSYS, 'flock locks are not offered');
    const inode = host.inode(nodeid);
    host.handle(w.id(A + FuseLkIn.FH)); // the lock is taken through an open file of the driver's
    const owner = w.u64Key(A + FuseLkIn.OWNER);
    const lk = A + FuseLkIn.LK;
    const start = w.offset(lk + FuseFileLock.START);
    const end = w.u64(lk + FuseFileLock.END);
    // end is inclusive; anything above 2^53 (OFFSET_MAX included) means "to the end of the file".
    const range: LockRange = { type: w.u32(lk + FuseFileLock.TYPE), start, len: end < 0 ? 0 : end < start ? -1 : end - start + 1, pid: w.u32(lk + FuseFileLock.PID) };
    if (range.len < 0) throw new FuseErrno(Errno.EINVAL, 'lock end before start');
    if (opcode === FuseOpcode.GETLK) {
      w.need(FuseLkOut.SIZE);
      const r = host.locks.get(nodeid, inode.fd, owner, range);
      const at = FuseOutHeader.SIZE + FuseLkOut.LK;
      w.zero(at, FuseLkOut.SIZE);
      w.setU64(at + FuseFileLock.START, r.type === Lock.UNLCK ? 0 : r.start);
      if (r.type === Lock.UNLCK || r.len !== 0) w.setU64(at + FuseFileLock.END, r.type === Lock.UNLCK ? 0 : r.start + r.len - 1);
      else w.setU64Parts(at + FuseFileLock.END, OFFSET_MAX_HI, 0xffff_ffff);
      w.setU32(at + FuseFileLock.TYPE, r.type);
      w.setU32(at + FuseFileLock.PID, r.pid);
      return w.reply(0, FuseLkOut.SIZE, false);
    }
    if (opcode === FuseOpcode.SETLK || range.type === Lock.UNLCK) {
      host.locks.set(nodeid, inode.fd, owner, range);
      return w.reply(0, 0, false);
    }
    // SETLKW: taken now if free, else waited for without blocking (the reply comes later).
    try {
      host.locks.set(nodeid, inode.fd, owner, range);
      return w.reply(0, 0, false);
    } catch (e) {
      if (errnoOf(e) !== Errno.EAGAIN) throw e;
    }
    if (this.waits.size >= MAX_LOCK_WAITS) throw new FuseErrno(Errno.ENOLCK, 'too many lock waits');
    const unique = w.u64Key(FuseInHeader.UNIQUE);
    const notifier = s.notifier;
    if (notifier !== null && notifier.active) {
      // 5.11.6.3 with the notification queue: answered now with "wait" (+1), the chain goes back
      // to the driver, and the result comes as FUSE_NOTIFY_LOCK (bounded: MAX_LOCK_WAITS, ENOLCK
      // beyond, as the spec has it). A wait ended by a reset or DESTROY (cancelAll) sends nothing.
      const uniqueBytes = Buffer.from(w.inb.subarray(FuseInHeader.UNIQUE, FuseInHeader.UNIQUE + 8));
      const wait = host.locks.wait(nodeid, inode.fd, owner, range);
      this.waits.set(unique, wait);
      const end = (errno: number): void => {
        if (this.waits.get(unique) !== wait) return;
        this.waits.delete(unique);
        notifier.lock(uniqueBytes, errno);
      };
      wait.done.then(() => end(0), (e: unknown) => end(errnoOf(e)));
      return w.reply(-FUSE_LOCK_WAIT_NOTIFY, 0, false);
    }
    // The reply header, made now (the device's buffers are reused before the wait ends).
    const header = Buffer.alloc(FuseOutHeader.SIZE);
    w.inb.copy(header, FuseOutHeader.UNIQUE, FuseInHeader.UNIQUE, FuseInHeader.UNIQUE + 8);
    const le = w.littleEndian;
    const wait = host.locks.wait(nodeid, inode.fd, owner, range);
    this.waits.set(unique, wait);
    const finish = (errno: number): Buffer => {
      this.waits.delete(unique);
      const v = new DataView(header.buffer, header.byteOffset, header.length);
      v.setUint32(FuseOutHeader.LEN, FuseOutHeader.SIZE, le);
      v.setInt32(FuseOutHeader.ERROR, -errno, le);
      return header;
    };
    return s.defer(wait.done.then(() => finish(0), (e: unknown) => finish(errnoOf(e))));
  }
}
