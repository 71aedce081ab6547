/**
 * 2.13 Administration virtqueues, device side: pops each request from an administration queue,
 * reads struct virtio_admin_cmd from its device-readable part (whatever the chain's shape:
 * missing bytes read as zero, extra bytes are ignored, device/admin/15, /16), runs it through the
 * AdminDispatcher and writes status, status_qualifier and the result into its device-writable
 * part, as much as fits, padded to a multiple of 8 bytes (device/admin/19), reporting the bytes
 * written as the used length.
 *
 * Commands on one queue are processed one after the other in the order queued
 * (device/admin/21), even when a handler completes asynchronously; distinct queues run
 * independently (device/admin/22). A reset drops commands not yet started.
 */
import { QueueServer, type QueueRequest } from '../device/queue-server.js';
import type { DeviceContext } from '../device/types.js';
import type { Logger } from '../log.js';
import type { DeviceQueue } from '../queue/types.js';
import { ChainCursor } from '../queue/chain.js';
import { AdminCmdHeader, AdminCmdStatus } from '../spec/admin.js';
import type { AdminCommandOutcome } from './admin-command-handler.js';
import type { AdminDispatcher } from './admin-dispatcher.js';

/** Default bound on command_specific_data kept per command (longer data is ignored, device/admin/16). */
export const ADMIN_MAX_COMMAND_DATA = 1 << 20;
/** Default bound on the command_specific_result space offered to a handler. */
export const ADMIN_MAX_COMMAND_RESULT = 1 << 20;

/** Options of AdminQueueServer. */
export interface AdminQueueServerOptions {
  /** Index of the first administration queue (after the device's own queues). */
  readonly first: number;
  /** Number of administration queues. */
  readonly count: number;
  /** The command logic. */
  readonly dispatcher: AdminDispatcher;
  /** Bytes of command_specific_data read at most (default ADMIN_MAX_COMMAND_DATA). */
  readonly maxCommandData?: number;
  /** Bytes of command_specific_result offered at most (default ADMIN_MAX_COMMAND_RESULT). */
  readonly maxCommandResult?: number;
  /** Where the queue server logs. */
  readonly logger?: Logger | undefined;
}

/** Per administration queue: the commands waiting behind the one being processed. */
interface AdminLane {
  /** The tail of the in-order chain of commands (null when idle). */
  tail: Promise<unknown> | null;
  /** Commands queued on this lane and not finished. */
  pending: number;
}

/**
 * Serves the administration queues of one owner device. The device's own queues are not its
 * business: it sees them as absent.
 */
export class AdminQueueServer {
  private readonly server: QueueServer;
  private readonly lanes: AdminLane[];
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly header = new Uint8Array(AdminCmdHeader.SIZE);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly status = new Uint8Array(AdminCmdStatus.SIZE);
  private readonly statusView = new DataView(this.status.buffer);
  private readonly maxData: number;
  private readonly maxResult: number;
  private epoch = 0;

  constructor(private readonly o: AdminQueueServerOptions) {
    this.maxData = o.maxCommandData ?? ADMIN_MAX_COMMAND_DATA;
    this.maxResult = o.maxCommandResult ?? ADMIN_MAX_COMMAND_RESULT;
    this.lanes = Array.from({ length: o.count }, () => ({ tail: null, pending: 0 }));
    const serve = (req: QueueRequest): number | Promise<number> => this.serveInOrder(req);
    this.server = new QueueServer({
      name: 'virtio-admin',
      numQueues: o.first + o.count,
      logger: o.logger,
      handler: (i) => (i >= o.first && i < o.first + o.count ? serve : null),
    });
  }

  /** Commands queued on administration queue `n` (0-based among them) and not finished. */
  pending(n: number): number {
    return this.lanes[n]?.pending ?? 0;
  }

  /** DRIVER_OK with VIRTIO_F_ADMIN_VQ: serve the administration queues of `ctx`. */
  activate(ctx: DeviceContext): void {
    this.server.activate(adminOnlyContext(ctx, this.o.first, this.o.first + this.o.count));
  }

  /** Notification for queue `index` (ignored unless it is an administration queue). */
  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  /** Device reset: commands not yet started are dropped, those running complete into nothing. */
  reset(): void {
    this.epoch++;
    for (const l of this.lanes) {
      l.tail = null;
      l.pending = 0;
    }
    this.server.reset();
  }

  /** 2.6.1 queue reset of an administration queue. */
  resetQueue(index: number): void {
    const l = this.lanes[index - this.o.first];
    if (!l) return;
    this.epoch++;
    l.tail = null;
    l.pending = 0;
    this.server.resetQueue(index);
  }

  /** Device Suspend: no more commands are taken; resolves once those in flight completed. */
  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  /** Resume after suspend. */
  resume(): void {
    this.server.resume();
  }

  /** device/admin/21: a command starts only once the previous one on its queue finished. */
  private serveInOrder(req: QueueRequest): number | Promise<number> {
    const lane = this.lanes[req.queueIndex - this.o.first]!;
    const epoch = this.epoch;
    if (lane.tail === null) {
      const r = this.run(req, epoch);
      if (typeof r === 'number') return r;
      return this.track(lane, r);
    }
    const p = lane.tail.then(() => this.run(req, epoch));
    return this.track(lane, p);
  }

  private track(lane: AdminLane, p: Promise<number>): Promise<number> {
    lane.pending++;
    const epoch = this.epoch;
    const tail: Promise<void> = p.then(
      (): void => this.settle(lane, tail, epoch),
      (): void => this.settle(lane, tail, epoch),
    );
    lane.tail = tail;
    return p;
  }

  private settle(lane: AdminLane, tail: Promise<unknown>, epoch: number): void {
    if (epoch !== this.epoch) return;
    lane.pending--;
    if (lane.tail === tail) lane.tail = null;
  }

  /** Reads, executes and answers one command; returns (or resolves to) the used length. */
  private run(req: QueueRequest, epoch: number): number | Promise<number> {
    // A command queued before a reset is not processed after it (it would act on the new state).
    if (epoch !== this.epoch) return 0;
    const chain = req.chain;
    if (chain.fault !== null) return 0;
    // device/admin/15: what the driver did not supply reads as zero.
    const h = this.header;
    h.fill(0);
    this.reader.reset(chain).read(h, 0, AdminCmdHeader.SIZE);
    const v = this.headerView;
    const opcode = v.getUint16(AdminCmdHeader.OPCODE, true);
    const groupType = v.getUint16(AdminCmdHeader.GROUP_TYPE, true);
    const memberId = v.getBigUint64(AdminCmdHeader.GROUP_MEMBER_ID, true);
    // device/admin/16: data past what the device keeps is ignored (bounded host memory).
    const dataLen = Math.max(0, Math.min(chain.readableBytes - AdminCmdHeader.SIZE, this.maxData));
    const data = new Uint8Array(dataLen);
    if (dataLen > 0) this.reader.read(data, 0, dataLen);
    const resultLen = Math.max(0, Math.min(chain.writableBytes - AdminCmdStatus.SIZE, this.maxResult));
    const result = new Uint8Array(resultLen);
    const out = this.o.dispatcher.execute(opcode, groupType, memberId, data, result);
    if (out instanceof Promise) return out.then((o) => (epoch === this.epoch ? this.answer(req, o, result) : 0));
    return this.answer(req, out, result);
  }

  /**
   * Writes status, status_qualifier, reserved2 and the result (device/admin/20), zero-padded to
   * a multiple of 8 bytes (device/admin/19), cut at the end of the writable part (device/admin/15);
   * returns the bytes written (device/admin/16: the used length).
   */
  private answer(req: QueueRequest, o: AdminCommandOutcome, result: Uint8Array): number {
    const chain = req.chain;
    const s = this.statusView;
    s.setUint16(AdminCmdStatus.STATUS, o.status, true);
    s.setUint16(AdminCmdStatus.STATUS_QUALIFIER, o.qualifier, true);
    s.setUint32(AdminCmdStatus.RESERVED2, 0, true);
    const w = this.writer.reset(chain);
    w.write(this.status, 0, Math.min(AdminCmdStatus.SIZE, chain.writableBytes));
    const written = Math.min(o.written, result.length);
    if (written > 0) w.write(result, 0, written);
    const padded = Math.ceil((AdminCmdStatus.SIZE + written) / 8) * 8;
    const room = Math.min(padded, chain.writableBytes) - w.moved;
    if (room > 0) w.fill(room);
    return w.moved;
  }
}

/** The context as the administration queues see it: the device's own queues are absent. */
function adminOnlyContext(ctx: DeviceContext, from: number, to: number): DeviceContext {
  const view: DeviceContext = {
    get memory() {
      return ctx.memory;
    },
    features: ctx.features,
    littleEndian: ctx.littleEndian,
    queue: (i: number): DeviceQueue | null => (i >= from && i < to ? ctx.queue(i) : null),
    notifyUsed: (i: number) => ctx.notifyUsed(i),
    notifyConfigChange: () => ctx.notifyConfigChange(),
    needsReset: (reason: string, cause?: unknown) => ctx.needsReset(reason, cause),
    ...(ctx.stats !== undefined ? { stats: ctx.stats } : {}),
  };
  return view;
}
