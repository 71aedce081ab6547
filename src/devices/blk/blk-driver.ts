/**
 * 5.2 Block Device, driver side, over a DriverContext: promise-based requests, many in flight,
 * spread over the request queues (MQ), each a RequestQueue. Each request is one chain: header
 * (device-readable), then data (readable for OUT and the segment requests, writable for
 * IN/GET_ID/GET_LIFETIME), then the status byte (writable), as 5.2.6 lays out. The
 * configuration is decoded through the 5.2.4 layout of spec/blk.ts.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import {
  BLK_CONFIG_LAYOUT,
  BLK_ID_BYTES,
  BLK_SECTOR_SIZE,
  BLK_WRITE_ZEROES_FLAG_UNMAP,
  BlkDiscardSegment,
  BlkF,
  BlkLifetime,
  BlkReqHeader,
  BlkReqType,
  BlkStatus,
} from '../../spec/blk.js';
import { configBytesNeeded, readConfigFields, writeConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { BLK_DRIVER_CONFIG_FIELDS, type BlkDriverConfig } from './blk-driver-config.js';

export type { BlkDriverConfig } from './blk-driver-config.js';

const U32 = 0x1_0000_0000;

/**
 * The device-type features this driver can work with: all but ZONED (driver/blk/5: it cannot
 * drive zoned devices) and the legacy BARRIER and SCSI bits. Intersect the wanted features with
 * it when negotiating.
 */
export const BLK_DRIVER_FEATURES: bigint =
  BlkF.SIZE_MAX |
  BlkF.SEG_MAX |
  BlkF.GEOMETRY |
  BlkF.RO |
  BlkF.BLK_SIZE |
  BlkF.FLUSH |
  BlkF.TOPOLOGY |
  BlkF.CONFIG_WCE |
  BlkF.MQ |
  BlkF.DISCARD |
  BlkF.WRITE_ZEROES |
  BlkF.LIFETIME |
  BlkF.SECURE_ERASE;

/** A request the device answered with a status other than OK. */
export class BlkRequestError extends VirtioError {
  constructor(
    /** The status byte: VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP, ... (BlkStatus). */
    readonly status: number,
    /** The request type (BlkReqType). */
    readonly requestType: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-blk request type ${requestType} failed with status ${statusName(status)}`);
  }
}

function statusName(s: number): string {
  for (const [k, v] of Object.entries(BlkStatus)) if (v === s) return k;
  return String(s);
}

/** One range of a DISCARD, WRITE_ZEROES or SECURE_ERASE request. */
export interface BlkRange {
  /** First sector of the range. */
  sector: number;
  /** Length of the range in sectors. */
  numSectors: number;
  /** WRITE_ZEROES only: allow deallocation (VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP). */
  unmap?: boolean;
}

/** The answer to VIRTIO_BLK_T_GET_LIFETIME (struct virtio_blk_lifetime, 5.2.6). */
export interface BlkLifetimeReport {
  /** Pre-end-of-life state: reserved blocks used (BlkPreEol: NORMAL, WARNING, URGENT). */
  preEolInfo: number;
  /** Lifetime used of type A memory, in steps of 10 % (eMMC/UFS DEVICE_LIFE_TIME_EST_TYP_A). */
  deviceLifetimeEstTypA: number;
  /** Lifetime used of type B memory, in steps of 10 %. */
  deviceLifetimeEstTypB: number;
}

/** Options of BlkDriver. */
export interface BlkDriverOptions {
  /**
   * Refuse requests beyond capacity before sending them (driver/blk/11). Default false, so
   * tests and demos can show the device's IOERR answer.
   */
  checkBounds?: boolean;
}

/** A request's guest buffers and the device's answer. */
export interface Exchange {
  /** Header (16 bytes) followed by the status byte, one allocation. */
  hdr: number;
  data: number;
  dataLen: number;
  status: number;
  usedLen: number;
}

/** Header slot: 16-byte header, status byte, padded to 32 bytes. */
const SLOT_BYTES = 32;
/** Freed data buffers kept for reuse, in bytes at most (the rest goes back to the allocator). */
const DATA_CACHE_BYTES = 4 << 20;

/**
 * The virtio-blk driver (5.2): reads, writes, flush, GET_ID, lifetime, discard, write zeroes and
 * secure erase over one RequestQueue per device queue, with the configuration kept up to date
 * across configuration changes (driver/blk/10).
 */
export class BlkDriver implements DeviceDriver {
  /** The DeviceDriver contract: block devices, the features in BLK_DRIVER_FEATURES, none required. */
  static readonly type: DeviceDriverType<BlkDriver, BlkDriverOptions> = {
    name: 'virtio-blk',
    deviceId: DeviceId.BLOCK,
    wantedFeatures: BLK_DRIVER_FEATURES,
    requiredFeatures: 0n,
    configBytesNeeded: (features) => configBytesNeeded(BLK_CONFIG_LAYOUT, BLK_DRIVER_CONFIG_FIELDS, features),
    attach: (ctx, opts) => new BlkDriver(ctx, opts),
  };

  /** The configuration as last read (refreshed on a configuration change notification). */
  config: BlkDriverConfig;
  /** VIRTIO_BLK_F_RO was negotiated: writes fail. */
  readonly readOnly: boolean;
  /** The driver context of the device (for subclasses such as ZonedBlkDriver). @internal */
  protected readonly ctx: DriverContext;
  /** The guest's byte order for request headers (false only for a legacy big-endian guest). @internal */
  protected readonly le: boolean;
  private readonly checkBounds: boolean;
  /** One request queue per virtqueue (MQ: num_queues of them, 5.2.2). */
  private readonly queues: RequestQueue[] = [];
  /**
   * Guest buffers kept for reuse so the request path does not run the first-fit allocator
   * twice per request: header slots, and data buffers by length (bounded by DATA_CACHE_BYTES).
   */
  private readonly freeSlots: number[] = [];
  private readonly maxFreeSlots: number;
  private readonly freeData = new Map<number, number[]>();
  private freeDataBytes = 0;
  private nextQueue = 0;
  private readonly scratch = new Uint8Array(BlkReqHeader.SIZE);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private readonly fFlush: boolean;
  private readonly fWce: boolean;
  private readonly fDiscard: boolean;
  private readonly fWriteZeroes: boolean;
  private readonly fSecureErase: boolean;
  private readonly fLifetime: boolean;
  private readonly fSizeMax: boolean;
  private readonly fSegMax: boolean;

  constructor(ctx: DriverContext, opts: BlkDriverOptions = {}) {
    checkDriverContext(BlkDriver.type, ctx);
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    this.checkBounds = opts.checkBounds ?? false;
    const f = ctx.features;
    if ((f & BlkF.ZONED) !== 0n && !this.drivesZonedDevices()) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'VIRTIO_BLK_F_ZONED was negotiated; this driver cannot drive zoned devices (driver/blk/5): use ZonedBlkDriver');
    }
    this.fSizeMax = (f & BlkF.SIZE_MAX) !== 0n;
    this.fSegMax = (f & BlkF.SEG_MAX) !== 0n;
    this.readOnly = (f & BlkF.RO) !== 0n;
    this.fFlush = (f & BlkF.FLUSH) !== 0n;
    this.fWce = (f & BlkF.CONFIG_WCE) !== 0n;
    this.fDiscard = (f & BlkF.DISCARD) !== 0n;
    this.fWriteZeroes = (f & BlkF.WRITE_ZEROES) !== 0n;
    this.fSecureErase = (f & BlkF.SECURE_ERASE) !== 0n;
    this.fLifetime = (f & BlkF.LIFETIME) !== 0n;
    this.config = this.readConfig();
    let ringSlots = 0;
    for (let i = 0; i < ctx.numQueues; i++) {
      ringSlots += ctx.queue(i).size;
      this.queues.push(new RequestQueue(ctx, i));
    }
    this.maxFreeSlots = ringSlots;
    // driver/blk/10: capacity may change; re-read on a configuration change notification.
    ctx.onConfigChange(() => {
      this.config = this.readConfig();
    });
  }

  /** Capacity in 512-byte sectors. */
  get capacity(): number {
    return this.config.capacity;
  }

  /** blk_size when negotiated, else 512. */
  get blockSize(): number {
    return (this.ctx.features & BlkF.BLK_SIZE) !== 0n && this.config.blkSize >= 512 ? this.config.blkSize : BLK_SECTOR_SIZE;
  }

  /**
   * Whether writes may sit in a volatile cache: driver/blk/2 and driver/blk/3 (no WCE and no
   * FLUSH: writethrough; FLUSH without WCE: writeback), else the writeback field.
   */
  get writebackCache(): boolean {
    if (!this.fWce) return this.fFlush;
    return this.config.writeback !== 0;
  }

  /** Requests not yet answered (in the rings or waiting for room). */
  get inFlight(): number {
    let n = 0;
    for (const q of this.queues) n += q.inFlight;
    return n;
  }

  /**
   * Reads and decodes the configuration structure (5.2.4) through its layout. Every field is
   * read with its own width (driver/transport-mmio/3, driver/transport-pci/5: u8 with 8-bit, u16
   * with aligned 16-bit, u32 and u64 with aligned 32-bit accesses), each consistent over the
   * configuration generation (2.5.1).
   */
  readConfig(): BlkDriverConfig {
    return readConfigFields(BLK_CONFIG_LAYOUT, BLK_DRIVER_CONFIG_FIELDS, (offset, len) => this.ctx.readConfig(offset, len), this.le);
  }

  /** Whether this driver can drive a zoned device (ZonedBlkDriver can; this one cannot, driver/blk/5). */
  protected drivesZonedDevices(): boolean {
    return false;
  }

  /** Stops using the device: pending requests fail with RequestAbortedError('detached'). */
  detach(): void {
    for (const q of this.queues) q.detach();
    this.ctx.onConfigChange(() => {});
  }

  /**
   * driver/blk/21: switch the cache mode (CONFIG_WCE only). Switching to writethrough does not
   * commit writes made before it (driver/blk/22): call flush() for those.
   */
  setWriteback(on: boolean): void {
    if (!this.fWce) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'VIRTIO_BLK_F_CONFIG_WCE was not negotiated');
    writeConfigField(BLK_CONFIG_LAYOUT, 'writeback', on ? 1 : 0, (offset, bytes) => this.ctx.writeConfig(offset, bytes), this.le);
    this.config = this.readConfig();
  }

  // ---- requests ----

  /** Reads `len` bytes (a multiple of 512, driver/blk/15) from `sector`. */
  async read(sector: number, len: number): Promise<Uint8Array> {
    const out = new Uint8Array(len);
    await this.readInto(sector, out);
    return out;
  }

  /** Reads `dst.length` bytes (a multiple of 512) from `sector` into `dst`. */
  async readInto(sector: number, dst: Uint8Array): Promise<void> {
    const len = dst.length;
    this.checkRw(sector, len);
    const p = await this.submit(BlkReqType.IN, sector, null, len, true);
    try {
      if (len > 0) this.ctx.memory.read(p.data, dst);
    } finally {
      this.release(p);
    }
  }

  /** Writes `data` (a multiple of 512 bytes) at `sector`. */
  async write(sector: number, data: Uint8Array): Promise<void> {
    this.checkRw(sector, data.length);
    this.release(await this.submit(BlkReqType.OUT, sector, data, data.length, false));
  }

  /** driver/blk/13, driver/blk/14: sector 0, no data. */
  async flush(): Promise<void> {
    this.release(await this.submit(BlkReqType.FLUSH, 0, null, 0, false));
  }

  /** The device id string (up to 20 bytes, NUL-terminated when shorter, driver/blk/17). */
  async getId(): Promise<string> {
    const p = await this.submit(BlkReqType.GET_ID, 0, null, BLK_ID_BYTES, true);
    const b = new Uint8Array(BLK_ID_BYTES);
    try {
      this.ctx.memory.read(p.data, b);
    } finally {
      this.release(p);
    }
    const end = b.indexOf(0);
    return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
  }

  /** Sends VIRTIO_BLK_T_GET_LIFETIME (LIFETIME negotiated): the device's wear estimates. */
  async getLifetime(): Promise<BlkLifetimeReport> {
    if (!this.fLifetime) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'VIRTIO_BLK_F_LIFETIME was not negotiated');
    const p = await this.submit(BlkReqType.GET_LIFETIME, 0, null, BlkLifetime.SIZE, true);
    const b = new Uint8Array(BlkLifetime.SIZE);
    try {
      this.ctx.memory.read(p.data, b);
    } finally {
      this.release(p);
    }
    const v = new DataView(b.buffer);
    return {
      preEolInfo: v.getUint16(BlkLifetime.PRE_EOL_INFO, this.le),
      deviceLifetimeEstTypA: v.getUint16(BlkLifetime.DEVICE_LIFETIME_EST_TYP_A, this.le),
      deviceLifetimeEstTypB: v.getUint16(BlkLifetime.DEVICE_LIFETIME_EST_TYP_B, this.le),
    };
  }

  /**
   * Discards `numSectors` sectors from `sector` (DISCARD negotiated): their content becomes
   * unspecified (driver/blk/24).
   */
  discard(sector: number, numSectors: number): Promise<void> {
    return this.segments(BlkReqType.DISCARD, [{ sector, numSectors }]);
  }

  /**
   * Zeroes `numSectors` sectors from `sector` (WRITE_ZEROES negotiated); `unmap` lets the device
   * deallocate them.
   */
  writeZeroes(sector: number, numSectors: number, unmap = false): Promise<void> {
    return this.segments(BlkReqType.WRITE_ZEROES, [{ sector, numSectors, unmap }]);
  }

  /** Securely erases `numSectors` sectors from `sector` (SECURE_ERASE negotiated). */
  secureErase(sector: number, numSectors: number): Promise<void> {
    return this.segments(BlkReqType.SECURE_ERASE, [{ sector, numSectors }]);
  }

  /** A DISCARD, WRITE_ZEROES or SECURE_ERASE request with several ranges. */
  async segments(type: number, ranges: readonly BlkRange[]): Promise<void> {
    const ok =
      (type === BlkReqType.DISCARD && this.fDiscard) ||
      (type === BlkReqType.WRITE_ZEROES && this.fWriteZeroes) ||
      (type === BlkReqType.SECURE_ERASE && this.fSecureErase);
    if (!ok) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `request type ${type} is not a negotiated segment request`);
    if (ranges.length === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'no ranges');
    // driver/blk/18, driver/blk/19, driver/blk/20: no more segments than max_*_seg, and no
    // range longer than max_*_sectors (5.2.4).
    const c = this.config;
    const [maxSeg, maxSectors] =
      type === BlkReqType.DISCARD
        ? [c.maxDiscardSeg, c.maxDiscardSectors]
        : type === BlkReqType.WRITE_ZEROES
          ? [c.maxWriteZeroesSeg, c.maxWriteZeroesSectors]
          : [c.maxSecureEraseSeg, c.maxSecureEraseSectors];
    if (maxSeg > 0 && ranges.length > maxSeg) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${ranges.length} ranges, the device takes at most ${maxSeg} (driver/blk/18..20)`);
    }
    const b = new Uint8Array(ranges.length * BlkDiscardSegment.SIZE);
    const v = new DataView(b.buffer);
    const le = this.le;
    ranges.forEach((r, i) => {
      if (!Number.isSafeInteger(r.sector) || r.sector < 0 || !Number.isInteger(r.numSectors) || r.numSectors < 0 || r.numSectors >= U32) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad range ${r.sector}+${r.numSectors}`);
      }
      if (maxSectors > 0 && r.numSectors > maxSectors) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `range of ${r.numSectors} sectors, the device takes at most ${maxSectors}`);
      }
      const o = i * BlkDiscardSegment.SIZE;
      const lo = r.sector % U32;
      const hi = Math.floor(r.sector / U32);
      v.setUint32(o + BlkDiscardSegment.SECTOR + (le ? 0 : 4), lo, le);
      v.setUint32(o + BlkDiscardSegment.SECTOR + (le ? 4 : 0), hi, le);
      v.setUint32(o + BlkDiscardSegment.NUM_SECTORS, r.numSectors, le);
      // driver/blk/23: the unmap bit only on write zeroes.
      const unmap = type === BlkReqType.WRITE_ZEROES && r.unmap === true;
      v.setUint32(o + BlkDiscardSegment.FLAGS, unmap ? BLK_WRITE_ZEROES_FLAG_UNMAP : 0, le);
    });
    this.release(await this.submit(type, 0, b, b.length, false));
  }

  /**
   * Sends any request: `data` (device-readable) or `inLen` bytes device-writable; resolves with
   * the raw status and the data bytes. For tests of device behaviour with odd requests.
   */
  async raw(
    type: number,
    sector: number,
    data: Uint8Array | null,
    inLen: number,
  ): Promise<{
    /** The status byte the device wrote (BlkStatus: VIRTIO_BLK_S_OK, IOERR, UNSUPP, ...; 5.2.6). */
    status: number;
    /** The `inLen` device-writable data bytes as the device left them; empty when `data` was given. */
    data: Uint8Array;
    /** The used element's `len` (2.7.8): bytes the device reports having written, status byte included. */
    usedLen: number;
  }> {
    const p = await this.submit(type, sector, data, data ? data.length : inLen, data === null, true);
    const out = new Uint8Array(data ? 0 : inLen);
    try {
      if (out.length > 0) this.ctx.memory.read(p.data, out);
    } finally {
      this.release(p);
    }
    return { status: p.status, data: out, usedLen: p.usedLen };
  }

  /** Refuses a read or write the driver rules forbid (driver/blk/11, /15) before it is sent. @internal */
  protected checkRw(sector: number, len: number): void {
    if (!Number.isSafeInteger(sector) || sector < 0 || !Number.isSafeInteger(len) || len < 0 || len % BLK_SECTOR_SIZE !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad request: sector ${sector}, ${len} bytes (a multiple of 512, driver/blk/15)`);
    }
    if (this.checkBounds && sector + len / BLK_SECTOR_SIZE > this.capacity) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `sector ${sector}+${len / BLK_SECTOR_SIZE} beyond capacity ${this.capacity} (driver/blk/11)`);
    }
  }

  /** size_max when negotiated (and sane), else unlimited. */
  private get maxSegmentBytes(): number {
    const m = this.config.sizeMax;
    return this.fSizeMax && m >= BLK_SECTOR_SIZE ? m : Number.MAX_SAFE_INTEGER;
  }

  /** 5.2.4 seg_max: the data of one request fits in seg_max segments of size_max bytes. */
  private checkSegments(dataLen: number): void {
    if (dataLen === 0) return;
    const n = Math.ceil(dataLen / this.maxSegmentBytes);
    // Header + data + status in direct descriptors must fit the ring (2.7.5.3.1), or the
    // request would wait for room forever.
    const ringSize = this.ctx.queue(0).size;
    if (n + 2 > ringSize) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${dataLen} bytes need ${n + 2} descriptors; the queue has ${ringSize}`);
    }
    if (!this.fSegMax || this.config.segMax === 0) return;
    if (n > this.config.segMax) {
      throw new VirtioError(
        ErrorCode.INVALID_ARGUMENT,
        `${dataLen} bytes need ${n} segments; the device takes at most seg_max ${this.config.segMax} of size_max ${this.config.sizeMax}`,
      );
    }
  }

  /** Gives a request's guest buffers back for reuse. @internal */
  protected release(p: Exchange): void {
    const dma = this.ctx.dma;
    if (this.freeSlots.length < this.maxFreeSlots) this.freeSlots.push(p.hdr);
    else dma.free(p.hdr);
    const len = p.dataLen;
    if (len === 0) return;
    if (this.freeDataBytes + len <= DATA_CACHE_BYTES) {
      let list = this.freeData.get(len);
      if (!list) {
        list = [];
        this.freeData.set(len, list);
      }
      list.push(p.data);
      this.freeDataBytes += len;
    } else dma.free(p.data);
  }

  /** A guest buffer: reused when one is free, else from the allocator (dropping the caches when it is full). */
  private allocBuffer(len: number, slot: boolean): number {
    if (slot) {
      const a = this.freeSlots.pop();
      if (a !== undefined) return a;
    } else {
      const a = this.freeData.get(len)?.pop();
      if (a !== undefined) {
        this.freeDataBytes -= len;
        return a;
      }
    }
    try {
      return this.ctx.dma.alloc(slot ? SLOT_BYTES : len, 16);
    } catch (e) {
      if (this.freeDataBytes === 0 && this.freeSlots.length === 0) throw e;
      this.dropCaches();
      return this.ctx.dma.alloc(slot ? SLOT_BYTES : len, 16);
    }
  }

  private dropCaches(): void {
    const dma = this.ctx.dma;
    for (const a of this.freeSlots) dma.free(a);
    this.freeSlots.length = 0;
    for (const list of this.freeData.values()) for (const a of list) dma.free(a);
    this.freeData.clear();
    this.freeDataBytes = 0;
  }

  /** Puts one chain on the next queue and resolves with the used length (for requests `submit` cannot frame). @internal */
  protected submitChain(outSegs: Segment[], inSegs: Segment[]): Promise<number> {
    const qi = this.nextQueue;
    this.nextQueue = (qi + 1) % this.queues.length;
    return this.queues[qi]!.submit(outSegs, inSegs);
  }

  /**
   * Builds the chain and waits for the answer. Resolves with the request's buffers and status
   * (the caller copies data out and releases them); rejects with BlkRequestError for a non-OK
   * status unless `anyStatus`.
   *
   * @internal
   */
  protected async submit(type: number, sector: number, out: Uint8Array | null, dataLen: number, dataWritable: boolean, anyStatus = false): Promise<Exchange> {
    const mem = this.ctx.memory;
    this.checkSegments(dataLen);
    const hdr = this.allocBuffer(SLOT_BYTES, true);
    let data = 0;
    try {
      if (dataLen > 0) data = this.allocBuffer(dataLen, false);
    } catch (e) {
      this.freeSlots.push(hdr);
      throw e;
    }
    const x: Exchange = { hdr, data, dataLen, status: BlkStatus.IOERR, usedLen: 0 };
    const v = this.scratchView;
    const le = this.le;
    v.setUint32(BlkReqHeader.TYPE, type, le);
    v.setUint32(BlkReqHeader.RESERVED, 0, le);
    v.setUint32(BlkReqHeader.SECTOR + (le ? 0 : 4), sector % U32, le);
    v.setUint32(BlkReqHeader.SECTOR + (le ? 4 : 0), Math.floor(sector / U32), le);
    mem.write(hdr, this.scratch);
    mem.writeU8(hdr + BlkReqHeader.SIZE, 0xff); // status: not yet written by the device
    if (out && dataLen > 0) mem.write(data, out);
    const outSegs: Segment[] = [{ addr: hdr, len: BlkReqHeader.SIZE }];
    const inSegs: Segment[] = [];
    if (dataLen > 0) {
      // 5.2.4 size_max: no data segment longer (checkSegments made sure seg_max holds).
      const segs = dataWritable ? inSegs : outSegs;
      const max = this.maxSegmentBytes;
      for (let off = 0; off < dataLen; off += max) segs.push({ addr: data + off, len: Math.min(max, dataLen - off) });
    }
    inSegs.push({ addr: hdr + BlkReqHeader.SIZE, len: 1 });
    const qi = this.nextQueue;
    this.nextQueue = (qi + 1) % this.queues.length;
    try {
      x.usedLen = await this.queues[qi]!.submit(outSegs, inSegs);
      x.status = mem.readU8(hdr + BlkReqHeader.SIZE);
    } catch (e) {
      this.release(x);
      throw e;
    }
    if (!anyStatus && x.status !== BlkStatus.OK) {
      this.release(x);
      throw new BlkRequestError(x.status, type);
    }
    return x;
  }
}
