/**
 * POSIX-style byte-range locks for Tlock / Tgetlock, kept by the server per host object
 * (dev, ino) and lock owner (the client's proc_id and client_id). Locks are advisory between
 * the 9P clients of one server (as QEMU's 9p keeps them in its own process); host processes
 * do not see them. A conflicting request answers BLOCKED at once, never waits (Linux's client
 * retries a blocking lock itself), so the event loop is never held. Bounded: at most `max`
 * ranges in all (ENOLCK beyond).
 */
import { P9Errno, P9LockStatus, P9LockType } from '../../spec/9p.js';
import { type P9Reader, type P9Writer, p9Fail } from './p9-codec.js';

interface Range {
  type: number;
  start: number;
  /** Inclusive end; Number.MAX_SAFE_INTEGER: to the end of the file. */
  end: number;
  owner: string;
  procId: number;
  clientId: Buffer;
}

/** A Tlock / Tgetlock request's range and owner (9P2000.L; the owner is `procId` + `clientId`). */
export interface LockQuery {
  /** P9LockType: RDLCK, WRLCK or UNLCK. */
  readonly type: number;
  /** First byte of the range (file offset). */
  readonly start: number;
  /** 0: to the end of the file. */
  readonly length: number;
  /** The client's process id, half of the lock owner. */
  readonly procId: number;
  /** The client's name (Linux: the host name of the guest), the other half of the lock owner. */
  readonly clientId: Buffer;
}

/** Tgetlock's answer: the first lock of another owner that conflicts with the query (type UNLCK when none). */
export interface LockConflict {
  /** P9LockType of the conflicting lock, or UNLCK when the query would succeed. */
  type: number;
  /** First byte of the conflicting range. */
  start: number;
  /** Bytes of the conflicting range, 0 = to the end of the file. */
  length: number;
  /** Process id of the conflicting lock's owner. */
  procId: number;
  /** Client name of the conflicting lock's owner. */
  clientId: Buffer;
}

const END = Number.MAX_SAFE_INTEGER;

function ownerOf(q: LockQuery): string {
  return `${q.procId}:${q.clientId.toString('latin1')}`;
}

function endOf(start: number, length: number): number {
  return length === 0 || start + length - 1 >= END ? END : start + length - 1;
}

/** The byte-range locks of one P9Server (see the file comment), at most `max` ranges. */
export class P9Locks {
  private readonly byObject = new Map<string, Range[]>();
  private count = 0;

  constructor(private readonly max = 4096) {}

  /** Ranges held now (for tests and bounds). */
  get size(): number {
    return this.count;
  }

  /** The first range of another owner that conflicts with `q`, or null. */
  test(key: string, q: LockQuery): LockConflict | null {
    if (q.type === P9LockType.UNLCK) return null;
    const end = endOf(q.start, q.length);
    const owner = ownerOf(q);
    for (const r of this.byObject.get(key) ?? []) {
      if (r.owner === owner || r.end < q.start || r.start > end) continue;
      if (q.type === P9LockType.WRLCK || r.type === P9LockType.WRLCK) {
        return { type: r.type, start: r.start, length: r.end === END ? 0 : r.end - r.start + 1, procId: r.procId, clientId: r.clientId };
      }
    }
    return null;
  }

  /** Tlock: SUCCESS, or BLOCKED when another owner holds a conflicting range. */
  lock(key: string, q: LockQuery): number {
    if (q.type !== P9LockType.RDLCK && q.type !== P9LockType.WRLCK && q.type !== P9LockType.UNLCK) p9Fail(P9Errno.EINVAL, `lock type ${q.type}`);
    if (this.test(key, q) !== null) return P9LockStatus.BLOCKED;
    const end = endOf(q.start, q.length);
    const owner = ownerOf(q);
    const kept: Range[] = [];
    for (const r of this.byObject.get(key) ?? []) {
      if (r.owner !== owner || r.end < q.start || r.start > end) {
        kept.push(r);
        continue;
      }
      // The owner's overlapping range is cut around [start, end] (POSIX: the new lock replaces it there).
      if (r.start < q.start) kept.push({ ...r, end: q.start - 1 });
      if (r.end > end) kept.push({ ...r, start: end + 1 });
    }
    if (q.type !== P9LockType.UNLCK) {
      kept.push({ type: q.type, start: q.start, end, owner, procId: q.procId, clientId: Buffer.from(q.clientId) });
    }
    const before = this.byObject.get(key)?.length ?? 0;
    if (this.count - before + kept.length > this.max) p9Fail(P9Errno.ENOLCK, `lock table full (${this.max})`);
    this.count += kept.length - before;
    if (kept.length === 0) this.byObject.delete(key);
    else this.byObject.set(key, kept);
    return P9LockStatus.SUCCESS;
  }

  /** Every lock dropped (Tversion, device reset). */
  clear(): void {
    this.byObject.clear();
    this.count = 0;
  }
}

/** Tlock after its fid: type[1] flags[4] start[8] length[8] proc_id[4] client_id[s] -> status[1]. */
export function serveLock(r: P9Reader, w: P9Writer, locks: P9Locks, key: string): void {
  const type = r.u8();
  r.u32(); // flags: BLOCK is the client's to retry; RECLAIM has no meaning without a grace period
  const start = r.u64Clamped();
  const length = r.u64Clamped();
  const procId = r.u32();
  const clientId = r.str();
  w.u8(locks.lock(key, { type, start, length, procId, clientId }));
}

/** Tgetlock after its fid: the first conflicting range, or the request back with type UNLCK. */
export function serveGetlock(r: P9Reader, w: P9Writer, locks: P9Locks, key: string): void {
  const type = r.u8();
  const start = r.u64Clamped();
  const length = r.u64Clamped();
  const procId = r.u32();
  const clientId = r.str();
  if (type !== P9LockType.RDLCK && type !== P9LockType.WRLCK) p9Fail(P9Errno.EINVAL, `getlock type ${type}`);
  const c = locks.test(key, { type, start, length, procId, clientId }) ?? { type: P9LockType.UNLCK, start, length, procId, clientId };
  w.u8(c.type);
  w.u64(c.start);
  w.u64(c.length);
  w.u32(c.procId);
  w.str(c.clientId);
}
