/**
 * 5.3 Console Device, device side. Port 0 always has its receiveq/transmitq; with MULTIPORT the
 * control queues carry the port lifecycle (5.3.6.2) and further ports have their own pair. Each
 * port's host end is a ConsolePort (a Duplex stream, see console-port.ts for flow control).
 *
 * Queues on the QueueServer:
 *  - receiveq: a posted buffer is held (the handler returns nothing) until host data arrives,
 *    then completed with the bytes written, in the order posted;
 *  - transmitq: buffers are read into the port's Readable as its reader takes them (held
 *    otherwise), completed with used length 0 (the device writes nothing);
 *  - control receiveq: held until the device has a message; control transmitq: decoded at once.
 * The guest is untrusted: a short or unmapped control message, an unknown event or port id is
 * ignored and counted (`stats`), never thrown; a transmit buffer is read piece by piece, so its
 * declared length never sizes a host allocation.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { type ConfigValues, decodeConfigWrite, encodeConfig } from '../../spec/config-layout.js';
import {
  CONSOLE_CONFIG_LAYOUT,
  ConsoleConfig,
  ConsoleControl,
  ConsoleEvent,
  ConsoleF,
  type ConsoleConfigField,
  ConsoleQueue,
  consoleQueueCount,
  consoleReceiveQueue,
  consoleTransmitQueue,
} from '../../spec/console.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { type ConsoleControlHeader, checkSize, consoleEventName, decodeControl, encodeControl, encodePortName, encodeResize } from './console-control.js';
import { RebindTolerantContext } from './rebind-tolerant-context.js';
import { ConsolePort, type ConsolePortHost, type ConsolePortOptions } from './console-port.js';
import type { ConsoleDeviceOptions, ConsoleDeviceStats } from './console-device-options.js';

/** Bytes of a transmit buffer read into the port's Readable at once. */
export const CONSOLE_TX_PIECE = 16 * 1024;
/** Device -> driver control messages waiting for control receiveq buffers, at most. */
const MAX_PENDING_CONTROL = 1024;
/** 5.3.4: max_nr_ports bound of this implementation (Linux takes up to 0x8000 / 2 queues). */
const MAX_PORTS = 1024;

type Handler = ((req: QueueRequest) => number | void) | null;

/**
 * The virtio-console device (5.3): ports (with MULTIPORT) whose host ends are streams: sockets,
 * ptys, stdio, files. What it implements and its normative coverage: docs/devices/console.md.
 */
export class ConsoleDevice implements VirtioDevice {
  readonly deviceId = DeviceId.CONSOLE;
  /** Receive buffers complete when data arrives, not in order of other queues' work: no IN_ORDER. */
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = ConsoleConfig.SIZE;
  /** max_nr_ports offered with MULTIPORT (1 without it). */
  readonly maxNrPorts: number;
  /**
   * Counts of what the device refused or dropped (bad control messages, unknown ports, output
   * nobody read).
   */
  readonly stats: ConsoleDeviceStats = { badControl: 0, unknownPort: 0, badBuffers: 0, droppedControl: 0, droppedEmergency: 0, droppedOutput: 0 };

  private readonly ports: (ConsolePort | null)[];
  private readonly server: QueueServer;
  private readonly log: Logger | undefined;
  private readonly onEmergency: ((byte: number) => void) | null;
  private cols: number;
  private rows: number;
  private readonly portHost: ConsolePortHost;
  private readonly beforeHostAccess: () => void;

  // Per activation.
  private multiport = false;
  private littleEndian = true;
  /** DEVICE_READY (value 1) received: the device may announce ports. */
  private driverReady = false;
  /** Ports announced with DEVICE_ADD and not removed since (device/console/3, 4). */
  private readonly announced: Uint8Array;
  /** Ports the driver answered PORT_READY 1 for: host open/close is reported from then on. */
  private readonly portReady: Uint8Array;
  /** Receive buffers held per port, in the order posted. */
  private readonly rxHeld: QueueRequest[][];
  /** Transmit buffers held per port, in the order posted; the first may be partly read. */
  private readonly txHeld: QueueRequest[][];
  private readonly txPumping: Uint8Array;
  private readonly ctrlRxHeld: QueueRequest[] = [];
  private readonly ctrlOut: Uint8Array[] = [];

  private readonly writer = new ChainCursor(true);
  private readonly ctrlReader = new ChainCursor(false);
  /** One reader per port: a transmit buffer is read across calls. */
  private readonly txReaders: ChainCursor[];
  /** The transmit request each reader is positioned in. */
  private readonly txCurrent: (QueueRequest | null)[];
  private readonly ctrlScratch = new Uint8Array(ConsoleControl.SIZE);
  private readonly header: ConsoleControlHeader = { id: 0, event: 0, value: 0 };

  constructor(opts: ConsoleDeviceOptions = {}) {
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    const portOpts = opts.ports ?? [{}];
    const max = opts.maxNrPorts ?? Math.max(1, portOpts.length);
    if (!Number.isInteger(max) || max < 1 || max > MAX_PORTS) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `maxNrPorts ${max} not in 1..${MAX_PORTS}`);
    if (portOpts.length > max) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${portOpts.length} ports but maxNrPorts ${max}`);
    const multiport = opts.multiport ?? max > 1;
    if (!multiport && (max > 1 || portOpts.length > 1)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'more than one port needs multiport');
    if (portOpts[0] === null && !multiport) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'port 0 always exists without multiport');
    this.maxNrPorts = max;
    this.log = opts.logger;
    this.cols = opts.size?.cols ?? 0;
    this.rows = opts.size?.rows ?? 0;
    if (opts.size) checkSize(this.cols, this.rows);
    let features = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
    if (opts.size) features |= ConsoleF.SIZE;
    if (multiport) features |= ConsoleF.MULTIPORT;
    if (opts.emergencyWrite ?? true) features |= ConsoleF.EMERG_WRITE;
    this.offeredFeatures = features;
    this.onEmergency = opts.onEmergencyWrite ?? null;

    const nq = consoleQueueCount(max, multiport);
    this.queueMaxSizes = new Array<number>(nq).fill(qs);
    this.announced = new Uint8Array(max);
    this.portReady = new Uint8Array(max);
    this.txPumping = new Uint8Array(max);
    this.rxHeld = Array.from({ length: max }, () => []);
    this.txHeld = Array.from({ length: max }, () => []);
    this.txReaders = Array.from({ length: max }, () => new ChainCursor(false));
    this.txCurrent = new Array<QueueRequest | null>(max).fill(null);
    const before = opts.beforeHostAccess ?? null;
    this.beforeHostAccess = before ?? (() => {});
    this.portHost = {
      hostWrote: (p) => {
        before?.();
        this.pumpRx(p.id);
      },
      hostReads: (p) => {
        before?.();
        this.pumpTx(p.id);
      },
      hostDestroyed: (p) => {
        before?.();
        this.pumpTx(p.id);
      },
    };
    this.ports = new Array<ConsolePort | null>(max).fill(null);
    portOpts.forEach((o, id) => {
      if (o !== null) this.attach(new ConsolePort(id, o));
    });

    const handlers: Handler[] = [];
    for (let q = 0; q < nq; q++) handlers.push(this.handlerFor(q));
    this.server = new QueueServer({
      name: 'virtio-console',
      numQueues: nq,
      logger: opts.logger,
      handler: (i) => handlers[i] ?? null,
      queueStopped: (i) => this.queueStopped(i),
    });
  }

  /** The host end of port `id` (null when absent). */
  port(id: number): ConsolePort | null {
    return this.ports[id] ?? null;
  }

  /** Whether the driver negotiated MULTIPORT and sent DEVICE_READY. */
  get ready(): boolean {
    return this.driverReady;
  }

  /**
   * Adds port `id` (hot-plug, 5.3.6 item 4): announced at once when the driver is ready, else
   * when it becomes ready. Needs MULTIPORT offered; `id` below max_nr_ports and free (device/console/3).
   */
  addPort(id: number, opts: ConsolePortOptions = {}): ConsolePort {
    if ((this.offeredFeatures & ConsoleF.MULTIPORT) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'adding a port needs multiport');
    if (!Number.isInteger(id) || id < 0 || id >= this.maxNrPorts) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `port ${id} not below max_nr_ports ${this.maxNrPorts}`);
    if (this.ports[id] !== null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `port ${id} exists`);
    const port = new ConsolePort(id, opts);
    this.attach(port);
    if (this.driverReady) {
      this.beforeHostAccess();
      this.announce(id);
    }
    return port;
  }

  /**
   * Removes port `id` (hot-unplug): DEVICE_REMOVE when it was announced (device/console/4), then
   * its host end ends. Returns whether the port existed.
   */
  removePort(id: number): boolean {
    const port = this.ports[id];
    if (!port) return false;
    if (this.announced[id]) {
      this.beforeHostAccess();
      this.announced[id] = 0;
      this.portReady[id] = 0;
      this.sendControl(id, ConsoleEvent.DEVICE_REMOVE, 0, null);
    }
    this.ports[id] = null;
    port.host = null;
    port.setGuestOpen(false);
    port.push(null);
    return true;
  }

  /**
   * The host side of port `id` connected (true) or went away (false): reported to the guest with
   * PORT_OPEN (5.3.6.2) once the port is set up. While the host side is away the guest's output
   * on the port is dropped and counted (`droppedOutput`), as QEMU drops it for a disconnected
   * chardev: a Linux console (hvc) write spins until the device uses its buffer, so holding it
   * would stall the guest. Returns false when the port does not exist.
   */
  setHostOpen(id: number, open: boolean): boolean {
    const port = this.ports[id];
    if (!port) return false;
    if (port.hostOpen === open) return true;
    port.hostOpen = open;
    this.beforeHostAccess();
    if (this.announced[id] && this.portReady[id]) this.sendControl(id, ConsoleEvent.PORT_OPEN, open ? 1 : 0, null);
    if (!open) this.pumpTx(id); // held output of a closed host side goes now
    return true;
  }

  /**
   * A console size change of port `id`: port 0's size is in the configuration (with SIZE, and a
   * configuration change notification, 5.3.6 item 3); with MULTIPORT a console port also gets
   * a RESIZE control message.
   */
  resize(cols: number, rows: number, id = 0): void {
    checkSize(cols, rows);
    this.beforeHostAccess();
    const ctx = this.server.context;
    if (id === 0) {
      this.cols = cols;
      this.rows = rows;
      if (ctx && (ctx.features & ConsoleF.SIZE) !== 0n) ctx.notifyConfigChange();
    }
    const port = this.ports[id];
    if (port && id !== 0) port.size = { cols, rows };
    if (this.multiport && port?.isConsole && this.announced[id]) this.sendControl(id, ConsoleEvent.RESIZE, 0, encodeResize(cols, rows, this.littleEndian));
  }

  // ---- configuration (5.3.4) ----

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    const values: ConfigValues<ConsoleConfigField> = { cols: this.cols, rows: this.rows, maxNrPorts: this.maxNrPorts, emergWr: 0 };
    encodeConfig(CONSOLE_CONFIG_LAYOUT, values, this.offeredFeatures, offset, dst, littleEndian);
  }

  writeConfig(offset: number, src: Uint8Array, _features: bigint, littleEndian: boolean): void {
    // device/console/1: emerg_wr works even before the feature is acknowledged, so the write is
    // decoded against the offered features, not the negotiated ones.
    if ((this.offeredFeatures & ConsoleF.EMERG_WRITE) === 0n) return;
    decodeConfigWrite(CONSOLE_CONFIG_LAYOUT, offset, src, this.offeredFeatures, littleEndian, (field, value) => {
      if (field === 'emergWr') this.emergencyWrite(value & 0xff);
    });
    // A single-byte write of the field's low byte (its address depends on the byte order).
    const low = ConsoleConfig.EMERG_WR + (littleEndian ? 0 : 3);
    if (src.length === 1 && offset === low) this.emergencyWrite(src[0]!);
  }

  /** device/console/2: the lower byte goes to the output (port 0's host end by default). */
  private emergencyWrite(byte: number): void {
    if (this.onEmergency) {
      this.onEmergency(byte);
      return;
    }
    const port = this.ports[0];
    if (!port || port.destroyed || port.readableLength >= port.readableHighWaterMark) {
      this.stats.droppedEmergency++;
      return;
    }
    port.push(Buffer.of(byte));
  }

  // ---- lifecycle ----

  activate(ctx: DeviceContext): void {
    this.clearHeld();
    this.multiport = (ctx.features & ConsoleF.MULTIPORT) !== 0n;
    this.littleEndian = ctx.littleEndian;
    this.driverReady = false;
    this.announced.fill(0);
    this.portReady.fill(0);
    // Without MULTIPORT there is no PORT_OPEN: the single port is open while the device runs.
    if (!this.multiport) this.ports[0]?.setGuestOpen(true);
    // Held buffers must survive the embedder rebinding guest memory (rebind-tolerant-context.ts).
    this.server.activate(new RebindTolerantContext(ctx));
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    this.server.reset();
    this.clearHeld();
    this.driverReady = false;
    this.announced.fill(0);
    this.portReady.fill(0);
    for (const p of this.ports) p?.setGuestOpen(false);
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }

  // ---- queues ----

  private handlerFor(q: number): Handler {
    if (q === ConsoleQueue.CONTROL_RECEIVEQ) return (req) => this.controlBufferPosted(req);
    if (q === ConsoleQueue.CONTROL_TRANSMITQ) return (req) => this.controlMessage(req);
    const port = q < 2 ? 0 : (q - 2) >> 1;
    if ((q & 1) === 0) return (req) => this.receiveBufferPosted(port, req);
    return (req) => this.transmitBufferPosted(port, req);
  }

  private queueStopped(index: number): void {
    if (index === ConsoleQueue.CONTROL_RECEIVEQ) this.ctrlRxHeld.length = 0;
    else if (index === ConsoleQueue.CONTROL_TRANSMITQ) return;
    else {
      const port = index < 2 ? 0 : (index - 2) >> 1;
      if ((index & 1) === 0) this.rxHeld[port]!.length = 0;
      else {
        this.txHeld[port]!.length = 0;
        this.txCurrent[port] = null;
      }
    }
  }

  private clearHeld(): void {
    for (const h of this.rxHeld) h.length = 0;
    for (const h of this.txHeld) h.length = 0;
    this.txCurrent.fill(null);
    this.ctrlRxHeld.length = 0;
    this.ctrlOut.length = 0;
  }

  /** receiveq: held until host data arrives (driver/console/1: readable parts are never read). */
  private receiveBufferPosted(port: number, req: QueueRequest): number | void {
    if (req.chain.fault !== null || req.chain.writableBytes === 0) {
      this.stats.badBuffers++;
      return 0;
    }
    this.rxHeld[port]!.push(req);
    this.pumpRx(port);
  }

  /** transmitq: held until the port's reader takes the bytes. */
  private transmitBufferPosted(port: number, req: QueueRequest): number | void {
    // driver/console/2: a writable part is a driver error; the device writes nothing anyway.
    if (req.chain.fault !== null) {
      this.stats.badBuffers++;
      return 0;
    }
    if (req.chain.writableBytes > 0) this.stats.badBuffers++;
    this.txHeld[port]!.push(req);
    this.pumpTx(port);
  }

  /** Host -> guest: moves the pending chunk of port `id` into held receive buffers, in order. */
  private pumpRx(id: number): void {
    const port = this.ports[id];
    const held = this.rxHeld[id];
    if (!port || !held) return;
    // With MULTIPORT data waits for the guest to open the port, as a guest discards data sent to
    // a closed one.
    let completed = false;
    while (port.pending !== null && held.length > 0 && port.guestOpen) {
      const req = held.shift()!;
      if (!this.server.isLive(req)) continue;
      const chunk = port.pending;
      const n = this.writer.reset(req.chain).write(chunk, port.pendingOffset, chunk.length - port.pendingOffset);
      this.server.complete(req, n);
      completed = true;
      port.pendingOffset += n;
      if (port.pendingOffset >= chunk.length) {
        const cb = port.pendingCallback;
        port.pending = null;
        port.pendingCallback = null;
        cb?.(); // may write the next chunk at once (re-entering here with a new pending)
      }
    }
    if (completed) this.notifyNow(consoleReceiveQueue(id));
  }

  /**
   * The used-buffer notification for a queue completed outside its own pass, sent now rather
   * than in the queue server's microtask: the caller is inside the access that caused it (a
   * control message, another queue's buffer) or a host event, and an embedder's guest memory
   * view is known live only there (v86 grows its RAM while the guest runs). Suppression still
   * applies; the server's later check finds nothing new.
   */
  private notifyNow(queueIndex: number): void {
    this.server.context?.notifyUsed(queueIndex);
  }

  /** Guest -> host: reads held transmit buffers of port `id` into its Readable while it wants more. */
  private pumpTx(id: number): void {
    const held = this.txHeld[id];
    if (!held || this.txPumping[id]) return;
    this.txPumping[id] = 1; // push() may call _read synchronously
    let completed = false;
    try {
      const reader = this.txReaders[id]!;
      for (;;) {
        const req = held[0];
        if (req === undefined) return;
        if (!this.server.isLive(req)) {
          held.shift();
          this.txCurrent[id] = null;
          continue;
        }
        const port = this.ports[id];
        if (!port || port.destroyed || !port.hostOpen) {
          // Nobody reads this port (any more): its output is dropped, the guest is not blocked.
          this.stats.droppedOutput += req.chain.readableBytes;
          held.shift();
          this.txCurrent[id] = null;
          this.server.complete(req, 0);
          completed = true;
          continue;
        }
        if (port.readBlocked) return;
        if (this.txCurrent[id] !== req) {
          reader.reset(req.chain);
          this.txCurrent[id] = req;
        }
        const n = Math.min(reader.remaining, CONSOLE_TX_PIECE);
        if (n > 0) {
          const piece = Buffer.allocUnsafe(n);
          const got = reader.read(piece, 0, n);
          if (got < n) reader.remaining = 0; // unmapped mid-way: the rest is lost
          if (got > 0 && !port.push(got === n ? piece : piece.subarray(0, got))) port.readBlocked = true;
        }
        if (reader.remaining === 0) {
          held.shift();
          this.txCurrent[id] = null;
          this.server.complete(req, 0);
          completed = true;
        }
      }
    } finally {
      this.txPumping[id] = 0;
      if (completed) this.notifyNow(consoleTransmitQueue(id));
    }
  }

  // ---- control queues (5.3.6.2) ----

  private controlBufferPosted(req: QueueRequest): number | void {
    if (req.chain.fault !== null || req.chain.writableBytes < ConsoleControl.SIZE) {
      this.stats.badBuffers++;
      return 0;
    }
    this.ctrlRxHeld.push(req);
    this.pumpControl();
  }

  private sendControl(id: number, event: number, value: number, payload: Uint8Array | null): void {
    if (!this.multiport || this.server.context === null) return;
    if (this.ctrlOut.length >= MAX_PENDING_CONTROL) {
      this.stats.droppedControl++;
      return;
    }
    this.log?.debug(`virtio-console: -> ${consoleEventName(event)} port ${id} value ${value}`);
    this.ctrlOut.push(encodeControl(id, event, value, payload, this.littleEndian));
    this.pumpControl();
  }

  private pumpControl(): void {
    let completed = false;
    while (this.ctrlOut.length > 0 && this.ctrlRxHeld.length > 0) {
      const req = this.ctrlRxHeld.shift()!;
      if (!this.server.isLive(req)) continue;
      const msg = this.ctrlOut.shift()!;
      // A buffer smaller than a name gets the name cut (it holds at least the header).
      this.server.complete(req, this.writer.reset(req.chain).write(msg));
      completed = true;
    }
    if (completed) this.notifyNow(ConsoleQueue.CONTROL_RECEIVEQ);
  }

  /** control transmitq: one driver message, decoded and acted on at once. */
  private controlMessage(req: QueueRequest): number {
    const c = req.chain;
    if (c.fault !== null || c.readableBytes < ConsoleControl.SIZE || this.ctrlReader.reset(c).read(this.ctrlScratch) < ConsoleControl.SIZE) {
      this.stats.badControl++;
      return 0;
    }
    const h = decodeControl(this.ctrlScratch, this.littleEndian, this.header);
    this.log?.debug(`virtio-console: <- ${consoleEventName(h.event)} port ${h.id} value ${h.value}`);
    if (!this.multiport) {
      this.stats.badControl++; // no control queues without MULTIPORT
      return 0;
    }
    switch (h.event) {
      case ConsoleEvent.DEVICE_READY:
        if (h.value !== 1) {
          this.log?.warn('virtio-console: the driver failed to initialise (DEVICE_READY 0)');
          return 0;
        }
        if (this.driverReady) return 0;
        this.driverReady = true;
        for (let id = 0; id < this.ports.length; id++) if (this.ports[id]) this.announce(id);
        return 0;
      case ConsoleEvent.PORT_READY: {
        const port = this.announcedPort(h.id);
        if (!port) return 0;
        if (h.value !== 1) {
          this.log?.warn(`virtio-console: the driver failed to set up port ${h.id}`);
          return 0;
        }
        // Linux acts on CONSOLE_PORT only with a non-zero value.
        if (port.isConsole) {
          this.sendControl(h.id, ConsoleEvent.CONSOLE_PORT, 1, null);
          if (h.id === 0 && (this.offeredFeatures & ConsoleF.SIZE) !== 0n) this.sendControl(0, ConsoleEvent.RESIZE, 0, encodeResize(this.cols, this.rows, this.littleEndian));
          else if (h.id !== 0 && port.size) this.sendControl(h.id, ConsoleEvent.RESIZE, 0, encodeResize(port.size.cols, port.size.rows, this.littleEndian));
        }
        if (port.name !== null) this.sendControl(h.id, ConsoleEvent.PORT_NAME, 1, encodePortName(port.name));
        // The host side's state; a closed one is what the driver assumes already (Linux starts
        // host_connected false), later changes follow through setHostOpen.
        this.portReady[h.id] = 1;
        if (port.hostOpen) this.sendControl(h.id, ConsoleEvent.PORT_OPEN, 1, null);
        return 0;
      }
      case ConsoleEvent.PORT_OPEN: {
        const port = this.announcedPort(h.id);
        if (!port) return 0;
        port.setGuestOpen(h.value !== 0);
        if (port.guestOpen) this.pumpRx(h.id);
        return 0;
      }
      default:
        // DEVICE_ADD, DEVICE_REMOVE, CONSOLE_PORT, RESIZE, PORT_NAME go the other way; others are unknown.
        this.stats.badControl++;
        return 0;
    }
  }

  private announcedPort(id: number): ConsolePort | null {
    const port = id < this.ports.length ? this.ports[id] : null;
    if (!port || !this.announced[id]) {
      this.stats.unknownPort++;
      return null;
    }
    return port;
  }

  /** DEVICE_ADD for port `id`, once (device/console/3: never for a port the driver has). */
  private announce(id: number): void {
    if (this.announced[id] || id >= this.maxNrPorts) return;
    this.announced[id] = 1;
    this.sendControl(id, ConsoleEvent.DEVICE_ADD, 0, null);
  }

  private attach(port: ConsolePort): void {
    port.host = this.portHost;
    this.ports[port.id] = port;
  }
}
