/**
 * A directory's entries read with getdents64(2) from a descriptor opened *in* the pinned
 * directory (openat(dirfd, ".", O_DIRECTORY)), so the listing is of that very directory and
 * carries the real inode numbers and d_type. Bounded: more than `maxEntries` is EOVERFLOW.
 */
import { OpenFlag, type FsAt } from '../../platform/fs-at.js';
import { Errno, check, fail } from './fs-errno.js';

/** One entry of a directory snapshot (`.` and `..` included). */
export interface DirEntry {
  /** The entry's name, as raw bytes (no NUL). */
  readonly name: Buffer;
  /** DT_* type. */
  readonly type: number;
  /** The host inode number (d_ino); never 0. */
  readonly ino: number;
}

const DT_DIR = 4;
/** struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16, d_type u8, d_name. */
const D_INO = 0;
const D_RECLEN = 16;
const D_TYPE = 18;
const D_NAME = 19;
const U32 = 0x1_0000_0000;

let scratch: Buffer | null = null;

/**
 * `.` and `..` first (as readdir(3) gives them), then the directory's other entries. Both carry
 * a non-zero inode number (glibc's readdir skips entries with d_ino 0): `..` of the shared root
 * is given the root's own (the host directory above it is not shown).
 */
export function readDirSnapshot(fsAt: FsAt, dirFd: number, selfIno: number, parentIno: number, maxEntries: number): DirEntry[] {
  const entries: DirEntry[] = [
    { name: Buffer.from('.'), type: DT_DIR, ino: selfIno },
    { name: Buffer.from('..'), type: DT_DIR, ino: parentIno },
  ];
  const fd = check(fsAt.openat(dirFd, '.', OpenFlag.RDONLY | OpenFlag.DIRECTORY | OpenFlag.NONBLOCK), 'opendir');
  scratch ??= Buffer.alloc(64 << 10);
  const buf = scratch;
  try {
    for (;;) {
      const n = check(fsAt.getdents64(fd, buf), 'getdents64');
      if (n === 0) break;
      for (let at = 0; at < n; ) {
        const reclen = buf.readUInt16LE(at + D_RECLEN);
        if (reclen === 0) fail(Errno.EIO, 'getdents64 record of length 0');
        const end = buf.indexOf(0, at + D_NAME);
        const name = buf.subarray(at + D_NAME, end < 0 || end > at + reclen ? at + reclen : end);
        const dots = name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));
        if (!dots) {
          if (entries.length >= maxEntries) fail(Errno.EOVERFLOW, `directory above ${maxEntries} entries`);
          const ino = buf.readUInt32LE(at + D_INO + 4) * U32 + buf.readUInt32LE(at + D_INO);
          entries.push({ name: Buffer.from(name), type: buf[at + D_TYPE]!, ino });
        }
        at += reclen;
      }
    }
  } finally {
    fsAt.close(fd);
  }
  return entries;
}
