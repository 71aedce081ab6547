/**
 * 5.6.6.1 Device Operation: Request Queues. One command decoded from the readable part of a
 * chain (lun, id, task attribute, the CDB of cdb_size bytes, then dataout) and answered in the
 * writable part (sense_len, residual, status_qualifier, status, response, sense[sense_size], then
 * datain), whatever the framing. Block data moves between guest memory and the backend without
 * a copy; everything else is built in one scratch buffer. Nothing is allocated per command on
 * the read/write path.
 *
 * Everything the driver controls is checked and answered, never thrown: an address that is not
 * a target of this host gets BAD_TARGET, a transfer the buffers cannot hold OVERRUN (with the
 * whole buffer as residual), a short header FAILURE, a bad CDB CHECK CONDITION with fixed-format
 * sense data (ILLEGAL REQUEST and its additional sense code).
 *
 * Commands in flight are linked in a list, so a task management function (scsi-control.ts)
 * can find them by LUN and id, mark them ABORTED or RESET and wait for them to complete before
 * it completes itself (5.6.6.2).
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { QueueRequest, type QueueServer } from '../../device/queue-server.js';
import { isVirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import {
  Asc,
  FixedSense,
  SAI_READ_CAPACITY_16,
  SCSI_LUN_ADDRESS_FIRST_BYTE,
  ScsiCmdReq,
  ScsiCmdResp,
  ScsiOp,
  ScsiResponse,
  ScsiStatus,
  SenseKey,
  cdbLength,
} from '../../spec/scsi.js';
import {
  CommandResult,
  MAX_UNMAP_BLOCKS,
  MAX_UNMAP_DESCRIPTORS,
  MAX_WRITE_SAME_BLOCKS,
  SCRATCH_BYTES,
  type LunDirectory,
  buildFixedSense,
  getBe16,
  getBe32,
  getBe64,
  inquiry,
  modeSense,
  readCapacity10,
  readCapacity16,
  reportLuns,
  requestSense,
} from './scsi-emulation.js';
import { SCSI_BLOCK_SIZE, type ScsiLogicalUnit } from './scsi-lun.js';

/** The CDB bytes the device reads at most (32: the default cdb_size; longer CDBs are skipped). */
const MAX_CDB = 32;
const WRITE_SAME_CHUNK = 64 * 1024;

/** What the request path reads from the device: its LUNs and the configured sizes. */
export interface ScsiHostState extends LunDirectory {
  /** The logical unit `id` of target 0, or null. */
  lun(id: number): ScsiLogicalUnit | null;
  /** sense_size of the configuration: sense bytes written per response (driver-writable, default 96). */
  readonly senseSize: number;
  /** cdb_size of the configuration: CDB bytes in each request (driver-writable, default 32). */
  readonly cdbSize: number;
}

/** A task management function waiting for the commands it aborted or reset to complete. */
export interface TmfWait {
  remaining: number;
  resolve(): void;
}

/** One slot of a queue's request pool, reused (commands, control requests and event buffers). */
export class ScsiRequest extends QueueRequest {
  lun: ScsiLogicalUnit | null = null;
  lunId = -1;
  target = -1;
  tagLo = 0;
  tagHi = 0;
  pending = 0;
  response: number = ScsiResponse.OK;
  status: number = ScsiStatus.GOOD;
  senseKey = 0;
  asc = 0;
  /** Sense key and code a failed backend operation reports (read or write error). */
  errKey: number = SenseKey.MEDIUM_ERROR;
  errAsc: number = Asc.UNRECOVERED_READ_ERROR;
  dataInOffset = 0;
  dataInAvail = 0;
  dataOutAvail = 0;
  transferred = 0;
  flushAfter = false;
  /** A TMF cancelled it: the response it gets (ABORTED or RESET), or -1. */
  abortResponse = -1;
  waiters: TmfWait[] | null = null;
  /**
   * The memory the chain was popped from, pinned while the command runs: the backend reads and
   * writes guest buffers off the event loop, so a vhost-user memory change or disconnect must
   * not unmap them under it (GuestMemory.pin, docs/vhost-user-memory-changes.md).
   */
  pinned: GuestMemory | null = null;
  prev: ScsiRequest | null = null;
  next: ScsiRequest | null = null;
  linked = false;
  readonly onOk: () => void;
  readonly onErr: (e: unknown) => void;

  constructor(chain: DescriptorChain, queueIndex: number, handler: ScsiRequestHandler) {
    super(chain, queueIndex);
    this.onOk = () => handler.opDone(this, null);
    this.onErr = (e: unknown) => handler.opDone(this, e);
  }
}

export class ScsiRequestHandler {
  private le = true;
  private readonly hdr = new Uint8Array(ScsiCmdReq.HEADER + MAX_CDB);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly cdb = this.hdr.subarray(ScsiCmdReq.CDB);
  private readonly resp = new Uint8Array(ScsiCmdResp.HEADER + FixedSense.SIZE);
  private readonly respView = new DataView(this.resp.buffer);
  private readonly scratch = new Uint8Array(SCRATCH_BYTES);
  private readonly result = new CommandResult();
  private readonly ids = new Int32Array(256);
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private spanReq: ScsiRequest | null = null;
  private spanOffset = 0;
  private spanWrite = false;
  private readonly spanFn = (bytes: Uint8Array, off: number, len: number): void => this.doSpan(bytes, off, len);
  /** Commands in flight (popped, not completed), most recent first. */
  private head: ScsiRequest | null = null;
  /** The request queue handler. */
  readonly serve = (req: ScsiRequest): void => this.start(req);

  constructor(
    private readonly host: ScsiHostState,
    private readonly server: QueueServer<ScsiRequest>,
    private readonly log: Logger | undefined,
  ) {}

  /** At activation: the guest's byte order for the header fields (5.6.6.1 legacy: native order). */
  configure(littleEndian: boolean): void {
    this.le = littleEndian;
  }

  private start(req: ScsiRequest): void {
    const chain = req.chain;
    req.lun = null;
    req.lunId = -1;
    req.target = -1;
    req.tagLo = req.tagHi = 0;
    req.pending = 0;
    req.response = ScsiResponse.OK;
    req.status = ScsiStatus.GOOD;
    req.senseKey = req.asc = 0;
    req.transferred = 0;
    req.flushAfter = false;
    req.abortResponse = -1;
    req.waiters = null;
    req.dataInOffset = ScsiCmdResp.HEADER + this.host.senseSize;
    req.dataInAvail = Math.max(0, chain.writableBytes - req.dataInOffset);
    // Right after a pop the memory is always there to pin (null only for a released one).
    req.pinned = chain.memory.pin() ? chain.memory : null;
    this.link(req);
    const cdbSize = this.host.cdbSize;
    const headerLen = ScsiCmdReq.HEADER + cdbSize;
    if (chain.fault !== null || chain.writableBytes < ScsiCmdResp.HEADER || chain.readableBytes < headerLen) {
      // Unmapped buffers, no room for the response, or a header shorter than cdb_size says.
      req.dataOutAvail = Math.max(0, chain.readableBytes - headerLen);
      req.response = ScsiResponse.FAILURE;
      this.finish(req);
      return;
    }
    req.dataOutAvail = chain.readableBytes - headerLen;
    if (req.dataOutAvail > 0 && req.dataInAvail > 0) {
      // 5.6.6.1: dataout and datain both present without VIRTIO_SCSI_F_INOUT (never offered).
      req.response = ScsiResponse.FAILURE;
      this.finish(req);
      return;
    }
    const hdr = this.hdr;
    const reader = this.reader.reset(chain);
    const take = ScsiCmdReq.HEADER + Math.min(cdbSize, MAX_CDB);
    reader.read(hdr, 0, take);
    if (take < hdr.length) hdr.fill(0, take);
    if (cdbSize > MAX_CDB) reader.skip(cdbSize - MAX_CDB);
    const hv = this.hdrView;
    req.tagLo = hv.getUint32(ScsiCmdReq.ID + (this.le ? 0 : 4), this.le);
    req.tagHi = hv.getUint32(ScsiCmdReq.ID + (this.le ? 4 : 0), this.le);
    const wlun = isReportLunsWlun(hdr, 0);
    if (!wlun) {
      const lunId = decodeLun(hdr, 0);
      if (lunId === BAD_TARGET) {
        // 5.6.6.1: not an address of a target of this host: never processed.
        req.response = ScsiResponse.BAD_TARGET;
        this.finish(req);
        return;
      }
      req.target = 0;
      req.lunId = lunId;
      req.lun = lunId >= 0 ? this.host.lun(lunId) : null;
    }
    try {
      this.execute(req, wlun, cdbSize);
    } catch (e) {
      // A backend that threw synchronously.
      this.failed(req, e);
    }
    if (req.pending === 0) this.advance(req);
  }

  private execute(req: ScsiRequest, wlun: boolean, cdbSize: number): void {
    const cdb = this.cdb;
    const op = cdb[0]!;
    const r = this.result;
    r.clear();
    const need = cdbLength(op);
    if (need > cdbSize) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
    const lun = req.lun;
    switch (op) {
      case ScsiOp.INQUIRY:
        inquiry(cdb, lun, wlun, r, this.scratch);
        return this.dataIn(req);
      case ScsiOp.REPORT_LUNS:
        reportLuns(cdb, this.host, this.ids, r, this.scratch);
        return this.dataIn(req);
      case ScsiOp.REQUEST_SENSE:
        requestSense(cdb, lun, r, this.scratch);
        return this.dataIn(req);
    }
    if (wlun) {
      // The REPORT LUNS well-known LU serves INQUIRY, REPORT LUNS, REQUEST SENSE and TEST UNIT READY.
      if (op !== ScsiOp.TEST_UNIT_READY) this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPERATION_CODE);
      return;
    }
    if (lun === null) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.LOGICAL_UNIT_NOT_SUPPORTED);
    if (lun.unitAttention >= 0) {
      // SAM-5 5.14: the pending unit attention answers this command, once.
      const ua = lun.unitAttention;
      lun.unitAttention = -1;
      return this.check(req, SenseKey.UNIT_ATTENTION, ua);
    }
    switch (op) {
      case ScsiOp.TEST_UNIT_READY:
      case ScsiOp.START_STOP_UNIT:
        return;
      case ScsiOp.READ_CAPACITY_10:
        readCapacity10(lun, r, this.scratch);
        return this.dataIn(req);
      case ScsiOp.SERVICE_ACTION_IN_16:
        if ((cdb[1]! & 0x1f) !== SAI_READ_CAPACITY_16) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
        readCapacity16(cdb, lun, r, this.scratch);
        return this.dataIn(req);
      case ScsiOp.MODE_SENSE_6:
      case ScsiOp.MODE_SENSE_10:
        modeSense(cdb, op === ScsiOp.MODE_SENSE_10, lun, r, this.scratch);
        return this.dataIn(req);
      case ScsiOp.READ_6:
      case ScsiOp.WRITE_6: {
        // SBC-3 5.11: a 21-bit LBA; a transfer length of 0 means 256 blocks.
        const lba = ((cdb[1]! & 0x1f) << 16) | (cdb[2]! << 8) | cdb[3]!;
        return this.rw(req, lun, op === ScsiOp.WRITE_6, lba, cdb[4]! === 0 ? 256 : cdb[4]!, false);
      }
      case ScsiOp.READ_10:
      case ScsiOp.WRITE_10:
        return this.rw(req, lun, op === ScsiOp.WRITE_10, getBe32(cdb, 2), getBe16(cdb, 7), (cdb[1]! & 0x08) !== 0);
      case ScsiOp.READ_12:
      case ScsiOp.WRITE_12:
        return this.rw(req, lun, op === ScsiOp.WRITE_12, getBe32(cdb, 2), getBe32(cdb, 6), (cdb[1]! & 0x08) !== 0);
      case ScsiOp.READ_16:
      case ScsiOp.WRITE_16:
        return this.rw(req, lun, op === ScsiOp.WRITE_16, getBe64(cdb, 2), getBe32(cdb, 10), (cdb[1]! & 0x08) !== 0);
      case ScsiOp.SYNCHRONIZE_CACHE_10:
      case ScsiOp.SYNCHRONIZE_CACHE_16: {
        const sixteen = op === ScsiOp.SYNCHRONIZE_CACHE_16;
        const lba = sixteen ? getBe64(cdb, 2) : getBe32(cdb, 2);
        const n = sixteen ? getBe32(cdb, 10) : getBe16(cdb, 7);
        // SBC-3 5.22: 0 blocks means up to the last block.
        if (lba > lun.blocks || n > lun.blocks - lba) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
        req.errKey = SenseKey.MEDIUM_ERROR;
        req.errAsc = Asc.WRITE_ERROR;
        return this.callBackend(req, lun.backend.flush());
      }
      case ScsiOp.UNMAP:
        return this.unmap(req, lun);
      case ScsiOp.WRITE_SAME_16:
        return this.writeSame16(req, lun);
      default:
        return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPERATION_CODE);
    }
  }

  private check(req: ScsiRequest, key: number, asc: number): void {
    req.status = ScsiStatus.CHECK_CONDITION;
    req.senseKey = key;
    req.asc = asc;
  }

  /** Parameter data of the scratch buffer to datain, as much as the allocation length allows. */
  private dataIn(req: ScsiRequest): void {
    const r = this.result;
    if (r.status !== ScsiStatus.GOOD) return this.check(req, r.senseKey, r.asc);
    // 5.6.6.1 OVERRUN: the allocation length asks for more than datain holds (or the data
    // would go the wrong way).
    if (r.allocLen > req.dataInAvail || req.dataOutAvail > 0) {
      req.response = ScsiResponse.OVERRUN;
      return;
    }
    const n = Math.min(r.dataLen, r.allocLen);
    if (n === 0) return;
    req.transferred = this.writer.reset(req.chain).skip(req.dataInOffset) === req.dataInOffset ? this.writer.write(this.scratch, 0, n) : 0;
  }

  private rw(req: ScsiRequest, lun: ScsiLogicalUnit, isWrite: boolean, lba: number, blocks: number, fua: boolean): void {
    if (isWrite && lun.readOnly) return this.check(req, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
    if (lba > lun.blocks || blocks > lun.blocks - lba) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
    const bytes = blocks * SCSI_BLOCK_SIZE;
    const avail = isWrite ? req.dataOutAvail : req.dataInAvail;
    const wrongWay = isWrite ? req.dataInAvail : req.dataOutAvail;
    if (bytes > avail || (bytes > 0 && wrongWay > 0)) {
      req.response = ScsiResponse.OVERRUN;
      return;
    }
    if (bytes === 0) return;
    req.errKey = SenseKey.MEDIUM_ERROR;
    req.errAsc = isWrite ? Asc.WRITE_ERROR : Asc.UNRECOVERED_READ_ERROR;
    req.flushAfter = isWrite && fua;
    req.lun = lun;
    this.spanReq = req;
    this.spanOffset = lba * SCSI_BLOCK_SIZE;
    this.spanWrite = isWrite;
    let cur = this.reader; // after the CDB
    if (!isWrite) {
      cur = this.writer.reset(req.chain);
      cur.skip(req.dataInOffset);
    }
    const done = cur.spans(bytes, this.spanFn);
    this.spanReq = null;
    req.transferred = done;
    if (done !== bytes) this.check(req, SenseKey.HARDWARE_ERROR, Asc.INTERNAL_TARGET_FAILURE);
  }

  private doSpan(bytes: Uint8Array, off: number, len: number): void {
    const req = this.spanReq!;
    const at = this.spanOffset;
    this.spanOffset += len;
    if (req.status !== ScsiStatus.GOOD) return;
    const be = req.lun!.backend;
    try {
      const r = this.spanWrite ? be.write(at, bytes, off, len) : be.read(at, bytes, off, len);
      if (r !== undefined) {
        req.pending++;
        r.then(req.onOk, req.onErr);
      }
    } catch (e) {
      this.failed(req, e);
    }
  }

  /** UNMAP (SBC-3 5.28): every descriptor is checked before any block is deallocated. */
  private unmap(req: ScsiRequest, lun: ScsiLogicalUnit): void {
    const cdb = this.cdb;
    const paramLen = getBe16(cdb, 7);
    if (lun.readOnly) return this.check(req, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
    if (paramLen === 0) return;
    if (paramLen > req.dataOutAvail || req.dataInAvail > 0) {
      req.response = ScsiResponse.OVERRUN;
      return;
    }
    if (paramLen < 8) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR);
    const d = this.scratch;
    const want = Math.min(paramLen, 8 + 16 * MAX_UNMAP_DESCRIPTORS);
    const got = this.reader.read(d, 0, want);
    req.transferred = paramLen;
    const bdLen = getBe16(d, 2);
    if (bdLen % 16 !== 0 || bdLen / 16 > MAX_UNMAP_DESCRIPTORS) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_PARAMETER_LIST);
    const n = Math.floor(Math.min(bdLen, got - 8) / 16);
    for (let i = 0; i < n; i++) {
      const lba = getBe64(d, 8 + 16 * i);
      const count = getBe32(d, 16 + 16 * i);
      if (count > MAX_UNMAP_BLOCKS) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_PARAMETER_LIST);
      if (lba > lun.blocks || count > lun.blocks - lba) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
    }
    req.errKey = SenseKey.MEDIUM_ERROR;
    req.errAsc = Asc.WRITE_ERROR;
    for (let i = 0; i < n; i++) {
      const count = getBe32(d, 16 + 16 * i);
      if (count > 0) this.callBackend(req, lun.backend.discard(getBe64(d, 8 + 16 * i) * SCSI_BLOCK_SIZE, count * SCSI_BLOCK_SIZE));
    }
  }

  /** WRITE SAME (16) (SBC-3 5.42): zeroes (or unmap) through the backend, else the block repeated. */
  private writeSame16(req: ScsiRequest, lun: ScsiLogicalUnit): void {
    const cdb = this.cdb;
    const flags = cdb[1]!;
    const unmap = (flags & 0x08) !== 0;
    const ndob = (flags & 0x01) !== 0;
    // ANCHOR and the obsolete LBDATA/PBDATA are not supported; WSNZ: 0 blocks is refused.
    if ((flags & 0x16) !== 0) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
    const lba = getBe64(cdb, 2);
    const blocks = getBe32(cdb, 10);
    if (blocks === 0 || blocks > MAX_WRITE_SAME_BLOCKS) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
    if (lun.readOnly) return this.check(req, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
    if (lba > lun.blocks || blocks > lun.blocks - lba) return this.check(req, SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
    const block = this.scratch.subarray(0, SCSI_BLOCK_SIZE);
    if (ndob) block.fill(0);
    else {
      if (req.dataOutAvail < SCSI_BLOCK_SIZE || req.dataInAvail > 0) {
        req.response = ScsiResponse.OVERRUN;
        return;
      }
      req.transferred = this.reader.read(block, 0, SCSI_BLOCK_SIZE);
    }
    req.errKey = SenseKey.MEDIUM_ERROR;
    req.errAsc = Asc.WRITE_ERROR;
    const off = lba * SCSI_BLOCK_SIZE;
    const len = blocks * SCSI_BLOCK_SIZE;
    if (block.every((b) => b === 0)) return this.callBackend(req, lun.backend.writeZeroes(off, len, unmap));
    this.callBackend(req, writePattern(lun, off, len, block.slice()));
  }

  private callBackend(req: ScsiRequest, r: Promise<void> | void): void {
    if (r !== undefined) {
      req.pending++;
      r.then(req.onOk, req.onErr);
    }
  }

  private failed(req: ScsiRequest, e: unknown): void {
    const msg = isVirtioError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    this.log?.warn(`virtio-scsi: backend error: ${msg}`);
    if (req.status === ScsiStatus.GOOD) this.check(req, req.errKey, req.errAsc);
  }

  /** @internal A backend operation of `req` finished (`err` null: it succeeded). */
  opDone(req: ScsiRequest, err: unknown): void {
    if (err !== null) this.failed(req, err);
    // Promise callbacks never run inside start(), so pending reaches 0 only after it returned.
    if (--req.pending > 0) return;
    this.advance(req);
  }

  private advance(req: ScsiRequest): void {
    if (req.flushAfter && req.status === ScsiStatus.GOOD && req.abortResponse < 0) {
      // FUA: the write is acknowledged once stable.
      req.flushAfter = false;
      try {
        this.callBackend(req, req.lun!.backend.flush());
      } catch (e) {
        this.failed(req, e);
      }
      if (req.pending > 0) return;
    }
    this.finish(req);
  }

  /**
   * Writes the response (sense_len, residual, status_qualifier, status, response, then the
   * sense data) and returns the buffer. The used length covers the response and, when datain
   * was transferred, the sense area (zeroed past sense_len) and the data.
   */
  private finish(req: ScsiRequest): void {
    this.unlink(req);
    const live = this.server.isLive(req) && req.pinned !== null;
    const waiters = req.waiters;
    req.waiters = null;
    const pinned = req.pinned;
    req.pinned = null;
    try {
      // Reset meanwhile: the buffers are the driver's again (device/content/8), touch nothing.
      if (live) this.server.complete(req, this.writeResponse(req));
    } finally {
      // The backend is done with the buffers and the response is written: let them go.
      pinned?.unpin();
    }
    if (waiters !== null) for (const w of waiters) if (--w.remaining === 0) w.resolve();
  }

  private writeResponse(req: ScsiRequest): number {
    const chain = req.chain;
    if (chain.writableBytes < ScsiCmdResp.HEADER) return 0;
    const response = req.abortResponse >= 0 ? req.abortResponse : req.response;
    const resp = this.resp;
    let senseLen = 0;
    const senseRoom = Math.min(this.host.senseSize, chain.writableBytes - ScsiCmdResp.HEADER);
    if (response === ScsiResponse.OK && req.status === ScsiStatus.CHECK_CONDITION) {
      buildFixedSense(resp.subarray(ScsiCmdResp.SENSE), req.senseKey, req.asc);
      senseLen = Math.min(FixedSense.SIZE, senseRoom);
    }
    const ok = response === ScsiResponse.OK && req.status === ScsiStatus.GOOD;
    const moved = ok ? req.transferred : 0;
    // residual = data_length - transferred (5.6.6.1); a command that did not complete moved nothing.
    const residual = req.dataInAvail + req.dataOutAvail - moved;
    const v = this.respView;
    const le = this.le;
    v.setUint32(ScsiCmdResp.SENSE_LEN, senseLen, le);
    v.setUint32(ScsiCmdResp.RESIDUAL, Math.min(residual, 0xffff_ffff), le);
    v.setUint16(ScsiCmdResp.STATUS_QUALIFIER, 0, le);
    resp[ScsiCmdResp.STATUS] = response === ScsiResponse.OK ? req.status : ScsiStatus.GOOD;
    resp[ScsiCmdResp.RESPONSE] = response;
    const w = this.writer.reset(chain);
    w.write(resp, 0, ScsiCmdResp.HEADER + senseLen);
    const dataIn = ok && req.dataInAvail > 0 ? req.transferred : 0;
    if (dataIn === 0) return ScsiCmdResp.HEADER + senseLen;
    w.fill(req.dataInOffset - ScsiCmdResp.HEADER - senseLen);
    return req.dataInOffset + dataIn;
  }

  // ---- commands in flight, for task management (5.6.6.2) ----

  private link(req: ScsiRequest): void {
    req.prev = null;
    req.next = this.head;
    if (this.head !== null) this.head.prev = req;
    this.head = req;
    req.linked = true;
  }

  private unlink(req: ScsiRequest): void {
    if (!req.linked) return;
    req.linked = false;
    if (req.prev !== null) req.prev.next = req.next;
    else this.head = req.next;
    if (req.next !== null) req.next.prev = req.prev;
    req.prev = req.next = null;
  }

  /**
   * Commands in flight on target 0 matching `lunId` (-1: every LUN) and, with `matchTag`, the id
   * `tagLo`/`tagHi`. With `response` >= 0 they are cancelled with it and `wait` learns how many
   * to wait for. Returns how many matched.
   */
  cancel(lunId: number, matchTag: boolean, tagLo: number, tagHi: number, response: number, wait: TmfWait | null): number {
    let n = 0;
    for (let r = this.head; r !== null; r = r.next) {
      if (r.target !== 0 || r.queueIndex < 2) continue;
      if (lunId >= 0 && r.lunId !== lunId) continue;
      if (matchTag && (r.tagLo !== tagLo || r.tagHi !== tagHi)) continue;
      n++;
      if (response < 0) continue;
      if (r.abortResponse < 0) r.abortResponse = response;
      if (wait !== null) {
        wait.remaining++;
        (r.waiters ??= []).push(wait);
      }
    }
    return n;
  }
}

/** decodeLun: not an address of this host's target 0. */
export const BAD_TARGET = -2;

/**
 * 5.6.6.1 lun: byte 0 is 1, byte 1 the target, bytes 2-3 a single level LUN structure
 * (peripheral or flat space addressing), bytes 4-7 zero. Returns the LUN id of target 0, -1 for
 * an address method this host does not use (no such LUN), or BAD_TARGET.
 */
export function decodeLun(b: Uint8Array, at: number): number {
  if (b[at] !== SCSI_LUN_ADDRESS_FIRST_BYTE || b[at + 1] !== 0) return BAD_TARGET;
  if ((b[at + 4]! | b[at + 5]! | b[at + 6]! | b[at + 7]!) !== 0) return BAD_TARGET;
  const method = b[at + 2]! >>> 6;
  if (method > 1) return -1;
  return ((b[at + 2]! & 0x3f) << 8) | b[at + 3]!;
}

/** 5.6.6.1: the REPORT LUNS well-known logical unit, 0xC1 0x01 and six zero bytes. */
export function isReportLunsWlun(b: Uint8Array, at: number): boolean {
  return b[at] === 0xc1 && b[at + 1] === 0x01 && (b[at + 2]! | b[at + 3]! | b[at + 4]! | b[at + 5]! | b[at + 6]! | b[at + 7]!) === 0;
}

/** WRITE SAME of a non-zero block: the block repeated in chunks (a rare command; allocates). */
async function writePattern(lun: ScsiLogicalUnit, off: number, len: number, block: Uint8Array): Promise<void> {
  const chunk = new Uint8Array(Math.min(len, WRITE_SAME_CHUNK));
  for (let i = 0; i < chunk.length; i += SCSI_BLOCK_SIZE) chunk.set(block, i);
  for (let done = 0; done < len; done += chunk.length) {
    await lun.backend.write(off + done, chunk, 0, Math.min(chunk.length, len - done));
  }
}
