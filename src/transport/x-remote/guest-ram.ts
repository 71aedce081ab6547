/**
 * The guest RAM an x-remote device sees: a memfd mapped on this side and shared with the
 * device process in SYNC_SYSMEM, so the device model's DMA (ring walks, request buffers) reads
 * and writes the very bytes the driver's GuestMemory views. The driver's DmaAllocator hands out
 * addresses inside it.
 */
import { DmaAllocator } from '../../driver/dma-allocator.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import type { Mapping, Platform } from '../../platform/types.js';
import type { XRemoteConnection } from './connection.js';

/** Options of XRemoteGuestRam: how much RAM, and where the guest sees it. */
export interface GuestRamOptions {
  /** Bytes of RAM (a multiple of 4096; default 16 MiB). */
  readonly size?: number;
  /** Guest physical address of the RAM (default 1 MiB, so no buffer sits at 0). */
  readonly guestBase?: number;
}

/** Guest RAM backed by a memfd, mapped here and shared with an x-remote device process. */
export class XRemoteGuestRam {
  /** The driver's view of the RAM: guest addresses `guestBase`..`end` over the mapping. */
  readonly memory: GuestMemory;
  /** Allocator over the whole RAM, for VirtioDriver's `dma` (rings and request buffers). */
  readonly dma: DmaAllocator;
  /** Bytes of RAM, a multiple of 4096. */
  readonly size: number;
  /** Guest physical address of the first byte, page-aligned. */
  readonly guestBase: number;
  private readonly fd: number;
  private readonly mapping: Mapping;
  private closed = false;

  constructor(
    private readonly platform: Platform,
    opts: GuestRamOptions = {},
  ) {
    this.size = opts.size ?? 16 << 20;
    this.guestBase = opts.guestBase ?? 1 << 20;
    if (!Number.isSafeInteger(this.size) || this.size <= 0 || this.size % 4096 !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `guest RAM size ${this.size} is not a positive multiple of 4096`);
    }
    if (!Number.isSafeInteger(this.guestBase) || this.guestBase < 0 || this.guestBase % 4096 !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `guest RAM base ${this.guestBase} is not a page-aligned address`);
    }
    this.fd = platform.memfd('virtio-ts-x-remote', this.size);
    try {
      this.mapping = platform.mmap(this.fd, 0, this.size);
    } catch (e) {
      platform.close(this.fd);
      throw e;
    }
    this.memory = new GuestMemory([{ guestBase: this.guestBase, bytes: this.mapping.bytes }]);
    this.dma = new DmaAllocator(this.guestBase, this.size);
  }

  /** End of the RAM (exclusive) in guest physical addresses. */
  get end(): number {
    return this.guestBase + this.size;
  }

  /** Sends the RAM to the device process (it maps its own duplicate of the memfd). */
  share(link: XRemoteConnection): void {
    link.syncSysmem([{ gpa: this.guestBase, size: this.size, offset: 0 }], [this.fd]);
  }

  /** Unmaps and closes the memfd. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.mapping.unmap();
    } finally {
      this.platform.close(this.fd);
    }
  }
}
