import { ErrorCode, VirtioError } from '../../errors.js';
import type { BlkBackend } from './backend.js';

/**
 * A RAM disk. Every operation completes synchronously, so the device's request path runs
 * without promises.
 */
export class MemoryBackend implements BlkBackend {
  readonly data: Uint8Array;
  readonly readOnly: boolean;
  readonly canUnmap = false;
  private closed = false;

  constructor(sizeBytes: number, opts: { readOnly?: boolean; data?: Uint8Array } = {}) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad RAM disk size ${sizeBytes}`);
    }
    if (opts.data && opts.data.length !== sizeBytes) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `RAM disk data is ${opts.data.length} bytes, not ${sizeBytes}`);
    }
    this.data = opts.data ?? new Uint8Array(sizeBytes);
    this.readOnly = opts.readOnly ?? false;
  }

  get size(): number {
    return this.data.length;
  }

  private check(offset: number, len: number): void {
    if (this.closed) throw new VirtioError(ErrorCode.BACKEND_IO, 'RAM disk is closed');
    if (!(offset >= 0 && len >= 0 && offset + len <= this.data.length)) {
      throw new VirtioError(ErrorCode.BACKEND_IO, `RAM disk access ${offset}+${len} outside ${this.data.length} bytes`);
    }
  }

  read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): void {
    this.check(offset, len);
    dst.set(this.data.subarray(offset, offset + len), dstOff);
  }

  write(offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): void {
    this.check(offset, len);
    if (this.readOnly) throw new VirtioError(ErrorCode.BACKEND_IO, 'RAM disk is read-only');
    this.data.set(src.subarray(srcOff, srcOff + len), offset);
  }

  flush(): void {
    this.check(0, 0);
  }

  discard(offset: number, len: number): void {
    // Deallocation has no meaning for RAM; 5.2.6.2 lets discarded sectors read as anything,
    // zeroes are the simplest answer.
    this.writeZeroes(offset, len);
  }

  writeZeroes(offset: number, len: number): void {
    this.check(offset, len);
    if (this.readOnly) throw new VirtioError(ErrorCode.BACKEND_IO, 'RAM disk is read-only');
    this.data.fill(0, offset, offset + len);
  }

  close(): void {
    this.closed = true;
  }
}
