import { close, fdatasync, fstat, open, read, write, constants as fsc } from 'node:fs';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { BlkBackend } from './backend.js';

const ZERO_CHUNK = 64 * 1024;
let zeroes: Uint8Array | null = null;

function ioError(what: string, e: unknown): VirtioError {
  return new VirtioError(ErrorCode.BACKEND_IO, `${what}: ${(e as Error).message ?? String(e)}`, { cause: e });
}

/**
 * A raw image file, with positional reads and writes on one fd (libuv's thread pool runs them,
 * so several requests are in flight at once and complete in any order).
 *
 * - A write resolves only once the kernel accepted all of its bytes (short writes are resumed).
 * - `flush` is fdatasync(2): everything written before it is stable when it resolves.
 * - Node has no fallocate(2), so `discard` and `writeZeroes` (with or without unmap) write
 *   zeroes; `canUnmap` is false so the device reports write_zeroes_may_unmap = 0.
 * - The size is fixed when opened.
 */
export class FileBackend implements BlkBackend {
  readonly canUnmap = false;
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly size: number,
    readonly readOnly: boolean,
    /** The image file's path. */
    readonly path: string,
  ) {}

  /**
   * Opens a raw image (read-write unless `readOnly`, or when the file is not writable); its size is
   * fixed from then on. Throws VirtioError BACKEND_IO when it cannot be opened. `writeThrough`: O_DSYNC, every write
   * stable before it resolves.
   */
  static open(path: string, opts: { readOnly?: boolean; writeThrough?: boolean } = {}): Promise<FileBackend> {
    const readOnly = opts.readOnly ?? false;
    const flags = (readOnly ? fsc.O_RDONLY : fsc.O_RDWR) | (opts.writeThrough === true ? fsc.O_DSYNC : 0);
    return new Promise((resolve, reject) => {
      open(path, flags, (err, fd) => {
        if (err) return reject(ioError(`open ${path}`, err));
        fstat(fd, (err2, st) => {
          if (err2 || !st.isFile()) {
            close(fd, () => reject(err2 ? ioError(`fstat ${path}`, err2) : new VirtioError(ErrorCode.BACKEND_IO, `${path} is not a regular file`)));
            return;
          }
          resolve(new FileBackend(fd, st.size, readOnly, path));
        });
      });
    });
  }

  private check(offset: number, len: number, writing: boolean): void {
    if (this.closed) throw new VirtioError(ErrorCode.BACKEND_IO, `${this.path} is closed`);
    if (writing && this.readOnly) throw new VirtioError(ErrorCode.BACKEND_IO, `${this.path} is open read-only`);
    if (!(offset >= 0 && len >= 0 && offset + len <= this.size)) {
      throw new VirtioError(ErrorCode.BACKEND_IO, `access ${offset}+${len} outside ${this.path} (${this.size} bytes)`);
    }
  }

  read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> {
    this.check(offset, len, false);
    return new Promise((resolve, reject) => {
      const step = (done: number): void => {
        if (done === len) return resolve();
        read(this.fd, dst, dstOff + done, len - done, offset + done, (err, n) => {
          if (err) return reject(ioError(`read ${this.path}`, err));
          // The size is fixed: a short read at the end means the file shrank under us.
          if (n === 0) return reject(new VirtioError(ErrorCode.BACKEND_IO, `${this.path}: unexpected end of file at ${offset + done}`));
          step(done + n);
        });
      };
      step(0);
    });
  }

  write(offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): Promise<void> {
    this.check(offset, len, true);
    return new Promise((resolve, reject) => {
      const step = (done: number): void => {
        if (done === len) return resolve();
        write(this.fd, src, srcOff + done, len - done, offset + done, (err, n) => {
          if (err) return reject(ioError(`write ${this.path}`, err));
          // No progress (a full device that reports 0 rather than ENOSPC): fail, never spin.
          if (n === 0) return reject(new VirtioError(ErrorCode.BACKEND_IO, `${this.path}: write made no progress at ${offset + done}`));
          step(done + n);
        });
      };
      step(0);
    });
  }

  flush(): Promise<void> {
    this.check(0, 0, false);
    return new Promise((resolve, reject) => {
      fdatasync(this.fd, (err) => (err ? reject(ioError(`fdatasync ${this.path}`, err)) : resolve()));
    });
  }

  discard(offset: number, len: number): Promise<void> {
    // No fallocate(PUNCH_HOLE) in Node: zeroes are a valid result of a discard (5.2.6.2).
    return this.writeZeroes(offset, len);
  }

  async writeZeroes(offset: number, len: number): Promise<void> {
    this.check(offset, len, true);
    zeroes ??= new Uint8Array(ZERO_CHUNK);
    for (let done = 0; done < len; done += ZERO_CHUNK) {
      await this.write(offset + done, zeroes, 0, Math.min(ZERO_CHUNK, len - done));
    }
  }

  async secureErase(offset: number, len: number): Promise<void> {
    // Overwrite and make it stable; a copy-on-write filesystem may still keep old blocks.
    await this.writeZeroes(offset, len);
    await this.flush();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve, reject) => close(this.fd, (err) => (err ? reject(ioError(`close ${this.path}`, err)) : resolve())));
  }
}
