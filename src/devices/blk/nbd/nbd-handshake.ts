/**
 * The fixed newstyle handshake (proto.md "Newstyle negotiation"): the server's greeting, the
 * client flags, NBD_OPT_STRUCTURED_REPLY, then NBD_OPT_GO asking for NBD_INFO_EXPORT and
 * NBD_INFO_BLOCK_SIZE. Only a server that does not know NBD_OPT_GO (NBD_REP_ERR_UNSUP) gets the
 * old NBD_OPT_EXPORT_NAME, which cannot report a missing export other than by hanging up.
 *
 * Not a hot path: it allocates freely. Every length the server sends is bounded before it is
 * read, so a hostile server cannot make the client buffer without limit.
 */
import {
  NBD_DEFAULT_MAX_PAYLOAD,
  NBD_INIT_MAGIC_HI,
  NBD_INIT_MAGIC_LO,
  NBD_MAX_STRING,
  NBD_OLDSTYLE_MAGIC_HI,
  NBD_OPTS_MAGIC_HI,
  NBD_OPTS_MAGIC_LO,
  NBD_OPT_REPLY_HEADER_SIZE,
  NBD_REP_ERR_BIT,
  NBD_REP_MAGIC_HI,
  NBD_REP_MAGIC_LO,
  NbdFlag,
  NbdHandshakeFlag,
  NbdInfo,
  NbdOpt,
  NbdRep,
} from './nbd-protocol.js';
import { NbdError, NbdFault } from './nbd-error.js';

/** What the server said about the export. */
export interface NbdExportInfo {
  /** Bytes. */
  readonly size: number;
  /** Transmission flags (NbdFlag). */
  readonly flags: number;
  /** NBD_INFO_BLOCK_SIZE, or 1 / 4096 / 32 MiB when the server sent none. */
  readonly minBlock: number;
  /** Preferred block size in bytes (NBD_INFO_BLOCK_SIZE), a power of two at least minBlock; 4096 when the server sent none. */
  readonly preferredBlock: number;
  /** Maximum payload of a request in bytes (NBD_INFO_BLOCK_SIZE), 0xffff_ffff for no limit; 32 MiB when the server sent none. */
  readonly maxBlock: number;
  /** NBD_OPT_STRUCTURED_REPLY was acknowledged. */
  readonly structuredReplies: boolean;
  /** The server did not know NBD_OPT_GO: the export was selected with NBD_OPT_EXPORT_NAME. */
  readonly viaExportName: boolean;
}

/** Bytes in and out of the socket during the handshake. */
export interface HandshakeIo {
  /** Resolves with exactly `n` bytes, or rejects when the connection ends first. */
  read(n: number): Promise<Buffer>;
  write(bytes: Uint8Array): void;
  /** Bytes received and not read yet. */
  pending?(): number;
}

/** Option replies longer than this are a broken server (the largest legitimate one is a string). */
const MAX_OPTION_REPLY = NBD_MAX_STRING + 64;
const MAX_SAFE_HI = 0x1f_ffff;

function fail(message: string, fault: NbdFault = NbdFault.HANDSHAKE): NbdError {
  return new NbdError(fault, message);
}

function u64(b: Buffer, at: number, what: string): number {
  const hi = b.readUInt32BE(at);
  if (hi > MAX_SAFE_HI) throw fail(`${what} does not fit 53 bits`);
  return hi * 0x1_0000_0000 + b.readUInt32BE(at + 4);
}

function sendOption(io: HandshakeIo, option: number, data: Uint8Array): void {
  const h = Buffer.alloc(16);
  h.writeUInt32BE(NBD_OPTS_MAGIC_HI, 0);
  h.writeUInt32BE(NBD_OPTS_MAGIC_LO, 4);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(data.length, 12);
  io.write(h);
  if (data.length > 0) io.write(data);
}

interface OptionReply {
  readonly type: number;
  readonly data: Buffer;
}

async function readOptionReply(io: HandshakeIo, option: number): Promise<OptionReply> {
  const h = await io.read(NBD_OPT_REPLY_HEADER_SIZE);
  if (h.readUInt32BE(0) !== NBD_REP_MAGIC_HI || h.readUInt32BE(4) !== NBD_REP_MAGIC_LO) throw fail('bad option reply magic');
  const replyOption = h.readUInt32BE(8);
  if (replyOption !== option) throw fail(`option reply for option ${replyOption}, expected ${option}`);
  const type = h.readUInt32BE(12);
  const len = h.readUInt32BE(16);
  if (len > MAX_OPTION_REPLY) throw fail(`option reply of ${len} bytes (at most ${MAX_OPTION_REPLY})`);
  const data = len > 0 ? await io.read(len) : Buffer.alloc(0);
  return { type, data };
}

function repErrorName(type: number): string {
  for (const [name, v] of Object.entries(NbdRep)) if (v === type) return `NBD_REP_${name}`;
  return `error 0x${type.toString(16)}`;
}

function optionError(what: string, exportName: string, r: OptionReply): NbdError {
  // An error reply may carry a message for humans.
  const msg = r.data.length > 0 ? `: ${r.data.toString('utf8').slice(0, 200)}` : '';
  if (r.type === NbdRep.ERR_UNKNOWN) return fail(`the server has no export ${JSON.stringify(exportName)}${msg}`, NbdFault.NO_EXPORT);
  if (r.type === NbdRep.ERR_TLS_REQD) return fail(`the server requires TLS: use an nbds:// or nbds+unix:// URI${msg}`, NbdFault.TLS_REQUIRED);
  return fail(`${what} refused (${repErrorName(r.type)})${msg}`);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

export interface HandshakeOptions {
  /** Ask for structured replies (default true). */
  readonly structuredReplies?: boolean;
  /**
   * Ask for TLS: NBD_OPT_STARTTLS first, and once the server acknowledged it this upgrades the
   * connection (the rest of the handshake goes over TLS). Absent: plaintext.
   */
  readonly startTls?: () => Promise<void>;
}

export async function nbdHandshake(io: HandshakeIo, exportName: string, opts: HandshakeOptions = {}): Promise<NbdExportInfo> {
  const greet = await io.read(18);
  if (greet.readUInt32BE(0) !== NBD_INIT_MAGIC_HI || greet.readUInt32BE(4) !== NBD_INIT_MAGIC_LO) throw fail('not an NBD server (no NBDMAGIC)');
  if (greet.readUInt32BE(8) === NBD_OLDSTYLE_MAGIC_HI) throw fail('oldstyle NBD server: only the newstyle handshake is supported');
  if (greet.readUInt32BE(8) !== NBD_OPTS_MAGIC_HI || greet.readUInt32BE(12) !== NBD_OPTS_MAGIC_LO) throw fail('bad newstyle magic');
  const serverFlags = greet.readUInt16BE(16);
  // Without FIXED_NEWSTYLE a server may drop the connection on any option it does not know.
  if ((serverFlags & NbdHandshakeFlag.FIXED_NEWSTYLE) === 0) throw fail('the server does not offer the fixed newstyle handshake');
  const noZeroes = (serverFlags & NbdHandshakeFlag.NO_ZEROES) !== 0;
  const clientFlags = Buffer.alloc(4);
  clientFlags.writeUInt32BE(NbdHandshakeFlag.FIXED_NEWSTYLE | (noZeroes ? NbdHandshakeFlag.NO_ZEROES : 0), 0);
  io.write(clientFlags);
  if (opts.startTls !== undefined) await negotiateTls(io, opts.startTls);

  let structuredReplies = false;
  if (opts.structuredReplies ?? true) {
    sendOption(io, NbdOpt.STRUCTURED_REPLY, new Uint8Array(0));
    const r = await readOptionReply(io, NbdOpt.STRUCTURED_REPLY);
    if (r.type === NbdRep.ACK) structuredReplies = true;
    else if ((r.type & NBD_REP_ERR_BIT) === 0) throw fail(`unexpected reply ${r.type} to NBD_OPT_STRUCTURED_REPLY`);
    else if (r.type === NbdRep.ERR_TLS_REQD) throw optionError('NBD_OPT_STRUCTURED_REPLY', exportName, r);
    // Any other error: simple replies only, which the client also handles.
  }

  const name = Buffer.from(exportName, 'utf8');
  const go = Buffer.alloc(4 + name.length + 2 + 4);
  go.writeUInt32BE(name.length, 0);
  name.copy(go, 4);
  go.writeUInt16BE(2, 4 + name.length);
  go.writeUInt16BE(NbdInfo.EXPORT, 6 + name.length);
  go.writeUInt16BE(NbdInfo.BLOCK_SIZE, 8 + name.length);
  sendOption(io, NbdOpt.GO, go);
  let size = -1;
  let flags = 0;
  let minBlock = 0;
  let preferredBlock = 0;
  let maxBlock = 0;
  for (;;) {
    const r = await readOptionReply(io, NbdOpt.GO);
    if (r.type === NbdRep.ACK) break;
    if (r.type === NbdRep.INFO) {
      if (r.data.length < 2) throw fail('NBD_REP_INFO without a type');
      const infoType = r.data.readUInt16BE(0);
      if (infoType === NbdInfo.EXPORT) {
        if (r.data.length !== 12) throw fail(`NBD_INFO_EXPORT of ${r.data.length} bytes`);
        size = u64(r.data, 2, 'export size');
        flags = r.data.readUInt16BE(10);
      } else if (infoType === NbdInfo.BLOCK_SIZE) {
        if (r.data.length !== 14) throw fail(`NBD_INFO_BLOCK_SIZE of ${r.data.length} bytes`);
        minBlock = r.data.readUInt32BE(2);
        preferredBlock = r.data.readUInt32BE(6);
        maxBlock = r.data.readUInt32BE(10);
      }
      // Other information (name, description) is not needed.
      continue;
    }
    if (r.type === NbdRep.ERR_UNSUP) return exportNameFallback(io, name, exportName, noZeroes, structuredReplies);
    if ((r.type & NBD_REP_ERR_BIT) !== 0) throw optionError('NBD_OPT_GO', exportName, r);
    throw fail(`unexpected reply ${r.type} to NBD_OPT_GO`);
  }
  if (size < 0) throw fail('NBD_OPT_GO acknowledged without NBD_INFO_EXPORT');
  return finishInfo({ size, flags, minBlock, preferredBlock, maxBlock, structuredReplies, viaExportName: false });
}

/**
 * NBD_OPT_STARTTLS (proto.md "TLS support"): any answer but ACK means no TLS, which is an error,
 * never a fallback to plaintext. Bytes already received after the ACK would have been injected
 * in plaintext ahead of the TLS session (the STARTTLS injection attack): refused.
 */
async function negotiateTls(io: HandshakeIo, startTls: () => Promise<void>): Promise<void> {
  sendOption(io, NbdOpt.STARTTLS, new Uint8Array(0));
  const r = await readOptionReply(io, NbdOpt.STARTTLS);
  if (r.type !== NbdRep.ACK) {
    const msg = r.data.length > 0 ? `: ${r.data.toString('utf8').slice(0, 200)}` : '';
    const why = (r.type & NBD_REP_ERR_BIT) !== 0 ? repErrorName(r.type) : `reply ${r.type}`;
    throw fail(`the server does not offer TLS (NBD_OPT_STARTTLS answered ${why})${msg}`, NbdFault.TLS_UNAVAILABLE);
  }
  if (r.data.length !== 0) throw fail('NBD_OPT_STARTTLS acknowledged with a payload');
  if ((io.pending?.() ?? 0) > 0) throw fail('plaintext bytes after the NBD_OPT_STARTTLS acknowledgement');
  await startTls();
}

async function exportNameFallback(io: HandshakeIo, name: Buffer, exportName: string, noZeroes: boolean, structuredReplies: boolean): Promise<NbdExportInfo> {
  sendOption(io, NbdOpt.EXPORT_NAME, name);
  let reply: Buffer;
  try {
    reply = await io.read(noZeroes ? 10 : 134);
  } catch (e) {
    // The only way a server refuses NBD_OPT_EXPORT_NAME is closing the connection.
    throw new NbdError(NbdFault.NO_EXPORT, `the server closed the connection on export ${JSON.stringify(exportName)}`, { cause: e });
  }
  const size = u64(reply, 0, 'export size');
  return finishInfo({ size, flags: reply.readUInt16BE(8), minBlock: 0, preferredBlock: 0, maxBlock: 0, structuredReplies, viaExportName: true });
}

function finishInfo(i: NbdExportInfo): NbdExportInfo {
  if ((i.flags & NbdFlag.HAS_FLAGS) === 0) i = { ...i, flags: 0 };
  if (i.minBlock === 0 && i.preferredBlock === 0 && i.maxBlock === 0) {
    // proto.md: without block size information a client uses 1 (or 512), 4096 and 32 MiB.
    return { ...i, minBlock: 1, preferredBlock: 4096, maxBlock: NBD_DEFAULT_MAX_PAYLOAD };
  }
  const { minBlock, preferredBlock, maxBlock } = i;
  // proto.md: min a power of 2 from 1 to 64 KiB, preferred a power of 2 at least min, max a
  // multiple of min (or 0xffffffff). Anything else is a broken server.
  if (!isPowerOfTwo(minBlock) || minBlock > 65536) throw fail(`bad minimum block size ${minBlock}`);
  if (!isPowerOfTwo(preferredBlock) || preferredBlock < minBlock) throw fail(`bad preferred block size ${preferredBlock}`);
  if (maxBlock < minBlock || (maxBlock !== 0xffff_ffff && maxBlock % minBlock !== 0)) throw fail(`bad maximum block size ${maxBlock}`);
  return i;
}
