/**
 * 5.3 Console Device, driver side, on RequestQueues: port 0's receiveq/transmitq, and with
 * MULTIPORT the control queues and the ports the device announces (5.3.6.2). Receive queues
 * only ever get device-writable buffers and transmit queues device-readable ones
 * (driver/console/1, driver/console/2).
 *
 * Multiport start: control receive buffers are posted, then DEVICE_READY (driver/console/3);
 * each DEVICE_ADD gets its port's receive buffers and PORT_READY; a CONSOLE_PORT is answered
 * with PORT_OPEN value 1 (driver/console/4). Bad messages from the device (unknown event, port
 * out of range) are ignored and counted, never thrown.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { readConfigField, writeConfigField } from '../../spec/config-layout.js';
import {
  CONSOLE_CONFIG_LAYOUT,
  CONSOLE_FEATURES,
  ConsoleControl,
  ConsoleEvent,
  ConsoleF,
  ConsoleQueue,
  consoleReceiveQueue,
  consoleTransmitQueue,
} from '../../spec/console.js';
import { DeviceId } from '../../spec/device-id.js';
import { type ConsoleControlHeader, decodeControl, decodeResize, encodeControl } from './console-control.js';

/** Options of ConsoleDriver. */
export interface ConsoleDriverOptions {
  /** Receive buffers posted per port. Default 8. */
  receiveBuffers?: number;
  /** Bytes per receive buffer. Default 4096. */
  receiveBufferSize?: number;
  /** Unread bytes per port beyond which receive buffers are not posted again until read. Default 64 KiB. */
  maxUnread?: number;
  /** Control receive buffers posted (MULTIPORT). Default 16. */
  controlBuffers?: number;
}

const NO_SEGMENTS: readonly Segment[] = [];
/** Control receive buffer size: a header and a port name (CONSOLE_MAX_NAME_BYTES) fit. */
const CONTROL_BUFFER = 512;
/** Bytes per transmit buffer at most. */
const WRITE_CHUNK = 64 * 1024;

/** Counters of device messages the driver ignored. */
export interface ConsoleDriverStats {
  /** Control messages shorter than struct virtio_console_control, or with an unknown event. */
  badControl: number;
  /** Control messages for a port beyond max_nr_ports, not present, or a DEVICE_ADD of a present one. */
  unknownPort: number;
}

/** One port as the driver sees it. */
export class ConsoleDriverPort {
  /** The name the device gave with PORT_NAME (5.3.6.2), or null before one came. */
  name: string | null = null;
  /** The device nominated the port a console (CONSOLE_PORT with value 1). */
  isConsole = false;
  /** Whether the host side is connected (PORT_OPEN from the device; always true without MULTIPORT). */
  get hostOpen(): boolean {
    return this.hostConnected;
  }
  private hostConnected = false;
  private openWaiters: (() => void)[] = [];
  /** The console size the device last gave (RESIZE), or null. */
  size: {
    /** Columns (characters per line). */
    cols: number;
    /** Rows (lines). */
    rows: number;
  } | null = null;
  /** False once the device removed the port (DEVICE_REMOVE). */
  present = true;

  private readonly chunks: Uint8Array[] = [];
  private unread = 0;
  private readonly readers: { resolve: (b: Uint8Array) => void; reject: (e: unknown) => void }[] = [];
  private failure: VirtioError | null = null;
  /** Receive buffers that came back while too much was unread: posted again by read(). */
  private parked: number[] = [];

  /** @internal */
  constructor(
    /** Port number: 0 for the first port, below max_nr_ports. */
    readonly id: number,
    private readonly driver: ConsoleDriver,
    private readonly rx: RequestQueue,
    private readonly tx: RequestQueue,
    private readonly bufferSize: number,
    private readonly maxUnread: number,
  ) {}

  /** Sends `data` on the port's transmitq (in buffers of at most 64 KiB); resolves once the device used them. */
  async write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    const ctx = this.driver.context;
    for (let off = 0; off < bytes.length; off += WRITE_CHUNK) {
      const n = Math.min(WRITE_CHUNK, bytes.length - off);
      const addr = ctx.dma.alloc(n, 16);
      try {
        ctx.memory.write(addr, bytes, off, n);
        // Legacy (5.3.6.3): the used length of a transmitq is not meaningful; it is ignored.
        await this.tx.submit([{ addr, len: n }], NO_SEGMENTS);
      } finally {
        ctx.dma.free(addr);
      }
    }
  }

  /** The next bytes the device sent on the port (waits for them). */
  read(): Promise<Uint8Array> {
    const c = this.chunks.shift();
    if (c !== undefined) {
      this.unread -= c.length;
      this.unpark();
      return Promise.resolve(c);
    }
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  /** Exactly `n` bytes (as many reads as it takes). */
  async readBytes(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const c = await this.read();
      const take = Math.min(c.length, n - got);
      out.set(c.subarray(0, take), got);
      got += take;
      if (take < c.length) this.unshift(c.subarray(take));
    }
    return out;
  }

  /**
   * Resolves once the host side is connected. The device sends PORT_NAME and CONSOLE_PORT before
   * PORT_OPEN, so the port's name and kind are known by then.
   */
  whenHostOpen(): Promise<void> {
    if (this.hostConnected) return Promise.resolve();
    return new Promise((resolve) => this.openWaiters.push(resolve));
  }

  /** @internal */
  setHostOpen(open: boolean): void {
    this.hostConnected = open;
    if (open) for (const w of this.openWaiters.splice(0)) w();
  }

  /** Opens (true) or closes the port for the device (PORT_OPEN; MULTIPORT only). */
  setOpen(open: boolean): Promise<void> {
    return this.driver.sendControl(this.id, ConsoleEvent.PORT_OPEN, open ? 1 : 0);
  }

  /** @internal Posts the receive buffers (each keeps its guest memory for its life). */
  start(count: number): void {
    for (let i = 0; i < count; i++) this.post(this.driver.context.dma.alloc(this.bufferSize, 16));
  }

  /** @internal */
  fail(e: VirtioError): void {
    this.failure = e;
    for (const r of this.readers.splice(0)) r.reject(e);
  }

  private post(addr: number): void {
    this.rx.submit(NO_SEGMENTS, [{ addr, len: this.bufferSize }]).then(
      (used) => this.received(addr, used),
      (e: unknown) => {
        this.driver.context.dma.free(addr);
        this.fail(e instanceof VirtioError ? e : new VirtioError(ErrorCode.REQUEST_FAILED, String(e)));
      },
    );
  }

  private received(addr: number, used: number): void {
    const n = Math.min(used, this.bufferSize); // a device cannot make the driver read past its buffer
    if (n > 0) {
      const b = new Uint8Array(n);
      this.driver.context.memory.read(addr, b);
      const r = this.readers.shift();
      if (r) r.resolve(b);
      else {
        this.chunks.push(b);
        this.unread += n;
      }
    }
    if (this.unread > this.maxUnread) this.parked.push(addr);
    else this.post(addr);
  }

  private unshift(c: Uint8Array): void {
    this.chunks.unshift(c);
    this.unread += c.length;
  }

  private unpark(): void {
    if (this.unread > this.maxUnread) return;
    const p = this.parked;
    this.parked = [];
    for (const addr of p) this.post(addr);
  }
}

/**
 * The virtio-console driver (5.3): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class ConsoleDriver implements DeviceDriver {
  /** The DeviceDriver contract: console devices, every console feature usable, none required. */
  static readonly type: DeviceDriverType<ConsoleDriver, ConsoleDriverOptions> = {
    name: 'virtio-console',
    deviceId: DeviceId.CONSOLE,
    wantedFeatures: CONSOLE_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new ConsoleDriver(ctx, opts),
  };

  /** VIRTIO_CONSOLE_F_MULTIPORT was negotiated: ports come and go by control messages. */
  readonly multiport: boolean;
  /** max_nr_ports (1 without MULTIPORT). */
  readonly maxNrPorts: number;
  /** False when max_nr_ports read 0 (no configuration space through this transport). */
  readonly configAvailable: boolean = true;
  /** Counts of control messages the driver ignored. */
  readonly stats: ConsoleDriverStats = { badControl: 0, unknownPort: 0 };

  private readonly queues: RequestQueue[] = [];
  private readonly ports = new Map<number, ConsoleDriverPort>();
  private readonly portQueues = new Map<number, { rx: RequestQueue; tx: RequestQueue }>();
  private readonly waiters = new Map<number, ((p: ConsoleDriverPort) => void)[]>();
  private readonly ctrlTx: RequestQueue | null = null;
  private readonly header: ConsoleControlHeader = { id: 0, event: 0, value: 0 };
  private readonly o: Required<ConsoleDriverOptions>;
  private detached = false;

  constructor(
    /** The driver context the console is driven through. */
    readonly context: DriverContext,
    opts: ConsoleDriverOptions = {},
  ) {
    checkDriverContext(ConsoleDriver.type, context);
    this.o = {
      receiveBuffers: opts.receiveBuffers ?? 8,
      receiveBufferSize: opts.receiveBufferSize ?? 4096,
      maxUnread: opts.maxUnread ?? 64 * 1024,
      controlBuffers: opts.controlBuffers ?? 16,
    };
    for (const [k, v] of Object.entries(this.o)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad ${k} ${v}`);
    }
    this.multiport = (context.features & ConsoleF.MULTIPORT) !== 0n;
    const read = (o: number, l: number): Uint8Array => context.readConfig(o, l);
    const configured = this.multiport ? readConfigField(CONSOLE_CONFIG_LAYOUT, 'maxNrPorts', read, context.littleEndian) : 1;
    // A max_nr_ports of 0 is no valid configuration (a transport that cannot read the device's
    // config, such as the vhost-user front-end without a console config size): the queues the
    // device has say how many ports can work.
    this.maxNrPorts = configured === 0 ? this.portLimit() : configured;
    this.configAvailable = configured !== 0;
    if (!this.multiport) {
      const port = this.addPort(0);
      port.isConsole = true;
      port.setHostOpen(true);
      return;
    }
    // Only the ports the queues exist for can be used, whatever max_nr_ports says.
    const ctrlRx = this.track(new RequestQueue(context, ConsoleQueue.CONTROL_RECEIVEQ));
    this.ctrlTx = this.track(new RequestQueue(context, ConsoleQueue.CONTROL_TRANSMITQ));
    for (let i = 0; i < this.o.controlBuffers; i++) this.postControl(ctrlRx, context.dma.alloc(CONTROL_BUFFER, 16));
    // driver/console/3: DEVICE_READY once the control receiveq can take the device's answers.
    void this.sendControl(0, ConsoleEvent.DEVICE_READY, 1).catch(() => {});
  }

  /** Port `id` once the device has announced it (port 0 at once without MULTIPORT). */
  port(id: number): ConsoleDriverPort | undefined {
    return this.ports.get(id);
  }

  /** Resolves with port `id` when it exists (after DEVICE_ADD with MULTIPORT). */
  waitForPort(id: number): Promise<ConsoleDriverPort> {
    const p = this.ports.get(id);
    if (p?.present) return Promise.resolve(p);
    return new Promise((resolve) => {
      const list = this.waiters.get(id) ?? [];
      list.push(resolve);
      this.waiters.set(id, list);
    });
  }

  /** Console size from the configuration (VIRTIO_CONSOLE_F_SIZE), or null without it. */
  configSize(): {
    /** `cols` of struct virtio_console_config. */
    cols: number;
    /** `rows` of struct virtio_console_config. */
    rows: number;
  } | null {
    const ctx = this.context;
    if ((ctx.features & ConsoleF.SIZE) === 0n) return null;
    const read = (o: number, l: number): Uint8Array => ctx.readConfig(o, l);
    return {
      cols: readConfigField(CONSOLE_CONFIG_LAYOUT, 'cols', read, ctx.littleEndian),
      rows: readConfigField(CONSOLE_CONFIG_LAYOUT, 'rows', read, ctx.littleEndian),
    };
  }

  /** Emergency write of one byte through emerg_wr (VIRTIO_CONSOLE_F_EMERG_WRITE). */
  emergencyWrite(byte: number): void {
    const ctx = this.context;
    if ((ctx.features & ConsoleF.EMERG_WRITE) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'emergency write was not negotiated');
    writeConfigField(CONSOLE_CONFIG_LAYOUT, 'emergWr', byte & 0xff, (o, b) => ctx.writeConfig(o, b), ctx.littleEndian);
  }

  /** Stops using the device: pending reads and writes fail with RequestAbortedError('detached'). */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    for (const q of this.queues) q.detach();
  }

  /** @internal Sends a control message on the control transmitq. */
  async sendControl(id: number, event: number, value: number): Promise<void> {
    if (this.ctrlTx === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'control messages need multiport');
    const ctx = this.context;
    const addr = ctx.dma.alloc(ConsoleControl.SIZE, 16);
    try {
      ctx.memory.write(addr, encodeControl(id, event, value, null, ctx.littleEndian));
      await this.ctrlTx.submit([{ addr, len: ConsoleControl.SIZE }], NO_SEGMENTS);
    } finally {
      ctx.dma.free(addr);
    }
  }

  private track(q: RequestQueue): RequestQueue {
    this.queues.push(q);
    return q;
  }

  private addPort(id: number): ConsoleDriverPort {
    let qs = this.portQueues.get(id);
    const fresh = qs === undefined;
    if (!qs) {
      qs = { rx: this.track(new RequestQueue(this.context, consoleReceiveQueue(id))), tx: this.track(new RequestQueue(this.context, consoleTransmitQueue(id))) };
      this.portQueues.set(id, qs);
    }
    const port = new ConsoleDriverPort(id, this, qs.rx, qs.tx, this.o.receiveBufferSize, this.o.maxUnread);
    this.ports.set(id, port);
    // A port added again reuses the buffers its queue still holds.
    if (fresh) port.start(this.o.receiveBuffers);
    for (const w of this.waiters.get(id) ?? []) w(port);
    this.waiters.delete(id);
    return port;
  }

  private postControl(q: RequestQueue, addr: number): void {
    q.submit(NO_SEGMENTS, [{ addr, len: CONTROL_BUFFER }]).then(
      (used) => {
        const n = Math.min(used, CONTROL_BUFFER);
        if (n >= ConsoleControl.SIZE) {
          const b = new Uint8Array(n);
          this.context.memory.read(addr, b);
          this.onControl(b);
        } else this.stats.badControl++;
        if (!this.detached) this.postControl(q, addr);
      },
      () => this.context.dma.free(addr),
    );
  }

  private onControl(msg: Uint8Array): void {
    const ctx = this.context;
    const h = decodeControl(msg, ctx.littleEndian, this.header);
    const payload = msg.subarray(ConsoleControl.SIZE);
    if (h.id >= this.maxNrPorts || h.id >= this.portLimit()) {
      this.stats.unknownPort++;
      return;
    }
    const id = h.id;
    if (h.event === ConsoleEvent.DEVICE_ADD) {
      if (this.ports.get(id)?.present) {
        this.stats.unknownPort++; // device/console/3: a port that exists is not added again
        return;
      }
      this.addPort(id);
      void this.sendControl(id, ConsoleEvent.PORT_READY, 1).catch(() => {});
      return;
    }
    const port = this.ports.get(id);
    if (!port?.present) {
      this.stats.unknownPort++;
      return;
    }
    switch (h.event) {
      case ConsoleEvent.DEVICE_REMOVE:
        port.present = false;
        port.fail(new VirtioError(ErrorCode.REQUEST_FAILED, `port ${id} was removed`));
        return;
      case ConsoleEvent.CONSOLE_PORT:
        if (h.value === 0) return;
        port.isConsole = true;
        // driver/console/4: a console port is answered with PORT_OPEN value 1.
        void port.setOpen(true).catch(() => {});
        return;
      case ConsoleEvent.RESIZE:
        port.size = decodeResize(payload, ctx.littleEndian) ?? port.size;
        return;
      case ConsoleEvent.PORT_OPEN:
        port.setHostOpen(h.value !== 0);
        return;
      case ConsoleEvent.PORT_NAME: {
        // 5.3.6.2: the name comes without NUL; QEMU 7.2 sends one anyway (and Linux stops at
        // it), so the name ends at the first NUL.
        const nul = payload.indexOf(0);
        port.name = new TextDecoder('utf-8', { fatal: false }).decode(nul < 0 ? payload : payload.subarray(0, nul));
        return;
      }
      default:
        this.stats.badControl++;
    }
  }

  /** Ports whose queues exist on this device (numQueues may be less than max_nr_ports asks). */
  private portLimit(): number {
    return Math.max(1, (this.context.numQueues - 2) >> 1);
  }
}
