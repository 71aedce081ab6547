/**
 * 5.2.6 Device Operation of the block device: one request decoded from the readable part of a
 * chain (header, then OUT data or discard segments) and the writable part (IN data, GET_ID
 * bytes, then the status byte, always the last writable byte), whatever the framing (5.2.6.3
 * legacy: no assumption about descriptor boundaries). The backend works on guest memory
 * directly. Requests complete in whatever order the backend finishes them; the QueueServer
 * pops them and returns them to the ring.
 *
 * Everything the driver controls is checked: a bad request gets a status (IOERR or UNSUPP),
 * never an exception.
 */
import { QueueRequest, type QueueServer } from '../../device/queue-server.js';
import { ErrorCode, VirtioError, isVirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { ChainCursor, type DescriptorChain, writableMappedPrefix, writeWritableByteAt } from '../../queue/chain.js';
import {
  BLK_ID_BYTES,
  BLK_SECTOR_SIZE,
  BLK_WRITE_ZEROES_FLAG_UNMAP,
  BlkDiscardSegment,
  BlkF,
  BlkLifetime,
  BlkPreEol,
  BlkReqHeader,
  BlkReqType,
  BlkStatus,
} from '../../spec/blk.js';
import { BLK_APPEND_SECTOR_BYTES } from '../../spec/blk-zoned.js';
import type { BlkBackend } from './backend.js';
import { BlkZoneRequests } from './blk-zoned-requests.js';
import { setU64, type ZonedModel } from './zoned-model.js';

const MAX_SAFE_SECTOR_HI = 0x1f_ffff; // sector < 2^53 / 512 keeps byte offsets exact
const U32 = 0x1_0000_0000;

const Phase = {
  IDLE: 0,
  /** Backend data operations (or discard segments) in flight. */
  IO: 1,
  /** Writethrough or secure erase: a flush follows the data. */
  FLUSH: 2,
} as const;

/** What request processing reads from the device: its configuration as the driver sees it. */
export interface BlkDeviceState {
  readonly readOnly: boolean;
  /** Sectors of 512 bytes. */
  readonly capacity: number;
  readonly blockSize: number;
  readonly maxDiscardSectors: number;
  readonly maxDiscardSegments: number;
  /** The cache mode field (CONFIG_WCE): 1 writeback, 0 writethrough. */
  readonly writeback: number;
  /** The zones of a zoned device (VIRTIO_BLK_F_ZONED), or null. */
  readonly zoned: ZonedModel | null;
}

/** One slot of a queue's request pool, reused, so the hot path allocates nothing. */
export class BlkRequest extends QueueRequest {
  phase: number = Phase.IDLE;
  pending = 0;
  status: number = BlkStatus.OK;
  flushAfter = false;
  /** Bytes of the writable part (before the status byte) the device wrote. */
  filled = 0;
  /** A read of a zoned device: its first sector and length, masked for unwritten data at the end (-1: none). */
  zonedReadSector = -1;
  zonedReadSectors = 0;
  /**
   * The memory the chain was popped from, pinned while the request runs: the backend reads and
   * writes guest buffers off the event loop (libuv), so a memory table change or the end of a
   * vhost-user session must not unmap them under it (GuestMemory.pin).
   */
  pinned: GuestMemory | null = null;
  readonly onOk: () => void;
  readonly onErr: (e: unknown) => void;

  constructor(chain: DescriptorChain, queueIndex: number, handler: BlkRequestHandler) {
    super(chain, queueIndex);
    this.onOk = () => handler.opDone(this, BlkStatus.OK);
    this.onErr = (e: unknown) => {
      handler.logBackendError(e);
      handler.opDone(this, BlkStatus.IOERR);
    };
  }
}

/** Executes block requests against a backend for a BlkDevice (one per device, all its queues). */
export class BlkRequestHandler {
  /** Booleans derived from the negotiated features once, at activation (no BigInt on hot paths). */
  private fFlush = false;
  /** A backend flush failed since the last device reset (see `flush`). */
  private flushFailed = false;
  private fDiscard = false;
  private fWriteZeroes = false;
  private fSecureErase = false;
  private fLifetime = false;
  private fWce = false;
  /** ZONED negotiated (and the device is zoned). */
  private zones: ZonedModel | null = null;
  private le = true;
  /** Where a ZONE_APPEND's data goes (the zone's write pointer), from ZonedModel.startWrite. */
  private readonly appendAt = new Float64Array(1);
  private readonly zeroFn = (offset: number, length: number): void => {
    this.writer.skip(offset - this.zeroAt);
    this.writer.fill(length);
    this.zeroAt = offset + length;
  };
  private zeroAt = 0;

  private readonly hdr = new Uint8Array(BlkReqHeader.SIZE);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly seg = new Uint8Array(BlkDiscardSegment.SIZE);
  private readonly segView = new DataView(this.seg.buffer);
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  /** ZONE_REPORT and zone management (blk-zoned-requests.ts); its record holds append_sector. */
  private readonly zoned: BlkZoneRequests;
  /** State of the synchronous span walk (avoids a closure per request). */
  private spanReq: BlkRequest | null = null;
  private spanOffset = 0;
  private spanWrite = false;
  private readonly spanFn = (bytes: Uint8Array, off: number, len: number): void => this.doSpan(bytes, off, len);
  /** The queue handler: starts a request (it completes through `server.complete`). */
  readonly serve = (req: BlkRequest): void => this.start(req);

  constructor(
    private readonly dev: BlkDeviceState,
    private readonly backend: BlkBackend,
    private readonly id: Uint8Array,
    private readonly server: QueueServer<BlkRequest>,
    private readonly log: Logger | undefined,
  ) {
    this.zoned = new BlkZoneRequests(dev, this.writer);
  }

  /** At activation: the negotiated features and the guest's byte order. */
  configure(features: bigint, littleEndian: boolean): void {
    this.fFlush = (features & BlkF.FLUSH) !== 0n;
    this.fDiscard = (features & BlkF.DISCARD) !== 0n;
    this.fWriteZeroes = (features & BlkF.WRITE_ZEROES) !== 0n;
    this.fSecureErase = (features & BlkF.SECURE_ERASE) !== 0n;
    this.fLifetime = (features & BlkF.LIFETIME) !== 0n;
    this.fWce = (features & BlkF.CONFIG_WCE) !== 0n;
    this.zones = (features & BlkF.ZONED) !== 0n ? this.dev.zoned : null;
    this.le = littleEndian;
  }

  /** Decodes and starts one request; completes it at once unless the backend went async. */
  private start(req: BlkRequest): void {
    const chain = req.chain;
    req.status = BlkStatus.OK;
    req.pending = 0;
    req.flushAfter = false;
    req.filled = 0;
    req.zonedReadSector = -1;
    req.phase = Phase.IO;
    if (chain.memory.pin()) req.pinned = chain.memory;
    else {
      this.finish(req, BlkStatus.IOERR); // popped from memory already gone: touch nothing
      return;
    }
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
          this.callBackend(req, this.flush());
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
        case BlkReqType.ZONE_APPEND:
          if (this.zones === null) req.status = BlkStatus.UNSUPP;
          else this.startAppend(req, this.zones, sector, dataOut, dataIn);
          break;
        case BlkReqType.ZONE_REPORT:
          if (this.zones === null) req.status = BlkStatus.UNSUPP;
          else this.zoned.report(req, this.zones, sector, dataOut, dataIn, this.le);
          break;
        case BlkReqType.ZONE_OPEN:
        case BlkReqType.ZONE_CLOSE:
        case BlkReqType.ZONE_FINISH:
        case BlkReqType.ZONE_RESET:
        case BlkReqType.ZONE_RESET_ALL:
          if (this.zones === null) req.status = BlkStatus.UNSUPP;
          else req.status = this.zoned.manage(this.zones, type, sector, dataOut, dataIn);
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
    if (sector > this.dev.capacity || len / BLK_SECTOR_SIZE > this.dev.capacity - sector) {
      req.status = BlkStatus.IOERR; // 5.2.6.1 beyond capacity
      return;
    }
    if (isWrite) {
      if (this.dev.readOnly) {
        req.status = BlkStatus.IOERR; // device/blk/17
        return;
      }
      // Writethrough: the write completes only once stable (device/blk/25).
      req.flushAfter = !this.fFlush || (this.fWce && this.dev.writeback === 0);
    }
    const zones = this.zones;
    if (zones !== null) {
      const n = len / BLK_SECTOR_SIZE;
      req.status = isWrite ? zones.startWrite(sector, n, false, this.appendAt) : zones.checkRead(sector, n);
      if (req.status !== BlkStatus.OK) return;
      if (!isWrite) {
        req.zonedReadSector = sector;
        req.zonedReadSectors = n;
      }
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
    if (this.dev.readOnly) {
      req.status = BlkStatus.IOERR;
      return;
    }
    // driver/blk/16: whole segments only; some segments; no writable data besides the status.
    if (dataOut === 0 || dataOut % BlkDiscardSegment.SIZE !== 0 || req.chain.writableBytes !== 1) {
      req.status = BlkStatus.IOERR;
      return;
    }
    const n = dataOut / BlkDiscardSegment.SIZE;
    if (n > this.dev.maxDiscardSegments) {
      req.status = BlkStatus.UNSUPP; // driver/blk/18..20: more segments than max_*_seg
      return;
    }
    const align = this.dev.blockSize / BLK_SECTOR_SIZE;
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
    if (num > this.dev.maxDiscardSectors) return BlkStatus.IOERR;
    if (sector > this.dev.capacity || num > this.dev.capacity - sector) return BlkStatus.IOERR;
    // discard_sector_alignment / secure_erase_sector_alignment.
    if (type !== BlkReqType.WRITE_ZEROES && (sector % align !== 0 || num % align !== 0)) return BlkStatus.IOERR;
    return BlkStatus.OK;
  }

  /**
   * ZONE_APPEND (5.2.6): the data goes at the zone's write pointer, and the sector it went to is
   * returned in append_sector, the 8 writable bytes before the status byte (virtio_blk_req_za).
   */
  private startAppend(req: BlkRequest, zones: ZonedModel, sector: number, dataOut: number, dataIn: number): void {
    if (this.dev.readOnly) {
      req.status = BlkStatus.IOERR;
      return;
    }
    if (dataIn !== BLK_APPEND_SECTOR_BYTES || dataOut % BLK_SECTOR_SIZE !== 0) {
      req.status = BlkStatus.IOERR; // not the virtio_blk_req_za layout
      return;
    }
    const n = dataOut / BLK_SECTOR_SIZE;
    if (sector >= this.dev.capacity || n > this.dev.capacity - sector) {
      req.status = BlkStatus.IOERR;
      return;
    }
    req.status = zones.startWrite(sector, n, true, this.appendAt);
    if (req.status !== BlkStatus.OK) return;
    const at = this.appendAt[0]!;
    req.flushAfter = !this.fFlush || (this.fWce && this.dev.writeback === 0);
    // device/blk/41: append_sector is the data's first sector.
    const v = this.zoned.recordView;
    setU64(v, 0, at, this.le);
    req.filled = this.writer.reset(req.chain).write(this.zoned.record, 0, BLK_APPEND_SECTOR_BYTES);
    if (n === 0) return;
    this.spanReq = req;
    this.spanOffset = at * BLK_SECTOR_SIZE;
    this.spanWrite = true;
    const done = this.reader.spans(dataOut, this.spanFn);
    this.spanReq = null;
    if (done !== dataOut) req.status = BlkStatus.IOERR;
  }

  /**
   * The backend's flush, failing for good once it failed: after a failed fdatasync the kernel
   * may have dropped the dirty pages it could not write, so a later flush that succeeds would
   * claim durability for data that is gone. Every flush (and writethrough write) fails with
   * IOERR until the device is reset.
   */
  private flush(): Promise<void> | void {
    if (this.flushFailed) throw new VirtioError(ErrorCode.BACKEND_IO, 'an earlier flush failed: flushes fail until the device is reset');
    let r: Promise<void> | void;
    try {
      r = this.backend.flush();
    } catch (e) {
      this.flushFailed = true;
      throw e;
    }
    return r === undefined ? r : r.then(undefined, this.onFlushError);
  }

  private readonly onFlushError = (e: unknown): never => {
    this.flushFailed = true;
    throw e;
  };

  /** Device reset: the driver starts over, and flushes are tried again. */
  reset(): void {
    this.flushFailed = false;
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
        this.callBackend(req, this.flush());
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
    req.phase = Phase.IDLE;
    const pinned = req.pinned;
    req.pinned = null;
    try {
      this.finishLive(req, status);
    } finally {
      // The backend is done with the buffers (and the status byte is written): let them go.
      pinned?.unpin();
    }
  }

  private finishLive(req: BlkRequest, status: number): void {
    // Reset meanwhile: the buffers are the driver's again (device/content/8), touch nothing.
    if (!this.server.isLive(req)) return;
    const chain = req.chain;
    let written = 0;
    if (status === BlkStatus.OK && req.zonedReadSector >= 0 && this.zones !== null) {
      // device/blk/48: what lies past a zone's written data reads as zeros, whatever the
      // backend holds there (after a reset or a finish).
      this.writer.reset(chain);
      this.zeroAt = 0;
      this.zones.unwritten(req.zonedReadSector, req.zonedReadSectors, this.zeroFn);
    }
    if (chain.writableBytes > 0) {
      const filled = status === BlkStatus.OK ? req.filled : 0;
      const rest = chain.writableBytes - 1 - filled;
      if (rest > 0) {
        const w = this.writer.reset(chain);
        if (filled > 0) w.skip(filled);
        w.fill(rest);
      }
      const statusWritten = writeWritableByteAt(chain, chain.writableBytes - 1, status);
      // A segment outside guest memory was not written: report only the prefix that was
      // (2.7.8.2), not every writable byte.
      written = !statusWritten ? 0 : chain.fault === null ? chain.writableBytes : writableMappedPrefix(chain);
    }
    // Inside a pass (synchronous completion) the server publishes the entry at the end of the round.
    this.server.complete(req, written);
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
