/**
 * 5.6 SCSI Host Device, device side: one target (target 0) with logical units over virtio-blk
 * backends (memory or file), the controlq (task management, asynchronous notification), the
 * eventq (hot plug, LUN parameter changes) and `numQueues` request queues, all on one
 * QueueServer. Configuration through the 5.6.4 layout; sense_size and cdb_size are the two
 * fields the driver may write, back to 96 and 32 on reset (device/scsi/1).
 *
 * Offered: HOTPLUG and CHANGE. Not offered: INOUT (no bidirectional command is implemented) and
 * T10_PI (no protection information).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { type ConfigValues, decodeConfigWrite, encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  Asc,
  SCSI_CONFIG_LAYOUT,
  SCSI_DEFAULT_CDB_SIZE,
  SCSI_DEFAULT_SENSE_SIZE,
  ScsiConfig,
  ScsiEventLayout,
  ScsiEventType,
  ScsiF,
  ScsiQueue,
  ScsiResetReason,
  type ScsiConfigField,
} from '../../spec/scsi.js';
import type { BlkBackend } from '../blk/backend.js';
import { MAX_TRANSFER_BLOCKS } from './scsi-emulation.js';
import { ScsiControlHandler, type ScsiControlHost } from './scsi-control.js';
import { ScsiEventQueue } from './scsi-events.js';
import { ScsiLogicalUnit, type ScsiLunOptions } from './scsi-lun.js';
import { ScsiRequest, ScsiRequestHandler } from './scsi-requests.js';

/** LUN ids 0 .. MAX_LUNS - 1 (max_lun in the configuration is MAX_LUNS - 1). */
export const SCSI_MAX_LUNS = 256;

/** One logical unit to create on target 0: its block backend and options. */
export interface ScsiLunSpec extends ScsiLunOptions {
  /** LUN id on target 0 (0..255). Default: the position in the list. */
  readonly id?: number;
  /** Where the LUN's blocks live (512-byte sectors). */
  readonly backend: BlkBackend;
}

/** Options of ScsiDevice. */
export interface ScsiDeviceOptions {
  /** Request queues (num_queues). Default 1. */
  numQueues?: number;
  /** Maximum size of every queue. Default 128. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

const TRANSPORT_FEATURES = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;

/**
 * The virtio-scsi device (5.6): a SCSI target whose logical units are block backends. What it
 * implements and its normative coverage: docs/devices/scsi.md.
 */
export class ScsiDevice implements VirtioDevice, ScsiControlHost {
  readonly deviceId = DeviceId.SCSI;
  readonly offeredFeatures = TRANSPORT_FEATURES | ScsiF.HOTPLUG | ScsiF.CHANGE;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = ScsiConfig.SIZE;
  /** num_queues: request queues after controlq and eventq. */
  readonly numRequestQueues: number;

  /** sense_size of the configuration (bytes): the driver may write it; back to 96 at reset. */
  senseSize = SCSI_DEFAULT_SENSE_SIZE;
  /** cdb_size of the configuration (bytes): the driver may write it; back to 32 at reset. */
  cdbSize = SCSI_DEFAULT_CDB_SIZE;

  private readonly table: (ScsiLogicalUnit | null)[] = new Array<ScsiLogicalUnit | null>(SCSI_MAX_LUNS).fill(null);
  private readonly queueSize: number;
  private readonly server: QueueServer<ScsiRequest>;
  private readonly requests: ScsiRequestHandler;
  private readonly control: ScsiControlHandler;
  private readonly events: ScsiEventQueue;
  private features = 0n;
  private readonly log: Logger | undefined;

  constructor(luns: readonly ScsiLunSpec[], opts: ScsiDeviceOptions = {}) {
    const n = opts.numQueues ?? 1;
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(n) || n < 1 || n > 1024) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `numQueues ${n} not in 1..1024`);
    if (!Number.isInteger(qs) || qs < 4 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 4..32768`);
    this.numRequestQueues = n;
    this.queueSize = qs;
    this.log = opts.logger;
    this.queueMaxSizes = Array.from({ length: ScsiQueue.REQUESTQ + n }, () => qs);
    luns.forEach((spec, i) => this.insert(spec.id ?? i, spec.backend, spec));
    this.server = new QueueServer<ScsiRequest>({
      name: 'virtio-scsi',
      numQueues: this.queueMaxSizes.length,
      logger: opts.logger,
      handler: (i) => (i === ScsiQueue.CONTROLQ ? this.control.serve : i === ScsiQueue.EVENTQ ? this.events.serve : this.requests.serve),
      newRequest: (chain, queueIndex) => new ScsiRequest(chain, queueIndex, this.requests),
      queueStopped: (i) => {
        if (i === ScsiQueue.EVENTQ) this.events.queueStopped();
      },
    });
    this.requests = new ScsiRequestHandler(this, this.server, opts.logger);
    this.control = new ScsiControlHandler(this, this.requests, this.server);
    this.events = new ScsiEventQueue(this.server);
  }

  // ---- logical units ----

  lun(id: number): ScsiLogicalUnit | null {
    return id >= 0 && id < SCSI_MAX_LUNS ? this.table[id]! : null;
  }

  lunIds(ids: Int32Array): number {
    let n = 0;
    for (let i = 0; i < SCSI_MAX_LUNS && n < ids.length; i++) if (this.table[i] !== null) ids[n++] = i;
    return n;
  }

  forEachLun(fn: (lun: ScsiLogicalUnit) => void): void {
    for (const l of this.table) if (l !== null) fn(l);
  }

  /** The LUNs present, by id. */
  get luns(): readonly ScsiLogicalUnit[] {
    return this.table.filter((l): l is ScsiLogicalUnit => l !== null);
  }

  private insert(id: number, backend: BlkBackend, opts: ScsiLunOptions): ScsiLogicalUnit {
    if (!Number.isInteger(id) || id < 0 || id >= SCSI_MAX_LUNS) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `LUN id ${id} not in 0..${SCSI_MAX_LUNS - 1}`);
    if (this.table[id] !== null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `LUN ${id} exists already`);
    const lun = new ScsiLogicalUnit(id, backend, opts);
    this.table[id] = lun;
    return lun;
  }

  /**
   * Hot-plugs LUN `id`: a TRANSPORT_RESET RESCAN event when HOTPLUG was negotiated
   * (device/scsi/9), and REPORTED LUNS DATA HAS CHANGED as unit attention on the other LUNs.
   */
  addLun(id: number, backend: BlkBackend, opts: ScsiLunOptions = {}): ScsiLogicalUnit {
    const lun = this.insert(id, backend, opts);
    this.forEachLun((l) => {
      if (l !== lun) l.unitAttention = Asc.REPORTED_LUNS_DATA_HAS_CHANGED;
    });
    if ((this.features & ScsiF.HOTPLUG) !== 0n) this.events.raise(ScsiEventType.TRANSPORT_RESET, id, ScsiResetReason.RESCAN);
    return lun;
  }

  /**
   * Hot-unplugs LUN `id` (its commands in flight finish on the backend, which the caller closes
   * afterwards): a TRANSPORT_RESET REMOVED event when HOTPLUG was negotiated. Returns the LUN.
   */
  removeLun(id: number): ScsiLogicalUnit {
    const lun = this.lun(id);
    if (lun === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no LUN ${id}`);
    this.table[id] = null;
    this.forEachLun((l) => (l.unitAttention = Asc.REPORTED_LUNS_DATA_HAS_CHANGED));
    if ((this.features & ScsiF.HOTPLUG) !== 0n) this.events.raise(ScsiEventType.TRANSPORT_RESET, id, ScsiResetReason.REMOVED);
    return lun;
  }

  /**
   * Re-reads LUN `id`'s backend size. When it changed: CAPACITY DATA HAS CHANGED as unit
   * attention and, with CHANGE negotiated, a PARAM_CHANGE event whose reason holds asc and ascq
   * (the LUNs are disks, never MMC: device/scsi/10). Returns whether it changed.
   */
  refreshCapacity(id: number): boolean {
    const lun = this.lun(id);
    if (lun === null || !lun.refreshBlocks()) return false;
    lun.unitAttention = Asc.CAPACITY_DATA_HAS_CHANGED;
    if ((this.features & ScsiF.CHANGE) !== 0n) {
      const asc = Asc.CAPACITY_DATA_HAS_CHANGED;
      this.events.raise(ScsiEventType.PARAM_CHANGE, id, (asc >>> 8) | ((asc & 0xff) << 8));
    }
    return true;
  }

  /** Reports a LUN hard reset (TRANSPORT_RESET, reason HARD) and its unit attention. */
  resetLun(id: number): void {
    const lun = this.lun(id);
    if (lun === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no LUN ${id}`);
    lun.unitAttention = Asc.POWER_ON_RESET;
    this.events.raise(ScsiEventType.TRANSPORT_RESET, id, ScsiResetReason.HARD);
  }

  /** Driver buffers waiting in the device for an event. */
  get eventBuffersWaiting(): number {
    return this.events.buffersWaiting;
  }

  /** Whether events were lost for want of eventq buffers and not yet reported. */
  get eventsMissed(): boolean {
    return this.events.eventsMissed;
  }

  // ---- configuration space (5.6.4) ----

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    const values: ConfigValues<ScsiConfigField> = {
      numQueues: this.numRequestQueues,
      // A command's segments besides the request and response headers (as QEMU: queue size - 2).
      segMax: this.queueSize - 2,
      maxSectors: MAX_TRANSFER_BLOCKS,
      cmdPerLun: this.queueSize,
      eventInfoSize: ScsiEventLayout.SIZE,
      senseSize: this.senseSize,
      cdbSize: this.cdbSize,
      maxChannel: 0,
      maxTarget: 0,
      maxLun: SCSI_MAX_LUNS - 1,
    };
    encodeConfig(SCSI_CONFIG_LAYOUT, values, 0n, offset, dst, littleEndian);
  }

  writeConfig(offset: number, src: Uint8Array, features: bigint, littleEndian: boolean): void {
    // Only sense_size and cdb_size are writable (driver/scsi/1); the rest of a write is ignored.
    decodeConfigWrite(SCSI_CONFIG_LAYOUT, offset, src, features, littleEndian, (field, value) => {
      if (field === 'senseSize') this.senseSize = value;
      else if (field === 'cdbSize') this.cdbSize = value;
      this.log?.debug(`virtio-scsi: ${field} = ${value}`);
    });
  }

  validateFeatures(accepted: bigint): string | null {
    if ((accepted & ScsiF.T10_PI) !== 0n) return 'VIRTIO_SCSI_F_T10_PI was not offered';
    if ((accepted & ScsiF.INOUT) !== 0n) return 'VIRTIO_SCSI_F_INOUT was not offered';
    return null;
  }

  // ---- lifecycle ----

  activate(ctx: DeviceContext): void {
    this.features = ctx.features;
    this.requests.configure(ctx.littleEndian);
    this.control.configure(ctx.littleEndian);
    this.events.configure(ctx.littleEndian);
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    // Commands in flight may still finish on the backend; the server drops their completions.
    this.server.reset();
    this.events.reset();
    this.features = 0n;
    // device/scsi/1: back to the defaults on reset.
    this.senseSize = SCSI_DEFAULT_SENSE_SIZE;
    this.cdbSize = SCSI_DEFAULT_CDB_SIZE;
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}
