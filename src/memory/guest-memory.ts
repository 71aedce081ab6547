import { ErrorCode, MemoryError } from '../errors.js';

/**
 * One region of guest physical memory, as a VMM maps it: `bytes` is the host view of
 * guest addresses [guestBase, guestBase + bytes.length).
 */
export interface RegionSpec {
  /** Guest physical address of the region's first byte. */
  readonly guestBase: number;
  /**
   * The host view of the region (a mapping of the VMM's memfd, a SharedArrayBuffer, an emulator's
   * RAM).
   */
  readonly bytes: Uint8Array;
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const U32 = 0x1_0000_0000;

/**
 * Guest memory over one or more regions. Every access is bounds-checked (addr + len overflow,
 * unmapped, region-crossing) and fails with a typed `MemoryError`, so a guest-controlled
 * address can never reach outside the mapped regions.
 *
 * Hot paths avoid allocation: `locate()` returns a region index, and `bytesOf()` / `baseOf()`
 * give the region's bytes and guest base, so a ring can copy straight from and into the
 * region without a view per descriptor.
 *
 * Ordered accesses (`loadU16Acquire`, `storeU16Release`, `fence`) use Atomics on the region
 * buffer; V8 treats them as sequentially consistent, which covers acquire/release and lets a
 * ring shared with another thread or process (SharedArrayBuffer, mmapped memfd) stay ordered.
 */
export class GuestMemory {
  private readonly bases: number[] = [];
  private readonly ends: number[] = [];
  private readonly u8s: Uint8Array[] = [];
  private readonly dvs: DataView[] = [];
  private readonly u16s: (Uint16Array | null)[] = [];
  private readonly u32s: (Uint32Array | null)[] = [];
  private last = 0;
  private static readonly fenceCell = new Int32Array(new SharedArrayBuffer(4));
  /** Pins held (see `pin`), and what runs when the owner retired this memory and the last goes. */
  private pins = 0;
  private onReleased: (() => void) | null = null;
  private isReleased = false;

  constructor(regions: readonly RegionSpec[]) {
    this.setRegions(regions);
  }

  /**
   * Replaces every region at once, for memory whose layout changes under its holders (an IOMMU
   * endpoint's view, whose regions are its domain's mappings: src/devices/iommu/). Checked as
   * the constructor checks; on a bad layout nothing changes. Views holders cached from
   * `bytesOf`/`dataViewOf`/`u16Of`/`u32Of` keep pointing at the old regions' bytes.
   */
  replaceRegions(regions: readonly RegionSpec[]): void {
    new GuestMemory(regions); // validates; throws before anything is replaced
    this.bases.length = 0;
    this.ends.length = 0;
    this.u8s.length = 0;
    this.dvs.length = 0;
    this.u16s.length = 0;
    this.u32s.length = 0;
    this.last = 0;
    this.setRegions(regions);
  }

  private setRegions(regions: readonly RegionSpec[]): void {
    const sorted = [...regions].sort((a, b) => a.guestBase - b.guestBase);
    for (const r of sorted) {
      const size = r.bytes.length;
      if (!Number.isSafeInteger(r.guestBase) || r.guestBase < 0 || size === 0) {
        throw new MemoryError('bad region', r.guestBase, size, ErrorCode.MEMORY_BAD_REGION);
      }
      if (!Number.isSafeInteger(r.guestBase + size)) {
        throw new MemoryError('region end overflows', r.guestBase, size, ErrorCode.MEMORY_BAD_REGION);
      }
      const prevEnd = this.ends[this.ends.length - 1];
      if (prevEnd !== undefined && r.guestBase < prevEnd) {
        throw new MemoryError('regions overlap', r.guestBase, size, ErrorCode.MEMORY_BAD_REGION);
      }
      this.bases.push(r.guestBase);
      this.ends.push(r.guestBase + size);
      this.u8s.push(r.bytes);
      this.dvs.push(new DataView(r.bytes.buffer, r.bytes.byteOffset, size));
      // Atomic views need the region aligned in its buffer; mmapped and allocated buffers are.
      const aligned = HOST_LITTLE_ENDIAN && r.bytes.byteOffset % 4 === 0;
      this.u16s.push(aligned ? new Uint16Array(r.bytes.buffer, r.bytes.byteOffset, size >>> 1) : null);
      this.u32s.push(aligned ? new Uint32Array(r.bytes.buffer, r.bytes.byteOffset, size >>> 2) : null);
    }
  }

  /** One region of `size` bytes at guest address `base`, optionally over a SharedArrayBuffer. */
  static allocate(size: number, opts: { base?: number; shared?: boolean } = {}): GuestMemory {
    const buf = opts.shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size);
    return new GuestMemory([{ guestBase: opts.base ?? 0, bytes: new Uint8Array(buf) }]);
  }

  /** Number of regions. */
  get regionCount(): number {
    return this.bases.length;
  }

  /** The regions as given (sorted by guest address); for handing memory to another thread. */
  regionSpecs(): RegionSpec[] {
    return this.bases.map((guestBase, i) => ({ guestBase, bytes: this.u8s[i]! }));
  }

  /**
   * Index of the region holding all of [addr, addr + len), or -1 when the range is unmapped,
   * crosses a region boundary, or is not made of non-negative safe integers.
   */
  locate(addr: number, len: number): number {
    if (!(addr >= 0 && len >= 0) || !Number.isSafeInteger(addr + len) || !Number.isInteger(addr) || !Number.isInteger(len)) {
      return -1;
    }
    const end = addr + len;
    let i = this.last;
    const b = this.bases[i];
    if (b !== undefined && addr >= b && end <= this.ends[i]!) return i;
    // Few regions in practice (1 to 8 for QEMU, up to 509 with memory slots): binary search.
    let lo = 0;
    let hi = this.bases.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (addr < this.bases[mid]!) hi = mid - 1;
      else if (addr >= this.ends[mid]! && !(addr === this.ends[mid] && len === 0)) lo = mid + 1;
      else {
        i = mid;
        if (end > this.ends[i]!) return -1;
        this.last = i;
        return i;
      }
    }
    return -1;
  }

  /**
   * Points region `region` at new bytes of the same length holding the same guest RAM: for a
   * host whose RAM buffer is replaced under it (a WebAssembly memory that grew detaches its old
   * ArrayBuffer). Holders of this GuestMemory see the new bytes at once; views they cached from
   * `bytesOf`/`dataViewOf`/`u16Of`/`u32Of` (ring layouts) must be rebuilt by them.
   */
  rebindRegion(region: number, bytes: Uint8Array): void {
    const old = this.u8s[region];
    if (old === undefined || bytes.length !== this.ends[region]! - this.bases[region]!) {
      throw new MemoryError('rebind must keep the region size', this.bases[region] ?? 0, bytes.length, ErrorCode.MEMORY_BAD_REGION);
    }
    const size = bytes.length;
    this.u8s[region] = bytes;
    this.dvs[region] = new DataView(bytes.buffer, bytes.byteOffset, size);
    const aligned = HOST_LITTLE_ENDIAN && bytes.byteOffset % 4 === 0;
    this.u16s[region] = aligned ? new Uint16Array(bytes.buffer, bytes.byteOffset, size >>> 1) : null;
    this.u32s[region] = aligned ? new Uint32Array(bytes.buffer, bytes.byteOffset, size >>> 2) : null;
  }

  /** Whether [addr, addr + len) lies inside one region. */
  isMapped(addr: number, len: number): boolean {
    return this.locate(addr, len) >= 0;
  }

  /**
   * The bytes of region `region` (an index from `locate`), for ring code that copies without a view
   * per access.
   */
  bytesOf(region: number): Uint8Array {
    return this.u8s[region]!;
  }

  /** The guest address where region `region` starts. */
  baseOf(region: number): number {
    return this.bases[region]!;
  }

  private check(addr: number, len: number): number {
    const r = this.locate(addr, len);
    if (r < 0) throw new MemoryError(`guest range 0x${addr.toString(16)}+${len} is not mapped`, addr, len);
    return r;
  }

  /** A zero-copy view of [addr, addr + len). Allocates the view: not for per-descriptor paths. */
  slice(addr: number, len: number): Uint8Array {
    const r = this.check(addr, len);
    const off = addr - this.bases[r]!;
    return this.u8s[r]!.subarray(off, off + len);
  }

  /** Copies guest bytes into `dst` (all of it, or `len` bytes at `dstOff`). */
  read(addr: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): void {
    const r = this.check(addr, len);
    const off = addr - this.bases[r]!;
    const src = this.u8s[r]!;
    if (len <= 16) for (let k = 0; k < len; k++) dst[dstOff + k] = src[off + k]!;
    else dst.set(src.subarray(off, off + len), dstOff);
  }

  /** Copies `src` (or `len` bytes of it from `srcOff`) into guest memory. */
  write(addr: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): void {
    const r = this.check(addr, len);
    const off = addr - this.bases[r]!;
    const dst = this.u8s[r]!;
    if (len <= 16) for (let k = 0; k < len; k++) dst[off + k] = src[srcOff + k]!;
    else dst.set(src.subarray(srcOff, srcOff + len), off);
  }

  /**
   * Sets [addr, addr + len) to `value` (0 by default); throws MemoryError when the range is not
   * inside one region.
   */
  fill(addr: number, len: number, value = 0): void {
    const r = this.check(addr, len);
    const off = addr - this.bases[r]!;
    this.u8s[r]!.fill(value, off, off + len);
  }

  /** Reads one byte; throws MemoryError when unmapped. */
  readU8(addr: number): number {
    const r = this.check(addr, 1);
    return this.u8s[r]![addr - this.bases[r]!]!;
  }
  /** Writes one byte; throws MemoryError when unmapped. */
  writeU8(addr: number, v: number): void {
    const r = this.check(addr, 1);
    this.u8s[r]![addr - this.bases[r]!] = v;
  }
  /**
   * Reads a u16, little-endian unless `le` is false (a legacy big-endian guest); no ordering (see
   * loadU16Acquire).
   */
  readU16(addr: number, le = true): number {
    const r = this.check(addr, 2);
    return this.dvs[r]!.getUint16(addr - this.bases[r]!, le);
  }
  /** Writes a u16 (little-endian unless `le` is false); no ordering (see storeU16Release). */
  writeU16(addr: number, v: number, le = true): void {
    const r = this.check(addr, 2);
    this.dvs[r]!.setUint16(addr - this.bases[r]!, v, le);
  }
  /** Reads a u32 (little-endian unless `le` is false). */
  readU32(addr: number, le = true): number {
    const r = this.check(addr, 4);
    return this.dvs[r]!.getUint32(addr - this.bases[r]!, le);
  }
  /** Writes a u32 (little-endian unless `le` is false). */
  writeU32(addr: number, v: number, le = true): void {
    const r = this.check(addr, 4);
    this.dvs[r]!.setUint32(addr - this.bases[r]!, v >>> 0, le);
  }
  /** Reads a u64 as a BigInt (not for hot paths: readAddr reads an address without BigInt). */
  readU64(addr: number, le = true): bigint {
    const r = this.check(addr, 8);
    return this.dvs[r]!.getBigUint64(addr - this.bases[r]!, le);
  }
  /** Writes a u64 given as a BigInt (truncated to 64 bits). */
  writeU64(addr: number, v: bigint, le = true): void {
    const r = this.check(addr, 8);
    this.dvs[r]!.setBigUint64(addr - this.bases[r]!, BigInt.asUintN(64, v), le);
  }
  /**
   * A u64 guest address as a number without BigInt: -1 when it exceeds 2^53 (no region can be
   * there, so callers treat it as unmapped).
   */
  readAddr(addr: number, le = true): number {
    const r = this.check(addr, 8);
    const dv = this.dvs[r]!;
    const off = addr - this.bases[r]!;
    const lo = dv.getUint32(le ? off : off + 4, le);
    const hi = dv.getUint32(le ? off + 4 : off, le);
    return hi >= 0x20_0000 ? -1 : hi * U32 + lo;
  }
  /** Writes a guest address (a number below 2^53) as a u64 without BigInt. */
  writeAddr(addr: number, v: number, le = true): void {
    const r = this.check(addr, 8);
    const dv = this.dvs[r]!;
    const off = addr - this.bases[r]!;
    dv.setUint32(le ? off : off + 4, v >>> 0, le);
    dv.setUint32(le ? off + 4 : off, Math.floor(v / U32), le);
  }

  /** Acquire load of a 16-bit ring index (2.7.13.3.1: read idx before the entries it covers). */
  loadU16Acquire(addr: number, le = true): number {
    const r = this.check(addr, 2);
    const off = addr - this.bases[r]!;
    const a = this.u16s[r];
    if (a && (off & 1) === 0) {
      const v = Atomics.load(a, off >>> 1);
      return le ? v : ((v & 0xff) << 8) | (v >>> 8);
    }
    GuestMemory.fence();
    return this.dvs[r]!.getUint16(off, le);
  }

  /** Release store of a 16-bit ring index (2.7.8.2: entries are visible before idx moves). */
  storeU16Release(addr: number, v: number, le = true): void {
    const r = this.check(addr, 2);
    const off = addr - this.bases[r]!;
    const a = this.u16s[r];
    if (a && (off & 1) === 0) {
      Atomics.store(a, off >>> 1, le ? v : ((v & 0xff) << 8) | ((v >>> 8) & 0xff));
      return;
    }
    GuestMemory.fence();
    this.dvs[r]!.setUint16(off, v, le);
  }

  /** Acquire/release 32-bit forms, for packed ring id+flags pairs and event structures. */
  loadU32Acquire(addr: number, le = true): number {
    const r = this.check(addr, 4);
    const off = addr - this.bases[r]!;
    const a = this.u32s[r];
    if (a && (off & 3) === 0 && le) return Atomics.load(a, off >>> 2);
    GuestMemory.fence();
    return this.dvs[r]!.getUint32(off, le);
  }
  /**
   * Release store of a u32: everything written before it is visible before it (packed ring flags,
   * event structures).
   */
  storeU32Release(addr: number, v: number, le = true): void {
    const r = this.check(addr, 4);
    const off = addr - this.bases[r]!;
    const a = this.u32s[r];
    if (a && (off & 3) === 0 && le) {
      Atomics.store(a, off >>> 2, v >>> 0);
      return;
    }
    GuestMemory.fence();
    this.dvs[r]!.setUint32(off, v >>> 0, le);
  }

  /** Full memory barrier (the mb() around event suppression in 2.7.10 / 2.8.10). */
  static fence(): void {
    Atomics.add(GuestMemory.fenceCell, 0, 0);
  }
  /** Full memory barrier; the same as the static GuestMemory.fence(). */
  fence(): void {
    Atomics.add(GuestMemory.fenceCell, 0, 0);
  }

  /** Atomic views of a region for ring code that caches them; null when unaligned. */
  u16Of(region: number): Uint16Array | null {
    return this.u16s[region] ?? null;
  }
  /**
   * A Uint32Array over region `region` for atomic 32-bit accesses, or null when the region is not
   * 4-byte aligned (or the host is big-endian).
   */
  u32Of(region: number): Uint32Array | null {
    return this.u32s[region] ?? null;
  }
  /** A DataView over region `region`, for ring code that caches it. */
  dataViewOf(region: number): DataView {
    return this.dvs[region]!;
  }

  // ---- pins: keeping the backing mapped while work outside the event loop uses it ----------

  /**
   * Holds this memory's backing (the mappings its regions view) until `unpin`, even when its
   * owner replaces it meanwhile (vhost-user SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG, the end of
   * the session): the owner unmaps a retired memory only once no pin holds it. A device that
   * hands views of guest memory to work that runs off the event loop (a file read into a guest
   * buffer on libuv's thread pool) pins the memory its chain was popped from (`chain.memory`)
   * before it starts and unpins when that work ended, so the work never writes into unmapped
   * pages, nor into whatever the address space maps there next. Returns false (and pins
   * nothing) when the backing is already gone: the work must not start. Two counter updates,
   * no allocation. See docs/vhost-user-memory-changes.md.
   */
  pin(): boolean {
    if (this.isReleased) return false;
    this.pins++;
    return true;
  }

  /** Gives back one `pin`; the last one of a retired memory releases its backing. */
  unpin(): void {
    if (this.pins <= 0) throw new MemoryError('unpin without a pin', 0, 0, ErrorCode.MEMORY_BAD_REGION);
    if (--this.pins === 0 && this.onReleased !== null) this.release();
  }

  /** Pins held now. */
  get pinCount(): number {
    return this.pins;
  }

  /** Whether the owner retired this memory and its backing was released (pins fail then). */
  get released(): boolean {
    return this.isReleased;
  }

  /**
   * For the owner of the backing: this memory is no longer the current one. `release` (which
   * unmaps what only this memory used) runs once no pin holds it: now when none does. Retiring
   * twice keeps the first `release`.
   */
  retire(release: () => void): void {
    if (this.isReleased || this.onReleased !== null) return;
    this.onReleased = release;
    if (this.pins === 0) this.release();
  }

  private release(): void {
    const f = this.onReleased!;
    this.onReleased = null;
    this.isReleased = true;
    f();
  }
}
