/**
 * The bytes of one FUSE request and its reply, in the driver's byte order: bounded decoding of
 * the request (every read checked against the request's length, names against their NUL) and
 * encoding of the reply into the device's buffer (never past the driver's writable part).
 * Used by FuseServer and the operation groups next to it; the buffers are the device's, reused
 * for every request, so nothing here allocates per request.
 */
import { StatField } from '../../platform/fs-at.js';
import { FuseAttr, FuseAttrNsec, FuseAttrOut, FuseAttrOutValid, FuseEntryOut, FuseEntryValid, FuseInHeader, FuseOpenOut, FuseOutHeader } from '../../spec/fs.js';
import { Errno, FuseErrno } from './fs-errno.js';

const U32 = 0x1_0000_0000;
/** The largest u64 taken as a number; above it an offset or id is refused. */
const MAX_SAFE_HI = 0x1f_ffff;
const EMPTY = Buffer.alloc(0);
const S = StatField;

/**
 * Bounded decoding of one FUSE request and encoding of its reply (5.11.6), in the driver's byte
 * order, over buffers the device reuses for every request.
 */
export class FuseWire {
  /** The driver's FUSE byte order, settled by FUSE_INIT. */
  littleEndian = true;
  /** The request buffer (header and arguments); only `inb[0, inLen)` is the current request. */
  inb: Buffer = EMPTY;
  private inv: DataView = new DataView(new ArrayBuffer(0));
  /** Bytes of the current request in `inb`. */
  inLen = 0;
  /** The reply buffer; only `out[0, outCap)` may be written. */
  out: Buffer = EMPTY;
  private outv: DataView = new DataView(new ArrayBuffer(0));
  /** Bytes of reply the driver's writable descriptors hold (at most `out.length`). */
  outCap = 0;

  /** The request `inb[0, inLen)` and the reply space `out[0, outCap)` of the next operation. */
  bind(inb: Buffer, inLen: number, out: Buffer, outCap: number): void {
    if (this.inb !== inb) {
      this.inb = inb;
      this.inv = new DataView(inb.buffer, inb.byteOffset, inb.length);
    }
    if (this.out !== out) {
      this.out = out;
      this.outv = new DataView(out.buffer, out.byteOffset, out.length);
    }
    this.inLen = inLen;
    this.outCap = Math.min(outCap, out.length);
  }

  // --- decoding ---------------------------------------------------------------------------

  /** The request's u32 at byte `at`, in the driver's byte order. */
  u32(at: number): number {
    return this.inv.getUint32(at, this.littleEndian);
  }

  /** The request's u32 at `at` in the other byte order (to spot a FUSE_INIT of the opposite endianness). */
  u32Other(at: number): number {
    return this.inv.getUint32(at, !this.littleEndian);
  }

  /** A u64 as a number, or -1 above 2^53 - 1. */
  u64(at: number): number {
    const le = this.littleEndian;
    const lo = this.inv.getUint32(le ? at : at + 4, le);
    const hi = this.inv.getUint32(le ? at + 4 : at, le);
    return hi > MAX_SAFE_HI ? -1 : hi * U32 + lo;
  }

  /** A u64 as a string key (lock owners and uniques use all 64 bits). */
  u64Key(at: number): string {
    const le = this.littleEndian;
    return `${this.inv.getUint32(le ? at + 4 : at, le)}:${this.inv.getUint32(le ? at : at + 4, le)}`;
  }

  /** A nodeid or fh: ids above 2^53 are never handed out, so they are unknown (ENOENT / EBADF). */
  id(at: number): number {
    const n = this.u64(at);
    return n < 0 ? 0 : n;
  }

  /** A lookup count: a huge one forgets everything (clamped by HostFs.forget). */
  count(at: number): number {
    const n = this.u64(at);
    return n < 0 ? Number.MAX_SAFE_INTEGER : n;
  }

  /** An offset: above 2^53 (e.g. 2^63) refused with `errno`. */
  offset(at: number, errno: number = Errno.EINVAL): number {
    const n = this.u64(at);
    if (n < 0) throw new FuseErrno(errno, 'offset above 2^53');
    return n;
  }

  /** The request carries at least `size` argument bytes. */
  args(size: number): void {
    if (FuseInHeader.SIZE + size > this.inLen) throw new FuseErrno(Errno.EINVAL, 'arguments shorter than the operation needs');
  }

  /** The driver's writable part holds a reply of `size` argument bytes (checked before acting). */
  need(size: number): void {
    if (FuseOutHeader.SIZE + size > this.outCap) throw new FuseErrno(Errno.EINVAL, 'reply buffer too small');
  }

  /** A NUL-terminated name starting at `at`, inside the request; the offset after its NUL. */
  name(at: number): {
    /** The name's bytes, without the NUL (a view of the request buffer). */
    name: Buffer;
    /** Offset just past the NUL: where a following name or argument starts. */
    next: number;
  } {
    if (at >= this.inLen) throw new FuseErrno(Errno.EINVAL, 'name missing');
    const end = this.inb.indexOf(0, at);
    if (end < 0 || end >= this.inLen) throw new FuseErrno(Errno.EINVAL, 'name without its terminator');
    return { name: this.inb.subarray(at, end), next: end + 1 };
  }

  // --- encoding ---------------------------------------------------------------------------

  /** Writes u32 `v` at byte `at` of the reply. */
  setU32(at: number, v: number): void {
    this.outv.setUint32(at, v >>> 0, this.littleEndian);
  }

  /** Writes u16 `v` at byte `at` of the reply. */
  setU16(at: number, v: number): void {
    this.outv.setUint16(at, v, this.littleEndian);
  }

  /** Writes `v` (an integer up to 2^53 - 1) as a u64 at byte `at` of the reply. */
  setU64(at: number, v: number): void {
    const lo = v % U32 >>> 0;
    const hi = Math.floor(v / U32) >>> 0;
    const le = this.littleEndian;
    this.outv.setUint32(le ? at : at + 4, lo, le);
    this.outv.setUint32(le ? at + 4 : at, hi, le);
  }

  /** A u64 from two u32 halves (values above 2^53: lock ends, OFFSET_MAX). */
  setU64Parts(at: number, hi: number, lo: number): void {
    const le = this.littleEndian;
    this.outv.setUint32(le ? at : at + 4, lo >>> 0, le);
    this.outv.setUint32(le ? at + 4 : at, hi >>> 0, le);
  }

  /** Zeroes `len` reply bytes from `at` (reserved and padding fields). */
  zero(at: number, len: number): void {
    // A loop, not Buffer.fill: fill is a call into C++ with argument checks per use, several
    // per reply (the ranges here are reply structs of tens of bytes).
    const out = this.out;
    const end = at + len;
    for (let i = at; i < end; i++) out[i] = 0;
  }

  /**
   * Writes the out header for `argBytes` of result (error: negated errno, no result). The
   * unique id is copied byte for byte, so it needs no decoding in either order.
   */
  reply(errno: number, argBytes: number, noReply: boolean): number {
    if (noReply || this.outCap < FuseOutHeader.SIZE) return 0;
    const len = FuseOutHeader.SIZE + (errno === 0 ? argBytes : 0);
    this.setU32(FuseOutHeader.LEN, len);
    this.outv.setInt32(FuseOutHeader.ERROR, -errno, this.littleEndian);
    // Two u32 moves in one fixed order keep the bytes as they are; Buffer.copy would make a
    // Uint8Array view per reply (Node 20's copy of a sub-range).
    const known = this.inLen >= FuseInHeader.UNIQUE + 8 && this.inb.length >= FuseInHeader.UNIQUE + 8;
    this.outv.setUint32(FuseOutHeader.UNIQUE, known ? this.inv.getUint32(FuseInHeader.UNIQUE, true) : 0, true);
    this.outv.setUint32(FuseOutHeader.UNIQUE + 4, known ? this.inv.getUint32(FuseInHeader.UNIQUE + 4, true) : 0, true);
    return len;
  }

  /** struct fuse_attr at `at` from StatField slots. */
  attr(at: number, st: Float64Array): void {
    // Every field is written below but flags: only it is zeroed (not the whole 88 bytes).
    this.setU32(at + FuseAttrNsec.FLAGS, 0);
    this.setU64(at + FuseAttr.INO, st[S.INO]!);
    this.setU64(at + FuseAttr.SIZE, st[S.SIZE]!);
    this.setU64(at + FuseAttr.BLOCKS, st[S.BLOCKS]!);
    this.time(at + FuseAttr.ATIME, st[S.ATIME]!);
    this.time(at + FuseAttr.MTIME, st[S.MTIME]!);
    this.time(at + FuseAttr.CTIME, st[S.CTIME]!);
    this.setU32(at + FuseAttrNsec.ATIME, st[S.ATIME_NSEC]!);
    this.setU32(at + FuseAttrNsec.MTIME, st[S.MTIME_NSEC]!);
    this.setU32(at + FuseAttrNsec.CTIME, st[S.CTIME_NSEC]!);
    this.setU32(at + FuseAttr.MODE, st[S.MODE]!);
    this.setU32(at + FuseAttr.NLINK, st[S.NLINK]!);
    this.setU32(at + FuseAttr.UID, st[S.UID]!);
    this.setU32(at + FuseAttr.GID, st[S.GID]!);
    this.setU32(at + FuseAttr.RDEV, rdevToFuse(st[S.RDEV]!));
    this.setU32(at + FuseAttrNsec.BLKSIZE, st[S.BLKSIZE]!);
  }

  /** Signed seconds: before 1970 the u64 carries the two's complement. */
  private time(at: number, sec: number): void {
    if (sec < 0) {
      this.outv.setInt32(this.littleEndian ? at + 4 : at, -1, this.littleEndian);
      this.setU32(this.littleEndian ? at : at + 4, sec >>> 0);
    } else this.setU64(at, sec);
  }

  /** struct fuse_entry_out at `at`: nodeid, validity in seconds, attributes. */
  entryOut(at: number, nodeid: number, st: Float64Array, entryValid: number, attrValid: number): void {
    // Each field of the head written once (generation and the nanoseconds are 0).
    this.setU64(at + FuseEntryOut.NODEID, nodeid);
    this.setU64(at + FuseEntryOut.GENERATION, 0);
    this.setU64(at + FuseEntryValid.ENTRY_VALID, entryValid);
    this.setU64(at + FuseEntryValid.ATTR_VALID, attrValid);
    this.setU32(at + FuseEntryValid.ENTRY_VALID_NSEC, 0);
    this.setU32(at + FuseEntryValid.ATTR_VALID_NSEC, 0);
    this.attr(at + FuseEntryOut.ATTR, st);
  }

  /** A whole fuse_attr_out reply. */
  attrOut(st: Float64Array, attrValid: number): number {
    const at = FuseOutHeader.SIZE;
    // attr_valid, attr_valid_nsec (0) and the dummy u32 (0): the 16 bytes before the attributes.
    this.setU64(at + FuseAttrOutValid.ATTR_VALID, attrValid);
    this.setU64(at + FuseAttrOutValid.ATTR_VALID_NSEC, 0);
    this.attr(at + FuseAttrOut.ATTR, st);
    return this.reply(0, FuseAttrOut.SIZE, false);
  }

  /** struct fuse_open_out at `at`: the file handle and FOPEN_* flags. */
  openOut(at: number, fh: number, openFlags: number): void {
    this.zero(at, FuseOpenOut.SIZE);
    this.setU64(at + FuseOpenOut.FH, fh);
    this.setU32(at + FuseOpenOut.OPEN_FLAGS, openFlags);
  }
}

/**
 * fuse_attr.rdev is the kernel's new_encode_dev (u32); for devices whose glibc dev_t fits in 32
 * bits (major < 4096, minor < 2^20) that is the same number. Larger ones are not representable: 0.
 */
function rdevToFuse(rdev: number): number {
  return rdev < 0x1_0000_0000 ? rdev >>> 0 : 0;
}
