/**
 * io_uring (native/io-uring.c): a submission queue the caller fills one entry per call and
 * hands to the kernel with one io_uring_enter per batch, and a completion queue read in bulk.
 * The raw system calls, no liburing: nothing to install. Where the kernel refuses io_uring
 * (ENOSYS: not built in; EPERM: kernel.io_uring_disabled or a seccomp filter, as Docker's
 * default profile) `IoUring.open` throws a PlatformError with that errno, and callers fall
 * back to positional I/O.
 */
import { loadNativeAddon } from './native-platform.js';
import { PlatformError, toPlatformError } from './platform-error.js';

/** Read or write (numbers shared with the addon). */
export const UringOp = {
  READ: 0,
  WRITE: 1,
} as const;
export type UringOp = (typeof UringOp)[keyof typeof UringOp];

/** What `prepRw` did (numbers shared with the addon). */
export const UringPrep = {
  /** The submission queue is full: submit, then prepare again. */
  FULL: 0,
  QUEUED: 1,
  /** The buffer's address is not a multiple of the alignment asked for: nothing was queued. */
  MISALIGNED: 2,
} as const;
export type UringPrep = (typeof UringPrep)[keyof typeof UringPrep];

/** fallocate(2) modes used with `prepFallocate`. */
export const FallocMode = {
  KEEP_SIZE: 0x01,
  PUNCH_HOLE: 0x02,
  ZERO_RANGE: 0x10,
} as const;

interface UringAddon {
  uringSetup(entries: number): object;
  uringInfo(h: object): [number, number, number, number?];
  uringPrepRw(h: object, op: number, fd: number, bytes: Uint8Array, offset: number, len: number, fileOffset: number, userData: number, memAlign?: number): number;
  uringPrepFsync(h: object, fd: number, datasync: boolean, userData: number): boolean;
  uringPrepFallocate(h: object, fd: number, mode: number, offset: number, len: number, userData: number): boolean;
  uringSubmit(h: object): number;
  /** Absent from an addon built before it (the caller then submits without waiting). */
  uringSubmitWait?(h: object, waitNs: number): number;
  uringPending(h: object): number;
  uringReap(h: object, out: Int32Array, clearEventfd: boolean): number;
  uringClose(h: object): void;
  errnoName(e: number): string;
  dioAlignment(fd: number): [number, number];
}

let addon: UringAddon | null = null;

function load(): UringAddon {
  if (addon) return addon;
  const a = loadNativeAddon();
  if (typeof a['uringSetup'] !== 'function') throw new PlatformError('ENOSYS', 'the native addon has no io_uring (rebuild it: npm run install)');
  addon = a as unknown as UringAddon;
  return addon;
}

/** One io_uring instance. Not shared between threads. */
export class IoUring {
  /** An eventfd signalled when a completion arrives asynchronously (not inside `submit`). */
  readonly eventFd: number;
  readonly sqEntries: number;
  /** Completion queue size: keep at most this many operations in flight (no overflow). */
  readonly cqEntries: number;
  /**
   * Completions posted inside `submit` / `submitWait` do not signal `eventFd` (the kernel's
   * IORING_CQ_EVENTFD_DISABLED, Linux 5.8): a reap right after a submission need not clear it.
   * False on an older kernel or addon.
   */
  readonly quietSubmit: boolean;
  private closed = false;

  private constructor(
    private readonly a: UringAddon,
    private readonly h: object,
  ) {
    const info = a.uringInfo(h);
    [this.eventFd, this.sqEntries, this.cqEntries] = info;
    this.quietSubmit = info[3] === 1;
  }

  /** A ring of `entries` submission entries (rounded up to a power of two by the kernel). */
  static open(entries: number): IoUring {
    const a = load();
    let h: object;
    try {
      h = a.uringSetup(entries);
    } catch (e) {
      throw toPlatformError('io_uring_setup', e);
    }
    return new IoUring(a, h);
  }

  /** Queues a read into / write from `bytes[offset, offset + len)` at `fileOffset`. */
  prepRw(op: UringOp, fd: number, bytes: Uint8Array, offset: number, len: number, fileOffset: number, userData: number, memAlign = 0): UringPrep {
    return this.a.uringPrepRw(this.h, op, fd, bytes, offset, len, fileOffset, userData, memAlign) as UringPrep;
  }

  /** Queues an fsync (fdatasync with `datasync`); false when the submission queue is full. */
  prepFsync(fd: number, datasync: boolean, userData: number): boolean {
    return this.a.uringPrepFsync(this.h, fd, datasync, userData);
  }

  /** Queues a fallocate(2); false when the submission queue is full. */
  prepFallocate(fd: number, mode: number, offset: number, len: number, userData: number): boolean {
    return this.a.uringPrepFallocate(this.h, fd, mode, offset, len, userData);
  }

  /** Hands every queued entry to the kernel; returns how many it took (0 when it is busy). */
  submit(): number {
    try {
      return this.a.uringSubmit(this.h);
    } catch (e) {
      throw toPlatformError('io_uring_enter', e);
    }
  }

  /**
   * Hands every queued entry to the kernel, then sleeps until a completion is posted or `waitNs`
   * passed (at most 1 s). Returns how many entries the kernel took, or -1 when the kernel cannot
   * wait with a timeout (before Linux 5.11) or the addon predates this call (nothing was
   * submitted, use `submit`).
   */
  submitWait(waitNs: number): number {
    if (this.a.uringSubmitWait === undefined) return -1;
    try {
      return this.a.uringSubmitWait(this.h, waitNs);
    } catch (e) {
      throw toPlatformError('io_uring_enter', e);
    }
  }

  /** Entries queued that the kernel has not taken yet. */
  pending(): number {
    return this.a.uringPending(this.h);
  }

  /**
   * Moves completions into `out` as (userData, res) pairs; returns the number of pairs. `res`
   * is the byte count or -errno. `clearEventfd` when called because the eventfd was readable.
   */
  reap(out: Int32Array, clearEventfd: boolean): number {
    return this.a.uringReap(this.h, out, clearEventfd);
  }

  /** Closes the ring (the kernel cancels what is in flight) and its eventfd. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.a.uringClose(this.h);
  }
}

/** The errno name of a completion's `-res` (`EIO`, `ENOSPC`, ...). */
export function errnoName(errno: number): string {
  return load().errnoName(errno);
}

/**
 * O_DIRECT alignment of an open file (statx STATX_DIOALIGN): of buffer addresses and of file
 * offsets and lengths; 0 when the kernel or filesystem does not say.
 */
export function directIoAlignment(fd: number): { memory: number; offset: number } {
  const [memory, offset] = load().dioAlignment(fd);
  return { memory, offset };
}

/** Whether an io_uring can be set up here, and if not, why (never throws). */
export function ioUringSupport(): { ok: true } | { ok: false; reason: string; errno: string } {
  try {
    IoUring.open(2).close();
    return { ok: true };
  } catch (e) {
    const errno = e instanceof PlatformError ? e.errno : 'EUNKNOWN';
    return { ok: false, errno, reason: (e as Error).message };
  }
}
