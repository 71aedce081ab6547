/**
 * 9P wire encoding (little-endian on every guest): a bounds-checked reader over a received
 * message and a bounded writer into a reply buffer. Both are reusable (`reset`) so a request
 * allocates nothing but the name views it asks for. Anything past the end of the message, or a
 * reply that would not fit, fails with a P9Failure carrying the errno the server answers with:
 * the guest's input never throws anything else.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { P9_QID_BYTES, P9Errno } from '../../spec/9p.js';
import { errnoOf } from '../fs/fs-errno.js';

/** A 9P request failed with `errno` (answered as Rlerror; never escapes the server). */
export class P9Failure extends VirtioError {
  constructor(
    /** Linux errno answered in Rlerror. */
    readonly errno: number,
    message: string,
  ) {
    super(ErrorCode.REQUEST_FAILED, message);
  }
}

export function p9Fail(errno: number, message: string): never {
  throw new P9Failure(errno, message);
}

/** The errno an operation failed with: ours, HostFs's, or a Node fs error's (EIO otherwise). */
export function p9ErrnoOf(e: unknown): number {
  if (e instanceof P9Failure) return e.errno;
  return errnoOf(e);
}

const U32 = 0x1_0000_0000;
/** The high half of a u64 above which the value is no longer an exact JavaScript number. */
const SAFE_HIGH = 0x20_0000;

/** A qid: type[1] version[4] path[8] (path as a number up to 2^53). */
export interface Qid {
  /** QTDIR, QTSYMLINK or QTFILE: the file's kind. */
  type: number;
  /** Changes when the file does (the server derives it from mtime and size; 0 for directories and symlinks). */
  version: number;
  /** Unique per file on the server (the server derives it from the host's inode and device). */
  path: number;
}

export class P9Reader {
  /** The message read. */
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  private end = 0;

  reset(buf: Buffer, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): number {
    const at = this.pos;
    if (at + n > this.end) p9Fail(P9Errno.EINVAL, `message ends ${at + n - this.end} bytes early`);
    this.pos = at + n;
    return at;
  }

  u8(): number {
    return this.buf[this.need(1)]!;
  }
  u16(): number {
    return this.buf.readUInt16LE(this.need(2));
  }
  u32(): number {
    return this.buf.readUInt32LE(this.need(4));
  }
  /** A u64 as a number; above 2^53 it fails with `errno` (offsets, sizes: EINVAL or EFBIG). */
  u64(errno: number = P9Errno.EINVAL): number {
    const at = this.need(8);
    const hi = this.buf.readUInt32LE(at + 4);
    if (hi >= SAFE_HIGH) p9Fail(errno, 'a 64-bit value above 2^53');
    return hi * U32 + this.buf.readUInt32LE(at);
  }
  /** A u64 as a bigint (driver side: readdir offsets are the server's opaque cookies). */
  u64n(): bigint {
    return this.buf.readBigUInt64LE(this.need(8));
  }
  /** The low 32 bits and a flag whether any high bit is set (lock ranges: "to the end"). */
  u64Clamped(): number {
    const at = this.need(8);
    const hi = this.buf.readUInt32LE(at + 4);
    return hi >= SAFE_HIGH ? Number.MAX_SAFE_INTEGER : hi * U32 + this.buf.readUInt32LE(at);
  }
  /** A string: len[2] then the bytes, as a view of the message (no copy). */
  str(): Buffer {
    const n = this.u16();
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }
  /** Skips `n` bytes (checked). */
  skip(n: number): number {
    return this.need(n);
  }
}

export class P9Writer {
  private buf: Buffer = Buffer.alloc(0);
  pos = 0;
  private cap = 0;

  reset(buf: Buffer, start: number, cap: number): this {
    this.buf = buf;
    this.pos = start;
    this.cap = cap;
    return this;
  }

  get room(): number {
    return this.cap - this.pos;
  }

  private take(n: number): number {
    const at = this.pos;
    if (at + n > this.cap) p9Fail(P9Errno.ERANGE, `reply needs more than the ${this.cap} bytes the driver gave`);
    this.pos = at + n;
    return at;
  }

  u8(v: number): void {
    this.buf[this.take(1)] = v;
  }
  u16(v: number): void {
    this.buf.writeUInt16LE(v & 0xffff, this.take(2));
  }
  u32(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, this.take(4));
  }
  /** A non-negative number up to 2^53 as u64. */
  u64(v: number): void {
    const at = this.take(8);
    const x = v > 0 ? Math.floor(v) : 0;
    this.buf.writeUInt32LE(x % U32 >>> 0, at);
    this.buf.writeUInt32LE(Math.floor(x / U32) >>> 0, at + 4);
  }
  /** A bigint as u64 (driver side: readdir cookies). */
  u64n(v: bigint): void {
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, v), this.take(8));
  }
  /** Raw bytes (a Twrite payload). */
  bytes(s: Uint8Array): void {
    this.buf.set(s, this.take(s.length));
  }
  str(s: Uint8Array): void {
    if (s.length > 0xffff) p9Fail(P9Errno.ENAMETOOLONG, 'string above 65535 bytes');
    this.u16(s.length);
    const at = this.take(s.length);
    this.buf.set(s, at);
  }
  qid(q: Qid): void {
    const at = this.take(P9_QID_BYTES);
    this.buf[at] = q.type;
    this.buf.writeUInt32LE(q.version >>> 0, at + 1);
    this.buf.writeUInt32LE(q.path % U32 >>> 0, at + 5);
    this.buf.writeUInt32LE(Math.floor(q.path / U32) >>> 0, at + 9);
  }
}

/** Reads a qid at `at` of `buf` (driver side). */
export function readQid(buf: Buffer, at: number): Qid {
  return { type: buf[at]!, version: buf.readUInt32LE(at + 1), path: buf.readUInt32LE(at + 9) * U32 + buf.readUInt32LE(at + 5) };
}
