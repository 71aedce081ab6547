/*
 * The command line of bench/c/vhost-blk-loadgen.c: its jobs and options (see usage()).
 */
#ifndef VHOST_BLK_OPTIONS_H
#define VHOST_BLK_OPTIONS_H

#include <stdint.h>

#define SECTOR 512u
#define MAX_QD 64     /* requests in flight at most */
#define MAX_JOBS 16   /* --job at most this often */
#define MAX_QUEUES 8  /* --queues at most */

/* One --job. */
struct job {
  char name[32];
  int random;      /* 1 random offsets, 0 sequential */
  int write;       /* 1 writes (VIRTIO_BLK_T_OUT), 0 reads */
  uint32_t bs;     /* bytes per request, a multiple of 512 */
  int qd;          /* requests in flight */
  int poll_mode;   /* 1 spin on used->idx, 0 wait on the call eventfd */
};

/** The options, with their defaults before parse_args. */
struct blk_options {
  const char *socket_path;
  uint64_t mem_bytes;
  uint32_t queue_size;
  int want_event_idx;
  double duration;
  int timeout_ms;
  int verify;
  uint64_t verify_bytes;
  int verify_qd;
  uint64_t seed;
  int queues;
  struct job jobs[MAX_JOBS];
  int njobs;
};
extern struct blk_options opt;

/** Parses argv into opt (dies with a message on a bad option; exits 0 after --help). */
void parse_args(int argc, char **argv);

#endif
