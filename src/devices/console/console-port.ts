/**
 * The host end of one console port (5.3): a Node Duplex stream, so a user attaches anything (a
 * socket, a TTY, a file, process.stdout) with `pipe`.
 *  - Readable side: what the guest sent on the port's transmitq, in order.
 *  - Writable side: what the guest will read from the port's receiveq.
 * Flow control instead of unbounded buffering, both ways:
 *  - host -> guest: a written chunk waits until the driver posts receive buffers (and, with
 *    MULTIPORT, until the guest opened the port); the write callback runs only when the whole
 *    chunk is in guest buffers, so the Writable's highWaterMark bounds what the host side holds
 *    and `write()` returns false meanwhile (backpressure, nothing is dropped);
 *  - guest -> host: transmit buffers are read into the Readable only while it is below its
 *    highWaterMark; beyond it the device keeps the guest's buffers unused until the reader
 *    drains, so the guest waits (as a Linux guest polls its console's transmitq) and the host
 *    holds at most one piece (CONSOLE_TX_PIECE) beyond the highWaterMark.
 * Events: 'guestopen' / 'guestclose' when the guest opens or closes the port (PORT_OPEN, only
 * with MULTIPORT; without it the single port counts as open once the device is running).
 */
import { Duplex } from 'node:stream';

/** What a port asks of the device serving it. */
export interface ConsolePortHost {
  /** A chunk is pending on `port` (host -> guest). */
  hostWrote(port: ConsolePort): void;
  /** The reader of `port` wants more (guest -> host). */
  hostReads(port: ConsolePort): void;
  /** The port was destroyed: drop what it holds. */
  hostDestroyed(port: ConsolePort): void;
}

/** Options of a {@link ConsolePort}. */
export interface ConsolePortOptions {
  /** PORT_NAME sent to the guest (MULTIPORT only), e.g. "org.example.agent". */
  readonly name?: string;
  /** Nominate the port a console port (CONSOLE_PORT). Default: true for port 0, false for others. */
  readonly console?: boolean;
  /** Readable highWaterMark in bytes (guest -> host buffering). Default 16 KiB. */
  readonly readableHighWaterMark?: number;
  /** Writable highWaterMark in bytes (host -> guest buffering). Default 16 KiB. */
  readonly writableHighWaterMark?: number;
  /**
   * Whether the host side starts connected (reported with PORT_OPEN when the guest set the port
   * up). Default true; a port whose host end comes and goes (a socket client) starts false and
   * reports each change through `ConsoleDevice.setHostOpen`.
   */
  readonly hostOpen?: boolean;
  /** A console port's size (not port 0: its size is the device's): sent as RESIZE at PORT_READY. */
  readonly size?: {
    /** Columns (characters per line). */
    readonly cols: number;
    /** Rows (lines). */
    readonly rows: number;
  };
}

type WriteCallback = (error?: Error | null) => void;

/**
 * The host end of one console port (5.3): a Duplex whose readable side is what the guest sent
 * and whose writable side is what the guest will read, with backpressure both ways.
 */
export class ConsolePort extends Duplex {
  /** PORT_NAME sent to the guest (MULTIPORT only); null when the port has none. */
  readonly name: string | null;
  /** The port is a console port (CONSOLE_PORT sent at PORT_READY; port 0 by default). */
  readonly isConsole: boolean;
  /** Whether the guest has the port open (PORT_OPEN value 1, or single-port device running). */
  guestOpen = false;
  /** Whether the host side is connected (ConsoleDevice.setHostOpen); its output is dropped while not. */
  hostOpen: boolean;
  /** The console size last given for this port (RESIZE), or null. */
  size: {
    /** Columns (characters per line). */
    cols: number;
    /** Rows (lines). */
    rows: number;
  } | null;

  /** @internal The chunk being delivered to the guest, how much of it went, and its callback. */
  pending: Uint8Array | null = null;
  /** @internal */
  pendingOffset = 0;
  /** @internal */
  pendingCallback: WriteCallback | null = null;
  /** @internal The Readable asked to stop (push returned false). */
  readBlocked = false;
  /** @internal */
  host: ConsolePortHost | null = null;

  constructor(
    /** Port number (5.3.6.2 control message id): 0 for the first port, below max_nr_ports. */
    readonly id: number,
    opts: ConsolePortOptions = {},
  ) {
    super({
      readableHighWaterMark: opts.readableHighWaterMark ?? 16 * 1024,
      writableHighWaterMark: opts.writableHighWaterMark ?? 16 * 1024,
      decodeStrings: true,
      allowHalfOpen: true,
    });
    this.name = opts.name ?? null;
    this.isConsole = opts.console ?? id === 0;
    this.hostOpen = opts.hostOpen ?? true;
    this.size = opts.size ? { cols: opts.size.cols, rows: opts.size.rows } : null;
  }

  /** Bytes written by the host and not yet in guest buffers (the chunk in delivery only). */
  get pendingBytes(): number {
    return this.pending === null ? 0 : this.pending.length - this.pendingOffset;
  }

  /** Stream hook: hands `chunk` to the device, which calls back once it is all in guest receive buffers. */
  override _write(chunk: Uint8Array, _encoding: BufferEncoding, callback: WriteCallback): void {
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.pending = chunk;
    this.pendingOffset = 0;
    this.pendingCallback = callback;
    this.host?.hostWrote(this);
  }

  /** Stream hook: the reader wants more; the device resumes reading the guest's transmit buffers. */
  override _read(): void {
    this.readBlocked = false;
    this.host?.hostReads(this);
  }

  /** Stream hook: abandons the chunk in delivery and tells the device the port is gone. */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // The chunk in delivery is abandoned; the stream errors its buffered writes itself.
    this.pending = null;
    this.pendingCallback = null;
    this.host?.hostDestroyed(this);
    callback(error);
  }

  /** @internal The guest opened or closed the port. */
  setGuestOpen(open: boolean): void {
    if (open === this.guestOpen) return;
    this.guestOpen = open;
    this.emit(open ? 'guestopen' : 'guestclose');
  }
}
