/**
 * One NBD connection: the socket, the handshake, then the transmission phase (proto.md
 * "Transmission"). Requests go out as a reused 28-byte header per slot plus, for a write, a view
 * of the caller's bytes; replies are parsed as a state machine over whatever the socket delivers:
 * simple replies and structured reply chunks (OFFSET_DATA copied straight into the destination,
 * OFFSET_HOLE zero-filled, ERROR and ERROR_OFFSET recorded, NONE). The socket reads into one
 * buffer per connection (`onread`), so receiving allocates nothing per reply.
 *
 * A reply that breaks the protocol (bad magic, unknown or stale cookie, a chunk that does not fit
 * its request, an oversized error chunk, an unknown non-error chunk type) is a hard disconnect:
 * the owner requeues what was in flight and reconnects.
 */
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  NBD_MAX_STRING,
  NBD_REQUEST_MAGIC,
  NBD_REPLY_TYPE_ERR_BIT,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  NbdCmd,
  NbdErrno,
  NbdReplyFlag,
  NbdReplyType,
  errnoName,
} from './nbd-protocol.js';
import { NbdError, NbdFault } from './nbd-error.js';
import { nbdHandshake, type HandshakeIo, type NbdExportInfo } from './nbd-handshake.js';
import { type NbdRequest } from './nbd-request.js';
import type { NbdAddress } from './nbd-uri.js';
import { checkNbdTlsOptions, startNbdTls, type NbdTlsOptions, type NbdTlsSessionCache } from './nbd-tls.js';

/** What a connection reports to the client that owns it. */
export interface NbdConnectionOwner {
  /** The in-flight slot named by a reply's cookie on this connection, or null (unknown/stale). */
  slotFor(conn: NbdConnection, gen: number, index: number): NbdRequest | null;
  /** A request's reply is complete: `error` null on success. */
  replied(conn: NbdConnection, slot: NbdRequest, error: NbdError | null): void;
  /** The connection is gone (closed by the server, a socket error, a protocol error). */
  lost(conn: NbdConnection, why: NbdError): void;
  /** The socket drained after a write returned false. */
  drained(conn: NbdConnection): void;
}

const RECV_BUFFER = 256 * 1024;
const ST_HEADER = 0;
const ST_FIELDS = 1;
const ST_DATA = 2;
/** Room for an error chunk's fields: error, message length, a 4096-byte message, an offset. */
const FIELDS_MAX = 6 + NBD_MAX_STRING + 8;
const U32 = 0x1_0000_0000;
/** IHAVEOPT, NBD_OPT_ABORT, no data. */
const ABORT_OPTION = Buffer.from([0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0, 0, 0, 2, 0, 0, 0, 0]);
const MAX_SAFE_HI = 0x1f_ffff;

/** Handshake-phase reads: chunks copied out of the reused receive buffer until asked for. */
class HandshakeReader implements HandshakeIo {
  private chunks: Buffer[] = [];
  private have = 0;
  private want = 0;
  private waiter: { resolve: (b: Buffer) => void; reject: (e: unknown) => void } | null = null;
  private ended: NbdError | null = null;

  constructor(private readonly send: (bytes: Uint8Array) => void) {}

  push(buf: Buffer, start: number, end: number): void {
    this.chunks.push(Buffer.from(buf.subarray(start, end)));
    this.have += end - start;
    this.wake();
  }

  end(why: NbdError): void {
    this.ended ??= why;
    this.wake();
  }

  /** Bytes received but not consumed (none expected: a server waits for requests). */
  get leftover(): number {
    return this.have;
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.want = n;
      this.waiter = { resolve, reject };
      this.wake();
    });
  }

  write(bytes: Uint8Array): void {
    this.send(bytes);
  }

  pending(): number {
    return this.have;
  }

  private wake(): void {
    const w = this.waiter;
    if (w === null) return;
    if (this.have >= this.want) {
      this.waiter = null;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const out = all.subarray(0, this.want);
      const rest = all.subarray(this.want);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.have = rest.length;
      w.resolve(out);
    } else if (this.ended !== null) {
      this.waiter = null;
      w.reject(this.ended);
    }
  }
}

/** How {@link NbdConnection.open} connects. */
export interface ConnectOptions {
  /** Bound on connecting, TLS and the handshake. */
  readonly connectTimeoutMs: number;
  /** Negotiate structured replies (default true). */
  readonly structuredReplies?: boolean;
  /** TLS settings, used when the address asks for TLS (nbds); default: X.509 against node's CA store. */
  readonly tls?: NbdTlsOptions;
  /** Where the client keeps the last TLS session, so a reconnection can resume it. */
  readonly tlsSessionCache?: NbdTlsSessionCache;
}

/**
 * One NBD connection in the transmission phase, made by `NbdConnection.open` (connect plus the
 * newstyle handshake) and owned by an {@link NbdClient}: it sends request headers and parses
 * simple and structured replies (see the module description). A protocol error or a lost socket
 * ends it and tells the owner, which requeues its requests.
 */
export class NbdConnection {
  /** The export as this connection's handshake saw it. */
  info!: NbdExportInfo;
  /** Requests sent on this connection whose replies are not complete. */
  inFlight = 0;
  /** A write returned false: wait for 'drain' before sending more. */
  congested = false;
  private live = false;
  private closing = false;
  private corked = false;
  private hs: HandshakeReader | null;

  // Reply parser state.
  private state = ST_HEADER;
  private readonly hdr = Buffer.alloc(20);
  private hdrHave = 0;
  private hdrNeed = 4;
  private readonly fields = Buffer.alloc(FIELDS_MAX);
  private fieldsHave = 0;
  private fieldsNeed = 0;
  private chunkFlags = 0;
  private chunkType = 0;
  private chunkLen = 0;
  private slot: NbdRequest | null = null;
  private dst: Uint8Array | null = null;
  private dataPos = 0;
  private dataLeft = 0;
  private readonly uncork = (): void => {
    this.corked = false;
    this.sock.uncork();
  };

  private constructor(
    /** The plain socket, then the TLS socket over it once STARTTLS succeeded. */
    private sock: Socket,
    private owner: NbdConnectionOwner | null,
  ) {
    this.hs = new HandshakeReader((bytes) => this.sock.write(bytes));
  }

  /** The TLS version of the session ('TLSv1.3', 'TLSv1.2'), or null for a plaintext connection. */
  get tlsProtocol(): string | null {
    return this.secure ? (this.sock as TLSSocket).getProtocol() : null;
  }

  private secure = false;

  /**
   * Connects and runs the handshake. Rejects with UNREACHABLE when nothing answers, NO_EXPORT,
   * TLS_REQUIRED or HANDSHAKE when the server refuses.
   */
  static open(address: NbdAddress, opts: ConnectOptions): Promise<NbdConnection> {
    const wantTls = address.tls === true;
    if (!wantTls && opts.tls !== undefined) {
      return Promise.reject(new NbdError(NbdFault.TLS_CONFIG, 'TLS settings given for a plaintext address: use an nbds:// or nbds+unix:// URI'));
    }
    const tls = opts.tls ?? {};
    if (wantTls) {
      try {
        checkNbdTlsOptions(tls);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      let conn: NbdConnection | null = null;
      const where = address.kind === 'unix' ? address.path : `${address.host}:${address.port}`;
      // A plaintext connection reads into its own buffer, reused for every read. Over TLS the
      // socket delivers decrypted chunks (node:tls takes no `onread` for a socket it wraps); the
      // parser reads them in place, so the copies are the same: socket bytes to their destination.
      const recv = wantTls ? null : Buffer.allocUnsafe(RECV_BUFFER);
      const onread =
        recv === null
          ? undefined
          : {
              buffer: recv,
              callback: (n: number): boolean => {
                conn!.onBytes(recv, n);
                return true;
              },
            };
      let connected = false;
      const timer = setTimeout(() => {
        conn!.sock.destroy(new NbdError(NbdFault.UNREACHABLE, `no answer from ${where} within ${opts.connectTimeoutMs} ms`));
      }, opts.connectTimeoutMs);
      const sock: Socket =
        address.kind === 'unix'
          ? connect({ path: address.path, ...(onread === undefined ? {} : { onread }) })
          : connect({ host: address.host, port: address.port, noDelay: true, ...(onread === undefined ? {} : { onread }) });
      conn = new NbdConnection(sock, null);
      const onData = (chunk: Buffer): void => conn!.onBytes(chunk, chunk.length);
      if (recv === null) sock.on('data', onData);
      const settle = (e: NbdError | null): void => {
        clearTimeout(timer);
        if (e !== null) {
          const s = conn!.sock;
          // A refused export: say goodbye politely (NBD_OPT_ABORT) rather than just hanging up;
          // not over a failed TLS session, where nothing more may be said in plaintext.
          const tlsBroken = e.fault === NbdFault.TLS_HANDSHAKE || e.fault === NbdFault.TLS_CERTIFICATE;
          if (e.fault !== NbdFault.UNREACHABLE && !tlsBroken && !s.destroyed && s.writable) {
            s.end(ABORT_OPTION);
            setTimeout(() => {
              s.destroy();
              sock.destroy();
            }, 200).unref();
          } else {
            s.destroy();
            sock.destroy();
          }
          reject(e);
        }
      };
      // TLS 1.3: the server checks our certificate after we finished the handshake, so its
      // refusal arrives as a reset or close before its first record of NBD data.
      let tlsSilent = false;
      const tlsRefusal = (what: string, cause?: unknown): NbdError =>
        new NbdError(NbdFault.TLS_HANDSHAKE, `${where}: the server ended the TLS session before its first reply (${what}): did it refuse our certificate or key?`, cause === undefined ? undefined : { cause });
      const onError = (e: Error): void => {
        const why =
          e instanceof NbdError
            ? e
            : tlsSilent
              ? tlsRefusal(e.message, e)
              : new NbdError(connected ? NbdFault.PROTOCOL : NbdFault.UNREACHABLE, `${connected ? 'connection to' : 'cannot connect to'} ${where}: ${e.message}`, { cause: e });
        conn!.ended(why);
      };
      const onClose = (): void => conn!.ended(tlsSilent ? tlsRefusal('closed') : new NbdError(NbdFault.PROTOCOL, `${where} closed the connection`));
      sock.once('connect', () => {
        connected = true;
      });
      sock.on('error', onError);
      sock.on('close', onClose);
      const startTls = async (): Promise<void> => {
        // From here the plain socket only carries TLS records, which the TLS socket reads.
        sock.removeListener('data', onData);
        const t = await startNbdTls(sock, { tls, host: address.kind === 'tcp' ? address.host : null, where, ...(opts.tlsSessionCache === undefined ? {} : { cache: opts.tlsSessionCache }) }, (t: TLSSocket) => {
          conn!.sock = t;
          t.on('error', onError);
          t.on('close', onClose);
        });
        tlsSilent = true;
        t.on('data', onData);
        t.once('data', () => {
          tlsSilent = false;
        });
        conn!.secure = true;
      };
      const hsOpts = {
        ...(opts.structuredReplies === undefined ? {} : { structuredReplies: opts.structuredReplies }),
        ...(wantTls ? { startTls } : {}),
      };
      nbdHandshake(conn.hs!, address.exportName, hsOpts)
        .then((info) => {
          if (conn!.hs!.leftover > 0) throw new NbdError(NbdFault.HANDSHAKE, 'the server sent bytes after the handshake');
          conn!.info = info;
          conn!.hs = null;
          conn!.live = true;
          settle(null);
          resolve(conn!);
        })
        .catch((e: unknown) => {
          settle(e instanceof NbdError ? e : new NbdError(NbdFault.HANDSHAKE, String(e), { cause: e }));
        });
    });
  }

  /** Hands the connection to its owner (after the handshake). */
  attach(owner: NbdConnectionOwner): void {
    this.owner = owner;
    this.sock.on('drain', () => {
      this.congested = false;
      this.owner?.drained(this);
    });
  }

  /**
   * True from the end of the handshake until the connection is closed, lost or torn down; a
   * connection that is not live takes no requests.
   */
  get isLive(): boolean {
    return this.live;
  }

  /** Sends one request. The slot's header is rewritten; the caller set cookie fields. */
  send(slot: NbdRequest): void {
    const h = slot.header;
    h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(slot.flags, 4);
    h.writeUInt16BE(slot.cmd, 6);
    h.writeUInt32BE(slot.gen, 8);
    h.writeUInt32BE(slot.index, 12);
    h.writeUInt32BE(Math.floor(slot.offset / U32), 16);
    h.writeUInt32BE(slot.offset >>> 0, 20);
    h.writeUInt32BE(slot.length, 24);
    slot.covered = 0;
    slot.errno = 0;
    slot.errorMessage = '';
    this.inFlight++;
    // Requests issued in one turn of the event loop leave in one writev.
    if (!this.corked) {
      this.corked = true;
      this.sock.cork();
      process.nextTick(this.uncork);
    }
    let ok = this.sock.write(h);
    if (slot.cmd === NbdCmd.WRITE) {
      const b = slot.buf!;
      ok = this.sock.write(b.subarray(slot.bufOff, slot.bufOff + slot.length));
    }
    if (!ok) this.congested = true;
  }

  /** Asks the server to end the session (NBD_CMD_DISC) and closes; idempotent. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.live && !this.sock.destroyed) {
      const h = Buffer.alloc(28);
      h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
      h.writeUInt16BE(NbdCmd.DISC, 6);
      this.sock.end(h);
      // A server that never closes its side does not keep the process alive.
      setTimeout(() => this.sock.destroy(), 1000).unref();
    } else {
      this.sock.destroy();
    }
    this.live = false;
  }

  /** Tears the connection down at once (a protocol error, or a test killing it). */
  destroy(why: NbdError): void {
    if (!this.sock.destroyed) this.sock.destroy();
    this.ended(why);
  }

  private ended(why: NbdError): void {
    if (this.hs !== null) {
      this.hs.end(why);
      return;
    }
    if (!this.live && !this.closing) return;
    const wasLive = this.live;
    this.live = false;
    if (!this.sock.destroyed) this.sock.destroy();
    if (wasLive && !this.closing) this.owner?.lost(this, why);
  }

  private protocolError(message: string): false {
    this.destroy(new NbdError(NbdFault.PROTOCOL, message));
    return false;
  }

  // ---- reply parsing ----

  /** Bytes `buf[0..n)` from the socket: the receive buffer (plaintext) or a decrypted chunk (TLS). */
  private onBytes(buf: Buffer, n: number): void {
    if (this.hs !== null) {
      this.hs.push(buf, 0, n);
      return;
    }
    if (!this.live) return;
    let p = 0;
    while (p < n) {
      if (this.state === ST_HEADER) {
        const k = Math.min(this.hdrNeed - this.hdrHave, n - p);
        buf.copy(this.hdr, this.hdrHave, p, p + k);
        p += k;
        this.hdrHave += k;
        if (this.hdrHave === 4 && this.hdrNeed === 4) {
          const magic = this.hdr.readUInt32BE(0);
          if (magic === NBD_SIMPLE_REPLY_MAGIC) this.hdrNeed = 16;
          else if (magic === NBD_STRUCTURED_REPLY_MAGIC && this.info.structuredReplies) this.hdrNeed = 20;
          else return void this.protocolError(`bad reply magic 0x${magic.toString(16)}`);
        }
        if (this.hdrHave === this.hdrNeed && !this.onHeader()) return;
      } else if (this.state === ST_FIELDS) {
        const k = Math.min(this.fieldsNeed - this.fieldsHave, n - p);
        buf.copy(this.fields, this.fieldsHave, p, p + k);
        p += k;
        this.fieldsHave += k;
        if (this.fieldsHave === this.fieldsNeed && !this.onFields()) return;
      } else {
        const k = Math.min(this.dataLeft, n - p);
        // A destination detached meanwhile (guest memory unmapped at a reset) has length 0.
        const dst = this.dst!;
        if (this.dataPos + k <= dst.byteLength) buf.copy(dst, this.dataPos, p, p + k);
        p += k;
        this.dataPos += k;
        this.dataLeft -= k;
        if (this.dataLeft === 0) this.chunkDone();
        if (!this.live) return;
      }
    }
  }

  private nextHeader(): void {
    this.state = ST_HEADER;
    this.hdrHave = 0;
    this.hdrNeed = 4;
    this.slot = null;
    this.dst = null;
  }

  /** A complete reply header: returns false after a hard disconnect. */
  private onHeader(): boolean {
    const h = this.hdr;
    const gen = h.readUInt32BE(8);
    const index = h.readUInt32BE(12);
    const slot = this.owner?.slotFor(this, gen, index) ?? null;
    if (slot === null) return this.protocolError(`reply with an unknown cookie ${gen}:${index}`);
    this.slot = slot;
    if (this.hdrNeed === 16) {
      const err = h.readUInt32BE(4);
      if (err !== 0) {
        slot.errno = err;
        this.finishSlot();
        return true;
      }
      if (slot.cmd === NbdCmd.READ) {
        // proto.md: after NBD_OPT_STRUCTURED_REPLY a read is answered by structured chunks only.
        if (this.info.structuredReplies) return this.protocolError('a simple reply to a read after structured replies were negotiated');
        slot.covered = slot.length;
        return this.startData(slot.bufOff, slot.length, true);
      }
      this.finishSlot();
      return true;
    }
    this.chunkFlags = h.readUInt16BE(4);
    this.chunkType = h.readUInt16BE(6);
    const len = (this.chunkLen = h.readUInt32BE(16));
    switch (this.chunkType) {
      case NbdReplyType.NONE:
        if (len !== 0 || (this.chunkFlags & NbdReplyFlag.DONE) === 0) return this.protocolError('NBD_REPLY_TYPE_NONE with a payload or without DONE');
        this.finishSlot();
        return true;
      case NbdReplyType.OFFSET_DATA:
        if (slot.cmd !== NbdCmd.READ || len < 9 || len - 8 > slot.length) return this.protocolError(`OFFSET_DATA chunk of ${len} bytes for a ${slot.length}-byte request`);
        return this.startFields(8);
      case NbdReplyType.OFFSET_HOLE:
        if (slot.cmd !== NbdCmd.READ || len !== 12) return this.protocolError(`OFFSET_HOLE chunk of ${len} bytes`);
        return this.startFields(12);
      default:
        // Error chunks (bit 15), known or not, carry error and message length first; their size
        // is bounded so a hostile server cannot make us buffer without limit.
        if ((this.chunkType & NBD_REPLY_TYPE_ERR_BIT) !== 0) {
          if (len < 6 || len > FIELDS_MAX) return this.protocolError(`error chunk of ${len} bytes`);
          return this.startFields(len);
        }
        return this.protocolError(`unexpected chunk type ${this.chunkType}`);
    }
  }

  private startFields(n: number): boolean {
    this.state = ST_FIELDS;
    this.fieldsHave = 0;
    this.fieldsNeed = n;
    return true;
  }

  private startData(at: number, len: number, simple: boolean): boolean {
    this.state = ST_DATA;
    this.dst = this.slot!.buf;
    this.dataPos = at;
    this.dataLeft = len;
    if (simple) this.chunkFlags = NbdReplyFlag.DONE;
    return true;
  }

  /** The fixed fields of a chunk are in: returns false after a hard disconnect. */
  private onFields(): boolean {
    const slot = this.slot!;
    const f = this.fields;
    if (this.chunkType === NbdReplyType.OFFSET_DATA || this.chunkType === NbdReplyType.OFFSET_HOLE) {
      const hi = f.readUInt32BE(0);
      const off = hi > MAX_SAFE_HI ? Number.MAX_SAFE_INTEGER : hi * U32 + f.readUInt32BE(4);
      const len = this.chunkType === NbdReplyType.OFFSET_DATA ? this.chunkLen - 8 : f.readUInt32BE(8);
      const rel = off - slot.offset;
      // Inside the request, and (counting bytes) never more than the request in total.
      if (len === 0 || rel < 0 || rel + len > slot.length || slot.covered + len > slot.length) {
        return this.protocolError(`content chunk ${off}+${len} outside the request ${slot.offset}+${slot.length}`);
      }
      slot.covered += len;
      if (this.chunkType === NbdReplyType.OFFSET_DATA) return this.startData(slot.bufOff + rel, len, false);
      const dst = slot.buf!;
      if (slot.bufOff + rel + len <= dst.byteLength) dst.fill(0, slot.bufOff + rel, slot.bufOff + rel + len);
      this.chunkDone();
      return this.live;
    }
    // An error chunk: error, message length, message, maybe an offset.
    const errno = f.readUInt32BE(0);
    const msgLen = f.readUInt16BE(4);
    if (msgLen > this.chunkLen - 6) return this.protocolError(`error chunk message of ${msgLen} bytes in a ${this.chunkLen}-byte chunk`);
    if (slot.errno === 0) {
      slot.errno = errno === 0 ? NbdErrno.EIO : errno;
      slot.errorMessage = msgLen > 0 ? f.toString('utf8', 6, 6 + msgLen) : '';
    }
    this.chunkDone();
    return this.live;
  }

  private chunkDone(): void {
    if ((this.chunkFlags & NbdReplyFlag.DONE) !== 0) this.finishSlot();
    else {
      this.state = ST_HEADER;
      this.hdrHave = 0;
      this.hdrNeed = 4;
      this.dst = null;
    }
  }

  private finishSlot(): void {
    const slot = this.slot!;
    this.nextHeader();
    this.inFlight--;
    let error: NbdError | null = null;
    if (slot.errno !== 0) {
      const msg = slot.errorMessage !== '' ? `: ${slot.errorMessage}` : '';
      error = new NbdError(NbdFault.SERVER_ERROR, `${cmdName(slot.cmd)} ${slot.offset}+${slot.length} failed on the server (${errnoName(slot.errno)})${msg}`, { errno: slot.errno });
    } else if (slot.cmd === NbdCmd.READ && slot.covered !== slot.length) {
      // Success claimed without data for every byte: the bytes left are unknown.
      error = new NbdError(NbdFault.PROTOCOL, `read ${slot.offset}+${slot.length} succeeded with ${slot.covered} bytes of content`);
    }
    this.owner?.replied(this, slot, error);
  }
}

function cmdName(cmd: number): string {
  for (const [name, v] of Object.entries(NbdCmd)) if (v === cmd) return name;
  return `command ${cmd}`;
}
