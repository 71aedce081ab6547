/**
 * 5.6.6.2 Device Operation: controlq. Task management functions and asynchronous notification
 * query and subscription.
 *
 * A TMF that cancels commands (ABORT TASK, ABORT TASK SET, CLEAR TASK SET: ABORTED; LOGICAL UNIT
 * RESET, I_T NEXUS RESET: RESET) marks the commands in flight and completes only after every one
 * of them was completed with that response (their used entries are published first, so the
 * driver sees them before the TMF's). Block data of a cancelled command may still be moving
 * (a backend read into its buffers): the command is completed when that ends, never earlier.
 * The resets leave a unit attention on the LUNs (SAM-5: BUS DEVICE RESET FUNCTION OCCURRED,
 * I_T NEXUS LOSS OCCURRED). The host reports no asynchronous events (it has no MMC device),
 * so AN query and subscribe answer event_actual 0.
 *
 * A malformed request (too short, unknown type) gets VIRTIO_SCSI_S_FAILURE in its last
 * writable byte, never an exception.
 */
import type { QueueServer } from '../../device/queue-server.js';
import { ChainCursor, writeWritableByteAt } from '../../queue/chain.js';
import { Asc, ScsiCtrlAn, ScsiCtrlTmf, ScsiCtrlType, ScsiResponse, ScsiTmf } from '../../spec/scsi.js';
import { BAD_TARGET, type ScsiHostState, type ScsiRequest, type ScsiRequestHandler, type TmfWait, decodeLun } from './scsi-requests.js';

/** What the control queue handler (TMFs, asynchronous notification, 5.6.6.2) needs from the device. */
export interface ScsiControlHost extends ScsiHostState {
  /** Every LUN present (for I_T NEXUS RESET's unit attentions). */
  forEachLun(fn: (lun: { unitAttention: number }) => void): void;
}

export class ScsiControlHandler {
  private le = true;
  private readonly buf = new Uint8Array(ScsiCtrlTmf.SIZE);
  private readonly view = new DataView(this.buf.buffer);
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly out = new Uint8Array(ScsiCtrlAn.RESPONSE_SIZE);
  private readonly outView = new DataView(this.out.buffer);
  /** The control queue handler. */
  readonly serve = (req: ScsiRequest): number | Promise<number> => this.handle(req);

  constructor(
    private readonly host: ScsiControlHost,
    private readonly commands: ScsiRequestHandler,
    private readonly server: QueueServer<ScsiRequest>,
  ) {}

  configure(littleEndian: boolean): void {
    this.le = littleEndian;
  }

  private handle(req: ScsiRequest): number | Promise<number> {
    const chain = req.chain;
    if (chain.fault !== null || chain.writableBytes === 0) return 0;
    const got = this.reader.reset(chain).read(this.buf, 0, ScsiCtrlTmf.SIZE);
    if (got < 4) return this.fail(req);
    const type = this.view.getUint32(0, this.le);
    if (type === ScsiCtrlType.TMF) {
      if (got < ScsiCtrlTmf.SIZE) return this.fail(req);
      return this.tmf(req);
    }
    if (type === ScsiCtrlType.AN_QUERY || type === ScsiCtrlType.AN_SUBSCRIBE) {
      if (got < ScsiCtrlAn.SIZE || chain.writableBytes < ScsiCtrlAn.RESPONSE_SIZE) return this.fail(req);
      return this.an(req);
    }
    return this.fail(req);
  }

  /** VIRTIO_SCSI_S_FAILURE in the last writable byte (where `response` sits in every control reply). */
  private fail(req: ScsiRequest): number {
    const c = req.chain;
    return writeWritableByteAt(c, c.writableBytes - 1, ScsiResponse.FAILURE) ? c.writableBytes : 0;
  }

  private respond(req: ScsiRequest, response: number): number {
    if (!this.server.isLive(req)) return 0;
    this.writer.reset(req.chain);
    const n = this.writer.write(this.out.fill(response, 0, 1), 0, ScsiCtrlTmf.RESPONSE_SIZE);
    return n;
  }

  private tmf(req: ScsiRequest): number | Promise<number> {
    const v = this.view;
    const le = this.le;
    const subtype = v.getUint32(ScsiCtrlTmf.SUBTYPE, le);
    const tagLo = v.getUint32(ScsiCtrlTmf.ID + (le ? 0 : 4), le);
    const tagHi = v.getUint32(ScsiCtrlTmf.ID + (le ? 4 : 0), le);
    const lunId = decodeLun(this.buf, ScsiCtrlTmf.LUN);
    if (lunId === BAD_TARGET) return this.respond(req, ScsiResponse.BAD_TARGET);
    // The single level LUN is ignored when the function addresses the whole I_T nexus.
    if (subtype === ScsiTmf.I_T_NEXUS_RESET) {
      this.host.forEachLun((l) => (l.unitAttention = Asc.I_T_NEXUS_LOSS));
      return this.cancelThen(req, -1, false, 0, 0, ScsiResponse.RESET, ScsiResponse.FUNCTION_COMPLETE);
    }
    const lun = lunId >= 0 ? this.host.lun(lunId) : null;
    if (lun === null) return this.respond(req, ScsiResponse.INCORRECT_LUN);
    switch (subtype) {
      case ScsiTmf.ABORT_TASK:
        return this.cancelThen(req, lunId, true, tagLo, tagHi, ScsiResponse.ABORTED, ScsiResponse.FUNCTION_COMPLETE);
      case ScsiTmf.ABORT_TASK_SET:
      case ScsiTmf.CLEAR_TASK_SET:
        return this.cancelThen(req, lunId, false, 0, 0, ScsiResponse.ABORTED, ScsiResponse.FUNCTION_COMPLETE);
      case ScsiTmf.LOGICAL_UNIT_RESET:
        lun.unitAttention = Asc.BUS_DEVICE_RESET;
        return this.cancelThen(req, lunId, false, 0, 0, ScsiResponse.RESET, ScsiResponse.FUNCTION_COMPLETE);
      case ScsiTmf.QUERY_TASK: {
        const n = this.commands.cancel(lunId, true, tagLo, tagHi, -1, null);
        return this.respond(req, n > 0 ? ScsiResponse.FUNCTION_SUCCEEDED : ScsiResponse.FUNCTION_COMPLETE);
      }
      case ScsiTmf.QUERY_TASK_SET: {
        const n = this.commands.cancel(lunId, false, 0, 0, -1, null);
        return this.respond(req, n > 0 ? ScsiResponse.FUNCTION_SUCCEEDED : ScsiResponse.FUNCTION_COMPLETE);
      }
      case ScsiTmf.CLEAR_ACA:
      // SAM-5 7.3: a logical unit without ACA support rejects CLEAR ACA (NACA is never accepted).
      // falls through
      default:
        return this.respond(req, ScsiResponse.FUNCTION_REJECTED);
    }
  }

  /** Cancels the matching commands with `cancelWith`, then answers `response` once they completed. */
  private cancelThen(req: ScsiRequest, lunId: number, matchTag: boolean, tagLo: number, tagHi: number, cancelWith: number, response: number): number | Promise<number> {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const wait: TmfWait = { remaining: 0, resolve };
    this.commands.cancel(lunId, matchTag, tagLo, tagHi, cancelWith, wait);
    if (wait.remaining === 0) return this.respond(req, response);
    return done.then(() => this.respond(req, response));
  }

  private an(req: ScsiRequest): number {
    const lunId = decodeLun(this.buf, ScsiCtrlAn.LUN);
    const o = this.out;
    o.fill(0);
    if (lunId === BAD_TARGET) o[ScsiCtrlAn.RESPONSE] = ScsiResponse.BAD_TARGET;
    else if (lunId < 0 || this.host.lun(lunId) === null) o[ScsiCtrlAn.RESPONSE] = ScsiResponse.INCORRECT_LUN;
    else {
      // No physical-interface events to report (they are MMC's, 5.6.6.2): event_actual is 0.
      this.outView.setUint32(ScsiCtrlAn.EVENT_ACTUAL, 0, this.le);
      o[ScsiCtrlAn.RESPONSE] = ScsiResponse.OK;
    }
    return this.writer.reset(req.chain).write(o, 0, ScsiCtrlAn.RESPONSE_SIZE);
  }
}
