/**
 * Lone buffered writes written on the event loop: a write to an image file that does not bypass
 * the page cache, made when nothing else is in flight on the file, is a pwrite(2) right away
 * instead of an io_uring submission.
 *
 * Why: ext4 (and most Linux file systems but XFS and btrfs) has no non-blocking buffered write
 * (pwritev2 RWF_NOWAIT fails EOPNOTSUPP), so io_uring hands every such write to an io-wq worker
 * thread, and the request completes only after that thread ran and the ring's eventfd woke the
 * loop. A 4 KiB pwrite into the page cache costs 2.5 µs here; the hand-off costs far more at
 * queue depth 1 (bench/README.md "Session 14": 4 KiB random writes at QD1 0.74-0.94x of
 * qemu-storage-daemon aio=io_uring without this, 1.29-1.36x with it).
 *
 * Not for O_DIRECT or O_DSYNC files (the write would wait for the disk on the event loop), nor
 * when other operations are in flight (they batch through io_uring as before). A pwrite can
 * still block (the kernel throttling a writer that dirties pages faster than they are written
 * back): one that takes longer than `slowUs` turns inline writes off for a while (16 writes,
 * doubling up to 4096 while they stay slow), so a throttled disk does not hold the loop.
 */
import { writeSync } from 'node:fs';
import { UringIoError } from './uring-file-io.js';

/** Largest write made inline (a longer one is one more copy of the loop's time; the ring takes it). */
export const INLINE_WRITE_MAX = 128 * 1024;
/** Default `slowUs`: an inline write longer than this turns inline writes off for a while. */
export const INLINE_WRITE_SLOW_US = 1000;
const SKIP_MIN = 16;
const SKIP_MAX = 4096;

/**
 * Writes `src[off, off + len)` at file offset `pos` of `fd` now, on the calling thread. A short
 * write is resumed; one that makes no progress fails (ESHORT), so nothing is acknowledged
 * unwritten. Throws a UringIoError with the errno name.
 */
export function inlineWrite(fd: number, src: Uint8Array, off: number, len: number, pos: number): void {
  for (let done = 0; done < len; ) {
    let n: number;
    try {
      n = writeSync(fd, src, off + done, len - done, pos + done);
    } catch (e) {
      throw new UringIoError((e as NodeJS.ErrnoException).code ?? 'EIO', 'write (inline)');
    }
    if (n === 0) throw new UringIoError('ESHORT', `write (inline) moved ${done} of ${len} bytes at ${pos}`);
    done += n;
  }
}

/** When lone buffered writes are made inline: on unless a recent one was slow. */
export class InlineWritePolicy {
  /** Writes made inline since creation. */
  written = 0;
  /** Inline writes that took longer than `slowUs`. */
  slow = 0;
  private skip = 0;
  private skipLen = SKIP_MIN;
  private readonly slowMs: number;

  /** `slowUs`: an inline write longer than this turns inline writes off for a while. */
  constructor(slowUs: number = INLINE_WRITE_SLOW_US) {
    this.slowMs = slowUs / 1000;
  }

  /** Whether a lone buffered write of `len` bytes should be made inline now (counts a skipped one). */
  wants(len: number): boolean {
    if (len > INLINE_WRITE_MAX) return false;
    if (this.skip > 0) {
      this.skip--;
      return false;
    }
    return true;
  }

  /** `inlineWrite` timed: a slow one starts (or lengthens) a period without inline writes. */
  write(fd: number, src: Uint8Array, off: number, len: number, pos: number): void {
    const t0 = performance.now();
    inlineWrite(fd, src, off, len, pos);
    this.written++;
    if (performance.now() - t0 > this.slowMs) {
      this.slow++;
      this.skip = this.skipLen;
      this.skipLen = Math.min(this.skipLen * 2, SKIP_MAX);
    } else {
      this.skipLen = SKIP_MIN;
    }
  }
}
