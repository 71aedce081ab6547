import { ErrorCode, VirtioError } from '../../errors.js';
import type { BlkBackend } from './backend.js';

/** Granularity of the sparse RAM disk's written-page map. */
const SPARSE_PAGE = 4096;

/** Bytes of a sparse map for a disk of `sizeBytes` (one per 4 KiB page). */
export function sparseMapBytes(sizeBytes: number): number {
  return Math.ceil(sizeBytes / SPARSE_PAGE);
}

/**
 * A RAM disk. Every operation completes synchronously, so the device's request path runs
 * without promises.
 *
 * With `sparse`, the disk remembers which 4 KiB pages were ever written (one byte each); a read
 * of pages never written zero-fills the destination instead of copying from `data` (same bytes,
 * but no pass over the source: no TLB and cache misses over a large, mostly untouched disk).
 * Only for disks whose `data` nobody writes directly (the CLI's `--memory` disk).
 */
export class MemoryBackend implements BlkBackend {
  /** The disk's bytes (tests may read and write them directly, except with `sparse`). */
  readonly data: Uint8Array;
  readonly readOnly: boolean;
  readonly canUnmap = false;
  private closed = false;
  /** Sparse: 1 for each page written since creation (a 0 page holds zeroes in `data`). */
  private readonly written: Uint8Array | null;

  /**
   * `written`: a sparse map to use instead of a new one, with `data` (zeroes where the map has
   * 0): views of SharedArrayBuffers give every thread the same sparse disk (`--threads`); its
   * length is sparseMapBytes(sizeBytes).
   */
  constructor(sizeBytes: number, opts: { readOnly?: boolean; data?: Uint8Array; sparse?: boolean; written?: Uint8Array } = {}) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad RAM disk size ${sizeBytes}`);
    }
    if (opts.data && opts.data.length !== sizeBytes) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `RAM disk data is ${opts.data.length} bytes, not ${sizeBytes}`);
    }
    this.data = opts.data ?? new Uint8Array(sizeBytes);
    this.readOnly = opts.readOnly ?? false;
    if (opts.written && opts.written.length !== sparseMapBytes(sizeBytes)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `sparse map of ${opts.written.length} bytes for a ${sizeBytes}-byte disk`);
    }
    // Given data may hold anything: no sparse map then, unless one comes with it.
    this.written = opts.written ?? (opts.sparse === true && !opts.data ? new Uint8Array(sparseMapBytes(sizeBytes)) : null);
  }

  /** Whether any page of [offset, offset + len) was written (len > 0). */
  private touched(offset: number, len: number): boolean {
    const w = this.written!;
    const last = Math.floor((offset + len - 1) / SPARSE_PAGE);
    for (let p = Math.floor(offset / SPARSE_PAGE); p <= last; p++) if (w[p] !== 0) return true;
    return false;
  }

  private markWritten(offset: number, len: number): void {
    if (len <= 0) return;
    this.written!.fill(1, Math.floor(offset / SPARSE_PAGE), Math.floor((offset + len - 1) / SPARSE_PAGE) + 1);
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
    if (this.written !== null && len > 0 && !this.touched(offset, len)) {
      dst.fill(0, dstOff, dstOff + len);
      return;
    }
    dst.set(this.data.subarray(offset, offset + len), dstOff);
  }

  write(offset: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): void {
    this.check(offset, len);
    if (this.readOnly) throw new VirtioError(ErrorCode.BACKEND_IO, 'RAM disk is read-only');
    if (this.written !== null) this.markWritten(offset, len);
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
