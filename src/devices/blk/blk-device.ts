/**
 * 5.2 Block Device, device side: features, configuration space (5.2.4) and lifecycle. Requests
 * are decoded and executed by BlkRequestHandler (blk-requests.ts); the QueueServer pops them,
 * completes them in whatever order the backend finishes, and sets DEVICE_NEEDS_RESET when the
 * driver breaks a ring rule.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import {
  BLK_CONFIG_LAYOUT,
  BLK_ID_BYTES,
  BLK_SECTOR_SIZE,
  BlkConfig,
  BlkF,
  BlkZonedModel,
  type BlkConfigField,
} from '../../spec/blk.js';
import { type ConfigValues, configWriteAllowed, decodeConfigWrite, encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import type { BlkBackend } from './backend.js';
import { BlkRequest, BlkRequestHandler } from './blk-requests.js';
import { ZonedModel, type ZonedOptions } from './zoned-model.js';

/** Options of BlkDevice: features, limits and the GET_ID serial. */
export interface BlkDeviceOptions {
  /** Offer VIRTIO_BLK_F_RO and fail writes (also when the backend is read-only). */
  readOnly?: boolean;
  /** Request queues (VIRTIO_BLK_F_MQ when > 1). Default 1. */
  numQueues?: number;
  /** Maximum size of each queue. Default 256. */
  queueSize?: number;
  /** GET_ID answer: up to 20 bytes (UTF-8), NUL-padded. Default empty. */
  serial?: string;
  /** blk_size (VIRTIO_BLK_F_BLK_SIZE): a power of two from 512 to 65536. Default 512. */
  blockSize?: number;
  /** Initial cache mode with CONFIG_WCE: true writeback, false writethrough. Default true. */
  writeback?: boolean;
  /** max_discard_sectors and max_write_zeroes_sectors (and secure erase). Default 2^22 (2 GiB). */
  maxDiscardSectors?: number;
  /** max_discard_seg, max_write_zeroes_seg, max_secure_erase_seg. Default 32. */
  maxDiscardSegments?: number;
  /** Offer DISCARD, WRITE_ZEROES and SECURE_ERASE. Default true (false when read-only). */
  discard?: boolean;
  /**
   * size_max (VIRTIO_BLK_F_SIZE_MAX): the largest data segment the driver may use, in bytes
   * (at least 512). Not offered by default. The device itself accepts any segment size.
   */
  sizeMax?: number;
  /** opt_io_size (TOPOLOGY): suggested maximum I/O size in blocks of blockSize. Default 0 (none). */
  optIoSize?: number;
  /** Legacy CHS geometry (VIRTIO_BLK_F_GEOMETRY). Not offered by default. */
  geometry?: BlkGeometry;
  /**
   * A zoned device (VIRTIO_BLK_F_ZONED, 5.2.6): host-managed or host-aware zones over the
   * backend. DISCARD, WRITE_ZEROES and SECURE_ERASE are then not offered (device/blk/6 forbids
   * DISCARD with host-managed zones). Not zoned by default.
   */
  zoned?: ZonedOptions;
  /** Where the device logs (cache mode changes, backend errors). */
  logger?: Logger;
}

/** Legacy CHS geometry (struct virtio_blk_geometry, 5.2.4). */
export interface BlkGeometry {
  /** Number of cylinders. */
  cylinders: number;
  /** Number of heads. */
  heads: number;
  /** Sectors per track. */
  sectors: number;
}

const U32 = 0x1_0000_0000;
const DEFAULT_QUEUE_SIZE = 256;
const DEFAULT_MAX_DISCARD_SECTORS = 1 << 22;
const DEFAULT_MAX_DISCARD_SEG = 32;

/** Transport features the device works with (not IN_ORDER: requests complete out of order). */
const TRANSPORT_FEATURES = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;

/**
 * A virtio-blk device (5.2) over a BlkBackend (MemoryBackend, FileBackend or your own): reads,
 * writes, flush, GET_ID, lifetime, discard, write zeroes and secure erase on one or more request
 * queues, completing in whatever order the backend finishes. Serve it with serveVhostUser, drive it
 * with BlkDriver, or put it behind any transport.
 */
export class BlkDevice implements VirtioDevice {
  readonly deviceId = DeviceId.BLOCK;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = BlkConfig.SIZE;
  /** device/blk/5: ZONED needs FEATURES_OK, which a legacy interface does not have. */
  readonly modernOnlyFeatures = BlkF.ZONED;
  /** The zones, when the device is zoned. */
  readonly zoned: ZonedModel | null;

  /** Offers VIRTIO_BLK_F_RO: writes fail with IOERR. */
  readonly readOnly: boolean;
  /** Sectors of 512 bytes; follows the backend's size through refreshCapacity(). */
  capacity: number;
  /** blk_size in bytes (a power of two, 512 to 65536). */
  readonly blockSize: number;
  /** seg_max: most data segments in one request (queue size - 2). */
  readonly segMax: number;
  /** max_discard_sectors, max_write_zeroes_sectors and max_secure_erase_sectors. */
  readonly maxDiscardSectors: number;
  /** max_discard_seg, max_write_zeroes_seg and max_secure_erase_seg. */
  readonly maxDiscardSegments: number;
  /** size_max in bytes, 0 when VIRTIO_BLK_F_SIZE_MAX is not offered. */
  readonly sizeMax: number;
  /** The legacy geometry offered (VIRTIO_BLK_F_GEOMETRY), or null. */
  readonly geometry: BlkGeometry | null;
  /** opt_io_size (VIRTIO_BLK_F_TOPOLOGY) in blocks of blk_size; 0 when not given. */
  readonly optIoSize: number;
  /** The cache mode field (CONFIG_WCE): 1 writeback, 0 writethrough. */
  writeback: number;

  private readonly backend: BlkBackend;
  private readonly log: Logger | undefined;
  private readonly id = new Uint8Array(BLK_ID_BYTES);
  private readonly initialWriteback: number;

  private readonly server: QueueServer<BlkRequest>;
  private readonly requests: BlkRequestHandler;

  constructor(backend: BlkBackend, opts: BlkDeviceOptions = {}) {
    this.backend = backend;
    this.log = opts.logger;
    const numQueues = opts.numQueues ?? 1;
    const queueSize = opts.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(numQueues) || numQueues < 1 || numQueues > 0xffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `numQueues ${numQueues} not in 1..65535`);
    if (!Number.isInteger(queueSize) || queueSize < 2 || queueSize > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${queueSize} not in 2..32768`);
    const blockSize = opts.blockSize ?? BLK_SECTOR_SIZE;
    if (!Number.isInteger(blockSize) || blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `blockSize ${blockSize} is not a power of two in 512..65536`);
    }
    this.blockSize = blockSize;
    this.readOnly = (opts.readOnly ?? false) || (backend.readOnly ?? false);
    this.capacity = Math.floor(backend.size / BLK_SECTOR_SIZE);
    this.queueMaxSizes = Array.from({ length: numQueues }, () => queueSize);
    // 5.2.4 seg_max: the data segments besides header and status; a chain holds at most that
    // plus 2 (QEMU uses queue size - 2 too).
    const chainSegments = Math.max(queueSize, 4);
    this.segMax = chainSegments - 2;
    this.maxDiscardSectors = opts.maxDiscardSectors ?? DEFAULT_MAX_DISCARD_SECTORS;
    this.maxDiscardSegments = opts.maxDiscardSegments ?? DEFAULT_MAX_DISCARD_SEG;
    if (!Number.isInteger(this.maxDiscardSectors) || this.maxDiscardSectors < 1 || this.maxDiscardSectors >= U32) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'bad maxDiscardSectors');
    if (!Number.isInteger(this.maxDiscardSegments) || this.maxDiscardSegments < 1 || this.maxDiscardSegments > 4096) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'bad maxDiscardSegments');
    this.sizeMax = opts.sizeMax ?? 0;
    if (opts.sizeMax !== undefined && (!Number.isInteger(this.sizeMax) || this.sizeMax < BLK_SECTOR_SIZE || this.sizeMax >= U32)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `sizeMax ${opts.sizeMax} not in 512..2^32-1`);
    }
    this.optIoSize = opts.optIoSize ?? 0;
    if (!Number.isInteger(this.optIoSize) || this.optIoSize < 0 || this.optIoSize >= U32) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `optIoSize ${opts.optIoSize} not in 0..2^32-1`);
    const g = opts.geometry;
    if (g && !(isUint(g.cylinders, 0xffff) && isUint(g.heads, 0xff) && isUint(g.sectors, 0xff))) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'geometry: cylinders 0..65535, heads and sectors 0..255');
    }
    this.geometry = g ? { cylinders: g.cylinders, heads: g.heads, sectors: g.sectors } : null;
    const serial = new TextEncoder().encode(opts.serial ?? '');
    this.id.set(serial.subarray(0, BLK_ID_BYTES));
    // device/blk/13: by default an append fills at most seg_max segments of size_max (or of 4 KiB).
    const segBytes = this.sizeMax > 0 ? this.sizeMax : 4096;
    const appendLimit = Math.floor((this.segMax * segBytes) / BLK_SECTOR_SIZE);
    this.zoned = opts.zoned ? new ZonedModel(this.capacity, { ...opts.zoned, maxAppendSectors: opts.zoned.maxAppendSectors ?? Math.min(opts.zoned.zoneSectors, appendLimit) }) : null;
    // device/blk/12: max_append_sectors within seg_max * size_max.
    if (this.zoned !== null && this.sizeMax > 0 && this.zoned.maxAppendSectors * BLK_SECTOR_SIZE > this.segMax * this.sizeMax) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'zoned maxAppendSectors exceeds seg_max * size_max');
    }
    this.initialWriteback = (opts.writeback ?? true) ? 1 : 0;
    this.writeback = this.initialWriteback;

    // device/blk/1: FLUSH always, and CONFIG_WCE only with it.
    let f = TRANSPORT_FEATURES | BlkF.SEG_MAX | BlkF.BLK_SIZE | BlkF.FLUSH | BlkF.TOPOLOGY | BlkF.CONFIG_WCE;
    if (numQueues > 1) f |= BlkF.MQ;
    if (this.sizeMax > 0) f |= BlkF.SIZE_MAX;
    if (this.geometry) f |= BlkF.GEOMETRY;
    if (this.readOnly) f |= BlkF.RO;
    else if ((opts.discard ?? true) && this.zoned === null) f |= BlkF.DISCARD | BlkF.WRITE_ZEROES | BlkF.SECURE_ERASE;
    // device/blk/27, device/blk/28: only when the backend has lifetime metrics.
    if (typeof backend.lifetime === 'function') f |= BlkF.LIFETIME;
    // device/blk/4: ZONED only for a zoned device.
    if (this.zoned !== null) f |= BlkF.ZONED;
    this.offeredFeatures = f;

    this.server = new QueueServer<BlkRequest>({
      name: 'virtio-blk',
      numQueues,
      logger: opts.logger,
      handler: () => this.requests.serve,
      newRequest: (chain, queueIndex) => new BlkRequest(chain, queueIndex, this.requests),
      // seg_max is offered whatever size the driver gives a queue: a chain of seg_max data
      // segments plus header and status must fit even on a smaller queue (indirect tables).
      minChainSegments: chainSegments,
      // A batching backend submits each round's operations when the round ends.
      ...(backend.roundEnd !== undefined ? { roundEnd: () => backend.roundEnd!() } : {}),
    });
    this.requests = new BlkRequestHandler(this, backend, this.id, this.server, opts.logger);
    const server = this.server;
    backend.gateWaits?.(() => server.hasAvailable());
  }

  // ---- configuration space (5.2.4) ----

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    // 5.2.4 through its layout (spec/blk.ts); fields of features not offered and padding read 0
    // (device/blk/3). num_queues is filled without MQ too (1), as QEMU does, for drivers that
    // read it unconditionally.
    const blkSize = this.blockSize / BLK_SECTOR_SIZE;
    // device/blk/2: with CONFIG_WCE but without FLUSH the device is writethrough.
    const wce = (features & BlkF.CONFIG_WCE) !== 0n;
    const flush = (features & BlkF.FLUSH) !== 0n;
    const values: ConfigValues<BlkConfigField> = {
      capacity: this.capacity,
      sizeMax: this.sizeMax,
      segMax: this.segMax,
      geometryCylinders: this.geometry?.cylinders ?? 0,
      geometryHeads: this.geometry?.heads ?? 0,
      geometrySectors: this.geometry?.sectors ?? 0,
      blkSize: this.blockSize,
      physicalBlockExp: Math.log2(blkSize),
      minIoSize: 1,
      optIoSize: this.optIoSize,
      writeback: wce && !flush ? 0 : this.writeback,
      numQueues: this.queueMaxSizes.length,
      maxDiscardSectors: this.maxDiscardSectors,
      maxDiscardSeg: this.maxDiscardSegments,
      discardSectorAlignment: blkSize,
      maxWriteZeroesSectors: this.maxDiscardSectors,
      maxWriteZeroesSeg: this.maxDiscardSegments,
      // device/blk/23: set only when a write zeroes can deallocate.
      writeZeroesMayUnmap: this.backend.canUnmap ? 1 : 0,
      maxSecureEraseSectors: this.maxDiscardSectors,
      maxSecureEraseSeg: this.maxDiscardSegments,
      secureEraseSectorAlignment: blkSize,
      // device/blk/6..14: the zoned characteristics once ZONED is negotiated, else zeros.
      ...this.zonedConfig((features & BlkF.ZONED) !== 0n),
    };
    encodeConfig(BLK_CONFIG_LAYOUT, values, this.offeredFeatures | BlkF.MQ, offset, dst, littleEndian);
  }

  writeConfig(offset: number, src: Uint8Array, features: bigint, littleEndian?: boolean): void {
    // Only writeback is writable, and only with CONFIG_WCE negotiated (driver/blk/21); 0 or 1.
    decodeConfigWrite(BLK_CONFIG_LAYOUT, offset, src, features, littleEndian ?? true, (field, val) => {
      if (field !== 'writeback' || (val !== 0 && val !== 1)) return;
      this.writeback = val;
      this.log?.debug(`virtio-blk: cache mode ${val ? 'writeback' : 'writethrough'}`);
    });
  }

  configWritable(offset: number, size: number, features: bigint): boolean {
    return configWriteAllowed(BLK_CONFIG_LAYOUT, offset, size, features);
  }

  validateFeatures(accepted: bigint): string | null {
    if ((accepted & BlkF.ZONED) !== 0n && this.zoned === null) return 'VIRTIO_BLK_F_ZONED was not offered';
    // device/blk/6: a host-managed device cannot work for a driver that did not accept ZONED;
    // a host-aware one goes on as a regular device (its zoned fields read 0).
    if ((accepted & BlkF.ZONED) === 0n && this.zoned?.model === BlkZonedModel.HM) return 'a host-managed zoned device needs VIRTIO_BLK_F_ZONED';
    return null;
  }

  private zonedConfig(negotiated: boolean): Partial<ConfigValues<BlkConfigField>> {
    const z = this.zoned;
    if (z === null || !negotiated) return {};
    return {
      zonedZoneSectors: z.zoneSectors,
      zonedMaxOpenZones: z.maxOpen,
      zonedMaxActiveZones: z.maxActive,
      zonedMaxAppendSectors: z.maxAppendSectors,
      zonedWriteGranularity: z.writeGranularity,
      zonedModel: z.model,
    };
  }

  /**
   * Re-reads the backend's size (after it grew or shrank) and, when the capacity changed,
   * sends a configuration change notification (device/blk/15, device/blk/16). Requests are
   * checked against the new capacity from now on. Returns whether it changed.
   */
  refreshCapacity(): boolean {
    const cap = Math.floor(this.backend.size / BLK_SECTOR_SIZE);
    if (cap === this.capacity) return false;
    this.capacity = cap;
    this.server.context?.notifyConfigChange();
    return true;
  }

  // ---- lifecycle ----

  activate(ctx: DeviceContext): void {
    this.requests.configure(ctx.features, ctx.littleEndian);
    const f = ctx.features;
    if ((f & BlkF.CONFIG_WCE) !== 0n && (f & BlkF.FLUSH) === 0n) this.writeback = 0; // device/blk/2
    // Buffers made available before DRIVER_OK are served now.
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  /** Device Suspend (the core runs the protocol): the queue server stops and drains. */
  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  reset(): void {
    // In-flight backend operations may still finish; the server drops their completions.
    this.server.reset();
    this.requests.reset();
    this.zoned?.onDeviceReset();
    this.writeback = this.initialWriteback;
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}

function isUint(x: unknown, max: number): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;
}
