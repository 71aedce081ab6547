/**
 * Storage behind a virtio-blk device (5.2). Offsets and lengths are in bytes; the device has
 * already checked them against `size` and the request's direction.
 *
 * `read` and `write` receive guest memory directly (a region's bytes with an offset and a
 * length), so data moves between the guest and the storage without an intermediate copy and
 * without the device allocating a view per segment. Each method either completes synchronously
 * (returns undefined) or returns a promise; the device acknowledges a write to the driver only
 * once that promise resolved (5.2.6.2: stable writes before completion when writethrough).
 * A method that throws or rejects fails the request with VIRTIO_BLK_S_IOERR.
 */
export interface BlkBackend {
  /** Size in bytes; the device exposes floor(size / 512) sectors. */
  readonly size: number;
  /** The storage cannot be written (the device then offers VIRTIO_BLK_F_RO). */
  readonly readOnly?: boolean;
  /**
   * Whether `writeZeroes(..., unmap=true)` and `discard` can deallocate storage (the device
   * sets write_zeroes_may_unmap from it, 5.2.6.2 device/blk/23).
   */
  readonly canUnmap?: boolean;

  /** Reads `len` bytes at `offset` into `dst[dstOff .. dstOff+len)` (defaults: all of dst). */
  read(offset: number, dst: Uint8Array, dstOff?: number, len?: number): Promise<void> | void;
  /** Writes `src[srcOff .. srcOff+len)` at `offset` (defaults: all of src). */
  write(offset: number, src: Uint8Array, srcOff?: number, len?: number): Promise<void> | void;
  /** Makes every completed write stable (VIRTIO_BLK_T_FLUSH). */
  flush(): Promise<void> | void;
  /** May deallocate [offset, offset+len); the contents read afterwards are unspecified. */
  discard(offset: number, len: number): Promise<void> | void;
  /** Zeroes [offset, offset+len); with `unmap`, may deallocate as well. */
  writeZeroes(offset: number, len: number, unmap: boolean): Promise<void> | void;
  /**
   * Erases [offset, offset+len) so the old data cannot be recovered. Optional: without it the
   * device writes zeroes and flushes.
   */
  secureErase?(offset: number, len: number): Promise<void> | void;
  /**
   * Storage lifetime metrics (VIRTIO_BLK_T_GET_LIFETIME). Optional: the device offers
   * VIRTIO_BLK_F_LIFETIME only when present (device/blk/28).
   */
  lifetime?(): BlkLifetimeInfo;
  /**
   * Optional: the device's round over a queue ended (every available request popped and
   * dispatched). A backend that batches operations (io_uring) submits what the round queued now,
   * so back-to-back rounds inside one macrotask (a busy-polling episode) do not wait for a
   * microtask that only runs after the episode.
   */
  roundEnd?(): void;
  /**
   * Optional: the device hands the backend a way to know whether other requests wait in its
   * rings (`othersWaiting`). A backend that can wait for a lone operation's completion inside
   * its system call (io_uring, `--wait-us`) waits only when none do, so a wait never holds back
   * requests the driver already posted.
   */
  gateWaits?(othersWaiting: () => boolean): void;
  /** Releases the storage. */
  close(): Promise<void> | void;
}

/** 5.2.6 struct virtio_blk_lifetime. */
export interface BlkLifetimeInfo {
  /** 0 undefined, 1 normal, 2 warning, 3 urgent. */
  readonly preEolInfo: number;
  /** Estimated wear of SLC cells, 0 undefined, 1..0x0b in steps of 10%. */
  readonly deviceLifetimeEstTypA: number;
  /** Estimated wear of MLC cells, same encoding. */
  readonly deviceLifetimeEstTypB: number;
}
