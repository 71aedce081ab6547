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
 * The vhost-user session, guest memory, split ring and completion wait are bench/c/vhost-front.c
 * (shared with vhost-fs-loadgen.c). Built by scripts/bench.mjs and test/loadgen-qsd.test.ts:
 * gcc -O2 -Wall -Wextra -Werror -o ... vhost-front.c vhost-blk-options.c vhost-blk-loadgen.c
 */
#include "vhost-front.h"
#include "vhost-blk-options.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Constants (virtio 1.x 5.2)                                                                  */

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK 0

#define DESCS_PER_REQ 3

struct blk_outhdr { uint32_t type, reserved; uint64_t sector; };

/* ------------------------------------------------------------------------------------------ */
/* Guest memory and the request ring                                                           */

static struct vf_vq vqs[MAX_QUEUES];
/* The queue this process drives and its slice of guest memory (all of it with one queue). */
static struct vf_vq *vq;
static int qidx;
static uint64_t q_base, q_bytes;
static uint32_t qsz;
static uint8_t *mem;       /* guest physical address 0 */
static uint64_t gpa_hdr, gpa_status, gpa_data;
static uint32_t slot_data_bytes; /* data buffer per slot */

static uint64_t features;
static uint64_t capacity_sectors;
static uint32_t size_max; /* 0 = no limit advertised */
static int has_flush, read_only;

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

static void layout(void) {
  qsz = opt.queue_size;
  if ((uint64_t)MAX_QD * DESCS_PER_REQ > qsz) {
    /* The ring must hold MAX_QD three-descriptor chains; smaller rings cap the depth. */
    nslots = (int)(qsz / DESCS_PER_REQ);
  } else {
    nslots = MAX_QD;
  }
  vq->max_inflight = nslots;
  gpa_hdr = vf_vq_layout(vq, (uint32_t)qidx, qsz, q_base);
  gpa_status = gpa_hdr + sizeof(struct blk_outhdr) * MAX_QD;
  gpa_data = (gpa_status + MAX_QD + 4095) & ~(uint64_t)4095;
  if (gpa_data >= q_base + q_bytes) die("--mem-mib too small for the ring");
  uint64_t per = (q_base + q_bytes - gpa_data) / MAX_QD;
  per &= ~(uint64_t)4095;
  if (per > (4u << 20)) per = 4u << 20;
  if (per < 4096) die("--mem-mib too small for %d data buffers", MAX_QD);
  slot_data_bytes = (uint32_t)per;

  struct vring_desc *desc = vq->desc;

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
  vq = &vqs[q];
  q_bytes = (opt.mem_bytes / (uint64_t)opt.queues) & ~(uint64_t)4095;
  q_base = (uint64_t)q * q_bytes;
  layout();
}

static inline void submit(int s, uint32_t type, uint64_t offset, uint32_t bytes) {
  struct slot *sl = &slots[s];
  uint16_t h = (uint16_t)(s * DESCS_PER_REQ);
  struct vring_desc *desc = vq->desc;
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
  vf_vq_add(vq, h);
}

/* ------------------------------------------------------------------------------------------ */
/* Completion                                                                                   */

typedef void (*complete_fn)(int slot, uint32_t len);
static uint64_t len_mismatches;
static complete_fn cur_done;

/* One used element: checks it is a head in flight and the request succeeded, then done(). */
static void blk_used(uint32_t id, uint32_t len, uint64_t t) {
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
  cur_done(s, len);
}

/* Waits for at least one completion (bounded by --timeout-ms). */
static int wait_completions(int poll_mode, complete_fn done) {
  cur_done = done;
  return vf_vq_wait(vq, poll_mode, 0, blk_used);
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
  uint64_t kicks0 = vq->kicks, calls0 = vq->calls_waited;
  vf_vq_set_interrupts(vq, !j->poll_mode);

  uint64_t ios = 0;
  double t0 = now_s(), deadline = t0 + opt.duration, t_end = t0;
  for (;;) {
    while (free_top > 0 && !stopping) {
      int s = free_stack[--free_top];
      submit(s, j->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, next_offset(j->bs), j->bs);
    }
    vf_vq_publish(vq);
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
         hist_pct(0.50) / 1e3, hist_pct(0.99) / 1e3, (double)lat_max / 1e3, vq->kicks - kicks0, vq->calls_waited - calls0,
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
  vf_vq_set_interrupts(vq, !poll_mode);
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
    vf_vq_publish(vq);
    if (free_top == opt.verify_qd) return;
    wait_completions(poll_mode, verify_done);
    if (verify_bad) return;
  }
}

static void verify_flush(int poll_mode) {
  free_top = 0;
  vf_vq_set_interrupts(vq, !poll_mode);
  submit(0, VIRTIO_BLK_T_FLUSH, 0, 0);
  vf_vq_publish(vq);
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

static void setup_memory(void) {
  vf_setup_memory(opt.mem_bytes, "vhost-blk-loadgen-guest");
  mem = vf.mem;
  for (int q = 0; q < opt.queues; q++) vf_vq_eventfds(&vqs[q]);
}

static void handshake(void) {
  struct vu_msg m;
  uint64_t offered = vf_owner_and_features();
  vf_protocol_features((1ull << PROTO_F_MQ) | (1ull << PROTO_F_REPLY_ACK) | (1ull << PROTO_F_CONFIG), 1ull << PROTO_F_CONFIG);

  uint64_t nq = 1;
  if (vf.proto_features & (1ull << PROTO_F_MQ)) {
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
  int event_idx = (features & (1ull << VIRTIO_RING_F_EVENT_IDX)) != 0;
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

  vf_set_mem_table();

  /* Queues 0..--queues-1, each in its own slice of guest memory. */
  for (int q = opt.queues - 1; q >= 0; q--) {
    select_queue(q);
    vq->event_idx = event_idx;
    vf_vq_start(vq);
  }

  printf("INFO features=0x%" PRIx64 " offered=0x%" PRIx64 " protocol=0x%" PRIx64 " queues=%" PRIu64 " capacity_sectors=%" PRIu64
         " size_max=%u blk_size=%u event_idx=%d flush=%d ro=%d queue_size=%u slots=%d\n",
         features, offered, vf.proto_features, nq, capacity_sectors, size_max,
         (features & (1ull << VIRTIO_BLK_F_BLK_SIZE)) ? blk_size : 0, event_idx, has_flush, read_only, qsz, nslots);
  fflush(stdout);
}

/* Stops the rings (GET_VRING_BASE) so the back-end lets go of the memory before we unmap it.
 * `made[q]`: how many requests queue q made available. */
static void teardown(const uint16_t *made) {
  for (int q = 0; q < opt.queues; q++) {
    vqs[q].avail_shadow = made[q]; /* a forked child's count (--queues) */
    vf_vq_stop(&vqs[q]);
  }
  if (close(vf.sock_fd) != 0) DIE_ERRNO("close socket");
  for (int q = 0; q < opt.queues; q++) {
    if (close(vqs[q].kick_fd) != 0 || close(vqs[q].call_fd) != 0) DIE_ERRNO("close eventfd");
  }
  if (munmap(vf.mem, opt.mem_bytes) != 0) DIE_ERRNO("munmap");
  if (close(vf.mem_fd) != 0) DIE_ERRNO("close memfd");
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
      made[q] = vq->avail_shadow;
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
  vf_prog = "vhost-blk-loadgen";
  parse_args(argc, argv);
  rng_state = opt.seed ? opt.seed : 1;
  /* Last-resort bound on the whole run: every job or verify run, plus set-up and drain time. */
  double bound = (opt.verify ? opt.duration * 4 : opt.duration * opt.njobs) + 30 + (opt.timeout_ms / 1000.0) * 3;
  alarm((unsigned)bound);
  setup_memory();
  vf_connect(opt.socket_path, opt.timeout_ms);
  handshake();
  int rc = 0;
  uint16_t one[1];
  uint16_t *made = one;
  if (opt.verify) {
    rc = run_verify();
    one[0] = vq->avail_shadow;
  } else if (opt.queues == 1) {
    for (int i = 0; i < opt.njobs; i++) run_job(&opt.jobs[i]);
    one[0] = vq->avail_shadow;
  } else {
    made = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (made == MAP_FAILED) DIE_ERRNO("mmap");
    rc = run_queues(bound, made);
  }
  if (rc == 0) teardown(made);
  return rc;
}
