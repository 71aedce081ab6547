/**
 * The fids of one 9P session over the shared host file layer. A fid names an inode HostFs
 * holds; the session keeps exactly one HostFs lookup per inode its fids reach and counts the
 * fids itself, so any number of fids (clones, walks) costs one descriptor per object. The
 * table is bounded (EMFILE beyond `maxFids`), and so is the memory of directory snapshots.
 */
import type * as fs from 'node:fs';
import type { HostFs } from '../fs/host-fs.js';
import { P9Errno, P9QidType } from '../../spec/9p.js';
import { type Qid, p9Fail } from './p9-codec.js';
import type { P9DirEntry } from './p9-listing.js';
import type { XattrState } from './p9-xattr.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** qid.path: ino in the low 48 bits, a per-device number above (QEMU's qid path remapping idea). */
const DEV_SHIFT = 2 ** 48;
const MAX_DEVICES = 31;

/** One 9P fid of a session: the host inode it names and what it has open. */
export interface Fid {
  /** The HostFs node id of the object the fid names. */
  nodeid: number;
  /** The directory the fid's object was reached in, and the name there (0 / null: the root). */
  parent: number;
  /** The object's name in `parent`; null for the root. */
  name: Buffer | null;
  /** HostFs file handle once Tlopen'ed or Tlcreate'd (a regular file), else -1. */
  fh: number;
  /** Tlopen'ed directory: Treaddir reads `entries` (listed when a read starts at offset 0). */
  openDir: boolean;
  /** The directory snapshot Treaddir reads from; null until a read at offset 0 lists it. */
  entries: P9DirEntry[] | null;
  /** An xattr fid (Txattrwalk's snapshot or Txattrcreate's value being written), else null. */
  xattr: XattrState | null;
  /**
   * The uid its Tattach named (n_uname; walks and xattr walks pass it on): the owner of the
   * objects created through the fid (p9-create.ts). -1 when the attach named none (~0).
   */
  readonly uid: number;
}

export interface FidTableLimits {
  /** Fids at once (default 65536). */
  readonly maxFids?: number;
  /** Directory entries held by all fids' snapshots together (default 1,000,000). */
  readonly maxSnapshotEntries?: number;
}

/**
 * The fids of one 9P session (virtio-9p, device id 9), bounded in count (EMFILE) and in directory
 * snapshot entries (ENFILE); it keeps one HostFs lookup per inode its fids reach.
 */
export class FidTable {
  private readonly fids = new Map<number, Fid>();
  /** Fids per nodeid; HostFs holds one lookup for each key. */
  private readonly refs = new Map<number, number>();
  private readonly devs = new Map<number, number>();
  private snapshotEntries = 0;
  private readonly maxFids: number;
  /** Directory entries all fids' snapshots may hold together; a listing beyond fails with ENFILE. */
  readonly maxSnapshotEntries: number;

  constructor(
    private readonly host: HostFs,
    limits: FidTableLimits = {},
  ) {
    this.maxFids = limits.maxFids ?? 65536;
    this.maxSnapshotEntries = limits.maxSnapshotEntries ?? 1_000_000;
    this.devs.set(host.root.dev, 0);
  }

  /** Fids in use. */
  get size(): number {
    return this.fids.size;
  }

  /** The fid `n`, or EBADF for one never attached or walked to (or clunked). */
  get(n: number): Fid {
    const f = this.fids.get(n);
    if (f === undefined) p9Fail(P9Errno.EBADF, `fid ${n} unknown`);
    return f;
  }

  /** Whether fid number `n` is in use. */
  has(n: number): boolean {
    return this.fids.has(n);
  }

  /** Fails unless `n` may become a new fid (free and room in the table). */
  checkNew(n: number): void {
    if (this.fids.has(n)) p9Fail(P9Errno.EBADF, `fid ${n} in use`);
    if (this.fids.size >= this.maxFids) p9Fail(P9Errno.EMFILE, `fid table full (${this.maxFids})`);
  }

  /**
   * One more fid reference to `nodeid`. `fromLookup`: HostFs just counted a lookup for it,
   * which is kept for the first reference and given back for the others.
   */
  hold(nodeid: number, fromLookup: boolean): void {
    const n = this.refs.get(nodeid) ?? 0;
    if (n > 0 && fromLookup) this.host.forget(nodeid, 1);
    this.refs.set(nodeid, n + 1);
  }

  /** One fid reference fewer; the last gives HostFs's lookup back. */
  drop(nodeid: number): void {
    const n = this.refs.get(nodeid) ?? 0;
    if (n <= 1) {
      this.refs.delete(nodeid);
      this.host.forget(nodeid, 1);
    } else this.refs.set(nodeid, n - 1);
  }

  /** Adds fid `n` for `nodeid` of the attach uid `uid` (-1: none); the caller holds the reference already. */
  add(n: number, nodeid: number, parent: number, name: Buffer | null, uid: number): Fid {
    const f: Fid = { nodeid, parent, name, fh: -1, openDir: false, entries: null, xattr: null, uid };
    this.fids.set(n, f);
    return f;
  }

  /** Tclunk: the handle released, the reference dropped, the fid gone. */
  clunk(n: number): void {
    const f = this.get(n);
    this.fids.delete(n);
    this.setEntries(f, null);
    try {
      if (f.fh >= 0) this.host.release(f.fh);
    } finally {
      this.drop(f.nodeid);
    }
  }

  /** Replaces a fid's directory snapshot, within the budget of all snapshots (ENFILE beyond). */
  setEntries(f: Fid, entries: P9DirEntry[] | null): void {
    const now = f.entries?.length ?? 0;
    const next = entries?.length ?? 0;
    if (this.snapshotEntries - now + next > this.maxSnapshotEntries) p9Fail(P9Errno.ENFILE, 'directory snapshots above their budget');
    this.snapshotEntries += next - now;
    f.entries = entries;
  }

  /** After a rename: fids that reached `oldName` in `oldDir` now reach `newName` in `newDir`. */
  renamed(oldDir: number, oldName: Buffer, newDir: number, newName: Buffer): void {
    for (const f of this.fids.values()) {
      if (f.parent === oldDir && f.name !== null && f.name.equals(oldName)) {
        f.parent = newDir;
        f.name = Buffer.from(newName);
      }
    }
  }

  /** Every fid forgotten (Tversion, device reset); the caller clears HostFs. */
  clear(): void {
    this.fids.clear();
    this.refs.clear();
    this.snapshotEntries = 0;
  }

  /** The qid of a host object: type from its mode, path from (dev, ino), version QEMU's way. */
  qidOf(st: fs.Stats): Qid {
    const fmt = st.mode & S_IFMT;
    let dev = this.devs.get(st.dev);
    if (dev === undefined) {
      // Another file system mounted inside the share: its own range of qid paths.
      if (this.devs.size > MAX_DEVICES) p9Fail(P9Errno.EOVERFLOW, 'too many file systems under the share');
      dev = this.devs.size;
      this.devs.set(st.dev, dev);
    }
    const path = (st.ino % DEV_SHIFT) + dev * DEV_SHIFT;
    const type = fmt === S_IFDIR ? P9QidType.DIR : fmt === S_IFLNK ? P9QidType.SYMLINK : P9QidType.FILE;
    const version = fmt === S_IFDIR || fmt === S_IFLNK ? 0 : (Math.floor(st.mtimeMs / 1000) ^ (st.size * 256)) >>> 0;
    return { type, version, path };
  }

  /** The qid of a directory entry (no version: entries are not opened). */
  entryQid(e: P9DirEntry): Qid {
    return this.qidOf({ mode: e.fmt, dev: e.dev, ino: e.ino, mtimeMs: 0, size: 0 } as fs.Stats);
  }
}
