/**
 * Shared memory region 0 of a media device (5.22.6.1 VIRTIO_MEDIA_CMD_MMAP): the MMAP buffers the
 * device provisions live here, page-aligned. A range stays allocated while a buffer owns it or a
 * mapping of it exists: device/media/6 keeps a mapping valid until MUNMAP even after its buffer
 * or session is released.
 */
const PAGE = 4096;

/** A page-aligned range of the media device's shared memory region given to one MMAP buffer (Media Device, shared memory region 0). */
export class ShmRange {
  /** Whether a buffer still owns it. */
  owned = true;
  /** Mappings of it not yet unmapped. */
  mappings = 0;
  constructor(
    /** Byte offset of the range in shared memory region 0 (a multiple of the page size). */
    readonly offset: number,
    /** Bytes in the range (a whole number of pages). */
    readonly length: number,
  ) {}
}

/** Shared memory region 0 of a MediaDevice: page-aligned ranges for MMAP buffers (see the file comment). */
export class MediaShm {
  /** The region's memory, as the device exposes it (sharedMemoryRegions). */
  readonly bytes: Uint8Array;
  /** Allocated ranges, by offset. */
  private ranges: ShmRange[] = [];
  /** Mappings by their driver_addr (the range offset). */
  private readonly mapped = new Map<number, ShmRange>();

  constructor(
    /** Bytes of the region. */
    readonly length: number,
  ) {
    this.bytes = new Uint8Array(length);
  }

  /** A page-aligned range of at least `len` bytes, or null when the region is full. */
  allocate(len: number): ShmRange | null {
    const size = Math.ceil(Math.max(1, len) / PAGE) * PAGE;
    let at = 0;
    for (let i = 0; i <= this.ranges.length; i++) {
      const next = this.ranges[i];
      const end = next ? next.offset : this.length;
      if (end - at >= size) {
        const r = new ShmRange(at, size);
        this.ranges.splice(i, 0, r);
        this.bytes.fill(0, at, at + size);
        return r;
      }
      if (next) at = next.offset + next.length;
    }
    return null;
  }

  /** The buffer owning `r` released it; freed unless still mapped. */
  release(r: ShmRange): void {
    r.owned = false;
    this.maybeFree(r);
  }

  /** The range with this offset that a buffer owns (for MMAP), or undefined. */
  owned(offset: number): ShmRange | undefined {
    return this.ranges.find((r) => r.offset === offset && r.owned);
  }

  /** MMAP: one mapping more of `r` (its driver_addr is its offset); kept until MUNMAP. */
  map(r: ShmRange): void {
    r.mappings++;
    this.mapped.set(r.offset, r);
  }

  /** MUNMAP: false when nothing is mapped at `addr`. */
  unmap(addr: number): boolean {
    const r = this.mapped.get(addr);
    if (r === undefined) return false;
    if (--r.mappings === 0) this.mapped.delete(addr);
    this.maybeFree(r);
    return true;
  }

  /** Whether a mapping exists at `addr` (device/media/6). */
  isMapped(addr: number): boolean {
    return this.mapped.has(addr);
  }

  /** Everything freed (device reset). */
  clear(): void {
    this.ranges = [];
    this.mapped.clear();
  }

  private maybeFree(r: ShmRange): void {
    if (r.owned || r.mappings > 0) return;
    const i = this.ranges.indexOf(r);
    if (i >= 0) this.ranges.splice(i, 1);
  }
}
