/**
 * Test support: an NBD server in process, on a Unix socket, whose every answer a test can
 * bend: no GO (EXPORT_NAME fallback), no structured replies, a greeting that is not fixed
 * newstyle, TLS required, block size information, reads answered in several chunks out of order
 * with holes, and per-request hooks that reply with an error, an unknown cookie, a short reply,
 * an oversized chunk, or hold the reply until the test releases it. Writes land in `data`.
 */
import { createServer, type Server, type Socket } from 'node:net';
import {
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  NbdCmd,
  NbdFlag,
  NbdInfo,
  NbdOpt,
  NbdRep,
  NbdReplyFlag,
  NbdReplyType,
} from './nbd-protocol.js';

export interface FakeRequest {
  readonly conn: number;
  readonly flags: number;
  readonly cmd: number;
  readonly cookie: Buffer;
  readonly offset: number;
  readonly length: number;
}

/** What a hook wants done with a request instead of the normal answer. */
export type FakeAction =
  | { readonly kind: 'normal' }
  | { readonly kind: 'error'; readonly errno: number; readonly structured?: boolean; readonly message?: string }
  | { readonly kind: 'raw'; readonly bytes: Buffer; readonly thenClose?: boolean }
  | { readonly kind: 'close' }
  | { readonly kind: 'hold' };

export interface FakeServerOptions {
  readonly size?: number;
  readonly exportName?: string;
  readonly flags?: number;
  readonly blockSize?: readonly [number, number, number];
  readonly go?: boolean;
  readonly structured?: boolean;
  readonly fixedNewstyle?: boolean;
  readonly tlsRequired?: boolean;
  /** Answer reads with chunks of this size, in reverse order, every other one a hole when zero. */
  readonly readChunk?: number;
  /** An option reply of this many bytes to NBD_OPT_STRUCTURED_REPLY (a hostile server). */
  readonly hugeOptionReply?: number;
  /**
   * NBD_OPT_STARTTLS (which this server never really starts): 'inject' acknowledges it and sends
   * plaintext bytes right behind (the STARTTLS injection attack); 'policy' answers
   * NBD_REP_ERR_POLICY; 'mute' acknowledges it and then never answers the TLS handshake; by
   * default it is unknown (NBD_REP_ERR_UNSUP).
   */
  readonly startTls?: 'inject' | 'policy' | 'mute';
}

const ALL_FLAGS =
  NbdFlag.HAS_FLAGS | NbdFlag.SEND_FLUSH | NbdFlag.SEND_FUA | NbdFlag.SEND_TRIM | NbdFlag.SEND_WRITE_ZEROES | NbdFlag.CAN_MULTI_CONN;

export class FakeNbdServer {
  readonly data: Uint8Array;
  readonly requests: FakeRequest[] = [];
  /** Connections accepted so far. */
  connections = 0;
  /** Most requests outstanding at once (received, not yet answered). */
  maxOutstanding = 0;
  hook: (r: FakeRequest) => FakeAction = () => ({ kind: 'normal' });
  private outstanding = 0;
  private readonly held: (() => void)[] = [];
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;

  constructor(
    readonly path: string,
    readonly opts: FakeServerOptions = {},
  ) {
    this.data = new Uint8Array(opts.size ?? 1 << 20);
  }

  listen(): Promise<void> {
    const server = createServer((s) => this.accept(s));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
  }

  /** Stops listening and drops every connection (a server that died). */
  stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = null;
    this.held.length = 0;
    if (server === null) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  /** Drops every connection but keeps listening (a server restarted at once). */
  dropAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.held.length = 0;
    this.outstanding = 0;
  }

  /** Answers every held request. */
  release(): void {
    for (const f of this.held.splice(0)) f();
  }

  get heldCount(): number {
    return this.held.length;
  }

  private accept(s: Socket): void {
    const id = ++this.connections;
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {});
    const o = this.opts;
    let buf = Buffer.alloc(0);
    let phase: 'flags' | 'options' | 'transmission' | 'mute' = 'flags';
    let structured = false;
    const greet = Buffer.alloc(18);
    greet.write('NBDMAGIC', 0, 'latin1');
    greet.write('IHAVEOPT', 8, 'latin1');
    greet.writeUInt16BE(o.fixedNewstyle === false ? 0 : 3, 16);
    s.write(greet);
    const optReply = (opt: number, type: number, data: Buffer = Buffer.alloc(0)): void => {
      const h = Buffer.alloc(20);
      h.writeUInt32BE(0x0003e889, 0);
      h.writeUInt32BE(0x045565a9, 4);
      h.writeUInt32BE(opt, 8);
      h.writeUInt32BE(type, 12);
      h.writeUInt32BE(data.length, 16);
      s.write(Buffer.concat([h, data]));
    };
    const flags = o.flags ?? ALL_FLAGS;
    s.on('data', (chunk: Buffer) => {
      if (phase === 'mute') return;
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (phase === 'flags') {
          if (buf.length < 4) return;
          buf = buf.subarray(4);
          phase = 'options';
        } else if (phase === 'options') {
          if (buf.length < 16) return;
          const opt = buf.readUInt32BE(8);
          const len = buf.readUInt32BE(12);
          if (buf.length < 16 + len) return;
          const data = buf.subarray(16, 16 + len);
          buf = buf.subarray(16 + len);
          if (o.tlsRequired === true && opt !== NbdOpt.ABORT) {
            optReply(opt, NbdRep.ERR_TLS_REQD);
            continue;
          }
          if (opt === NbdOpt.STARTTLS && o.startTls !== undefined) {
            if (o.startTls === 'policy') optReply(opt, NbdRep.ERR_POLICY, Buffer.from('TLS not configured'));
            else if (o.startTls === 'mute') {
              optReply(opt, NbdRep.ACK);
              phase = 'mute';
              return;
            } else {
              optReply(opt, NbdRep.ACK);
              optReply(NbdOpt.GO, NbdRep.ACK);
            }
            continue;
          }
          if (opt === NbdOpt.STRUCTURED_REPLY) {
            if (o.hugeOptionReply !== undefined) optReply(opt, NbdRep.ACK, Buffer.alloc(o.hugeOptionReply));
            else if (o.structured === false) optReply(opt, NbdRep.ERR_UNSUP);
            else {
              structured = true;
              optReply(opt, NbdRep.ACK);
            }
          } else if (opt === NbdOpt.GO && o.go !== false) {
            const name = data.subarray(4, 4 + data.readUInt32BE(0)).toString('utf8');
            if (name !== (o.exportName ?? '')) {
              optReply(opt, NbdRep.ERR_UNKNOWN, Buffer.from('no such export'));
              continue;
            }
            const info = Buffer.alloc(12);
            info.writeUInt16BE(NbdInfo.EXPORT, 0);
            info.writeUInt32BE(Math.floor(this.data.length / 2 ** 32), 2);
            info.writeUInt32BE(this.data.length >>> 0, 6);
            info.writeUInt16BE(flags, 10);
            optReply(opt, NbdRep.INFO, info);
            if (o.blockSize) {
              const b = Buffer.alloc(14);
              b.writeUInt16BE(NbdInfo.BLOCK_SIZE, 0);
              b.writeUInt32BE(o.blockSize[0], 2);
              b.writeUInt32BE(o.blockSize[1], 6);
              b.writeUInt32BE(o.blockSize[2], 10);
              optReply(opt, NbdRep.INFO, b);
            }
            optReply(opt, NbdRep.ACK);
            phase = 'transmission';
          } else if (opt === NbdOpt.EXPORT_NAME) {
            if (data.toString('utf8') !== (o.exportName ?? '')) {
              s.destroy();
              return;
            }
            const r = Buffer.alloc(10);
            r.writeUInt32BE(Math.floor(this.data.length / 2 ** 32), 0);
            r.writeUInt32BE(this.data.length >>> 0, 4);
            r.writeUInt16BE(flags, 8);
            s.write(r); // NO_ZEROES was offered and the client takes it
            phase = 'transmission';
          } else if (opt === NbdOpt.ABORT) {
            optReply(opt, NbdRep.ACK);
            s.end();
            return;
          } else {
            optReply(opt, NbdRep.ERR_UNSUP);
          }
        } else {
          if (buf.length < 28) return;
          if (buf.readUInt32BE(0) !== NBD_REQUEST_MAGIC) {
            s.destroy();
            return;
          }
          const cmd = buf.readUInt16BE(6);
          const length = buf.readUInt32BE(24);
          const need = cmd === NbdCmd.WRITE ? 28 + length : 28;
          if (buf.length < need) return;
          const req: FakeRequest = {
            conn: id,
            flags: buf.readUInt16BE(4),
            cmd,
            cookie: Buffer.from(buf.subarray(8, 16)),
            offset: buf.readUInt32BE(16) * 2 ** 32 + buf.readUInt32BE(20),
            length,
          };
          const payload = Buffer.from(buf.subarray(28, need));
          buf = buf.subarray(need);
          if (cmd === NbdCmd.DISC) {
            s.end();
            return;
          }
          this.requests.push(req);
          this.outstanding++;
          this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
          const action = this.hook(req);
          const answer = (): void => {
            this.outstanding--;
            if (!s.destroyed) this.answer(s, req, payload, structured, action);
          };
          if (action.kind === 'hold') this.held.push(() => this.answer(s, req, payload, structured, { kind: 'normal' }, () => this.outstanding--));
          else answer();
        }
      }
    });
  }

  private answer(s: Socket, req: FakeRequest, payload: Buffer, structured: boolean, action: FakeAction, before?: () => void): void {
    before?.();
    if (s.destroyed) return;
    if (action.kind === 'close') {
      s.destroy();
      return;
    }
    if (action.kind === 'raw') {
      s.write(action.bytes);
      if (action.thenClose === true) s.end();
      return;
    }
    if (action.kind === 'error') {
      if (action.structured === true && structured) {
        const msg = Buffer.from(action.message ?? '');
        const p = Buffer.alloc(6 + msg.length);
        p.writeUInt32BE(action.errno, 0);
        p.writeUInt16BE(msg.length, 4);
        msg.copy(p, 6);
        s.write(chunk(req.cookie, NbdReplyFlag.DONE, NbdReplyType.ERROR, p));
      } else s.write(simple(req.cookie, action.errno));
      return;
    }
    const { offset, length } = req;
    const end = offset + length;
    if (end > this.data.length) {
      s.write(simple(req.cookie, 22));
      return;
    }
    switch (req.cmd) {
      case NbdCmd.READ: {
        if (!structured) {
          s.write(Buffer.concat([simple(req.cookie, 0), this.data.subarray(offset, end)]));
          return;
        }
        const step = this.opts.readChunk ?? length;
        const starts: number[] = [];
        for (let at = offset; at < end; at += step) starts.push(at);
        starts.reverse();
        starts.forEach((at, i) => {
          const n = Math.min(step, end - at);
          const last = i === starts.length - 1;
          const bytes = this.data.subarray(at, at + n);
          const flag = last ? NbdReplyFlag.DONE : 0;
          if (this.opts.readChunk !== undefined && bytes.every((b) => b === 0)) {
            const h = Buffer.alloc(12);
            h.writeUInt32BE(Math.floor(at / 2 ** 32), 0);
            h.writeUInt32BE(at >>> 0, 4);
            h.writeUInt32BE(n, 8);
            s.write(chunk(req.cookie, flag, NbdReplyType.OFFSET_HOLE, h));
          } else {
            const h = Buffer.alloc(8 + n);
            h.writeUInt32BE(Math.floor(at / 2 ** 32), 0);
            h.writeUInt32BE(at >>> 0, 4);
            Buffer.from(bytes).copy(h, 8);
            s.write(chunk(req.cookie, flag, NbdReplyType.OFFSET_DATA, h));
          }
        });
        return;
      }
      case NbdCmd.WRITE:
        this.data.set(payload, offset);
        break;
      case NbdCmd.TRIM:
      case NbdCmd.WRITE_ZEROES:
        this.data.fill(0, offset, end);
        break;
      default:
        break;
    }
    s.write(structured ? chunk(req.cookie, NbdReplyFlag.DONE, NbdReplyType.NONE, Buffer.alloc(0)) : simple(req.cookie, 0));
  }
}

export function simple(cookie: Buffer, errno: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(errno, 4);
  cookie.copy(b, 8);
  return b;
}

export function chunk(cookie: Buffer, flags: number, type: number, payload: Buffer, lengthField = payload.length): Buffer {
  const b = Buffer.alloc(20 + payload.length);
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  cookie.copy(b, 8);
  b.writeUInt32BE(lengthField, 16);
  payload.copy(b, 20);
  return b;
}
