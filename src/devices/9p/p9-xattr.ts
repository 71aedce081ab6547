/**
 * 9P2000.L extended attributes: Txattrwalk makes a fid holding a snapshot of one attribute's
 * value (or, for the empty name, the NUL-separated list of names) that Tread reads;
 * Txattrcreate turns a fid into one collecting a value through Twrite, set at Tclunk (size 0:
 * the attribute is removed), as QEMU's 9p does. The calls go through the object's pinned O_PATH
 * descriptor (native xattrs.c via /proc/self/fd/N), for regular files and directories only
 * (a symlink's xattrs would need following it: none are listed, none can be read or set).
 * Bounded: one value at most 64 KiB (XATTR_SIZE_MAX, E2BIG beyond) and all fids' values
 * together at most `budget` bytes (ENOMEM beyond).
 */
import type { HostFs } from '../fs/host-fs.js';
import { S_IFDIR, S_IFREG } from '../fs/host-fs.js';
import { PlatformError } from '../../platform/platform-error.js';
import { type Xattrs, xattrErrno } from '../../platform/xattrs.js';
import { P9Errno } from '../../spec/9p.js';
import { P9Failure, p9Fail } from './p9-codec.js';
import type { Fid } from './p9-fids.js';

/** XATTR_SIZE_MAX / XATTR_LIST_MAX (Linux). */
export const P9_XATTR_MAX_BYTES = 65536;
const EMPTY = new Uint8Array(0);

export interface XattrState {
  /** The value read (walk) or being written (create). */
  readonly value: Buffer;
  readonly writing: boolean;
  /** create: the attribute's name, setxattr flags, bytes written so far. */
  readonly name: Buffer | null;
  readonly flags: number;
  copied: number;
  /** Bytes of the budget this state holds. */
  readonly held: number;
}

export class P9XattrOps {
  private bytes = 0;

  constructor(
    private readonly host: HostFs,
    private readonly calls: Xattrs | null,
    private readonly budget = 16 << 20,
  ) {}

  /** Bytes held by every xattr fid's value now (for tests and bounds). */
  get heldBytes(): number {
    return this.bytes;
  }

  private fdOf(nodeid: number): number | null {
    const inode = this.host.inode(nodeid);
    return inode.type === S_IFREG || inode.type === S_IFDIR ? inode.fd : null;
  }

  private native(): Xattrs {
    if (this.calls === null) p9Fail(P9Errno.EOPNOTSUPP, 'no xattr calls (native addon without them)');
    return this.calls;
  }

  private take(n: number): Buffer {
    if (n > P9_XATTR_MAX_BYTES) p9Fail(P9Errno.E2BIG, `xattr of ${n} bytes`);
    if (this.bytes + n > this.budget) p9Fail(P9Errno.ENOMEM, 'xattr values above their budget');
    this.bytes += n;
    return Buffer.alloc(n);
  }

  /** Txattrwalk: the snapshot for the new fid (the value of `name`, or the list for ''). */
  read(nodeid: number, name: Buffer): XattrState {
    const x = this.native();
    const fd = this.fdOf(nodeid);
    if (fd === null) {
      if (name.length === 0) return { value: Buffer.alloc(0), writing: false, name: null, flags: 0, copied: 0, held: 0 };
      p9Fail(P9Errno.ENODATA, 'no xattrs on a symlink or special file');
    }
    const call = name.length === 0 ? (dst: Uint8Array): number => x.list(fd, dst) : (dst: Uint8Array): number => x.get(fd, name, dst);
    let size: number;
    try {
      size = call(EMPTY);
    } catch (e) {
      throw failure(e);
    }
    const value = this.take(size);
    try {
      // The attribute may have shrunk between the two calls (grown: ERANGE, answered as such).
      const n = call(value);
      return { value: value.subarray(0, n), writing: false, name: null, flags: 0, copied: n, held: value.length };
    } catch (e) {
      this.bytes -= value.length;
      throw failure(e);
    }
  }

  /** Txattrcreate: the state collecting `size` bytes of `name`. */
  create(nodeid: number, name: Buffer, size: number, flags: number): XattrState {
    this.native();
    if (name.length === 0 || name.length > 255 || name.includes(0)) p9Fail(P9Errno.EINVAL, 'bad xattr name');
    if ((flags & ~3) !== 0) p9Fail(P9Errno.EINVAL, `xattr flags ${flags}`);
    if (this.fdOf(nodeid) === null) p9Fail(P9Errno.EPERM, 'no xattrs on a symlink or special file');
    const value = this.take(size);
    return { value, writing: true, name: Buffer.from(name), flags, copied: 0, held: value.length };
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
    const x = this.native();
    const fd = this.fdOf(f.nodeid);
    if (fd === null) p9Fail(P9Errno.EPERM, 'no xattrs on a symlink or special file');
    try {
      if (s.value.length === 0) x.remove(fd, s.name!);
      else x.set(fd, s.name!, s.value, s.flags);
    } catch (e) {
      throw failure(e);
    }
  }

  /** Every value dropped (session end). */
  clear(): void {
    this.bytes = 0;
  }
}

/** A platform error as the errno the guest gets. */
function failure(e: unknown): unknown {
  return e instanceof PlatformError ? new P9Failure(xattrErrno(e), e.message) : e;
}
