/**
 * The host side of one `virtio-ts console` port, for the life of the process: a socket, a pty,
 * stdio or a log file (port-spec.ts), linked to the port of whichever ConsoleDevice serves the
 * current front-end connection.
 *  - Connection state: the host side connecting or leaving (a socket client, a program opening
 *    the pty) becomes PORT_OPEN 1 / 0 for the guest (ConsoleDevice.setHostOpen); the guest
 *    opening or closing the port is logged ("port N: the guest opened it").
 *  - Data: `pipe` both ways with `end: false` (the port outlives each connection), so flow
 *    control is the streams': a host reader that stops reading leaves the guest's transmit
 *    buffers unused (bounded by the port's and the socket's highWaterMarks), a guest that posts
 *    no receive buffers pauses the host's input (a socket stops being read).
 */
import { createWriteStream, lstatSync, unlinkSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../../log.js';
import type { ConsoleDevice } from './console-device.js';
import type { ConsolePort } from './console-port.js';
import type { ConsolePortSpec } from './port-spec.js';
import { PtyStream } from './pty-stream.js';

interface HostIo {
  /** Host -> guest (null: the host side sends nothing, a log file). */
  readonly input: Readable | null;
  /** Guest -> host. */
  readonly output: Writable;
}

/**
 * The host side of one `virtio-ts console` port (socket, pty, stdio or file) for the life of the
 * process, linked to the port of whichever ConsoleDevice serves the current front-end.
 */
export class ConsolePortLink {
  private io: HostIo | null = null;
  private device: ConsoleDevice | null = null;
  private port: ConsolePort | null = null;
  private server: Server | null = null;
  private client: Socket | null = null;
  private pty: PtyStream | null = null;
  private file: Writable | null = null;

  constructor(
    /** Port number: the position of its --port option (the first is port 0). */
    readonly id: number,
    /** The parsed --port SPEC. */
    readonly spec: ConsolePortSpec,
    private readonly log: Logger,
    /** Where a console port's size changes go (pty, stdio on a terminal). */
    private readonly onResize: (id: number, cols: number, rows: number) => void,
  ) {}

  /** Whether the host side is connected now. */
  get connected(): boolean {
    return this.io !== null;
  }

  /** The pty's path (pty ports). */
  get ptyPath(): string | null {
    return this.pty?.path ?? null;
  }

  /** A pty's size (when the port is a pty). */
  get ptySize(): {
    /** Columns of the terminal. */
    cols: number;
    /** Rows of the terminal. */
    rows: number;
  } | null {
    return this.pty?.size ?? null;
  }

  /** Opens the host side: listens, opens the pty or the file. */
  async start(size: { cols: number; rows: number }): Promise<void> {
    const h = this.spec.host;
    switch (h.kind) {
      case 'socket':
        await this.listen(h.path);
        return;
      case 'pty': {
        const pty = new PtyStream(size);
        this.pty = pty;
        pty.on('peeropen', () => this.hostConnected({ input: pty, output: pty }));
        pty.on('peerclose', () => this.hostDisconnected());
        pty.on('resize', (c: number, r: number) => this.onResize(this.id, c, r));
        pty.on('error', (e: Error) => this.log.warn(`port ${this.id} pty: ${e.message}`));
        pty.check();
        return;
      }
      case 'stdio': {
        process.stdout.on('error', (e: Error) => this.log.warn(`port ${this.id} stdout: ${e.message}`));
        if (process.stdout.isTTY) process.stdout.on('resize', () => this.onResize(this.id, process.stdout.columns, process.stdout.rows));
        this.hostConnected({ input: process.stdin, output: process.stdout });
        return;
      }
      case 'file': {
        const f = createWriteStream(h.path, { flags: 'a' });
        this.file = f;
        await new Promise<void>((resolve, reject) => {
          f.once('open', () => resolve());
          f.once('error', reject);
        });
        f.on('error', (e: Error) => this.log.warn(`port ${this.id} file ${h.path}: ${e.message}`));
        this.hostConnected({ input: null, output: f });
        return;
      }
    }
  }

  /** Links the port of a new device (a new front-end connection); the old port is let go. */
  attach(device: ConsoleDevice): void {
    if (this.port && this.io) this.unwire(this.port, this.io);
    this.port?.destroy();
    this.device = device;
    const port = device.port(this.id);
    this.port = port;
    if (!port) return;
    port.on('guestopen', () => this.log.info(`port ${this.id}${this.label()}: the guest opened it`));
    port.on('guestclose', () => this.log.info(`port ${this.id}${this.label()}: the guest closed it`));
    port.on('error', (e: Error) => this.log.warn(`port ${this.id}: ${e.message}`));
    device.setHostOpen(this.id, this.io !== null);
    if (this.io) this.wire(port, this.io);
  }

  /** Closes the host side: unlinks the port, drops the client or pty, ends the file, stops listening and removes the socket file. */
  async close(): Promise<void> {
    if (this.port && this.io) this.unwire(this.port, this.io);
    this.client?.destroy();
    this.pty?.destroy();
    if (this.file) await new Promise<void>((resolve) => this.file!.end(() => resolve()));
    if (this.server) {
      const s = this.server;
      await new Promise<void>((resolve) => s.close(() => resolve()));
      this.removeSocketFile();
    }
  }

  private label(): string {
    return this.spec.name !== null ? ` (${this.spec.name})` : '';
  }

  private hostConnected(io: HostIo): void {
    if (this.io !== null) return;
    this.io = io;
    this.log.info(`port ${this.id}${this.label()}: host side connected`);
    if (this.port) this.wire(this.port, io);
    this.device?.setHostOpen(this.id, true);
  }

  private hostDisconnected(): void {
    const io = this.io;
    if (io === null) return;
    this.io = null;
    this.log.info(`port ${this.id}${this.label()}: host side disconnected`);
    if (this.port) this.unwire(this.port, io);
    this.device?.setHostOpen(this.id, false);
  }

  private wire(port: ConsolePort, io: HostIo): void {
    port.pipe(io.output, { end: false });
    io.input?.pipe(port, { end: false });
  }

  private unwire(port: ConsolePort, io: HostIo): void {
    port.unpipe(io.output);
    io.input?.unpipe(port);
  }

  private async listen(path: string): Promise<void> {
    this.removeSocketFile(path);
    const server = createServer({ allowHalfOpen: false, pauseOnConnect: false });
    this.server = server;
    server.on('connection', (s: Socket) => {
      if (this.client !== null) {
        this.log.warn(`port ${this.id}${this.label()}: a second client was refused (one at a time)`);
        s.destroy();
        return;
      }
      this.client = s;
      s.on('error', (e: Error) => this.log.debug(`port ${this.id} client: ${e.message}`));
      s.once('close', () => {
        if (this.client === s) this.client = null;
        this.hostDisconnected();
      });
      this.hostConnected({ input: s, output: s });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e: Error) => this.log.warn(`port ${this.id} socket ${path}: ${e.message}`));
  }

  /** Removes a socket file left at the path (never anything else). */
  private removeSocketFile(path = this.spec.host.kind === 'socket' ? this.spec.host.path : null): void {
    if (path === null) return;
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch {
      // absent
    }
  }
}
