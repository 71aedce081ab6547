/**
 * 5.6 SCSI Host Device, driver side (the initiator): SCSI commands on the request queues, task
 * management and asynchronous notification on the controlq, events from the eventq. Every
 * request is one chain: the device-readable header (lun, id, task attribute 0, priority 0, CRN 0,
 * the CDB padded to cdb_size: driver/scsi/3) and dataout, then the device-writable response
 * (with sense_size bytes of sense) and datain. Header fields use the guest's byte order on a
 * legacy interface (driver/scsi/5). The configuration is read through spec/scsi.ts's layout;
 * the driver never writes it (driver/scsi/1).
 *
 * Events: the eventq is kept populated with `eventBuffers` device-writable buffers of
 * event_info_size bytes, at least struct virtio_scsi_event (driver/scsi/6, driver/scsi/7); each
 * is posted again once used. Events with VIRTIO_SCSI_T_EVENTS_MISSED, and transport resets with
 * reason RESCAN or REMOVED, make the driver rescan the target with REPORT LUNS (driver/scsi/8,
 * driver/scsi/9) before listeners hear of them, so `luns` is current when they do.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { readConfigFields } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  CDB_CONTROL_LINK,
  FixedSense,
  SAI_READ_CAPACITY_16,
  SCSI_CONFIG_LAYOUT,
  SCSI_DEFAULT_CDB_SIZE,
  SCSI_DEFAULT_SENSE_SIZE,
  SCSI_T_EVENTS_MISSED,
  ScsiCmdReq,
  ScsiCmdResp,
  ScsiCtrlAn,
  ScsiCtrlTmf,
  ScsiCtrlType,
  ScsiEventLayout,
  ScsiEventType,
  ScsiF,
  ScsiOp,
  ScsiQueue,
  ScsiResetReason,
  ScsiResponse,
  ScsiStatus,
  cdbLength,
} from '../../spec/scsi.js';

const U32 = 0x1_0000_0000;
const BLOCK = 512;
const SENSE_KEY_UNIT_ATTENTION = 0x6;

/** The device-type features this driver works with (not INOUT, not T10_PI). */
export const SCSI_DRIVER_FEATURES = ScsiF.HOTPLUG | ScsiF.CHANGE;

/** Options of ScsiDriver. */
export interface ScsiDriverOptions {
  /** Buffers kept in the eventq (0: the eventq is not used). Default 8. */
  eventBuffers?: number;
}

/** 5.6.4 configuration as numbers. */
export interface ScsiDriverConfig {
  /** `num_queues` of struct virtio_scsi_config. */
  numQueues: number;
  /** `seg_max` of struct virtio_scsi_config. */
  segMax: number;
  /** `max_sectors` of struct virtio_scsi_config. */
  maxSectors: number;
  /** `cmd_per_lun` of struct virtio_scsi_config. */
  cmdPerLun: number;
  /** `event_info_size` of struct virtio_scsi_config. */
  eventInfoSize: number;
  /** `sense_size` of struct virtio_scsi_config. */
  senseSize: number;
  /** `cdb_size` of struct virtio_scsi_config. */
  cdbSize: number;
  /** `max_channel` of struct virtio_scsi_config. */
  maxChannel: number;
  /** `max_target` of struct virtio_scsi_config. */
  maxTarget: number;
  /** `max_lun` of struct virtio_scsi_config. */
  maxLun: number;
}

/** One SCSI command to send on a request queue (struct virtio_scsi_req_cmd, 5.6.6.1). */
export interface ScsiCommand {
  /** LUN on `target` (0..16383), or 'report-luns' for the REPORT LUNS well-known logical unit. */
  readonly lun: number | 'report-luns';
  /** Target id (0..255). Default 0. */
  readonly target?: number;
  /** The command descriptor block, at most cdb_size bytes (zero-padded to it). */
  readonly cdb: Uint8Array;
  /** Bytes the command sends to the device (dataout). */
  readonly dataOut?: Uint8Array;
  /** Bytes of datain the driver provides. Default 0. */
  readonly dataInLength?: number;
  /** The command identifier (tag); default: a counter. */
  readonly id?: number;
  /** Request queue 0..num_queues-1; default: round robin. */
  readonly queue?: number;
}

/** The command's struct virtio_scsi_cmd_resp (5.6.6.1), decoded. */
export interface ScsiCommandResult {
  /** The request id. */
  readonly id: number;
  /** `response` of the command's struct virtio_scsi_cmd_resp. */
  readonly response: number;
  /** `status` of the command's struct virtio_scsi_cmd_resp. */
  readonly status: number;
  /** `status_qualifier` of the command's struct virtio_scsi_cmd_resp. */
  readonly statusQualifier: number;
  /** `residual` of the command's struct virtio_scsi_cmd_resp. */
  readonly residual: number;
  /** The sense bytes the device wrote (sense_len of them). */
  readonly sense: Uint8Array;
  /** The datain bytes transferred (dataInLength - residual when the command moved data in). */
  readonly data: Uint8Array;
  /** Sense key, asc and ascq of fixed-format sense data (0 when none). */
  readonly senseKey: number;
  /** Additional sense code. */
  readonly asc: number;
  /** Additional sense code qualifier. */
  readonly ascq: number;
}

/** One struct virtio_scsi_event from the eventq (5.6.6.3), decoded. */
export interface ScsiEvent {
  /** The event type without the EVENTS_MISSED flag. */
  readonly event: number;
  /** VIRTIO_SCSI_T_EVENTS_MISSED was set: events were lost, the driver should rescan. */
  readonly eventsMissed: boolean;
  /** Target id the event is about. */
  readonly target: number;
  /** LUN the event is about. */
  readonly lun: number;
  /** Event-specific reason: RESCAN/REMOVED for transport resets, asc/ascq for param changes. */
  readonly reason: number;
}

/** A command that did not end with response OK and status GOOD. */
export class ScsiCommandError extends VirtioError {
  constructor(
    /** The decoded response: response code, status and sense. */
    readonly result: ScsiCommandResult,
  ) {
    super(
      ErrorCode.REQUEST_FAILED,
      `virtio-scsi command failed: response ${result.response}, status 0x${result.status.toString(16)}` +
        (result.status === ScsiStatus.CHECK_CONDITION ? `, sense key 0x${result.senseKey.toString(16)} asc 0x${result.asc.toString(16)} ascq 0x${result.ascq.toString(16)}` : ''),
    );
  }
}

/**
 * The virtio-scsi driver (5.6): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class ScsiDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<ScsiDriver, ScsiDriverOptions> = {
    name: 'virtio-scsi',
    deviceId: DeviceId.SCSI,
    wantedFeatures: SCSI_DRIVER_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new ScsiDriver(ctx, opts),
  };

  /** The configuration as read at attach (queues, limits, sense and CDB sizes). */
  readonly config: ScsiDriverConfig;
  /** LUNs of target 0 found by the last scan (REPORT LUNS). */
  luns: number[] = [];
  /** Every event received, oldest first. */
  readonly events: ScsiEvent[] = [];

  private readonly ctx: DriverContext;
  private readonly le: boolean;
  private readonly control: RequestQueue;
  private readonly eventq: RequestQueue | null;
  private readonly requestQueues: RequestQueue[];
  private readonly eventLen: number;
  private nextQueue = 0;
  private nextId = 1;
  private listeners: ((e: ScsiEvent) => void)[] = [];
  private waiters: ((e: ScsiEvent) => void)[] = [];
  private detached = false;

  constructor(ctx: DriverContext, opts: ScsiDriverOptions = {}) {
    checkDriverContext(ScsiDriver.type, ctx);
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    const read = (o: number, l: number): Uint8Array => ctx.readConfig(o, l);
    this.config = readConfigFields(
      SCSI_CONFIG_LAYOUT,
      ['numQueues', 'segMax', 'maxSectors', 'cmdPerLun', 'eventInfoSize', 'senseSize', 'cdbSize', 'maxChannel', 'maxTarget', 'maxLun'],
      read,
      this.le,
    );
    // A front-end that owns the configuration and does not forward it (a vhost-user front-end
    // without GET_CONFIG for scsi) reads as zeros: then the defaults of 5.6.4 hold.
    const c = this.config;
    if (c.cdbSize === 0) c.cdbSize = SCSI_DEFAULT_CDB_SIZE;
    if (c.senseSize === 0) c.senseSize = SCSI_DEFAULT_SENSE_SIZE;
    if (c.eventInfoSize === 0) c.eventInfoSize = ScsiEventLayout.SIZE;
    if (c.numQueues === 0) c.numQueues = Math.max(1, ctx.numQueues - ScsiQueue.REQUESTQ);
    // device/scsi/2: the queues the initialization discovered; a request queue at least.
    if (ctx.numQueues < ScsiQueue.REQUESTQ + 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-scsi needs at least 3 queues, the device has ${ctx.numQueues}`);
    const n = Math.max(1, Math.min(this.config.numQueues, ctx.numQueues - ScsiQueue.REQUESTQ));
    this.control = new RequestQueue(ctx, ScsiQueue.CONTROLQ);
    this.requestQueues = Array.from({ length: n }, (_, i) => new RequestQueue(ctx, ScsiQueue.REQUESTQ + i));
    // driver/scsi/7: at least struct virtio_scsi_event, event_info_size when larger.
    this.eventLen = Math.max(ScsiEventLayout.SIZE, Math.min(this.config.eventInfoSize, 4096));
    const nEvents = opts.eventBuffers ?? 8;
    this.eventq = nEvents > 0 ? new RequestQueue(ctx, ScsiQueue.EVENTQ) : null;
    for (let i = 0; i < nEvents; i++) this.postEventBuffer();
  }

  /** Hears every event (after the rescan an event calls for). Returns an unsubscribe function. */
  onEvent(listener: (e: ScsiEvent) => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** The next event to arrive. */
  nextEvent(): Promise<ScsiEvent> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  detach(): void {
    this.detached = true;
    this.control.detach();
    this.eventq?.detach();
    for (const q of this.requestQueues) q.detach();
  }

  // ---- commands ----

  /** Sends one command and returns the device's answer (whatever the response and status). */
  async command(c: ScsiCommand): Promise<ScsiCommandResult> {
    const cdbSize = this.config.cdbSize;
    const senseSize = this.config.senseSize;
    if (c.cdb.length === 0 || c.cdb.length > cdbSize) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `CDB of ${c.cdb.length} bytes; cdb_size is ${cdbSize}`);
    const len = cdbLength(c.cdb[0]!);
    // driver/scsi/2: no linked commands (the obsolete LINK bit of the CONTROL byte).
    if (len > 0 && len <= c.cdb.length && (c.cdb[len - 1]! & CDB_CONTROL_LINK) !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'linked commands (CONTROL byte LINK bit) are not sent (driver/scsi/2)');
    }
    const qi = c.queue ?? this.nextQueue++ % this.requestQueues.length;
    const q = this.requestQueues[qi];
    if (!q) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no request queue ${qi}`);
    const id = c.id ?? this.nextId++;
    const hdrLen = ScsiCmdReq.HEADER + cdbSize;
    const hdr = new Uint8Array(hdrLen);
    this.putLun(hdr, ScsiCmdReq.LUN, c.lun, c.target ?? 0);
    const hv = new DataView(hdr.buffer);
    hv.setUint32(ScsiCmdReq.ID + (this.le ? 0 : 4), id % U32, this.le);
    hv.setUint32(ScsiCmdReq.ID + (this.le ? 4 : 0), Math.floor(id / U32), this.le);
    // driver/scsi/3: task_attr (SIMPLE), prio and crn are 0.
    hdr.set(c.cdb, ScsiCmdReq.CDB);
    const respLen = ScsiCmdResp.HEADER + senseSize;
    const dataIn = c.dataInLength ?? 0;
    const dma = this.ctx.dma;
    const mem = this.ctx.memory;
    const outLen = c.dataOut?.length ?? 0;
    // One DMA block per command: header, dataout, response, datain (16-byte aligned parts).
    const respAt = align16(hdrLen) + align16(outLen);
    const dataAt = respAt + align16(respLen);
    const base = dma.alloc(dataAt + Math.max(dataIn, 1), 16);
    try {
      const hdrAddr = base;
      mem.write(hdrAddr, hdr);
      const out: Segment[] = [{ addr: hdrAddr, len: hdrLen }];
      if (c.dataOut && outLen > 0) {
        mem.write(base + align16(hdrLen), c.dataOut);
        out.push({ addr: base + align16(hdrLen), len: outLen });
      }
      const respAddr = base + respAt;
      mem.fill(respAddr, respLen, 0);
      const inn: Segment[] = [{ addr: respAddr, len: respLen }];
      const dataAddr = base + dataAt;
      if (dataIn > 0) inn.push({ addr: dataAddr, len: dataIn });
      await q.submit(out, inn);
      const resp = new Uint8Array(ScsiCmdResp.HEADER);
      mem.read(respAddr, resp);
      const rv = new DataView(resp.buffer);
      const senseLen = Math.min(rv.getUint32(ScsiCmdResp.SENSE_LEN, this.le), senseSize);
      const residual = rv.getUint32(ScsiCmdResp.RESIDUAL, this.le);
      const sense = new Uint8Array(senseLen);
      if (senseLen > 0) mem.read(respAddr + ScsiCmdResp.SENSE, sense);
      const response = resp[ScsiCmdResp.RESPONSE]!;
      const status = resp[ScsiCmdResp.STATUS]!;
      const moved = response === ScsiResponse.OK && status === ScsiStatus.GOOD && dataIn > 0 ? Math.max(0, Math.min(dataIn, dataIn - residual)) : 0;
      const data = new Uint8Array(moved);
      if (moved > 0) mem.read(dataAddr, data);
      const fixed = sense.length >= 14 && (sense[0]! & 0x7e) === FixedSense.RESPONSE_CODE;
      return {
        id,
        response,
        status,
        statusQualifier: rv.getUint16(ScsiCmdResp.STATUS_QUALIFIER, this.le),
        residual,
        sense,
        data,
        senseKey: fixed ? sense[FixedSense.KEY]! & 0x0f : 0,
        asc: fixed ? sense[FixedSense.ASC]! : 0,
        ascq: fixed ? sense[FixedSense.ASCQ]! : 0,
      };
    } finally {
      dma.free(base);
    }
  }

  /** `command`, failing with ScsiCommandError unless response OK and status GOOD. */
  async run(c: ScsiCommand): Promise<ScsiCommandResult> {
    const r = await this.command(c);
    if (r.response !== ScsiResponse.OK || r.status !== ScsiStatus.GOOD) throw new ScsiCommandError(r);
    return r;
  }

  /** TEST UNIT READY on `lun`. */
  testUnitReady(lun: number): Promise<ScsiCommandResult> {
    return this.run({ lun, cdb: new Uint8Array(6) });
  }

  /**
   * TEST UNIT READY until GOOD, at most `tries` times: consumes the unit attention conditions a
   * logical unit reports first (power on, reset, changed LUN data). Returns the (asc << 8) | ascq
   * of each unit attention seen.
   */
  async clearUnitAttention(lun: number, tries = 4): Promise<number[]> {
    const seen: number[] = [];
    for (let i = 0; i < tries; i++) {
      const r = await this.command({ lun, cdb: new Uint8Array(6) });
      if (r.response === ScsiResponse.OK && r.status === ScsiStatus.GOOD) return seen;
      if (r.response !== ScsiResponse.OK || r.status !== ScsiStatus.CHECK_CONDITION || r.senseKey !== SENSE_KEY_UNIT_ATTENTION) throw new ScsiCommandError(r);
      seen.push((r.asc << 8) | r.ascq);
    }
    throw new VirtioError(ErrorCode.REQUEST_FAILED, `LUN ${lun} still reports unit attention after ${tries} TEST UNIT READY`);
  }

  /** INQUIRY: standard data, or the VPD page `page`. */
  async inquiry(lun: number | 'report-luns', page?: number, allocLen = 255): Promise<Uint8Array> {
    const cdb = new Uint8Array(6);
    cdb[0] = ScsiOp.INQUIRY;
    if (page !== undefined) {
      cdb[1] = 1;
      cdb[2] = page;
    }
    cdb[3] = allocLen >>> 8;
    cdb[4] = allocLen & 0xff;
    return (await this.run({ lun, cdb, dataInLength: allocLen })).data;
  }

  /** REPORT LUNS (select report 0) to LUN 0 of `target`: the LUN ids. */
  async reportLuns(target = 0, via: number | 'report-luns' = 0): Promise<number[]> {
    const alloc = 8 + 8 * 256;
    const cdb = new Uint8Array(12);
    cdb[0] = ScsiOp.REPORT_LUNS;
    new DataView(cdb.buffer).setUint32(6, alloc);
    const d = (await this.run({ lun: via, target, cdb, dataInLength: alloc })).data;
    const n = Math.min(new DataView(d.buffer, d.byteOffset).getUint32(0) / 8, (d.length - 8) / 8);
    const ids: number[] = [];
    for (let i = 0; i < n; i++) ids.push(((d[8 + 8 * i]! & 0x3f) << 8) | d[9 + 8 * i]!);
    return ids;
  }

  /** Rescans target 0: `luns` from REPORT LUNS (driver/scsi/8, driver/scsi/9). */
  async scan(): Promise<number[]> {
    this.luns = await this.reportLuns(0, 'report-luns');
    return this.luns;
  }

  /** READ CAPACITY (16): blocks and block size. */
  async readCapacity(lun: number): Promise<{
    /** Number of logical blocks (last LBA + 1). */
    blocks: number;
    /** Bytes per logical block. */
    blockSize: number;
    /** Logical block provisioning enabled: the LUN takes UNMAP. */
    lbpme: boolean;
  }> {
    const cdb = new Uint8Array(16);
    cdb[0] = ScsiOp.SERVICE_ACTION_IN_16;
    cdb[1] = SAI_READ_CAPACITY_16;
    cdb[13] = 32;
    const d = (await this.run({ lun, cdb, dataInLength: 32 })).data;
    const v = new DataView(d.buffer, d.byteOffset);
    return { blocks: v.getUint32(0) * U32 + v.getUint32(4) + 1, blockSize: v.getUint32(8), lbpme: (d[14]! & 0x80) !== 0 };
  }

  /** READ (16) of `blocks` 512-byte blocks at `lba`. */
  async read(lun: number, lba: number, blocks: number): Promise<Uint8Array> {
    return (await this.run({ lun, cdb: rw16(ScsiOp.READ_16, lba, blocks, false), dataInLength: blocks * BLOCK })).data;
  }

  /** WRITE (16) of `data` (whole blocks) at `lba`; `fua` makes it stable before completion. */
  async write(lun: number, lba: number, data: Uint8Array, fua = false): Promise<void> {
    if (data.length % BLOCK !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'write of a partial block');
    await this.run({ lun, cdb: rw16(ScsiOp.WRITE_16, lba, data.length / BLOCK, fua), dataOut: data });
  }

  /** SYNCHRONIZE CACHE (10) of the whole LUN (the one Linux sends; QEMU's scsi-disk has no (16)). */
  async synchronizeCache(lun: number): Promise<void> {
    const cdb = new Uint8Array(10);
    cdb[0] = ScsiOp.SYNCHRONIZE_CACHE_10;
    await this.run({ lun, cdb });
  }

  /** UNMAP of the ranges [lba, blocks]. */
  async unmap(lun: number, ranges: readonly (readonly [number, number])[]): Promise<void> {
    const p = new Uint8Array(8 + 16 * ranges.length);
    const v = new DataView(p.buffer);
    v.setUint16(0, p.length - 2);
    v.setUint16(2, 16 * ranges.length);
    ranges.forEach(([lba, n], i) => {
      v.setUint32(8 + 16 * i, Math.floor(lba / U32));
      v.setUint32(12 + 16 * i, lba % U32);
      v.setUint32(16 + 16 * i, n);
    });
    const cdb = new Uint8Array(10);
    cdb[0] = ScsiOp.UNMAP;
    cdb[7] = p.length >>> 8;
    cdb[8] = p.length & 0xff;
    await this.run({ lun, cdb, dataOut: p });
  }

  /** WRITE SAME (16): `block` (512 bytes) repeated over `blocks` blocks, or zeroes with `block` null (NDOB). */
  async writeSame(lun: number, lba: number, blocks: number, block: Uint8Array | null, unmap = false): Promise<void> {
    const cdb = rw16(ScsiOp.WRITE_SAME_16, lba, blocks, false);
    cdb[1] = (unmap ? 0x08 : 0) | (block === null ? 0x01 : 0);
    await this.run({ lun, cdb, ...(block ? { dataOut: block } : {}) });
  }

  /** MODE SENSE (10) of `page` (current values). */
  async modeSense(lun: number, page: number): Promise<Uint8Array> {
    const cdb = new Uint8Array(10);
    cdb[0] = ScsiOp.MODE_SENSE_10;
    cdb[2] = page & 0x3f;
    cdb[8] = 255;
    return (await this.run({ lun, cdb, dataInLength: 255 })).data;
  }

  /** REQUEST SENSE: the fixed-format sense data. */
  async requestSense(lun: number): Promise<Uint8Array> {
    const cdb = new Uint8Array(6);
    cdb[0] = ScsiOp.REQUEST_SENSE;
    cdb[4] = 252;
    return (await this.run({ lun, cdb, dataInLength: 252 })).data;
  }

  // ---- controlq ----

  /** A task management function (ScsiTmf); resolves with its response. */
  async taskManagement(subtype: number, lun: number, id = 0, target = 0): Promise<number> {
    const req = new Uint8Array(ScsiCtrlTmf.SIZE);
    const v = new DataView(req.buffer);
    v.setUint32(ScsiCtrlTmf.TYPE, ScsiCtrlType.TMF, this.le);
    v.setUint32(ScsiCtrlTmf.SUBTYPE, subtype, this.le);
    this.putLun(req, ScsiCtrlTmf.LUN, lun, target);
    v.setUint32(ScsiCtrlTmf.ID + (this.le ? 0 : 4), id % U32, this.le);
    v.setUint32(ScsiCtrlTmf.ID + (this.le ? 4 : 0), Math.floor(id / U32), this.le);
    const out = await this.controlRequest(req, ScsiCtrlTmf.RESPONSE_SIZE);
    return out[0]!;
  }

  /** Asynchronous notification query (or subscribe): the events the LUN supports. */
  async asyncNotification(
    lun: number,
    eventsRequested: number,
    subscribe = false,
    target = 0,
  ): Promise<{
    /** VIRTIO_SCSI_S_* response of the control request. */
    response: number;
    /** event_actual: the requested event classes the LUN supports (5.6.6.2). */
    eventActual: number;
  }> {
    const req = new Uint8Array(ScsiCtrlAn.SIZE);
    const v = new DataView(req.buffer);
    v.setUint32(ScsiCtrlAn.TYPE, subscribe ? ScsiCtrlType.AN_SUBSCRIBE : ScsiCtrlType.AN_QUERY, this.le);
    this.putLun(req, ScsiCtrlAn.LUN, lun, target);
    v.setUint32(ScsiCtrlAn.EVENT_REQUESTED, eventsRequested, this.le);
    const out = await this.controlRequest(req, ScsiCtrlAn.RESPONSE_SIZE);
    return { response: out[ScsiCtrlAn.RESPONSE]!, eventActual: new DataView(out.buffer).getUint32(ScsiCtrlAn.EVENT_ACTUAL, this.le) };
  }

  private async controlRequest(req: Uint8Array, respLen: number): Promise<Uint8Array> {
    const dma = this.ctx.dma;
    const a = dma.alloc(req.length, 16);
    const r = dma.alloc(respLen, 16);
    try {
      this.ctx.memory.write(a, req);
      this.ctx.memory.fill(r, respLen, 0xff);
      await this.control.submit([{ addr: a, len: req.length }], [{ addr: r, len: respLen }]);
      const out = new Uint8Array(respLen);
      this.ctx.memory.read(r, out);
      return out;
    } finally {
      dma.free(a);
      dma.free(r);
    }
  }

  /** 5.6.6.1 lun: 1, target, flat space single level LUN (as Linux sends it), four zero bytes. */
  private putLun(b: Uint8Array, at: number, lun: number | 'report-luns', target: number): void {
    if (lun === 'report-luns') {
      b[at] = 0xc1;
      b[at + 1] = 0x01;
      return;
    }
    b[at] = 1;
    b[at + 1] = target;
    b[at + 2] = 0x40 | ((lun >>> 8) & 0x3f);
    b[at + 3] = lun & 0xff;
  }

  // ---- eventq ----

  private postEventBuffer(): void {
    const q = this.eventq;
    if (q === null || this.detached) return;
    const len = this.eventLen;
    const addr = this.ctx.dma.alloc(len, 16);
    q.submit([], [{ addr, len }]).then(
      (used) => {
        const b = new Uint8Array(ScsiEventLayout.SIZE);
        this.ctx.memory.read(addr, b);
        this.ctx.dma.free(addr);
        this.postEventBuffer();
        if (used >= 4) void this.onEventBuffer(b);
      },
      () => this.ctx.dma.free(addr),
    );
  }

  private async onEventBuffer(b: Uint8Array): Promise<void> {
    const v = new DataView(b.buffer);
    const raw = v.getUint32(ScsiEventLayout.EVENT, this.le);
    const e: ScsiEvent = {
      event: (raw & ~SCSI_T_EVENTS_MISSED) >>> 0,
      eventsMissed: (raw & SCSI_T_EVENTS_MISSED) !== 0,
      target: b[ScsiEventLayout.LUN + 1]!,
      lun: ((b[ScsiEventLayout.LUN + 2]! << 8) | b[ScsiEventLayout.LUN + 3]!) & 0x3fff,
      reason: v.getUint32(ScsiEventLayout.REASON, this.le),
    };
    const rescan =
      e.eventsMissed ||
      (e.event === ScsiEventType.TRANSPORT_RESET && (e.reason === ScsiResetReason.RESCAN || e.reason === ScsiResetReason.REMOVED));
    if (rescan) {
      try {
        await this.scan();
      } catch {
        // The rescan failed (device reset, detach): listeners still hear of the event.
      }
    }
    this.events.push(e);
    if (this.events.length > 1024) this.events.shift();
    for (const l of this.listeners) l(e);
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r(e);
  }
}

function align16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

function rw16(op: number, lba: number, blocks: number, fua: boolean): Uint8Array {
  const cdb = new Uint8Array(16);
  const v = new DataView(cdb.buffer);
  cdb[0] = op;
  if (fua) cdb[1] = 0x08;
  v.setUint32(2, Math.floor(lba / U32));
  v.setUint32(6, lba % U32);
  v.setUint32(10, blocks);
  return cdb;
}
