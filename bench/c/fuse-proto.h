/*
 * The FUSE wire format bench/c/vhost-fs-loadgen.c speaks (include/uapi/linux/fuse.h, 7.31: the
 * opcodes and structures it uses, little-endian as the host), and its virtio-fs queue layout.
 */
#ifndef FUSE_PROTO_H
#define FUSE_PROTO_H

#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* FUSE (include/uapi/linux/fuse.h, 7.31) and virtio-fs constants                               */

#define FUSE_LOOKUP 1
#define FUSE_FORGET 2
#define FUSE_GETATTR 3
#define FUSE_UNLINK 10
#define FUSE_OPEN 14
#define FUSE_READ 15
#define FUSE_WRITE 16
#define FUSE_RELEASE 18
#define FUSE_INIT 26
#define FUSE_CREATE 35
#define FUSE_ROOT_ID 1
#define FUSE_MAX_PAGES (1u << 22)

struct fuse_in_header { uint32_t len, opcode; uint64_t unique, nodeid; uint32_t uid, gid, pid; uint16_t total_extlen, padding; };
struct fuse_out_header { uint32_t len; int32_t error; uint64_t unique; };
struct fuse_attr {
  uint64_t ino, size, blocks, atime, mtime, ctime;
  uint32_t atimensec, mtimensec, ctimensec, mode, nlink, uid, gid, rdev, blksize, flags;
};
struct fuse_entry_out { uint64_t nodeid, generation, entry_valid, attr_valid; uint32_t entry_valid_nsec, attr_valid_nsec; struct fuse_attr attr; };
struct fuse_attr_out { uint64_t attr_valid; uint32_t attr_valid_nsec, dummy; struct fuse_attr attr; };
struct fuse_open_out { uint64_t fh; uint32_t open_flags, padding; };
struct fuse_init_in { uint32_t major, minor, max_readahead, flags; };
struct fuse_init_out { uint32_t major, minor, max_readahead, flags; uint16_t max_background, congestion_threshold; uint32_t max_write, time_gran; uint16_t max_pages, map_alignment; uint32_t flags2, unused[7]; };
struct fuse_getattr_in { uint32_t getattr_flags, dummy; uint64_t fh; };
struct fuse_open_in { uint32_t flags, open_flags; };
struct fuse_create_in { uint32_t flags, mode, umask, open_flags; };
struct fuse_release_in { uint64_t fh; uint32_t flags, release_flags; uint64_t lock_owner; };
struct fuse_io_in { uint64_t fh, offset; uint32_t size, io_flags; uint64_t lock_owner; uint32_t flags, padding; }; /* read_in and write_in */
struct fuse_write_out { uint32_t size, padding; };
struct fuse_forget_in { uint64_t nlookup; };

#define HIPRIO_Q 0
#define REQUEST_Q 1
#define DESCS 4          /* request-queue descriptors per slot */
#define REQ_BYTES 512u   /* in header + arguments + name */
#define REPLY_BYTES 512u /* out header + reply arguments */

#endif
