/**
 * An NBD client over one or more connections to the same export.
 *
 * - Connections: one, or up to `connections` when the server offers NBD_FLAG_CAN_MULTI_CONN
 *   (proto.md: then a FLUSH on any connection covers writes completed on every connection, so
 *   the requests of one disk can be spread over all of them).
 * - Requests in flight are bounded (`maxInFlight`, all connections together); the rest wait in a
 *   FIFO, and a connection whose socket buffer is full (write returned false) takes no more until
 *   it drains: back-pressure all the way to the caller's promises.
 * - Reconnection: when a connection is lost (the server restarted, the socket broke, the server
 *   broke the protocol) the requests in flight on it go back to the front of the queue and are
 *   sent again on another connection or once it is back. Nothing is acknowledged to the caller
 *   before the server acknowledged it, so an acknowledged write is never lost by the client.
 *   While no connection is up the client retries with a growing delay; requests fail
 *   (RETRY_EXPIRED, the device's IOERR) only once the server stayed away for `retryTimeoutMs`.
 *
 * Data path: a request takes a pooled slot (NbdRequest) and allocates only the promise it
 * returns and, for a write, the view of its bytes that node:net needs.
 */
import type { Logger } from '../../../log.js';
import { NbdConnection, type ConnectOptions, type NbdConnectionOwner } from './nbd-connection.js';
import { NbdError, NbdFault } from './nbd-error.js';
import type { NbdExportInfo } from './nbd-handshake.js';
import { NBD_DEFAULT_MAX_PAYLOAD, NbdCmd, NbdCmdFlag, NbdFlag } from './nbd-protocol.js';
import { NbdRequest, SlotState } from './nbd-request.js';
import { formatNbdAddress, type NbdAddress } from './nbd-uri.js';
import type { NbdTlsOptions } from './nbd-tls.js';

/** How {@link NbdClient.connect} connects and how the client bounds and retries requests. */
export interface NbdClientOptions {
  /** Connections to open when the server offers CAN_MULTI_CONN (default 1; 1..16). */
  readonly connections?: number;
  /** Requests in flight over all connections (default 64). */
  readonly maxInFlight?: number;
  /** How long the server may stay unreachable before requests fail (default 30 s). */
  readonly retryTimeoutMs?: number;
  /** Bound on connecting plus the handshake, per attempt (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** Negotiate structured replies (default true). */
  readonly structuredReplies?: boolean;
  /** Where lost connections, reconnections, retry expiry and export changes across a reconnect are logged; none by default. */
  readonly logger?: Logger;
  /**
   * TLS settings for an `nbds://` / `nbds+unix://` address (X.509 against node's CA store when
   * absent); every connection, reconnections included, does its own TLS handshake, resuming the
   * last session when the server allows. Given with a plaintext address: TLS_CONFIG.
   */
  readonly tls?: NbdTlsOptions;
}

const DEFAULTS = { connections: 1, maxInFlight: 64, retryTimeoutMs: 30_000, connectTimeoutMs: 5_000 } as const;
const RECONNECT_FIRST_MS = 20;
const RECONNECT_MAX_MS = 1_000;

/**
 * An NBD client of one export over one or several connections (several only when the server
 * sets NBD_FLAG_CAN_MULTI_CONN), with bounded requests in flight, back-pressure, and
 * reconnection that resends what was in flight: see the module description. Made by
 * {@link NbdClient.connect}; every operation returns a promise that rejects with an NbdError.
 */
export class NbdClient implements NbdConnectionOwner {
  /** The export as the first connection's handshake saw it: size, transmission flags, block sizes. */
  readonly info: NbdExportInfo;
  /** Largest payload of one READ or WRITE: the server's maximum, at most 32 MiB, a multiple of minBlock. */
  readonly maxPayload: number;
  /** Connections lost and re-established since connect (for logs and tests). */
  reconnects = 0;

  private readonly conns: NbdConnection[] = [];
  private readonly wantedConnections: number;
  private readonly maxInFlight: number;
  private readonly retryTimeoutMs: number;
  /** How every connection of this client is opened (the TLS session cache is shared by them). */
  private readonly connectOpts: ConnectOptions;
  private readonly log: Logger | undefined;
  private readonly slots: NbdRequest[] = [];
  private readonly free: NbdRequest[] = [];
  private head: NbdRequest | null = null;
  private tail: NbdRequest | null = null;
  private inFlight = 0;
  /** Connections being re-established. */
  private reconnecting = 0;
  private closed = false;
  /** No connection is up and the retry time ran out: requests fail at once until one is. */
  private expired = false;
  private expiryTimer: NodeJS.Timeout | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly where: string;

  private constructor(
    private readonly address: NbdAddress,
    first: NbdConnection,
    connectOpts: ConnectOptions,
    opts: NbdClientOptions,
  ) {
    this.info = first.info;
    this.where = formatNbdAddress(address);
    this.maxInFlight = opts.maxInFlight ?? DEFAULTS.maxInFlight;
    this.retryTimeoutMs = opts.retryTimeoutMs ?? DEFAULTS.retryTimeoutMs;
    this.connectOpts = connectOpts;
    this.log = opts.logger;
    const multi = (first.info.flags & NbdFlag.CAN_MULTI_CONN) !== 0;
    this.wantedConnections = multi ? (opts.connections ?? DEFAULTS.connections) : 1;
    const { minBlock, maxBlock } = first.info;
    const cap = Math.min(maxBlock, NBD_DEFAULT_MAX_PAYLOAD);
    this.maxPayload = Math.max(minBlock, cap - (cap % minBlock));
    this.adopt(first);
  }

  /**
   * Connects (and runs the handshake on) the first connection, then the others when the server
   * allows several. Rejects with an NbdError: UNREACHABLE, NO_EXPORT, TLS_REQUIRED, HANDSHAKE.
   */
  static async connect(address: NbdAddress, opts: NbdClientOptions = {}): Promise<NbdClient> {
    const n = opts.connections ?? DEFAULTS.connections;
    if (!Number.isInteger(n) || n < 1 || n > 16) throw new NbdError(NbdFault.BAD_URI, `connections ${n} not in 1..16`);
    const m = opts.maxInFlight ?? DEFAULTS.maxInFlight;
    if (!Number.isInteger(m) || m < 1 || m > 4096) throw new NbdError(NbdFault.BAD_URI, `maxInFlight ${m} not in 1..4096`);
    const connectOpts: ConnectOptions = {
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      ...(opts.structuredReplies === undefined ? {} : { structuredReplies: opts.structuredReplies }),
      ...(opts.tls === undefined ? {} : { tls: opts.tls }),
      // One cache per client: its connections and reconnections resume the last TLS session.
      tlsSessionCache: { session: undefined },
    };
    const first = await NbdConnection.open(address, connectOpts);
    const client = new NbdClient(address, first, connectOpts, opts);
    try {
      while (client.conns.length < client.wantedConnections) client.adopt(await NbdConnection.open(address, client.connectOpts));
    } catch (e) {
      await client.close();
      throw e;
    }
    return client;
  }

  /** The export's size in bytes, as the handshake reported it. */
  get size(): number {
    return this.info.size;
  }

  /** Connections up now: at most the `connections` option, less while lost ones are re-established. */
  get connectionCount(): number {
    return this.conns.length;
  }

  /** The TLS version of a connection up now ('TLSv1.3', ...), or null: plaintext, or none up. */
  get tlsProtocol(): string | null {
    return this.conns[0]?.tlsProtocol ?? null;
  }

  /** Whether the export takes this command (its transmission flags). */
  supports(flag: number): boolean {
    return (this.info.flags & flag) !== 0;
  }

  /**
   * NBD_CMD_READ of `len` bytes at byte `offset` of the export into `dst[dstOff..]`. `len` must
   * not exceed {@link NbdClient.maxPayload}; NBD_REPLY_TYPE_OFFSET_HOLE chunks are zero-filled.
   */
  read(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<void> {
    return this.submit(NbdCmd.READ, 0, offset, len, dst, dstOff);
  }

  /** With `fua` (and SEND_FUA offered) the server acknowledges only once the data is stable. */
  write(offset: number, src: Uint8Array, srcOff: number, len: number, fua = false): Promise<void> {
    return this.submit(NbdCmd.WRITE, fua && this.supports(NbdFlag.SEND_FUA) ? NbdCmdFlag.FUA : 0, offset, len, src, srcOff);
  }

  /**
   * NBD_CMD_FLUSH: resolves once the writes the server completed before it are on stable storage
   * (with CAN_MULTI_CONN, those of every connection). Send it only when the export sets
   * NBD_FLAG_SEND_FLUSH.
   */
  flush(): Promise<void> {
    return this.submit(NbdCmd.FLUSH, 0, 0, 0, null, 0);
  }

  /**
   * NBD_CMD_TRIM of `len` bytes at byte `offset`: the server may discard them (a hint; what later
   * reads return is unspecified). Send it only when the export sets NBD_FLAG_SEND_TRIM.
   */
  trim(offset: number, len: number): Promise<void> {
    return this.submit(NbdCmd.TRIM, 0, offset, len, null, 0);
  }

  /** NBD_CMD_WRITE_ZEROES; `noHole` asks the server to keep the range allocated. */
  writeZeroes(offset: number, len: number, noHole: boolean): Promise<void> {
    return this.submit(NbdCmd.WRITE_ZEROES, noHole ? NbdCmdFlag.NO_HOLE : 0, offset, len, null, 0);
  }

  private submit(cmd: number, flags: number, offset: number, length: number, buf: Uint8Array | null, bufOff: number): Promise<void> {
    if (this.closed) return Promise.reject(new NbdError(NbdFault.CLOSED, `${this.where} is closed`));
    if (this.expired) return Promise.reject(this.expiredError());
    const slot = this.free.pop() ?? this.newSlot();
    slot.cmd = cmd;
    slot.flags = flags;
    slot.offset = offset;
    slot.length = length;
    slot.buf = buf;
    slot.bufOff = bufOff;
    const p = new Promise<void>(slot.executor);
    this.enqueue(slot, false);
    this.dispatch();
    return p;
  }

  private newSlot(): NbdRequest {
    const s = new NbdRequest(this.slots.length);
    this.slots.push(s);
    return s;
  }

  private enqueue(slot: NbdRequest, front: boolean): void {
    slot.state = SlotState.QUEUED;
    slot.conn = null;
    if (front) {
      slot.next = this.head;
      this.head = slot;
      if (this.tail === null) this.tail = slot;
    } else {
      slot.next = null;
      if (this.tail === null) this.head = slot;
      else this.tail.next = slot;
      this.tail = slot;
    }
  }

  private dispatch(): void {
    while (this.head !== null && this.inFlight < this.maxInFlight) {
      const conn = this.pickConnection();
      if (conn === null) return;
      const slot = this.head;
      this.head = slot.next;
      if (this.head === null) this.tail = null;
      slot.next = null;
      // Guest memory unmapped (a device reset detaches it): never send a header whose data is gone.
      if (slot.buf !== null && slot.bufOff + slot.length > slot.buf.byteLength) {
        this.settle(slot, new NbdError(NbdFault.CLOSED, 'the request buffer went away before it was sent'));
        continue;
      }
      slot.gen = (slot.gen + 1) >>> 0;
      slot.state = SlotState.IN_FLIGHT;
      slot.conn = conn;
      this.inFlight++;
      conn.send(slot);
    }
  }

  /** The live, uncongested connection with the fewest requests in flight. */
  private pickConnection(): NbdConnection | null {
    let best: NbdConnection | null = null;
    for (const c of this.conns) {
      if (!c.isLive || c.congested) continue;
      if (best === null || c.inFlight < best.inFlight) best = c;
    }
    return best;
  }

  private settle(slot: NbdRequest, error: NbdError | null): void {
    const resolve = slot.resolve!;
    const reject = slot.reject!;
    slot.resolve = null;
    slot.reject = null;
    slot.buf = null;
    slot.conn = null;
    slot.state = SlotState.FREE;
    this.free.push(slot);
    if (error === null) resolve();
    else reject(error);
  }

  // ---- NbdConnectionOwner ----

  slotFor(conn: NbdConnection, gen: number, index: number): NbdRequest | null {
    const s = this.slots[index];
    return s !== undefined && s.state === SlotState.IN_FLIGHT && s.conn === conn && s.gen === gen ? s : null;
  }

  replied(_conn: NbdConnection, slot: NbdRequest, error: NbdError | null): void {
    this.inFlight--;
    this.settle(slot, error);
    this.dispatch();
  }

  drained(): void {
    this.dispatch();
  }

  lost(conn: NbdConnection, why: NbdError): void {
    const i = this.conns.indexOf(conn);
    if (i >= 0) this.conns.splice(i, 1);
    if (this.closed) return;
    // Its requests go back to the front, oldest first, to be sent again.
    let requeued = 0;
    for (let k = this.slots.length - 1; k >= 0; k--) {
      const s = this.slots[k]!;
      if (s.state === SlotState.IN_FLIGHT && s.conn === conn) {
        this.inFlight--;
        requeued++;
        this.enqueue(s, true);
      }
    }
    this.log?.warn(`${this.where}: connection lost (${why.message}); ${requeued} request${requeued === 1 ? '' : 's'} to resend, reconnecting`);
    if (this.liveCount() === 0 && this.expiryTimer === null && !this.expired) {
      this.expiryTimer = setTimeout(() => this.expire(), this.retryTimeoutMs);
    }
    this.reconnect(RECONNECT_FIRST_MS);
    this.dispatch();
  }

  private liveCount(): number {
    let n = 0;
    for (const c of this.conns) if (c.isLive) n++;
    return n;
  }

  private expiredError(): NbdError {
    return new NbdError(NbdFault.RETRY_EXPIRED, `${this.where} unreachable for more than ${this.retryTimeoutMs} ms`);
  }

  /** The server stayed away too long: everything waiting fails, and new requests fail at once. */
  private expire(): void {
    this.expiryTimer = null;
    if (this.liveCount() > 0) return;
    this.expired = true;
    this.log?.error(`${this.where}: unreachable for ${this.retryTimeoutMs} ms, failing requests until it is back`);
    this.failQueued(this.expiredError());
  }

  private failQueued(error: NbdError): void {
    while (this.head !== null) {
      const s = this.head;
      this.head = s.next;
      s.next = null;
      this.settle(s, error);
    }
    this.tail = null;
  }

  private reconnect(delayMs: number): void {
    this.reconnecting++;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.attemptReconnect(delayMs);
    }, delayMs);
    this.timers.add(t);
  }

  private attemptReconnect(delayMs: number): void {
    if (this.closed) return;
    NbdConnection.open(this.address, this.connectOpts).then(
      (conn) => {
        this.reconnecting--;
        if (this.closed) {
          conn.close();
          return;
        }
        if (conn.info.size !== this.info.size) this.log?.warn(`${this.where}: the export is now ${conn.info.size} bytes, was ${this.info.size}`);
        if (conn.info.structuredReplies !== this.info.structuredReplies) this.log?.warn(`${this.where}: structured replies changed across the reconnect`);
        this.adopt(conn);
        this.reconnects++;
        if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
        this.expiryTimer = null;
        this.expired = false;
        this.log?.info(`${this.where}: reconnected`);
        this.dispatch();
      },
      (e: unknown) => {
        this.reconnecting--;
        if (this.closed) return;
        this.log?.debug(`${this.where}: reconnect failed: ${(e as Error).message}`);
        this.reconnect(Math.min(delayMs * 2, RECONNECT_MAX_MS));
      },
    );
  }

  private adopt(conn: NbdConnection): void {
    conn.attach(this);
    this.conns.push(conn);
  }

  /** @internal Tests: break every connection as a dying server would. */
  dropConnections(): void {
    for (const c of [...this.conns]) c.destroy(new NbdError(NbdFault.PROTOCOL, 'dropped by the test'));
  }

  /**
   * Fails whatever is queued or in flight (CLOSED), sends NBD_CMD_DISC on every connection and
   * closes them. Idempotent.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const err = new NbdError(NbdFault.CLOSED, `${this.where} is closed`);
    this.failQueued(err);
    for (const s of this.slots) if (s.state === SlotState.IN_FLIGHT) this.settle(s, err);
    this.inFlight = 0;
    for (const c of this.conns.splice(0)) c.close();
    return Promise.resolve();
  }
}
