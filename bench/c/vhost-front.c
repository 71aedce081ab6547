/*
 * vhost-front: session set-up, vhost-user messaging and split rings for the guest-less C
 * front-ends (bench/c/vhost-blk-loadgen.c, bench/c/vhost-fs-loadgen.c). See vhost-front.h.
 */
#include "vhost-front.h"

#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

const char *vf_prog = "vhost-front";
struct vf_session vf = {.sock_fd = -1, .mem_fd = -1, .timeout_ms = 10000};
uint64_t rng_state = 1;
uint64_t hist[HBUCKETS];
uint64_t lat_sum, lat_n, lat_max;

/* ------------------------------------------------------------------------------------------ */
/* Errors and clocks                                                                            */

void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", vf_prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  /* The kernel closes the socket, memfd and eventfds. */
  exit(1);
}

double now_s(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) DIE_ERRNO("clock_gettime");
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t parse_u64(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') die("bad %s: '%s'", what, s);
  return (uint64_t)v;
}

/* ------------------------------------------------------------------------------------------ */
/* Latency histogram                                                                            */

static double hvalue(uint32_t i) {
  if (i < HSUB) return (double)i;
  uint32_t e = i / HSUB + HBITS - 1, m = i % HSUB + HSUB;
  double lo = (double)((uint64_t)m << (e - HBITS)), w = (double)(1ull << (e - HBITS));
  return lo + w / 2;
}
void hist_reset(void) {
  memset(hist, 0, sizeof hist);
  lat_sum = lat_n = lat_max = 0;
}
double hist_pct(double p) {
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
/* vhost-user messaging                                                                         */

static void recv_exact(void *buf, size_t len, const char *what) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = recv(vf.sock_fd, (uint8_t *)buf + got, len - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) die("%s: no reply within %d ms", what, vf.timeout_ms);
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
    ssize_t n = sendmsg(vf.sock_fd, &mh, MSG_NOSIGNAL);
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

void vu_get(struct vu_msg *m, const char *what) {
  uint32_t req = m->request;
  m->flags = VU_VERSION;
  vu_send(m, -1);
  vu_recv_reply(req, m, what);
}

uint64_t vu_get_u64(uint32_t request, const char *what) {
  struct vu_msg m = {.request = request, .size = 0};
  vu_get(&m, what);
  if (m.size != 8) die("%s: reply payload of %u bytes, expected 8", what, m.size);
  return m.p.u64;
}

void vu_set(struct vu_msg *m, int fd, const char *what) {
  uint32_t req = m->request;
  m->flags = VU_VERSION | (vf.reply_ack ? VU_FLAG_NEED_REPLY : 0);
  vu_send(m, fd);
  if (vf.reply_ack) {
    struct vu_msg r;
    vu_recv_reply(req, &r, what);
    if (r.size != 8) die("%s: ack payload of %u bytes", what, r.size);
    if (r.p.u64 != 0) die("%s: the back-end refused (0x%" PRIx64 ")", what, r.p.u64);
  }
}

void vu_set_u64(uint32_t request, uint64_t v, int fd, const char *what) {
  struct vu_msg m = {.request = request, .size = 8};
  m.p.u64 = v;
  vu_set(&m, fd, what);
}

void vu_set_state(uint32_t request, uint32_t index, uint32_t num, const char *what) {
  struct vu_msg m = {.request = request, .size = 8};
  m.p.state.index = index;
  m.p.state.num = num;
  vu_set(&m, -1, what);
}

/* ------------------------------------------------------------------------------------------ */
/* Session set-up                                                                               */

void vf_connect(const char *path, int timeout_ms) {
  vf.timeout_ms = timeout_ms;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) die("socket path too long: %s", path);
  strcpy(sa.sun_path, path);
  /* A back-end that has just been started may not have bound or be listening yet: retry ENOENT and
   * ECONNREFUSED every 10 ms, within the timeout. */
  double limit = now_s() + timeout_ms / 1000.0;
  for (;;) {
    vf.sock_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (vf.sock_fd < 0) DIE_ERRNO("socket");
    if (connect(vf.sock_fd, (struct sockaddr *)&sa, sizeof sa) == 0) break;
    int err = errno;
    if (close(vf.sock_fd) != 0) DIE_ERRNO("close socket");
    vf.sock_fd = -1;
    if ((err != ENOENT && err != ECONNREFUSED && err != EINTR) || now_s() > limit) die("connect %s: %s", path, strerror(err));
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    if (nanosleep(&ts, NULL) != 0 && errno != EINTR) DIE_ERRNO("nanosleep");
  }
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  if (setsockopt(vf.sock_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) DIE_ERRNO("setsockopt SO_RCVTIMEO");
  if (setsockopt(vf.sock_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) DIE_ERRNO("setsockopt SO_SNDTIMEO");
}

void vf_setup_memory(uint64_t bytes, const char *memfd_name) {
  vf.mem_bytes = bytes;
  vf.mem_fd = memfd_create(memfd_name, MFD_CLOEXEC);
  if (vf.mem_fd < 0) DIE_ERRNO("memfd_create");
  if (ftruncate(vf.mem_fd, (off_t)bytes) != 0) DIE_ERRNO("ftruncate memfd");
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vf.mem_fd, 0);
  if (p == MAP_FAILED) DIE_ERRNO("mmap memfd");
  vf.mem = p;
  /* Touch every page now so page faults do not land in the measurements. */
  memset(vf.mem, 0, bytes);
}

uint64_t vf_owner_and_features(void) {
  struct vu_msg m;
  /* SET_OWNER carries no payload. */
  memset(&m, 0, VU_HDR_SIZE);
  m.request = VU_SET_OWNER;
  m.size = 0;
  vu_set(&m, -1, "SET_OWNER");
  uint64_t offered = vu_get_u64(VU_GET_FEATURES, "GET_FEATURES");
  if (!(offered & (1ull << VIRTIO_F_VERSION_1))) die("the back-end does not offer VIRTIO_F_VERSION_1");
  if (!(offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) die("the back-end does not offer VHOST_USER_F_PROTOCOL_FEATURES");
  return offered;
}

void vf_protocol_features(uint64_t want, uint64_t required) {
  uint64_t pf = vu_get_u64(VU_GET_PROTOCOL_FEATURES, "GET_PROTOCOL_FEATURES");
  vf.proto_features = pf & want;
  if (required & (1ull << PROTO_F_CONFIG) & ~vf.proto_features) die("the back-end does not offer the CONFIG protocol feature");
  if (required & ~vf.proto_features) die("the back-end does not offer protocol features 0x%" PRIx64, required & ~vf.proto_features);
  vu_set_u64(VU_SET_PROTOCOL_FEATURES, vf.proto_features, -1, "SET_PROTOCOL_FEATURES");
  /* From here on every request without its own reply asks for an ack (REPLY_ACK). */
  vf.reply_ack = (vf.proto_features & (1ull << PROTO_F_REPLY_ACK)) != 0;
}

void vf_set_mem_table(void) {
  struct vu_msg m;
  memset(&m, 0, sizeof m);
  m.request = VU_SET_MEM_TABLE;
  m.size = 8 + 32;
  m.p.mem.nregions = 1;
  m.p.mem.r[0].gpa = 0;
  m.p.mem.r[0].size = vf.mem_bytes;
  m.p.mem.r[0].uaddr = (uint64_t)(uintptr_t)vf.mem;
  m.p.mem.r[0].mmap_offset = 0;
  vu_set(&m, vf.mem_fd, "SET_MEM_TABLE");
}

/* ------------------------------------------------------------------------------------------ */
/* Split virtqueues                                                                             */

static inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

uint64_t vf_vq_layout(struct vf_vq *q, uint32_t index, uint32_t qsz, uint64_t base) {
  q->index = index;
  q->qsz = qsz;
  q->gpa_desc = base;
  q->gpa_avail = q->gpa_desc + 16ull * qsz;                      /* 2.7.6: 2-byte aligned */
  q->gpa_used = align_up(q->gpa_avail + 6 + 2ull * qsz, 4096);   /* 2.7.8: 4-byte aligned */
  uint64_t end = align_up(q->gpa_used + 6 + 8ull * qsz, 4096);
  if (end > vf.mem_bytes) die("guest memory too small for queue %u's ring", index);
  uint8_t *mem = vf.mem;
  q->desc = (struct vring_desc *)(mem + q->gpa_desc);
  q->avail_flags = (volatile uint16_t *)(mem + q->gpa_avail);
  q->avail_idx = q->avail_flags + 1;
  q->avail_ring = q->avail_flags + 2;
  q->used_event = q->avail_ring + qsz; /* 2.7.10 */
  q->used_flags = (volatile uint16_t *)(mem + q->gpa_used);
  q->used_idx = q->used_flags + 1;
  q->used_ring = (volatile struct vring_used_elem *)(mem + q->gpa_used + 4);
  q->avail_event = (volatile uint16_t *)(mem + q->gpa_used + 4 + 8ull * qsz); /* 2.7.10 */
  return end;
}

void vf_vq_eventfds(struct vf_vq *q) {
  q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (q->kick_fd < 0) DIE_ERRNO("eventfd kick");
  q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (q->call_fd < 0) DIE_ERRNO("eventfd call");
}

void vf_vq_start(struct vf_vq *q) {
  uint8_t *mem = vf.mem;
  struct vu_msg m;
  vu_set_state(VU_SET_VRING_NUM, q->index, q->qsz, "SET_VRING_NUM");
  memset(&m, 0, sizeof m);
  m.request = VU_SET_VRING_ADDR;
  m.size = 40;
  m.p.addr.index = q->index;
  m.p.addr.flags = 0;
  m.p.addr.desc = (uint64_t)(uintptr_t)(mem + q->gpa_desc); /* front-end user addresses */
  m.p.addr.used = (uint64_t)(uintptr_t)(mem + q->gpa_used);
  m.p.addr.avail = (uint64_t)(uintptr_t)(mem + q->gpa_avail);
  m.p.addr.log = 0;
  vu_set(&m, -1, "SET_VRING_ADDR");
  vu_set_state(VU_SET_VRING_BASE, q->index, 0, "SET_VRING_BASE");
  vu_set_u64(VU_SET_VRING_CALL, (uint64_t)q->index, q->call_fd, "SET_VRING_CALL");
  vu_set_u64(VU_SET_VRING_KICK, (uint64_t)q->index, q->kick_fd, "SET_VRING_KICK");
  /* With VHOST_USER_F_PROTOCOL_FEATURES the ring starts disabled. */
  vu_set_state(VU_SET_VRING_ENABLE, q->index, 1, "SET_VRING_ENABLE");
}

void vf_vq_stop(struct vf_vq *q) {
  struct vu_msg m = {.request = VU_GET_VRING_BASE, .size = 8};
  m.p.state.index = q->index;
  m.p.state.num = 0;
  vu_get(&m, "GET_VRING_BASE");
  if (m.size != 8) die("GET_VRING_BASE: reply of %u bytes", m.size);
  if (m.p.state.num != q->avail_shadow) {
    die("GET_VRING_BASE: the back-end stopped queue %u at %u, %u were made available", q->index, m.p.state.num, q->avail_shadow);
  }
}

void vf_vq_kick(struct vf_vq *q) {
  uint64_t one = 1;
  ssize_t n;
  do n = write(q->kick_fd, &one, sizeof one); while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof one) DIE_ERRNO("write kick eventfd");
  q->kicks++;
}

int vf_vq_wait(struct vf_vq *q, int poll_mode, int rescue_ms, vf_done_fn done) {
  if (poll_mode) {
    /* Spin on used->idx; check the clock only every 64K spins to stay off the bus. */
    double limit = 0;
    for (uint64_t spins = 0;; spins++) {
      int n = vf_vq_reap(q, done);
      if (n) {
        vf_vq_set_interrupts(q, 0);
        return n;
      }
      if ((spins & 0xffff) == 0xffff) {
        double t = now_s();
        if (limit == 0) limit = t + vf.timeout_ms / 1000.0;
        else if (t > limit) die("no completion within %d ms (polling)", vf.timeout_ms);
      }
      __builtin_ia32_pause();
    }
  }
  struct vf_waiter w = {.q = q, .done = done};
  return vf_wait_any(&w, 1, rescue_ms);
}

/* Reaps every queue of the set; how many used elements in all. */
static int reap_all(struct vf_waiter *w, int n) {
  int got = 0;
  for (int i = 0; i < n; i++) got += vf_vq_reap(w[i].q, w[i].done);
  return got;
}

int vf_wait_any(struct vf_waiter *w, int n, int rescue_ms) {
  if (n < 1 || n > 8) die("vf_wait_any: %d queues", n);
  int slice = rescue_ms > 0 && rescue_ms < vf.timeout_ms ? rescue_ms : vf.timeout_ms;
  int waited = 0;
  struct pollfd p[8];
  for (;;) {
    int got = reap_all(w, n);
    if (got) return got;
    for (int i = 0; i < n; i++) vf_vq_set_interrupts(w[i].q, 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* 2.7.13.5: enable, then re-check used->idx */
    got = reap_all(w, n);
    if (got) return got;
    for (int i = 0; i < n; i++) p[i] = (struct pollfd){.fd = w[i].q->call_fd, .events = POLLIN};
    int r;
    do r = poll(p, (nfds_t)n, slice); while (r < 0 && errno == EINTR);
    if (r < 0) DIE_ERRNO("poll call eventfd");
    if (r == 0) {
      waited += slice;
      if (waited >= vf.timeout_ms) die("no completion within %d ms (call eventfd)", vf.timeout_ms);
      /* The rescue (see vhost-front.h): used buffers without a call, or a re-notification of
       * every ring with buffers out. */
      for (int i = 0; i < n; i++) {
        int k = vf_vq_reap(w[i].q, w[i].done);
        if (k) w[i].q->rescue_used++;
        got += k;
      }
      if (got) return got;
      for (int i = 0; i < n; i++) {
        struct vf_vq *q = w[i].q;
        if (q->avail_published != q->last_used) {
          vf_vq_kick(q);
          q->rescue_kicks++;
        }
      }
      continue;
    }
    for (int i = 0; i < n; i++) {
      if (!(p[i].revents & POLLIN)) continue;
      uint64_t cnt;
      ssize_t rd;
      do rd = read(p[i].fd, &cnt, sizeof cnt); while (rd < 0 && errno == EINTR);
      if (rd < 0 && errno != EAGAIN) DIE_ERRNO("read call eventfd");
      if (rd >= 0 && rd != (ssize_t)sizeof cnt) die("read call eventfd: %zd bytes", rd);
      w[i].q->calls_waited++;
    }
  }
}
