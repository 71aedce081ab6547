/**
 * 5.2 Block Device, device side. Requests are decoded from the readable part of a chain (header,
 * then OUT data or discard segments) and the writable part (IN data, GET_ID bytes, then the
 * status byte, always the last writable byte), whatever the framing (5.2.6.3 legacy: no
 * assumption about descriptor boundaries). The backend is called on guest memory directly.
 * Requests complete in whatever order the backend finishes them.
 *
 * Everything the driver controls is checked: a bad request gets a status (IOERR or UNSUPP),
 * never an exception; a broken ring sets DEVICE_NEEDS_RESET.
 */
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { QueueError, isVirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor, DescriptorChain, writeWritableByteAt } from '../../queue/chain.js';
import type { DeviceQueue } from '../../queue/types.js';
import {
  BLK_CONFIG_LAYOUT,
  BLK_ID_BYTES,
  BLK_SECTOR_SIZE,
  BLK_WRITE_ZEROES_FLAG_UNMAP,
  BlkConfig,
  BlkDiscardSegment,
  BlkF,
  BlkLifetime,
  BlkPreEol,
  BlkReqHeader,
  BlkReqType,
  BlkStatus,
  type BlkConfigField,
} from '../../spec/blk.js';
import { type ConfigValues, decodeConfigWrite, encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import type { BlkBackend } from './backend.js';

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
  /** Legacy CHS geometry (VIRTIO_BLK_F_GEOMETRY). Not offered by default. */
  geometry?: BlkGeometry;
  logger?: Logger;
}

export interface BlkGeometry {
  cylinders: number;
  heads: number;
  sectors: number;
}

const MAX_SAFE_SECTOR_HI = 0x1f_ffff; // sector < 2^53 / 512 keeps byte offsets exact
const U32 = 0x1_0000_0000;
const DEFAULT_QUEUE_SIZE = 256;
const DEFAULT_MAX_DISCARD_SECTORS = 1 << 22;
const DEFAULT_MAX_DISCARD_SEG = 32;

/** Transport features the device works with (not IN_ORDER: requests complete out of order). */
const TRANSPORT_FEATURES = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;

const Phase = {
  IDLE: 0,
  /** Backend data operations (or discard segments) in flight. */
  IO: 1,
  /** Writethrough or secure erase: a flush follows the data. */
  FLUSH: 2,
} as const;

/** One in-flight request; a pool of them per queue, reused, so the hot path allocates nothing. */
class BlkRequest {
  readonly chain: DescriptorChain;
  phase: number = Phase.IDLE;
  pending = 0;
  status: number = BlkStatus.OK;
  flushAfter = false;
  /** Bytes of the writable part (before the status byte) the device wrote. */
  filled = 0;
  epoch = 0;
  next: BlkRequest | null = null;
  readonly onOk: () => void;
  readonly onErr: (e: unknown) => void;

  constructor(
    readonly dev: BlkDevice,
    readonly queue: QueueState,
    chainCapacity: number,
    memory: DeviceContext['memory'],
  ) {
    this.chain = new DescriptorChain(memory, chainCapacity);
    this.onOk = () => dev.opDone(this, BlkStatus.OK);
    this.onErr = (e: unknown) => {
      dev.logBackendError(e);
      dev.opDone(this, BlkStatus.IOERR);
    };
  }
}

/** Queues that write used entries now and publish them once per pass (SplitQueue, PackedQueue, VhostQueue). */
interface DeferringQueue {
  pushDeferred(chain: DescriptorChain, written: number): void;
  publish(): void;
}

/** Per-queue state: the device queue, the free request pool and re-entrancy flags. */
class QueueState {
  free: BlkRequest | null = null;
  /** `vq` when it can defer used idx updates to the end of a round (2.7.8), else null. */
  readonly dq: DeferringQueue | null;
  epoch = 0;
  busy = false;
  again = false;
  starved = false;
  notifyScheduled = false;
  readonly flushNotify: () => void;
  constructor(
    readonly index: number,
    readonly vq: DeviceQueue,
    dev: BlkDevice,
  ) {
    this.flushNotify = () => {
      this.notifyScheduled = false;
      dev.notify(this);
    };
    const d = vq as DeviceQueue & Partial<DeferringQueue>;
    this.dq = typeof d.pushDeferred === 'function' && typeof d.publish === 'function' ? (d as DeviceQueue & DeferringQueue) : null;
  }
}

export class BlkDevice implements VirtioDevice {
  readonly deviceId = DeviceId.BLOCK;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = BlkConfig.SIZE;

  readonly readOnly: boolean;
  /** Sectors of 512 bytes; follows the backend's size through refreshCapacity(). */
  capacity: number;
  readonly blockSize: number;
  readonly segMax: number;
  readonly maxDiscardSectors: number;
  readonly maxDiscardSegments: number;
  /** size_max in bytes, 0 when VIRTIO_BLK_F_SIZE_MAX is not offered. */
  readonly sizeMax: number;
  readonly geometry: BlkGeometry | null;
  /** The cache mode field (CONFIG_WCE): 1 writeback, 0 writethrough. */
  writeback: number;

  private readonly backend: BlkBackend;
  private readonly log: Logger | undefined;
  private readonly id = new Uint8Array(BLK_ID_BYTES);
  private readonly initialWriteback: number;
  private readonly chainCapacity: number;

  private ctx: DeviceContext | null = null;
  private queues: (QueueState | null)[] = [];
  /** Booleans derived from the negotiated features once, at activation (no BigInt on hot paths). */
  private fFlush = false;
  private fDiscard = false;
  private fWriteZeroes = false;
  private fSecureErase = false;
  private fLifetime = false;
  private fWce = false;
  private le = true;

  private readonly hdr = new Uint8Array(BlkReqHeader.SIZE);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly seg = new Uint8Array(BlkDiscardSegment.SIZE);
  private readonly segView = new DataView(this.seg.buffer);
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  /** State of the synchronous span walk (avoids a closure per request). */
  private spanReq: BlkRequest | null = null;
  private spanOffset = 0;
  private spanWrite = false;
  private readonly spanFn = (bytes: Uint8Array, off: number, len: number): void => this.doSpan(bytes, off, len);

  constructor(backend: BlkBackend, opts: BlkDeviceOptions = {}) {
    this.backend = backend;
    this.log = opts.logger;
    const numQueues = opts.numQueues ?? 1;
    const queueSize = opts.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(numQueues) || numQueues < 1 || numQueues > 0xffff) throw new RangeError(`numQueues ${numQueues} not in 1..65535`);
    if (!Number.isInteger(queueSize) || queueSize < 2 || queueSize > 32768) throw new RangeError(`queueSize ${queueSize} not in 2..32768`);
    const blockSize = opts.blockSize ?? BLK_SECTOR_SIZE;
    if (!Number.isInteger(blockSize) || blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) {
      throw new RangeError(`blockSize ${blockSize} is not a power of two in 512..65536`);
    }
    this.blockSize = blockSize;
    this.readOnly = (opts.readOnly ?? false) || (backend.readOnly ?? false);
    this.capacity = Math.floor(backend.size / BLK_SECTOR_SIZE);
    this.queueMaxSizes = Array.from({ length: numQueues }, () => queueSize);
    // 5.2.4 seg_max: the data segments besides header and status; a chain holds at most that
    // plus 2 (QEMU uses queue size - 2 too).
    this.chainCapacity = Math.max(queueSize, 4);
    this.segMax = this.chainCapacity - 2;
    this.maxDiscardSectors = opts.maxDiscardSectors ?? DEFAULT_MAX_DISCARD_SECTORS;
    this.maxDiscardSegments = opts.maxDiscardSegments ?? DEFAULT_MAX_DISCARD_SEG;
    if (!Number.isInteger(this.maxDiscardSectors) || this.maxDiscardSectors < 1 || this.maxDiscardSectors >= U32) throw new RangeError('bad maxDiscardSectors');
    if (!Number.isInteger(this.maxDiscardSegments) || this.maxDiscardSegments < 1 || this.maxDiscardSegments > 4096) throw new RangeError('bad maxDiscardSegments');
    this.sizeMax = opts.sizeMax ?? 0;
    if (opts.sizeMax !== undefined && (!Number.isInteger(this.sizeMax) || this.sizeMax < BLK_SECTOR_SIZE || this.sizeMax >= U32)) {
      throw new RangeError(`sizeMax ${opts.sizeMax} not in 512..2^32-1`);
    }
    const g = opts.geometry;
    if (g && !(isUint(g.cylinders, 0xffff) && isUint(g.heads, 0xff) && isUint(g.sectors, 0xff))) {
      throw new RangeError('geometry: cylinders 0..65535, heads and sectors 0..255');
    }
    this.geometry = g ? { cylinders: g.cylinders, heads: g.heads, sectors: g.sectors } : null;
    const serial = new TextEncoder().encode(opts.serial ?? '');
    this.id.set(serial.subarray(0, BLK_ID_BYTES));
    this.initialWriteback = (opts.writeback ?? true) ? 1 : 0;
    this.writeback = this.initialWriteback;

    // device/blk/1: FLUSH always, and CONFIG_WCE only with it.
    let f = TRANSPORT_FEATURES | BlkF.SEG_MAX | BlkF.BLK_SIZE | BlkF.FLUSH | BlkF.TOPOLOGY | BlkF.CONFIG_WCE;
    if (numQueues > 1) f |= BlkF.MQ;
    if (this.sizeMax > 0) f |= BlkF.SIZE_MAX;
    if (this.geometry) f |= BlkF.GEOMETRY;
    if (this.readOnly) f |= BlkF.RO;
    else if (opts.discard ?? true) f |= BlkF.DISCARD | BlkF.WRITE_ZEROES | BlkF.SECURE_ERASE;
    // device/blk/27, device/blk/28: only when the backend has lifetime metrics.
    if (typeof backend.lifetime === 'function') f |= BlkF.LIFETIME;
    // device/blk/4: not a zoned device, ZONED is never offered.
    this.offeredFeatures = f;
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

  validateFeatures(accepted: bigint): string | null {
    if ((accepted & BlkF.ZONED) !== 0n) return 'VIRTIO_BLK_F_ZONED was not offered';
    return null;
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
    this.ctx?.notifyConfigChange();
    return true;
  }

  // ---- lifecycle ----

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    const f = ctx.features;
    this.fFlush = (f & BlkF.FLUSH) !== 0n;
    this.fDiscard = (f & BlkF.DISCARD) !== 0n;
    this.fWriteZeroes = (f & BlkF.WRITE_ZEROES) !== 0n;
    this.fSecureErase = (f & BlkF.SECURE_ERASE) !== 0n;
    this.fLifetime = (f & BlkF.LIFETIME) !== 0n;
    this.fWce = (f & BlkF.CONFIG_WCE) !== 0n;
    if (this.fWce && !this.fFlush) this.writeback = 0; // device/blk/2
    this.le = ctx.littleEndian;
    this.queues = this.queueMaxSizes.map(() => null);
    for (let i = 0; i < this.queueMaxSizes.length; i++) this.setupQueue(i);
    // Buffers made available before DRIVER_OK are served now.
    for (let i = 0; i < this.queues.length; i++) if (this.queues[i]) this.onQueueNotify(i);
  }

  private setupQueue(index: number): QueueState | null {
    const ctx = this.ctx;
    if (!ctx) return null;
    const vq = ctx.queue(index);
    if (!vq) return null;
    const qs = new QueueState(index, vq, this);
    for (let i = 0; i < vq.size; i++) {
      const r = new BlkRequest(this, qs, this.chainCapacity, ctx.memory);
      r.next = qs.free;
      qs.free = r;
    }
    this.queues[index] = qs;
    return qs;
  }

  reset(): void {
    // In-flight backend operations may still finish; their epoch no longer matches.
    for (const q of this.queues) if (q) q.epoch++;
    this.queues = [];
    this.ctx = null;
    this.writeback = this.initialWriteback;
  }

  resetQueue(index: number): void {
    const q = this.queues[index];
    if (q) {
      q.epoch++;
      this.queues[index] = null;
    }
  }

  onQueueNotify(index: number): void {
    let q = this.queues[index];
    if (q === undefined) return;
    if (q === null || q.vq !== this.ctx?.queue(index)) {
      // A queue enabled after DRIVER_OK or re-enabled after a queue reset.
      if (q) q.epoch++;
      q = this.setupQueue(index);
      if (!q) return;
    }
    if (q.busy) {
      q.again = true; // re-entered from a synchronous completion path: the outer loop re-polls
      return;
    }
    q.busy = true;
    try {
      this.drain(q);
    } finally {
      q.busy = false;
      this.publishUsed(q);
    }
    this.notify(q);
  }

  private drain(q: QueueState): void {
    const vq = q.vq;
    // Bounded: each pass pops at most queue-size buffers (the pool size).
    for (;;) {
      q.again = false;
      vq.disableNotification();
      for (;;) {
        const req = q.free;
        if (req === null) {
          q.starved = true; // resumed when a request completes
          return; // (onQueueNotify publishes)
        }
        let got: boolean;
        try {
          got = vq.pop(req.chain);
        } catch (e) {
          this.queueBroken(e);
          return;
        }
        if (!got) break;
        q.free = req.next;
        req.next = null;
        req.epoch = q.epoch;
        this.start(req);
      }
      // Completions of this round become visible at once, before notifications are re-enabled.
      this.publishUsed(q);
      if (!vq.enableNotification() && !q.again) return;
    }
  }

  /** Publishes the used entries finish() deferred during a pass (one idx store per round). */
  private publishUsed(q: QueueState): void {
    if (q.dq === null) return;
    try {
      q.dq.publish();
    } catch (e) {
      this.queueBroken(e);
    }
  }

  private queueBroken(e: unknown): void {
    const reason = e instanceof QueueError ? e.message : `unexpected: ${(e as Error)?.message ?? String(e)}`;
    this.log?.error(`virtio-blk: ${reason}`);
    this.ctx?.needsReset(reason);
  }

  // ---- request processing (5.2.6) ----

  /** Decodes and starts one request; completes it at once unless the backend went async. */
  private start(req: BlkRequest): void {
    const chain = req.chain;
    req.status = BlkStatus.OK;
    req.pending = 0;
    req.flushAfter = false;
    req.filled = 0;
    req.phase = Phase.IO;
    if (chain.fault !== null || chain.writableBytes === 0) {
      // An unmapped segment or no status byte: answer what we can.
      if (chain.writableBytes === 0) this.log?.warn('virtio-blk: request without a status byte');
      this.finish(req, BlkStatus.IOERR);
      return;
    }
    const reader = this.reader.reset(chain);
    const le = this.le;
    let hv: DataView = this.hdrView;
    let ho = 0;
    // Usually the header sits in the first segment: read it in place (no copy), else gather it.
    const mem = chain.memory;
    const r0 = chain.readableCount > 0 && chain.lens[0]! >= BlkReqHeader.SIZE ? mem.locate(chain.addrs[0]!, BlkReqHeader.SIZE) : -1;
    if (r0 >= 0) {
      hv = mem.dataViewOf(r0);
      ho = chain.addrs[0]! - mem.baseOf(r0);
      reader.skip(BlkReqHeader.SIZE);
    } else if (reader.read(this.hdr, 0, BlkReqHeader.SIZE) !== BlkReqHeader.SIZE) {
      this.finish(req, BlkStatus.IOERR); // short header
      return;
    }
    const type = hv.getUint32(ho + BlkReqHeader.TYPE, le);
    const lo = hv.getUint32(ho + BlkReqHeader.SECTOR + (le ? 0 : 4), le);
    const hi = hv.getUint32(ho + BlkReqHeader.SECTOR + (le ? 4 : 0), le);
    // A sector past 2^53/512 is surely out of range; keep it as Infinity-safe number.
    const sector = hi > MAX_SAFE_SECTOR_HI ? Number.MAX_SAFE_INTEGER : hi * U32 + lo;
    const dataIn = chain.writableBytes - 1; // the status byte is the last writable byte
    const dataOut = chain.readableBytes - BlkReqHeader.SIZE;
    try {
      switch (type) {
        case BlkReqType.IN:
          this.startRw(req, sector, dataIn, dataOut, false);
          break;
        case BlkReqType.OUT:
          this.startRw(req, sector, dataOut, dataIn, true);
          break;
        case BlkReqType.FLUSH:
          // Executed even without FLUSH negotiated (then every write is writethrough anyway).
          this.callBackend(req, this.backend.flush());
          break;
        case BlkReqType.GET_ID: {
          // driver/blk/17 asks for 20 bytes; a shorter buffer gets a truncated id.
          req.filled = this.writer.reset(chain).write(this.id, 0, Math.min(BLK_ID_BYTES, dataIn));
          break;
        }
        case BlkReqType.GET_LIFETIME:
          this.getLifetime(req, dataIn);
          break;
        case BlkReqType.DISCARD:
          this.startSegments(req, type, this.fDiscard, dataOut);
          break;
        case BlkReqType.WRITE_ZEROES:
          this.startSegments(req, type, this.fWriteZeroes, dataOut);
          break;
        case BlkReqType.SECURE_ERASE:
          this.startSegments(req, type, this.fSecureErase, dataOut);
          break;
        default:
          // Unknown types, legacy SCSI, and zoned requests without ZONED (device/blk/30).
          req.status = BlkStatus.UNSUPP;
      }
    } catch (e) {
      // A backend that threw synchronously.
      this.logBackendError(e);
      req.status = BlkStatus.IOERR;
    }
    req.phase = req.flushAfter && req.status === BlkStatus.OK ? Phase.FLUSH : Phase.IO;
    if (req.pending === 0) this.advance(req);
  }

  private startRw(req: BlkRequest, sector: number, len: number, wrongDir: number, isWrite: boolean): void {
    // Data in the wrong direction (readable data for IN, writable data for OUT): IOERR.
    if (wrongDir !== 0 || len % BLK_SECTOR_SIZE !== 0) {
      req.status = BlkStatus.IOERR;
      return;
    }
    if (sector > this.capacity || len / BLK_SECTOR_SIZE > this.capacity - sector) {
      req.status = BlkStatus.IOERR; // 5.2.6.1 beyond capacity
      return;
    }
    if (isWrite) {
      if (this.readOnly) {
        req.status = BlkStatus.IOERR; // device/blk/17
        return;
      }
      // Writethrough: the write completes only once stable (device/blk/25).
      req.flushAfter = !this.fFlush || (this.fWce && this.writeback === 0);
    }
    if (len === 0) return;
    if (!isWrite) req.filled = len;
    this.spanReq = req;
    this.spanOffset = sector * BLK_SECTOR_SIZE;
    this.spanWrite = isWrite;
    const cur = isWrite ? this.reader : this.writer.reset(req.chain);
    const done = cur.spans(len, this.spanFn);
    this.spanReq = null;
    if (done !== len) req.status = BlkStatus.IOERR;
  }

  private doSpan(bytes: Uint8Array, off: number, len: number): void {
    const req = this.spanReq!;
    const at = this.spanOffset;
    this.spanOffset += len;
    if (req.status !== BlkStatus.OK) return;
    try {
      const r = this.spanWrite ? this.backend.write(at, bytes, off, len) : this.backend.read(at, bytes, off, len);
      if (r !== undefined) {
        req.pending++;
        r.then(req.onOk, req.onErr);
      }
    } catch (e) {
      this.logBackendError(e);
      req.status = BlkStatus.IOERR;
    }
  }

  private getLifetime(req: BlkRequest, dataIn: number): void {
    const lifetime = this.backend.lifetime;
    if (!this.fLifetime || typeof lifetime !== 'function') {
      req.status = BlkStatus.UNSUPP;
      return;
    }
    if (dataIn < BlkLifetime.SIZE) {
      req.status = BlkStatus.IOERR;
      return;
    }
    const info = lifetime.call(this.backend);
    const b = this.seg; // scratch, 16 bytes
    const v = this.segView;
    // device/blk/29: never a reserved value; what the backend cannot say is 0 (undefined).
    const eol = isUint(info.preEolInfo, BlkPreEol.URGENT) ? info.preEolInfo : 0;
    const a = isUint(info.deviceLifetimeEstTypA, LIFETIME_EST_MAX) ? info.deviceLifetimeEstTypA : 0;
    const bb = isUint(info.deviceLifetimeEstTypB, LIFETIME_EST_MAX) ? info.deviceLifetimeEstTypB : 0;
    v.setUint16(BlkLifetime.PRE_EOL_INFO, eol, this.le);
    v.setUint16(BlkLifetime.DEVICE_LIFETIME_EST_TYP_A, a, this.le);
    v.setUint16(BlkLifetime.DEVICE_LIFETIME_EST_TYP_B, bb, this.le);
    req.filled = this.writer.reset(req.chain).write(b, 0, BlkLifetime.SIZE);
  }

  /**
   * DISCARD, WRITE_ZEROES, SECURE_ERASE: every segment is validated before any is executed, so
   * a rejected request changes nothing (the driver cannot assume otherwise, driver/blk/25).
   */
  private startSegments(req: BlkRequest, type: number, negotiated: boolean, dataOut: number): void {
    if (!negotiated) {
      req.status = BlkStatus.UNSUPP;
      return;
    }
    if (this.readOnly) {
      req.status = BlkStatus.IOERR;
      return;
    }
    // driver/blk/16: whole segments only; some segments; no writable data besides the status.
    if (dataOut === 0 || dataOut % BlkDiscardSegment.SIZE !== 0 || req.chain.writableBytes !== 1) {
      req.status = BlkStatus.IOERR;
      return;
    }
    const n = dataOut / BlkDiscardSegment.SIZE;
    if (n > this.maxDiscardSegments) {
      req.status = BlkStatus.UNSUPP; // driver/blk/18..20: more segments than max_*_seg
      return;
    }
    const align = this.blockSize / BLK_SECTOR_SIZE;
    const reader = this.reader;
    // Pass 1: validate (the reader sits after the header).
    const seg = this.seg;
    const v = this.segView;
    const le = this.le;
    for (let i = 0; i < n; i++) {
      reader.read(seg, 0, BlkDiscardSegment.SIZE);
      const status = this.checkSegment(type, v, le, align);
      if (status !== BlkStatus.OK) {
        req.status = status;
        return;
      }
    }
    // Pass 2: execute.
    reader.reset(req.chain).skip(BlkReqHeader.SIZE);
    for (let i = 0; i < n; i++) {
      reader.read(seg, 0, BlkDiscardSegment.SIZE);
      const sector = segSector(v, le);
      const off = sector * BLK_SECTOR_SIZE;
      const len = v.getUint32(BlkDiscardSegment.NUM_SECTORS, le) * BLK_SECTOR_SIZE;
      const unmap = (v.getUint32(BlkDiscardSegment.FLAGS, le) & BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0;
      const be = this.backend;
      let r: Promise<void> | void;
      if (type === BlkReqType.DISCARD) r = be.discard(off, len);
      else if (type === BlkReqType.WRITE_ZEROES) r = be.writeZeroes(off, len, unmap);
      else if (be.secureErase) r = be.secureErase(off, len);
      else {
        r = be.writeZeroes(off, len, false);
        req.flushAfter = true;
      }
      this.callBackend(req, r);
    }
  }

  private checkSegment(type: number, v: DataView, le: boolean, align: number): number {
    const flags = v.getUint32(BlkDiscardSegment.FLAGS, le);
    // device/blk/18: unknown flags; device/blk/19: unmap on a discard (and on a secure erase).
    if ((flags & ~BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0) return BlkStatus.UNSUPP;
    if (flags !== 0 && type !== BlkReqType.WRITE_ZEROES) return BlkStatus.UNSUPP;
    const sector = segSector(v, le);
    const num = v.getUint32(BlkDiscardSegment.NUM_SECTORS, le);
    if (num > this.maxDiscardSectors) return BlkStatus.IOERR;
    if (sector > this.capacity || num > this.capacity - sector) return BlkStatus.IOERR;
    // discard_sector_alignment / secure_erase_sector_alignment.
    if (type !== BlkReqType.WRITE_ZEROES && (sector % align !== 0 || num % align !== 0)) return BlkStatus.IOERR;
    return BlkStatus.OK;
  }

  private callBackend(req: BlkRequest, r: Promise<void> | void): void {
    if (r !== undefined) {
      req.pending++;
      r.then(req.onOk, req.onErr);
    }
  }

  /** @internal A backend operation of `req` finished. */
  opDone(req: BlkRequest, status: number): void {
    if (status !== BlkStatus.OK && req.status === BlkStatus.OK) req.status = status;
    // Promise callbacks never run inside start(), so pending reaches 0 only after it returned.
    if (--req.pending > 0) return;
    this.advance(req);
  }

  /** All operations of the current phase are done: flush if needed, else complete. */
  private advance(req: BlkRequest): void {
    if (req.phase === Phase.FLUSH && req.status === BlkStatus.OK) {
      req.phase = Phase.IO;
      try {
        this.callBackend(req, this.backend.flush());
      } catch (e) {
        this.logBackendError(e);
        req.status = BlkStatus.IOERR;
      }
      if (req.pending > 0) return;
    }
    this.finish(req, req.status);
  }

  /**
   * Writes the status byte (the last writable byte) and returns the buffer. Writable bytes
   * before it that the request did not fill (all of them on an error) are zeroed, so the used
   * length (all writable bytes) never claims bytes the device did not write (2.7.8.2).
   */
  private finish(req: BlkRequest, status: number): void {
    const q = req.queue;
    req.phase = Phase.IDLE;
    if (req.epoch !== q.epoch || this.queues[q.index] !== q) return; // reset meanwhile: drop
    const chain = req.chain;
    let written = 0;
    if (chain.writableBytes > 0) {
      const filled = status === BlkStatus.OK ? req.filled : 0;
      const rest = chain.writableBytes - 1 - filled;
      if (rest > 0) {
        const w = this.writer.reset(chain);
        if (filled > 0) w.skip(filled);
        w.fill(rest);
      }
      written = writeWritableByteAt(chain, chain.writableBytes - 1, status) ? chain.writableBytes : 0;
    }
    try {
      // Inside a pass (synchronous completion) the entry is published at the end of the round.
      if (q.busy && q.dq !== null) q.dq.pushDeferred(chain, written);
      else q.vq.push(chain, written);
    } catch (e) {
      this.queueBroken(e);
      return;
    }
    req.next = q.free;
    q.free = req;
    if (!q.busy) {
      // An asynchronous completion: notify once per turn, and resume a starved queue.
      if (q.starved) {
        q.starved = false;
        this.onQueueNotify(q.index);
      } else if (!q.notifyScheduled) {
        q.notifyScheduled = true;
        queueMicrotask(q.flushNotify);
      }
    }
  }

  /** @internal Sends a used-buffer notification for `q` (the context applies suppression). */
  notify(q: QueueState): void {
    if (this.queues[q.index] !== q) return;
    this.ctx?.notifyUsed(q.index);
  }

  /** @internal */
  logBackendError(e: unknown): void {
    const msg = isVirtioError(e) ? `${e.code}: ${e.message}` : (e as Error)?.message ?? String(e);
    this.log?.warn(`virtio-blk: backend error: ${msg}`);
  }
}

/** 5.2.6: device_lifetime_est_typ_a/b run from 0x01 to 0x0b (0 undefined); larger are reserved. */
const LIFETIME_EST_MAX = 0x0b;

function isUint(x: unknown, max: number): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;
}

function segSector(v: DataView, le: boolean): number {
  const lo = v.getUint32(BlkDiscardSegment.SECTOR + (le ? 0 : 4), le);
  const hi = v.getUint32(BlkDiscardSegment.SECTOR + (le ? 4 : 0), le);
  return hi > MAX_SAFE_SECTOR_HI ? Number.MAX_SAFE_INTEGER : hi * U32 + lo;
}
