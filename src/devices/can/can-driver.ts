/**
 * 5.20 CAN Device, driver side: start / stop the controller on the control queue, transmit frames
 * on the Txq (checked first: a frame type negotiated, identifier and length in range), and keep
 * the Rxq populated with device-writable buffers of struct virtio_can_rx plus the largest
 * payload the negotiated features allow (driver/can/1), re-posted as frames arrive. The bus-off
 * bit is read from the configuration on a configuration change.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  CAN_CLASSIC_MAX_LEN,
  CAN_CONFIG_LAYOUT,
  CAN_EXT_ID_MAX,
  CAN_FD_MAX_LEN,
  CAN_FEATURES,
  CAN_STD_ID_MAX,
  CAN_S_CTRL_BUSOFF,
  CanF,
  CanFlags,
  CanFrameLayout,
  CanMsgType,
  CanQueue,
  CanResult,
  canLengthValid,
} from '../../spec/can.js';
import { readConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import type { CanFrame } from './can-bus.js';

/** The device answered NOT_OK (or another value, treated the same, 5.20.6). */
export class CanRequestError extends VirtioError {
  constructor(
    /** The request that failed: 'start', 'stop' (control queue) or 'tx'. */
    readonly what: string,
    /** The result byte the device wrote: VIRTIO_CAN_RESULT_NOT_OK or another non-OK value. */
    readonly result: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-can ${what}: result ${result}`);
  }
}

/** Options of CanDriver. */
export interface CanDriverOptions {
  /** Rx buffers kept posted. Default 16. */
  rxBuffers?: number;
}

/**
 * The virtio-can driver (5.20): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class CanDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<CanDriver, CanDriverOptions> = {
    name: 'virtio-can',
    deviceId: DeviceId.CAN,
    wantedFeatures: CAN_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new CanDriver(ctx, opts),
  };

  private readonly ctx: DriverContext;
  private readonly le: boolean;
  private readonly tx: RequestQueue;
  private readonly rx: RequestQueue;
  private readonly control: RequestQueue;
  /** Bytes of each rx buffer: the header and the largest payload. */
  readonly rxBufferBytes: number;
  private listeners: ((f: CanFrame) => void)[] = [];
  private waiters: ((f: CanFrame) => void)[] = [];
  private readonly received: CanFrame[] = [];
  private busOffListeners: (() => void)[] = [];
  private detached = false;

  constructor(ctx: DriverContext, opts: CanDriverOptions = {}) {
    checkDriverContext(CanDriver.type, ctx);
    // 5.20.3.1: at least one of CAN_CLASSIC and CAN_FD.
    if ((ctx.features & (CanF.CAN_CLASSIC | CanF.CAN_FD)) === 0n) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'virtio-can: neither CAN_CLASSIC nor CAN_FD negotiated');
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    this.tx = new RequestQueue(ctx, CanQueue.TXQ);
    this.rx = new RequestQueue(ctx, CanQueue.RXQ);
    this.control = new RequestQueue(ctx, CanQueue.CONTROLQ);
    this.rxBufferBytes = CanFrameLayout.HEADER + ((ctx.features & CanF.CAN_FD) !== 0n ? CAN_FD_MAX_LEN : CAN_CLASSIC_MAX_LEN);
    ctx.onConfigChange(() => {
      if ((this.status() & CAN_S_CTRL_BUSOFF) !== 0) for (const l of this.busOffListeners) l();
    });
    const n = opts.rxBuffers ?? 16;
    for (let i = 0; i < n; i++) this.postRx();
  }

  detach(): void {
    this.detached = true;
    this.tx.detach();
    this.rx.detach();
    this.control.detach();
  }

  /** The configuration `status` (VIRTIO_CAN_S_CTRL_BUSOFF). */
  status(): number {
    return readConfigField(CAN_CONFIG_LAYOUT, 'status', (o, l) => this.ctx.readConfig(o, l), this.le);
  }

  /** Hears the device's bus-off (a configuration change with the BUSOFF bit set). */
  onBusOff(listener: () => void): void {
    this.busOffListeners.push(listener);
  }

  // ---- control ----

  private async controlRequest(msgType: number): Promise<number> {
    const addr = this.ctx.dma.alloc(4, 4);
    try {
      const b = new Uint8Array(2);
      new DataView(b.buffer).setUint16(0, msgType, this.le);
      this.ctx.memory.write(addr, b);
      this.ctx.memory.fill(addr + 2, 1, 0xff);
      const used = await this.control.submit([{ addr, len: 2 }], [{ addr: addr + 2, len: 1 }]);
      const r = new Uint8Array(1);
      this.ctx.memory.read(addr + 2, r);
      return used >= 1 ? r[0]! : CanResult.NOT_OK;
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /** SET_CTRL_MODE_START: the controller joins the bus. */
  async start(): Promise<void> {
    const r = await this.controlRequest(CanMsgType.SET_CTRL_MODE_START);
    if (r !== CanResult.OK) throw new CanRequestError('start', r);
  }

  /** SET_CTRL_MODE_STOP: the controller leaves the bus; frames pending for transmission fail. */
  async stop(): Promise<void> {
    const r = await this.controlRequest(CanMsgType.SET_CTRL_MODE_STOP);
    if (r !== CanResult.OK) throw new CanRequestError('stop', r);
  }

  // ---- tx ----

  /** Checks `f` against the negotiated features and the ranges of 5.20.6.2 (throws INVALID_ARGUMENT). */
  private check(f: CanFrame): void {
    const feats = this.ctx.features;
    const bad = (why: string): never => {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-can frame: ${why}`);
    };
    if (f.fd ? (feats & CanF.CAN_FD) === 0n : (feats & CanF.CAN_CLASSIC) === 0n) bad(`${f.fd ? 'CAN FD' : 'classic'} frames not negotiated`);
    if (f.rtr && (f.fd || (feats & CanF.RTR_FRAMES) === 0n)) bad('RTR frames not negotiated (or FD)');
    if (!Number.isInteger(f.id) || f.id < 0 || f.id > (f.extended ? CAN_EXT_ID_MAX : CAN_STD_ID_MAX)) bad(`identifier ${f.id} out of range`);
    if (!canLengthValid(f.length, f.fd) || (!f.rtr && f.data.length < f.length)) bad(`length ${f.length}`);
  }

  /** Sends a raw tx request (any bytes) and returns the device's result. */
  async sendRaw(request: Uint8Array): Promise<number> {
    const addr = this.ctx.dma.alloc(request.length + 1, 8);
    try {
      this.ctx.memory.write(addr, request);
      this.ctx.memory.fill(addr + request.length, 1, 0xff);
      const used = await this.tx.submit([{ addr, len: request.length }], [{ addr: addr + request.length, len: 1 }]);
      const r = new Uint8Array(1);
      this.ctx.memory.read(addr + request.length, r);
      return used >= 1 ? r[0]! : CanResult.NOT_OK;
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /** Encodes struct virtio_can_tx_out for `f`. */
  encode(f: CanFrame): Uint8Array {
    const len = f.rtr ? 0 : f.length;
    const b = new Uint8Array(CanFrameLayout.HEADER + len);
    const v = new DataView(b.buffer);
    v.setUint16(CanFrameLayout.MSG_TYPE, CanMsgType.TX, this.le);
    v.setUint16(CanFrameLayout.LENGTH, f.length, this.le);
    b[CanFrameLayout.RESERVED_CLASSIC_DLC] = f.dlc ?? 0;
    v.setUint32(CanFrameLayout.FLAGS, (f.extended ? CanFlags.EXTENDED : 0) | (f.fd ? CanFlags.FD : 0) | (f.rtr ? CanFlags.RTR : 0), this.le);
    v.setUint32(CanFrameLayout.CAN_ID, f.id, this.le);
    b.set(f.data.subarray(0, len), CanFrameLayout.SDU);
    return b;
  }

  /** Transmits `f`; resolves when the device used the request with OK (throws CanRequestError otherwise). */
  async send(f: CanFrame): Promise<void> {
    this.check(f);
    const r = await this.sendRaw(this.encode(f));
    if (r !== CanResult.OK) throw new CanRequestError('tx', r);
  }

  // ---- rx ----

  /** Adds a listener for received frames; returns a function that removes it. */
  onFrame(listener: (f: CanFrame) => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** The next frame received (one already received first). */
  nextFrame(): Promise<CanFrame> {
    const f = this.received.shift();
    return f ? Promise.resolve(f) : new Promise((resolve) => this.waiters.push(resolve));
  }

  /** driver/can/1: an empty device-writable buffer of rxBufferBytes, re-posted after each frame. */
  private postRx(): void {
    if (this.detached) return;
    const len = this.rxBufferBytes;
    const addr = this.ctx.dma.alloc(len, 8);
    this.rx.submit([], [{ addr, len }]).then(
      (used) => {
        const b = new Uint8Array(Math.min(used, len));
        this.ctx.memory.read(addr, b);
        this.ctx.dma.free(addr);
        const f = this.decode(b);
        if (f !== null) {
          const w = this.waiters.shift();
          if (w) w(f);
          else this.received.push(f);
          for (const l of this.listeners) l(f);
        }
        this.postRx();
      },
      () => this.ctx.dma.free(addr),
    );
  }

  private decode(b: Uint8Array): CanFrame | null {
    if (b.length < CanFrameLayout.HEADER) return null;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (v.getUint16(CanFrameLayout.MSG_TYPE, this.le) !== CanMsgType.RX) return null;
    const flags = v.getUint32(CanFrameLayout.FLAGS, this.le);
    const rtr = (flags & CanFlags.RTR) !== 0;
    const length = v.getUint16(CanFrameLayout.LENGTH, this.le);
    const dataLen = rtr ? 0 : Math.min(length, b.length - CanFrameLayout.HEADER);
    return {
      id: v.getUint32(CanFrameLayout.CAN_ID, this.le),
      extended: (flags & CanFlags.EXTENDED) !== 0,
      fd: (flags & CanFlags.FD) !== 0,
      rtr,
      length,
      data: b.slice(CanFrameLayout.SDU, CanFrameLayout.SDU + dataLen),
      dlc: b[CanFrameLayout.RESERVED_CLASSIC_DLC]!,
    };
  }
}
