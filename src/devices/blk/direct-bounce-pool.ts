/**
 * Aligned bounce buffers for O_DIRECT (`--direct`): a guest buffer whose host address is not a
 * multiple of the file's direct-I/O memory alignment cannot be handed to the kernel, so its
 * bytes pass through one of these page-aligned chunks (QEMU bounces the same way). The chunks
 * live in one shared mapping of a memfd (mmap returns page-aligned memory; a JS heap buffer
 * has no alignment one can ask for), made on first use; their number is bounded, and a caller
 * beyond it waits for a chunk to come back.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import type { Mapping } from '../../platform/types.js';

/** Bytes per chunk: 128 KiB, a multiple of every direct-I/O alignment (<= 4096). */
export const BOUNCE_CHUNK_BYTES = 128 * 1024;
/** Chunks in the pool (4 MiB of memory at most, touched only as used). */
export const BOUNCE_CHUNKS = 32;

export class DirectBouncePool {
  private mapping: Mapping | null = null;
  private readonly free: Uint8Array[] = [];
  private readonly waiters: ((chunk: Uint8Array) => void)[] = [];
  private closed = false;

  constructor(
    readonly chunkBytes: number = BOUNCE_CHUNK_BYTES,
    readonly chunks: number = BOUNCE_CHUNKS,
  ) {
    if (chunkBytes % 4096 !== 0 || chunks < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'bounce chunks are whole pages, at least one');
  }

  private map(): void {
    const p = loadNativePlatform();
    const fd = p.memfd('virtio-ts-bounce', this.chunkBytes * this.chunks);
    try {
      this.mapping = p.mmap(fd, 0, this.chunkBytes * this.chunks);
    } finally {
      p.close(fd);
    }
    for (let i = this.chunks - 1; i >= 0; i--) this.free.push(this.mapping.bytes.subarray(i * this.chunkBytes, (i + 1) * this.chunkBytes));
  }

  /** A free chunk, now or once one is released. */
  acquire(): Uint8Array | Promise<Uint8Array> {
    if (this.closed) throw new VirtioError(ErrorCode.BACKEND_IO, 'bounce pool closed');
    if (this.mapping === null) this.map();
    const c = this.free.pop();
    if (c !== undefined) return c;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(chunk: Uint8Array): void {
    if (this.closed) return;
    const w = this.waiters.shift();
    if (w !== undefined) w(chunk);
    else this.free.push(chunk);
  }

  /** Chunks handed out now. */
  get inUse(): number {
    return this.mapping === null ? 0 : this.chunks - this.free.length;
  }

  /** Unmaps the chunks; call only when none is in use by the kernel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.free.length = 0;
    this.mapping?.unmap();
    this.mapping = null;
  }
}
