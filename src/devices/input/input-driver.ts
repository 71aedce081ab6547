/**
 * 5.8 Input Device, driver side: reads the configuration by select/subsel (driver/input/1, 2:
 * both set, nothing else written; driver/input/3: `size` checked first), keeps the eventq
 * populated with event-sized device-writable buffers (driver/input/4, 5) and sends status
 * events on the statusq (driver/input/6).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext, DriverTransport } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { DeviceId } from '../../spec/device-id.js';
import { EvType, INPUT_EVENTQ, INPUT_FEATURES, INPUT_STATUSQ, InputAbsInfo, InputConfig, InputConfigSelect, InputEvent } from '../../spec/input.js';
import type { InputAbsAxis, InputDevIdsValue } from './input-config.js';
import type { InputEventValue } from './input-device.js';

/** Options of InputDriver. */
export interface InputDriverOptions {
  /** Eventq buffers kept posted. Default: 16 (at most the queue size). */
  eventBuffers?: number;
  /**
   * Resolves once config writes reached the device and reads show its answer. Needed on a
   * transport whose config is a copy refreshed by messages (virtio-ts's vhost-user front-end:
   * `transportConfigSettled(transport)` finds it); register transports answer at once.
   */
  configSettled?: () => Promise<void>;
  /**
   * driver/input/7: which events reach `onEvent` / `nextEvents`. Default: every event (the
   * caller interprets them). `acceptAnnouncedOnly()` sets one that keeps the events the device
   * announced in EV_BITS plus SYN; a refused event is counted in `stats.ignored` and dropped.
   */
  accept?: (type: number, code: number) => boolean;
}

/** The config barrier of a transport that has one (see InputDriverOptions.configSettled). */
export function transportConfigSettled(t: DriverTransport): (() => Promise<void>) | undefined {
  const f = (t as { configSettled?: unknown }).configSettled;
  return typeof f === 'function' ? () => (f as () => Promise<void>).call(t) : undefined;
}

const NO_SEGMENTS: readonly Segment[] = [];

/**
 * The virtio-input driver (5.8): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class InputDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<InputDriver, InputDriverOptions> = {
    name: 'virtio-input',
    deviceId: DeviceId.INPUT,
    wantedFeatures: INPUT_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new InputDriver(ctx, opts),
  };

  private readonly ctx: DriverContext;
  private readonly eventq: RequestQueue;
  private readonly statusq: RequestQueue;
  private readonly listeners = new Set<(e: InputEventValue) => void>();
  private readonly received: InputEventValue[] = [];
  private waiters: { count: number; resolve: (e: InputEventValue[]) => void; reject: (e: unknown) => void }[] = [];
  private stopped: unknown = null;
  private readonly configSettled: (() => Promise<void>) | undefined;
  private accept: ((type: number, code: number) => boolean) | undefined;
  /** Events not delivered because `accept` refused them (driver/input/7). */
  readonly stats = {
    /** Events refused by `accept` (codes not announced in EV_BITS) and dropped. */
    ignored: 0,
  };

  constructor(ctx: DriverContext, opts: InputDriverOptions = {}) {
    checkDriverContext(InputDriver.type, ctx);
    this.ctx = ctx;
    this.configSettled = opts.configSettled;
    this.accept = opts.accept;
    this.eventq = new RequestQueue(ctx, INPUT_EVENTQ);
    this.statusq = new RequestQueue(ctx, INPUT_STATUSQ);
    const n = Math.min(opts.eventBuffers ?? 16, ctx.queue(INPUT_EVENTQ).size);
    if (!Number.isInteger(n) || n < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad eventBuffers ${n}`);
    for (let i = 0; i < n; i++) this.postEventBuffer(ctx.dma.alloc(InputEvent.BYTES, 8));
  }

  /**
   * The answer to (select, subsel): `size` bytes of the union (empty when the device has no
   * answer). Sets select then subsel (driver/input/1), reads size before the union (driver/input/3).
   * Throws CONFIG_OUT_OF_RANGE when the config space visibly does not follow the selector.
   */
  async query(select: number, subsel: number): Promise<Uint8Array> {
    this.ctx.writeConfig(InputConfig.SELECT, Uint8Array.of(select));
    this.ctx.writeConfig(InputConfig.SUBSEL, Uint8Array.of(subsel));
    // Over vhost-user the answer comes back with GET_CONFIG after the SET_CONFIGs.
    if (this.configSettled) await this.configSettled();
    // The answer is only meaningful when the config space follows the selector.
    // QEMU 7.2 answers an unsupported combination with an all-zero structure, select and
    // subsel included; anything else that does not echo them is not following the selector.
    const head = this.ctx.readConfig(InputConfig.SELECT, 3);
    const size = Math.min(head[2]!, InputConfig.U_BYTES);
    const echoed = head[0] === (select & 0xff) && head[1] === (subsel & 0xff);
    if (!echoed && !(head[0] === 0 && head[1] === 0 && size === 0)) {
      throw new VirtioError(ErrorCode.CONFIG_OUT_OF_RANGE, `virtio-input: the config space does not follow select ${select} / subsel ${subsel} on this transport`);
    }
    return size === 0 ? new Uint8Array(0) : this.ctx.readConfig(InputConfig.U, size);
  }

  /** VIRTIO_INPUT_CFG_ID_NAME: the device's name. */
  async name(): Promise<string> {
    return configString(await this.query(InputConfigSelect.ID_NAME, 0));
  }

  /** VIRTIO_INPUT_CFG_ID_SERIAL: the device's serial number. */
  async serial(): Promise<string> {
    return configString(await this.query(InputConfigSelect.ID_SERIAL, 0));
  }

  /**
   * VIRTIO_INPUT_CFG_ID_DEVIDS: bus type, vendor, product and version, or null when the device
   * gives none.
   */
  async ids(): Promise<InputDevIdsValue | null> {
    const b = await this.query(InputConfigSelect.ID_DEVIDS, 0);
    if (b.length < 8) return null;
    const v = new DataView(b.buffer, b.byteOffset, b.length);
    const le = this.ctx.littleEndian;
    return { bustype: v.getUint16(0, le), vendor: v.getUint16(2, le), product: v.getUint16(4, le), version: v.getUint16(6, le) };
  }

  /** The codes of event type `type` the device supports (empty: the type is not supported). */
  async eventCodes(type: number): Promise<number[]> {
    return bits(await this.query(InputConfigSelect.EV_BITS, type));
  }

  /** VIRTIO_INPUT_CFG_PROP_BITS: the input properties (INPUT_PROP_*) set. */
  async properties(): Promise<number[]> {
    return bits(await this.query(InputConfigSelect.PROP_BITS, 0));
  }

  /**
   * Only the events the device announced (EV_BITS per type, read now) and SYN reach the caller
   * from now on (driver/input/7: the driver ignores events it does not recognize).
   */
  async acceptAnnouncedOnly(): Promise<void> {
    const known = new Map<number, Set<number>>();
    for (let type = 1; type <= EvType.MAX; type++) {
      const codes = await this.eventCodes(type);
      if (codes.length > 0) known.set(type, new Set(codes));
    }
    this.accept = (type, code) => type === EvType.SYN || known.get(type)?.has(code) === true;
  }

  /**
   * VIRTIO_INPUT_CFG_ABS_INFO of `axis`: its range, fuzz, flat and resolution, or null when the
   * axis is not supported.
   */
  async absInfo(axis: number): Promise<InputAbsAxis | null> {
    const b = await this.query(InputConfigSelect.ABS_INFO, axis);
    if (b.length < InputAbsInfo.BYTES) return null;
    const v = new DataView(b.buffer, b.byteOffset, b.length);
    const le = this.ctx.littleEndian;
    return {
      min: v.getInt32(InputAbsInfo.MIN, le),
      max: v.getInt32(InputAbsInfo.MAX, le),
      fuzz: v.getInt32(InputAbsInfo.FUZZ, le),
      flat: v.getInt32(InputAbsInfo.FLAT, le),
      res: v.getInt32(InputAbsInfo.RES, le),
    };
  }

  /** Calls `cb` for every event received from now on; returns a function that removes it. */
  onEvent(cb: (e: InputEventValue) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Resolves with the next `count` events received (those already received first). */
  nextEvents(count: number): Promise<InputEventValue[]> {
    if (this.received.length >= count) return Promise.resolve(this.received.splice(0, count));
    if (this.stopped !== null) return Promise.reject(this.stopped);
    return new Promise((resolve, reject) => this.waiters.push({ count, resolve, reject }));
  }

  /** Sends a status event (an LED change, say) on the statusq; resolves when the device took it. */
  async sendStatus(type: number, code: number, value: number): Promise<void> {
    const addr = this.ctx.dma.alloc(InputEvent.BYTES, 8);
    try {
      const b = new Uint8Array(InputEvent.BYTES);
      const v = new DataView(b.buffer);
      const le = this.ctx.littleEndian;
      v.setUint16(InputEvent.TYPE, type, le);
      v.setUint16(InputEvent.CODE, code, le);
      v.setInt32(InputEvent.VALUE, value, le);
      this.ctx.memory.write(addr, b);
      await this.statusq.submit([{ addr, len: InputEvent.BYTES }], NO_SEGMENTS);
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  detach(): void {
    this.eventq.detach();
    this.statusq.detach();
  }

  /** Posts one event buffer and reposts it after each event (driver/input/4). */
  private postEventBuffer(addr: number): void {
    const seg: readonly Segment[] = [{ addr, len: InputEvent.BYTES }];
    const again = (used: number): void => {
      // driver/input/7: anything shorter than an event is not an event; it is ignored.
      if (used >= InputEvent.BYTES) this.deliver(addr);
      this.eventq.submit(NO_SEGMENTS, seg).then(again, fail);
    };
    const fail = (e: unknown): void => {
      this.ctx.dma.free(addr);
      this.stop(e);
    };
    this.eventq.submit(NO_SEGMENTS, seg).then(again, fail);
  }

  private deliver(addr: number): void {
    const b = new Uint8Array(InputEvent.BYTES);
    this.ctx.memory.read(addr, b);
    const v = new DataView(b.buffer);
    const le = this.ctx.littleEndian;
    const e: InputEventValue = { type: v.getUint16(InputEvent.TYPE, le), code: v.getUint16(InputEvent.CODE, le), value: v.getInt32(InputEvent.VALUE, le) };
    if (this.accept && !this.accept(e.type, e.code)) {
      this.stats.ignored++;
      return;
    }
    for (const l of this.listeners) l(e);
    this.received.push(e);
    // Bounded: a driver nobody reads keeps the last 4096 events only.
    if (this.received.length > 4096) this.received.splice(0, this.received.length - 4096);
    while (this.waiters.length > 0 && this.received.length >= this.waiters[0]!.count) {
      const w = this.waiters.shift()!;
      w.resolve(this.received.splice(0, w.count));
    }
  }

  private stop(e: unknown): void {
    if (this.stopped !== null) return;
    this.stopped = e;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(e);
  }
}

/**
 * A config string (5.8.4: no NUL terminator). QEMU 7.2 counts a terminating NUL in `size`
 * anyway, so the string ends at the first NUL when there is one.
 */
function configString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return new TextDecoder().decode(nul >= 0 ? b.subarray(0, nul) : b);
}

function bits(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) for (let k = 0; k < 8; k++) if (b[i]! & (1 << k)) out.push(i * 8 + k);
  return out;
}
