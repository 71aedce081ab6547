/**
 * A directory listing for Treaddir: HostFs's getdents64 snapshot of the pinned directory
 * (bounded, `.` and `..` first), each other entry lstat'ed *in* that directory for its qid
 * (device and type: a file system mounted under the share gets its own qid range, as a walk to
 * it does). Nothing here takes a path the guest spelled.
 */
import { StatField } from '../../platform/fs-at.js';
import { errnoOf, type HostFs } from '../fs/host-fs.js';
import { P9Errno } from '../../spec/9p.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** One directory entry with what its qid needs. */
export interface P9DirEntry {
  /** The entry's name as the host file system stores it (bytes). */
  readonly name: Buffer;
  /** S_IFMT bits. */
  readonly fmt: number;
  /** st_dev of the entry's object (its qid path is per device). */
  readonly dev: number;
  /** st_ino of the entry's object (the qid path on its device). */
  readonly ino: number;
}

const scratch = new Float64Array(StatField.COUNT);

/** The entries of directory `nodeid` (EOVERFLOW above HostFs's maxDirEntries). */
export function listDir(host: HostFs, nodeid: number): P9DirEntry[] {
  const dev = host.inode(nodeid).dev;
  const out: P9DirEntry[] = [];
  for (const e of host.listDir(nodeid)) {
    const dots = e.name[0] === 0x2e && (e.name.length === 1 || (e.name.length === 2 && e.name[1] === 0x2e));
    if (dots) {
      out.push({ name: e.name, fmt: S_IFDIR, dev, ino: e.ino });
      continue;
    }
    try {
      host.statChildInto(nodeid, e.name, scratch);
    } catch (err) {
      // Removed since the listing: skipped (as readdir would after the unlink).
      if (errnoOf(err) === P9Errno.ENOENT) continue;
      throw err;
    }
    out.push({ name: e.name, fmt: scratch[StatField.MODE]! & S_IFMT, dev: scratch[StatField.DEV]!, ino: scratch[StatField.INO]! });
  }
  return out;
}
