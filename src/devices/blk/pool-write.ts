/**
 * A positional write on libuv's thread pool (pwrite(2) from one of its threads), for the
 * buffered writes that `--aio auto` keeps off io_uring: Linux's io-wq runs the buffered writes
 * to one file that it cannot complete inline one after another (its work is hashed by inode),
 * where pwrite from several threads proceeds in parallel (bench/README.md, "vhost-user-blk on
 * an image file"). A short write is resumed from where it stopped; a write that makes no
 * progress fails, so a request is never acknowledged for bytes that were not written.
 */
import { write } from 'node:fs';
import { UringIoError } from './uring-file-io.js';

/**
 * Writes `src[off, off + len)` at file offset `pos` of `fd` on libuv's thread pool. Rejects with
 * a UringIoError carrying the errno name (`EIO`, `ENOSPC`; `ESHORT` when nothing was accepted).
 */
export function poolWrite(fd: number, src: Uint8Array, off: number, len: number, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === len) {
        resolve();
        return;
      }
      write(fd, src, off + done, len - done, pos + done, (err, n) => {
        if (err) {
          reject(new UringIoError(err.code ?? 'EIO', 'write (thread pool)'));
          return;
        }
        // No progress (a full device that reports 0 rather than ENOSPC): fail, never spin.
        if (n === 0) {
          reject(new UringIoError('ESHORT', `write (thread pool) moved ${done} of ${len} bytes at ${pos}`));
          return;
        }
        step(done + n);
      });
    };
    step(0);
  });
}
