/**
 * The driver of a zoned block device (5.2.6, VIRTIO_BLK_F_ZONED): BlkDriver plus the zone
 * requests (report, open, close, finish, reset, reset all, append), the zoned characteristics,
 * and the driver's side of the zone rules. It drives every zoned model (host-managed, host-aware
 * and none), so it may negotiate ZONED (driver/blk/5); with a host-managed device it does not
 * accept DISCARD (driver/blk/6).
 *
 * It keeps what it knows of each zone (type, condition, write pointer, capacity) from its last
 * report and from its own successful requests, and refuses, before anything reaches the device,
 * a request that breaks a driver rule: a zone address that is not a zone's first sector, an
 * append or a write to a sequential zone not aligned to write_granularity or past the zone's
 * writable capacity, an append larger than max_append_sectors (driver/blk/26..34).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { BLK_SECTOR_SIZE, BlkConfig, BlkF, BlkReqType, BlkStatus, BlkZonedModel } from '../../spec/blk.js';
import { BLK_APPEND_SECTOR_BYTES, BlkZoneDescriptor, BlkZoneReport, BlkZoneState, BlkZoneType } from '../../spec/blk-zoned.js';
import { DeviceId } from '../../spec/device-id.js';
import type { DeviceDriverType } from '../../driver/device-driver.js';
import type { DriverContext } from '../../driver/types.js';
import { BLK_DRIVER_FEATURES, BlkDriver, BlkRequestError, type BlkDriverOptions } from './blk-driver.js';

/** 5.2.4 struct virtio_blk_zoned_characteristics as read by the driver. */
export interface BlkZonedCharacteristics {
  /** zone_sectors: the size of every zone but maybe the last, in 512-byte sectors. */
  readonly zoneSectors: number;
  /** max_open_zones: zones that may be implicitly or explicitly open at once (0: no limit). */
  readonly maxOpenZones: number;
  /** max_active_zones: zones that may be open or closed at once (0: no limit). */
  readonly maxActiveZones: number;
  /** max_append_sectors: the largest ZONE_APPEND in 512-byte sectors (0: ZONE_APPEND not supported). */
  readonly maxAppendSectors: number;
  /** Bytes. */
  readonly writeGranularity: number;
  /** BlkZonedModel: NONE, HM or HA. */
  readonly model: number;
}

/** One zone descriptor of a report (5.2.6). */
export interface BlkZoneInfo {
  /** z_start: the zone's first sector. */
  readonly start: number;
  /** z_cap: writable sectors from the start. */
  readonly capacity: number;
  /** z_wp (undefined by the spec for CONV, FULL, RDONLY and OFFLINE zones). */
  readonly writePointer: number;
  /** BlkZoneType. */
  readonly type: number;
  /** BlkZoneState. */
  readonly state: number;
}

/** Features of this driver: the blk driver's and ZONED. */
export const BLK_ZONED_DRIVER_FEATURES: bigint = BLK_DRIVER_FEATURES | BlkF.ZONED;

const U32 = 0x1_0000_0000;

/** Reads the zoned model from the configuration (valid once ZONED is among the driver features). */
function readModel(readConfig: (offset: number, dst: Uint8Array) => void): number {
  const b = new Uint8Array(1);
  readConfig(BlkConfig.ZONED_MODEL, b);
  return b[0]!;
}

export class ZonedBlkDriver extends BlkDriver {
  /** The DeviceDriver contract: block devices, zoned or not. */
  static readonly zonedType: DeviceDriverType<ZonedBlkDriver, BlkDriverOptions> = {
    name: 'virtio-blk (zoned)',
    deviceId: DeviceId.BLOCK,
    wantedFeatures: BLK_ZONED_DRIVER_FEATURES,
    requiredFeatures: 0n,
    // driver/blk/6: no DISCARD with a host-managed device; driver/blk/7: with HA or NONE both
    // may be accepted independently (they are).
    refineFeatures: (accepted, readConfig) =>
      (accepted & BlkF.ZONED) !== 0n && readModel(readConfig) === BlkZonedModel.HM ? accepted & ~BlkF.DISCARD : accepted,
    attach: (ctx, opts) => new ZonedBlkDriver(ctx, opts),
  };

  /** The zoned characteristics, or null when ZONED was not negotiated (then it is a regular blk driver). */
  readonly zoned: BlkZonedCharacteristics | null;
  /** What the driver knows of each zone (from its last report and its own requests), by zone index. */
  private readonly known = new Map<number, { type: number; state: number; wp: number; cap: number }>();

  constructor(ctx: DriverContext, opts: BlkDriverOptions = {}) {
    super(ctx, opts);
    this.zoned = (ctx.features & BlkF.ZONED) !== 0n ? this.readZoned() : null;
  }

  protected override drivesZonedDevices(): boolean {
    return true;
  }

  private readZoned(): BlkZonedCharacteristics {
    const b = this.ctx.readConfig(BlkConfig.ZONED_ZONE_SECTORS, BlkConfig.ZONED_MODEL + 1 - BlkConfig.ZONED_ZONE_SECTORS);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return {
      zoneSectors: v.getUint32(0, true),
      maxOpenZones: v.getUint32(4, true),
      maxActiveZones: v.getUint32(8, true),
      maxAppendSectors: v.getUint32(12, true),
      writeGranularity: v.getUint32(16, true),
      model: v.getUint8(20),
    };
  }

  /** The number of zones (device/blk/10: (capacity + zone_sectors - 1) / zone_sectors). */
  get zoneCount(): number {
    const z = this.requireZoned();
    return Math.ceil(this.capacity / z.zoneSectors);
  }

  /**
   * ZONE_REPORT from the zone holding `sector` (driver/blk/27: any sector of the starting zone,
   * driver/blk/28), for at most `maxZones` zones. The driver's zone knowledge is refreshed.
   */
  async reportZones(sector: number, maxZones: number): Promise<BlkZoneInfo[]> {
    const z = this.requireZoned();
    if (!Number.isSafeInteger(sector) || sector < 0 || sector >= this.capacity) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `report from sector ${sector}: not within a zone (driver/blk/27)`);
    }
    if (!Number.isInteger(maxZones) || maxZones < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `maxZones ${maxZones}`);
    const n = Math.min(maxZones, this.zoneCount - Math.floor(sector / z.zoneSectors));
    const len = BlkZoneReport.HEADER_SIZE + n * BlkZoneDescriptor.SIZE;
    const p = await this.submit(BlkReqType.ZONE_REPORT, sector, null, len, true);
    const buf = new Uint8Array(len);
    try {
      this.ctx.memory.read(p.data, buf);
    } finally {
      this.release(p);
    }
    const v = new DataView(buf.buffer);
    const le = this.le;
    const count = Math.min(u64(v, BlkZoneReport.NR_ZONES, le), n);
    const out: BlkZoneInfo[] = [];
    for (let i = 0; i < count; i++) {
      const at = BlkZoneReport.HEADER_SIZE + i * BlkZoneDescriptor.SIZE;
      const info: BlkZoneInfo = {
        capacity: u64(v, at + BlkZoneDescriptor.Z_CAP, le),
        start: u64(v, at + BlkZoneDescriptor.Z_START, le),
        writePointer: u64(v, at + BlkZoneDescriptor.Z_WP, le),
        type: v.getUint8(at + BlkZoneDescriptor.Z_TYPE),
        state: v.getUint8(at + BlkZoneDescriptor.Z_STATE),
      };
      out.push(info);
      this.known.set(Math.floor(info.start / z.zoneSectors), { type: info.type, state: info.state, wp: info.writePointer, cap: info.capacity });
    }
    return out;
  }

  /** ZONE_OPEN of the zone starting at `zoneSector` (driver/blk/29). */
  async openZone(zoneSector: number): Promise<void> {
    await this.manage(BlkReqType.ZONE_OPEN, zoneSector);
    this.update(zoneSector, (k) => (k.state = BlkZoneState.EOPEN));
  }

  /** ZONE_CLOSE (driver/blk/29). */
  async closeZone(zoneSector: number): Promise<void> {
    await this.manage(BlkReqType.ZONE_CLOSE, zoneSector);
    this.update(zoneSector, (k) => (k.state = k.wp === zoneSector ? BlkZoneState.EMPTY : BlkZoneState.CLOSED));
  }

  /** ZONE_FINISH (driver/blk/29). */
  async finishZone(zoneSector: number): Promise<void> {
    await this.manage(BlkReqType.ZONE_FINISH, zoneSector);
    this.update(zoneSector, (k) => (k.state = BlkZoneState.FULL));
  }

  /** ZONE_RESET (driver/blk/29). */
  async resetZone(zoneSector: number): Promise<void> {
    await this.manage(BlkReqType.ZONE_RESET, zoneSector);
    this.update(zoneSector, (k) => {
      k.state = BlkZoneState.EMPTY;
      k.wp = zoneSector;
    });
  }

  /** ZONE_RESET_ALL, with sector 0 (driver/blk/30). */
  async resetAllZones(): Promise<void> {
    this.requireZoned();
    this.release(await this.submit(BlkReqType.ZONE_RESET_ALL, 0, null, 0, false));
    for (const [i, k] of this.known) {
      if (k.state === BlkZoneState.IOPEN || k.state === BlkZoneState.EOPEN || k.state === BlkZoneState.CLOSED || k.state === BlkZoneState.FULL) {
        k.state = BlkZoneState.EMPTY;
        k.wp = i * this.zoned!.zoneSectors;
      }
    }
  }

  /**
   * ZONE_APPEND of `data` to the zone starting at `zoneSector` (driver/blk/31, /32, /34);
   * resolves with the sector the device wrote it at (append_sector, driver/blk/33).
   */
  async appendZone(zoneSector: number, data: Uint8Array): Promise<number> {
    const z = this.requireZoned();
    this.checkZoneAddress(zoneSector);
    if (z.maxAppendSectors === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'the device does not take ZONE_APPEND (max_append_sectors 0)');
    if (data.length % z.writeGranularity !== 0 || data.length / BLK_SECTOR_SIZE > z.maxAppendSectors) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `append of ${data.length} bytes: a multiple of write_granularity ${z.writeGranularity} up to max_append_sectors ${z.maxAppendSectors} (driver/blk/32)`);
    }
    const k = this.known.get(zoneSector / z.zoneSectors);
    if (k) this.checkCapacity(zoneSector, k.wp, data.length, k);
    // The data is device-readable; append_sector (8 bytes) and the status are device-writable.
    const p = await this.rawAppend(zoneSector, data);
    if (k) {
      k.wp = p + data.length / BLK_SECTOR_SIZE;
      k.state = k.wp >= zoneSector + k.cap ? BlkZoneState.FULL : k.state === BlkZoneState.EOPEN ? k.state : BlkZoneState.IOPEN;
    }
    return p;
  }

  /**
   * A write; to a sequential zone the driver knows of, it must start at a multiple of
   * write_granularity, be a multiple of it in size and stay within the zone's writable capacity
   * from the write pointer (driver/blk/34).
   */
  override async write(sector: number, data: Uint8Array): Promise<void> {
    const z = this.zoned;
    if (z === null) return super.write(sector, data);
    const zi = Math.floor(sector / z.zoneSectors);
    const k = this.known.get(zi);
    if (k !== undefined && k.type !== BlkZoneType.CONV) {
      const gran = z.writeGranularity;
      if (((sector * BLK_SECTOR_SIZE) % gran) !== 0 || data.length % gran !== 0) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `write of ${data.length} bytes at sector ${sector}: not aligned to write_granularity ${gran} (driver/blk/34)`);
      }
      this.checkCapacity(zi * z.zoneSectors, sector, data.length, k);
    }
    await super.write(sector, data);
    if (k !== undefined && k.type !== BlkZoneType.CONV) {
      const end = sector + data.length / BLK_SECTOR_SIZE;
      if (end > k.wp) k.wp = end;
      const zoneStart = zi * z.zoneSectors;
      k.state = k.wp >= zoneStart + k.cap ? BlkZoneState.FULL : k.state === BlkZoneState.EOPEN ? k.state : BlkZoneState.IOPEN;
    }
  }

  /**
   * Sends a ZONE_APPEND: header and data device-readable, then append_sector and the status
   * device-writable (virtio_blk_req_za); resolves with append_sector. Zone management is rare:
   * its buffers are allocated per request.
   */
  private async rawAppend(zoneSector: number, data: Uint8Array): Promise<number> {
    const ctx = this.ctx;
    const mem = ctx.memory;
    const dma = ctx.dma;
    const hdr = dma.alloc(32, 16);
    const buf = data.length > 0 ? dma.alloc(data.length, 16) : 0;
    try {
      const h = new Uint8Array(16);
      const hv = new DataView(h.buffer);
      hv.setUint32(0, BlkReqType.ZONE_APPEND, true);
      hv.setUint32(8, zoneSector % U32, true);
      hv.setUint32(12, Math.floor(zoneSector / U32), true);
      mem.write(hdr, h);
      mem.write(hdr + 16, new Uint8Array(BLK_APPEND_SECTOR_BYTES + 1).fill(0xff));
      if (data.length > 0) mem.write(buf, data);
      const out = [{ addr: hdr, len: 16 }, ...(data.length > 0 ? [{ addr: buf, len: data.length }] : [])];
      const inSegs = [{ addr: hdr + 16, len: BLK_APPEND_SECTOR_BYTES + 1 }];
      await this.submitChain(out, inSegs);
      const back = new Uint8Array(BLK_APPEND_SECTOR_BYTES + 1);
      mem.read(hdr + 16, back);
      const status = back[BLK_APPEND_SECTOR_BYTES]!;
      if (status !== BlkStatus.OK) throw new BlkRequestError(status, BlkReqType.ZONE_APPEND);
      return u64(new DataView(back.buffer), 0, this.le);
    } finally {
      dma.free(hdr);
      if (buf !== 0) dma.free(buf);
    }
  }

  private async manage(type: number, zoneSector: number): Promise<void> {
    this.requireZoned();
    this.checkZoneAddress(zoneSector);
    this.release(await this.submit(type, zoneSector, null, 0, false));
  }

  /** driver/blk/26, /29, /31: a zone sector address is a zone's first sector. */
  private checkZoneAddress(zoneSector: number): void {
    const z = this.zoned!;
    if (!Number.isSafeInteger(zoneSector) || zoneSector < 0 || zoneSector >= this.capacity || zoneSector % z.zoneSectors !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `sector ${zoneSector} is not the first sector of a zone (zone_sectors ${z.zoneSectors})`);
    }
  }

  private checkCapacity(zoneStart: number, at: number, bytes: number, k: { state: number; cap: number }): void {
    if (k.state === BlkZoneState.FULL || k.state === BlkZoneState.RDONLY || k.state === BlkZoneState.OFFLINE || at + bytes / BLK_SECTOR_SIZE > zoneStart + k.cap) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${bytes} bytes at sector ${at} exceed the zone's writable capacity (driver/blk/34)`);
    }
  }

  private update(zoneSector: number, f: (k: { type: number; state: number; wp: number; cap: number }) => void): void {
    const k = this.known.get(zoneSector / this.zoned!.zoneSectors);
    if (k) f(k);
  }

  private requireZoned(): BlkZonedCharacteristics {
    if (this.zoned === null) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'VIRTIO_BLK_F_ZONED was not negotiated');
    return this.zoned;
  }
}

function u64(v: DataView, at: number, le: boolean): number {
  const lo = v.getUint32(at + (le ? 0 : 4), le);
  const hi = v.getUint32(at + (le ? 4 : 0), le);
  return hi * U32 + lo;
}
