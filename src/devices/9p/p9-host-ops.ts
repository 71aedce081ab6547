/**
 * Host operations 9P needs that the shared host file layer (HostFs) does not offer yet. Each
 * keeps HostFs's rules: a name is one validated component (HostFs.checkName) looked up *in* a
 * pinned directory descriptor through `/proc/self/fd/N/name` (the directory cannot be swapped
 * under us; the last component is never followed), and an object reached by name is checked to
 * be the inode the guest's fid holds. Nothing here takes a path the guest spelled.
 */
import * as fs from 'node:fs';
import { HostFs, S_IFDIR, S_IFLNK, errnoOf } from '../fs/host-fs.js';
import { P9Errno } from '../../spec/9p.js';
import { P9Failure, p9Fail } from './p9-codec.js';

const S_IFMT = 0o170000;
/** Longest symlink target accepted (PATH_MAX - 1). */
const SYMLINK_TARGET_MAX = 4095;
const NUL = 0;

/** The errno an operation failed with: ours, HostFs's, or a Node fs error's (EIO otherwise). */
export function p9ErrnoOf(e: unknown): number {
  if (e instanceof P9Failure) return e.errno;
  return errnoOf(e);
}

function procPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** `/proc/self/fd/<dir fd>/<name>` for a checked name in a directory inode. */
export function childPath(host: HostFs, dirNodeid: number, name: Buffer): Buffer {
  const dir = host.inode(dirNodeid);
  if (dir.type !== S_IFDIR) p9Fail(P9Errno.ENOTDIR, `nodeid ${dirNodeid} is not a directory`);
  HostFs.checkName(name);
  return Buffer.concat([Buffer.from(`${procPath(dir.fd)}/`), name]);
}

/** lstat of `name` in the directory (the name itself, never what a symlink points at). */
export function lstatChild(host: HostFs, dirNodeid: number, name: Buffer): fs.Stats {
  return fs.lstatSync(childPath(host, dirNodeid, name));
}

/** Fails ENOENT unless `name` in `dirNodeid` is still the inode `nodeid` (it may have been renamed away). */
function checkNamed(host: HostFs, dirNodeid: number, name: Buffer, nodeid: number): Buffer {
  const path = childPath(host, dirNodeid, name);
  const st = fs.lstatSync(path);
  const inode = host.inode(nodeid);
  if (st.dev !== inode.dev || st.ino !== inode.ino) p9Fail(P9Errno.ENOENT, 'the name no longer refers to the fid');
  return path;
}

/**
 * symlink(2) of `target` as `name` in the directory. The target is stored, never resolved by
 * the host (HostFs never follows a symlink), so any text the guest gives is harmless.
 * moves onto HostFs.symlink once it has one
 */
export function symlinkIn(host: HostFs, dirNodeid: number, name: Buffer, target: Buffer): void {
  if (target.length === 0 || target.length > SYMLINK_TARGET_MAX || target.includes(NUL)) p9Fail(P9Errno.EINVAL, 'bad symlink target');
  fs.symlinkSync(target, childPath(host, dirNodeid, name));
}

/**
 * link(2): a new name in `toDir` for the object the fid `nodeid` reached as `fromName` in
 * `fromDir`. link(2) does not follow the last component, and both names are in pinned
 * directories: the new link is inside the share and is of an object already inside it.
 * moves onto HostFs.link once it has one
 */
export function linkIn(host: HostFs, fromDir: number, fromName: Buffer, nodeid: number, toDir: number, toName: Buffer): void {
  const from = checkNamed(host, fromDir, fromName, nodeid);
  if (host.inode(nodeid).type === S_IFDIR) p9Fail(P9Errno.EPERM, 'hard link of a directory');
  fs.linkSync(from, childPath(host, toDir, toName));
}

/**
 * readlink(2) of the symlink inode `nodeid` (reached as `name` in `dirNodeid`).
 * moves onto HostFs.readlink once it has one
 */
export function readlinkOf(host: HostFs, dirNodeid: number, name: Buffer, nodeid: number): Buffer {
  if (host.inode(nodeid).type !== S_IFLNK) p9Fail(P9Errno.EINVAL, 'readlink of something that is not a symlink');
  const path = checkNamed(host, dirNodeid, name, nodeid);
  return fs.readlinkSync(path, { encoding: 'buffer' });
}

/**
 * unlink or rmdir of `name` in `dirNodeid` after checking it is still the fid's inode (Tremove).
 * moves onto HostFs.remove once it has one
 */
export function removeNamed(host: HostFs, dirNodeid: number, name: Buffer, nodeid: number): void {
  checkNamed(host, dirNodeid, name, nodeid);
  if (host.inode(nodeid).type === S_IFDIR) host.rmdir(dirNodeid, name);
  else host.unlink(dirNodeid, name);
}

/**
 * fsync of a directory inode: reopened read-only through its pinned descriptor (a directory
 * never has a 9P file handle of its own here).
 * moves onto HostFs.fsyncdir once it has one
 */
export function fsyncDir(host: HostFs, nodeid: number): void {
  const inode = host.inode(nodeid);
  if (inode.type !== S_IFDIR) p9Fail(P9Errno.EBADF, 'fsync of a fid that is not open');
  const fd = fs.openSync(procPath(inode.fd), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** One directory entry with what its qid needs. */
export interface P9DirEntry {
  readonly name: Buffer;
  /** S_IFMT bits (0 when the entry vanished between listing and lstat). */
  readonly fmt: number;
  readonly dev: number;
  readonly ino: number;
}

/**
 * The entries of a directory inode, `.` and `..` first, each lstat'ed in the pinned directory
 * for its qid. Bounded by `max` entries (EOVERFLOW beyond).
 * moves onto HostFs.opendir once it carries inode numbers
 */
export function listDir(host: HostFs, nodeid: number, max: number): P9DirEntry[] {
  const inode = host.inode(nodeid);
  if (inode.type !== S_IFDIR) p9Fail(P9Errno.ENOTDIR, 'readdir of a non-directory');
  const self = fs.fstatSync(inode.fd);
  const entries: P9DirEntry[] = [{ name: Buffer.from('.'), fmt: S_IFDIR, dev: self.dev, ino: self.ino }];
  // `..` of the shared folder is the folder itself: the guest never learns what is above it.
  let up = self;
  if (nodeid !== host.root.nodeid) {
    try {
      up = fs.statSync(`${procPath(inode.fd)}/..`);
    } catch {
      up = self;
    }
  }
  entries.push({ name: Buffer.from('..'), fmt: S_IFDIR, dev: up.dev, ino: up.ino });
  const prefix = `${procPath(inode.fd)}/`;
  // Buffer names keep bytes that are not UTF-8 intact (the typings only admit string encodings).
  const d = fs.opendirSync(`${procPath(inode.fd)}`, { encoding: 'buffer' as BufferEncoding });
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      if (entries.length >= max) p9Fail(P9Errno.EOVERFLOW, `directory above ${max} entries`);
      const name = e.name as unknown as Buffer;
      let st: fs.Stats | null = null;
      try {
        st = fs.lstatSync(Buffer.concat([Buffer.from(prefix), name]));
      } catch (err) {
        // Removed since the listing: skipped (as readdir would after the unlink).
        if (errnoOf(err) === P9Errno.ENOENT) continue;
        throw err;
      }
      entries.push({ name, fmt: st.mode & S_IFMT, dev: st.dev, ino: st.ino });
    }
  } finally {
    d.closeSync();
  }
  return entries;
}
