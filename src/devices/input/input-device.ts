/**
 * 5.8 Input Device, device side. The host sends evdev updates (a sequence of events the device
 * ends with SYN_REPORT); the device writes one event per eventq buffer the driver posted. Events
 * wait in a bounded ring while no buffer is available; an update that does not fit is dropped
 * whole (device/input/2, 3, 4). Status events from the driver (LEDs, sound) go to `onStatus`.
 * Nothing is allocated per event: events live in typed-array rings, buffers are the queue
 * server's pooled requests.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { EvCode, EvType, INPUT_EVENTQ, INPUT_FEATURES, INPUT_STATUSQ, InputConfig, InputEvent } from '../../spec/input.js';
import { InputConfigSpace, type InputDeviceProfile } from './input-config.js';

/** A status event from the driver (statusq): LED and sound changes, in evdev terms. */
export type InputStatusListener = (type: number, code: number, value: number) => void;

/** One evdev event the host sends. */
/** One evdev event as struct virtio_input_event carries it (5.8.6). */
export interface InputEventValue {
  /** EV_* event type (EV_KEY, EV_REL, EV_ABS, EV_SYN, ...). */
  readonly type: number;
  /** The code within the type (KEY_A, REL_X, ABS_Y, ...). */
  readonly code: number;
  /** The value: 1/0/2 press/release/repeat for keys, the delta for REL, the position for ABS (signed 32 bits). */
  readonly value: number;
}

/** Options of InputDevice. */
export interface InputDeviceOptions {
  /**
   * What the device is: name, serial, ids, properties, the event codes it supports and its absolute
   * axes (keyboardProfile, mouseProfile, ... or your own).
   */
  readonly profile: InputDeviceProfile;
  /** Events held while the driver has no eventq buffer, at most. Default 256. */
  readonly maxQueuedEvents?: number;
  /** Maximum queue size. Default 64. */
  readonly queueSize?: number;
  /** Told of each status event from the driver (LEDs, sound), if given. */
  readonly onStatus?: InputStatusListener;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/**
 * A virtio-input device (5.8): answers the driver's config queries from its profile, sends the
 * events a host program gives it in the eventq buffers the driver posted (holding a bounded number
 * meanwhile), and passes status events (LEDs) to `onStatus`.
 */
export class InputDevice implements VirtioDevice {
  readonly deviceId = DeviceId.INPUT;
  /** Events complete in the order buffers were posted: IN_ORDER holds. */
  readonly offeredFeatures = INPUT_FEATURES | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = InputConfig.BYTES;
  /** The configuration space the driver selects and reads (5.8.4). */
  readonly config: InputConfigSpace;
  /** Told of each status event from the driver (LEDs, sound), or null. */
  onStatus: InputStatusListener | null;

  private readonly server: QueueServer;
  private readonly writer = new ChainCursor(true);
  private readonly reader = new ChainCursor(false);
  private readonly scratch = new Uint8Array(InputEvent.BYTES);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private littleEndian = true;
  // Held eventq buffers (FIFO); at most the queue size, as the server's pool is.
  private held: (QueueRequest | null)[];
  private heldHead = 0;
  private heldCount = 0;
  // Events waiting for buffers (ring).
  private readonly evType: Uint16Array;
  private readonly evCode: Uint16Array;
  private readonly evValue: Int32Array;
  private evHead = 0;
  private evCount = 0;
  private dropped = 0;

  constructor(opts: InputDeviceOptions) {
    const qs = opts.queueSize ?? 64;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    const max = opts.maxQueuedEvents ?? 256;
    if (!Number.isInteger(max) || max < 1 || max > 65536) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `maxQueuedEvents ${max} not in 1..65536`);
    this.queueMaxSizes = [qs, qs];
    this.config = new InputConfigSpace(opts.profile);
    this.onStatus = opts.onStatus ?? null;
    this.held = new Array<QueueRequest | null>(qs).fill(null);
    this.evType = new Uint16Array(max);
    this.evCode = new Uint16Array(max);
    this.evValue = new Int32Array(max);
    const onEvent = (req: QueueRequest): number | void => this.onEventBuffer(req);
    const onStatusBuffer = (req: QueueRequest): number => this.onStatusBuffer(req);
    this.server = new QueueServer({
      name: 'virtio-input',
      numQueues: 2,
      logger: opts.logger,
      handler: (i) => (i === INPUT_EVENTQ ? onEvent : i === INPUT_STATUSQ ? onStatusBuffer : null),
      queueStarted: (i, vq) => {
        // As many held buffers as the ring can make available (a vhost-user front-end may pick
        // a ring larger than queueMaxSizes): allocated per queue start, never per buffer.
        if (i === INPUT_EVENTQ && vq.size !== this.held.length) this.held = new Array<QueueRequest | null>(vq.size).fill(null);
        if (i === INPUT_EVENTQ) this.clearHeld();
      },
      queueStopped: (i) => {
        // The server dropped the held requests with the queue; forget them.
        if (i === INPUT_EVENTQ) this.clearHeld();
      },
    });
  }

  /** Events waiting for eventq buffers. */
  get queuedEvents(): number {
    return this.evCount;
  }
  /** Events dropped because an update did not fit the waiting room (device/input/2). */
  get droppedEvents(): number {
    return this.dropped;
  }
  /** Eventq buffers the driver posted that wait for events. */
  get postedBuffers(): number {
    return this.heldCount;
  }

  /**
   * Sends one input update: `events` then EV_SYN/SYN_REPORT. All of it is queued or, when the
   * waiting room cannot take it whole, none of it (device/input/3, 4). Returns whether it was taken.
   */
  sendUpdate(events: readonly InputEventValue[]): boolean {
    for (const e of events) checkEvent(e.type, e.code, e.value);
    if (this.evCount + events.length + 1 > this.evType.length) {
      this.dropped += events.length + 1;
      return false;
    }
    for (const e of events) this.enqueue(e.type, e.code, e.value);
    this.enqueue(EvType.SYN, EvCode.SYN_REPORT, 0);
    this.flush();
    return true;
  }

  /** A key or button press then release: two updates, both queued or neither (no stuck key). */
  tapKey(code: number): boolean {
    if (this.evCount + 4 > this.evType.length) {
      this.dropped += 4;
      return false;
    }
    return this.sendUpdate([{ type: EvType.KEY, code, value: 1 }]) && this.sendUpdate([{ type: EvType.KEY, code, value: 0 }]);
  }

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    this.config.read(offset, dst, littleEndian);
  }

  writeConfig(offset: number, src: Uint8Array): void {
    this.config.write(offset, src);
  }

  activate(ctx: DeviceContext): void {
    this.littleEndian = ctx.littleEndian;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    this.server.reset();
    this.clearHeld();
    // A reset driver starts over: stale key presses are not replayed into the next session.
    this.evHead = 0;
    this.evCount = 0;
    this.config.reset();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }

  private enqueue(type: number, code: number, value: number): void {
    const cap = this.evType.length;
    const at = (this.evHead + this.evCount) % cap;
    this.evType[at] = type;
    this.evCode[at] = code;
    this.evValue[at] = value;
    this.evCount++;
  }

  /** Writes queued events into held buffers while both exist. */
  private flush(): void {
    while (this.evCount > 0 && this.heldCount > 0) {
      const req = this.held[this.heldHead]!;
      this.held[this.heldHead] = null;
      this.heldHead = (this.heldHead + 1) % this.held.length;
      this.heldCount--;
      if (!this.server.isLive(req)) continue;
      this.server.complete(req, this.writeEvent(req));
    }
  }

  /** An eventq buffer: filled at once when an event waits, else held. */
  private onEventBuffer(req: QueueRequest): number | void {
    const c = req.chain;
    // driver/input/5: device-writable and at least one event long; otherwise returned unused.
    if (c.fault !== null || c.writableBytes < InputEvent.BYTES) return 0;
    if (this.evCount > 0) return this.writeEvent(req);
    if (this.heldCount === this.held.length) return 0; // cannot happen: the pool is the ring size
    const at = (this.heldHead + this.heldCount) % this.held.length;
    this.held[at] = req;
    this.heldCount++;
  }

  /** Writes the oldest queued event into `req`'s buffer; returns the bytes written. */
  private writeEvent(req: QueueRequest): number {
    const i = this.evHead;
    const v = this.scratchView;
    const le = this.littleEndian; // 5.8.6: little-endian (guest order on a legacy interface)
    v.setUint16(InputEvent.TYPE, this.evType[i]!, le);
    v.setUint16(InputEvent.CODE, this.evCode[i]!, le);
    v.setInt32(InputEvent.VALUE, this.evValue[i]!, le);
    this.evHead = (i + 1) % this.evType.length;
    this.evCount--;
    return this.writer.reset(req.chain).write(this.scratch);
  }

  /** A statusq buffer: one event from the driver, delivered to the listener. */
  private onStatusBuffer(req: QueueRequest): number {
    const c = req.chain;
    // driver/input/6: shorter than an event is a driver error; ignored.
    if (c.fault !== null || c.readableBytes < InputEvent.BYTES) return 0;
    this.reader.reset(c).read(this.scratch);
    const v = this.scratchView;
    const le = this.littleEndian;
    const cb = this.onStatus;
    if (cb !== null) {
      try {
        cb(v.getUint16(InputEvent.TYPE, le), v.getUint16(InputEvent.CODE, le), v.getInt32(InputEvent.VALUE, le));
      } catch {
        // A listener's failure is the host's; the guest's buffer still goes back.
      }
    }
    return 0;
  }

  private clearHeld(): void {
    this.held.fill(null);
    this.heldHead = 0;
    this.heldCount = 0;
  }
}

function checkEvent(type: number, code: number, value: number): void {
  if (!Number.isInteger(type) || type < 0 || type > 0xffff || !Number.isInteger(code) || code < 0 || code > 0xffff) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `event type ${type} code ${code} do not fit 16 bits`);
  }
  if (!Number.isInteger(value) || value < -0x8000_0000 || value > 0x7fff_ffff) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `event value ${value} does not fit 32 bits`);
  }
}
