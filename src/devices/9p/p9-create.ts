/**
 * The 9P2000.L requests that make a new object in a directory fid: Tlcreate, Tmkdir and
 * Tsymlink. Every name is created by HostFs in the directory's pinned descriptor (one component,
 * never `.`/`..`, never through a symlink), so a new object is always inside the share.
 */
import type { HostFs } from '../fs/host-fs.js';
import { StatField } from '../../platform/fs-at.js';
import { P9Errno } from '../../spec/9p.js';
import { type P9Reader, type P9Writer, p9Fail } from './p9-codec.js';
import type { FidTable } from './p9-fids.js';

/** Longest symlink target (PATH_MAX - 1): Tsymlink's bound and Treadlink's scratch. */
export const P9_SYMLINK_TARGET_MAX = 4095;

/**
 * The creating requests of one P9Server, over its HostFs, fid table and message reader/writer
 * (the request being served is read from `r`, its reply body written to `w`).
 */
export class P9Create {
  private readonly st = new Float64Array(StatField.COUNT);

  constructor(
    private readonly host: HostFs,
    private readonly fids: FidTable,
    private readonly r: P9Reader,
    private readonly w: P9Writer,
    /** Every creation refused with EROFS. */
    private readonly readOnly: boolean,
  ) {}

  private mutating(): void {
    if (this.readOnly) p9Fail(P9Errno.EROFS, 'read-only share');
  }

  /** Tlcreate: the regular file made and opened; the directory fid becomes the open file's. */
  lcreate(): void {
    const f = this.fids.get(this.r.u32());
    const name = this.r.str();
    const flags = this.r.u32();
    const mode = this.r.u32();
    this.r.u32(); // gid: files belong to the server's user
    this.mutating();
    if (f.fh >= 0 || f.openDir) p9Fail(P9Errno.EINVAL, 'fid already open');
    const made = this.host.create(f.nodeid, name, flags, mode);
    this.fids.hold(made.inode.nodeid, true);
    const dir = f.nodeid;
    f.nodeid = made.inode.nodeid;
    f.parent = dir;
    f.name = Buffer.from(name);
    f.fh = made.fh;
    this.fids.drop(dir);
    this.w.qid(this.fids.qidOf(made.stat));
    this.w.u32(0);
  }

  /** Tmkdir: the new directory's qid (no fid is made for it). */
  mkdir(): void {
    const d = this.fids.get(this.r.u32());
    const name = this.r.str();
    const mode = this.r.u32();
    this.r.u32(); // gid
    this.mutating();
    const made = this.host.mkdir(d.nodeid, name, mode);
    this.host.forget(made.inode.nodeid, 1);
    this.w.qid(this.fids.qidOf(made.stat));
  }

  /** Tsymlink: the symlink's qid; its target is stored as given. */
  symlink(): void {
    const d = this.fids.get(this.r.u32());
    const name = this.r.str();
    const target = this.r.str();
    this.r.u32(); // gid
    this.mutating();
    // The target is stored, never resolved by the host (HostFs never follows a symlink).
    if (target.length === 0 || target.length > P9_SYMLINK_TARGET_MAX || target.includes(0)) p9Fail(P9Errno.EINVAL, 'bad symlink target');
    const made = this.host.symlinkEntry(d.nodeid, name, target, this.st);
    try {
      this.w.qid(this.fids.qidOf(this.host.stat(made.nodeid)));
    } finally {
      this.host.forget(made.nodeid, 1);
    }
  }
}
