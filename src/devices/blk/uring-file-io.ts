/**
 * Positional file I/O through one io_uring, for the blk file backend (uring-backend.ts).
 *
 * - Batching: an operation is queued as a submission entry and the batch goes to the kernel
 *   in one io_uring_enter from a microtask, i.e. once the device's pass over a kick (which
 *   pops every available request synchronously) has returned. So the requests of one kick
 *   cost one system call, two with the eager first operation; the device's round end (roundEnd)
 *   submits the batch at once, so rounds inside one macrotask (busy polling) each go out:
 * - Eager first operation: the first read or write of a round (of a kick's pass) is
 *   submitted at once; when the kernel completes it inside io_uring_enter (a page-cache hit)
 *   `rw` returns undefined: done synchronously, no promise and no microtask, and the device
 *   completes the request inside its pass (what a queue depth of 1 waits on).
 * - Completion wait (`waitUs` > 0, `--wait-us`): when the eager operation is the only one in
 *   flight and no other request waits in the device's rings (`waitGate`), its io_uring_enter
 *   also sleeps until it completes, up to `waitUs`: an O_DIRECT transfer, or a buffered write
 *   that ext4 hands to an io-wq worker (ext4 has no non-blocking buffered write), then
 *   completes inside the device's pass, without the eventfd waking Node's loop, and the
 *   back-end's busy-poll window can pick up the driver's next request without a kick. A wait
 *   that ends without the completion (O_DIRECT on a slow disk) counts as a miss; after
 *   WAIT_MISS_LIMIT misses in a row waits are skipped for a while (doubling while probes miss).
 * - Completions: what the kernel completes inside io_uring_enter (reads from the page cache)
 *   is reaped right after it, without signalling the eventfd where the kernel can hold it back
 *   (IoUring.quietSubmit; otherwise the reap clears the eventfd, one more system call), so it
 *   does not wake the loop; the rest signals the ring's eventfd, which is watched on Node's loop.
 * - State per operation lives in slots (typed arrays indexed by the entry's user_data): no
 *   object per operation besides its promise. Slots = submission entries, and the completion
 *   queue is twice that, so neither queue can overflow; operations beyond the slots wait in a
 *   FIFO (bounded by the device's requests in flight).
 * - A short transfer is resumed from where it stopped; a transfer that makes no progress
 *   (end of file, a full disk reporting 0) fails, so a request is never acknowledged for
 *   bytes that were not moved. Errors carry the errno name (UringIoError.errno).
 * - With a direct-I/O memory alignment (O_DIRECT), a buffer the kernel would refuse is
 *   bounced through an aligned chunk (DirectBouncePool).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { IoUring, UringOp, UringPrep, errnoName } from '../../platform/io-uring.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import type { FdWatcher } from '../../platform/types.js';
import { DirectBouncePool } from './direct-bounce-pool.js';

/** A failed operation: VirtioError BACKEND_IO with the errno name (`EIO`, `ENOSPC`, `ESHORT`). */
export class UringIoError extends VirtioError {
  constructor(
    readonly errno: string,
    message: string,
  ) {
    super(ErrorCode.BACKEND_IO, `${message}: ${errno}`);
  }
}

const Kind = { READ: 0, WRITE: 1, FSYNC: 2, FALLOCATE: 3 } as const;
const KIND_NAMES = ['read', 'write', 'fdatasync', 'fallocate'] as const;

/** Waits that missed in a row before waiting is skipped. */
const WAIT_MISS_LIMIT = 2;
/** Eager operations without a wait after misses: starts at this, doubles up to WAIT_SKIP_MAX. */
const WAIT_SKIP_MIN = 16;
const WAIT_SKIP_MAX = 4096;
/** Longest completion wait accepted (the back-end's MAX_POLL_US). */
export const MAX_URING_WAIT_US = 1000;

/** Default submission entries (and slots). */
export const DEFAULT_URING_ENTRIES = 256;
/** How long `close` waits for operations in flight before closing the ring anyway. */
const CLOSE_WAIT_MS = 10_000;

const RESOLVED: Promise<void> = Promise.resolve();

export class UringFileIo {
  private readonly ring: IoUring;
  private readonly watcher: FdWatcher;
  private readonly slots: number;
  private readonly kindOf: Uint8Array;
  private readonly fdOf: Int32Array;
  private readonly alignOf: Int32Array;
  private readonly offOf: Float64Array;
  private readonly lenOf: Float64Array;
  private readonly doneOf: Float64Array;
  private readonly posOf: Float64Array;
  private readonly bufOf: (Uint8Array | null)[];
  private readonly resolveOf: ((() => void) | null)[];
  private readonly rejectOf: (((e: unknown) => void) | null)[];
  private readonly freeSlots: Int32Array;
  private freeTop: number;
  /** Operations waiting for a slot (only when more than `slots` are in flight). */
  private readonly waiting: (() => void)[] = [];
  private readonly out: Int32Array;
  private submitScheduled = false;
  private closed = false;
  /** close() began: new operations are refused. */
  private closing = false;
  private bounce: DirectBouncePool | null = null;
  private onIdle: (() => void) | null = null;
  private readonly flushFn = (): void => {
    // Already submitted at the end of the device's round (roundEnd).
    if (!this.submitScheduled) return;
    this.submitScheduled = false;
    this.submitNow(0);
  };
  /** The eager operation of this macrotask was made (reset by a microtask). */
  private eagerUsed = false;
  /** A reap is reading `out`: freed slots wait for its end before waiting operations start. */
  private reaping = false;
  private readonly eagerResetFn = (): void => {
    this.eagerUsed = false;
  };
  /** The slot of the eager operation while its io_uring_enter runs, else -1. */
  private eagerSlot = -1;
  private eagerDone = false;
  private eagerError: UringIoError | null = null;
  /** Operations submitted through this ring (for tests and statistics). */
  submitted = 0;
  /** io_uring_enter calls made (batches). */
  batches = 0;
  /** Completions reaped right after their submission (finished inside io_uring_enter or just after). */
  completedInline = 0;
  /** Completions reaped because the eventfd woke the loop. */
  completedLater = 0;
  /** Writes queued or in the kernel now (`--aio auto` routes buffered writes by it). */
  writesInFlight = 0;
  /** Completion waits made (`waitUs`). */
  waits = 0;
  /** Completion waits the eager operation completed in. */
  waitHits = 0;
  /**
   * Set by the device (BlkBackend.gateWaits): whether other requests wait in its rings; a
   * completion wait is made only when none do. Null: no such check.
   */
  waitGate: (() => boolean) | null = null;
  /** Completion wait in ns (0: never wait). */
  private waitNs: number;
  private waitMisses = 0;
  private waitSkip = 0;
  private waitSkipLen = WAIT_SKIP_MIN;

  /**
   * `waitUs`: how long a lone eager operation's io_uring_enter sleeps for its completion (0..
   * MAX_URING_WAIT_US; 0: never).
   */
  constructor(entries: number = DEFAULT_URING_ENTRIES, waitUs = 0) {
    if (!(Number.isInteger(waitUs) && waitUs >= 0 && waitUs <= MAX_URING_WAIT_US)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `io_uring completion wait ${waitUs} µs not in 0..${MAX_URING_WAIT_US}`);
    }
    this.waitNs = waitUs * 1000;
    this.ring = IoUring.open(entries);
    const n = this.ring.sqEntries;
    this.slots = n;
    this.kindOf = new Uint8Array(n);
    this.fdOf = new Int32Array(n);
    this.alignOf = new Int32Array(n);
    this.offOf = new Float64Array(n);
    this.lenOf = new Float64Array(n);
    this.doneOf = new Float64Array(n);
    this.posOf = new Float64Array(n);
    this.bufOf = new Array<Uint8Array | null>(n).fill(null);
    this.resolveOf = new Array<(() => void) | null>(n).fill(null);
    this.rejectOf = new Array<((e: unknown) => void) | null>(n).fill(null);
    this.freeSlots = new Int32Array(n);
    for (let i = 0; i < n; i++) this.freeSlots[i] = n - 1 - i;
    this.freeTop = n;
    this.out = new Int32Array(2 * Math.min(this.ring.cqEntries, 1024));
    try {
      this.watcher = loadNativePlatform().watchReadable(this.ring.eventFd, () => this.reapAll(true));
    } catch (e) {
      this.ring.close();
      throw e;
    }
  }

  /** Operations in flight (queued or in the kernel). */
  get inFlight(): number {
    return this.slots - this.freeTop + this.waiting.length;
  }

  /**
   * Reads `len` bytes at `pos` into `buf[off, off + len)` (op READ) or writes them from there
   * (WRITE). `memAlign` > 1: the fd is O_DIRECT and buffers must sit at multiples of it.
   */
  rw(op: UringOp, fd: number, buf: Uint8Array, off: number, len: number, pos: number, memAlign = 0): Promise<void> | undefined {
    if (this.closing) return Promise.reject(new UringIoError('EBADF', 'io_uring closed'));
    if (len === 0) return RESOLVED;
    if (this.freeTop === 0) return this.later(() => this.rw(op, fd, buf, off, len, pos, memAlign));
    const slot = this.freeSlots[--this.freeTop]!;
    this.kindOf[slot] = op;
    this.fdOf[slot] = fd;
    this.alignOf[slot] = memAlign;
    this.bufOf[slot] = buf;
    this.offOf[slot] = off;
    this.lenOf[slot] = len;
    this.doneOf[slot] = 0;
    this.posOf[slot] = pos;
    const r = this.ring.prepRw(op, fd, buf, off, len, pos, slot, memAlign);
    if (r !== UringPrep.QUEUED) {
      this.bufOf[slot] = null;
      this.freeSlot(slot);
      if (r === UringPrep.MISALIGNED) return this.bounced(op, fd, buf, off, len, pos, memAlign);
      return Promise.reject(new UringIoError('EBUSY', 'io_uring submission queue full'));
    }
    if (op === UringOp.WRITE) this.writesInFlight++;
    if (!this.eagerUsed) return this.eager(slot);
    this.scheduleSubmit();
    return this.promiseFor(slot);
  }

  /**
   * Submits what is queued now (the eager operation, and anything queued before it) and
   * reaps: undefined when `slot` completed inside, a thrown UringIoError when it failed there,
   * else its promise.
   */
  private eager(slot: number): Promise<void> | undefined {
    this.eagerUsed = true;
    queueMicrotask(this.eagerResetFn);
    this.eagerSlot = slot;
    this.eagerDone = false;
    this.eagerError = null;
    // Only when nothing else is in flight: a wait must not hold back other requests of the pass
    // (they are popped after this one) or the completions of earlier ones.
    // Nor while the device has other requests posted and not yet popped (waitGate): a driver
    // that refilled several at once gets them all started first.
    const wait = this.waitNs > 0 && this.freeTop === this.slots - 1 && this.waiting.length === 0 && !this.reaping && (this.waitGate === null || !this.waitGate());
    if (wait && this.waitSkip > 0) {
      this.waitSkip--;
      this.submitNow(0);
    } else {
      this.submitNow(wait ? this.waitNs : 0);
      if (wait) this.waitDone(this.eagerDone);
    }
    this.eagerSlot = -1;
    if (this.eagerDone) {
      const err = this.eagerError;
      this.eagerError = null;
      if (err !== null) throw err;
      return undefined;
    }
    return this.promiseFor(slot);
  }

  /**
   * The device's round over its queue ended (the queue server's roundEnd): what the round
   * queued goes to the kernel now rather than from a microtask, and the next round's first
   * operation is eager again. Without this, rounds that follow each other inside one macrotask
   * (a busy-polling episode of the vhost-user back-end, which never yields to microtasks) would
   * leave their operations queued until the episode ends.
   */
  roundEnd(): void {
    this.eagerUsed = false;
    if (!this.submitScheduled || this.closed) return;
    this.submitScheduled = false;
    this.submitNow(0);
  }

  /** Counts a completion wait; after WAIT_MISS_LIMIT misses in a row, skips waits for a while. */
  private waitDone(hit: boolean): void {
    this.waits++;
    if (hit) {
      this.waitHits++;
      this.waitMisses = 0;
      this.waitSkipLen = WAIT_SKIP_MIN;
    } else if (++this.waitMisses >= WAIT_MISS_LIMIT) {
      this.waitSkip = this.waitSkipLen;
      this.waitSkipLen = Math.min(this.waitSkipLen * 2, WAIT_SKIP_MAX);
      this.waitMisses = WAIT_MISS_LIMIT - 1; // one missed probe skips again
    }
  }

  /** fdatasync (or fsync without `datasync`) of `fd`. */
  fsync(fd: number, datasync = true): Promise<void> {
    if (this.closing) return Promise.reject(new UringIoError('EBADF', 'io_uring closed'));
    if (this.freeTop === 0) return this.later(() => this.fsync(fd, datasync));
    const slot = this.freeSlots[--this.freeTop]!;
    this.kindOf[slot] = Kind.FSYNC;
    if (!this.ring.prepFsync(fd, datasync, slot)) {
      this.freeSlot(slot);
      return Promise.reject(new UringIoError('EBUSY', 'io_uring submission queue full'));
    }
    this.scheduleSubmit();
    return this.promiseFor(slot);
  }

  /** fallocate(2) of [offset, offset + len) with `mode` (FallocMode flags). */
  fallocate(fd: number, mode: number, offset: number, len: number): Promise<void> {
    if (this.closing) return Promise.reject(new UringIoError('EBADF', 'io_uring closed'));
    if (len === 0) return RESOLVED;
    if (this.freeTop === 0) return this.later(() => this.fallocate(fd, mode, offset, len));
    const slot = this.freeSlots[--this.freeTop]!;
    this.kindOf[slot] = Kind.FALLOCATE;
    if (!this.ring.prepFallocate(fd, mode, offset, len, slot)) {
      this.freeSlot(slot);
      return Promise.reject(new UringIoError('EBUSY', 'io_uring submission queue full'));
    }
    this.scheduleSubmit();
    return this.promiseFor(slot);
  }

  private promiseFor(slot: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.resolveOf[slot] = resolve;
      this.rejectOf[slot] = reject;
    });
  }

  /** Beyond the slots: runs `start` once a slot frees (rare: more operations than entries). */
  private later(start: () => Promise<void> | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) =>
      this.waiting.push(() => {
        try {
          const r = start();
          if (r === undefined) resolve();
          else r.then(resolve, reject);
        } catch (e) {
          reject(e);
        }
      }),
    );
  }

  /** An O_DIRECT transfer of a misaligned buffer, through aligned chunks, one after another. */
  private async bounced(op: UringOp, fd: number, buf: Uint8Array, off: number, len: number, pos: number, memAlign: number): Promise<void> {
    const pool = (this.bounce ??= new DirectBouncePool());
    // A free chunk is taken without an await, so the first transfer is queued inside the caller's
    // pass, in pop order: after an await it would run after the eager flag's reset and could
    // become a second eager operation that waits while the rest of the pass is held back.
    const got = pool.acquire();
    const chunk = got instanceof Promise ? await got : got;
    try {
      for (let done = 0; done < len; ) {
        const n = Math.min(chunk.length, len - done);
        if (op === UringOp.WRITE) chunk.set(buf.subarray(off + done, off + done + n));
        await this.rw(op, fd, chunk, 0, n, pos + done, memAlign);
        if (op === UringOp.READ) buf.set(chunk.subarray(0, n), off + done);
        done += n;
      }
    } finally {
      pool.release(chunk);
    }
  }

  private scheduleSubmit(): void {
    if (this.submitScheduled) return;
    this.submitScheduled = true;
    queueMicrotask(this.flushFn);
  }

  /** The batch goes to the kernel; what it completed inline is reaped at once. */
  private submitNow(waitNs = 0): void {
    if (this.closed) return;
    let taken = 0;
    try {
      taken = waitNs > 0 ? this.ring.submitWait(waitNs) : this.ring.submit();
      if (taken < 0) {
        // The kernel cannot wait with a timeout: submit without waiting from now on.
        this.waitNs = 0;
        taken = this.ring.submit();
      }
    } catch (e) {
      // io_uring_enter itself failed (not one operation): nothing queued can be trusted.
      this.failAll(new UringIoError((e as { errno?: string }).errno ?? 'EIO', `io_uring_enter: ${(e as Error).message}`));
      return;
    }
    this.batches++;
    this.submitted += taken;
    this.reapAll(false);
    // The kernel took fewer than queued (short of resources): try again after the loop turns.
    if (this.ring.pending() > 0 && !this.submitScheduled) {
      this.submitScheduled = true;
      setImmediate(this.flushFn);
    }
  }

  private reapAll(fromWatcher: boolean): void {
    if (this.closed) return;
    const out = this.out;
    const max = out.length >> 1;
    // A reap for the eventfd clears it first; so does one after a submission whose inline
    // completions signalled it (no quietSubmit): they must not wake the loop afterwards (see
    // native/io-uring.c).
    let clear = fromWatcher || !this.ring.quietSubmit;
    const nested = this.reaping;
    this.reaping = true;
    try {
      for (;;) {
        const n = this.ring.reap(out, clear);
        clear = false;
        for (let i = 0; i < n; i++) this.complete(out[2 * i]!, out[2 * i + 1]!);
        if (fromWatcher) this.completedLater += n;
        else this.completedInline += n;
        if (n < max) break;
      }
    } finally {
      this.reaping = nested;
    }
    if (!nested) this.startWaiting();
  }

  private complete(slot: number, res: number): void {
    if (slot < 0 || slot >= this.slots || (this.resolveOf[slot] === null && slot !== this.eagerSlot)) return;
    const kind = this.kindOf[slot]!;
    if (res < 0) {
      this.settle(slot, new UringIoError(errnoName(-res), KIND_NAMES[kind] ?? 'io'));
      return;
    }
    if (kind === Kind.READ || kind === Kind.WRITE) {
      const len = this.lenOf[slot]!;
      const done = this.doneOf[slot]! + res;
      if (done < len) {
        // No progress: end of file on a read, nothing accepted on a write. Never an ack.
        if (res === 0) {
          this.settle(slot, new UringIoError('ESHORT', `${KIND_NAMES[kind]} moved ${done} of ${len} bytes at ${this.posOf[slot]}`));
          return;
        }
        this.doneOf[slot] = done;
        const r = this.ring.prepRw(kind, this.fdOf[slot]!, this.bufOf[slot]!, this.offOf[slot]! + done, len - done, this.posOf[slot]! + done, slot, this.alignOf[slot]!);
        if (r !== UringPrep.QUEUED) this.settle(slot, new UringIoError('EBUSY', 'io_uring cannot resume a short transfer'));
        else this.scheduleSubmit();
        return;
      }
    }
    this.settle(slot, null);
  }

  private settle(slot: number, err: UringIoError | null): void {
    if (this.kindOf[slot] === Kind.WRITE) this.writesInFlight--;
    if (slot === this.eagerSlot) {
      // Completed inside the eager io_uring_enter: `eager` reports it synchronously.
      this.eagerSlot = -1;
      this.eagerDone = true;
      this.eagerError = err;
      this.bufOf[slot] = null;
      this.freeSlot(slot);
      return;
    }
    const resolve = this.resolveOf[slot]!;
    const reject = this.rejectOf[slot]!;
    this.resolveOf[slot] = null;
    this.rejectOf[slot] = null;
    this.bufOf[slot] = null;
    this.freeSlot(slot);
    if (err === null) resolve();
    else reject(err);
  }

  private freeSlot(slot: number): void {
    this.freeSlots[this.freeTop++] = slot;
    // Inside a reap the waiting operations start after it: starting one may submit and reap
    // again, which would reuse `out` while the outer reap still reads it (completions lost).
    if (!this.reaping) this.startWaiting();
  }

  /** Starts waiting operations while slots are free; reports idle when nothing is left. */
  private startWaiting(): void {
    while (this.freeTop > 0) {
      const next = this.waiting.shift();
      if (next === undefined) break;
      next();
    }
    if (this.waiting.length === 0 && this.onIdle !== null && this.freeTop === this.slots) this.onIdle();
  }

  private failAll(err: UringIoError): void {
    for (let s = 0; s < this.slots; s++) if (this.resolveOf[s] !== null || s === this.eagerSlot) this.settle(s, err);
  }

  /**
   * Waits (bounded) for what is in flight, so the kernel is done with every buffer, then
   * closes the ring. Operations still waiting are failed.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // Waiting operations start now and are refused (their promises reject).
    for (const start of this.waiting.splice(0)) start();
    if (this.freeTop < this.slots) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, CLOSE_WAIT_MS);
        this.onIdle = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.closed = true;
    this.watcher.stop();
    this.ring.close();
    this.failAll(new UringIoError('EBADF', 'io_uring closed'));
    if (this.bounce !== null && this.bounce.inUse === 0) this.bounce.close();
  }
}
