/**
 * The zones of a zoned block device (5.2.6, VIRTIO_BLK_F_ZONED): each zone's type, state and
 * write pointer, the open and active zone counters against max_open_zones / max_active_zones,
 * and every state transition of the spec's zone state machine. Pure bookkeeping over typed
 * arrays (no allocation per request): BlkRequestHandler asks it whether a request may go ahead,
 * and it answers with a virtio-blk status.
 *
 * Resources (5.2.6): IOPEN and EOPEN zones hold an open resource; IOPEN, EOPEN and CLOSED hold
 * an active resource. A transition that needs an open resource while the open zones are at the
 * limit first closes an implicitly open zone (the transition the spec allows the device,
 * device/blk/45); if there is none, or the active limit is reached, the request fails with
 * ZONE_OPEN_RESOURCE / ZONE_ACTIVE_RESOURCE (ACTIVE when both would be exceeded).
 *
 * Unwritten data: the sectors between a zone's write pointer (or, for a full zone, where the
 * data ended) and the zone's end read as zeros (device/blk/48, the preferred approach): the
 * model keeps how far each zone holds data (`dataEnd`) so reads are masked, whatever the
 * backing store holds there.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { BlkStatus, BlkZonedModel } from '../../spec/blk.js';
import { BlkZoneDescriptor, BlkZoneState, BlkZoneType } from '../../spec/blk-zoned.js';

/**
 * The zoned model a BlkDevice emulates (its `zoned` option): the zoned characteristics it
 * offers with VIRTIO_BLK_F_ZONED (5.2.4) and the zone layout. Sizes in 512-byte sectors.
 */
export interface ZonedOptions {
  /** VIRTIO_BLK_Z_HM (host-managed, SWR zones) or VIRTIO_BLK_Z_HA (host-aware, SWP zones). */
  readonly model: typeof BlkZonedModel.HM | typeof BlkZonedModel.HA;
  /** zone_sectors: the size of every zone but maybe the last, in 512-byte sectors. */
  readonly zoneSectors: number;
  /** z_cap of each zone (at most zoneSectors); zoneSectors by default. */
  readonly zoneCapacitySectors?: number;
  /** Zones at the start of the device that are conventional (no write pointer). Default 0. */
  readonly conventionalZones?: number;
  /** max_open_zones (0: no limit). Default 0. */
  readonly maxOpenZones?: number;
  /** max_active_zones (0: no limit). Default 0. */
  readonly maxActiveZones?: number;
  /** max_append_sectors (0: ZONE_APPEND not supported). Default zoneSectors, capped by the chain limit. */
  readonly maxAppendSectors?: number;
  /** write_granularity in bytes: offset and size alignment of writes to sequential zones. Default 512. */
  readonly writeGranularity?: number;
}

const U32 = 0x1_0000_0000;
/** Zones a device may have: the per-zone state is 18 bytes, so this bounds it to about 19 MB. */
const MAX_ZONES = 1 << 20;

/**
 * The zones of a zoned BlkDevice (its `zoned` property): the state machine, limits and write
 * pointers of 5.2.6. Hosts read it to see zone conditions and may `fail` zones to simulate media
 * errors; requests change it through the device.
 */
export class ZonedModel {
  /** zoned.model: BlkZonedModel.HM or HA. */
  readonly model: number;
  /** zone_sectors: sectors in every zone but maybe the last. */
  readonly zoneSectors: number;
  /** The writable sectors of a full-size zone (z_cap). */
  readonly zoneCapacity: number;
  /** max_open_zones (0: no limit). */
  readonly maxOpen: number;
  /** max_active_zones (0: no limit). */
  readonly maxActive: number;
  /** max_append_sectors (0: ZONE_APPEND not supported). */
  readonly maxAppendSectors: number;
  /** write_granularity in bytes. */
  readonly writeGranularity: number;
  /** Zones on the device, the last one maybe smaller (device/blk/10). */
  readonly zoneCount: number;
  /** The device's capacity in sectors. */
  readonly capacity: number;
  /** Zones holding an open resource now (IOPEN and EOPEN). */
  openCount = 0;
  /** Zones holding an active resource now (IOPEN, EOPEN and CLOSED). */
  activeCount = 0;

  private readonly type: Uint8Array;
  private readonly state: Uint8Array;
  /** Write pointer per zone, in sectors (valid in EMPTY, IOPEN, EOPEN, CLOSED). */
  private readonly wp: Float64Array;
  /** First sector past the zone's written data: reads from there to the zone's end are zeros. */
  private readonly dataEnd: Float64Array;
  /** Granularity in sectors (writes and appends to sequential zones). */
  private readonly granSectors: number;

  constructor(capacitySectors: number, o: ZonedOptions) {
    const zs = o.zoneSectors;
    if (o.model !== BlkZonedModel.HM && o.model !== BlkZonedModel.HA) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `zoned model ${String(o.model)} is not HM (1) or HA (2)`);
    if (!Number.isInteger(zs) || zs < 1 || zs >= U32) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `zoneSectors ${zs} not in 1..2^32-1`);
    if (!Number.isInteger(capacitySectors) || capacitySectors < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'a zoned device needs a capacity of at least one sector');
    const cap = o.zoneCapacitySectors ?? zs;
    if (!Number.isInteger(cap) || cap < 1 || cap > zs) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `zoneCapacitySectors ${cap} not in 1..zoneSectors`);
    const gran = o.writeGranularity ?? 512;
    if (!Number.isInteger(gran) || gran < 512 || gran % 512 !== 0 || gran >= U32) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `writeGranularity ${gran} is not a multiple of 512`);
    this.granSectors = gran / 512;
    if (zs % this.granSectors !== 0 || cap % this.granSectors !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'zone size and capacity must be multiples of the write granularity');
    const lim = (name: string, v: number | undefined): number => {
      const x = v ?? 0;
      if (!Number.isInteger(x) || x < 0 || x >= U32) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${name} ${x} not in 0..2^32-1`);
      return x;
    };
    this.model = o.model;
    this.zoneSectors = zs;
    this.zoneCapacity = cap;
    this.writeGranularity = gran;
    this.maxOpen = lim('maxOpenZones', o.maxOpenZones);
    this.maxActive = lim('maxActiveZones', o.maxActiveZones);
    this.maxAppendSectors = lim('maxAppendSectors', o.maxAppendSectors ?? zs);
    if (this.maxActive !== 0 && this.maxOpen > this.maxActive) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'maxOpenZones cannot exceed maxActiveZones');
    this.capacity = capacitySectors;
    // device/blk/10: nr_zones = (capacity + zone_sectors - 1) / zone_sectors.
    this.zoneCount = Math.ceil(capacitySectors / zs);
    const conv = o.conventionalZones ?? 0;
    if (!Number.isInteger(conv) || conv < 0 || conv > this.zoneCount) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `conventionalZones ${conv} not in 0..${this.zoneCount}`);
    if (this.zoneCount > MAX_ZONES) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${this.zoneCount} zones: too many (at most ${MAX_ZONES})`);
    this.type = new Uint8Array(this.zoneCount);
    this.state = new Uint8Array(this.zoneCount);
    this.wp = new Float64Array(this.zoneCount);
    this.dataEnd = new Float64Array(this.zoneCount);
    const seq = o.model === BlkZonedModel.HM ? BlkZoneType.SWR : BlkZoneType.SWP;
    for (let z = 0; z < this.zoneCount; z++) {
      this.type[z] = z < conv ? BlkZoneType.CONV : seq;
    }
    this.resetState();
  }

  /** Every sequential zone empty, counters zero: the state after a device reset of a fresh device. */
  private resetState(): void {
    for (let z = 0; z < this.zoneCount; z++) {
      const start = z * this.zoneSectors;
      this.wp[z] = start;
      if (this.type[z] === BlkZoneType.CONV) {
        this.state[z] = BlkZoneState.NOT_WP;
        this.dataEnd[z] = start + this.zoneLength(z);
      } else {
        this.state[z] = BlkZoneState.EMPTY;
        this.dataEnd[z] = start;
      }
    }
    this.openCount = 0;
    this.activeCount = 0;
  }

  /** The index of the zone holding `sector`. */
  zoneOf(sector: number): number {
    return Math.floor(sector / this.zoneSectors);
  }

  /** Zone z's first sector (its zone sector address). */
  zoneStart(z: number): number {
    return z * this.zoneSectors;
  }

  /** Sectors in zone z (the last one may be smaller, device/blk/9). */
  zoneLength(z: number): number {
    return Math.min(this.zoneSectors, this.capacity - z * this.zoneSectors);
  }

  /** z_cap of zone z: the writable sectors from its start. */
  zoneCap(z: number): number {
    return Math.min(this.zoneCapacity, this.zoneLength(z));
  }

  /** Zone z's type (BlkZoneType). */
  zoneType(z: number): number {
    return this.type[z]!;
  }

  /** Zone z's condition (BlkZoneState). */
  zoneState(z: number): number {
    return this.state[z]!;
  }

  /** Zone z's write pointer in sectors (meaningful in EMPTY, IOPEN, EOPEN and CLOSED). */
  writePointer(z: number): number {
    return this.wp[z]!;
  }

  /**
   * Marks a zone read-only or offline, as a device does on a media failure (5.2.6: from any
   * state; offline zones never leave it). For hosts that simulate failures.
   */
  fail(z: number, to: typeof BlkZoneState.RDONLY | typeof BlkZoneState.OFFLINE): void {
    if (z < 0 || z >= this.zoneCount || this.type[z] === BlkZoneType.CONV) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `zone ${z} is not a sequential zone`);
    if (this.state[z] === BlkZoneState.OFFLINE) return;
    this.leave(z);
    this.state[z] = to;
  }

  // ---- reads ----

  /** Status for a read of `n` sectors at `sector` (range already checked against capacity). */
  checkRead(sector: number, n: number): number {
    const z = this.zoneOf(sector);
    const last = n === 0 ? z : this.zoneOf(sector + n - 1);
    for (let i = z; i <= last; i++) {
      if (this.state[i] === BlkZoneState.OFFLINE) return BlkStatus.ZONE_INVALID_CMD; // device/blk/47
    }
    // device/blk/43: a read of an SWR zone stays in that zone.
    if (last !== z && (this.type[z] === BlkZoneType.SWR || this.type[last] === BlkZoneType.SWR)) return BlkStatus.ZONE_INVALID_CMD;
    return BlkStatus.OK;
  }

  /**
   * Calls `zero(byteOffset, byteLength)` for each part of a read of `n` sectors at `sector` that
   * lies past a zone's written data (offsets relative to the start of the read).
   */
  unwritten(sector: number, n: number, zero: (offset: number, length: number) => void): void {
    const end = sector + n;
    for (let z = this.zoneOf(sector); z < this.zoneCount && this.zoneStart(z) < end; z++) {
      const from = Math.max(this.dataEnd[z]!, sector);
      const to = Math.min(this.zoneStart(z) + this.zoneLength(z), end);
      if (to > from) zero((from - sector) * 512, (to - from) * 512);
    }
  }

  // ---- writes ----

  /**
   * Checks a write (OUT, or APPEND when `append`) of `n` sectors at `sector` and, when it may go
   * ahead, moves the zone's write pointer and state as if it succeeded (so requests queued behind
   * it see the new write pointer). Returns a status; for an append, `appendSectorOut[0]` gets
   * where the data goes.
   */
  startWrite(sector: number, n: number, append: boolean, appendSectorOut: Float64Array): number {
    const z = this.zoneOf(sector);
    const type = this.type[z]!;
    const st = this.state[z]!;
    if (st === BlkZoneState.OFFLINE || st === BlkZoneState.RDONLY) return BlkStatus.ZONE_INVALID_CMD; // device/blk/46, /47
    if (append) {
      // device/blk/32, device/blk/39: an SWR zone, addressed by its first sector.
      if (type !== BlkZoneType.SWR || sector !== this.zoneStart(z)) return BlkStatus.ZONE_INVALID_CMD;
      // device/blk/42: beyond max_append_sectors.
      if (n > this.maxAppendSectors) return this.maxAppendSectors === 0 ? BlkStatus.UNSUPP : BlkStatus.ZONE_INVALID_CMD;
    }
    if (type === BlkZoneType.CONV) {
      // A conventional zone is a regular device, but a write must not run into a sequential one.
      const lastZ = this.zoneOf(sector + Math.max(n, 1) - 1);
      for (let i = z + 1; i <= lastZ; i++) if (this.type[i] !== BlkZoneType.CONV) return BlkStatus.ZONE_INVALID_CMD;
      return BlkStatus.OK;
    }
    const start = this.zoneStart(z);
    const at = append ? this.wp[z]! : sector;
    // device/blk/43: the range stays in one zone.
    if (n > 0 && this.zoneOf(at + n - 1) !== z) return BlkStatus.ZONE_INVALID_CMD;
    if (st === BlkZoneState.FULL) return BlkStatus.ZONE_INVALID_CMD; // no writable capacity left
    if (type === BlkZoneType.SWR) {
      if (!append && sector !== this.wp[z]) return BlkStatus.ZONE_UNALIGNED_WP; // device/blk/44
      if ((at + n) % this.granSectors !== 0 || n % this.granSectors !== 0) return append ? BlkStatus.ZONE_INVALID_CMD : BlkStatus.ZONE_UNALIGNED_WP;
    }
    // device/blk/40: past the zone's writable capacity.
    if (at + n > start + this.zoneCap(z)) return BlkStatus.ZONE_INVALID_CMD;
    if (n === 0) {
      appendSectorOut[0] = at;
      return BlkStatus.OK;
    }
    // EMPTY / CLOSED -> IOPEN before writing (device/blk/38).
    if (st === BlkZoneState.EMPTY || st === BlkZoneState.CLOSED) {
      const r = this.acquire(z, st === BlkZoneState.EMPTY);
      if (r !== BlkStatus.OK) return r;
      this.state[z] = BlkZoneState.IOPEN;
    }
    const end = at + n;
    if (end > this.wp[z]!) this.wp[z] = end;
    if (end > this.dataEnd[z]!) this.dataEnd[z] = end;
    if (this.wp[z]! >= start + this.zoneCap(z)) {
      // Reached the writable capacity: FULL.
      this.leave(z);
      this.state[z] = BlkZoneState.FULL;
    }
    appendSectorOut[0] = at;
    return BlkStatus.OK;
  }

  // ---- zone management (ZONE_OPEN, CLOSE, FINISH, RESET, RESET_ALL) ----

  /** The zone a management request addresses, or -1 when `sector` is no zone's first sector. */
  private managed(sector: number): number {
    if (sector < 0 || sector >= this.capacity || sector % this.zoneSectors !== 0) return -1;
    return this.zoneOf(sector);
  }

  /** ZONE_OPEN of the zone starting at `sector`; returns the request's status. */
  open(sector: number): number {
    const z = this.managed(sector);
    if (z < 0 || this.type[z] === BlkZoneType.CONV) return BlkStatus.ZONE_INVALID_CMD; // device/blk/31
    const st = this.state[z]!;
    switch (st) {
      case BlkZoneState.EOPEN:
        return BlkStatus.OK; // stays EOPEN
      case BlkZoneState.IOPEN:
        this.state[z] = BlkZoneState.EOPEN; // already holds both resources
        return BlkStatus.OK;
      case BlkZoneState.EMPTY:
      case BlkZoneState.CLOSED: {
        // device/blk/34: the state does not change when resources are short.
        const r = this.acquire(z, st === BlkZoneState.EMPTY);
        if (r !== BlkStatus.OK) return r;
        this.state[z] = BlkZoneState.EOPEN;
        return BlkStatus.OK;
      }
      default:
        return BlkStatus.ZONE_INVALID_CMD; // FULL, RDONLY, OFFLINE (device/blk/33)
    }
  }

  /** ZONE_CLOSE of the zone starting at `sector`; returns the request's status. */
  close(sector: number): number {
    const z = this.managed(sector);
    if (z < 0 || this.type[z] === BlkZoneType.CONV) return BlkStatus.ZONE_INVALID_CMD;
    const st = this.state[z]!;
    if (st === BlkZoneState.CLOSED) return BlkStatus.OK;
    if (st !== BlkZoneState.IOPEN && st !== BlkZoneState.EOPEN) return BlkStatus.ZONE_INVALID_CMD; // device/blk/35
    this.openCount--;
    if (this.wp[z] === this.zoneStart(z)) {
      // An explicitly opened zone nothing was written to goes back to EMPTY.
      this.activeCount--;
      this.state[z] = BlkZoneState.EMPTY;
    } else {
      this.state[z] = BlkZoneState.CLOSED;
    }
    return BlkStatus.OK;
  }

  /** ZONE_FINISH of the zone starting at `sector`; returns the request's status. */
  finish(sector: number): number {
    const z = this.managed(sector);
    if (z < 0 || this.type[z] === BlkZoneType.CONV) return BlkStatus.ZONE_INVALID_CMD;
    const st = this.state[z]!;
    if (st === BlkZoneState.FULL) return BlkStatus.OK;
    if (st === BlkZoneState.RDONLY || st === BlkZoneState.OFFLINE) return BlkStatus.ZONE_INVALID_CMD; // device/blk/36
    // The sectors past the write pointer stay unwritten data (device/blk/48): dataEnd is kept.
    this.leave(z);
    this.state[z] = BlkZoneState.FULL;
    return BlkStatus.OK;
  }

  /** ZONE_RESET of the zone starting at `sector`; returns the request's status. */
  reset(sector: number): number {
    const z = this.managed(sector);
    if (z < 0 || this.type[z] === BlkZoneType.CONV) return BlkStatus.ZONE_INVALID_CMD;
    const st = this.state[z]!;
    if (st === BlkZoneState.RDONLY || st === BlkZoneState.OFFLINE) return BlkStatus.ZONE_INVALID_CMD; // device/blk/37
    this.emptyZone(z);
    return BlkStatus.OK;
  }

  /** RESET_ALL: every sequential zone in IOPEN, EOPEN, CLOSED or FULL becomes EMPTY. */
  resetAll(): number {
    for (let z = 0; z < this.zoneCount; z++) {
      const st = this.state[z]!;
      if (st === BlkZoneState.IOPEN || st === BlkZoneState.EOPEN || st === BlkZoneState.CLOSED || st === BlkZoneState.FULL) this.emptyZone(z);
    }
    return BlkStatus.OK;
  }

  /** Zones a secure erase of [sector, sector + n) resets (device/blk/51): whole zones only. */
  resetRange(sector: number, n: number): number {
    if (sector % this.zoneSectors !== 0 || (n % this.zoneSectors !== 0 && sector + n !== this.capacity)) return BlkStatus.ZONE_INVALID_CMD;
    const first = this.zoneOf(sector);
    const last = this.zoneOf(sector + n - 1);
    for (let z = first; z <= last; z++) {
      const st = this.state[z]!;
      if (this.type[z] === BlkZoneType.CONV) continue;
      if (st === BlkZoneState.RDONLY || st === BlkZoneState.OFFLINE) return BlkStatus.ZONE_INVALID_CMD;
    }
    for (let z = first; z <= last; z++) if (this.type[z] !== BlkZoneType.CONV) this.emptyZone(z);
    return BlkStatus.OK;
  }

  /** Device reset: the zone condition survives on a real device; only open zones are closed. */
  onDeviceReset(): void {
    for (let z = 0; z < this.zoneCount; z++) {
      const st = this.state[z]!;
      if (st === BlkZoneState.IOPEN || st === BlkZoneState.EOPEN) {
        this.openCount--;
        if (this.wp[z] === this.zoneStart(z)) {
          this.activeCount--;
          this.state[z] = BlkZoneState.EMPTY;
        } else {
          this.state[z] = BlkZoneState.CLOSED;
        }
      }
    }
  }

  // ---- the report (ZONE_REPORT) ----

  /**
   * Writes zone z's descriptor (5.2.6 virtio_blk_zone_descriptor) into the 64 bytes at the
   * start of `dst`, reserved bytes zero.
   */
  describe(z: number, dst: DataView, le: boolean): void {
    for (let i = 0; i < BlkZoneDescriptor.SIZE; i += 4) dst.setUint32(i, 0);
    const start = this.zoneStart(z);
    const st = this.state[z]!;
    // z_wp is undefined for CONV, FULL, RDONLY, OFFLINE zones: the zone's end is reported.
    const wpValid = st === BlkZoneState.EMPTY || st === BlkZoneState.IOPEN || st === BlkZoneState.EOPEN || st === BlkZoneState.CLOSED;
    setU64(dst, BlkZoneDescriptor.Z_CAP, this.zoneCap(z), le);
    setU64(dst, BlkZoneDescriptor.Z_START, start, le);
    setU64(dst, BlkZoneDescriptor.Z_WP, wpValid ? this.wp[z]! : start + this.zoneLength(z), le);
    dst.setUint8(BlkZoneDescriptor.Z_TYPE, this.type[z]!);
    dst.setUint8(BlkZoneDescriptor.Z_STATE, st);
  }

  // ---- resources ----

  /** Takes the open (and, from EMPTY, the active) resource for zone `z`, closing an IOPEN zone if needed. */
  private acquire(z: number, needsActive: boolean): number {
    const activeShort = needsActive && this.maxActive !== 0 && this.activeCount >= this.maxActive;
    if (this.maxOpen !== 0 && this.openCount >= this.maxOpen) {
      // device/blk/45: close an implicitly open zone to make room, unless the active limit
      // fails the request anyway (both exceeded: ACTIVE_RESOURCE).
      if (activeShort) return BlkStatus.ZONE_ACTIVE_RESOURCE;
      const victim = this.implicitlyOpenOtherThan(z);
      if (victim < 0) return BlkStatus.ZONE_OPEN_RESOURCE;
      this.openCount--;
      this.state[victim] = BlkZoneState.CLOSED; // an IOPEN zone always holds data
    }
    if (activeShort) return BlkStatus.ZONE_ACTIVE_RESOURCE;
    this.openCount++;
    if (needsActive) this.activeCount++;
    return BlkStatus.OK;
  }

  private implicitlyOpenOtherThan(z: number): number {
    for (let i = 0; i < this.zoneCount; i++) if (i !== z && this.state[i] === BlkZoneState.IOPEN) return i;
    return -1;
  }

  /** Releases what zone z holds in its current state (before it moves to FULL, EMPTY, RDONLY, OFFLINE). */
  private leave(z: number): void {
    const st = this.state[z]!;
    if (st === BlkZoneState.IOPEN || st === BlkZoneState.EOPEN) {
      this.openCount--;
      this.activeCount--;
    } else if (st === BlkZoneState.CLOSED) {
      this.activeCount--;
    }
  }

  private emptyZone(z: number): void {
    this.leave(z);
    const start = this.zoneStart(z);
    this.state[z] = BlkZoneState.EMPTY;
    this.wp[z] = start;
    this.dataEnd[z] = start;
  }
}

/** Writes a 64-bit unsigned integer (a safe integer) at `at`. */
export function setU64(v: DataView, at: number, x: number, le: boolean): void {
  const lo = x % U32;
  const hi = Math.floor(x / U32);
  v.setUint32(at + (le ? 0 : 4), lo, le);
  v.setUint32(at + (le ? 4 : 0), hi, le);
}
