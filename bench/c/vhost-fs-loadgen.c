/*
 * vhost-fs-loadgen: a guest-less vhost-user front-end for virtio-fs back-ends (5.11), in C so
 * that the front-end is not the limit of bench/fs-ops.mjs (the TypeScript FsDriver spends 250-300
 * CPU µs per 128 KiB READ, which bounded both back-ends' rates on two cores).
 *
 * The session (memfd guest RAM, SET_MEM_TABLE, split rings, kick/call eventfds, bounded waits) is
 * bench/c/vhost-front.c. Queue 0 is hiprio (FORGET only: 5.11.6.1, driver/fs/3), queue 1 the
 * request queue. It speaks FUSE 7.31 (FUSE_INIT asking for FUSE_MAX_PAGES, so a back-end may offer
 * max_write up to 1 MiB; requests use min(chunk, max_write)). Each request is a plain chain
 * (no indirect tables): the in header and arguments in one readable descriptor, WRITE's data in a
 * second, then the out header (and reply arguments) writable, READ's data in its own writable one.
 *
 * Jobs (--job KIND[:CHUNK[:QD]], repeatable; default all five), each for --duration seconds with
 * QD operations in flight (default 16), after --warmup seconds of the same untimed:
 *   lookup    LOOKUP + GETATTR + FORGET of PREFIX0..PREFIX<count-1> in the share's root
 *   create    CREATE + RELEASE + UNLINK + FORGET of a new name in --dir
 *   randread  READ of 4 KiB (CHUNK) at random aligned offsets of --read-file (OPEN once)
 *   seqread   READ of CHUNK (default 1 MiB) bytes, sequential, wrapping at the file's end or --span-mib
 *   seqwrite  WRITE of CHUNK bytes over --write-file, sequential, wrapping likewise
 * One RESULT line per job: operations, ops/s, MiB/s, latency mean/p50/p99/max of whole operations,
 * notifications, rescues (see vhost-front.h), this program's CPU seconds, and with --cpu-pid the
 * back-end's: utime+stime of that process and its descendants from /proc, read just before and
 * just after the timed part, as bench/proc-cpu.mjs does.
 *
 * --verify: LOOKUP of a missing name must be ENOENT; CREATE a file, WRITE patterns over a region
 * in random chunk sizes (many in flight), GETATTR shows its size, READ it back in other chunk
 * sizes and compare every byte, a READ at the end returns no data, RELEASE, UNLINK, FORGET, and
 * LOOKUP of the name is ENOENT again. Prints VERIFY OK or VERIFY FAIL (exit 1).
 *
 * Every reply is checked before use: the used id is a chain in flight, the used length fits the
 * writable buffers, the out header's unique is the request's, its len is within what was used, the
 * reply is long enough for what is read from it, and error is 0 (or the one errno expected). A bad
 * reply ends the program with a message and exit status 1.
 *
 * Built by test/fs-loadgen.test.ts and bench/fs-ops.mjs (bench/fs-loadgen.ts):
 *   gcc -O2 -Wall -Wextra -Werror -o ... vhost-front.c proc-cpu.c vhost-fs-options.c vhost-fs-loadgen.c
 */
#include "vhost-front.h"
#include "fuse-proto.h"
#include "proc-cpu.h"
#include "vhost-fs-options.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Guest memory layout and request slots                                                        */

static struct vf_vq hq, rq; /* hiprio, request */
static uint8_t *mem;
static uint64_t gpa_req, gpa_reply, gpa_forget, gpa_data;
static uint32_t slot_data_bytes;
static uint32_t max_write = 4096;
static uint64_t next_unique = 1;

struct slot {
  uint64_t t_start, unique, offset, nodeid, fh;
  uint32_t bytes, reply_cap, used_len, name_len;
  enum kind kind;
  int step, busy, hbusy, expect_errno, got_errno;
  char name[NAME_MAX_LEN + 1];
};
static struct slot slots[MAX_QD];

static void layout(void) {
  uint32_t qsz = opt.queue_size;
  hq.max_inflight = MAX_QD;
  rq.max_inflight = MAX_QD;
  if ((uint32_t)MAX_QD * DESCS > qsz) die("--queue-size must be at least %d", MAX_QD * DESCS);
  uint64_t at = vf_vq_layout(&hq, HIPRIO_Q, qsz, 0);
  at = vf_vq_layout(&rq, REQUEST_Q, qsz, at);
  gpa_req = at;
  gpa_reply = gpa_req + (uint64_t)REQ_BYTES * MAX_QD;
  gpa_forget = gpa_reply + (uint64_t)REPLY_BYTES * MAX_QD;
  gpa_data = (gpa_forget + 64ull * MAX_QD + 4095) & ~4095ull;
  if (gpa_data >= vf.mem_bytes) die("--mem-mib too small");
  uint64_t per = ((vf.mem_bytes - gpa_data) / MAX_QD) & ~4095ull;
  if (per > (16u << 20)) per = 16u << 20;
  if (per < 4096) die("--mem-mib too small for %d data buffers", MAX_QD);
  slot_data_bytes = (uint32_t)per;
}

/* The caller's ids for every request header, read once: a driver in a kernel takes them from the
 * task at no cost, and three system calls per request (this VM's system-call exit is expensive)
 * made the front-end, not the back-ends, the bound of the small-request rows. */
static uint32_t own_uid, own_gid, own_pid;

static inline struct fuse_in_header *req_of(int s) { return (struct fuse_in_header *)(mem + gpa_req + (uint64_t)REQ_BYTES * (uint64_t)s); }
static inline struct fuse_out_header *reply_of(int s) { return (struct fuse_out_header *)(mem + gpa_reply + (uint64_t)REPLY_BYTES * (uint64_t)s); }
static inline uint8_t *data_of(int s) { return mem + gpa_data + (uint64_t)slot_data_bytes * (uint64_t)s; }

/* Writes the in header, `arg` and (if any) the NUL-terminated name into slot s's request buffer;
 * `extra` more bytes (WRITE's data) follow in their own descriptor. Returns the buffer's length. */
static inline uint32_t put_req(int s, uint32_t opcode, uint64_t nodeid, const void *arg, uint32_t arg_len, const char *name, uint32_t name_len, uint32_t extra) {
  struct fuse_in_header *h = req_of(s);
  uint32_t len = (uint32_t)sizeof *h + arg_len + (name ? name_len + 1 : 0);
  h->len = len + extra;
  h->opcode = opcode;
  h->unique = slots[s].unique = next_unique++;
  h->nodeid = nodeid;
  h->uid = own_uid;
  h->gid = own_gid;
  h->pid = own_pid;
  h->total_extlen = 0;
  h->padding = 0;
  uint8_t *p = (uint8_t *)(h + 1);
  if (arg_len) memcpy(p, arg, arg_len);
  if (name) {
    memcpy(p + arg_len, name, name_len);
    p[arg_len + name_len] = '\0';
  }
  /* So a reply the device never wrote shows. */
  reply_of(s)->unique = 0;
  reply_of(s)->len = 0;
  return len;
}

static inline void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  rq.desc[i].addr = addr;
  rq.desc[i].len = len;
  rq.desc[i].flags = flags;
  rq.desc[i].next = next;
}

/* Makes slot s's request available: request buffer [, write data], reply [, read data]. */
static inline void submit(int s, uint32_t req_len, uint32_t reply_cap, uint32_t write_bytes, uint32_t read_bytes) {
  uint16_t h = (uint16_t)(s * DESCS), i = h;
  uint64_t data = gpa_data + (uint64_t)slot_data_bytes * (uint64_t)s;
  set_desc(i, gpa_req + (uint64_t)REQ_BYTES * (uint64_t)s, req_len, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
  i++;
  if (write_bytes) {
    set_desc(i, data, write_bytes, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
    i++;
  }
  set_desc(i, gpa_reply + (uint64_t)REPLY_BYTES * (uint64_t)s, reply_cap, (uint16_t)(VRING_DESC_F_WRITE | (read_bytes ? VRING_DESC_F_NEXT : 0)), (uint16_t)(i + 1));
  if (read_bytes) {
    i++;
    set_desc(i, data, read_bytes, VRING_DESC_F_WRITE, 0);
  }
  slots[s].reply_cap = reply_cap + read_bytes;
  slots[s].busy = 1;
  vf_vq_add(&rq, h);
}

/* FORGET(nodeid, 1) on hiprio: one readable descriptor; no reply (5.11.6.1). */
static inline void submit_forget(int s, uint64_t nodeid) {
  struct fuse_in_header *h = (struct fuse_in_header *)(mem + gpa_forget + 64ull * (uint64_t)s);
  h->len = sizeof *h + sizeof(struct fuse_forget_in);
  h->opcode = FUSE_FORGET;
  h->unique = next_unique++;
  h->nodeid = nodeid;
  h->uid = own_uid;
  h->gid = own_gid;
  h->pid = own_pid;
  h->total_extlen = h->padding = 0;
  ((struct fuse_forget_in *)(h + 1))->nlookup = 1;
  hq.desc[s].addr = gpa_forget + 64ull * (uint64_t)s;
  hq.desc[s].len = h->len;
  hq.desc[s].flags = 0;
  hq.desc[s].next = 0;
  slots[s].hbusy = 1;
  vf_vq_add(&hq, (uint16_t)s);
}

static const char *op_name(uint32_t opcode) {
  switch (opcode) {
    case FUSE_LOOKUP: return "LOOKUP";
    case FUSE_GETATTR: return "GETATTR";
    case FUSE_UNLINK: return "UNLINK";
    case FUSE_OPEN: return "OPEN";
    case FUSE_READ: return "READ";
    case FUSE_WRITE: return "WRITE";
    case FUSE_RELEASE: return "RELEASE";
    case FUSE_INIT: return "INIT";
    case FUSE_CREATE: return "CREATE";
    default: return "?";
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Operations: each a few FUSE requests in a row on one slot                                    */

static uint64_t len_mismatches, ops_done, bytes_done;
static uint64_t dir_nodeid = FUSE_ROOT_ID, file_nodeid, file_fh, file_span, create_seq;
static int free_stack[MAX_QD], free_top, stopping;
static uint64_t seq_next, region_end; /* sequential offset; verify: end of the region */
static uint64_t verify_seed, verify_bad_at;
static int verify_bad;

/* The reply of slot s, checked: the used length fits, the header's unique and len are right, the
 * reply holds at least `need` bytes after the header, and error is 0 or the one expected. Returns
 * the payload length; an expected errno is left in got_errno (and -1 returned). */
static int64_t check_reply(int s, uint32_t need) {
  struct slot *sl = &slots[s];
  struct fuse_out_header *o = reply_of(s);
  uint32_t opcode = req_of(s)->opcode;
  if (sl->used_len > sl->reply_cap) die("%s: used length %u beyond the %u writable bytes", op_name(opcode), sl->used_len, sl->reply_cap);
  if (sl->used_len < sizeof *o) die("%s: used length %u, no room for the out header", op_name(opcode), sl->used_len);
  if (o->unique != sl->unique) die("%s: reply for unique %" PRIu64 ", the request was %" PRIu64, op_name(opcode), o->unique, sl->unique);
  if (o->len < sizeof *o || o->len > sl->reply_cap) die("%s: out header len %u (buffers %u)", op_name(opcode), o->len, sl->reply_cap);
  if (o->len != sl->used_len) len_mismatches++;
  sl->got_errno = 0;
  if (o->error != 0) {
    if (o->error > 0 || o->error < -4095) die("%s: error field %d is not a negative errno", op_name(opcode), o->error);
    if (-o->error == sl->expect_errno) {
      if (o->len != sizeof *o) die("%s: an error reply of %u bytes", op_name(opcode), o->len);
      sl->got_errno = -o->error;
      return -1;
    }
    die("%s of '%s' (nodeid %" PRIu64 ") failed: %s", op_name(opcode), sl->name, req_of(s)->nodeid, strerror(-o->error));
  }
  uint32_t payload = o->len - (uint32_t)sizeof *o;
  if (payload < need) die("%s: reply of %u bytes, expected at least %u", op_name(opcode), payload, need);
  return payload;
}

static inline void op_done(int s, uint64_t t) {
  hist_add(t - slots[s].t_start);
  ops_done++;
  free_stack[free_top++] = s;
}

static inline void start_io(int s, enum kind k, uint32_t chunk) {
  struct slot *sl = &slots[s];
  struct fuse_io_in a = {.fh = file_fh, .size = chunk};
  if (k == K_RANDREAD) {
    a.offset = (rng_next() % (file_span / chunk)) * chunk;
  } else {
    a.offset = seq_next;
    seq_next += chunk;
    if (k == K_VWRITE || k == K_VREAD) {
      if (a.offset + chunk > region_end) a.size = chunk = (uint32_t)(region_end - a.offset);
    } else if (seq_next + chunk > file_span) {
      seq_next = 0;
    }
  }
  sl->offset = a.offset;
  sl->bytes = chunk;
  int write = k == K_SEQWRITE || k == K_VWRITE;
  if (k == K_VWRITE) {
    uint8_t *d = data_of(s);
    for (uint32_t i = 0; i < chunk; i++) {
      uint64_t o = a.offset + i;
      d[i] = (uint8_t)(pattern_word(verify_seed, o / 8) >> (8 * (o % 8)));
    }
  } else if (k == K_VREAD) {
    memset(data_of(s), 0xa5, chunk);
  }
  uint32_t len = put_req(s, write ? FUSE_WRITE : FUSE_READ, file_nodeid, &a, sizeof a, NULL, 0, write ? chunk : 0);
  if (write) submit(s, len, sizeof(struct fuse_out_header) + sizeof(struct fuse_write_out), chunk, 0);
  else submit(s, len, sizeof(struct fuse_out_header), 0, chunk);
}

/* Starts operation `k` on slot s (its first request). */
static inline void start_op(int s, enum kind k, uint32_t chunk) {
  struct slot *sl = &slots[s];
  sl->kind = k;
  sl->step = 0;
  sl->expect_errno = 0;
  sl->t_start = now_ns();
  if (k == K_LOOKUP) {
    sl->name_len = (uint32_t)snprintf(sl->name, sizeof sl->name, "%s%" PRIu64, opt.prefix, (ops_done + (uint64_t)s) % opt.lookup_count);
    submit(s, put_req(s, FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, sl->name, sl->name_len, 0), sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out), 0, 0);
  } else if (k == K_CREATE) {
    sl->name_len = (uint32_t)snprintf(sl->name, sizeof sl->name, "c%" PRIu64 "-%u", create_seq++, own_pid);
    struct fuse_create_in a = {.flags = O_RDWR | O_CREAT | O_EXCL, .mode = 0100644, .umask = 0};
    submit(s, put_req(s, FUSE_CREATE, dir_nodeid, &a, sizeof a, sl->name, sl->name_len, 0),
           sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), 0, 0);
  } else {
    start_io(s, k, chunk);
  }
}

/* A request-queue completion: checks the reply and sends the operation's next request. */
static void request_used(uint32_t id, uint32_t len, uint64_t t) {
  if (id % DESCS != 0 || id / DESCS >= MAX_QD) die("request queue: used id %u is not a head we made available", id);
  int s = (int)(id / DESCS);
  struct slot *sl = &slots[s];
  if (!sl->busy) die("request queue: used id %u was not in flight", id);
  sl->busy = 0;
  sl->used_len = len;
  struct fuse_out_header *o = reply_of(s);
  switch (sl->kind) {
    case K_LOOKUP:
      if (sl->step == 0) {
        check_reply(s, sizeof(struct fuse_entry_out));
        sl->nodeid = ((struct fuse_entry_out *)(o + 1))->nodeid;
        if (sl->nodeid == 0) die("LOOKUP of '%s': nodeid 0 without an error", sl->name);
        struct fuse_getattr_in a = {0};
        sl->step = 1;
        submit(s, put_req(s, FUSE_GETATTR, sl->nodeid, &a, sizeof a, NULL, 0, 0), sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out), 0, 0);
      } else {
        check_reply(s, sizeof(struct fuse_attr_out));
        sl->step = 2;
        submit_forget(s, sl->nodeid);
      }
      return;
    case K_CREATE:
      if (sl->step == 0) {
        check_reply(s, sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out));
        sl->nodeid = ((struct fuse_entry_out *)(o + 1))->nodeid;
        sl->fh = ((struct fuse_open_out *)((uint8_t *)(o + 1) + sizeof(struct fuse_entry_out)))->fh;
        struct fuse_release_in a = {.fh = sl->fh, .flags = O_RDWR};
        sl->step = 1;
        submit(s, put_req(s, FUSE_RELEASE, sl->nodeid, &a, sizeof a, NULL, 0, 0), REPLY_BYTES, 0, 0);
      } else if (sl->step == 1) {
        check_reply(s, 0);
        sl->step = 2;
        submit(s, put_req(s, FUSE_UNLINK, dir_nodeid, NULL, 0, sl->name, sl->name_len, 0), REPLY_BYTES, 0, 0);
      } else {
        check_reply(s, 0);
        sl->step = 3;
        submit_forget(s, sl->nodeid);
      }
      return;
    case K_RANDREAD:
    case K_SEQREAD:
    case K_VREAD: {
      int64_t got = check_reply(s, 0);
      if ((uint64_t)got != sl->bytes) die("READ of %u bytes at %" PRIu64 ": %" PRId64 " bytes (the file is too short?)", sl->bytes, sl->offset, got);
      if (sl->kind == K_VREAD && !verify_bad) {
        const uint8_t *d = data_of(s);
        for (uint32_t i = 0; i < sl->bytes; i++) {
          uint64_t off = sl->offset + i;
          if (d[i] != (uint8_t)(pattern_word(verify_seed, off / 8) >> (8 * (off % 8)))) {
            verify_bad = 1;
            verify_bad_at = off;
            break;
          }
        }
      }
      bytes_done += sl->bytes;
      op_done(s, t);
      return;
    }
    case K_SEQWRITE:
    case K_VWRITE: {
      check_reply(s, sizeof(struct fuse_write_out));
      uint32_t n = ((struct fuse_write_out *)(o + 1))->size;
      if (n != sl->bytes) die("WRITE of %u bytes at %" PRIu64 ": %u written", sl->bytes, sl->offset, n);
      bytes_done += sl->bytes;
      op_done(s, t);
      return;
    }
    case K_SYNC:
      sl->step = -1; /* the caller checks the reply */
      return;
  }
}

/* A hiprio completion: the FORGET that ends a lookup or create operation. */
static void hiprio_used(uint32_t id, uint32_t len, uint64_t t) {
  if (id >= MAX_QD) die("hiprio queue: used id %u is not a head we made available", id);
  if (!slots[id].hbusy) die("hiprio queue: used id %u was not in flight", id);
  slots[id].hbusy = 0;
  /* FORGET has no reply: the device writes nothing (2.7.8: len counts bytes written). */
  if (len != 0) len_mismatches++;
  if (slots[id].kind != K_SYNC) op_done((int)id, t);
}

static struct vf_waiter waiters[2] = {{&rq, request_used}, {&hq, hiprio_used}};

static void wait_some(void) { vf_wait_any(waiters, 2, opt.rescue_ms); }

/* One request on slot 0 and its reply (set-up, verify steps), with `read_bytes` of READ data room
 * after the reply buffer; returns the payload length or -1 for the expected errno. */
static int64_t sync_call_data(uint32_t opcode, uint64_t nodeid, const void *arg, uint32_t arg_len, const char *name, uint32_t need, int expect_errno,
                              uint32_t read_bytes) {
  struct slot *sl = &slots[0];
  sl->kind = K_SYNC;
  sl->step = 0;
  sl->expect_errno = expect_errno;
  sl->name_len = name ? (uint32_t)strlen(name) : 0;
  snprintf(sl->name, sizeof sl->name, "%s", name ? name : "");
  /* With READ data room the reply buffer is the out header alone: a device may ask for the
   * whole READ size after the header (QEMU's virtiofsd answers E2BIG otherwise). */
  submit(0, put_req(0, opcode, nodeid, arg, arg_len, name, sl->name_len, 0), read_bytes ? sizeof(struct fuse_out_header) : REPLY_BYTES, 0, read_bytes);
  vf_vq_publish(&rq);
  while (sl->step != -1) wait_some();
  return check_reply(0, need);
}

static int64_t sync_call(uint32_t opcode, uint64_t nodeid, const void *arg, uint32_t arg_len, const char *name, uint32_t need, int expect_errno) {
  return sync_call_data(opcode, nodeid, arg, arg_len, name, need, expect_errno, 0);
}

static void sync_forget(uint64_t nodeid) {
  slots[0].kind = K_SYNC;
  submit_forget(0, nodeid);
  vf_vq_publish(&hq);
  while (slots[0].hbusy) wait_some();
}

static struct fuse_entry_out *entry_reply(void) { return (struct fuse_entry_out *)(reply_of(0) + 1); }

static uint64_t lookup_name(uint64_t parent, const char *name, uint64_t *size) {
  sync_call(FUSE_LOOKUP, parent, NULL, 0, name, sizeof(struct fuse_entry_out), 0);
  if (size) *size = entry_reply()->attr.size;
  return entry_reply()->nodeid;
}

static uint64_t open_node(uint64_t nodeid, uint32_t flags) {
  struct fuse_open_in a = {.flags = flags};
  sync_call(FUSE_OPEN, nodeid, &a, sizeof a, NULL, sizeof(struct fuse_open_out), 0);
  return ((struct fuse_open_out *)(reply_of(0) + 1))->fh;
}

static void release_node(uint64_t nodeid, uint64_t fh, uint32_t flags) {
  struct fuse_release_in a = {.fh = fh, .flags = flags};
  sync_call(FUSE_RELEASE, nodeid, &a, sizeof a, NULL, 0, 0);
}

/* Runs operations of kind k with qd in flight until `deadline` (or, for verify passes, until the
 * region is covered); drains what is in flight. Returns the end time. */
static double run_ops(enum kind k, uint32_t chunk, int qd, double deadline, int verify_pass) {
  stopping = 0;
  free_top = 0;
  for (int s = qd - 1; s >= 0; s--) free_stack[free_top++] = s;
  double t_end = now_s();
  for (;;) {
    while (free_top > 0 && !stopping) {
      if (verify_pass && seq_next >= region_end) {
        stopping = 1;
        break;
      }
      uint32_t c = chunk;
      if (verify_pass) c = (uint32_t)(1 + rng_next() % (chunk / 512)) * 512; /* random sizes */
      start_op(free_stack[--free_top], k, c);
    }
    vf_vq_publish(&rq);
    vf_vq_publish(&hq);
    if (free_top == qd) break; /* drained */
    wait_some();
    t_end = now_s();
    if (!verify_pass && !stopping && t_end >= deadline) stopping = 1;
  }
  return t_end;
}

/* ------------------------------------------------------------------------------------------ */
/* Jobs and verify                                                                              */

static void job_files(const struct job *j, uint32_t *chunk) {
  *chunk = j->chunk;
  if (j->kind == K_LOOKUP) return;
  if (j->kind == K_CREATE) {
    dir_nodeid = opt.dir[0] ? lookup_name(FUSE_ROOT_ID, opt.dir, NULL) : FUSE_ROOT_ID;
    return;
  }
  int write = j->kind == K_SEQWRITE;
  uint64_t size;
  file_nodeid = lookup_name(FUSE_ROOT_ID, write ? opt.write_file : opt.read_file, &size);
  file_fh = open_node(file_nodeid, write ? O_RDWR : O_RDONLY);
  /* READ and WRITE stay within max_write (5.11: the device's FUSE_INIT limit). */
  if (*chunk > max_write) *chunk = max_write;
  if (*chunk > slot_data_bytes) die("%u-byte requests need more --mem-mib", *chunk);
  file_span = size < opt.span_bytes ? size : opt.span_bytes;
  if (file_span < *chunk) die("%s is %" PRIu64 " bytes, less than one %u-byte request", write ? opt.write_file : opt.read_file, size, *chunk);
}

static void job_files_done(const struct job *j) {
  if (j->kind == K_LOOKUP) return;
  if (j->kind == K_CREATE) {
    if (dir_nodeid != FUSE_ROOT_ID) sync_forget(dir_nodeid);
    return;
  }
  release_node(file_nodeid, file_fh, j->kind == K_SEQWRITE ? O_RDWR : O_RDONLY);
  sync_forget(file_nodeid);
}

static void run_job(const struct job *j) {
  uint32_t chunk;
  job_files(j, &chunk);
  seq_next = 0;
  /* The back-end idles meanwhile: nothing is in flight between jobs. */
  if (j->kind == K_CREATE && opt.create_pause > 0) {
    struct timespec ts = {(time_t)opt.create_pause, (long)((opt.create_pause - (double)(time_t)opt.create_pause) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  if (opt.warmup > 0) run_ops(j->kind, chunk, j->qd, now_s() + opt.warmup, 0);
  hist_reset();
  ops_done = bytes_done = len_mismatches = 0;
  uint64_t k0 = rq.kicks, h0 = hq.kicks, w0 = rq.calls_waited + hq.calls_waited;
  uint64_t rk0 = rq.rescue_kicks + hq.rescue_kicks, ru0 = rq.rescue_used + hq.rescue_used;
  double cpu0 = self_cpu_s(), bcpu0 = tree_cpu_s(opt.cpu_pid);
  double t0 = now_s();
  double t_end = run_ops(j->kind, chunk, j->qd, t0 + opt.duration, 0);
  double bcpu = tree_cpu_s(opt.cpu_pid) - bcpu0, cpu = self_cpu_s() - cpu0;
  double secs = t_end - t0;
  int io = j->kind >= K_RANDREAD;
  printf("RESULT job=%s bs=%u qd=%d ops=%" PRIu64 " secs=%.3f ops_s=%.0f mibps=%.1f lat_mean_us=%.2f lat_p50_us=%.2f lat_p99_us=%.2f "
         "lat_max_us=%.2f kicks=%" PRIu64 " hiprio_kicks=%" PRIu64 " waits=%" PRIu64 " rescue_kicks=%" PRIu64 " rescue_used=%" PRIu64
         " len_mismatches=%" PRIu64 " cpu_s=%.3f backend_cpu_s=%.3f\n",
         kind_names[j->kind], io ? chunk : 0, j->qd, ops_done, secs, (double)ops_done / secs, (double)bytes_done / secs / (1 << 20),
         lat_n ? (double)lat_sum / (double)lat_n / 1e3 : 0.0, hist_pct(0.50) / 1e3, hist_pct(0.99) / 1e3, (double)lat_max / 1e3,
         rq.kicks - k0, hq.kicks - h0, rq.calls_waited + hq.calls_waited - w0, rq.rescue_kicks + hq.rescue_kicks - rk0,
         rq.rescue_used + hq.rescue_used - ru0, len_mismatches, cpu, bcpu);
  fflush(stdout);
  job_files_done(j);
}

static int run_verify(void) {
  char name[64];
  verify_seed = rng_next();
  uint64_t parent = opt.dir[0] ? lookup_name(FUSE_ROOT_ID, opt.dir, NULL) : FUSE_ROOT_ID;
  snprintf(name, sizeof name, "vfl-verify-%016" PRIx64 "-%d", verify_seed, (int)getpid());
  /* A missing name is ENOENT (and nothing else). */
  if (sync_call(FUSE_LOOKUP, parent, NULL, 0, name, 0, ENOENT) != -1) die("LOOKUP of the missing '%s' succeeded", name);
  struct fuse_create_in c = {.flags = O_RDWR | O_CREAT | O_EXCL, .mode = 0100644};
  sync_call(FUSE_CREATE, parent, &c, sizeof c, name, sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), 0);
  file_nodeid = entry_reply()->nodeid;
  file_fh = ((struct fuse_open_out *)((uint8_t *)entry_reply() + sizeof(struct fuse_entry_out)))->fh;
  if (entry_reply()->attr.size != 0) die("CREATE: a new file of %" PRIu64 " bytes", entry_reply()->attr.size);
  uint32_t wmax = max_write < slot_data_bytes ? max_write : slot_data_bytes;
  if (wmax > (256u << 10)) wmax = 256u << 10;
  wmax &= ~511u;
  double t0 = now_s();
  region_end = opt.verify_bytes;
  seq_next = 0;
  run_ops(K_VWRITE, wmax, opt.qd, 0, 1);
  struct fuse_getattr_in g = {0};
  sync_call(FUSE_GETATTR, file_nodeid, &g, sizeof g, NULL, sizeof(struct fuse_attr_out), 0);
  uint64_t size = ((struct fuse_attr_out *)(reply_of(0) + 1))->attr.size;
  if (size != region_end) die("GETATTR: %" PRIu64 " bytes after writing %" PRIu64, size, region_end);
  uint64_t written = bytes_done, wops = ops_done;
  /* Read back in other chunk sizes (a different random sequence), 4 KiB .. max_write. */
  bytes_done = ops_done = 0;
  seq_next = 0;
  run_ops(K_VREAD, wmax, opt.qd, 0, 1);
  uint64_t read_back = bytes_done, rops = ops_done;
  /* At the end of the file a READ returns no data. */
  struct fuse_io_in r = {.fh = file_fh, .offset = region_end, .size = 4096};
  int64_t tail = sync_call_data(FUSE_READ, file_nodeid, &r, sizeof r, NULL, 0, 0, r.size);
  if (tail != 0) die("READ at the end of the file returned %" PRId64 " bytes", tail);
  release_node(file_nodeid, file_fh, O_RDWR);
  sync_call(FUSE_UNLINK, parent, NULL, 0, name, 0, 0);
  sync_forget(file_nodeid);
  if (sync_call(FUSE_LOOKUP, parent, NULL, 0, name, 0, ENOENT) != -1) die("LOOKUP of the unlinked '%s' succeeded", name);
  if (parent != FUSE_ROOT_ID) sync_forget(parent);
  if (verify_bad) {
    printf("VERIFY FAIL offset=%" PRIu64 " seed=0x%" PRIx64 "\n", verify_bad_at, verify_seed);
    fflush(stdout);
    return 1;
  }
  printf("VERIFY OK region=%" PRIu64 " bytes_written=%" PRIu64 " bytes_read=%" PRIu64 " writes=%" PRIu64 " reads=%" PRIu64
         " max_chunk=%u enoent=2 secs=%.3f len_mismatches=%" PRIu64 " rescue_kicks=%" PRIu64 "\n",
         region_end, written, read_back, wops, rops, wmax, now_s() - t0, len_mismatches, rq.rescue_kicks + hq.rescue_kicks);
  fflush(stdout);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Session                                                                                      */

static void handshake(void) {
  uint64_t offered = vf_owner_and_features();
  vf_protocol_features((1ull << PROTO_F_MQ) | (1ull << PROTO_F_REPLY_ACK), 0);
  if (vf.proto_features & (1ull << PROTO_F_MQ)) {
    uint64_t nq = vu_get_u64(VU_GET_QUEUE_NUM, "GET_QUEUE_NUM");
    if (nq < 2) die("GET_QUEUE_NUM: %" PRIu64 " queues, virtio-fs needs hiprio and a request queue", nq);
  }
  uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
  if (opt.want_event_idx) want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
  uint64_t features = offered & want; /* never INDIRECT_DESC, packed, or notification data */
  vu_set_u64(VU_SET_FEATURES, features, -1, "SET_FEATURES");
  hq.event_idx = rq.event_idx = (features & (1ull << VIRTIO_RING_F_EVENT_IDX)) != 0;
  vf_set_mem_table();
  vf_vq_start(&hq);
  vf_vq_start(&rq);

  /* FUSE_INIT: 7.31, MAX_PAGES so max_write may go past 128 KiB. */
  struct fuse_init_in in = {.major = 7, .minor = 31, .max_readahead = 128u << 10, .flags = FUSE_MAX_PAGES};
  sync_call(FUSE_INIT, 0, &in, sizeof in, NULL, 24, 0);
  struct fuse_init_out *o = (struct fuse_init_out *)(reply_of(0) + 1);
  if (o->major != 7) die("FUSE_INIT: major version %u", o->major);
  if (o->minor < 31) die("FUSE_INIT: minor version %u, 31 or later needed", o->minor);
  if (o->max_write < 4096) die("FUSE_INIT: max_write %u", o->max_write);
  max_write = o->max_write;
  printf("INFO features=0x%" PRIx64 " offered=0x%" PRIx64 " protocol=0x%" PRIx64 " event_idx=%d fuse=7.%u max_write=%u init_flags=0x%x queue_size=%u slot_bytes=%u\n",
         features, offered, vf.proto_features, rq.event_idx, o->minor, max_write, o->flags, opt.queue_size, slot_data_bytes);
  fflush(stdout);
}

int main(int argc, char **argv) {
  vf_prog = "vhost-fs-loadgen";
  parse_args(argc, argv);
  rng_state = opt.seed ? opt.seed : 1;
  own_uid = (uint32_t)geteuid();
  own_gid = (uint32_t)getegid();
  own_pid = (uint32_t)getpid();
  /* Last-resort bound on the whole run: jobs, warm-ups, set-up and drains. */
  double bound = (opt.verify ? 60 : (opt.duration + opt.warmup) * opt.njobs) + 30 + (opt.timeout_ms / 1000.0) * 3;
  for (int i = 0; i < opt.njobs && !opt.verify; i++)
    if (opt.jobs[i].kind == K_CREATE) bound += opt.create_pause;
  alarm((unsigned)bound);
  vf_setup_memory(opt.mem_bytes, "vhost-fs-loadgen-guest");
  mem = vf.mem;
  layout();
  vf_vq_eventfds(&hq);
  vf_vq_eventfds(&rq);
  vf_connect(opt.socket_path, opt.timeout_ms);
  handshake();
  int rc = 0;
  if (opt.verify) rc = run_verify();
  else for (int i = 0; i < opt.njobs; i++) run_job(&opt.jobs[i]);
  /* Stop both rings so the back-end lets go of the memory (and check it consumed everything). */
  vf_vq_stop(&hq);
  vf_vq_stop(&rq);
  if (close(vf.sock_fd) != 0 || close(hq.kick_fd) != 0 || close(hq.call_fd) != 0 || close(rq.kick_fd) != 0 || close(rq.call_fd) != 0) DIE_ERRNO("close");
  return rc;
}
