/*
 * The command line of bench/c/vhost-fs-loadgen.c (see vhost-fs-options.h).
 */
#include "vhost-front.h"
#include "vhost-fs-options.h"

#include <getopt.h>
#include <stdlib.h>

const char *const kind_names[] = {"lookup", "create", "randread", "seqread", "seqwrite", "vwrite", "vread", "sync"};

struct fs_options opt = {
    .dir = "", .prefix = "f", .read_file = "big.bin", .write_file = "written.bin", .lookup_count = 1000,
    .queue_size = 256, .mem_bytes = 128ull << 20, .span_bytes = 64ull << 20, .verify_bytes = 4ull << 20,
    .seed = 0x5eed1234abcdull, .want_event_idx = 1, .timeout_ms = 10000, .rescue_ms = 100, .qd = 16,
    .duration = 3.0, .warmup = 0.0, .cpu_pid = 0,
};

static void usage(FILE *f) {
  fputs("usage: vhost-fs-loadgen --socket PATH [--job lookup|create|randread|seqread|seqwrite[:CHUNK[:QD]]]... [options]\n"
        "       vhost-fs-loadgen --socket PATH --verify [options]\n"
        "  --duration SECS     seconds per job (default 3)     --warmup SECS   untimed run before each job (default 0)\n"
        "  --qd N              operations in flight (default 16, 1..64)\n"
        "  --dir NAME          directory of the create job (default: the root)\n"
        "  --prefix P --count N   lookup names P0..P<N-1> (default f, 1000)\n"
        "  --read-file NAME    randread/seqread file (default big.bin)   --write-file NAME (default written.bin)\n"
        "  --span-mib N        sequential and random offsets stay below N MiB and the file's size (default 64)\n"
        "  --verify-bytes N    bytes written and read back by --verify (default 4 MiB)\n"
        "  --queue-size N  --mem-mib N (default 128)  --event-idx on|off  --timeout-ms N  --seed N\n"
        "  --rescue-ms N       re-notify after N ms without a completion (default 100; 0 off)\n"
        "  --cpu-pid PID       report the CPU seconds of PID's process tree per job\n"
        "  --create-pause SECS idle this long before each create job (ext4 without a journal skips\n"
        "                      inodes freed in the last 60 s: a create costs more after other deletes)\n",
        f);
}

static uint32_t parse_chunk(const char *s) {
  uint64_t v = parse_u64(s, "chunk");
  if (v == 0 || v > (16u << 20)) die("chunk must be 1..16 MiB: %s", s);
  return (uint32_t)v;
}

static void parse_job(const char *spec) {
  char buf[64];
  if (strlen(spec) >= sizeof buf) die("job spec too long: %s", spec);
  strcpy(buf, spec);
  char *save = NULL, *name = strtok_r(buf, ":", &save), *chunk = strtok_r(NULL, ":", &save), *qd = strtok_r(NULL, ":", &save);
  if (name == NULL || strtok_r(NULL, ":", &save) != NULL) die("job spec is KIND[:CHUNK[:QD]]: %s", spec);
  if (opt.njobs >= MAX_JOBS) die("at most %d jobs", MAX_JOBS);
  struct job *j = &opt.jobs[opt.njobs];
  int k;
  for (k = 0; k <= K_SEQWRITE; k++) if (strcmp(name, kind_names[k]) == 0) break;
  if (k > K_SEQWRITE) die("job kind must be lookup, create, randread, seqread or seqwrite: %s", spec);
  j->kind = (enum kind)k;
  j->chunk = chunk ? parse_chunk(chunk) : (k == K_RANDREAD ? 4096 : 1u << 20);
  j->qd = 0; /* --qd */
  if (qd) {
    uint64_t v = parse_u64(qd, "job depth");
    if (v == 0 || v > MAX_QD) die("job depth must be 1..%d: %s", MAX_QD, spec);
    j->qd = (int)v;
  }
  opt.njobs++;
}

static double parse_secs(const char *s, const char *what, double min) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= min) || v > 3600) die("bad %s: %s", what, s);
  return v;
}

void parse_args(int argc, char **argv) {
  static const struct option lo[] = {
      {"socket", required_argument, 0, 's'},   {"job", required_argument, 0, 'j'},       {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'w'},   {"qd", required_argument, 0, 'Q'},        {"dir", required_argument, 0, 'D'},
      {"prefix", required_argument, 0, 'p'},   {"count", required_argument, 0, 'c'},     {"read-file", required_argument, 0, 'r'},
      {"write-file", required_argument, 0, 'W'}, {"span-mib", required_argument, 0, 'S'}, {"verify", no_argument, 0, 'v'},
      {"verify-bytes", required_argument, 0, 'b'}, {"queue-size", required_argument, 0, 'q'}, {"mem-mib", required_argument, 0, 'm'},
      {"event-idx", required_argument, 0, 'e'}, {"timeout-ms", required_argument, 0, 't'}, {"seed", required_argument, 0, 'x'},
      {"rescue-ms", required_argument, 0, 'R'}, {"cpu-pid", required_argument, 0, 'P'},  {"help", no_argument, 0, 'h'},
      {"create-pause", required_argument, 0, 'C'},
      {0, 0, 0, 0}};
  int c;
  uint64_t v;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
      case 's': opt.socket_path = optarg; break;
      case 'j': parse_job(optarg); break;
      case 'd': opt.duration = parse_secs(optarg, "--duration", 0.01); break;
      case 'w': opt.warmup = parse_secs(optarg, "--warmup", 0); break;
      case 'C': opt.create_pause = parse_secs(optarg, "--create-pause", 0); break;
      case 'Q':
        v = parse_u64(optarg, "--qd");
        if (v == 0 || v > MAX_QD) die("--qd must be 1..%d", MAX_QD);
        opt.qd = (int)v;
        break;
      case 'D': opt.dir = optarg; break;
      case 'p': opt.prefix = optarg; break;
      case 'c':
        v = parse_u64(optarg, "--count");
        if (v == 0 || v > 100000000) die("--count must be 1..10^8");
        opt.lookup_count = (uint32_t)v;
        break;
      case 'r': opt.read_file = optarg; break;
      case 'W': opt.write_file = optarg; break;
      case 'S':
        v = parse_u64(optarg, "--span-mib");
        if (v == 0 || v > (1u << 20)) die("--span-mib must be 1..2^20");
        opt.span_bytes = v << 20;
        break;
      case 'v': opt.verify = 1; break;
      case 'b':
        v = parse_u64(optarg, "--verify-bytes");
        if (v < 512 || v % 512 != 0 || v > (1ull << 30)) die("--verify-bytes must be a multiple of 512 up to 1 GiB");
        opt.verify_bytes = v;
        break;
      case 'q':
        v = parse_u64(optarg, "--queue-size");
        if (v < 8 || v > 32768 || (v & (v - 1)) != 0) die("--queue-size must be a power of two in 8..32768");
        opt.queue_size = (uint32_t)v;
        break;
      case 'm':
        v = parse_u64(optarg, "--mem-mib");
        if (v < 8 || v > 4096) die("--mem-mib must be 8..4096");
        opt.mem_bytes = v << 20;
        break;
      case 'e':
        if (strcmp(optarg, "on") == 0) opt.want_event_idx = 1;
        else if (strcmp(optarg, "off") == 0) opt.want_event_idx = 0;
        else die("--event-idx is on or off");
        break;
      case 't':
        v = parse_u64(optarg, "--timeout-ms");
        if (v < 10 || v > 600000) die("--timeout-ms must be 10..600000");
        opt.timeout_ms = (int)v;
        break;
      case 'x': opt.seed = parse_u64(optarg, "--seed"); break;
      case 'R':
        v = parse_u64(optarg, "--rescue-ms");
        if (v > 600000) die("--rescue-ms must be 0..600000");
        opt.rescue_ms = (int)v;
        break;
      case 'P':
        v = parse_u64(optarg, "--cpu-pid");
        if (v == 0 || v > 0x7fffffff) die("bad --cpu-pid");
        opt.cpu_pid = (long)v;
        break;
      case 'h': usage(stdout); exit(0);
      default: usage(stderr); exit(2);
    }
  }
  if (optind != argc) die("unexpected argument: %s", argv[optind]);
  if (opt.socket_path == NULL) {
    usage(stderr);
    exit(2);
  }
  if (strlen(opt.dir) > NAME_MAX_LEN || strlen(opt.prefix) > 32 || strlen(opt.read_file) > NAME_MAX_LEN || strlen(opt.write_file) > NAME_MAX_LEN) {
    die("names are at most %d bytes (the prefix 32)", NAME_MAX_LEN);
  }
  if (!opt.verify && opt.njobs == 0) {
    const char *all[] = {"lookup", "create", "randread", "seqread", "seqwrite"};
    for (int i = 0; i < 5; i++) parse_job(all[i]);
  }
  for (int i = 0; i < opt.njobs; i++) if (opt.jobs[i].qd == 0) opt.jobs[i].qd = opt.qd;
}
