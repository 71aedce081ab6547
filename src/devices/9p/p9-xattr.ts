/**
 * 9P2000.L extended attributes: Txattrwalk makes a fid holding a snapshot of one attribute's
 * value (or, for the empty name, the NUL-separated list of names) that Tread reads;
 * Txattrcreate turns a fid into one collecting a value through Twrite, set at Tclunk (size 0:
 * the attribute is removed), as QEMU's 9p does. The calls are HostFs's (the object's pinned
 * O_PATH descriptor through /proc/self/fd/N, regular files and directories only, names through
 * its XattrMap: `user.*` passthrough by default, or every name under a prefix), so 9p and
 * virtio-fs share one xattr policy. A symlink lists none and reads ENODATA.
 * Bounded: one value at most 64 KiB (XATTR_SIZE_MAX, E2BIG beyond) and all fids' values
 * together at most `budget` bytes (ENOMEM beyond).
 */
import type { HostFs } from '../fs/host-fs.js';
import { S_IFDIR, S_IFREG } from '../fs/host-fs.js';
import { P9Errno } from '../../spec/9p.js';
import { p9Fail } from './p9-codec.js';
import type { Fid } from './p9-fids.js';

/** XATTR_SIZE_MAX / XATTR_LIST_MAX (Linux). */
export const P9_XATTR_MAX_BYTES = 65536;
const EMPTY = new Uint8Array(0);

/** A fid turned into an xattr fid by TXATTRWALK (reading) or TXATTRCREATE (writing), 9P2000.L. */
export interface XattrState {
  /** The value read (walk) or being written (create). */
  readonly value: Buffer;
  /** True after TXATTRCREATE (TWRITE fills `value`, TCLUNK sets it); false after TXATTRWALK (TREAD). */
  readonly writing: boolean;
  /** create: the attribute's name; null for a walk. */
  readonly name: Buffer | null;
  /** create: the setxattr(2) flags of TXATTRCREATE (XATTR_CREATE, XATTR_REPLACE); 0 for a walk. */
  readonly flags: number;
  /** create: bytes of `value` written so far (TCLUNK wants all); walk: the whole length. */
  copied: number;
  /** Bytes of the budget this state holds. */
  readonly held: number;
}

/** The xattr fids of one P9Server (see the file comment): snapshots and pending values, within one byte budget. */
export class P9XattrOps {
  private bytes = 0;

  constructor(
    private readonly host: HostFs,
    private readonly budget = 16 << 20,
  ) {}

  /** Bytes held by every xattr fid's value now (for tests and bounds). */
  get heldBytes(): number {
    return this.bytes;
  }

  private plain(nodeid: number): boolean {
    const type = this.host.inode(nodeid).type;
    return type === S_IFREG || type === S_IFDIR;
  }

  private reserve(n: number): void {
    if (n > P9_XATTR_MAX_BYTES) p9Fail(P9Errno.E2BIG, `xattr of ${n} bytes`);
    if (this.bytes + n > this.budget) p9Fail(P9Errno.ENOMEM, 'xattr values above their budget');
    this.bytes += n;
  }

  /** Txattrwalk: the snapshot for the new fid (the value of `name`, or the list for ''). */
  read(nodeid: number, name: Buffer): XattrState {
    if (name.length === 0) {
      const list = this.plain(nodeid) ? this.host.listxattr(nodeid) : Buffer.alloc(0);
      this.reserve(list.length);
      return { value: list, writing: false, name: null, flags: 0, copied: list.length, held: list.length };
    }
    const size = this.host.getxattr(nodeid, name, EMPTY);
    this.reserve(size);
    const value = Buffer.alloc(size);
    try {
      // The attribute may have shrunk between the two calls (grown: ERANGE, answered as such).
      const n = size === 0 ? 0 : this.host.getxattr(nodeid, name, value);
      return { value: value.subarray(0, n), writing: false, name: null, flags: 0, copied: n, held: size };
    } catch (e) {
      this.bytes -= size;
      throw e;
    }
  }

  /** Txattrcreate: the state collecting `size` bytes of `name`. */
  create(nodeid: number, name: Buffer, size: number, flags: number): XattrState {
    if (name.length === 0 || name.length > 255 || name.includes(0)) p9Fail(P9Errno.EINVAL, 'bad xattr name');
    if ((flags & ~3) !== 0) p9Fail(P9Errno.EINVAL, `xattr flags ${flags}`);
    if (!this.plain(nodeid)) p9Fail(P9Errno.EPERM, 'no xattrs on a symlink or special file');
    this.reserve(size);
    return { value: Buffer.alloc(size), writing: true, name: Buffer.from(name), flags, copied: 0, held: size };
  }

  /** Tread of a walk fid: bytes from `offset` into `dst`. */
  readInto(s: XattrState, offset: number, dst: Buffer, at: number, count: number): number {
    if (s.writing) p9Fail(P9Errno.EBADF, 'read of an xattr create fid');
    if (offset >= s.value.length) return 0;
    return s.value.copy(dst, at, offset, offset + Math.min(count, s.value.length - offset));
  }

  /** Twrite into a create fid: at most up to the size given at Txattrcreate. */
  write(s: XattrState, offset: number, src: Buffer, at: number, count: number): number {
    if (!s.writing) p9Fail(P9Errno.EBADF, 'write to an xattr walk fid');
    if (offset > s.value.length) p9Fail(P9Errno.EINVAL, 'xattr write past its size');
    const n = Math.min(count, s.value.length - offset);
    src.copy(s.value, offset, at, at + n);
    s.copied += n;
    return n;
  }

  /** Tclunk of an xattr fid: a create fid sets (or, size 0, removes) the attribute. */
  clunk(f: Fid, s: XattrState): void {
    this.bytes -= s.held;
    if (!s.writing) return;
    if (s.copied !== s.value.length) p9Fail(P9Errno.EINVAL, 'xattr clunked before its value was written');
    if (s.value.length === 0) this.host.removexattr(f.nodeid, s.name!);
    else this.host.setxattr(f.nodeid, s.name!, s.value, s.flags);
  }

  /** Every value dropped (session end). */
  clear(): void {
    this.bytes = 0;
  }
}
