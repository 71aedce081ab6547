/*
 * The command line of bench/c/vhost-blk-loadgen.c (see vhost-blk-options.h).
 */
#include "vhost-front.h"
#include "vhost-blk-options.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

struct blk_options opt = {
  .mem_bytes = 64ull << 20,
  .queue_size = 256,
  .want_event_idx = 1,
  .duration = 5.0,
  .timeout_ms = 10000,
  .verify_bytes = 8ull << 20,
  .verify_qd = 16,
  .seed = 0x5eed1234abcdull,
  .queues = 1,
};

static void usage(FILE *f) {
  fputs(
      "usage: vhost-blk-loadgen --socket PATH [--job NAME:rand|seq|randw|seqw:BS:QD:call|poll]... [options]\n"
      "       vhost-blk-loadgen --socket PATH --verify [options]\n"
      "  --duration SECS      seconds per job, or of verify rounds (default 5)\n"
      "  --queue-size N       split ring size, power of two, 8..32768 (default 256)\n"
      "  --mem-mib N          guest memory (memfd) size in MiB (default 64)\n"
      "  --event-idx on|off   negotiate VIRTIO_RING_F_EVENT_IDX when offered (default on)\n"
      "  --timeout-ms N       bound on any single wait for the back-end (default 10000)\n"
      "  --verify-bytes N     region written and read back by --verify (default 8 MiB)\n"
      "  --verify-qd N        requests in flight during --verify (default 16)\n"
      "  --seed N             PRNG seed (offsets, chunk sizes, patterns)\n"
      "  --queues N           drive queues 0..N-1 at once, one process each (1..8, default 1; not with --verify)\n"
      "Without --job: r4k-qd1-call, r4k-qd1-poll, r4k-qd32-call, r4k-qd32-poll, s64k-qd1-call, s64k-qd8-call.\n",
      f);
}

static void add_job(const char *name, int random, int write, uint32_t bs, int qd, int poll_mode) {
  if (opt.njobs >= MAX_JOBS) die("at most %d jobs", MAX_JOBS);
  struct job *j = &opt.jobs[opt.njobs++];
  snprintf(j->name, sizeof j->name, "%s", name);
  j->random = random;
  j->write = write;
  j->bs = bs;
  j->qd = qd;
  j->poll_mode = poll_mode;
}

static void parse_job(const char *spec) {
  char buf[128];
  if (strlen(spec) >= sizeof buf) die("job spec too long: %s", spec);
  strcpy(buf, spec);
  char *f[5];
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(buf, ":", &save); t != NULL; t = strtok_r(NULL, ":", &save)) {
    if (n == 5) die("job spec has more than 5 fields: %s", spec);
    f[n++] = t;
  }
  if (n != 5) die("job spec is NAME:rand|seq:BS:QD:call|poll, got %s", spec);
  if (strlen(f[0]) >= sizeof opt.jobs[0].name) die("job name too long: %s", f[0]);
  int random, write = 0;
  if (strcmp(f[1], "rand") == 0) random = 1;
  else if (strcmp(f[1], "seq") == 0) random = 0;
  else if (strcmp(f[1], "randw") == 0) random = 1, write = 1;
  else if (strcmp(f[1], "seqw") == 0) random = 0, write = 1;
  else die("job pattern must be rand, seq, randw or seqw: %s", spec);
  uint64_t bs = parse_u64(f[2], "job block size");
  uint64_t qd = parse_u64(f[3], "job queue depth");
  int poll_mode;
  if (strcmp(f[4], "poll") == 0) poll_mode = 1;
  else if (strcmp(f[4], "call") == 0) poll_mode = 0;
  else die("job completion must be call or poll: %s", spec);
  if (bs == 0 || bs % SECTOR != 0 || bs > (4u << 20)) die("job block size must be a multiple of 512 up to 4 MiB: %s", spec);
  if (qd == 0 || qd > MAX_QD) die("job queue depth must be 1..%d: %s", MAX_QD, spec);
  add_job(f[0], random, write, (uint32_t)bs, (int)qd, poll_mode);
}

void parse_args(int argc, char **argv) {
  static const struct option lo[] = {
      {"socket", required_argument, 0, 's'},     {"job", required_argument, 0, 'j'},
      {"duration", required_argument, 0, 'd'},   {"queue-size", required_argument, 0, 'q'},
      {"mem-mib", required_argument, 0, 'm'},    {"event-idx", required_argument, 0, 'e'},
      {"timeout-ms", required_argument, 0, 't'}, {"verify", no_argument, 0, 'v'},
      {"verify-bytes", required_argument, 0, 'b'}, {"verify-qd", required_argument, 0, 'Q'},
      {"seed", required_argument, 0, 'S'},       {"help", no_argument, 0, 'h'},
      {"queues", required_argument, 0, 'N'},
      {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
      case 's': opt.socket_path = optarg; break;
      case 'j': parse_job(optarg); break;
      case 'd': {
        char *end;
        opt.duration = strtod(optarg, &end);
        if (end == optarg || *end != '\0' || !(opt.duration > 0) || opt.duration > 3600) die("bad --duration: %s", optarg);
        break;
      }
      case 'q': {
        uint64_t q = parse_u64(optarg, "--queue-size");
        if (q < 8 || q > 32768 || (q & (q - 1)) != 0) die("--queue-size must be a power of two in 8..32768");
        opt.queue_size = (uint32_t)q;
        break;
      }
      case 'm': {
        uint64_t m = parse_u64(optarg, "--mem-mib");
        if (m < 4 || m > 4096) die("--mem-mib must be 4..4096");
        opt.mem_bytes = m << 20;
        break;
      }
      case 'e':
        if (strcmp(optarg, "on") == 0) opt.want_event_idx = 1;
        else if (strcmp(optarg, "off") == 0) opt.want_event_idx = 0;
        else die("--event-idx is on or off");
        break;
      case 't': {
        uint64_t t = parse_u64(optarg, "--timeout-ms");
        if (t < 10 || t > 600000) die("--timeout-ms must be 10..600000");
        opt.timeout_ms = (int)t;
        break;
      }
      case 'v': opt.verify = 1; break;
      case 'b': {
        uint64_t b = parse_u64(optarg, "--verify-bytes");
        if (b < SECTOR || b % SECTOR != 0) die("--verify-bytes must be a multiple of 512");
        opt.verify_bytes = b;
        break;
      }
      case 'Q': {
        uint64_t q = parse_u64(optarg, "--verify-qd");
        if (q == 0 || q > MAX_QD) die("--verify-qd must be 1..%d", MAX_QD);
        opt.verify_qd = (int)q;
        break;
      }
      case 'S': opt.seed = parse_u64(optarg, "--seed"); break;
      case 'N': {
        uint64_t n = parse_u64(optarg, "--queues");
        if (n < 1 || n > MAX_QUEUES) die("--queues must be 1..%d", MAX_QUEUES);
        opt.queues = (int)n;
        break;
      }
      case 'h': usage(stdout); exit(0);
      default: usage(stderr); exit(2);
    }
  }
  if (optind != argc) die("unexpected argument: %s", argv[optind]);
  if (opt.socket_path == NULL) {
    usage(stderr);
    exit(2);
  }
  if (opt.verify && opt.queues > 1) die("--verify drives one queue");
  if (!opt.verify && opt.njobs == 0) {
    add_job("r4k-qd1-call", 1, 0, 4096, 1, 0);
    add_job("r4k-qd1-poll", 1, 0, 4096, 1, 1);
    add_job("r4k-qd32-call", 1, 0, 4096, 32, 0);
    add_job("r4k-qd32-poll", 1, 0, 4096, 32, 1);
    add_job("s64k-qd1-call", 0, 0, 65536, 1, 0);
    add_job("s64k-qd8-call", 0, 0, 65536, 8, 0);
  }
}
