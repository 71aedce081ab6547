/**
 * What a virtio-pmem device serves (5.19): a byte-addressable memory range the guest maps
 * directly, and a flush that makes every write completed before it persistent
 * (device/pmem/6). Two backends: memory (tests; flush only counts) and a file mapped
 * MAP_SHARED through the native addon, whose flush is fdatasync(2): on Linux it writes back
 * the file's dirty page-cache pages, the ones dirtied through the shared mapping included.
 */
import { closeSync, fdatasync, fstatSync, ftruncateSync, openSync } from 'node:fs';
import { ErrorCode, VirtioError } from '../../errors.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import type { Mapping } from '../../platform/types.js';

/** Region sizes are whole pages (2.10: a transport maps a shared memory region page by page). */
export const PMEM_ALIGN = 4096;

/** The memory behind a virtio-pmem device (5.19): the bytes the guest maps and how to make them persist. */
export interface PmemBackend {
  /** The memory range (its length is the device's size). */
  readonly bytes: Uint8Array;
  /** Makes every write to `bytes` completed before the call persistent. */
  flush(): void | Promise<void>;
  /** Flushes done (for tests and stats). */
  readonly flushes: number;
  /** Releases the memory (unmaps and closes a file); `bytes` must not be used after. */
  close(): void;
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < PMEM_ALIGN || size % PMEM_ALIGN !== 0) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `pmem size ${size} is not a positive multiple of ${PMEM_ALIGN}`);
  }
}

/** RAM only: nothing persists beyond the process; flush succeeds (and counts). */
export class PmemMemoryBackend implements PmemBackend {
  readonly bytes: Uint8Array;
  flushes = 0;
  /** Set to make the next flushes fail (tests of the -1 status). */
  failFlush = false;

  constructor(size: number) {
    checkSize(size);
    this.bytes = new Uint8Array(size);
  }

  flush(): void {
    if (this.failFlush) throw new VirtioError(ErrorCode.BACKEND_IO, 'pmem: flush failed (failFlush)');
    this.flushes++;
  }

  /** Nothing to release (the garbage collector frees the RAM). */
  close(): void {}
}

/** A host file mapped MAP_SHARED (QEMU's memory-backend-file,share=on); flush is fdatasync. */
export class PmemFileBackend implements PmemBackend {
  readonly bytes: Uint8Array;
  flushes = 0;
  private readonly fd: number;
  private readonly mapping: Mapping;
  private closed = false;

  private constructor(fd: number, mapping: Mapping) {
    this.fd = fd;
    this.mapping = mapping;
    this.bytes = mapping.bytes;
  }

  /**
   * Opens (creating it when `size` is given and the file is missing) and maps `path`. Without
   * `size` the file's size is used; with it the file is extended to it when shorter.
   */
  static open(path: string, size?: number): PmemFileBackend {
    let fd = -1;
    try {
      fd = openSync(path, size === undefined ? 'r+' : openFlags(path));
      const have = fstatSync(fd).size;
      const want = size ?? have;
      checkSize(want);
      if (have < want) ftruncateSync(fd, want);
      const mapping = loadNativePlatform().mmap(fd, 0, want);
      return new PmemFileBackend(fd, mapping);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      if (e instanceof VirtioError) throw e;
      throw new VirtioError(ErrorCode.BACKEND_IO, `pmem: cannot map ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new VirtioError(ErrorCode.BACKEND_IO, 'pmem: backend closed'));
    return new Promise((resolve, reject) => {
      fdatasync(this.fd, (err) => {
        if (err) reject(new VirtioError(ErrorCode.BACKEND_IO, `pmem: fdatasync: ${err.message}`, { cause: err }));
        else {
          this.flushes++;
          resolve();
        }
      });
    });
  }

  /** Unmaps the file and closes it; a second call does nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mapping.unmap();
    closeSync(this.fd);
  }
}

function openFlags(path: string): string {
  try {
    closeSync(openSync(path, 'r'));
    return 'r+';
  } catch {
    return 'w+';
  }
}
