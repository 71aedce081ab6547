/**
 * Guest memory of a vhost-user session: the regions of SET_MEM_TABLE / ADD_MEM_REG, each
 * mmapped from its fd, seen as one GuestMemory over guest physical addresses, plus the
 * translation of the front-end's user addresses (SET_VRING_ADDR) to guest addresses
 * ("Memory access").
 *
 * QEMU-NOTES: map `size + mmap_offset` from offset 0 and index from `mmap_offset` (microvm
 * sends two regions of one memfd, the second at a non-zero offset). An external ArrayBuffer is
 * capped at 4 GiB on Node 20, so larger mappings are made in chunks, each its own GuestMemory
 * region (a buffer straddling a chunk boundary is then refused, like any unmapped range).
 *
 * Every change (a new table, a region added or removed, the end of the session) makes a new
 * GuestMemory and retires the previous one; a retired GuestMemory's mappings are unmapped only
 * once no pin holds it (GuestMemory.pin: buffers popped and not yet used, device work off the
 * event loop), and only those no newer GuestMemory uses. So a late completion never writes to
 * unmapped memory (docs/vhost-user-memory-changes.md).
 */
import { GuestMemory, type RegionSpec } from '../memory/guest-memory.js';
import type { Mapping, Platform } from '../platform/types.js';
import { VhostUserError, VhostUserFault } from './codec.js';
import type { MemRegion } from './messages.js';
import { ErrorCode, VirtioError } from '../errors.js';

/** Default chunk for mappings: 1 GiB (page-aligned, well under the 4 GiB buffer cap). */
export const DEFAULT_MAP_CHUNK = 1 << 30;

interface MappedRegion {
  readonly desc: MemRegion;
  readonly mappings: Mapping[];
  readonly specs: RegionSpec[];
  /** ADD_MEM_REG of this very region so far, less its REM_MEM_REGs (see `add`). */
  refs: number;
  /** GuestMemory generations (the current one, retired ones still pinned) that view this region. */
  users: number;
}

/**
 * Retired GuestMemory generations still held by pins at most: past it a memory change is
 * refused (BAD_STATE), so a front-end that changes the table again and again while a request
 * stalls cannot pile up mappings without bound. The previous table stays working.
 */
export const MAX_RETIRED_TABLES = 16;

function sameRegion(a: MemRegion, b: MemRegion): boolean {
  return a.guestAddr === b.guestAddr && a.size === b.size && a.userAddr === b.userAddr;
}

export class VhostMemoryMap {
  private regions: MappedRegion[] = [];
  private mem: GuestMemory | null = null;
  /** Changes on every table change, so holders of queues know to rebuild them. */
  generation = 0;
  /** Retired generations whose mappings are still held by pins. */
  private retiredHeld = 0;
  /** Mappings made and not yet unmapped, retired ones included. */
  private liveMappings = 0;

  constructor(
    private readonly platform: Platform,
    private readonly chunk = DEFAULT_MAP_CHUNK,
  ) {
    if (chunk <= 0 || chunk % 4096 !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'map chunk must be a positive multiple of 4096');
  }

  get memory(): GuestMemory | null {
    return this.mem;
  }

  get count(): number {
    return this.regions.length;
  }

  /** Retired memory tables still mapped because pins hold them. */
  get retiredPending(): number {
    return this.retiredHeld;
  }

  /** Mappings alive (the current table's and the retired ones still held). */
  get mappingCount(): number {
    return this.liveMappings;
  }

  descriptors(): MemRegion[] {
    return this.regions.map((r) => r.desc);
  }

  /** Checks a region against itself and against `others` (sizes, overflow, overlaps). */
  static validate(req: number, r: MemRegion, others: readonly MemRegion[]): void {
    if (r.size === 0) throw new VhostUserError(VhostUserFault.BAD_VALUE, 'region of size 0', req);
    if (!Number.isSafeInteger(r.guestAddr + r.size) || !Number.isSafeInteger(r.userAddr + r.size) || !Number.isSafeInteger(r.mmapOffset + r.size)) {
      throw new VhostUserError(VhostUserFault.BAD_VALUE, 'region end overflows', req);
    }
    for (const o of others) {
      if (r.guestAddr < o.guestAddr + o.size && o.guestAddr < r.guestAddr + r.size) {
        throw new VhostUserError(VhostUserFault.OVERLAP, `guest range 0x${r.guestAddr.toString(16)}+0x${r.size.toString(16)} overlaps 0x${o.guestAddr.toString(16)}`, req);
      }
      if (r.userAddr < o.userAddr + o.size && o.userAddr < r.userAddr + r.size) {
        throw new VhostUserError(VhostUserFault.OVERLAP, `user range 0x${r.userAddr.toString(16)} overlaps 0x${o.userAddr.toString(16)}`, req);
      }
    }
  }

  /**
   * Replaces the whole table (SET_MEM_TABLE). Takes ownership of `fds` (one per region, in
   * order) and closes them once mapped, or on failure; on failure the old table stays.
   */
  setTable(req: number, descs: readonly MemRegion[], fds: readonly number[]): void {
    const built: MappedRegion[] = [];
    try {
      for (let i = 0; i < descs.length; i++) {
        VhostMemoryMap.validate(req, descs[i]!, descs.slice(0, i));
      }
      this.checkRetiredBound(req);
      for (let i = 0; i < descs.length; i++) built.push(this.mapRegion(req, descs[i]!, fds[i]!));
      const mem = this.build(built);
      this.replace(built, mem);
    } catch (e) {
      for (const r of built) this.unmapRegion(r);
      throw e;
    } finally {
      for (const fd of fds) this.platform.close(fd);
    }
  }

  /**
   * ADD_MEM_REG: takes ownership of `fd`. Returns false when the region was already there:
   * QEMU 7.2 gives every vhost device of a back-end its own memory listener, so a
   * multiqueue vhost-user-net (one vhost device per queue pair, one socket) adds each region
   * once per pair. The same region again is counted, not refused as an overlap, and is
   * unmapped at its last REM_MEM_REG.
   */
  add(req: number, desc: MemRegion, fd: number, maxSlots: number): boolean {
    let r: MappedRegion | null = null;
    try {
      const same = this.regions.find((x) => sameRegion(x.desc, desc));
      if (same) {
        same.refs++;
        return false;
      }
      if (this.regions.length >= maxSlots) throw new VhostUserError(VhostUserFault.BAD_VALUE, `all ${maxSlots} memory slots in use`, req);
      VhostMemoryMap.validate(req, desc, this.descriptors());
      this.checkRetiredBound(req);
      r = this.mapRegion(req, desc, fd);
      const all = [...this.regions, r];
      this.replace(all, this.build(all));
      return true;
    } catch (e) {
      if (r) this.unmapRegion(r);
      throw e;
    } finally {
      this.platform.close(fd);
    }
  }

  /**
   * REM_MEM_REG: the region with this guest address and size (user address must match too).
   * Returns false when an earlier duplicate ADD_MEM_REG still holds it (see `add`).
   */
  remove(req: number, desc: MemRegion): boolean {
    const i = this.regions.findIndex((r) => sameRegion(r.desc, desc));
    if (i < 0) throw new VhostUserError(VhostUserFault.BAD_VALUE, `no region at 0x${desc.guestAddr.toString(16)}`, req);
    if (this.regions[i]!.refs <= 1) this.checkRetiredBound(req);
    if (--this.regions[i]!.refs > 0) return false;
    const rest = this.regions.filter((_, k) => k !== i);
    // The removed region is unmapped when the memory that still views it is released.
    this.replace(rest, rest.length > 0 ? this.build(rest) : null);
    return true;
  }

  /** REM_MEM_REG would unmap this region now (no duplicate ADD_MEM_REG holds it). */
  lastReference(desc: MemRegion): boolean {
    const r = this.regions.find((x) => sameRegion(x.desc, desc));
    return r !== undefined && r.refs <= 1;
  }

  /** Front-end user address -> guest physical address of [ua, ua + len), or -1. */
  userToGuest(ua: number, len: number): number {
    for (const r of this.regions) {
      const d = r.desc;
      if (ua >= d.userAddr && ua + len <= d.userAddr + d.size) return d.guestAddr + (ua - d.userAddr);
    }
    return -1;
  }

  /**
   * Unmaps every region (reset, disconnect): at once, or, for memory a pin still holds (a
   * device's work in flight), when the last pin goes.
   */
  clear(): void {
    this.replace([], null);
  }

  /** Refuses a change while MAX_RETIRED_TABLES retired tables are still held. */
  private checkRetiredBound(req: number): void {
    if (this.retiredHeld >= MAX_RETIRED_TABLES) {
      throw new VhostUserError(VhostUserFault.BAD_STATE, `${this.retiredHeld} earlier memory tables are still held by requests in flight (refused; the current one stays)`, req);
    }
  }

  /**
   * `regions` viewed by `mem` become current; the previous GuestMemory is retired: the regions
   * only it viewed are unmapped once no pin holds it (at once when none does).
   */
  private replace(regions: MappedRegion[], mem: GuestMemory | null): void {
    for (const r of regions) r.users++;
    const oldRegions = this.regions;
    const oldMem = this.mem;
    this.regions = regions;
    this.mem = mem;
    this.generation++;
    const drop = (): void => {
      for (const r of oldRegions) if (--r.users === 0) this.unmapRegion(r);
    };
    if (oldMem === null) {
      drop();
      return;
    }
    if (oldMem.pinCount === 0) {
      oldMem.retire(drop);
      return;
    }
    this.retiredHeld++;
    oldMem.retire(() => {
      this.retiredHeld--;
      drop();
    });
  }

  private unmapRegion(r: MappedRegion): void {
    for (const m of r.mappings) {
      m.unmap();
      this.liveMappings--;
    }
    r.mappings.length = 0;
  }

  private build(regions: readonly MappedRegion[]): GuestMemory {
    try {
      return new GuestMemory(regions.flatMap((r) => r.specs));
    } catch (e) {
      throw new VhostUserError(VhostUserFault.OVERLAP, (e as Error).message, -1, { cause: e });
    }
  }

  private mapRegion(req: number, d: MemRegion, fd: number): MappedRegion {
    if (fd === undefined || fd < 0) throw new VhostUserError(VhostUserFault.MISSING_FD, 'region without fd', req);
    const total = d.mmapOffset + d.size;
    const mappings: Mapping[] = [];
    const specs: RegionSpec[] = [];
    try {
      if (total <= this.chunk) {
        const m = this.platform.mmap(fd, 0, total);
        mappings.push(m);
        specs.push({ guestBase: d.guestAddr, bytes: m.bytes.subarray(d.mmapOffset, total) });
      } else {
        for (let off = Math.floor(d.mmapOffset / this.chunk) * this.chunk; off < total; off += this.chunk) {
          const len = Math.min(this.chunk, total - off);
          const m = this.platform.mmap(fd, off, len);
          mappings.push(m);
          const start = Math.max(off, d.mmapOffset);
          specs.push({ guestBase: d.guestAddr + (start - d.mmapOffset), bytes: m.bytes.subarray(start - off, len) });
        }
      }
    } catch (e) {
      for (const m of mappings) m.unmap();
      if (e instanceof VhostUserError) throw e;
      throw new VhostUserError(VhostUserFault.MAP_FAILED, `mmap of ${total} bytes failed: ${(e as Error).message}`, req, { cause: e });
    }
    this.liveMappings += mappings.length;
    return { desc: d, mappings, specs, refs: 1, users: 0 };
  }
}
