/**
 * POSIX record locks for the guest (FUSE GETLK/SETLK/SETLKW, 9p lock/getlock), as virtiofsd
 * does them: one open file description per (inode, lock owner), locked with OFD locks
 * (F_OFD_SETLK). Each guest lock owner then conflicts with every other owner, on the host as
 * in the guest, and never with itself. Closing an owner's description (FLUSH: the owner closed
 * the file; FORGET of the inode; reset) drops its locks, as close(2) does for POSIX locks.
 *
 * SETLKW never blocks the event loop: F_OFD_SETLKW is not used; `waitLock` retries F_OFD_SETLK
 * on a timer (backing off from 1 ms to 50 ms) until it succeeds, fails otherwise, or is
 * cancelled (INTERRUPT, reset).
 * Bounded: at most `maxOwners` descriptions at once (ENOLCK-like ENFILE beyond).
 */
import { At, Lock, LockField, OpenFlag, procFdPath, type FsAt } from '../../platform/fs-at.js';
import { Errno, FuseErrno, check, fail } from './fs-errno.js';

/** A POSIX record lock as FUSE's fuse_file_lock carries it (bytes `start`..`start+len-1` of a file). */
export interface LockRange {
  /** Lock.RDLCK / WRLCK / UNLCK. */
  type: number;
  /** First byte of the range (file offset). */
  start: number;
  /** Bytes, 0 = to the end of the file. */
  len: number;
  /** Process id of the lock's holder as the guest passes it; GETLK answers 0 (OFD locks have no holder pid). */
  pid: number;
}

/** A pending SETLKW: cancel() stops its retries (its promise then rejects with EINTR). */
export interface PendingLock {
  /** Resolves once the lock is taken; rejects with EINTR after `cancel`, or with the host's error. */
  readonly done: Promise<void>;
  /** Stops waiting for the lock (FUSE_INTERRUPT, device reset); does nothing once `done` has settled. */
  cancel(): void;
}

const EAGAIN = 11;

/** The guest's POSIX record locks on a HostFs share, one OFD-locked description per (inode, lock owner); see the file comment. */
export class HostLocks {
  /** nodeid → (owner key → fd). */
  private readonly byInode = new Map<number, Map<string, number>>();
  private count = 0;
  private readonly out = new Float64Array(LockField.COUNT);
  private readonly pending = new Set<PendingLock>();

  constructor(
    private readonly fsAt: FsAt,
    private readonly maxOwners = 1024,
  ) {}

  /** The owner's description of the inode (made on first use, opened read-write through the O_PATH fd). */
  private fdFor(nodeid: number, pathFd: number, owner: string): number {
    let m = this.byInode.get(nodeid);
    const known = m?.get(owner);
    if (known !== undefined) return known;
    if (this.count >= this.maxOwners) fail(Errno.ENFILE, `lock owners table full (${this.maxOwners})`);
    let fd = this.fsAt.openat(At.FDCWD, procFdPath(pathFd), OpenFlag.RDWR | OpenFlag.NONBLOCK);
    if (fd < 0) fd = check(this.fsAt.openat(At.FDCWD, procFdPath(pathFd), OpenFlag.RDONLY | OpenFlag.NONBLOCK), 'open for locking');
    if (m === undefined) this.byInode.set(nodeid, (m = new Map()));
    m.set(owner, fd);
    this.count++;
    return fd;
  }

  private static checkRange(l: LockRange): void {
    if (l.type !== Lock.RDLCK && l.type !== Lock.WRLCK && l.type !== Lock.UNLCK) fail(Errno.EINVAL, `lock type ${l.type}`);
    if (l.start < 0 || l.len < 0 || l.start + l.len > Number.MAX_SAFE_INTEGER) fail(Errno.EINVAL, 'lock range');
  }

  /** GETLK: the first lock that would conflict with `l` (type UNLCK when none). */
  get(nodeid: number, pathFd: number, owner: string, l: LockRange): LockRange {
    HostLocks.checkRange(l);
    const fd = this.fdFor(nodeid, pathFd, owner);
    check(this.fsAt.ofdLock(fd, Lock.F_OFD_GETLK, l.type === Lock.UNLCK ? Lock.RDLCK : l.type, l.start, l.len, this.out), 'F_OFD_GETLK');
    const o = this.out;
    // OFD locks report pid -1: the guest only learns that someone holds it.
    return { type: o[LockField.TYPE]!, start: o[LockField.START]!, len: o[LockField.LEN]!, pid: 0 };
  }

  /** SETLK: takes, changes or drops the owner's lock at once (EAGAIN when another owner holds a conflicting one). */
  set(nodeid: number, pathFd: number, owner: string, l: LockRange): void {
    HostLocks.checkRange(l);
    if (l.type === Lock.UNLCK && this.byInode.get(nodeid)?.get(owner) === undefined) return; // nothing held
    const fd = this.fdFor(nodeid, pathFd, owner);
    check(this.fsAt.ofdLock(fd, Lock.F_OFD_SETLK, l.type, l.start, l.len), 'F_OFD_SETLK');
  }

  /** SETLKW: `set`, retried without blocking until the lock is free. */
  wait(nodeid: number, pathFd: number, owner: string, l: LockRange): PendingLock {
    HostLocks.checkRange(l);
    const fd = this.fdFor(nodeid, pathFd, owner);
    let timer: NodeJS.Timeout | null = null;
    let settle: ((e: unknown) => void) | null = null;
    const pending: PendingLock = {
      done: new Promise<void>((resolve, reject) => {
        let delay = 1;
        const attempt = (): void => {
          timer = null;
          const r = this.fsAt.ofdLock(fd, Lock.F_OFD_SETLK, l.type, l.start, l.len);
          if (r === -EAGAIN) {
            timer = setTimeout(attempt, delay);
            delay = Math.min(50, delay * 2);
            return;
          }
          this.pending.delete(pending);
          if (r < 0) reject(new FuseErrno(-r, 'F_OFD_SETLK'));
          else resolve();
        };
        settle = (e) => {
          if (timer !== null) clearTimeout(timer);
          timer = null;
          this.pending.delete(pending);
          reject(e);
        };
        attempt();
      }),
      cancel: () => settle?.(new FuseErrno(Errno.EINTR, 'lock wait interrupted')),
    };
    this.pending.add(pending);
    return pending;
  }

  /** The owner closed the file (FLUSH): its description and so its locks go. */
  dropOwner(nodeid: number, owner: string): void {
    const m = this.byInode.get(nodeid);
    const fd = m?.get(owner);
    if (m === undefined || fd === undefined) return;
    m.delete(owner);
    if (m.size === 0) this.byInode.delete(nodeid);
    this.fsAt.close(fd);
    this.count--;
  }

  /** The inode left the table: every owner's description of it goes. */
  dropInode(nodeid: number): void {
    const m = this.byInode.get(nodeid);
    if (m === undefined) return;
    for (const fd of m.values()) this.fsAt.close(fd);
    this.count -= m.size;
    this.byInode.delete(nodeid);
  }

  /** Reset: every pending wait cancelled, every description closed. */
  clear(): void {
    for (const p of [...this.pending]) p.cancel();
    for (const nodeid of [...this.byInode.keys()]) this.dropInode(nodeid);
  }

  /** Open descriptions now (one per inode and lock owner), bounded by `maxOwners`. */
  get ownerCount(): number {
    return this.count;
  }
}

