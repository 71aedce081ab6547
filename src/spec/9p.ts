/**
 * The 9P transport over virtio (device id 9) and the 9P2000.L messages it carries. The virtio
 * spec lists the device id only (5: "9P transport"); the transport is what Linux
 * net/9p/trans_virtio.c and QEMU hw/9pfs/virtio-9p-device.c agree on: one request queue, each
 * buffer a T-message in its device-readable part and room for the R-message in its
 * device-writable part; feature bit 0 (MOUNT_TAG) makes a configuration of `le16 tag_len`
 * followed by `tag_len` bytes of tag (no NUL). 9P itself is little-endian on every guest.
 */
import { defineConfigLayout } from './config-layout.js';

/** The single request queue. */
export const P9_REQUEST_QUEUE = 0;

/** Feature bits of the 9P transport. */
export const P9FeatureBit = { MOUNT_TAG: 0 } as const;
/** VIRTIO_9P_MOUNT_TAG as a feature mask: the device has a mount tag in its config space. */
export const P9_F_MOUNT_TAG = 1n << BigInt(P9FeatureBit.MOUNT_TAG);

/** struct virtio_9p_config: tag_len (virtio16), then the tag bytes. */
export const P9Config = { TAG_LEN: 0, TAG: 2 } as const;
/** QEMU's MAX_TAG_LEN: a longer tag is refused. */
export const P9_TAG_MAX_BYTES = 32;

/** The numeric field of the configuration (the tag is bytes, encoded by the device itself). */
export const P9_CONFIG_LAYOUT = defineConfigLayout(P9Config.TAG, [
  { name: 'tagLen', offset: P9Config.TAG_LEN, width: 2, feature: P9_F_MOUNT_TAG, access: 'ro' },
]);

/** The protocol version this transport speaks. */
export const P9_VERSION_L = '9P2000.L';
/** Version answered for one the server does not speak. */
export const P9_VERSION_UNKNOWN = 'unknown';

/** Message header: size[4] type[1] tag[2]. */
export const P9_HEADER_BYTES = 7;
/** Header of Rread / Rreaddir: the message header and count[4]. */
export const P9_IO_HEADER_BYTES = 11;
/** Header of Twrite: the message header, fid[4], offset[8], count[4]. */
export const P9_TWRITE_HEADER_BYTES = 23;
/** The smallest msize a client may ask for (QEMU and Linux both insist on 4096). */
export const P9_MIN_MSIZE = 4096;
/** The tag of Tversion. */
export const P9_NOTAG = 0xffff;
/** afid when there is no authentication, and n_uname when none is given. */
export const P9_NOFID = 0xffffffff;
/**
 * Tattach's n_uname when the client names no user (Linux: INVALID_UID, as the mount's first
 * attach sends it), and a Tlcreate/Tmkdir/Tsymlink/Tmknod gid naming no group: ~0.
 */
export const P9_NONUNAME = 0xffffffff;
/** Names in one Twalk at most (MAXWELEM). */
export const P9_MAX_WALK_NAMES = 16;

/** 9P2000.L message types (T-messages even, their R-message one more). */
export const P9Type = {
  TLERROR: 6,
  RLERROR: 7,
  TSTATFS: 8,
  RSTATFS: 9,
  TLOPEN: 12,
  RLOPEN: 13,
  TLCREATE: 14,
  RLCREATE: 15,
  TSYMLINK: 16,
  RSYMLINK: 17,
  TMKNOD: 18,
  RMKNOD: 19,
  TRENAME: 20,
  RRENAME: 21,
  TREADLINK: 22,
  RREADLINK: 23,
  TGETATTR: 24,
  RGETATTR: 25,
  TSETATTR: 26,
  RSETATTR: 27,
  TXATTRWALK: 30,
  RXATTRWALK: 31,
  TXATTRCREATE: 32,
  RXATTRCREATE: 33,
  TREADDIR: 40,
  RREADDIR: 41,
  TFSYNC: 50,
  RFSYNC: 51,
  TLOCK: 52,
  RLOCK: 53,
  TGETLOCK: 54,
  RGETLOCK: 55,
  TLINK: 70,
  RLINK: 71,
  TMKDIR: 72,
  RMKDIR: 73,
  TRENAMEAT: 74,
  RRENAMEAT: 75,
  TUNLINKAT: 76,
  RUNLINKAT: 77,
  TVERSION: 100,
  RVERSION: 101,
  TAUTH: 102,
  RAUTH: 103,
  TATTACH: 104,
  RATTACH: 105,
  TFLUSH: 108,
  RFLUSH: 109,
  TWALK: 110,
  RWALK: 111,
  TREAD: 116,
  RREAD: 117,
  TWRITE: 118,
  RWRITE: 119,
  TCLUNK: 120,
  RCLUNK: 121,
  TREMOVE: 122,
  RREMOVE: 123,
} as const;

/** qid.type bits. */
export const P9QidType = { DIR: 0x80, APPEND: 0x40, EXCL: 0x20, MOUNT: 0x10, AUTH: 0x08, TMP: 0x04, SYMLINK: 0x02, LINK: 0x01, FILE: 0 } as const;
/** A qid on the wire: type[1] version[4] path[8]. */
export const P9_QID_BYTES = 13;

/** Tgetattr request_mask / Rgetattr valid bits. */
export const P9GetattrMask = {
  MODE: 0x1,
  NLINK: 0x2,
  UID: 0x4,
  GID: 0x8,
  RDEV: 0x10,
  ATIME: 0x20,
  MTIME: 0x40,
  CTIME: 0x80,
  INO: 0x100,
  SIZE: 0x200,
  BLOCKS: 0x400,
  BTIME: 0x800,
  GEN: 0x1000,
  DATA_VERSION: 0x2000,
  /** Everything stat(2) has. */
  BASIC: 0x7ff,
  ALL: 0x3fff,
} as const;

/** Tsetattr valid bits. */
export const P9SetattrValid = {
  MODE: 0x1,
  UID: 0x2,
  GID: 0x4,
  SIZE: 0x8,
  ATIME: 0x10,
  MTIME: 0x20,
  CTIME: 0x40,
  /** With ATIME: the given time; without it ATIME means "now". */
  ATIME_SET: 0x80,
  MTIME_SET: 0x100,
} as const;

/** Tlock / Tgetlock lock types. */
export const P9LockType = { RDLCK: 0, WRLCK: 1, UNLCK: 2 } as const;
/** Rlock status. */
export const P9LockStatus = { SUCCESS: 0, BLOCKED: 1, ERROR: 2, GRACE: 3 } as const;
/** Tlock flags. */
export const P9LockFlags = { BLOCK: 1, RECLAIM: 2 } as const;

/** Tunlinkat flags: AT_REMOVEDIR. */
export const P9_AT_REMOVEDIR = 0x200;

/** Linux errno values carried by Rlerror. */
export const P9Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EPROTO: 71,
  EOVERFLOW: 75,
  EBADMSG: 74,
  EOPNOTSUPP: 95,
} as const;
