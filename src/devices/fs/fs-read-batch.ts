/**
 * virtio-fs READs gathered into one io_uring_enter: each READ whose reply data area is one
 * guest buffer is queued here instead of read with its own pread, and the batch is read when it
 * holds READ_BATCH requests (or the owner's `batchLimit`), before the device serves any request
 * other than a READ, when the queue server ends a round (QueueServerOptions.roundEnd, so the
 * batch goes out with the round's completions), and at the latest in a microtask after the event-loop callback that queued it.
 *
 * Why: every system call costs 1.4-1.9 µs on this machine (the return path traps to the
 * hypervisor), more than the 4 KiB page-cache copy itself. 4 KiB random reads of a cached 64 MiB
 * file (`node dist/bench/read-batch-bench.js`, bench/README.md "Session 13"): pread 1.84-1.98 µs
 * per read; through io_uring alone 2.4-2.5 µs, in batches of 2 1.47 µs, of 4 0.94-1.0 µs, of 8
 * 0.66-0.68 µs, of 16 0.51 µs. So a READ alone at the end of a round is read by pread.
 *
 * Synchronous by design, as the pread it replaces: the batch is submitted and every completion
 * waited for (page-cache hits complete inside io_uring_enter; a read the kernel hands to its
 * workers is waited for, as pread would block) before the batch's requests are answered, in the
 * same event-loop callback. So nothing outlives the callback: no vhost-user message (a memory
 * table change, a reset) runs between queueing and reading, and because the batch is read
 * before any other request is served, no RELEASE or DESTROY can close a queued descriptor.
 *
 * Where io_uring is unavailable (ENOSYS, EPERM: seccomp, io_uring_disabled) or fails, READs are
 * served by pread as before (`queue` returns false, a failed batch is read entry by entry).
 */
import type { QueueRequest } from '../../device/queue-server.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { ChainCursor } from '../../queue/chain.js';
import { IoUring, UringOp, UringPrep } from '../../platform/io-uring.js';
import { FuseInHeader, FuseOutHeader } from '../../spec/fs.js';

/**
 * READs per io_uring_enter at most (the batch is read when it is full, or when it holds as many
 * as the owner's `batchLimit`). The queue server hands completions to a waiting front-end every
 * `handOverAt` completions (4 to 8 for virtio-fs: FS_HAND_OVER_EVERY), so a batch larger than
 * that delays the front-end; with 16 in flight 8 beat 4 and 16 (bench/README.md "s20-fs").
 */
export const READ_BATCH = 8;

/** Reads one READ by itself (the fallback): bytes read or -errno. */
export type PreadFn = (fd: number, bytes: Uint8Array, offset: number, len: number, position: number) => number;

/** What the batch uses of an io_uring (an IoUring, or a test's stand-in). */
export type ReadRing = Pick<IoUring, 'prepRw' | 'submit' | 'submitWait' | 'pending' | 'reap' | 'close'>;

export interface FsReadBatchOwner {
  /** Answers `req` with `written` bytes in its writable part (QueueServer.complete). */
  complete(req: QueueRequest, written: number): void;
  /** pread(2) into guest memory: the fallback when io_uring fails mid-batch. */
  pread: PreadFn;
  /** Opens the ring (default IoUring.open); throws where io_uring is unavailable. */
  openRing?(entries: number): ReadRing;
  /**
   * READs of queue `queueIndex` read together at most now (QueueServer.handOverAt: a batch is
   * read before the queue server's next hand-over is due); READ_BATCH when absent or larger.
   */
  batchLimit?(queueIndex: number): number;
}

export class FsReadBatch {
  private ring: ReadRing | null = null;
  /** io_uring could not be set up or failed: every READ is served by pread. */
  private unavailable = false;
  /** Why io_uring is not used (null while it is). */
  unavailableReason: string | null = null;
  private n = 0;
  private readonly reqs: (QueueRequest | null)[] = new Array<QueueRequest | null>(READ_BATCH).fill(null);
  private readonly fds = new Int32Array(READ_BATCH);
  private readonly views: (Uint8Array | null)[] = new Array<Uint8Array | null>(READ_BATCH).fill(null);
  private readonly offsets = new Float64Array(READ_BATCH);
  private readonly lens = new Int32Array(READ_BATCH);
  private readonly positions = new Float64Array(READ_BATCH);
  /** Each READ's result: bytes read or -errno; NaN until its completion is reaped. */
  private readonly results = new Float64Array(READ_BATCH);
  /** Each request's fuse_out_header: its unique copied in when queued, len and error at the end. */
  private readonly headers = new Uint8Array(FuseOutHeader.SIZE * READ_BATCH);
  private readonly headerView = new DataView(this.headers.buffer);
  private readonly littleEndian = new Uint8Array(READ_BATCH);
  private readonly cqe = new Int32Array(2 * READ_BATCH);
  private readonly cursor = new ChainCursor(true);
  private microtaskQueued = false;
  /** A batch is being read and answered (flush is not re-entered). */
  private flushing = false;
  private readonly flushLater = (): void => {
    this.microtaskQueued = false;
    this.flush();
  };
  /** Batches read (a lone READ by pread included), and READs in them (for tests and stats). */
  batches = 0;
  batchedReads = 0;
  private closed = false;

  constructor(private readonly owner: FsReadBatchOwner) {}

  /** READs queued and not yet read. */
  get pending(): number {
    return this.n;
  }

  /**
   * Queues a READ of `len` bytes at `position` of `fd` into `bytes[offset, offset + len)`, the
   * reply data area of `req` (one guest buffer after its 16-byte out header); the request's
   * unique is copied from `inHeader`. False when io_uring is unavailable: serve it with pread.
   */
  queue(req: QueueRequest, fd: number, bytes: Uint8Array, offset: number, len: number, position: number, inHeader: Uint8Array, littleEndian: boolean): boolean {
    // While a batch is answered, a completion may serve more requests at once (a queue that ran
    // out of slots resumes): their READs are read by pread, the batch's arrays stay as they are.
    if (this.closed || this.unavailable || this.flushing) return false;
    if (this.ring === null && !this.open()) return false;
    const i = this.n++;
    this.reqs[i] = req;
    this.fds[i] = fd;
    this.views[i] = bytes;
    this.offsets[i] = offset;
    this.lens[i] = len;
    this.positions[i] = position;
    this.results[i] = NaN;
    this.littleEndian[i] = littleEndian ? 1 : 0;
    const h = i * FuseOutHeader.SIZE;
    for (let k = 0; k < 8; k++) this.headers[h + FuseOutHeader.UNIQUE + k] = inHeader[FuseInHeader.UNIQUE + k]!;
    if (this.n === READ_BATCH || (this.owner.batchLimit !== undefined && this.n >= this.owner.batchLimit(req.queueIndex))) this.flush();
    else if (!this.microtaskQueued) {
      this.microtaskQueued = true;
      queueMicrotask(this.flushLater);
    }
    return true;
  }

  /**
   * Reads every queued READ (one io_uring_enter for the batch) and answers each request. Not
   * re-entered: a completion that serves more requests at once finds it flushing (their READs
   * are read by pread, and a flush asked for meanwhile has nothing to do: every READ of the batch
   * has been read before the first answer).
   */
  flush(): void {
    const n = this.n;
    if (n === 0 || this.flushing) return;
    this.flushing = true;
    try {
      // A lone READ costs more through io_uring (2.4-2.5 µs) than by pread (1.8 µs): see above.
      if (n === 1 || !this.readAll(n)) this.readRest(n);
      this.batches++;
      this.batchedReads += n;
      for (let i = 0; i < n; i++) {
        const req = this.reqs[i]!;
        this.reqs[i] = null;
        this.views[i] = null;
        this.owner.complete(req, this.reply(req, i));
      }
    } finally {
      for (let i = 0; i < n; i++) {
        this.reqs[i] = null;
        this.views[i] = null;
      }
      this.n = 0;
      this.flushing = false;
    }
  }

  /** Closes the ring (after reading what is queued). */
  close(): void {
    this.flush();
    this.closed = true;
    this.ring?.close();
    this.ring = null;
  }

  private open(): boolean {
    try {
      this.ring = this.owner.openRing !== undefined ? this.owner.openRing(READ_BATCH) : IoUring.open(READ_BATCH);
      return true;
    } catch (e) {
      this.disable(e);
      return false;
    }
  }

  private disable(e: unknown): void {
    this.unavailable = true;
    this.unavailableReason = (e as Error).message;
    this.ring?.close();
    this.ring = null;
  }

  /**
   * The batch through io_uring: queued, submitted, every completion waited for. False when the
   * ring failed (it is then closed and READs go to pread from now on); `results` holds what
   * completed before.
   */
  private readAll(n: number): boolean {
    const ring = this.ring;
    if (ring === null) return false;
    try {
      for (let i = 0; i < n; i++) {
        // Never FULL (the ring has READ_BATCH entries and is empty between batches) nor MISALIGNED (no alignment asked).
        if (ring.prepRw(UringOp.READ, this.fds[i]!, this.views[i]!, this.offsets[i]!, this.lens[i]!, this.positions[i]!, i) !== UringPrep.QUEUED) {
          throw new VirtioError(ErrorCode.PLATFORM, 'io_uring submission queue refused a READ');
        }
      }
      let left = n;
      ring.submit();
      for (;;) {
        left -= this.reap(ring);
        if (left === 0) return true;
        // The kernel took fewer than queued (busy): hand it the rest; else wait for the reads
        // its workers do (a page not in the cache), as pread would have. Without a timed
        // wait (before Linux 5.11) the loop looks again.
        if (ring.pending() > 0) ring.submit();
        else if (ring.submitWait(1e9) < 0) ring.submit();
      }
    } catch (e) {
      this.disable(e);
      return false;
    }
  }

  /** Moves completions into `results`; how many. */
  private reap(ring: ReadRing): number {
    const cqe = this.cqe;
    const got = ring.reap(cqe, false);
    for (let k = 0; k < got; k++) {
      const i = cqe[2 * k]!;
      if (i >= 0 && i < this.n) this.results[i] = cqe[2 * k + 1]!;
    }
    return got;
  }

  /** The entries io_uring did not complete, by pread (after the ring failed). */
  private readRest(n: number): void {
    for (let i = 0; i < n; i++) {
      if (!Number.isNaN(this.results[i]!)) continue;
      this.results[i] = this.owner.pread(this.fds[i]!, this.views[i]!, this.offsets[i]!, this.lens[i]!, this.positions[i]!);
    }
  }

  /** Writes entry `i`'s out header into its chain; the reply's length. */
  private reply(req: QueueRequest, i: number): number {
    const r = this.results[i]!;
    const le = this.littleEndian[i] === 1;
    const h = i * FuseOutHeader.SIZE;
    const len = FuseOutHeader.SIZE + (r > 0 ? r : 0);
    this.headerView.setUint32(h + FuseOutHeader.LEN, len, le);
    this.headerView.setInt32(h + FuseOutHeader.ERROR, r < 0 ? r : 0, le);
    this.cursor.reset(req.chain).write(this.headers, h, FuseOutHeader.SIZE);
    return len;
  }
}
