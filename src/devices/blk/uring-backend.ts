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
 * `discard` and `writeZeroes` use fallocate (PUNCH_HOLE, ZERO_RANGE) and fall back to writing
 * zeroes where the filesystem does not support it.
 */
import { close as closeCb, fstat, open, constants as fsc } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorCode, VirtioError } from '../../errors.js';
import { FallocMode, UringOp, directIoAlignment } from '../../platform/io-uring.js';
import type { BlkBackend } from './backend.js';
import { DEFAULT_URING_ENTRIES, UringFileIo, UringIoError } from './uring-file-io.js';

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(closeCb);

const ZERO_CHUNK = 64 * 1024;
/** Zero chunks written at once when fallocate cannot zero. */
const ZERO_WINDOW = 16;
/** Direct-I/O alignment assumed when the kernel does not tell (statx STATX_DIOALIGN). */
const FALLBACK_DIO_ALIGN = 4096;

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
}

export class UringBackend implements BlkBackend {
  /** fallocate(PUNCH_HOLE) deallocates (when the filesystem refuses, zeroes are written). */
  readonly canUnmap = true;
  private closed = false;
  private zeroes: Uint8Array | null = null;
  /** The filesystem refused fallocate's mode: write zeroes instead from now on. */
  private noPunch = false;
  private noZeroRange = false;

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
    const io = new UringFileIo(opts.entries ?? DEFAULT_URING_ENTRIES);
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
      return new UringBackend(io, fd, bufferedFd, st.size, readOnly, path, direct, writeThrough, memAlign, offsetAlign);
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
  } {
    const io = this.io;
    return { submitted: io.submitted, batches: io.batches, completedInline: io.completedInline, completedLater: io.completedLater };
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
    if (this.direct && (offset % this.offsetAlign !== 0 || len % this.offsetAlign !== 0)) {
      return this.io.rw(UringOp.WRITE, this.bufferedFd, src, srcOff, len, offset);
    }
    return this.io.rw(UringOp.WRITE, this.fd, src, srcOff, len, offset, this.memAlign);
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
    await this.io.close();
    await closeAsync(this.fd);
    if (this.bufferedFd !== this.fd) await closeAsync(this.bufferedFd);
  }
}
