/**
 * 5.18 GPIO Device, driver side: every message on the requestq as a device-readable request
 * and a device-writable response (driver/gpio/1..4), several in flight at once
 * (driver/gpio/5); interrupts only with VIRTIO_GPIO_F_IRQ and never on an output line
 * (driver/gpio/6, driver/gpio/7); enabled with SET_IRQ_TYPE before the line's single eventq
 * buffer unmasks it (driver/gpio/10..13); a type change goes through NONE (driver/gpio/9), and
 * `disableInterrupt` / `close` set NONE when done (driver/gpio/8).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigFields } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  GPIO_CONFIG_LAYOUT,
  GPIO_FEATURES,
  GPIO_IRQ_REQUEST_SIZE,
  GPIO_REQUEST,
  GPIO_REQUEST_SIZE,
  GPIO_RESPONSE_SIZE,
  GpioDirection,
  GpioF,
  GpioIrqStatus,
  GpioIrqType,
  GpioMsg,
  GpioQueue,
  GpioStatus,
  decodeGpioNames,
  isGpioIrqType,
} from '../../spec/gpio.js';

/** A message the device answered VIRTIO_GPIO_STATUS_ERR. */
export class GpioRequestError extends VirtioError {
  constructor(
    /** The VIRTIO_GPIO_MSG_* type of the failed request (5.18.6). */
    readonly messageType: number,
    /** The line the request was for. */
    readonly line: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `GPIO message ${messageType} for line ${line} failed`);
  }
}

/** An interrupt handler: called with the line each time the device reports an interrupt. */
export type GpioInterruptHandler = (line: number) => void;

interface IrqLine {
  type: GpioIrqType;
  handler: GpioInterruptHandler;
  /** The eventq buffer is queued (the interrupt is unmasked). */
  queued: boolean;
}

/**
 * The virtio-gpio driver (5.18): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class GpioDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<GpioDriver, undefined> = {
    name: 'virtio-gpio',
    deviceId: DeviceId.GPIO,
    wantedFeatures: GPIO_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx) => new GpioDriver(ctx),
  };

  /** Config ngpio and gpio_names_size. */
  readonly ngpio: number;
  /** gpio_names_size from the config: bytes of the line names block (0: no names). */
  readonly namesSize: number;
  /** VIRTIO_GPIO_F_IRQ was negotiated. */
  readonly hasIrq: boolean;
  private readonly ctx: DriverContext;
  private readonly le: boolean;
  private readonly requests: RequestQueue;
  private readonly events: RequestQueue | null;
  /** The direction each line was last set to or read as, to refuse IRQs on outputs (driver/gpio/7). */
  private readonly directions: Uint8Array;
  private readonly irqs = new Map<number, IrqLine>();
  private detached = false;

  constructor(ctx: DriverContext) {
    checkDriverContext(GpioDriver.type, ctx);
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    const c = readConfigFields(GPIO_CONFIG_LAYOUT, ['ngpio', 'gpioNamesSize'], (o, l) => ctx.readConfig(o, l), this.le);
    if (c.ngpio === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-gpio: ngpio is 0');
    this.ngpio = c.ngpio;
    this.namesSize = c.gpioNamesSize;
    this.hasIrq = (ctx.features & GpioF.IRQ) !== 0n;
    this.directions = new Uint8Array(this.ngpio).fill(0xff);
    this.requests = new RequestQueue(ctx, GpioQueue.REQUESTQ);
    this.events = this.hasIrq && ctx.numQueues > GpioQueue.EVENTQ ? new RequestQueue(ctx, GpioQueue.EVENTQ) : null;
  }

  /** The line names (null for a line without one); all null when the device has none. */
  async lineNames(): Promise<(string | null)[]> {
    if (this.namesSize === 0) return new Array<string | null>(this.ngpio).fill(null);
    // 5.18.6.1: a response of 1 + gpio_names_size bytes.
    const block = await this.message(GpioMsg.GET_LINE_NAMES, 0, 0, this.namesSize);
    return decodeGpioNames(block, this.ngpio);
  }

  /** VIRTIO_GPIO_MSG_GET_DIRECTION: the line's direction. */
  async getDirection(line: number): Promise<GpioDirection> {
    const d = (await this.message(GpioMsg.GET_DIRECTION, line, 0))[0]! as GpioDirection;
    this.directions[line] = d;
    return d;
  }

  /** Sets a line's direction; for an output, `value` is set first (5.18.6.3: "should set the value ... before"). */
  async setDirection(line: number, direction: GpioDirection, value?: 0 | 1): Promise<void> {
    if (direction !== GpioDirection.NONE && direction !== GpioDirection.IN && direction !== GpioDirection.OUT) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO direction ${String(direction)}`);
    this.checkLine(line);
    if (direction === GpioDirection.OUT && this.irqs.has(line)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO line ${line} has an interrupt enabled: disable it before making it an output (driver/gpio/7)`);
    if (direction === GpioDirection.OUT && value !== undefined) await this.setValue(line, value);
    await this.message(GpioMsg.SET_DIRECTION, line, direction);
    this.directions[line] = direction;
    // The device dropped the line's interrupt with its state (device/gpio/8).
    if (direction === GpioDirection.NONE) this.irqs.delete(line);
  }

  /** VIRTIO_GPIO_MSG_GET_VALUE: the line's value. */
  async getValue(line: number): Promise<0 | 1> {
    return ((await this.message(GpioMsg.GET_VALUE, line, 0))[0]! & 1) as 0 | 1;
  }

  /** VIRTIO_GPIO_MSG_SET_VALUE: drives an output line to `value`. */
  async setValue(line: number, value: 0 | 1): Promise<void> {
    if (value !== 0 && value !== 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO value ${String(value)}`);
    await this.message(GpioMsg.SET_VALUE, line, value);
  }

  /**
   * Enables the line's interrupt with `type` (SET_IRQ_TYPE), then unmasks it with the line's one
   * eventq buffer; `handler` runs on every interrupt, after which the buffer is queued again
   * (unmasked again). A line already enabled with another type is disabled first (driver/gpio/9).
   */
  async enableInterrupt(line: number, type: Exclude<GpioIrqType, 0>, handler: GpioInterruptHandler): Promise<void> {
    this.checkLine(line);
    // driver/gpio/6: IRQ messages only with the feature.
    if (!this.hasIrq || this.events === null) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'VIRTIO_GPIO_F_IRQ was not negotiated (driver/gpio/6)');
    if (!isGpioIrqType(type) || (type as number) === GpioIrqType.NONE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO trigger type ${String(type)}`);
    // driver/gpio/7: never for an output line.
    if (this.directions[line] === GpioDirection.OUT) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `GPIO line ${line} is an output (driver/gpio/7)`);
    const current = this.irqs.get(line);
    if (current && current.type !== type) await this.disableInterrupt(line);
    const existing = this.irqs.get(line);
    if (existing) {
      existing.handler = handler;
      return;
    }
    // driver/gpio/11: enabled first, then unmasked.
    await this.message(GpioMsg.SET_IRQ_TYPE, line, type);
    const irq: IrqLine = { type, handler, queued: false };
    this.irqs.set(line, irq);
    this.unmask(line, irq);
  }

  /** driver/gpio/8: sets the trigger type NONE; the device returns the line's buffer. */
  async disableInterrupt(line: number): Promise<void> {
    this.checkLine(line);
    if (!this.hasIrq) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'VIRTIO_GPIO_F_IRQ was not negotiated (driver/gpio/6)');
    this.irqs.delete(line);
    await this.message(GpioMsg.SET_IRQ_TYPE, line, GpioIrqType.NONE);
  }

  /** Lines with an interrupt enabled now. */
  get interruptLines(): number[] {
    return [...this.irqs.keys()];
  }

  /** Disables every interrupt (driver/gpio/8), then detaches. */
  async close(): Promise<void> {
    for (const line of [...this.irqs.keys()]) await this.disableInterrupt(line);
    this.detach();
  }

  /** Stops using the device: pending messages fail with RequestAbortedError('detached'). */
  detach(): void {
    this.detached = true;
    this.irqs.clear();
    this.requests.detach();
    this.events?.detach();
  }

  /** Queues the line's single eventq buffer (driver/gpio/12, driver/gpio/13). */
  private unmask(line: number, irq: IrqLine): void {
    if (irq.queued || this.detached) return;
    const { dma, memory } = this.ctx;
    const addr = dma.alloc(GPIO_IRQ_REQUEST_SIZE + 1, 4);
    const req = new Uint8Array(GPIO_IRQ_REQUEST_SIZE);
    new DataView(req.buffer).setUint16(0, line, this.le);
    memory.write(addr, req);
    memory.writeU8(addr + GPIO_IRQ_REQUEST_SIZE, GpioIrqStatus.INVALID);
    irq.queued = true;
    this.events!.submit([{ addr, len: GPIO_IRQ_REQUEST_SIZE }], [{ addr: addr + GPIO_IRQ_REQUEST_SIZE, len: 1 }]).then(
      (used) => {
        const status = used >= 1 ? memory.readU8(addr + GPIO_IRQ_REQUEST_SIZE) : GpioIrqStatus.INVALID;
        dma.free(addr);
        irq.queued = false;
        // Only the line's current registration counts: a buffer returned INVALID after a disable
        // is not requeued.
        if (this.irqs.get(line) !== irq) return;
        if (status === GpioIrqStatus.VALID) {
          try {
            irq.handler(line);
          } finally {
            if (this.irqs.get(line) === irq) this.unmask(line, irq);
          }
        } else this.unmask(line, irq); // INVALID while still enabled: queue again
      },
      () => {
        dma.free(addr);
        irq.queued = false;
      },
    );
  }

  private checkLine(line: number): void {
    if (!Number.isInteger(line) || line < 0 || line >= this.ngpio) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no GPIO line ${line} (ngpio ${this.ngpio})`);
  }

  /**
   * One message: the request device-readable, the response device-writable (driver/gpio/2..4);
   * resolves with the response value bytes (`valueLen` of them).
   */
  private async message(type: number, line: number, value: number, valueLen = 1): Promise<Uint8Array> {
    this.checkLine(line);
    const { dma, memory } = this.ctx;
    const respLen = type === GpioMsg.GET_LINE_NAMES ? 1 + valueLen : GPIO_RESPONSE_SIZE;
    const addr = dma.alloc(GPIO_REQUEST_SIZE + respLen, 8);
    try {
      const req = new DataView(new ArrayBuffer(GPIO_REQUEST_SIZE));
      req.setUint16(GPIO_REQUEST.type, type, this.le);
      req.setUint16(GPIO_REQUEST.gpio, line, this.le);
      req.setUint32(GPIO_REQUEST.value, value, this.le);
      memory.write(addr, new Uint8Array(req.buffer));
      memory.fill(addr + GPIO_REQUEST_SIZE, respLen, 0);
      memory.writeU8(addr + GPIO_REQUEST_SIZE, GpioStatus.ERR);
      const used = await this.requests.submit([{ addr, len: GPIO_REQUEST_SIZE }], [{ addr: addr + GPIO_REQUEST_SIZE, len: respLen }]);
      const status = memory.readU8(addr + GPIO_REQUEST_SIZE);
      if (status !== GpioStatus.OK) throw new GpioRequestError(type, line);
      if (used < respLen) throw new VirtioError(ErrorCode.REQUEST_FAILED, `GPIO message ${type}: response of ${used} bytes, ${respLen} expected`);
      const out = new Uint8Array(respLen - 1);
      memory.read(addr + GPIO_REQUEST_SIZE + 1, out);
      return out;
    } finally {
      dma.free(addr);
    }
  }
}
