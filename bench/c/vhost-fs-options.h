/*
 * The command line of bench/c/vhost-fs-loadgen.c: its jobs and options (see usage()).
 */
#ifndef VHOST_FS_OPTIONS_H
#define VHOST_FS_OPTIONS_H

#include <stdint.h>

#define MAX_JOBS 16      /* --job at most this often */
#define NAME_MAX_LEN 200 /* bytes of a file or directory name option */
#define MAX_QD 64        /* operations in flight at most */

/* What an operation is: the five jobs, verify's passes, and one set-up request (sync_call). */
enum kind { K_LOOKUP, K_CREATE, K_RANDREAD, K_SEQREAD, K_SEQWRITE, K_VWRITE, K_VREAD, K_SYNC };
/** The kinds' names, indexed by enum kind. */
extern const char *const kind_names[];

/* One --job: its kind, bytes per READ/WRITE, operations in flight. */
struct job { enum kind kind; uint32_t chunk; int qd; };

/** The options, with their defaults before parse_args. */
struct fs_options {
  const char *socket_path, *dir, *prefix, *read_file, *write_file;
  uint32_t lookup_count, queue_size;
  uint64_t mem_bytes, span_bytes, verify_bytes, seed;
  int want_event_idx, timeout_ms, rescue_ms, verify, qd;
  double duration, warmup, create_pause;
  long cpu_pid;
  struct job jobs[MAX_JOBS];
  int njobs;
};
extern struct fs_options opt;

/** Parses argv into opt (dies with a message on a bad option; exits 0 after --help). */
void parse_args(int argc, char **argv);

#endif
