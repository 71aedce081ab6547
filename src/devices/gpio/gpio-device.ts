/**
 * 5.18 GPIO Device, device side: named lines whose directions and output values the driver sets
 * and whose input levels the host drives (`setInput`), with interrupts (VIRTIO_GPIO_F_IRQ):
 * edge types latch while masked and are delivered when the line's eventq buffer arrives
 * (device/gpio/9); level types are never latched and fire whenever the buffer is there and the
 * level is active (device/gpio/10); disabling drops the latch and returns the buffer INVALID
 * (device/gpio/11, device/gpio/13).
 *
 * The guest is untrusted: a short or unmapped request, an unknown type, a line out of range, a
 * bad direction, value or trigger type, an IRQ message without the feature or for an output line
 * are answered VIRTIO_GPIO_STATUS_ERR; a response buffer too short for its message gets what
 * fits. Eventq buffers that name no line, arrive while the interrupt is disabled or duplicate a
 * line's buffer come back at once with VIRTIO_GPIO_IRQ_STATUS_INVALID. Nothing is thrown, and
 * the device holds at most one eventq buffer per line.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  GPIO_CONFIG_LAYOUT,
  GPIO_CONFIG_SIZE,
  GPIO_IRQ_REQUEST_SIZE,
  GPIO_REQUEST,
  GPIO_REQUEST_SIZE,
  GpioDirection,
  GpioF,
  GpioIrqStatus,
  GpioIrqType,
  GpioMsg,
  GpioQueue,
  GpioStatus,
  encodeGpioNames,
  isGpioIrqType,
} from '../../spec/gpio.js';
import { GpioLine, type GpioLineSpec } from './gpio-line.js';

/** Options of GpioDevice. */
export interface GpioDeviceOptions {
  /** Maximum queue size of both queues. Default 256. */
  queueSize?: number;
  /** Offer VIRTIO_GPIO_F_IRQ (default true). */
  irq?: boolean;
  /** The level the driver drives on a line changed (SET_VALUE on an output, a line made an output). */
  onOutput?: (line: number, level: 0 | 1) => void;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** A line as the host sees it. */
export interface GpioLineInfo {
  /** The line's name (GET_LINE_NAMES); null when it has none. */
  readonly name: string | null;
  /** The direction the driver set (SET_DIRECTION, 5.18.6), or the one at reset. */
  readonly direction: GpioDirection;
  /** The sensed level: the output value for an output line, else the host's input level. */
  readonly level: 0 | 1;
  /** The value the driver set with SET_VALUE (driven while the direction is OUT). */
  readonly outputValue: 0 | 1;
  /** The level the host drives on the line (`setInput`). */
  readonly input: 0 | 1;
  /** Interrupt trigger the driver set (SET_IRQ_TYPE); NONE: disabled. */
  readonly irqType: GpioIrqType;
  /** An edge was seen while the interrupt was masked; it is delivered once the driver unmasks it. */
  readonly irqLatched: boolean;
  /** The driver's eventq buffer for the line is held (the interrupt is unmasked). */
  readonly irqUnmasked: boolean;
}

/** Lines at most: `gpio` is 16 bits. */
export const GPIO_MAX_LINES = 0xffff;

/**
 * The virtio-gpio device (5.18): named GPIO lines the host drives and reads, with interrupts. What
 * it implements and its normative coverage: docs/devices/gpio.md.
 */
export class GpioDevice implements VirtioDevice {
  readonly deviceId = DeviceId.GPIO;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = GPIO_CONFIG_SIZE;
  /** Counters for tests and logs. */
  readonly stats = {
    /** requestq messages served. */
    requests: 0,
    /** requestq messages answered with VIRTIO_GPIO_STATUS_ERR. */
    errors: 0,
    /** Interrupts delivered (eventq buffers returned VALID). */
    interrupts: 0,
    /** eventq buffers returned INVALID: interrupt disabled, unknown line, or a second buffer. */
    invalidated: 0,
  };

  private readonly lines: GpioLine[];
  private readonly byName = new Map<string, number>();
  private readonly names: Uint8Array;
  /** Per line, the eventq buffer that unmasks its interrupt (null: masked). */
  private readonly eventBuffers: (QueueRequest | null)[];
  private readonly header = new Uint8Array(GPIO_REQUEST_SIZE);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly server: QueueServer;
  private readonly onOutput: ((line: number, level: 0 | 1) => void) | undefined;
  private readonly log: Logger | undefined;
  private littleEndian = true;
  private irqNegotiated = false;

  constructor(lines: readonly GpioLineSpec[], opts: GpioDeviceOptions = {}) {
    if (lines.length < 1 || lines.length > GPIO_MAX_LINES) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `a GPIO device has 1..${GPIO_MAX_LINES} lines, not ${lines.length}`);
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.lines = lines.map((s, i) => {
      const name = s.name ?? null;
      if (name !== null && name !== '') {
        // device/gpio/5: 7-bit ASCII, no NUL, unique within the device.
        if (![...name].every((c) => c.charCodeAt(0) >= 1 && c.charCodeAt(0) <= 0x7f)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO line ${i}: name "${name}" is not 7-bit ASCII`);
        if (this.byName.has(name)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO line name "${name}" is used twice`);
        this.byName.set(name, i);
      }
      const dir = s.direction ?? GpioDirection.NONE;
      if (dir !== GpioDirection.NONE && dir !== GpioDirection.IN && dir !== GpioDirection.OUT) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO line ${i}: direction ${String(dir)}`);
      return new GpioLine(i, name === '' ? null : name, dir, s.input ?? 0);
    });
    this.names = encodeGpioNames(this.lines.map((l) => l.name));
    this.eventBuffers = new Array<QueueRequest | null>(lines.length).fill(null);
    this.offeredFeatures = (opts.irq === false ? 0n : GpioF.IRQ) | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
    this.queueMaxSizes = [qs, qs];
    this.onOutput = opts.onOutput;
    this.log = opts.logger;
    const request = (req: QueueRequest): number => this.serveRequest(req);
    const event = (req: QueueRequest): number | void => this.serveEvent(req);
    this.server = new QueueServer({
      name: 'virtio-gpio',
      numQueues: 2,
      logger: opts.logger,
      handler: (i) => (i === GpioQueue.REQUESTQ ? request : i === GpioQueue.EVENTQ ? event : null),
      queueStopped: (i) => {
        // The held eventq buffers went with their queue (device/content/8: never touched again).
        if (i === GpioQueue.EVENTQ) this.eventBuffers.fill(null);
      },
    });
  }

  /** Number of lines (config ngpio). */
  get ngpio(): number {
    return this.lines.length;
  }

  /** The line numbered `line` or named `line`; throws INVALID_ARGUMENT for none. */
  lineIndex(line: number | string): number {
    const i = typeof line === 'string' ? (this.byName.get(line) ?? (/^\d+$/.test(line) ? Number(line) : -1)) : line;
    if (!Number.isInteger(i) || i < 0 || i >= this.lines.length) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no GPIO line ${String(line)}`);
    return i;
  }

  /** The state of a line as the host sees it. */
  line(line: number | string): GpioLineInfo {
    const l = this.lines[this.lineIndex(line)]!;
    return {
      name: l.name,
      direction: l.direction,
      level: l.level,
      outputValue: l.outputValue,
      input: l.input,
      irqType: l.irqType,
      irqLatched: l.latched,
      irqUnmasked: this.eventBuffers[l.index] !== null,
    };
  }

  /** The host drives `level` on a line; an input line sees the edge or level (interrupts). */
  setInput(line: number | string, level: 0 | 1): void {
    if (level !== 0 && level !== 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO level ${String(level)}: 0 or 1`);
    const l = this.lines[this.lineIndex(line)]!;
    const before = l.level;
    l.input = level;
    this.levelChanged(l, before);
  }

  // ---- requestq ----

  private serveRequest({ chain }: QueueRequest): number {
    this.stats.requests++;
    const writable = chain.writableBytes;
    if (writable === 0) return 0; // nowhere to answer
    let status: number = GpioStatus.ERR;
    let value = 0;
    let names = false;
    if (chain.fault === null && chain.readableBytes >= GPIO_REQUEST_SIZE && this.reader.reset(chain).read(this.header, 0, GPIO_REQUEST_SIZE) === GPIO_REQUEST_SIZE) {
      const le = this.littleEndian;
      const type = this.headerView.getUint16(GPIO_REQUEST.type, le);
      const gpio = this.headerView.getUint16(GPIO_REQUEST.gpio, le);
      const arg = this.headerView.getUint32(GPIO_REQUEST.value, le);
      if (type === GpioMsg.GET_LINE_NAMES) {
        // device/gpio/3: no names, no such message; the block needs its whole response buffer.
        if (this.names.length > 0 && writable >= 1 + this.names.length) {
          status = GpioStatus.OK;
          names = true;
        }
      } else if (gpio < this.lines.length) {
        const r = this.lineMessage(this.lines[gpio]!, type, arg);
        if (r >= 0) {
          status = GpioStatus.OK;
          value = r;
        }
      }
    }
    if (status !== GpioStatus.OK) this.stats.errors++;
    // device/gpio/1: every field of the response is set: status, then value (or the names).
    const w = this.writer.reset(chain);
    if (!w.writeU8(status)) return 0;
    if (names) return 1 + w.write(this.names);
    return w.writeU8(value) ? 2 : 1;
  }

  /** One message for a line: the response value, or -1 for ERR. */
  private lineMessage(l: GpioLine, type: number, arg: number): number {
    switch (type) {
      case GpioMsg.GET_DIRECTION:
        return l.direction;
      case GpioMsg.SET_DIRECTION: {
        if (arg !== GpioDirection.NONE && arg !== GpioDirection.IN && arg !== GpioDirection.OUT) return -1;
        const before = l.level;
        if (arg === GpioDirection.NONE) {
          // device/gpio/8: all state of the line goes, its interrupt with it.
          this.disableIrq(l);
          l.clearDriverState();
        } else {
          // driver/gpio/7: an output line has no interrupt; the device keeps it so.
          if (arg === GpioDirection.OUT && l.irqType !== GpioIrqType.NONE) this.disableIrq(l);
          l.direction = arg;
        }
        // The host hears what the driver drives: a line becoming an output (a released one is
        // the host's again, seen through `line`).
        if (l.direction === GpioDirection.OUT) this.outputChanged(l, before);
        this.levelChanged(l, before);
        return 0;
      }
      case GpioMsg.GET_VALUE:
        return l.level;
      case GpioMsg.SET_VALUE: {
        if (arg !== 0 && arg !== 1) return -1;
        // 5.18.6.5: kept for a line that becomes an output later.
        const before = l.level;
        l.outputValue = arg;
        if (l.direction === GpioDirection.OUT) this.outputChanged(l, before);
        return 0;
      }
      case GpioMsg.SET_IRQ_TYPE: {
        if (!this.irqNegotiated || !isGpioIrqType(arg)) return -1;
        if (arg === GpioIrqType.NONE) {
          this.disableIrq(l);
          return 0;
        }
        if (l.direction === GpioDirection.OUT) return -1;
        // A new type: latching starts now (5.18.6.6); a latch of the old type is dropped.
        l.irqType = arg;
        l.latched = false;
        if (l.levelActive) this.deliver(l);
        return 0;
      }
      default:
        return -1;
    }
  }

  private outputChanged(l: GpioLine, before: 0 | 1): void {
    if (l.level === before) return;
    try {
      this.onOutput?.(l.index, l.level);
    } catch (e) {
      this.log?.error(`virtio-gpio: onOutput threw: ${String(e)}`);
    }
  }

  // ---- interrupts ----

  /** The sensed level of `l` may have changed from `before`: edge latch or delivery, level delivery. */
  private levelChanged(l: GpioLine, before: 0 | 1): void {
    if (l.irqType === GpioIrqType.NONE || l.direction === GpioDirection.OUT) return;
    if (l.isEdge) {
      if (!l.edgeMatches(before, l.level)) return;
      // device/gpio/9: an edge while masked is latched; unmasked it is delivered now.
      if (this.eventBuffers[l.index] !== null) this.deliver(l);
      else l.latched = true;
    } else if (l.levelActive) this.deliver(l); // device/gpio/10: delivered only when unmasked
  }

  /** device/gpio/11, device/gpio/13: disabled: no latch, the buffer back INVALID. */
  private disableIrq(l: GpioLine): void {
    l.irqType = GpioIrqType.NONE;
    l.latched = false;
    const req = this.eventBuffers[l.index];
    if (req) {
      this.eventBuffers[l.index] = null;
      this.stats.invalidated++;
      this.completeEvent(req, GpioIrqStatus.INVALID);
    }
  }

  /** device/gpio/12: only with the interrupt enabled and unmasked (the buffer held) is it sent; that masks it. */
  private deliver(l: GpioLine): void {
    const req = this.eventBuffers[l.index];
    if (req === null || req === undefined || l.irqType === GpioIrqType.NONE) return;
    this.eventBuffers[l.index] = null;
    l.latched = false;
    this.stats.interrupts++;
    this.completeEvent(req, GpioIrqStatus.VALID);
  }

  private completeEvent(req: QueueRequest, status: number): void {
    if (!this.server.isLive(req)) return;
    const ok = this.writer.reset(req.chain).writeU8(status);
    this.server.complete(req, ok ? 1 : 0);
  }

  /** An eventq buffer: unmasks its line's interrupt, or comes back at once INVALID. */
  private serveEvent(req: QueueRequest): number | void {
    const { chain } = req;
    if (chain.writableBytes === 0) return 0;
    let gpio = -1;
    if (chain.fault === null && chain.readableBytes >= GPIO_IRQ_REQUEST_SIZE && this.reader.reset(chain).read(this.header, 0, GPIO_IRQ_REQUEST_SIZE) === GPIO_IRQ_REQUEST_SIZE) {
      gpio = this.headerView.getUint16(0, this.littleEndian);
    }
    const l = gpio >= 0 && gpio < this.lines.length ? this.lines[gpio]! : null;
    // Unmasked without being enabled, a line that does not exist, or a second buffer for a line
    // (driver/gpio/13): returned at once INVALID (5.18.6.6).
    if (l === null || !this.irqNegotiated || l.irqType === GpioIrqType.NONE || this.eventBuffers[gpio] !== null) {
      this.stats.invalidated++;
      return this.writer.reset(chain).writeU8(GpioIrqStatus.INVALID) ? 1 : 0;
    }
    this.eventBuffers[gpio] = req;
    // A latched edge, or an active level, is delivered as soon as the line is unmasked.
    if ((l.isEdge && l.latched) || l.levelActive) this.deliver(l);
  }

  // ---- VirtioDevice ----

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    // device/gpio/2..4: every field set; gpio_names_size 0 without names; padding zero.
    encodeConfig(GPIO_CONFIG_LAYOUT, { ngpio: this.lines.length, gpioNamesSize: this.names.length }, features, offset, dst, littleEndian);
  }

  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.littleEndian = ctx.littleEndian;
    this.irqNegotiated = (ctx.features & GpioF.IRQ) !== 0n;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  suspend(): Promise<void> | void {
    // Held eventq buffers are in flight: they go back INVALID so suspension can finish.
    for (const l of this.lines) {
      const req = this.eventBuffers[l.index];
      if (req) {
        this.eventBuffers[l.index] = null;
        this.completeEvent(req, GpioIrqStatus.INVALID);
      }
    }
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  reset(): void {
    this.server.reset();
    this.eventBuffers.fill(null);
    for (const l of this.lines) l.reset();
    this.irqNegotiated = false;
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}
