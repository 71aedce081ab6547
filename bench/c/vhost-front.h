/*
 * vhost-front: the part of a guest-less vhost-user front-end that does not depend on the device
 * type, shared by bench/c/vhost-blk-loadgen.c and bench/c/vhost-fs-loadgen.c.
 *
 * It plays the part QEMU plays for a VM, without the VM: guest RAM is a memfd mapped here and
 * handed to the back-end with SET_MEM_TABLE (guest physical address 0 = memfd offset 0); split
 * virtqueues (2.7) are laid out in that memory and started with SET_VRING_*; requests are made
 * available, the back-end is notified through the kick eventfd when it asks (2.7.10), and
 * completions are seen by spinning on used->idx or by waiting on the call eventfd.
 *
 * Rules: every syscall's result is checked; every wait is bounded; the back-end is untrusted
 * (how far used->idx moves is checked here, the ids and lengths by the caller's `done`); the hot
 * path (add, publish, reap, wait) allocates nothing. Anything fatal ends the process with
 * "<vf_prog>: message" on stderr and exit status 1.
 *
 * Built together with one device program: gcc -O2 -Wall -Wextra -Werror -o X vhost-front.c X.c
 */
#ifndef VHOST_FRONT_H
#define VHOST_FRONT_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------ */
/* Constants (virtio 1.x 2.7, 6; vhost-user.rst)                                               */

#define VIRTIO_F_VERSION_1 32
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VHOST_USER_F_PROTOCOL_FEATURES 30

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

struct vring_desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct vring_used_elem { uint32_t id, len; };

/* ------------------------------------------------------------------------------------------ */
/* Errors and clocks                                                                            */

/** The program's name, the prefix of every fatal message. */
extern const char *vf_prog;
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
#define DIE_ERRNO(what) die("%s: %s", (what), strerror(errno))

double now_s(void);
static inline uint64_t now_ns(void) {
  struct timespec ts;
  /* CLOCK_MONOTONIC goes through the vDSO: no syscall on the hot path. */
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) DIE_ERRNO("clock_gettime");
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
/** A non-negative integer option (decimal, 0x hex, 0 octal); dies naming `what` otherwise. */
uint64_t parse_u64(const char *s, const char *what);

/* ------------------------------------------------------------------------------------------ */
/* PRNG (xorshift64*) and the verify pattern (splitmix64 of seed and word index)                */

extern uint64_t rng_state;
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
/* Latency histogram: log-linear, 128 sub-buckets per power of two (< 0.8 % error)               */

#define HBITS 7
#define HSUB (1u << HBITS)
#define HBUCKETS (HSUB * 58)
extern uint64_t hist[HBUCKETS];
extern uint64_t lat_sum, lat_n, lat_max;

static inline uint32_t hindex(uint64_t v) {
  if (v < HSUB) return (uint32_t)v;
  uint32_t e = 63u - (uint32_t)__builtin_clzll(v); /* >= HBITS */
  uint32_t m = (uint32_t)(v >> (e - HBITS));      /* in [HSUB, 2*HSUB) */
  return (e - HBITS) * HSUB + m;
}
static inline void hist_add(uint64_t ns) {
  hist[hindex(ns)]++;
  lat_sum += ns;
  lat_n++;
  if (ns > lat_max) lat_max = ns;
}
void hist_reset(void);
/** The latency (ns) below which a fraction p of the samples lie. */
double hist_pct(double p);

/* ------------------------------------------------------------------------------------------ */
/* vhost-user messaging                                                                         */

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

/** The session: the socket, the guest memory and what was negotiated. */
struct vf_session {
  int sock_fd;
  int timeout_ms; /* bound on any single wait for the back-end */
  uint64_t proto_features;
  int reply_ack;  /* REPLY_ACK negotiated: every request without its own reply asks for an ack */
  uint8_t *mem;   /* guest physical address 0 */
  uint64_t mem_bytes;
  int mem_fd;
};
extern struct vf_session vf;

/** Maps `bytes` of memfd-backed guest memory (every page touched now). */
void vf_setup_memory(uint64_t bytes, const char *memfd_name);
/** Connects to the back-end's socket (retrying ENOENT/ECONNREFUSED within `timeout_ms`). */
void vf_connect(const char *path, int timeout_ms);
/** A request with a reply (GET_*): `m` is overwritten with the reply. */
void vu_get(struct vu_msg *m, const char *what);
uint64_t vu_get_u64(uint32_t request, const char *what);
/** A request without a reply (with REPLY_ACK: asks for one and checks it is 0); `fd` < 0: none. */
void vu_set(struct vu_msg *m, int fd, const char *what);
void vu_set_u64(uint32_t request, uint64_t v, int fd, const char *what);
void vu_set_state(uint32_t request, uint32_t index, uint32_t num, const char *what);
/** SET_OWNER; then GET_FEATURES, which must offer VERSION_1 and PROTOCOL_FEATURES: the offer. */
uint64_t vf_owner_and_features(void);
/** GET/SET_PROTOCOL_FEATURES: takes what is offered of `want`; dies if a `required` one is not. */
void vf_protocol_features(uint64_t want, uint64_t required);
/** SET_MEM_TABLE: one region, guest physical 0 .. mem_bytes, at our mapping. */
void vf_set_mem_table(void);

/* ------------------------------------------------------------------------------------------ */
/* Split virtqueues (2.7)                                                                       */

struct vf_vq {
  uint32_t index;        /* the queue's number in the device */
  uint32_t qsz;          /* ring size, a power of two */
  int max_inflight;      /* the most chains the driver has out at once (used->idx check) */
  int event_idx;         /* VIRTIO_RING_F_EVENT_IDX negotiated */
  uint64_t gpa_desc, gpa_avail, gpa_used;
  struct vring_desc *desc;
  volatile uint16_t *avail_flags, *avail_idx, *avail_ring, *used_event;
  volatile uint16_t *used_flags, *used_idx, *avail_event;
  volatile struct vring_used_elem *used_ring;
  int kick_fd, call_fd;
  /* Driver ring state. */
  uint16_t avail_shadow, avail_published, last_used;
  /* Counters: notifications sent, call-eventfd wake-ups, rescues (see vf_vq_wait). */
  uint64_t kicks, calls_waited, rescue_kicks, rescue_used;
};

/** Lays the ring out at guest physical `base`; returns the first page-aligned address after it. */
uint64_t vf_vq_layout(struct vf_vq *q, uint32_t index, uint32_t qsz, uint64_t base);
/** Makes the kick and call eventfds. */
void vf_vq_eventfds(struct vf_vq *q);
/** SET_VRING_NUM/ADDR/BASE/CALL/KICK and SET_VRING_ENABLE 1. */
void vf_vq_start(struct vf_vq *q);
/** GET_VRING_BASE (stops the ring); dies unless the back-end stopped where we made buffers available. */
void vf_vq_stop(struct vf_vq *q);

static inline int vf_need_event(uint16_t ev, uint16_t new_idx, uint16_t old) {
  return (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old); /* 2.7.10 */
}

void vf_vq_kick(struct vf_vq *q);

/** Puts the chain starting at `head` in the available ring (not yet visible to the device). */
static inline void vf_vq_add(struct vf_vq *q, uint16_t head) {
  q->avail_ring[q->avail_shadow & (q->qsz - 1)] = head;
  q->avail_shadow++;
}

/** Publishes the avail entries added since the last publish and notifies if the device asks. */
static inline void vf_vq_publish(struct vf_vq *q) {
  uint16_t old = q->avail_published, nw = q->avail_shadow;
  if (old == nw) return;
  __atomic_store_n(q->avail_idx, nw, __ATOMIC_RELEASE); /* 2.7.13.3: idx after the ring entry */
  q->avail_published = nw;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);               /* 2.7.13.4: idx before the suppression check */
  if (q->event_idx) {
    if (vf_need_event(__atomic_load_n(q->avail_event, __ATOMIC_RELAXED), nw, old)) vf_vq_kick(q);
  } else if (!(__atomic_load_n(q->used_flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY)) {
    vf_vq_kick(q);
  }
}

/** Tells the device whether to signal the call eventfd on the next used buffer (2.7.7, 2.7.10). */
static inline void vf_vq_set_interrupts(struct vf_vq *q, int on) {
  if (q->event_idx) {
    /* Off: an event index half the ring space ahead, which used->idx cannot reach while at most
     * max_inflight chains are out and it is moved on at every reap. */
    __atomic_store_n(q->used_event, on ? q->last_used : (uint16_t)(q->last_used + 0x7fff), __ATOMIC_RELAXED);
  } else {
    __atomic_store_n(q->avail_flags, on ? 0 : VRING_AVAIL_F_NO_INTERRUPT, __ATOMIC_RELAXED);
  }
}

/** Called once per used element: its id and len (unchecked: the back-end wrote them), and the
 * time the batch was seen (ns). */
typedef void (*vf_done_fn)(uint32_t id, uint32_t len, uint64_t t_ns);

/** Takes every used element available; calls done() for each. Returns how many. */
static inline int vf_vq_reap(struct vf_vq *q, vf_done_fn done) {
  uint16_t u = __atomic_load_n(q->used_idx, __ATOMIC_ACQUIRE); /* 2.7.14: ring entries after idx */
  uint16_t pending = (uint16_t)(u - q->last_used);
  if (pending == 0) return 0;
  if (pending > (uint16_t)q->max_inflight) die("used->idx moved by %u with at most %d requests in flight", pending, q->max_inflight);
  uint64_t t = now_ns();
  int n = 0;
  while (q->last_used != u) {
    uint32_t id = q->used_ring[q->last_used & (q->qsz - 1)].id;
    uint32_t len = q->used_ring[q->last_used & (q->qsz - 1)].len;
    q->last_used++;
    done(id, len, t);
    n++;
  }
  return n;
}

/**
 * Waits for at least one completion of `q` (bounded by the session's timeout); returns how many.
 * poll_mode: spin on used->idx with notifications off; else wait on the call eventfd.
 * rescue_ms > 0 (call mode): a wait of rescue_ms with nothing signalled looks at the used ring
 * and, if the device used nothing, notifies it again, as a driver with a watchdog timer would: a
 * device must accept spurious notifications (2.7.10), and QEMU 7.2's virtiofsd loses some
 * (docs/devices/fs.md). Each is counted (rescue_used: a call was lost or late; rescue_kicks: a
 * kick was). 0: one wait of the whole timeout.
 */
int vf_vq_wait(struct vf_vq *q, int poll_mode, int rescue_ms, vf_done_fn done);

/** One queue of a vf_wait_any: the ring and what to call for each of its used elements. */
struct vf_waiter {
  struct vf_vq *q;
  vf_done_fn done;
};
/** vf_vq_wait's call mode over up to 8 queues at once: returns when any completed something
 * (how many in all); the rescue re-notifies every queue with buffers out. */
int vf_wait_any(struct vf_waiter *w, int n, int rescue_ms);

#endif
