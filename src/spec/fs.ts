import { defineConfigLayout } from './config-layout.js';

/**
 * virtio-fs (5.11) and the FUSE wire protocol it carries (Linux include/uapi/linux/fuse.h, the
 * layouts virtiofsd speaks). All fields little-endian on a little-endian driver; offsets in bytes.
 */

/** 5.11.2: queue 0 is hiprio, 1.. are request queues. */
export const FS_HIPRIO_QUEUE = 0;
/** 5.11.2: the first request queue (without VIRTIO_FS_F_NOTIFICATION). */
export const FS_REQUEST_QUEUE = 1;

/** 5.11.4 struct virtio_fs_config: tag[36], num_request_queues le32, notify_buf_size le32. */
export const FsConfig = { TAG: 0, TAG_BYTES: 36, NUM_REQUEST_QUEUES: 36, NOTIFY_BUF_SIZE: 40, SIZE: 44 } as const;

/**
 * The numeric fields of struct virtio_fs_config (the tag is bytes, encoded by the device itself).
 * notify_buf_size exists only with VIRTIO_FS_F_NOTIFICATION (5.11.4).
 */
export const FS_CONFIG_LAYOUT = defineConfigLayout(FsConfig.SIZE, [
  { name: 'numRequestQueues', offset: FsConfig.NUM_REQUEST_QUEUES, width: 4, feature: null, access: 'ro' },
  { name: 'notifyBufSize', offset: FsConfig.NOTIFY_BUF_SIZE, width: 4, feature: 1n << 0n, access: 'ro' },
]);
/** The field names of FS_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type FsConfigField = (typeof FS_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.11.3 feature bits. */
export const FsFeatureBit = { NOTIFICATION: 0 } as const;

/** FUSE protocol version this driver speaks (7.31: what Linux 5.10 and QEMU 7.2's virtiofsd know). */
export const FUSE_KERNEL_VERSION = 7;
/** FUSE minor version this driver speaks (31). */
export const FUSE_KERNEL_MINOR_VERSION = 31;
/** The root inode's node id. */
export const FUSE_ROOT_ID = 1;

/** FUSE request opcodes (fuse_in_header.opcode, Linux include/uapi/linux/fuse.h FUSE_*). */
export const FuseOpcode = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
} as const;
export type FuseOpcode = (typeof FuseOpcode)[keyof typeof FuseOpcode];

/** struct fuse_in_header: len u32, opcode u32, unique u64, nodeid u64, uid, gid, pid u32, total_extlen u16, padding u16. */
export const FuseInHeader = { LEN: 0, OPCODE: 4, UNIQUE: 8, NODEID: 16, UID: 24, GID: 28, PID: 32, SIZE: 40 } as const;
/** struct fuse_out_header: len u32, error i32 (negated errno), unique u64. */
export const FuseOutHeader = { LEN: 0, ERROR: 4, UNIQUE: 8, SIZE: 16 } as const;

/** struct fuse_init_in (the 16-byte form of minor < 36): major, minor, max_readahead, flags. */
export const FuseInitIn = { MAJOR: 0, MINOR: 4, MAX_READAHEAD: 8, FLAGS: 12, SIZE: 16 } as const;
/** struct fuse_init_out (64 bytes). */
export const FuseInitOut = { MAJOR: 0, MINOR: 4, MAX_READAHEAD: 8, FLAGS: 12, MAX_BACKGROUND: 16, CONGESTION_THRESHOLD: 18, MAX_WRITE: 20, TIME_GRAN: 24, MAX_PAGES: 28, SIZE: 64 } as const;

/** struct fuse_attr (88 bytes). */
export const FuseAttr = { INO: 0, SIZE: 8, BLOCKS: 16, ATIME: 24, MTIME: 32, CTIME: 40, MODE: 60, NLINK: 64, UID: 68, GID: 72, RDEV: 76, BLKSIZE: 80, BYTES: 88 } as const;
/** struct fuse_entry_out: nodeid, generation, entry_valid, attr_valid u64, two nsec u32, attr. */
export const FuseEntryOut = { NODEID: 0, GENERATION: 8, ATTR: 40, SIZE: 128 } as const;
/** struct fuse_attr_out: attr_valid u64, attr_valid_nsec u32, dummy u32, attr. */
export const FuseAttrOut = { ATTR: 16, SIZE: 104 } as const;
/** struct fuse_getattr_in: getattr_flags u32, dummy u32, fh u64. */
export const FuseGetattrIn = { SIZE: 16 } as const;
/** struct fuse_open_in: flags u32, open_flags u32. */
export const FuseOpenIn = { FLAGS: 0, SIZE: 8 } as const;
/** struct fuse_create_in: flags, mode, umask, open_flags u32; then the name. */
export const FuseCreateIn = { FLAGS: 0, MODE: 4, UMASK: 8, SIZE: 16 } as const;
/** struct fuse_open_out: fh u64, open_flags u32, padding u32. */
export const FuseOpenOut = { FH: 0, OPEN_FLAGS: 8, SIZE: 16 } as const;
/** struct fuse_read_in: fh u64, offset u64, size u32, read_flags u32, lock_owner u64, flags u32, padding u32. */
export const FuseReadIn = { FH: 0, OFFSET: 8, SIZE_FIELD: 16, SIZE: 40 } as const;
/** struct fuse_write_in: the same layout as fuse_read_in (size, write_flags); the data follows. */
export const FuseWriteIn = { FH: 0, OFFSET: 8, SIZE_FIELD: 16, SIZE: 40 } as const;
/** struct fuse_write_out: size u32, padding u32. */
export const FuseWriteOut = { SIZE_FIELD: 0, SIZE: 8 } as const;
/** struct fuse_release_in: fh u64, flags u32, release_flags u32, lock_owner u64. */
export const FuseReleaseIn = { FH: 0, FLAGS: 8, SIZE: 24 } as const;
/** struct fuse_forget_in: nlookup u64. */
export const FuseForgetIn = { NLOOKUP: 0, SIZE: 8 } as const;
/** struct fuse_dirent: ino u64, off u64, namelen u32, type u32, name (padded to 8). */
export const FuseDirent = { INO: 0, OFF: 8, NAMELEN: 16, TYPE: 20, NAME: 24 } as const;

/** struct fuse_init_out size for a driver of minor < 23 (FUSE_COMPAT_22_INIT_OUT_SIZE). */
export const FUSE_COMPAT_22_INIT_OUT_SIZE = 24;
/** fuse_init_in/out flags this device understands (fuse.h FUSE_*). */
export const FuseInitFlag = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  ATOMIC_O_TRUNC: 1 << 3,
  BIG_WRITES: 1 << 5,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  /** The guest kernel applies no umask (the server does, or the parent's default ACL). */
  DONT_MASK: 1 << 11,
  /** POSIX ACLs in system.posix_acl_* xattrs; the guest kernel enforces them (default_permissions). */
  POSIX_ACL: 1 << 20,
  /** fuse_setxattr_in carries setxattr_flags (FUSE_SETXATTR_ACL_KILL_SGID). */
  SETXATTR_EXT: 1 << 29,
} as const;
/** fuse_attr field offsets beyond FuseAttr: the nanosecond parts, blksize and flags. */
export const FuseAttrNsec = { ATIME: 48, MTIME: 52, CTIME: 56, BLKSIZE: 80, FLAGS: 84 } as const;
/** fuse_entry_out: entry_valid and attr_valid (u64 seconds) and their u32 nanoseconds. */
export const FuseEntryValid = { ENTRY_VALID: 16, ATTR_VALID: 24, ENTRY_VALID_NSEC: 32, ATTR_VALID_NSEC: 36 } as const;
/** fuse_attr_out: attr_valid u64 at 0, attr_valid_nsec u32 at 8. */
export const FuseAttrOutValid = { ATTR_VALID: 0, ATTR_VALID_NSEC: 8 } as const;
/** fuse_getattr_in: getattr_flags (FUSE_GETATTR_FH = 1: fh is valid), fh u64 at 8. */
export const FuseGetattrInField = { FLAGS: 0, FH: 8, FLAG_FH: 1 } as const;
/** struct fuse_setattr_in (88 bytes) and its `valid` bits (FATTR_*). */
export const FuseSetattrIn = { VALID: 0, FH: 8, SIZE_FIELD: 16, ATIME: 32, MTIME: 40, ATIMENSEC: 56, MTIMENSEC: 60, MODE: 68, UID: 76, GID: 80, SIZE: 88 } as const;
/** fuse_setattr_in.valid bits (FATTR_*): which attributes a SETATTR changes. */
export const FattrBit = { MODE: 1, UID: 2, GID: 4, SIZE: 8, ATIME: 16, MTIME: 32, FH: 64, ATIME_NOW: 128, MTIME_NOW: 256, LOCKOWNER: 512, CTIME: 1024 } as const;
/** struct fuse_mkdir_in: mode, umask u32; the name follows. */
export const FuseMkdirIn = { MODE: 0, UMASK: 4, SIZE: 8 } as const;
/** struct fuse_rename_in: newdir u64; old name then new name follow, NUL-terminated. */
export const FuseRenameIn = { NEWDIR: 0, SIZE: 8 } as const;
/** struct fuse_flush_in: fh u64, unused u32, padding u32, lock_owner u64. */
export const FuseFlushIn = { FH: 0, SIZE: 24 } as const;
/** struct fuse_fsync_in: fh u64, fsync_flags u32 (bit 0: datasync), padding u32. */
export const FuseFsyncIn = { FH: 0, FLAGS: 8, SIZE: 16, DATASYNC: 1 } as const;
/** struct fuse_batch_forget_in: count u32, dummy u32; then count fuse_forget_one {nodeid u64, nlookup u64}. */
export const FuseBatchForgetIn = { COUNT: 0, SIZE: 8, ONE_SIZE: 16 } as const;
/** struct fuse_kstatfs as fuse_statfs_out (80 bytes). */
export const FuseStatfsOut = { BLOCKS: 0, BFREE: 8, BAVAIL: 16, FILES: 24, FFREE: 32, BSIZE: 40, NAMELEN: 44, FRSIZE: 48, SIZE: 80 } as const;
/** struct fuse_direntplus: a fuse_entry_out then a fuse_dirent. */
export const FuseDirentplus = { ENTRY: 0, DIRENT: 128 } as const;

/** fuse_open_out.open_flags (FOPEN_*): how the driver caches the file (virtiofsd cache= policies). */
export const FopenFlag = { DIRECT_IO: 1 << 0, KEEP_CACHE: 1 << 1, CACHE_DIR: 1 << 3 } as const;
/** struct fuse_mknod_in: mode, rdev, umask, padding u32; the name follows. */
export const FuseMknodIn = { MODE: 0, RDEV: 4, UMASK: 8, SIZE: 16 } as const;
/** struct fuse_link_in: oldnodeid u64; the new name follows (the header's nodeid is the new parent). */
export const FuseLinkIn = { OLDNODEID: 0, SIZE: 8 } as const;
/** struct fuse_rename2_in: newdir u64, flags u32, padding u32; old name then new name follow. */
export const FuseRename2In = { NEWDIR: 0, FLAGS: 8, SIZE: 16 } as const;
/** struct fuse_setxattr_in (minor < 33): size u32, flags u32; the name then the value follow. */
export const FuseSetxattrIn = { SIZE_FIELD: 0, FLAGS: 4, SIZE: 8, SETXATTR_FLAGS: 8, EXT_SIZE: 16 } as const;
/** setxattr_flags (FUSE_SETXATTR_EXT): setting system.posix_acl_access must clear S_ISGID. */
export const FUSE_SETXATTR_ACL_KILL_SGID = 1;
/** struct fuse_getxattr_in: size u32, padding u32 (GETXATTR: the name follows; LISTXATTR: nothing). */
export const FuseGetxattrIn = { SIZE_FIELD: 0, SIZE: 8 } as const;
/** struct fuse_getxattr_out: size u32, padding u32 (the answer to a size-0 query). */
export const FuseGetxattrOut = { SIZE_FIELD: 0, SIZE: 8 } as const;
/** struct fuse_access_in: mask u32, padding u32. */
export const FuseAccessIn = { MASK: 0, SIZE: 8 } as const;
/** struct fuse_file_lock: start u64, end u64 (inclusive; OFFSET_MAX = to the end), type u32, pid u32. */
export const FuseFileLock = { START: 0, END: 8, TYPE: 16, PID: 20, SIZE: 24 } as const;
/** struct fuse_lk_in: fh u64, owner u64, lk (fuse_file_lock), lk_flags u32, padding u32. */
export const FuseLkIn = { FH: 0, OWNER: 8, LK: 16, LK_FLAGS: 40, SIZE: 48, FLAG_FLOCK: 1 } as const;
/** struct fuse_lk_out: lk (fuse_file_lock). */
export const FuseLkOut = { LK: 0, SIZE: 24 } as const;
/** struct fuse_interrupt_in: unique u64 of the request to interrupt. */
export const FuseInterruptIn = { UNIQUE: 0, SIZE: 8 } as const;
/** struct fuse_fallocate_in: fh, offset, length u64, mode u32, padding u32. */
export const FuseFallocateIn = { FH: 0, OFFSET: 8, LENGTH: 16, MODE: 24, SIZE: 32 } as const;
/** struct fuse_lseek_in: fh, offset u64, whence u32, padding u32; fuse_lseek_out: offset u64. */
export const FuseLseekIn = { FH: 0, OFFSET: 8, WHENCE: 16, SIZE: 24 } as const;
/** struct fuse_lseek_out: offset u64. */
export const FuseLseekOut = { OFFSET: 0, SIZE: 8 } as const;
/** struct fuse_copy_file_range_in: fh_in, off_in, nodeid_out, fh_out, off_out, len, flags (u64 each). */
export const FuseCopyFileRangeIn = { FH_IN: 0, OFF_IN: 8, NODEID_OUT: 16, FH_OUT: 24, OFF_OUT: 32, LEN: 40, FLAGS: 48, SIZE: 56 } as const;
/** struct fuse_syncfs_in: padding u64. */
export const FuseSyncfsIn = { SIZE: 8 } as const;
/** struct fuse_flush_in lock_owner (the owner closing the file: its POSIX locks go). */
export const FuseFlushInOwner = { LOCK_OWNER: 16 } as const;
/** The largest file offset (fuse_file_lock.end for "to the end of the file"). */
export const FUSE_OFFSET_MAX = 0x7fff_ffff_ffff_ffffn;

/** 5.11.3 VIRTIO_FS_F_NOTIFICATION: the notification queue (virtqueue 1) and notify_buf_size. */
export const FS_F_NOTIFICATION = 1n << BigInt(FsFeatureBit.NOTIFICATION);
/** 5.11.2: with VIRTIO_FS_F_NOTIFICATION, queue 1 is the notification queue and requests start at 2. */
export const FS_NOTIFICATION_QUEUE = 1;
/**
 * 5.11.2: the first request queue with VIRTIO_FS_F_NOTIFICATION (queue 1 is the notification
 * queue).
 */
export const FS_REQUEST_QUEUE_WITH_NOTIFICATION = 2;

/**
 * FUSE notify codes (fuse_out_header.error of a message with unique 0). 1..6 are Linux's
 * include/uapi/linux/fuse.h; LOCK (7) is the one the virtio spec names (5.11.6.3), from the
 * virtio-fs notification-queue proposal (Linux later gave 7 to FUSE_NOTIFY_RESEND: a driver
 * that negotiates VIRTIO_FS_F_NOTIFICATION reads 7 as LOCK).
 */
export const FuseNotifyCode = { POLL: 1, INVAL_INODE: 2, INVAL_ENTRY: 3, STORE: 4, RETRIEVE: 5, DELETE: 6, LOCK: 7 } as const;
/** struct fuse_notify_lock_out: the SETLKW's unique and its result (negated errno). */
export const FuseNotifyLockOut = { UNIQUE: 0, ERROR: 8, SIZE: 16 } as const;
/** struct fuse_notify_inval_inode_out. */
export const FuseNotifyInvalInodeOut = { INO: 0, OFF: 8, LEN: 16, SIZE: 24 } as const;
/** struct fuse_notify_inval_entry_out, then the name and a NUL. */
export const FuseNotifyInvalEntryOut = { PARENT: 0, NAMELEN: 8, FLAGS: 12, SIZE: 16 } as const;
/** struct fuse_notify_delete_out, then the name and a NUL. */
export const FuseNotifyDeleteOut = { PARENT: 0, CHILD: 8, NAMELEN: 16, SIZE: 24 } as const;
/**
 * A SETLKW reply whose out header error is +1 (not a negated errno): the lock is being waited
 * for, its result comes as FUSE_NOTIFY_LOCK (the notification-queue proposal's convention; only
 * with VIRTIO_FS_F_NOTIFICATION negotiated).
 */
export const FUSE_LOCK_WAIT_NOTIFY = 1;
/**
 * notify_buf_size of this device (device/fs/2): the out header and the largest message it emits,
 * FUSE_NOTIFY_DELETE with a 255-byte name and its NUL.
 */
export const FS_NOTIFY_BUF_SIZE = FuseOutHeader.SIZE + FuseNotifyDeleteOut.SIZE + 256;
