/**
 * The 9P2000.L requests that make a new object in a directory fid: Tlcreate, Tmkdir, Tsymlink
 * and Tmknod. Every name is created by HostFs in the directory's pinned descriptor (one
 * component, never `.`/`..`, never through a symlink), so a new object is always inside the
 * share; Tmknod makes FIFOs, sockets and regular files only (no host device reachable).
 *
 * Whose a new object is: each of these requests carries a gid (the guest's fsgid, or the
 * directory's group under setgid: Linux fs/9p v9fs_get_fsgid_for_create), and the fid's
 * Tattach carried n_uname (Linux attaches once per fsuid: fs/9p/fid.c). As QEMU's
 * security_model=passthrough (local_set_cred_passthrough: fchownat to the fid's uid and the
 * request's gid after creating), the object is then given to them: HostFs's setCaller /
 * chownToCaller, the same path virtio-fs takes with the FUSE header's ids, through the uid/gid
 * maps, and only when this process may chown (it runs as root); otherwise the object stays the
 * server's user's (QEMU's security_model=none). A fid attached without n_uname (~0) changes
 * no owner; a gid of ~0 (the kernel's INVALID_GID) keeps the group.
 */
import type { HostFs } from '../fs/host-fs.js';
import { StatField } from '../../platform/fs-at.js';
import { P9_NONUNAME, P9Errno } from '../../spec/9p.js';
import { type P9Reader, type P9Writer, p9Fail } from './p9-codec.js';
import type { Fid, FidTable } from './p9-fids.js';

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

  /**
   * `make` with HostFs's caller set to the owner a new object gets (the file comment): the uid
   * fid `f` was attached with and the request's `gid`; reset afterwards, so no other request
   * (a Tlink, say) changes an owner.
   */
  private owned<T>(f: Fid, gid: number, make: () => T): T {
    this.host.setCaller(f.uid, gid === P9_NONUNAME ? -1 : gid);
    try {
      return make();
    } finally {
      this.host.setCaller(-1, -1);
    }
  }

  /** Tlcreate: the regular file made and opened; the directory fid becomes the open file's. */
  lcreate(): void {
    const f = this.fids.get(this.r.u32());
    const name = this.r.str();
    const flags = this.r.u32();
    const mode = this.r.u32();
    const gid = this.r.u32();
    this.mutating();
    if (f.fh >= 0 || f.openDir) p9Fail(P9Errno.EINVAL, 'fid already open');
    // Without O_EXCL an existing file is opened: HostFs changes the owner of a file it made only.
    const made = this.owned(f, gid, () => this.host.create(f.nodeid, name, flags, mode));
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
    const gid = this.r.u32();
    this.mutating();
    const made = this.owned(d, gid, () => this.host.mkdir(d.nodeid, name, mode));
    this.host.forget(made.inode.nodeid, 1);
    this.w.qid(this.fids.qidOf(made.stat));
  }

  /** Tsymlink: the symlink's qid; its target is stored as given. */
  symlink(): void {
    const d = this.fids.get(this.r.u32());
    const name = this.r.str();
    const target = this.r.str();
    const gid = this.r.u32();
    this.mutating();
    // The target is stored, never resolved by the host (HostFs never follows a symlink).
    if (target.length === 0 || target.length > P9_SYMLINK_TARGET_MAX || target.includes(0)) p9Fail(P9Errno.EINVAL, 'bad symlink target');
    this.answerMade(this.owned(d, gid, () => this.host.symlinkEntry(d.nodeid, name, target, this.st)).nodeid);
  }

  /**
   * Tmknod (Linux net/9p/client.c p9_client_mknod_dotl: dfid[4] name[s] mode[4] major[4]
   * minor[4] gid[4], answered qid[13]): a FIFO, a socket, or a regular file (no type bits, as
   * mknod(2)), through HostFs's mknodEntry, which refuses character and block devices (EPERM:
   * the guest never reaches a host device through the share) and directories or symlinks
   * (EINVAL: Tmkdir and Tsymlink make those). The qid is a file's (QEMU's stat_to_qid marks
   * directories and symlinks only).
   */
  mknod(): void {
    const d = this.fids.get(this.r.u32());
    const name = this.r.str();
    const mode = this.r.u32();
    this.r.u32(); // major
    this.r.u32(); // minor
    const gid = this.r.u32();
    this.mutating();
    // major and minor name a device, and HostFs makes none: mknod(2) ignores rdev for the rest.
    this.answerMade(this.owned(d, gid, () => this.host.mknodEntry(d.nodeid, name, mode, 0, this.st)).nodeid);
  }

  /** The qid of an object just made (its HostFs lookup given back: no fid names it). */
  private answerMade(nodeid: number): void {
    try {
      this.w.qid(this.fids.qidOf(this.host.stat(nodeid)));
    } finally {
      this.host.forget(nodeid, 1);
    }
  }
}
