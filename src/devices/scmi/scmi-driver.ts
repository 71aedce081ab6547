/**
 * 5.17 SCMI Device, driver side: an SCMI agent's transport. Each command is one cmdq buffer: the
 * header and parameters device-readable, then room for the header and the largest return values
 * the command can have (driver/scmi/2). With VIRTIO_SCMI_F_P2A_CHANNELS the eventq is kept
 * populated (driver/scmi/4) with device-writable buffers only (driver/scmi/5) of
 * `eventBufferSize` bytes, larger than every P2A message of the protocols spoken here
 * (driver/scmi/6); delayed responses are matched to their command by token, notifications go to
 * listeners. Without it, the driver refuses to ask for a notification or a delayed response
 * (driver/scmi/3). Commands that depend on others are sent only once those answered
 * (driver/scmi/1: every helper awaits its prerequisites, e.g. the pages of DESCRIPTION_GET).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  SCMI_SENSOR_NOTIFY_ALL,
  SCMI_SENSOR_READ_ASYNC,
  SCMI_VENDOR_ID_SIZE,
  ScmiBaseMessage,
  ScmiF,
  ScmiHeader,
  ScmiMessageType,
  ScmiProtocol,
  ScmiQueue,
  ScmiSensorDescriptor,
  ScmiSensorMessage,
  ScmiStatus,
  ScmiTripPoint,
  scmiHeader,
  scmiHeaderMessageId,
  scmiHeaderProtocol,
  scmiHeaderToken,
  scmiHeaderType,
} from '../../spec/scmi.js';
import { joinS64, splitS64 } from './scmi-command.js';

/** The platform answered with a status other than SUCCESS. */
export class ScmiStatusError extends VirtioError {
  constructor(
    /** What was asked, for the message (e.g. 'SENSOR_READING_GET'). */
    readonly operation: string,
    /** The SCMI status returned (negative: NOT_FOUND -1, INVALID_PARAMETERS -2...). */
    readonly status: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `SCMI ${operation}: status ${status}`);
  }
}

/** Options of ScmiDriver. */
export interface ScmiDriverOptions {
  /** eventq buffers kept posted (with P2A_CHANNELS). Default 8. */
  eventBuffers?: number;
  /** Bytes per eventq buffer (at least 20, the largest P2A message here). Default 64. */
  eventBufferSize?: number;
}

/** A response: the status and the return values after it. */
export interface ScmiResponse {
  /** SCMI status (0 SUCCESS, negative on error). */
  readonly status: number;
  /** The return values after the status word (empty when status is not SUCCESS). */
  readonly values: Uint8Array;
}

/** A notification or delayed response from the eventq. */
export interface ScmiP2aMessage {
  /** SCMI protocol of the message (0x15 sensor...). */
  readonly protocolId: number;
  /** Message id within the protocol. */
  readonly messageId: number;
  /** Header type: 2 delayed response, 3 notification. */
  readonly type: number;
  /** Token: for a delayed response, the token of the command it answers. */
  readonly token: number;
  /** The bytes after the header. */
  readonly payload: Uint8Array;
}

/** One sensor from SENSOR_DESCRIPTION_GET (SCMI 4.7.2.5). */
export interface ScmiSensorInfo {
  /** Sensor id, the index used by SENSOR_READING_GET. */
  readonly id: number;
  /** The sensor's name (up to 16 bytes, NUL trimmed). */
  readonly name: string;
  /** SCMI sensor type (unit): e.g. 2 = degrees C, 5 = volts. */
  readonly type: number;
  /** Power-of-ten exponent of the unit: a reading times 10^scale is the value (signed, -16..15). */
  readonly scale: number;
  /** Whether SENSOR_READING_GET may be asked asynchronously (a delayed response on the eventq). */
  readonly asyncRead: boolean;
  /** Number of trip points the sensor supports. */
  readonly tripPoints: number;
}

/** The largest P2A message of the protocols here: a reading's delayed response (header + 16). */
const LARGEST_P2A = ScmiHeader.SIZE + 16;

/**
 * The virtio-scmi driver (5.17): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class ScmiDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<ScmiDriver, ScmiDriverOptions> = {
    name: 'virtio-scmi',
    deviceId: DeviceId.SCMI,
    wantedFeatures: ScmiF.P2A_CHANNELS,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new ScmiDriver(ctx, opts),
  };

  /** Whether VIRTIO_SCMI_F_P2A_CHANNELS was negotiated (the eventq exists). */
  readonly p2a: boolean;
  private readonly ctx: DriverContext;
  private readonly cmdq: RequestQueue;
  private readonly eventq: RequestQueue | null;
  private readonly eventSize: number;
  private nextToken = 0;
  private readonly delayed = new Map<number, (m: ScmiP2aMessage) => void>();
  private listeners: ((m: ScmiP2aMessage) => void)[] = [];
  private detached = false;

  constructor(ctx: DriverContext, opts: ScmiDriverOptions = {}) {
    checkDriverContext(ScmiDriver.type, ctx);
    this.ctx = ctx;
    this.p2a = (ctx.features & ScmiF.P2A_CHANNELS) !== 0n && ctx.numQueues > ScmiQueue.EVENTQ;
    this.cmdq = new RequestQueue(ctx, ScmiQueue.CMDQ);
    this.eventSize = opts.eventBufferSize ?? 64;
    if (!Number.isInteger(this.eventSize) || this.eventSize < LARGEST_P2A) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `eventBufferSize must be at least ${LARGEST_P2A} (driver/scmi/6)`);
    const n = opts.eventBuffers ?? 8;
    this.eventq = this.p2a && n > 0 ? new RequestQueue(ctx, ScmiQueue.EVENTQ) : null;
    for (let i = 0; this.eventq !== null && i < n; i++) this.postEventBuffer();
  }

  /** Hears every notification. Returns an unsubscribe function. */
  onNotification(listener: (m: ScmiP2aMessage) => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /**
   * Sends one command with `params` (le32 words or bytes) and room for `returnBytes` of return
   * values (status included); resolves with the status and the values after it.
   */
  async command(protocolId: number, messageId: number, params: readonly number[] | Uint8Array, returnBytes: number): Promise<ScmiResponse> {
    return this.send(protocolId, messageId, params, returnBytes, this.takeToken());
  }

  private async send(protocolId: number, messageId: number, params: readonly number[] | Uint8Array, returnBytes: number, token: number): Promise<ScmiResponse> {
    const p = params instanceof Uint8Array ? params : words(params);
    const header = scmiHeader(protocolId, messageId, ScmiMessageType.COMMAND, token);
    const outLen = ScmiHeader.SIZE + p.length;
    const inLen = ScmiHeader.SIZE + Math.max(4, returnBytes);
    const addr = this.ctx.dma.alloc(outLen + inLen, 8);
    try {
      const req = new Uint8Array(outLen);
      new DataView(req.buffer).setUint32(0, header, true);
      req.set(p, ScmiHeader.SIZE);
      this.ctx.memory.write(addr, req);
      const used = await this.cmdq.submit([{ addr, len: outLen }], [{ addr: addr + outLen, len: inLen }]);
      if (used < ScmiHeader.SIZE + 4 || used > inLen) throw new VirtioError(ErrorCode.REQUEST_FAILED, `SCMI command 0x${protocolId.toString(16)}/${messageId}: response of ${used} bytes`);
      const resp = new Uint8Array(used);
      this.ctx.memory.read(addr + outLen, resp);
      const v = new DataView(resp.buffer);
      if (v.getUint32(0, true) !== header) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'SCMI response header does not match the command');
      return { status: v.getInt32(4, true), values: resp.slice(8) };
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /** Like `command`, throwing ScmiStatusError unless the status is SUCCESS. */
  async call(operation: string, protocolId: number, messageId: number, params: readonly number[], returnBytes: number): Promise<Uint8Array> {
    const r = await this.command(protocolId, messageId, params, returnBytes);
    if (r.status !== ScmiStatus.SUCCESS) throw new ScmiStatusError(operation, r.status);
    return r.values;
  }

  // ---- Base protocol ----

  /** PROTOCOL_VERSION of protocol `protocolId`. */
  async protocolVersion(protocolId: number): Promise<number> {
    return u32(await this.call('PROTOCOL_VERSION', protocolId, ScmiBaseMessage.PROTOCOL_VERSION, [], 8), 0);
  }

  /** PROTOCOL_ATTRIBUTES of protocol `protocolId`. */
  async protocolAttributes(protocolId: number): Promise<number> {
    return u32(await this.call('PROTOCOL_ATTRIBUTES', protocolId, ScmiBaseMessage.PROTOCOL_ATTRIBUTES, [], 20), 0);
  }

  /** PROTOCOL_MESSAGE_ATTRIBUTES: the attributes, or null when the message is not implemented (NOT_FOUND). */
  async messageAttributes(protocolId: number, messageId: number): Promise<number | null> {
    const r = await this.command(protocolId, ScmiBaseMessage.PROTOCOL_MESSAGE_ATTRIBUTES, [messageId], 8);
    if (r.status === ScmiStatus.NOT_FOUND) return null;
    if (r.status !== ScmiStatus.SUCCESS) throw new ScmiStatusError('PROTOCOL_MESSAGE_ATTRIBUTES', r.status);
    return u32(r.values, 0);
  }

  /** BASE_DISCOVER_VENDOR: the vendor identifier. */
  async vendor(): Promise<string> {
    return ascii(await this.call('BASE_DISCOVER_VENDOR', ScmiProtocol.BASE, ScmiBaseMessage.DISCOVER_VENDOR, [], 4 + SCMI_VENDOR_ID_SIZE));
  }

  /** BASE_DISCOVER_SUB_VENDOR: the sub-vendor identifier. */
  async subVendor(): Promise<string> {
    return ascii(await this.call('BASE_DISCOVER_SUB_VENDOR', ScmiProtocol.BASE, ScmiBaseMessage.DISCOVER_SUB_VENDOR, [], 4 + SCMI_VENDOR_ID_SIZE));
  }

  /** BASE_DISCOVER_IMPLEMENTATION_VERSION. */
  async implementationVersion(): Promise<number> {
    return u32(await this.call('BASE_DISCOVER_IMPLEMENTATION_VERSION', ScmiProtocol.BASE, ScmiBaseMessage.DISCOVER_IMPLEMENTATION_VERSION, [], 8), 0);
  }

  /** BASE_DISCOVER_LIST_PROTOCOLS, page after page (driver/scmi/1: each `skip` waits for the last page). */
  async listProtocols(): Promise<number[]> {
    const total = (await this.protocolAttributes(ScmiProtocol.BASE)) & 0xff;
    const out: number[] = [];
    while (out.length < total) {
      const v = await this.call('BASE_DISCOVER_LIST_PROTOCOLS', ScmiProtocol.BASE, ScmiBaseMessage.DISCOVER_LIST_PROTOCOLS, [out.length], 8 + 256);
      const n = u32(v, 0);
      if (n === 0 || 4 + n > v.length) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'SCMI BASE_DISCOVER_LIST_PROTOCOLS returned no protocols');
      for (let i = 0; i < n; i++) out.push(v[4 + i]!);
    }
    return out;
  }

  // ---- Sensor protocol ----

  /** SENSOR_DESCRIPTION_GET until no descriptor remains (driver/scmi/1: each page after the last). */
  async sensorDescriptions(): Promise<ScmiSensorInfo[]> {
    const count = (await this.protocolAttributes(ScmiProtocol.SENSOR)) & 0xffff;
    const out: ScmiSensorInfo[] = [];
    while (out.length < count) {
      const v = await this.call('SENSOR_DESCRIPTION_GET', ScmiProtocol.SENSOR, ScmiSensorMessage.DESCRIPTION_GET, [out.length], 8 + 8 * ScmiSensorDescriptor.SIZE);
      const flags = u32(v, 0);
      const n = flags & 0xfff;
      if (n === 0 || 4 + n * ScmiSensorDescriptor.SIZE > v.length) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'SCMI SENSOR_DESCRIPTION_GET returned no descriptor');
      for (let i = 0; i < n; i++) {
        const at = 4 + i * ScmiSensorDescriptor.SIZE;
        const low = u32(v, at + ScmiSensorDescriptor.ATTRIBUTES_LOW);
        const high = u32(v, at + ScmiSensorDescriptor.ATTRIBUTES_HIGH);
        out.push({
          id: u32(v, at + ScmiSensorDescriptor.ID),
          name: ascii(v.subarray(at + ScmiSensorDescriptor.NAME, at + ScmiSensorDescriptor.NAME + ScmiSensorDescriptor.NAME_SIZE)),
          type: high & 0xff,
          scale: ((high >>> 11) & 0x1f) << 27 >> 27,
          asyncRead: (low & ScmiSensorDescriptor.ASYNC_READ) !== 0,
          tripPoints: low & ScmiSensorDescriptor.TRIP_POINTS_MASK,
        });
      }
      if (flags >>> 16 === 0) break;
    }
    return out;
  }

  /** SENSOR_READING_GET, synchronous. */
  async readSensor(id: number): Promise<number> {
    const v = await this.call('SENSOR_READING_GET', ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [id, 0], 12);
    return joinS64(u32(v, 0), u32(v, 4));
  }

  /** SENSOR_READING_GET, asynchronous: the value comes as a delayed response on the eventq. */
  async readSensorAsync(id: number): Promise<number> {
    this.requireP2a('an asynchronous sensor reading');
    const token = this.takeToken();
    const delayed = new Promise<ScmiP2aMessage>((resolve) => this.delayed.set(token, resolve));
    try {
      const r = await this.send(ScmiProtocol.SENSOR, ScmiSensorMessage.READING_GET, [id, SCMI_SENSOR_READ_ASYNC], 4, token);
      if (r.status !== ScmiStatus.SUCCESS) throw new ScmiStatusError('SENSOR_READING_GET (async)', r.status);
    } catch (e) {
      this.delayed.delete(token);
      throw e;
    }
    const m = await delayed;
    const status = m.payload.length >= 4 ? new DataView(m.payload.buffer, m.payload.byteOffset).getInt32(0, true) : ScmiStatus.PROTOCOL_ERROR;
    if (status !== ScmiStatus.SUCCESS) throw new ScmiStatusError('SENSOR_READING_GET delayed response', status);
    if (m.payload.length < 16 || u32(m.payload, 4) !== id) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'SCMI delayed response for another sensor');
    return joinS64(u32(m.payload, 8), u32(m.payload, 12));
  }

  /** SENSOR_TRIP_POINT_NOTIFY: trip point notifications of sensor `id` on or off. */
  async sensorTripPointNotify(id: number, enable: boolean): Promise<void> {
    this.requireP2a('sensor notifications');
    await this.call('SENSOR_TRIP_POINT_NOTIFY', ScmiProtocol.SENSOR, ScmiSensorMessage.TRIP_POINT_NOTIFY, [id, enable ? SCMI_SENSOR_NOTIFY_ALL : 0], 4);
  }

  /** SENSOR_TRIP_POINT_CONFIG: trip point `tripPoint` of sensor `id` at `value`, watching `direction` (ScmiTripPoint). */
  async sensorTripPointConfig(id: number, tripPoint: number, direction: number, value: number): Promise<void> {
    this.requireP2a('sensor trip points');
    const [low, high] = splitS64(value);
    const ctrl = (direction & ScmiTripPoint.DIRECTION_MASK) | ((tripPoint & ScmiTripPoint.ID_MASK) << ScmiTripPoint.ID_SHIFT);
    await this.call('SENSOR_TRIP_POINT_CONFIG', ScmiProtocol.SENSOR, ScmiSensorMessage.TRIP_POINT_CONFIG, [id, ctrl, low, high], 4);
  }

  detach(): void {
    this.detached = true;
    this.cmdq.detach();
    this.eventq?.detach();
  }

  private requireP2a(what: string): void {
    // driver/scmi/3: no notification or delayed response without VIRTIO_SCMI_F_P2A_CHANNELS.
    if (!this.p2a) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `SCMI: ${what} needs VIRTIO_SCMI_F_P2A_CHANNELS, not negotiated`);
  }

  /** A 10-bit token not waiting for a delayed response. */
  private takeToken(): number {
    for (let i = 0; i <= ScmiHeader.TOKEN_MASK; i++) {
      const t = this.nextToken;
      this.nextToken = (this.nextToken + 1) & ScmiHeader.TOKEN_MASK;
      if (!this.delayed.has(t)) return t;
    }
    throw new VirtioError(ErrorCode.QUEUE_FULL, 'SCMI: every token waits for a delayed response');
  }

  private postEventBuffer(): void {
    const q = this.eventq;
    if (q === null || this.detached) return;
    const len = this.eventSize;
    const addr = this.ctx.dma.alloc(len, 8);
    q.submit([], [{ addr, len }]).then(
      (used) => {
        const b = new Uint8Array(Math.min(used, len));
        if (b.length > 0) this.ctx.memory.read(addr, b);
        this.ctx.dma.free(addr);
        this.postEventBuffer();
        if (b.length >= ScmiHeader.SIZE) this.onP2a(b);
      },
      () => this.ctx.dma.free(addr),
    );
  }

  private onP2a(b: Uint8Array): void {
    const h = new DataView(b.buffer).getUint32(0, true);
    const m: ScmiP2aMessage = {
      protocolId: scmiHeaderProtocol(h),
      messageId: scmiHeaderMessageId(h),
      type: scmiHeaderType(h),
      token: scmiHeaderToken(h),
      payload: b.slice(ScmiHeader.SIZE),
    };
    if (m.type === ScmiMessageType.DELAYED_RESPONSE) {
      const w = this.delayed.get(m.token);
      this.delayed.delete(m.token);
      w?.(m);
      return;
    }
    for (const l of this.listeners) l(m);
  }
}

function words(ws: readonly number[]): Uint8Array {
  const b = new Uint8Array(ws.length * 4);
  const v = new DataView(b.buffer);
  ws.forEach((w, i) => v.setUint32(i * 4, w >>> 0, true));
  return b;
}

function u32(b: Uint8Array, at: number): number {
  if (at + 4 > b.length) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'SCMI return values too short');
  return new DataView(b.buffer, b.byteOffset).getUint32(at, true);
}

function ascii(b: Uint8Array): string {
  const end = b.indexOf(0);
  return new TextDecoder().decode(b.subarray(0, end < 0 ? b.length : end));
}
