/*
 * vhost-blk-loadgen: a guest-less vhost-user front-end for virtio-blk back-ends, in C so that the
 * load generator is not the bottleneck of the benchmark (bench/blk-vhost-bench.ts runs it against
 * virtio-ts and qemu-storage-daemon side by side).
 *
 * It plays the part QEMU plays for a VM, without the VM: guest RAM is a memfd mapped here and
 * handed to the back-end with SET_MEM_TABLE (guest physical address 0 = memfd offset 0); it lays
 * out one split virtqueue (2.7) in that memory, negotiates VERSION_1 (EVENT_IDX when offered and
 * asked for, never INDIRECT_DESC) and the protocol features MQ, REPLY_ACK and CONFIG, reads the
 * capacity with GET_CONFIG, and issues virtio-blk requests (5.2.6: header, data, status; three
 * descriptors, no indirect tables). Completion is seen either by waiting on the call eventfd
 * (poll + read) or by spinning on used->idx with notifications suppressed.
 *
 * Modes:
 *   --job NAME:rand|seq:BS:QD:call|poll   (repeatable) reads for --duration seconds each; prints a
 *                                         RESULT line per job (IOPS, MB/s, latency mean/p50/p99);
 *                                         randw|seqw: writes instead of reads
 *   --verify                              writes patterns over a region, flushes, reads them back
 *                                         in differently sized chunks and compares every byte
 *   --queues N                            drives N queues at once (jobs only): the rings are set up
 *                                         here, then one forked process per queue runs the jobs on
 *                                         its own ring and prints its RESULT lines with queue=Q
 *
 * Rules it keeps: no allocation on the hot path (all slots, buffers and the latency histogram are
 * set up before the first request); every syscall's result is checked; every wait is bounded
 * (poll/recv time-outs, a drain bound, and alarm() as a last resort); the back-end is untrusted
 * (used ids and lengths are checked before use).
 *
 * Built by scripts/bench.mjs and test/loadgen-qsd.test.ts: gcc -O2 -Wall -Wextra -o ... this file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Constants (virtio 1.x 2.7, 5.2; vhost-user.rst)                                             */

#define VIRTIO_F_VERSION_1 32
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

#define PROTO_F_MQ 0
#define PROTO_F_REPLY_ACK 3
#define PROTO_F_CONFIG 9

enum {
  VU_GET_FEATURES = 1,
  VU_SET_FEATURES = 2,
  VU_SET_OWNER = 3,
  VU_SET_MEM_TABLE = 5,
  VU_SET_VRING_NUM = 8,
  VU_SET_VRING_ADDR = 9,
  VU_SET_VRING_BASE = 10,
  VU_GET_VRING_BASE = 11,
  VU_SET_VRING_KICK = 12,
  VU_SET_VRING_CALL = 13,
  VU_GET_PROTOCOL_FEATURES = 15,
  VU_SET_PROTOCOL_FEATURES = 16,
  VU_GET_QUEUE_NUM = 17,
  VU_SET_VRING_ENABLE = 18,
  VU_GET_CONFIG = 24,
};

#define VU_VERSION 0x1u
#define VU_FLAG_REPLY 0x4u
#define VU_FLAG_NEED_REPLY 0x8u
#define VU_HDR_SIZE 12u

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK 0

#define SECTOR 512u
#define MAX_QD 64
#define MAX_JOBS 16
#define MAX_QUEUES 8
#define DESCS_PER_REQ 3

struct vring_desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct vring_used_elem { uint32_t id, len; };
struct blk_outhdr { uint32_t type, reserved; uint64_t sector; };

/* ------------------------------------------------------------------------------------------ */
/* Errors: everything fatal ends the process with a message and exit status 1 (the kernel closes */
/* the socket, memfd and eventfds).                                                             */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("vhost-blk-loadgen: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}
#define DIE_ERRNO(what) die("%s: %s", (what), strerror(errno))

static double now_s(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) DIE_ERRNO("clock_gettime");
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static inline uint64_t now_ns(void) {
  struct timespec ts;
  /* CLOCK_MONOTONIC goes through the vDSO: no syscall on the hot path. */
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) DIE_ERRNO("clock_gettime");
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                      */

struct job {
  char name[32];
  int random;      /* 1 random offsets, 0 sequential */
  int write;       /* 1 writes (VIRTIO_BLK_T_OUT), 0 reads */
  uint32_t bs;     /* bytes per request, a multiple of 512 */
  int qd;          /* requests in flight */
  int poll_mode;   /* 1 spin on used->idx, 0 wait on the call eventfd */
};

static struct {
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
} opt = {
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

static uint64_t parse_u64(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') die("bad %s: '%s'", what, s);
  return (uint64_t)v;
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

static void parse_args(int argc, char **argv) {
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

/* ------------------------------------------------------------------------------------------ */
/* PRNG (xorshift64*) and the verify pattern (splitmix64 of seed and word index)                */

static uint64_t rng_state;
static inline uint64_t rng_next(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1Dull;
}
static inline uint64_t pattern_word(uint64_t seed, uint64_t word) {
  uint64_t z = seed + word * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ------------------------------------------------------------------------------------------ */
/* vhost-user messaging                                                                         */

static int sock_fd = -1;
static uint64_t proto_features;
static int reply_ack;

struct vu_msg {
  uint32_t request, flags, size;
  union {
    uint64_t u64;
    struct { uint32_t index, num; } state;
    struct { uint32_t index, flags; uint64_t desc, used, avail, log; } addr;
    struct { uint32_t nregions, padding; struct { uint64_t gpa, size, uaddr, mmap_offset; } r[8]; } mem;
    struct { uint32_t offset, size, flags; uint8_t data[256]; } cfg;
    uint8_t raw[512];
  } p;
} __attribute__((packed));

static void recv_exact(void *buf, size_t len, const char *what) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = recv(sock_fd, (uint8_t *)buf + got, len - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) die("%s: no reply within %d ms", what, opt.timeout_ms);
      DIE_ERRNO(what);
    }
    if (n == 0) die("%s: the back-end closed the connection", what);
    got += (size_t)n;
  }
}

/* Sends one message, with up to one fd in SCM_RIGHTS ancillary data. */
static void vu_send(struct vu_msg *m, int fd) {
  struct iovec iov = {.iov_base = m, .iov_len = VU_HDR_SIZE + m->size};
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    memset(&u, 0, sizeof u);
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = sendmsg(sock_fd, &mh, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) DIE_ERRNO("sendmsg");
    if ((size_t)n != iov.iov_len) die("sendmsg: short write (%zd of %zu)", n, iov.iov_len);
    return;
  }
}

static void vu_recv_reply(uint32_t request, struct vu_msg *r, const char *what) {
  recv_exact(r, VU_HDR_SIZE, what);
  if (r->request != request) die("%s: reply to request %u, expected %u", what, r->request, request);
  if ((r->flags & 0x3u) != VU_VERSION || !(r->flags & VU_FLAG_REPLY)) die("%s: bad reply flags 0x%x", what, r->flags);
  if (r->size > sizeof r->p) die("%s: reply payload of %u bytes", what, r->size);
  if (r->size) recv_exact(&r->p, r->size, what);
}

/* A request with a reply (GET_*). */
static void vu_get(struct vu_msg *m, const char *what) {
  uint32_t req = m->request;
  m->flags = VU_VERSION;
  vu_send(m, -1);
  vu_recv_reply(req, m, what);
}

static uint64_t vu_get_u64(uint32_t request, const char *what) {
  struct vu_msg m = {.request = request, .size = 0};
  vu_get(&m, what);
  if (m.size != 8) die("%s: reply payload of %u bytes, expected 8", what, m.size);
  return m.p.u64;
}

/* A request without a reply; with REPLY_ACK negotiated, asks for one and checks it is 0. */
static void vu_set(struct vu_msg *m, int fd, const char *what) {
  uint32_t req = m->request;
  m->flags = VU_VERSION | (reply_ack ? VU_FLAG_NEED_REPLY : 0);
  vu_send(m, fd);
  if (reply_ack) {
    struct vu_msg r;
    vu_recv_reply(req, &r, what);
    if (r.size != 8) die("%s: ack payload of %u bytes", what, r.size);
    if (r.p.u64 != 0) die("%s: the back-end refused (0x%" PRIx64 ")", what, r.p.u64);
  }
}

static void vu_set_u64(uint32_t request, uint64_t v, int fd, const char *what) {
  struct vu_msg m = {.request = request, .size = 8};
  m.p.u64 = v;
  vu_set(&m, fd, what);
}

static void vu_set_state(uint32_t request, uint32_t index, uint32_t num, const char *what) {
  struct vu_msg m = {.request = request, .size = 8};
  m.p.state.index = index;
  m.p.state.num = num;
  vu_set(&m, -1, what);
}

/* ------------------------------------------------------------------------------------------ */
/* Guest memory and the split ring (2.7)                                                        */

static uint8_t *mem;       /* guest physical address 0 */
static int mem_fd = -1, kick_fd = -1, call_fd = -1;
static int kick_fds[MAX_QUEUES], call_fds[MAX_QUEUES];
/* The queue this process drives and its slice of guest memory (all of it with one queue). */
static int qidx;
static uint64_t q_base, q_bytes;
static uint32_t qsz;
static struct vring_desc *desc;
static volatile uint16_t *avail_flags, *avail_idx, *avail_ring, *used_event;
static volatile uint16_t *used_flags, *used_idx, *avail_event;
static volatile struct vring_used_elem *used_ring;
static uint64_t gpa_desc, gpa_avail, gpa_used, gpa_hdr, gpa_status, gpa_data;
static uint32_t slot_data_bytes; /* data buffer per slot */
static int event_idx;
static uint64_t features;
static uint64_t capacity_sectors;
static uint32_t size_max; /* 0 = no limit advertised */
static int has_flush, read_only;

/* Driver ring state. */
static uint16_t avail_shadow, avail_published, last_used;

struct slot {
  uint64_t t_submit;
  uint32_t bytes;
  uint32_t type;
  uint64_t offset; /* bytes */
  uint64_t seed;
  int busy;
};
static struct slot slots[MAX_QD];
static int nslots;

static inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

static void layout(void) {
  qsz = opt.queue_size;
  if ((uint64_t)MAX_QD * DESCS_PER_REQ > qsz) {
    /* The ring must hold MAX_QD three-descriptor chains; smaller rings cap the depth. */
    nslots = (int)(qsz / DESCS_PER_REQ);
  } else {
    nslots = MAX_QD;
  }
  gpa_desc = q_base;
  gpa_avail = gpa_desc + 16ull * qsz;                  /* 2.7.6: 2-byte aligned */
  gpa_used = align_up(gpa_avail + 6 + 2ull * qsz, 4096); /* 2.7.8: 4-byte aligned */
  uint64_t end = gpa_used + 6 + 8ull * qsz;
  gpa_hdr = align_up(end, 4096);
  gpa_status = gpa_hdr + sizeof(struct blk_outhdr) * MAX_QD;
  gpa_data = align_up(gpa_status + MAX_QD, 4096);
  if (gpa_data >= q_base + q_bytes) die("--mem-mib too small for the ring");
  uint64_t per = (q_base + q_bytes - gpa_data) / MAX_QD;
  per &= ~(uint64_t)4095;
  if (per > (4u << 20)) per = 4u << 20;
  if (per < 4096) die("--mem-mib too small for %d data buffers", MAX_QD);
  slot_data_bytes = (uint32_t)per;

  desc = (struct vring_desc *)(mem + gpa_desc);
  avail_flags = (volatile uint16_t *)(mem + gpa_avail);
  avail_idx = avail_flags + 1;
  avail_ring = avail_flags + 2;
  used_event = avail_ring + qsz; /* 2.7.10 */
  used_flags = (volatile uint16_t *)(mem + gpa_used);
  used_idx = used_flags + 1;
  used_ring = (volatile struct vring_used_elem *)(mem + gpa_used + 4);
  avail_event = (volatile uint16_t *)(mem + gpa_used + 4 + 8ull * qsz); /* 2.7.10 */

  /* Fixed chains: slot s owns descriptors 3s (header), 3s+1 (data), 3s+2 (status). */
  for (int s = 0; s < nslots; s++) {
    uint16_t h = (uint16_t)(s * DESCS_PER_REQ);
    desc[h].addr = gpa_hdr + sizeof(struct blk_outhdr) * (uint64_t)s;
    desc[h].len = sizeof(struct blk_outhdr);
    desc[h].flags = VRING_DESC_F_NEXT;
    desc[h].next = (uint16_t)(h + 1);
    desc[h + 1].addr = gpa_data + (uint64_t)slot_data_bytes * (uint64_t)s;
    desc[h + 1].len = 0;
    desc[h + 1].flags = VRING_DESC_F_NEXT;
    desc[h + 1].next = (uint16_t)(h + 2);
    desc[h + 2].addr = gpa_status + (uint64_t)s;
    desc[h + 2].len = 1;
    desc[h + 2].flags = VRING_DESC_F_WRITE;
    desc[h + 2].next = 0;
  }
}

/* Makes queue q the one the ring code works on: its memory slice, its ring, its eventfds. */
static void select_queue(int q) {
  qidx = q;
  q_bytes = (opt.mem_bytes / (uint64_t)opt.queues) & ~(uint64_t)4095;
  q_base = (uint64_t)q * q_bytes;
  layout();
  kick_fd = kick_fds[q];
  call_fd = call_fds[q];
}

static inline int need_event(uint16_t ev, uint16_t new_idx, uint16_t old) {
  return (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old); /* 2.7.10 */
}

static uint64_t kicks, calls_waited;

static inline void kick(void) {
  uint64_t one = 1;
  ssize_t n;
  do n = write(kick_fd, &one, sizeof one); while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof one) DIE_ERRNO("write kick eventfd");
  kicks++;
}

/* Publishes the avail entries added since the last publish and notifies if the device asks. */
static inline void publish(void) {
  uint16_t old = avail_published, nw = avail_shadow;
  if (old == nw) return;
  __atomic_store_n(avail_idx, nw, __ATOMIC_RELEASE); /* 2.7.13.3: idx after the ring entry */
  avail_published = nw;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);            /* 2.7.13.4: idx before the suppression check */
  if (event_idx) {
    if (need_event(__atomic_load_n(avail_event, __ATOMIC_RELAXED), nw, old)) kick();
  } else if (!(__atomic_load_n(used_flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY)) {
    kick();
  }
}

static inline void submit(int s, uint32_t type, uint64_t offset, uint32_t bytes) {
  struct slot *sl = &slots[s];
  uint16_t h = (uint16_t)(s * DESCS_PER_REQ);
  struct blk_outhdr *hdr = (struct blk_outhdr *)(mem + gpa_hdr) + s;
  hdr->type = type;
  hdr->reserved = 0;
  hdr->sector = offset / SECTOR;
  mem[gpa_status + (uint64_t)s] = 0xff; /* so a status the device never wrote shows */
  if (type == VIRTIO_BLK_T_FLUSH) {
    desc[h].next = (uint16_t)(h + 2); /* 5.2.6: flush has no data */
  } else {
    desc[h].next = (uint16_t)(h + 1);
    desc[h + 1].len = bytes;
    desc[h + 1].flags = (uint16_t)(VRING_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0));
  }
  sl->type = type;
  sl->bytes = bytes;
  sl->offset = offset;
  sl->busy = 1;
  sl->t_submit = now_ns();
  avail_ring[avail_shadow & (qsz - 1)] = h;
  avail_shadow++;
}

/* Tells the device whether to signal the call eventfd on the next used buffer (2.7.7, 2.7.10). */
static inline void set_interrupts(int on) {
  if (event_idx) {
    /* Off: an event index half the ring space ahead, which used->idx cannot reach while at most
     * MAX_QD requests are in flight and it is moved on at every reap. */
    __atomic_store_n(used_event, on ? last_used : (uint16_t)(last_used + 0x7fff), __ATOMIC_RELAXED);
  } else {
    __atomic_store_n(avail_flags, on ? 0 : VRING_AVAIL_F_NO_INTERRUPT, __ATOMIC_RELAXED);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Latency histogram: log-linear, 128 sub-buckets per power of two (< 0.8 % error)               */

#define HBITS 7
#define HSUB (1u << HBITS)
#define HBUCKETS (HSUB * 58)
static uint64_t hist[HBUCKETS];
static uint64_t lat_sum, lat_n, lat_max;

static inline uint32_t hindex(uint64_t v) {
  if (v < HSUB) return (uint32_t)v;
  uint32_t e = 63u - (uint32_t)__builtin_clzll(v); /* >= HBITS */
  uint32_t m = (uint32_t)(v >> (e - HBITS));      /* in [HSUB, 2*HSUB) */
  return (e - HBITS) * HSUB + m;
}
static double hvalue(uint32_t i) {
  if (i < HSUB) return (double)i;
  uint32_t e = i / HSUB + HBITS - 1, m = i % HSUB + HSUB;
  double lo = (double)((uint64_t)m << (e - HBITS)), w = (double)(1ull << (e - HBITS));
  return lo + w / 2;
}
static void hist_reset(void) {
  memset(hist, 0, sizeof hist);
  lat_sum = lat_n = lat_max = 0;
}
static inline void hist_add(uint64_t ns) {
  hist[hindex(ns)]++;
  lat_sum += ns;
  lat_n++;
  if (ns > lat_max) lat_max = ns;
}
static double hist_pct(double p) {
  if (lat_n == 0) return 0;
  uint64_t target = (uint64_t)(p * (double)lat_n);
  if (target >= lat_n) target = lat_n - 1;
  uint64_t acc = 0;
  for (uint32_t i = 0; i < HBUCKETS; i++) {
    acc += hist[i];
    if (acc > target) return hvalue(i);
  }
  return (double)lat_max;
}

/* ------------------------------------------------------------------------------------------ */
/* Completion                                                                                   */

typedef void (*complete_fn)(int slot, uint32_t len);
static uint64_t len_mismatches;

/* Takes every used element available; calls done() for each. Returns how many. */
static inline int reap(complete_fn done) {
  uint16_t u = __atomic_load_n(used_idx, __ATOMIC_ACQUIRE); /* 2.7.14: ring entries after idx */
  uint16_t pending = (uint16_t)(u - last_used);
  if (pending == 0) return 0;
  if (pending > (uint16_t)nslots) die("used->idx moved by %u with at most %d requests in flight", pending, nslots);
  uint64_t t = now_ns();
  int n = 0;
  while (last_used != u) {
    uint32_t id = used_ring[last_used & (qsz - 1)].id;
    uint32_t len = used_ring[last_used & (qsz - 1)].len;
    last_used++;
    if (id % DESCS_PER_REQ != 0 || id / DESCS_PER_REQ >= (uint32_t)nslots) die("used id %u is not a head we made available", id);
    int s = (int)(id / DESCS_PER_REQ);
    if (!slots[s].busy) die("used id %u was not in flight", id);
    slots[s].busy = 0;
    uint8_t st = mem[gpa_status + (uint64_t)s];
    if (st != VIRTIO_BLK_S_OK) {
      die("request (type %u, offset %" PRIu64 ", %u bytes) failed with status %u", slots[s].type, slots[s].offset, slots[s].bytes, st);
    }
    /* 2.7.8: len is the number of bytes written into the buffer: data (reads) and status. */
    uint32_t expect = (slots[s].type == VIRTIO_BLK_T_IN ? slots[s].bytes : 0) + 1;
    if (len != expect) len_mismatches++;
    hist_add(t - slots[s].t_submit);
    done(s, len);
    n++;
  }
  return n;
}

/* Waits for at least one completion (bounded by --timeout-ms). */
static int wait_completions(int poll_mode, complete_fn done) {
  if (poll_mode) {
    /* Spin on used->idx; check the clock only every 64K spins to stay off the bus. */
    double limit = 0;
    for (uint64_t spins = 0;; spins++) {
      int n = reap(done);
      if (n) {
        set_interrupts(0);
        return n;
      }
      if ((spins & 0xffff) == 0xffff) {
        double t = now_s();
        if (limit == 0) limit = t + opt.timeout_ms / 1000.0;
        else if (t > limit) die("no completion within %d ms (polling)", opt.timeout_ms);
      }
      __builtin_ia32_pause();
    }
  }
  for (;;) {
    int n = reap(done);
    if (n) return n;
    set_interrupts(1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* 2.7.13.5: enable, then re-check used->idx */
    n = reap(done);
    if (n) return n;
    struct pollfd p = {.fd = call_fd, .events = POLLIN};
    int r;
    do r = poll(&p, 1, opt.timeout_ms); while (r < 0 && errno == EINTR);
    if (r < 0) DIE_ERRNO("poll call eventfd");
    if (r == 0) die("no completion within %d ms (call eventfd)", opt.timeout_ms);
    uint64_t cnt;
    ssize_t rd;
    do rd = read(call_fd, &cnt, sizeof cnt); while (rd < 0 && errno == EINTR);
    if (rd < 0 && errno != EAGAIN) DIE_ERRNO("read call eventfd");
    if (rd >= 0 && rd != (ssize_t)sizeof cnt) die("read call eventfd: %zd bytes", rd);
    calls_waited++;
  }
}

static int busy_count(void) {
  int b = 0;
  for (int s = 0; s < nslots; s++) b += slots[s].busy;
  return b;
}

/* ------------------------------------------------------------------------------------------ */
/* Benchmark jobs                                                                               */

static struct job *cur;
static uint64_t seq_next, span_bytes;
static int stopping;
static int free_stack[MAX_QD], free_top;

static void bench_done(int s, uint32_t len) {
  (void)len;
  free_stack[free_top++] = s;
}

static inline uint64_t next_offset(uint32_t bs) {
  uint64_t blocks = span_bytes / bs;
  uint64_t off;
  if (cur->random) {
    off = (rng_next() % blocks) * bs;
  } else {
    off = seq_next;
    seq_next += bs;
    if (seq_next + bs > span_bytes) seq_next = 0;
  }
  return off;
}

/* " queue=Q" on RESULT lines when several queues run at once. */
static const char *queue_field(void) {
  static char f[16];
  if (opt.queues == 1) return "";
  snprintf(f, sizeof f, " queue=%d", qidx);
  return f;
}

static void run_job(struct job *j) {
  cur = j;
  if (j->bs > slot_data_bytes) die("job %s: %u-byte requests need more --mem-mib", j->name, j->bs);
  if (size_max && j->bs > size_max) die("job %s: %u-byte requests exceed the device's size_max %u", j->name, j->bs, size_max);
  if (j->qd > nslots) die("job %s: depth %d needs a larger --queue-size", j->name, j->qd);
  span_bytes = capacity_sectors * SECTOR;
  if (span_bytes < j->bs) die("job %s: the disk is smaller than one request", j->name);
  seq_next = 0;
  stopping = 0;
  free_top = 0;
  for (int s = j->qd - 1; s >= 0; s--) free_stack[free_top++] = s;
  hist_reset();
  len_mismatches = 0;
  uint64_t kicks0 = kicks, calls0 = calls_waited;
  set_interrupts(!j->poll_mode);

  uint64_t ios = 0;
  double t0 = now_s(), deadline = t0 + opt.duration, t_end = t0;
  for (;;) {
    while (free_top > 0 && !stopping) {
      int s = free_stack[--free_top];
      submit(s, j->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, next_offset(j->bs), j->bs);
    }
    publish();
    if (free_top == j->qd) break; /* everything drained after the deadline */
    int n = wait_completions(j->poll_mode, bench_done);
    ios += (uint64_t)n;
    /* One clock read per reap batch: at depth 1 that is once per request, as the latency is. */
    t_end = now_s();
    if (!stopping && t_end >= deadline) stopping = 1;
  }
  double secs = t_end - t0;
  printf("RESULT job=%s pattern=%s bs=%u qd=%d completion=%s ios=%" PRIu64 " secs=%.3f iops=%.0f mbps=%.1f "
         "lat_mean_us=%.2f lat_p50_us=%.2f lat_p99_us=%.2f lat_max_us=%.2f kicks=%" PRIu64 " waits=%" PRIu64
         " len_mismatches=%" PRIu64 "%s\n",
         j->name, j->random ? (j->write ? "randw" : "rand") : (j->write ? "seqw" : "seq"), j->bs, j->qd, j->poll_mode ? "poll" : "call", ios, secs,
         (double)ios / secs, (double)ios * j->bs / secs / 1e6, lat_n ? (double)lat_sum / (double)lat_n / 1e3 : 0.0,
         hist_pct(0.50) / 1e3, hist_pct(0.99) / 1e3, (double)lat_max / 1e3, kicks - kicks0, calls_waited - calls0,
         len_mismatches, queue_field());
  fflush(stdout);
}

/* ------------------------------------------------------------------------------------------ */
/* Verify: write patterns, flush, read back in other chunk sizes, compare                       */

static uint64_t verify_seed, verify_bad_at;
static int verify_bad;
static uint64_t bytes_written, bytes_read, requests_done;

static void fill_pattern(int s, uint64_t offset, uint32_t bytes, uint64_t seed) {
  uint64_t *w = (uint64_t *)(mem + gpa_data + (uint64_t)slot_data_bytes * (uint64_t)s);
  for (uint32_t i = 0; i < bytes / 8; i++) w[i] = pattern_word(seed, offset / 8 + i);
}

static void verify_done(int s, uint32_t len) {
  (void)len;
  struct slot *sl = &slots[s];
  requests_done++;
  if (sl->type == VIRTIO_BLK_T_IN) {
    bytes_read += sl->bytes;
    const uint64_t *w = (const uint64_t *)(mem + gpa_data + (uint64_t)slot_data_bytes * (uint64_t)s);
    for (uint32_t i = 0; i < sl->bytes / 8; i++) {
      if (w[i] != pattern_word(sl->seed, sl->offset / 8 + i)) {
        if (!verify_bad) {
          verify_bad = 1;
          verify_bad_at = sl->offset + 8ull * i;
        }
        break;
      }
    }
  } else if (sl->type == VIRTIO_BLK_T_OUT) {
    bytes_written += sl->bytes;
  }
  free_stack[free_top++] = s;
}

/* One pass over [0, region) in random 512-byte-multiple chunks of up to max_chunk bytes. */
static void verify_pass(uint32_t type, uint64_t region, uint32_t max_chunk, int poll_mode) {
  uint64_t off = 0;
  free_top = 0;
  for (int s = opt.verify_qd - 1; s >= 0; s--) free_stack[free_top++] = s;
  set_interrupts(!poll_mode);
  for (;;) {
    while (free_top > 0 && off < region) {
      int s = free_stack[--free_top];
      uint32_t chunk = (uint32_t)(1 + rng_next() % (max_chunk / SECTOR)) * SECTOR;
      if (off + chunk > region) chunk = (uint32_t)(region - off);
      if (type == VIRTIO_BLK_T_OUT) fill_pattern(s, off, chunk, verify_seed);
      else memset(mem + gpa_data + (uint64_t)slot_data_bytes * (uint64_t)s, 0xa5, chunk);
      slots[s].seed = verify_seed;
      submit(s, type, off, chunk);
      off += chunk;
    }
    publish();
    if (free_top == opt.verify_qd) return;
    wait_completions(poll_mode, verify_done);
    if (verify_bad) return;
  }
}

static void verify_flush(int poll_mode) {
  free_top = 0;
  set_interrupts(!poll_mode);
  submit(0, VIRTIO_BLK_T_FLUSH, 0, 0);
  publish();
  while (slots[0].busy) wait_completions(poll_mode, verify_done);
}

static int run_verify(void) {
  if (read_only) die("--verify: the device is read-only (VIRTIO_BLK_F_RO)");
  if (opt.verify_qd > nslots) die("--verify-qd %d needs a larger --queue-size", opt.verify_qd);
  uint64_t region = opt.verify_bytes;
  if (region > capacity_sectors * SECTOR) region = capacity_sectors * SECTOR;
  uint32_t max_chunk = slot_data_bytes < (256u << 10) ? slot_data_bytes : (256u << 10);
  if (size_max && max_chunk > size_max) max_chunk = size_max & ~(SECTOR - 1);
  if (max_chunk < SECTOR) die("--verify: no room for a 512-byte request");
  double t0 = now_s(), deadline = t0 + opt.duration;
  int rounds = 0;
  uint64_t flushes = 0;
  /* At least one round; at most 10000, so a very fast device still ends. */
  do {
    int poll_mode = rounds & 1; /* alternate the completion paths */
    verify_seed = rng_next();
    verify_pass(VIRTIO_BLK_T_OUT, region, max_chunk, poll_mode);
    if (has_flush) {
      verify_flush(poll_mode);
      flushes++;
    }
    verify_pass(VIRTIO_BLK_T_IN, region, max_chunk, !poll_mode);
    rounds++;
    if (verify_bad) {
      printf("VERIFY FAIL round=%d offset=%" PRIu64 " seed=0x%" PRIx64 "\n", rounds, verify_bad_at, verify_seed);
      fflush(stdout);
      return 1;
    }
  } while (now_s() < deadline && rounds < 10000);
  if (busy_count() != 0) die("--verify: requests still in flight at the end");
  /* last_seed lets a test check the back-end's storage itself: word i of the region holds
   * pattern_word(last_seed, i) (splitmix64 of last_seed + i * golden ratio). */
  printf("VERIFY OK rounds=%d region=%" PRIu64 " bytes_written=%" PRIu64 " bytes_read=%" PRIu64 " requests=%" PRIu64
         " flushes=%" PRIu64 " secs=%.3f len_mismatches=%" PRIu64 " last_seed=0x%" PRIx64 "\n",
         rounds, region, bytes_written, bytes_read, requests_done, flushes, now_s() - t0, len_mismatches, verify_seed);
  fflush(stdout);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Session set-up                                                                               */

static void connect_backend(void) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(opt.socket_path) >= sizeof sa.sun_path) die("socket path too long: %s", opt.socket_path);
  strcpy(sa.sun_path, opt.socket_path);
  /* A back-end that has just been started may not have bound or be listening yet: retry ENOENT and
   * ECONNREFUSED every 10 ms, within --timeout-ms. */
  double limit = now_s() + opt.timeout_ms / 1000.0;
  for (;;) {
    sock_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock_fd < 0) DIE_ERRNO("socket");
    if (connect(sock_fd, (struct sockaddr *)&sa, sizeof sa) == 0) break;
    int err = errno;
    if (close(sock_fd) != 0) DIE_ERRNO("close socket");
    sock_fd = -1;
    if ((err != ENOENT && err != ECONNREFUSED && err != EINTR) || now_s() > limit) die("connect %s: %s", opt.socket_path, strerror(err));
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    if (nanosleep(&ts, NULL) != 0 && errno != EINTR) DIE_ERRNO("nanosleep");
  }
  struct timeval tv = {.tv_sec = opt.timeout_ms / 1000, .tv_usec = (opt.timeout_ms % 1000) * 1000};
  if (setsockopt(sock_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) DIE_ERRNO("setsockopt SO_RCVTIMEO");
  if (setsockopt(sock_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) DIE_ERRNO("setsockopt SO_SNDTIMEO");
}

static void setup_memory(void) {
  mem_fd = memfd_create("vhost-blk-loadgen-guest", MFD_CLOEXEC);
  if (mem_fd < 0) DIE_ERRNO("memfd_create");
  if (ftruncate(mem_fd, (off_t)opt.mem_bytes) != 0) DIE_ERRNO("ftruncate memfd");
  void *p = mmap(NULL, opt.mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd, 0);
  if (p == MAP_FAILED) DIE_ERRNO("mmap memfd");
  mem = p;
  /* Touch every page now so page faults do not land in the measurements. */
  memset(mem, 0, opt.mem_bytes);
  for (int q = 0; q < opt.queues; q++) {
    kick_fds[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (kick_fds[q] < 0) DIE_ERRNO("eventfd kick");
    call_fds[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (call_fds[q] < 0) DIE_ERRNO("eventfd call");
  }
}

static void handshake(void) {
  struct vu_msg m;
  /* SET_OWNER carries no payload. */
  memset(&m, 0, VU_HDR_SIZE);
  m.request = VU_SET_OWNER;
  m.size = 0;
  vu_set(&m, -1, "SET_OWNER");

  uint64_t offered = vu_get_u64(VU_GET_FEATURES, "GET_FEATURES");
  if (!(offered & (1ull << VIRTIO_F_VERSION_1))) die("the back-end does not offer VIRTIO_F_VERSION_1");
  if (!(offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) die("the back-end does not offer VHOST_USER_F_PROTOCOL_FEATURES");

  uint64_t pf = vu_get_u64(VU_GET_PROTOCOL_FEATURES, "GET_PROTOCOL_FEATURES");
  uint64_t want_pf = (1ull << PROTO_F_MQ) | (1ull << PROTO_F_REPLY_ACK) | (1ull << PROTO_F_CONFIG);
  proto_features = pf & want_pf;
  if (!(proto_features & (1ull << PROTO_F_CONFIG))) die("the back-end does not offer the CONFIG protocol feature");
  vu_set_u64(VU_SET_PROTOCOL_FEATURES, proto_features, -1, "SET_PROTOCOL_FEATURES");
  /* From here on every request without its own reply asks for an ack (REPLY_ACK). */
  reply_ack = (proto_features & (1ull << PROTO_F_REPLY_ACK)) != 0;

  uint64_t nq = 1;
  if (proto_features & (1ull << PROTO_F_MQ)) {
    nq = vu_get_u64(VU_GET_QUEUE_NUM, "GET_QUEUE_NUM");
    if (nq < 1) die("GET_QUEUE_NUM: %" PRIu64 " queues", nq);
  }
  if ((uint64_t)opt.queues > nq) die("--queues %d: the back-end has %" PRIu64 " queue(s)", opt.queues, nq);

  uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) | (1ull << VIRTIO_BLK_F_SIZE_MAX) |
                  (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
                  (1ull << VIRTIO_BLK_F_FLUSH);
  if (opt.want_event_idx) want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
  /* Never INDIRECT_DESC: every request is a plain three-descriptor chain. */
  want &= ~(1ull << VIRTIO_RING_F_INDIRECT_DESC);
  features = offered & want;
  vu_set_u64(VU_SET_FEATURES, features, -1, "SET_FEATURES");
  event_idx = (features & (1ull << VIRTIO_RING_F_EVENT_IDX)) != 0;
  has_flush = (features & (1ull << VIRTIO_BLK_F_FLUSH)) != 0;
  read_only = (features & (1ull << VIRTIO_BLK_F_RO)) != 0;

  /* 5.2.4: capacity (le64), size_max, seg_max, geometry, blk_size: the first 24 bytes. */
  memset(&m, 0, sizeof m);
  m.request = VU_GET_CONFIG;
  m.size = 12 + 24;
  m.p.cfg.offset = 0;
  m.p.cfg.size = 24;
  vu_get(&m, "GET_CONFIG");
  if (m.size != 12 + 24 || m.p.cfg.size != 24) die("GET_CONFIG: reply of %u bytes (config size %u), expected 36", m.size, m.p.cfg.size);
  memcpy(&capacity_sectors, m.p.cfg.data, 8);
  uint32_t smax, blk_size;
  memcpy(&smax, m.p.cfg.data + 8, 4);
  memcpy(&blk_size, m.p.cfg.data + 20, 4);
  size_max = (features & (1ull << VIRTIO_BLK_F_SIZE_MAX)) ? smax : 0;
  if (capacity_sectors == 0) die("GET_CONFIG: capacity is 0");

  /* 2.7: one region, guest physical 0 .. mem_bytes, at our mapping. */
  memset(&m, 0, sizeof m);
  m.request = VU_SET_MEM_TABLE;
  m.size = 8 + 32;
  m.p.mem.nregions = 1;
  m.p.mem.r[0].gpa = 0;
  m.p.mem.r[0].size = opt.mem_bytes;
  m.p.mem.r[0].uaddr = (uint64_t)(uintptr_t)mem;
  m.p.mem.r[0].mmap_offset = 0;
  vu_set(&m, mem_fd, "SET_MEM_TABLE");

  /* Queues 0..--queues-1, each in its own slice of guest memory. */
  for (int q = opt.queues - 1; q >= 0; q--) {
    select_queue(q);
    vu_set_state(VU_SET_VRING_NUM, (uint32_t)q, qsz, "SET_VRING_NUM");
    memset(&m, 0, sizeof m);
    m.request = VU_SET_VRING_ADDR;
    m.size = 40;
    m.p.addr.index = (uint32_t)q;
    m.p.addr.flags = 0;
    m.p.addr.desc = (uint64_t)(uintptr_t)(mem + gpa_desc); /* front-end user addresses */
    m.p.addr.used = (uint64_t)(uintptr_t)(mem + gpa_used);
    m.p.addr.avail = (uint64_t)(uintptr_t)(mem + gpa_avail);
    m.p.addr.log = 0;
    vu_set(&m, -1, "SET_VRING_ADDR");
    vu_set_state(VU_SET_VRING_BASE, (uint32_t)q, 0, "SET_VRING_BASE");
    vu_set_u64(VU_SET_VRING_CALL, (uint64_t)q, call_fd, "SET_VRING_CALL");
    vu_set_u64(VU_SET_VRING_KICK, (uint64_t)q, kick_fd, "SET_VRING_KICK");
    /* With VHOST_USER_F_PROTOCOL_FEATURES the ring starts disabled. */
    vu_set_state(VU_SET_VRING_ENABLE, (uint32_t)q, 1, "SET_VRING_ENABLE");
  }

  printf("INFO features=0x%" PRIx64 " offered=0x%" PRIx64 " protocol=0x%" PRIx64 " queues=%" PRIu64 " capacity_sectors=%" PRIu64
         " size_max=%u blk_size=%u event_idx=%d flush=%d ro=%d queue_size=%u slots=%d\n",
         features, offered, proto_features, nq, capacity_sectors, size_max,
         (features & (1ull << VIRTIO_BLK_F_BLK_SIZE)) ? blk_size : 0, event_idx, has_flush, read_only, qsz, nslots);
  fflush(stdout);
}

/* Stops the rings (GET_VRING_BASE) so the back-end lets go of the memory before we unmap it.
 * `made[q]`: how many requests queue q made available. */
static void teardown(const uint16_t *made) {
  for (int q = 0; q < opt.queues; q++) {
    struct vu_msg m = {.request = VU_GET_VRING_BASE, .size = 8};
    m.p.state.index = (uint32_t)q;
    m.p.state.num = 0;
    vu_get(&m, "GET_VRING_BASE");
    if (m.size != 8) die("GET_VRING_BASE: reply of %u bytes", m.size);
    if (m.p.state.num != made[q]) {
      die("GET_VRING_BASE: the back-end stopped queue %d at %u, %u were made available", q, m.p.state.num, made[q]);
    }
  }
  if (close(sock_fd) != 0) DIE_ERRNO("close socket");
  for (int q = 0; q < opt.queues; q++) {
    if (close(kick_fds[q]) != 0 || close(call_fds[q]) != 0) DIE_ERRNO("close eventfd");
  }
  if (munmap(mem, opt.mem_bytes) != 0) DIE_ERRNO("munmap");
  if (close(mem_fd) != 0) DIE_ERRNO("close memfd");
}

/* --queues N: one child per queue runs every job on its ring (at the same time as the others);
 * each leaves its final avail index in `made` (shared memory) for the parent's teardown. */
static int run_queues(double bound, uint16_t *made) {
  pid_t pids[MAX_QUEUES];
  fflush(stdout);
  for (int q = 0; q < opt.queues; q++) {
    pid_t pid = fork();
    if (pid < 0) DIE_ERRNO("fork");
    if (pid == 0) {
      alarm((unsigned)bound); /* alarms are not inherited */
      select_queue(q);
      rng_state = (opt.seed ? opt.seed : 1) + (uint64_t)q * 0x9E3779B97F4A7C15ull;
      for (int i = 0; i < opt.njobs; i++) run_job(&opt.jobs[i]);
      made[q] = avail_shadow;
      fflush(stdout);
      _exit(0);
    }
    pids[q] = pid;
  }
  int rc = 0;
  for (int q = 0; q < opt.queues; q++) {
    int st;
    while (waitpid(pids[q], &st, 0) < 0) {
      if (errno != EINTR) DIE_ERRNO("waitpid");
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "vhost-blk-loadgen: queue %d's process failed (status 0x%x)\n", q, st);
      rc = 1;
    }
  }
  return rc;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  rng_state = opt.seed ? opt.seed : 1;
  /* Last-resort bound on the whole run: every job or verify run, plus set-up and drain time. */
  double bound = (opt.verify ? opt.duration * 4 : opt.duration * opt.njobs) + 30 + (opt.timeout_ms / 1000.0) * 3;
  alarm((unsigned)bound);
  setup_memory();
  connect_backend();
  handshake();
  int rc = 0;
  uint16_t one[1];
  uint16_t *made = one;
  if (opt.verify) {
    rc = run_verify();
    one[0] = avail_shadow;
  } else if (opt.queues == 1) {
    for (int i = 0; i < opt.njobs; i++) run_job(&opt.jobs[i]);
    one[0] = avail_shadow;
  } else {
    made = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (made == MAP_FAILED) DIE_ERRNO("mmap");
    rc = run_queues(bound, made);
  }
  if (rc == 0) teardown(made);
  return rc;
}
