/**
 * 5.20 CAN Device, device side: a CAN controller on a host `CanBus` (can-bus.ts). One
 * QueueServer serves the three queues:
 *  - Txq: each frame is checked (msg_type, a frame type negotiated and flags defined
 *    (device/can/1), identifier and length in range, controller started (device/can/2)) and
 *    either refused with NOT_OK or queued on the bus. With LATE_TX_ACK the request is used once
 *    the bus transmitted the frame (device/can/3); without it, as soon as it is queued
 *    (device/can/4).
 *  - Rxq: the driver's buffers wait for frames from the other nodes of the bus; frames arriving
 *    while none waits are kept in a fixed ring (beyond it they are dropped and counted, as a
 *    controller overrun). Frames of a type not negotiated (FD without CAN_FD, RTR without
 *    RTR_FRAMES) are not received.
 *  - Controlq: SET_CTRL_MODE_START / STOP, in order. STOP (and a bus-off) cancels the frames
 *    waiting for transmission (NOT_OK). Initially STOPPED; a STOPPED controller receives nothing.
 * The configuration has `status` with VIRTIO_CAN_S_CTRL_BUSOFF, set by `busOff()` (with a
 * configuration change notification) and cleared by the next START.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueRequest, QueueServer } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import {
  CAN_CLASSIC_MAX_LEN,
  CAN_CONFIG_LAYOUT,
  CAN_CONTROL_OUT_SIZE,
  CAN_EXT_ID_MAX,
  CAN_FD_MAX_LEN,
  CAN_FEATURES,
  CAN_FLAGS_DEFINED,
  CAN_STD_ID_MAX,
  CAN_S_CTRL_BUSOFF,
  CanConfig,
  CanF,
  CanFlags,
  CanFrameLayout,
  CanMsgType,
  CanQueue,
  CanResult,
  canLengthValid,
} from '../../spec/can.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { type CanBus, CanBusSlot, type CanBusNode } from './can-bus.js';

/** A pool slot with a link for the lists of requests the device holds. */
export class CanRequest extends QueueRequest {
  next: CanRequest | null = null;
  constructor(chain: DescriptorChain, queueIndex: number) {
    super(chain, queueIndex);
  }
}

/** Options of CanDevice. */
export interface CanDeviceOptions {
  /** Device-type features offered (default: all four). At least CAN_CLASSIC or CAN_FD. */
  readonly features?: bigint;
  /** Frames kept for the driver while it has no rx buffer. Default 64. */
  readonly rxBacklog?: number;
  /** Maximum size of each queue, 1..32768. Default 256. */
  readonly queueSize?: number;
  /** Called before touching guest memory outside a guest access (bus deliveries): see docs/v86.md. */
  readonly beforeHostAccess?: () => void;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/** A request list (FIFO through the slots' links). */
class RequestList {
  head: CanRequest | null = null;
  tail: CanRequest | null = null;
  push(r: CanRequest): void {
    r.next = null;
    if (this.tail === null) this.head = r;
    else this.tail.next = r;
    this.tail = r;
  }
  shift(): CanRequest | null {
    const r = this.head;
    if (r === null) return null;
    this.head = r.next;
    if (this.head === null) this.tail = null;
    r.next = null;
    return r;
  }
  /** Removes `r` (a frame the bus acknowledged out of list order cannot happen, but stay safe). */
  remove(r: CanRequest): boolean {
    let prev: CanRequest | null = null;
    for (let c = this.head; c !== null; prev = c, c = c.next) {
      if (c !== r) continue;
      if (prev === null) this.head = c.next;
      else prev.next = c.next;
      if (this.tail === c) this.tail = prev;
      c.next = null;
      return true;
    }
    return false;
  }
  clear(): void {
    this.head = this.tail = null;
  }
}

/**
 * The virtio-can device (5.20): CAN and CAN FD frames to and from a CanBus shared with other
 * nodes. What it implements and its normative coverage: docs/devices/can.md.
 */
export class CanDevice implements VirtioDevice, CanBusNode {
  readonly deviceId = DeviceId.CAN;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = CanConfig.SIZE;

  private readonly server: QueueServer<CanRequest>;
  private readonly detachBus: () => void;
  private readonly beforeHostAccess: (() => void) | undefined;
  private ctx: DeviceContext | null = null;
  private le = true;
  private features = 0n;
  private started = false;
  private status = 0;
  /** LATE_TX_ACK: tx requests on the bus, waiting for its acknowledgment. */
  private readonly pendingTx = new RequestList();
  private readonly rxBuffers = new RequestList();
  /** Frames received while no rx buffer waited (fixed ring). */
  private readonly backlog: CanBusSlot[];
  private backlogFirst = 0;
  private backlogCount = 0;
  /** Frames lost to a full backlog, frames transmitted, frames received by the driver. */
  rxDropped = 0;
  /** Frames the driver sent that the bus took (VIRTIO_CAN_TX requests accepted). */
  txFrames = 0;
  /** Frames written into the driver's rx buffers. */
  rxFrames = 0;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly hdr = new Uint8Array(CanFrameLayout.HEADER);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly sdu = new Uint8Array(CAN_FD_MAX_LEN);
  private readonly result = new Uint8Array(1);
  /** The frame `fillSlot` copies to the bus (parsed from the tx request being served). */
  private txId = 0;
  private txFlags = 0;
  private txLen = 0;
  private txDlc = 0;
  private readonly fillSlot = (s: CanBusSlot): void => {
    s.id = this.txId;
    s.extended = (this.txFlags & CanFlags.EXTENDED) !== 0;
    s.fd = (this.txFlags & CanFlags.FD) !== 0;
    s.rtr = (this.txFlags & CanFlags.RTR) !== 0;
    s.length = this.txLen;
    s.dlc = this.txDlc;
    if (!s.rtr) s.data.set(this.sdu.subarray(0, this.txLen));
  };

  constructor(
    /** The bus the device's controller is attached to: its tx goes there, the other nodes' frames come from it. */
    readonly bus: CanBus,
    opts: CanDeviceOptions = {},
  ) {
    const f = opts.features ?? CAN_FEATURES;
    if ((f & ~CAN_FEATURES) !== 0n || (f & (CanF.CAN_CLASSIC | CanF.CAN_FD)) === 0n || ((f & CanF.RTR_FRAMES) !== 0n && (f & CanF.CAN_CLASSIC) === 0n)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `CAN features 0x${f.toString(16)}: CAN_CLASSIC or CAN_FD needed, RTR_FRAMES needs CAN_CLASSIC`);
    }
    // Requests complete out of order across queues and with LATE_TX_ACK: no IN_ORDER.
    this.offeredFeatures = f | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs, qs, qs];
    const backlog = opts.rxBacklog ?? 64;
    if (!Number.isInteger(backlog) || backlog < 0 || backlog > 4096) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `rxBacklog ${backlog}`);
    this.backlog = Array.from({ length: backlog }, () => new CanBusSlot());
    this.beforeHostAccess = opts.beforeHostAccess;
    this.server = new QueueServer<CanRequest>({
      name: 'virtio-can',
      numQueues: 3,
      logger: opts.logger,
      newRequest: (chain, q) => new CanRequest(chain, q),
      handler: (i) => (i === CanQueue.TXQ ? this.serveTx : i === CanQueue.RXQ ? this.serveRx : this.serveControl),
      queueStopped: (i) => {
        if (i === CanQueue.RXQ) this.rxBuffers.clear();
        else if (i === CanQueue.TXQ) this.pendingTx.clear();
      },
    });
    this.detachBus = bus.attach(this);
  }

  /** Whether the controller is started (participates in the bus). */
  get isStarted(): boolean {
    return this.started;
  }

  /** The configuration `status` now. */
  get configStatus(): number {
    return this.status;
  }

  /**
   * A bus-off (5.20.6.4): the controller stops, frames pending for transmission are used with
   * NOT_OK, VIRTIO_CAN_S_CTRL_BUSOFF is set and the driver gets a configuration change.
   */
  busOff(): void {
    if (!this.started) return;
    this.beforeHostAccess?.();
    this.stopController();
    this.status |= CAN_S_CTRL_BUSOFF;
    this.ctx?.notifyConfigChange();
  }

  /** Leaves the bus for good (the device is no longer usable). */
  close(): void {
    this.detachBus();
  }

  // ---- bus ----

  receive(slot: CanBusSlot): void {
    if (!this.started) return;
    // Frame types the driver did not negotiate are not received (it could not take them).
    if (slot.fd ? (this.features & CanF.CAN_FD) === 0n : slot.rtr && (this.features & CanF.RTR_FRAMES) === 0n) return;
    const r = this.takeRxBuffer();
    if (r !== null) {
      this.beforeHostAccess?.();
      this.server.complete(r, this.writeRx(r, slot));
      return;
    }
    if (this.backlogCount === this.backlog.length) {
      this.rxDropped++;
      return;
    }
    copySlot(slot, this.backlog[(this.backlogFirst + this.backlogCount) % this.backlog.length]!);
    this.backlogCount++;
  }

  transmitted(token: unknown, ok: boolean): void {
    const r = token as CanRequest | null;
    // Without LATE_TX_ACK the request was used already (token null); a STOP may have used it meanwhile.
    if (r === null || !this.pendingTx.remove(r)) return;
    this.beforeHostAccess?.();
    this.finishTx(r, ok ? CanResult.OK : CanResult.NOT_OK);
  }

  // ---- queues ----

  private takeRxBuffer(): CanRequest | null {
    for (let r = this.rxBuffers.shift(); r !== null; r = this.rxBuffers.shift()) if (this.server.isLive(r)) return r;
    return null;
  }

  private get maxLen(): number {
    return (this.features & CanF.CAN_FD) !== 0n ? CAN_FD_MAX_LEN : CAN_CLASSIC_MAX_LEN;
  }

  private readonly serveRx = (r: CanRequest): number | void => {
    const c = r.chain;
    // driver/can/1: device-writable, room for struct virtio_can_rx and the largest payload.
    if (c.fault !== null || c.readableBytes !== 0 || c.writableBytes < CanFrameLayout.HEADER + this.maxLen) return 0;
    if (this.backlogCount > 0) {
      const slot = this.backlog[this.backlogFirst]!;
      this.backlogFirst = (this.backlogFirst + 1) % this.backlog.length;
      this.backlogCount--;
      return this.writeRx(r, slot);
    }
    this.rxBuffers.push(r);
  };

  private writeRx(r: CanRequest, s: CanBusSlot): number {
    const v = this.hdrView;
    this.hdr.fill(0);
    v.setUint16(CanFrameLayout.MSG_TYPE, CanMsgType.RX, this.le);
    v.setUint16(CanFrameLayout.LENGTH, s.length, this.le);
    this.hdr[CanFrameLayout.RESERVED_CLASSIC_DLC] = s.dlc;
    v.setUint32(CanFrameLayout.FLAGS, (s.extended ? CanFlags.EXTENDED : 0) | (s.fd ? CanFlags.FD : 0) | (s.rtr ? CanFlags.RTR : 0), this.le);
    v.setUint32(CanFrameLayout.CAN_ID, s.id, this.le);
    const w = this.writer.reset(r.chain);
    let n = w.write(this.hdr);
    if (!s.rtr) n += w.write(s.data, 0, s.length);
    this.rxFrames++;
    return n;
  }

  private readonly serveTx = (r: CanRequest): number | void => {
    const c = r.chain;
    if (c.fault !== null || c.writableBytes < 1) return 0;
    const result = this.checkTx(c);
    if (result !== CanResult.OK) return this.writeResult(c, result);
    const late = (this.features & CanF.LATE_TX_ACK) !== 0n;
    // device/can/3: with LATE_TX_ACK used once the bus transmitted it; device/can/4: else now.
    if (!this.bus.transmit(this, late ? r : null, this.fillSlot)) return this.writeResult(c, CanResult.NOT_OK);
    this.txFrames++;
    if (!late) return this.writeResult(c, CanResult.OK);
    this.pendingTx.push(r);
  };

  /** Reads and checks a tx request into txId/txFlags/txLen/sdu; the result it earns. */
  private checkTx(c: DescriptorChain): number {
    const rd = this.reader.reset(c);
    if (rd.read(this.hdr) < CanFrameLayout.HEADER) return CanResult.NOT_OK;
    const v = this.hdrView;
    if (v.getUint16(CanFrameLayout.MSG_TYPE, this.le) !== CanMsgType.TX) return CanResult.NOT_OK;
    const flags = v.getUint32(CanFrameLayout.FLAGS, this.le);
    const len = v.getUint16(CanFrameLayout.LENGTH, this.le);
    const id = v.getUint32(CanFrameLayout.CAN_ID, this.le);
    const fd = (flags & CanFlags.FD) !== 0;
    const rtr = (flags & CanFlags.RTR) !== 0;
    const ext = (flags & CanFlags.EXTENDED) !== 0;
    const f = this.features;
    // device/can/1: a frame type not negotiated, or an undefined flag bit.
    if ((flags & ~CAN_FLAGS_DEFINED) !== 0) return CanResult.NOT_OK;
    if (fd ? (f & CanF.CAN_FD) === 0n : (f & CanF.CAN_CLASSIC) === 0n) return CanResult.NOT_OK;
    if (rtr && ((f & CanF.RTR_FRAMES) === 0n || fd)) return CanResult.NOT_OK;
    // device/can/2: identifier or length out of range, controller not started.
    if (id > (ext ? CAN_EXT_ID_MAX : CAN_STD_ID_MAX) || !canLengthValid(len, fd)) return CanResult.NOT_OK;
    if (!this.started) return CanResult.NOT_OK;
    const dlc = this.hdr[CanFrameLayout.RESERVED_CLASSIC_DLC]!;
    this.txDlc = !fd && len === CAN_CLASSIC_MAX_LEN && dlc > 8 && dlc <= 15 ? dlc : 0;
    if (!rtr && (c.readableBytes < CanFrameLayout.HEADER + len || rd.read(this.sdu, 0, len) < len)) return CanResult.NOT_OK;
    this.txId = id;
    this.txFlags = flags;
    this.txLen = len;
    return CanResult.OK;
  }

  private writeResult(c: DescriptorChain, result: number): number {
    this.result[0] = result;
    return this.writer.reset(c).write(this.result);
  }

  private finishTx(r: CanRequest, result: number): void {
    if (!this.server.isLive(r)) return;
    this.server.complete(r, this.writeResult(r.chain, result));
  }

  /** Control requests complete synchronously, so they are processed in order (5.20.6.1). */
  private readonly serveControl = (r: CanRequest): number => {
    const c = r.chain;
    if (c.fault !== null || c.writableBytes < 1) return 0;
    if (this.reader.reset(c).read(this.hdr, 0, CAN_CONTROL_OUT_SIZE) < CAN_CONTROL_OUT_SIZE) return this.writeResult(c, CanResult.NOT_OK);
    const type = this.hdrView.getUint16(0, this.le);
    if (type === CanMsgType.SET_CTRL_MODE_START) {
      // The status is updated before the request is used (no notification needed: the driver asked).
      this.status &= ~CAN_S_CTRL_BUSOFF;
      this.started = true;
      return this.writeResult(c, CanResult.OK);
    }
    if (type === CanMsgType.SET_CTRL_MODE_STOP) {
      this.stopController();
      return this.writeResult(c, CanResult.OK);
    }
    return this.writeResult(c, CanResult.NOT_OK);
  };

  /** STOPPED: frames waiting for the bus's acknowledgment are used with NOT_OK, the backlog is dropped. */
  private stopController(): void {
    this.started = false;
    // Frames still waiting for the bus are withdrawn: they are never transmitted.
    for (let r = this.pendingTx.shift(); r !== null; r = this.pendingTx.shift()) {
      this.bus.cancel(this, r);
      this.finishTx(r, CanResult.NOT_OK);
    }
    this.backlogCount = 0;
  }

  // ---- VirtioDevice ----

  validateFeatures(accepted: bigint): string | null {
    if ((accepted & (CanF.CAN_CLASSIC | CanF.CAN_FD)) === 0n) return 'neither VIRTIO_CAN_F_CAN_CLASSIC nor VIRTIO_CAN_F_CAN_FD (5.20.3.1)';
    if ((accepted & CanF.RTR_FRAMES) !== 0n && (accepted & CanF.CAN_CLASSIC) === 0n) return 'VIRTIO_CAN_F_RTR_FRAMES without VIRTIO_CAN_F_CAN_CLASSIC (5.20.3.1)';
    return null;
  }

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    encodeConfig(CAN_CONFIG_LAYOUT, { status: this.status }, 0n, offset, dst, littleEndian);
  }

  /** `status` is driver-read-only: writes are ignored. */
  writeConfig(): void {}

  configWritable(): boolean {
    return false;
  }

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    this.features = ctx.features;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  /** Device reset: STOPPED again (initial state), nothing pending, status clear. */
  reset(): void {
    this.started = false;
    this.status = 0;
    for (let r = this.pendingTx.shift(); r !== null; r = this.pendingTx.shift()) this.bus.cancel(this, r);
    this.rxBuffers.clear();
    this.backlogCount = 0;
    this.ctx = null;
    this.features = 0n;
    this.server.reset();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}

function copySlot(from: CanBusSlot, to: CanBusSlot): void {
  to.id = from.id;
  to.extended = from.extended;
  to.fd = from.fd;
  to.rtr = from.rtr;
  to.length = from.length;
  to.dlc = from.dlc;
  if (!from.rtr) to.data.set(from.data.subarray(0, from.length));
}
