/**
 * A raw image file served through io_uring (uring-file-io.ts): the requests of one kick go to
 * the kernel in one io_uring_enter, page-cache hits complete inside it, the rest through an
 * eventfd on Node's loop. Options as QEMU's file driver:
 *
 * - `direct` (cache.direct=on): O_DIRECT, bypassing the page cache. Guest buffers at an address
 *   the kernel refuses are bounced through aligned chunks; a request whose file offset or
 *   length is not a multiple of the file's direct-I/O alignment (a guest using 512-byte blocks
 *   on a 4 KiB-sector disk) goes through a second, buffered fd of the same file, which Linux
 *   keeps coherent with direct I/O.
 * - `writeThrough`: O_DSYNC, every write durable before it completes (so before the request
 *   is acknowledged). The device is then offered with WCE 0 (writethrough, 5.2.6.2) and a
 *   FLUSH has nothing left to do.
 *
 * - `inlineWrites`: a buffered write alone on the file is one pwrite on the event loop
 *   (inline-write.ts); with others in flight it goes the `bufferedWrites` way.
 * - `bufferedWrites`: where writes that are not O_DIRECT go (`--aio auto` is OVERFLOW): Linux
 *   completes many buffered writes inside io_uring_enter, but hands the others to its io-wq
 *   workers, which run the writes to one file one after another (work hashed by inode); pwrite
 *   on libuv's thread pool runs them side by side.
 *
 * `discard` and `writeZeroes` use fallocate (PUNCH_HOLE, ZERO_RANGE) and fall back to writing
 * zeroes where the filesystem does not support it.
 */
import { close as closeCb, fstat, open, constants as fsc } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorCode, VirtioError } from '../../errors.js';
import { FallocMode, UringOp, directIoAlignment } from '../../platform/io-uring.js';
import type { BlkBackend } from './backend.js';
import { InlineWritePolicy } from './inline-write.js';
import { poolWrite } from './pool-write.js';
import { DEFAULT_URING_ENTRIES, UringFileIo, UringIoError } from './uring-file-io.js';

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(closeCb);

const ZERO_CHUNK = 64 * 1024;
/** Zero chunks written at once when fallocate cannot zero. */
const ZERO_WINDOW = 16;
/** Direct-I/O alignment assumed when the kernel does not tell (statx STATX_DIOALIGN). */
const FALLBACK_DIO_ALIGN = 4096;
/** How long `close` waits for thread-pool writes in flight before closing the file anyway. */
const POOL_CLOSE_WAIT_MS = 10_000;

/** Where {@link UringBackend} sends a write that does not bypass the page cache. */
export const BufferedWriteRoute = {
  /** Every write through io_uring (`--aio io_uring`). */
  URING: 'uring',
  /**
   * Through io_uring while no write is in flight there (a lone write mostly completes inside
   * io_uring_enter, the cheapest path), else pwrite on libuv's thread pool, so writes beyond the
   * first of a batch do not queue behind one io-wq worker (`--aio auto`).
   */
  OVERFLOW: 'overflow',
  /** Every buffered write as pwrite on libuv's thread pool. */
  POOL: 'pool',
} as const;
export type BufferedWriteRoute = (typeof BufferedWriteRoute)[keyof typeof BufferedWriteRoute];

/** How {@link UringBackend.open} opens the image and sizes its ring. */
export interface UringBackendOptions {
  /** Open O_RDONLY: writes, DISCARD and WRITE_ZEROES are refused. Default false. */
  readonly readOnly?: boolean;
  /** O_DIRECT (cache.direct=on). */
  readonly direct?: boolean;
  /** O_DSYNC: every write stable before it completes. */
  readonly writeThrough?: boolean;
  /** Submission entries of the ring (default 256). */
  readonly entries?: number;
  /** Where writes that are not O_DIRECT go (default URING; `--aio auto`: OVERFLOW). */
  readonly bufferedWrites?: BufferedWriteRoute;
  /**
   * How long, in µs, the io_uring_enter of a lone operation the kernel does not complete inline
   * sleeps for its completion (UringFileIo `waitUs`; `--wait-us`). Default 0.
   */
  readonly waitUs?: number;
  /**
   * A buffered write made when nothing else is in flight is a pwrite on the event loop, not an
   * io_uring submission (inline-write.ts). Default true; never with `direct` or `writeThrough`.
   */
  readonly inlineWrites?: boolean;
  /** An inline write slower than this (µs) turns them off for a while (default 1000). */
  readonly inlineSlowUs?: number;
}

export class UringBackend implements BlkBackend {
  /** fallocate(PUNCH_HOLE) deallocates (when the filesystem refuses, zeroes are written). */
  readonly canUnmap = true;
  private closed = false;
  private zeroes: Uint8Array | null = null;
  /** The filesystem refused fallocate's mode: write zeroes instead from now on. */
  private noPunch = false;
  private noZeroRange = false;
  /** Writes on libuv's thread pool now, and who waits for them to end (close). */
  private poolInFlight = 0;
  private poolIdle: (() => void) | null = null;
  /** Writes sent to libuv's thread pool since open. */
  private pooledWrites = 0;
  private readonly poolDoneFn = (): void => {
    if (--this.poolInFlight === 0 && this.poolIdle !== null) this.poolIdle();
  };

  private constructor(
    private readonly io: UringFileIo,
    private readonly fd: number,
    /** With `direct`: a buffered fd for transfers not aligned to `offsetAlign`; else `fd`. */
    private readonly bufferedFd: number,
    readonly size: number,
    readonly readOnly: boolean,
    /** The image file's path, as given to open. */
    readonly path: string,
    /** Opened with O_DIRECT (the `direct` option): transfers bypass the host page cache. */
    readonly direct: boolean,
    /** Opened with O_DSYNC (the `writeThrough` option): each write is stable when it completes. */
    readonly writeThrough: boolean,
    /** O_DIRECT: buffer address alignment (0 when not direct). */
    readonly memAlign: number,
    /** O_DIRECT: file offset and length alignment (1 when not direct). */
    readonly offsetAlign: number,
    /** Where writes that are not O_DIRECT go. */
    readonly bufferedWrites: BufferedWriteRoute,
    /** Lone buffered writes made inline (UringBackendOptions.inlineWrites), or null. */
    private readonly inline: InlineWritePolicy | null,
  ) {}

  /**
   * Opens `path` and sets up its ring. Throws PlatformError (code PLATFORM, `errno` ENOSYS or
   * EPERM) when io_uring is unavailable or refused, VirtioError BACKEND_IO when the file is
   * unusable (EINVAL from O_DIRECT: the filesystem has no direct I/O).
   */
  static async open(path: string, opts: UringBackendOptions = {}): Promise<UringBackend> {
    const readOnly = opts.readOnly ?? false;
    const direct = opts.direct ?? false;
    const writeThrough = opts.writeThrough ?? false;
    const io = new UringFileIo(opts.entries ?? DEFAULT_URING_ENTRIES, opts.waitUs ?? 0);
    const flags = (readOnly ? fsc.O_RDONLY : fsc.O_RDWR) | (writeThrough ? fsc.O_DSYNC : 0);
    const fds: number[] = [];
    try {
      const fd = await openAsync(path, flags | (direct ? fsc.O_DIRECT : 0)).catch((e: unknown) => {
        throw new VirtioError(ErrorCode.BACKEND_IO, `open ${path}${direct ? ' with O_DIRECT' : ''}: ${(e as Error).message}`, { cause: e });
      });
      fds.push(fd);
      const st = await fstatAsync(fd);
      if (!st.isFile()) throw new VirtioError(ErrorCode.BACKEND_IO, `${path} is not a regular file`);
      let bufferedFd = fd;
      let memAlign = 0;
      let offsetAlign = 1;
      if (direct) {
        bufferedFd = await openAsync(path, flags);
        fds.push(bufferedFd);
        const a = directIoAlignment(fd);
        memAlign = a.memory > 0 ? a.memory : FALLBACK_DIO_ALIGN;
        offsetAlign = a.offset > 0 ? a.offset : FALLBACK_DIO_ALIGN;
      }
      const route = opts.bufferedWrites ?? BufferedWriteRoute.URING;
      const inline = (opts.inlineWrites ?? true) && !direct && !writeThrough && !readOnly ? new InlineWritePolicy(opts.inlineSlowUs) : null;
      return new UringBackend(io, fd, bufferedFd, st.size, readOnly, path, direct, writeThrough, memAlign, offsetAlign, route, inline);
    } catch (e) {
      for (const fd of fds) await closeAsync(fd).catch(() => undefined);
      await io.close();
      throw e instanceof VirtioError ? e : new VirtioError(ErrorCode.BACKEND_IO, `${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Operations submitted and io_uring_enter calls made (to see the batching). */
  get counters(): {
    /** Operations (SQEs) submitted to the ring since open. */
    submitted: number;
    /** io_uring_enter calls made to submit them: submitted / batches is the batch size. */
    batches: number;
    /** Completions reaped right after their submission (finished inside io_uring_enter, e.g. page-cache hits). */
    completedInline: number;
    /** Completions reaped later, when the ring's eventfd woke Node's loop. */
    completedLater: number;
    /** Writes sent to libuv's thread pool (bufferedWrites OVERFLOW or POOL) instead of the ring. */
    pooledWrites: number;
    /** Completion waits made (`waitUs`), and those the operation completed in. */
    waits: number;
    /** Completion waits that ended with the operation's completion. */
    waitHits: number;
    /** Lone buffered writes made inline (pwrite on the event loop), and those that were slow. */
    inlineWrites: number;
    /** Inline writes slower than `inlineSlowUs` (each turned inline writes off for a while). */
    slowInlineWrites: number;
  } {
    const io = this.io;
    return {
      submitted: io.submitted,
      batches: io.batches,
      completedInline: io.completedInline,
      completedLater: io.completedLater,
      pooledWrites: this.pooledWrites,
      waits: io.waits,
      waitHits: io.waitHits,
      inlineWrites: this.inline?.written ?? 0,
      slowInlineWrites: this.inline?.slow ?? 0,
    };
  }

  private check(offset: number, len: number, writing: boolean): void {
    if (this.closed) throw new VirtioError(ErrorCode.BACKEND_IO, `${this.path} is closed`);
    if (writing && this.readOnly) throw new VirtioError(ErrorCode.BACKEND_IO, `${this.path} is open read-only`);
    if (!(offset >= 0 && len >= 0 && offset + len <= this.size)) {
      throw new VirtioError(ErrorCode.BACKEND_IO, `access ${offset}+${len} outside ${this.path} (${this.size} bytes)`);
    }
  }

  /** Undefined when done synchronously (a page-cache hit completed inside io_uring_enter). */
  read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> | undefined {
    this.check(offset, len, false);
    if (this.direct && (offset % this.offsetAlign !== 0 || len % this.offsetAlign !== 0)) {
      return this.io.rw(UringOp.READ, this.bufferedFd, dst, dstOff, len, offset);
    }
    return this.io.rw(UringOp.READ, this.fd, dst, dstOff, len, offset, this.memAlign);
  }

  write(offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): Promise<void> | undefined {
    this.check(offset, len, true);
    if (this.direct) {
      if (offset % this.offsetAlign !== 0 || len % this.offsetAlign !== 0) return this.io.rw(UringOp.WRITE, this.bufferedFd, src, srcOff, len, offset);
      return this.io.rw(UringOp.WRITE, this.fd, src, srcOff, len, offset, this.memAlign);
    }
    const route = this.bufferedWrites;
    // Alone on the file: one pwrite now rather than an io-wq worker's (inline-write.ts).
    if (this.inline !== null && this.io.inFlight === 0 && this.poolInFlight === 0 && this.inline.wants(len)) {
      this.inline.write(this.fd, src, srcOff, len, offset);
      return undefined;
    }
    if (route === BufferedWriteRoute.URING || (route === BufferedWriteRoute.OVERFLOW && this.io.writesInFlight === 0) || len === 0) {
      return this.io.rw(UringOp.WRITE, this.fd, src, srcOff, len, offset);
    }
    return this.pooled(offset, src, srcOff, len);
  }

  /** A buffered write as pwrite on libuv's thread pool; `close` waits for it. */
  private pooled(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<void> {
    this.pooledWrites++;
    this.poolInFlight++;
    const p = poolWrite(this.fd, src, srcOff, len, offset);
    p.then(this.poolDoneFn, this.poolDoneFn);
    return p;
  }

  /** Completion waits only while `othersWaiting` says no other request is posted (UringFileIo.waitGate). */
  gateWaits(othersWaiting: () => boolean): void {
    this.io.waitGate = othersWaiting;
  }

  /** The device's round ended: the operations it queued go to the kernel now (UringFileIo.roundEnd). */
  roundEnd(): void {
    if (!this.closed) this.io.roundEnd();
  }

  /**
   * fdatasync. Write-through: every write completed is already stable (O_DSYNC) and so is a
   * fallocate (followed by its own fdatasync): nothing to do.
   */
  flush(): Promise<void> | void {
    this.check(0, 0, false);
    if (this.writeThrough) return;
    // One fdatasync covers the file, whichever fd wrote (the buffered fd's pages included).
    return this.io.fsync(this.fd, true);
  }

  discard(offset: number, len: number): Promise<void> {
    return this.writeZeroes(offset, len, true);
  }

  async writeZeroes(offset: number, len: number, unmap = false): Promise<void> {
    this.check(offset, len, true);
    if (len === 0) return;
    const punch = unmap && !this.noPunch;
    if (punch || !this.noZeroRange) {
      const mode = FallocMode.KEEP_SIZE | (punch ? FallocMode.PUNCH_HOLE : FallocMode.ZERO_RANGE);
      try {
        await this.io.fallocate(this.fd, mode, offset, len);
        // fallocate is not covered by O_DSYNC: make it stable itself.
        if (this.writeThrough) await this.io.fsync(this.fd, true);
        return;
      } catch (e) {
        if (!(e instanceof UringIoError) || (e.errno !== 'EOPNOTSUPP' && e.errno !== 'ENOTSUP' && e.errno !== 'EINVAL')) throw e;
        if (punch) this.noPunch = true;
        else this.noZeroRange = true;
      }
    }
    await this.writeZeroBytes(offset, len);
  }

  /** Writes zeroes over [offset, offset + len), a bounded number of chunks at a time. */
  private async writeZeroBytes(offset: number, len: number): Promise<void> {
    const zeroes = (this.zeroes ??= new Uint8Array(ZERO_CHUNK));
    const window = ZERO_CHUNK * ZERO_WINDOW;
    for (let base = 0; base < len; base += window) {
      const pending: Promise<void>[] = [];
      const end = Math.min(len, base + window);
      for (let done = base; done < end; done += ZERO_CHUNK) {
        const r = this.write(offset + done, zeroes, 0, Math.min(ZERO_CHUNK, end - done));
        if (r !== undefined) pending.push(r);
      }
      await Promise.all(pending);
    }
  }

  async secureErase(offset: number, len: number): Promise<void> {
    // Overwritten blocks, not a hole (a hole leaves the old blocks on the disk), then stable.
    this.check(offset, len, true);
    await this.writeZeroBytes(offset, len);
    await this.io.fsync(this.fd, true);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The fd stays open until the pool's writes ended: a write started after close would hit
    // whatever file reused its number.
    if (this.poolInFlight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, POOL_CLOSE_WAIT_MS);
        this.poolIdle = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    await this.io.close();
    await closeAsync(this.fd);
    if (this.bufferedFd !== this.fd) await closeAsync(this.bufferedFd);
  }
}
