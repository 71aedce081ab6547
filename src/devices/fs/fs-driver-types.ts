/**
 * The types of the virtio-fs driver's API (5.11): what FUSE replies decode to, the driver's options,
 * and the error a FUSE reply with a non-zero errno becomes.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** A FUSE reply with an error (the negated errno of the out header). */
export class FuseReplyError extends VirtioError {
  constructor(
    /** The FUSE_* opcode of the failed request. */
    readonly opcode: number,
    /** The positive errno (ENOENT, EACCES, ...): the out header's error, negated. */
    readonly errno: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `FUSE opcode ${opcode} failed with errno ${errno}`);
  }
}

/** File attributes as FUSE returns them (struct fuse_attr). */
export interface FsAttr {
  /** Inode number. */
  ino: number;
  /** Size in bytes. */
  size: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  /** Last access time, seconds. */
  atime: number;
  /** Last modification time, seconds. */
  mtime: number;
  /** Last status change time, seconds. */
  ctime: number;
  /** Nanoseconds of the access time. */
  atimeNsec: number;
  /** Nanoseconds of the modification time. */
  mtimeNsec: number;
  /** Nanoseconds of the status change time. */
  ctimeNsec: number;
  /** File type and permission bits (st_mode). */
  mode: number;
  /** Number of hard links. */
  nlink: number;
  /** Owner user id. */
  uid: number;
  /** Owner group id. */
  gid: number;
  /** Device number of a device file. */
  rdev: number;
}

/** A looked-up name (struct fuse_entry_out): its node id, cache lifetimes and attributes. */
export interface FsEntry {
  /** The node id the device gave the file (for later requests). */
  nodeid: bigint;
  /** How long the name may be cached, seconds. */
  entryValid: number;
  /** How long the attributes may be cached, seconds. */
  attrValid: number;
  /** The file's attributes. */
  attr: FsAttr;
}

/** One directory entry from READDIR (struct fuse_dirent), or READDIRPLUS with its entry. */
export interface FsDirEntry {
  /** Inode number. */
  ino: number;
  /** The entry's name. */
  name: string;
  /** The entry's file type (DT_*). */
  type: number;
  /** READDIRPLUS: the entry (the driver holds a lookup of it; nodeid 0 for `.` and `..`). */
  entry?: FsEntry;
}

/**
 * A POSIX record lock (struct fuse_file_lock): type F_RDLCK / F_WRLCK / F_UNLCK, the byte range and
 * the owner's pid.
 */
export interface FsLock {
  /** F_RDLCK, F_WRLCK or F_UNLCK (the host's fcntl values). */
  type: number;
  /** First byte of the range (file offset). */
  start: number;
  /** Inclusive; -1 means to the end of the file (OFFSET_MAX). */
  end: number;
  /** Process id of the lock owner; in a GETLK answer, that of a conflicting lock. */
  pid: number;
}

/** Options of FsDriver. */
export interface FsDriverOptions {
  /** Request queues to use (driver/fs/2): 1..num_request_queues. Default: all the device offers. */
  readonly requestQueues?: number;
  /** Speak big-endian FUSE (a big-endian guest). Default false. */
  readonly bigEndian?: boolean;
  /** Caller ids put in every fuse_in_header. Default: this process's. */
  readonly uid?: number;
  /** Group id put in every fuse_in_header. Default: this process's. */
  readonly gid?: number;
}

