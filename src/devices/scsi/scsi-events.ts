/**
 * 5.6.6.3 Device Operation: eventq. The driver's buffers wait here until the device has an event
 * (transport reset for a hot-plugged, hot-unplugged or reset LUN; LUN parameter change). Events
 * raised while no buffer waits are kept, up to MAX_PENDING_EVENTS; beyond that they are dropped
 * and the next event delivered carries VIRTIO_SCSI_T_EVENTS_MISSED (device/scsi/8), a
 * VIRTIO_SCSI_T_NO_EVENT one when nothing else is pending.
 *
 * RESCAN and REMOVED transport resets are sent only with VIRTIO_SCSI_F_HOTPLUG negotiated, and
 * PARAM_CHANGE only with VIRTIO_SCSI_F_CHANGE (device/scsi/9); the caller (ScsiDevice) checks.
 */
import type { QueueServer } from '../../device/queue-server.js';
import { ChainCursor } from '../../queue/chain.js';
import { SCSI_T_EVENTS_MISSED, ScsiEventLayout, ScsiEventType } from '../../spec/scsi.js';
import type { ScsiRequest } from './scsi-requests.js';

/** Events kept while the driver has no buffer in the eventq. */
export const MAX_PENDING_EVENTS = 16;

interface PendingEvent {
  event: number;
  lunId: number;
  reason: number;
}

export class ScsiEventQueue {
  private le = true;
  private buffers: ScsiRequest[] = [];
  private pending: PendingEvent[] = [];
  private missed = false;
  private active = false;
  private readonly out = new Uint8Array(ScsiEventLayout.SIZE);
  private readonly view = new DataView(this.out.buffer);
  private readonly writer = new ChainCursor(true);
  /** The eventq handler: the buffer waits for an event. */
  readonly serve = (req: ScsiRequest): number | void => this.take(req);

  constructor(private readonly server: QueueServer<ScsiRequest>) {}

  configure(littleEndian: boolean): void {
    this.le = littleEndian;
    this.active = true;
  }

  /** Events lost so far and not yet reported. */
  get eventsMissed(): boolean {
    return this.missed;
  }
  /** Driver buffers waiting for an event. */
  get buffersWaiting(): number {
    return this.buffers.length;
  }

  /** Reports `event` for LUN `lunId` of target 0 (dropped while the device is not running). */
  raise(event: number, lunId: number, reason: number): void {
    if (!this.active) return;
    if (this.pending.length >= MAX_PENDING_EVENTS) this.missed = true;
    else this.pending.push({ event, lunId, reason });
    this.deliver();
  }

  /** The eventq stopped (reset, queue reset): its buffers are the driver's again. */
  queueStopped(): void {
    this.buffers = [];
  }

  /** Device reset: nothing pending survives. */
  reset(): void {
    this.buffers = [];
    this.pending = [];
    this.missed = false;
    this.active = false;
  }

  private take(req: ScsiRequest): number | void {
    const chain = req.chain;
    if (chain.fault !== null || chain.writableBytes === 0) return 0;
    if (chain.writableBytes < ScsiEventLayout.SIZE) {
      // Shorter than struct virtio_scsi_event (driver/scsi/7): used at once with NO_EVENT.
      const flag = this.missed ? SCSI_T_EVENTS_MISSED : 0;
      this.missed = false;
      return this.write(req, ScsiEventType.NO_EVENT | flag, -1, 0);
    }
    this.buffers.push(req);
    this.deliver();
  }

  private deliver(): void {
    while (this.buffers.length > 0 && (this.pending.length > 0 || this.missed)) {
      const req = this.buffers.shift()!;
      if (!this.server.isLive(req)) continue;
      const e = this.pending.shift();
      const flag = this.missed ? SCSI_T_EVENTS_MISSED : 0;
      this.missed = false;
      const written = e ? this.write(req, e.event | flag, e.lunId, e.reason) : this.write(req, ScsiEventType.NO_EVENT | flag, -1, 0);
      this.server.complete(req, written);
    }
  }

  private write(req: ScsiRequest, event: number, lunId: number, reason: number): number {
    const o = this.out;
    o.fill(0);
    const v = this.view;
    v.setUint32(ScsiEventLayout.EVENT, event >>> 0, this.le);
    if (lunId >= 0) {
      // Byte 0 is 1, target 0, then the LUN as REPORT LUNS encodes it (peripheral addressing
      // below 256): Linux's virtio_scsi takes bytes 2-3 of an event as the LUN number unmasked.
      o[ScsiEventLayout.LUN] = 1;
      o[ScsiEventLayout.LUN + 2] = lunId < 256 ? 0 : 0x40 | (lunId >>> 8);
      o[ScsiEventLayout.LUN + 3] = lunId & 0xff;
    }
    v.setUint32(ScsiEventLayout.REASON, reason >>> 0, this.le);
    return this.writer.reset(req.chain).write(o, 0, Math.min(ScsiEventLayout.SIZE, req.chain.writableBytes));
  }
}
