/*
 * io_uring through the raw system calls (io_uring_setup, io_uring_enter, io_uring_register):
 * no liburing, only the kernel's <linux/io_uring.h>, so the prebuilt addon runs on any Linux
 * (where the kernel refuses io_uring the setup throws, and the TS side falls back).
 *
 * One ring per file backend, used by one JS thread. The JS side (src/platform/io-uring.ts)
 * prepares submission entries one call each, submits a batch with one io_uring_enter, and
 * reaps completions into an Int32Array of (user_data, res) pairs. Completions that the kernel
 * finishes inside io_uring_enter (page-cache hits) are reaped right after the submission;
 * the others signal an eventfd registered with IORING_REGISTER_EVENTFD, which the JS side
 * watches on Node's loop. Submissions are quiet where the kernel has CQ flags (Linux 5.8):
 * IORING_CQ_EVENTFD_DISABLED is set around io_uring_enter, so completions posted inside it do
 * not signal, and cleared (fenced) before the caller's reap, which therefore sees everything
 * posted while it was set; a completion posted after the clear signals. The caller's reap
 * right after a quiet submit need not read the eventfd (one system call fewer per batch).
 * Without CQ flags every reap clears the eventfd before it reads the completion queue, so the
 * signals of completions reaped inline never wake the loop, and a completion posted after the
 * clear signals again (no lost wake-up). (IORING_REGISTER_EVENTFD_ASYNC
 * would not do: it signals only completions of io-wq workers, not those that the kernel
 * posts through task work, such as O_DIRECT completions.)
 *
 * The buffers named in an entry must stay valid until its completion: the JS side keeps a
 * reference to each until then.
 */
#include "napi-args.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <linux/stat.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

/* Operation numbers shared with src/platform/io-uring.ts (UringOp). */
#define OP_READ 0
#define OP_WRITE 1

typedef struct {
  int ring_fd;
  int event_fd;
  unsigned sq_entries, cq_entries;
  void *sq_ptr, *cq_ptr;
  size_t sq_size, cq_size;
  struct io_uring_sqe *sqes;
  size_t sqes_size;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
  unsigned *cq_head, *cq_tail, *cq_mask;
  /* The CQ ring's flags (IORING_CQ_EVENTFD_DISABLED), NULL where the kernel has none. */
  unsigned *cq_flags;
  struct io_uring_cqe *cqes;
  /* Entries prepared but not yet handed to the kernel (published at submit). */
  unsigned local_tail;
  /* The kernel takes a timeout with GETEVENTS (IORING_FEAT_EXT_ARG). */
  bool ext_arg;
  bool closed;
} ring_t;

static void ring_close(ring_t *r) {
  if (r->closed) return;
  r->closed = true;
  /* Closing the ring fd cancels what is in flight; the kernel waits for it before the
   * memory behind the buffers can be reused by the JS side (it drops its references only
   * after this call). */
  if (r->sqes != NULL) munmap(r->sqes, r->sqes_size);
  if (r->cq_ptr != NULL && r->cq_ptr != r->sq_ptr) munmap(r->cq_ptr, r->cq_size);
  if (r->sq_ptr != NULL) munmap(r->sq_ptr, r->sq_size);
  if (r->ring_fd >= 0) close(r->ring_fd);
  if (r->event_fd >= 0) close(r->event_fd);
  r->ring_fd = r->event_fd = -1;
}

static void ring_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  ring_close(data);
  free(data);
}

static bool get_ring(napi_env env, napi_value v, ring_t **out) {
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    throw_arg(env, "not an io_uring handle");
    return false;
  }
  if (((ring_t *)p)->closed) {
    throw_errno(env, "io_uring", EBADF);
    return false;
  }
  *out = p;
  return true;
}

/* uringSetup(entries) -> handle. Throws the errno of io_uring_setup (ENOSYS, EPERM, ...). */
static napi_value js_uring_setup(napi_env env, napi_callback_info info) {
  napi_value argv[1], ext;
  int64_t entries;
  if (!get_args(env, info, 1, argv, NULL) || !get_uint(env, argv[0], 32768, "entries", &entries)) return NULL;
  if (entries < 1) return throw_arg(env, "entries must be at least 1");
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_CLAMP;
  int fd = (int)syscall(__NR_io_uring_setup, (unsigned)entries, &p);
  if (fd < 0) return throw_errno(env, "io_uring_setup", errno);
  ring_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    close(fd);
    return throw_errno(env, "io_uring_setup", ENOMEM);
  }
  r->ring_fd = fd;
  r->event_fd = -1;
  r->sq_entries = p.sq_entries;
  r->ext_arg = (p.features & IORING_FEAT_EXT_ARG) != 0;
  r->cq_entries = p.cq_entries;
  r->sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  r->cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if (p.features & IORING_FEAT_SINGLE_MMAP) {
    if (r->cq_size > r->sq_size) r->sq_size = r->cq_size;
    r->cq_size = r->sq_size;
  }
  int err = 0;
  r->sq_ptr = mmap(NULL, r->sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (r->sq_ptr == MAP_FAILED) {
    err = errno;
    r->sq_ptr = NULL;
    goto fail;
  }
  if (p.features & IORING_FEAT_SINGLE_MMAP) {
    r->cq_ptr = r->sq_ptr;
  } else {
    r->cq_ptr = mmap(NULL, r->cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (r->cq_ptr == MAP_FAILED) {
      err = errno;
      r->cq_ptr = NULL;
      goto fail;
    }
  }
  r->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
  r->sqes = mmap(NULL, r->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (r->sqes == MAP_FAILED) {
    err = errno;
    r->sqes = NULL;
    goto fail;
  }
  uint8_t *sq = r->sq_ptr, *cq = r->cq_ptr;
  r->sq_head = (unsigned *)(sq + p.sq_off.head);
  r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  r->sq_array = (unsigned *)(sq + p.sq_off.array);
  r->cq_head = (unsigned *)(cq + p.cq_off.head);
  r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  r->cq_flags = p.cq_off.flags != 0 ? (unsigned *)(cq + p.cq_off.flags) : NULL;
  /* The SQ array maps ring slots to entries one to one, once: entry i always sits in slot i. */
  for (unsigned i = 0; i < p.sq_entries; i++) r->sq_array[i] = i;
  r->local_tail = *r->sq_tail;
  r->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->event_fd < 0) {
    err = errno;
    goto fail;
  }
  if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_EVENTFD, &r->event_fd, 1) < 0) {
    err = errno;
    goto fail;
  }
  if (napi_create_external(env, r, ring_finalize, NULL, &ext) != napi_ok) {
    err = ENOMEM;
    goto fail;
  }
  return ext;
fail:
  ring_close(r);
  free(r);
  return throw_errno(env, "io_uring_setup", err);
}

/* uringInfo(handle) -> [eventfd, sqEntries, cqEntries, quietSubmit (1: submits do not signal the eventfd)] */
static napi_value js_uring_info(napi_env env, napi_callback_info info) {
  napi_value argv[1], arr;
  ring_t *r;
  if (!get_args(env, info, 1, argv, NULL) || !get_ring(env, argv[0], &r)) return NULL;
  NAPI_CALL(env, napi_create_array_with_length(env, 4, &arr));
  NAPI_CALL(env, napi_set_element(env, arr, 0, make_int(env, r->event_fd)));
  NAPI_CALL(env, napi_set_element(env, arr, 1, make_int(env, r->sq_entries)));
  NAPI_CALL(env, napi_set_element(env, arr, 2, make_int(env, r->cq_entries)));
  NAPI_CALL(env, napi_set_element(env, arr, 3, make_int(env, r->cq_flags != NULL ? 1 : 0)));
  return arr;
}

/* The next free submission entry, zeroed; NULL when the SQ is full (submit first). */
static struct io_uring_sqe *next_sqe(ring_t *r) {
  unsigned head = atomic_load_explicit((_Atomic unsigned *)r->sq_head, memory_order_acquire);
  if (r->local_tail - head >= r->sq_entries) return NULL;
  struct io_uring_sqe *sqe = &r->sqes[r->local_tail & *r->sq_mask];
  memset(sqe, 0, sizeof *sqe);
  r->local_tail++;
  return sqe;
}

static napi_value make_bool(napi_env env, bool b) {
  napi_value v;
  NAPI_CALL(env, napi_get_boolean(env, b, &v));
  return v;
}

/* uringPrepRw's results. */
#define PREP_FULL 0       /* the SQ is full: submit, then prepare again */
#define PREP_QUEUED 1
#define PREP_MISALIGNED 2 /* the buffer's address is not a multiple of memAlign: nothing queued */

/*
 * uringPrepRw(handle, op, fd, bytes, offset, len, fileOffset, userData, memAlign) -> PREP_*:
 * a read into or a write from bytes[offset, offset + len) at fileOffset. With memAlign > 0
 * (O_DIRECT) a buffer whose address is not a multiple of it is refused, so the caller can
 * bounce it through an aligned buffer (only the addon knows the address).
 */
static napi_value js_uring_prep_rw(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  ring_t *r;
  int64_t op, foff, ud, align = 0;
  int fd;
  uint8_t *p;
  size_t len;
  if (!get_args(env, info, 9, argv, NULL) || !get_ring(env, argv[0], &r) || !get_uint(env, argv[1], OP_WRITE, "op", &op) ||
      !get_fd(env, argv[2], &fd) || !get_range(env, argv[3], argv[4], argv[5], &p, &len) ||
      !get_uint(env, argv[6], MAX_SAFE_INT, "fileOffset", &foff) || !get_uint(env, argv[7], 0xffffffff, "userData", &ud) ||
      (!is_undefined(env, argv[8]) && !get_uint(env, argv[8], 1 << 20, "memAlign", &align)))
    return NULL;
  if (len > 0x7ffff000) return throw_arg(env, "len above the largest single transfer (0x7ffff000)");
  if (align > 1 && ((uintptr_t)p % (uintptr_t)align) != 0) return make_int(env, PREP_MISALIGNED);
  struct io_uring_sqe *sqe = next_sqe(r);
  if (sqe == NULL) return make_int(env, PREP_FULL);
  sqe->opcode = op == OP_READ ? IORING_OP_READ : IORING_OP_WRITE;
  sqe->fd = fd;
  sqe->addr = (uint64_t)(uintptr_t)p;
  sqe->len = (uint32_t)len;
  sqe->off = (uint64_t)foff;
  sqe->user_data = (uint64_t)ud;
  return make_int(env, PREP_QUEUED);
}

/* uringPrepFsync(handle, fd, datasync, userData) -> boolean (false: SQ full). */
static napi_value js_uring_prep_fsync(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  ring_t *r;
  int fd;
  bool datasync;
  int64_t ud;
  if (!get_args(env, info, 4, argv, NULL) || !get_ring(env, argv[0], &r) || !get_fd(env, argv[1], &fd)) return NULL;
  if (napi_get_value_bool(env, argv[2], &datasync) != napi_ok) return throw_arg(env, "datasync must be a boolean");
  if (!get_uint(env, argv[3], 0xffffffff, "userData", &ud)) return NULL;
  struct io_uring_sqe *sqe = next_sqe(r);
  if (sqe == NULL) return make_bool(env, false);
  sqe->opcode = IORING_OP_FSYNC;
  sqe->fd = fd;
  sqe->fsync_flags = datasync ? IORING_FSYNC_DATASYNC : 0;
  sqe->user_data = (uint64_t)ud;
  return make_bool(env, true);
}

/* uringPrepFallocate(handle, fd, mode, offset, len, userData) -> boolean (false: SQ full). */
static napi_value js_uring_prep_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  ring_t *r;
  int fd;
  int64_t mode, off, len, ud;
  if (!get_args(env, info, 6, argv, NULL) || !get_ring(env, argv[0], &r) || !get_fd(env, argv[1], &fd) ||
      !get_uint(env, argv[2], 0xff, "mode", &mode) || !get_uint(env, argv[3], MAX_SAFE_INT, "offset", &off) ||
      !get_uint(env, argv[4], MAX_SAFE_INT, "len", &len) || !get_uint(env, argv[5], 0xffffffff, "userData", &ud))
    return NULL;
  struct io_uring_sqe *sqe = next_sqe(r);
  if (sqe == NULL) return make_bool(env, false);
  /* fallocate's arguments in an entry: off = offset, addr = length, len = mode. */
  sqe->opcode = IORING_OP_FALLOCATE;
  sqe->fd = fd;
  sqe->off = (uint64_t)off;
  sqe->addr = (uint64_t)len;
  sqe->len = (uint32_t)mode;
  sqe->user_data = (uint64_t)ud;
  return make_bool(env, true);
}

/* Completions posted from here to quiet_end signal no eventfd (the caller reaps them). */
static void quiet_begin(ring_t *r) {
  if (r->cq_flags == NULL) return;
  unsigned f = atomic_load_explicit((_Atomic unsigned *)r->cq_flags, memory_order_relaxed);
  atomic_store_explicit((_Atomic unsigned *)r->cq_flags, f | IORING_CQ_EVENTFD_DISABLED, memory_order_relaxed);
}

/* Signals again; fenced so the caller's reap reads the CQ tail after the kernel can see the clear. */
static void quiet_end(ring_t *r) {
  if (r->cq_flags == NULL) return;
  unsigned f = atomic_load_explicit((_Atomic unsigned *)r->cq_flags, memory_order_relaxed);
  atomic_store_explicit((_Atomic unsigned *)r->cq_flags, f & ~IORING_CQ_EVENTFD_DISABLED, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
}

static long enter_quietly(ring_t *r, unsigned submit, unsigned min_complete, unsigned flags, void *arg, size_t argsz) {
  quiet_begin(r);
  long n = syscall(__NR_io_uring_enter, r->ring_fd, submit, min_complete, flags, arg, argsz);
  int e = errno;
  quiet_end(r);
  errno = e;
  return n;
}

/*
 * uringSubmit(handle) -> entries the kernel consumed. One io_uring_enter for everything
 * prepared since the last submit; it waits for nothing. EAGAIN/EBUSY (the kernel is short of
 * resources or the CQ is full) consume nothing and return 0: reap, then submit again.
 */
static napi_value js_uring_submit(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  ring_t *r;
  if (!get_args(env, info, 1, argv, NULL) || !get_ring(env, argv[0], &r)) return NULL;
  /* Publish the prepared entries: their contents before the tail (release). */
  atomic_store_explicit((_Atomic unsigned *)r->sq_tail, r->local_tail, memory_order_release);
  unsigned head = atomic_load_explicit((_Atomic unsigned *)r->sq_head, memory_order_acquire);
  unsigned pending = r->local_tail - head;
  if (pending == 0) return make_int(env, 0);
  for (int i = 0; i < MAX_EINTR; i++) {
    long n = enter_quietly(r, pending, 0, 0, NULL, 0);
    if (n >= 0) return make_int(env, n);
    if (errno == EAGAIN || errno == EBUSY) return make_int(env, 0);
    if (errno != EINTR) return throw_errno(env, "io_uring_enter", errno);
  }
  return make_int(env, 0);
}

/*
 * uringSubmitWait(handle, waitNs) -> entries the kernel consumed, or -1 when the kernel cannot
 * wait with a timeout (no IORING_FEAT_EXT_ARG, before Linux 5.11). Submits what is prepared
 * and sleeps in io_uring_enter until a completion is posted or waitNs passed (ETIME: no
 * error). For a lone operation the kernel does not complete inline (a buffered write it hands
 * to an io-wq worker): the caller learns of its completion without the eventfd waking Node's
 * loop (the eventfd is still signalled; the caller's reap clears it).
 */
static napi_value js_uring_submit_wait(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  ring_t *r;
  int64_t wait_ns;
  if (!get_args(env, info, 2, argv, NULL) || !get_ring(env, argv[0], &r) || !get_uint(env, argv[1], 1e9, "waitNs", &wait_ns)) return NULL;
  if (!r->ext_arg) return make_int(env, -1);
  atomic_store_explicit((_Atomic unsigned *)r->sq_tail, r->local_tail, memory_order_release);
  unsigned head = atomic_load_explicit((_Atomic unsigned *)r->sq_head, memory_order_acquire);
  unsigned pending = r->local_tail - head;
  struct __kernel_timespec ts = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
  struct io_uring_getevents_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.ts = (uint64_t)(uintptr_t)&ts;
  for (int i = 0; i < MAX_EINTR; i++) {
    long n = enter_quietly(r, pending, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
    if (n >= 0) return make_int(env, n);
    /* ETIME: the wait ended without a completion, after the submission was taken. */
    if (errno == ETIME) return make_int(env, (int64_t)(pending - (r->local_tail - atomic_load_explicit((_Atomic unsigned *)r->sq_head, memory_order_acquire))));
    if (errno == EAGAIN || errno == EBUSY) return make_int(env, 0);
    if (errno != EINTR) return throw_errno(env, "io_uring_enter", errno);
    /* Interrupted: what was taken is taken; wait again without submitting twice. */
    head = atomic_load_explicit((_Atomic unsigned *)r->sq_head, memory_order_acquire);
    pending = r->local_tail - head;
  }
  return make_int(env, 0);
}

/* uringPending(handle) -> entries prepared or published that the kernel has not consumed. */
static napi_value js_uring_pending(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  ring_t *r;
  if (!get_args(env, info, 1, argv, NULL) || !get_ring(env, argv[0], &r)) return NULL;
  unsigned head = atomic_load_explicit((_Atomic unsigned *)r->sq_head, memory_order_acquire);
  return make_int(env, r->local_tail - head);
}

/*
 * uringReap(handle, out: Int32Array, clearEventfd) -> pairs written: (user_data, res) of each
 * completion, as many as fit, in order. With clearEventfd the eventfd is read first, so a
 * later signal means a later completion (the caller's next calls in one drain pass false).
 */
static napi_value js_uring_reap(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  ring_t *r;
  bool clear = false;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (!get_args(env, info, 3, argv, NULL) || !get_ring(env, argv[0], &r)) return NULL;
  if (!is_undefined(env, argv[2]) && napi_get_value_bool(env, argv[2], &clear) != napi_ok) return throw_arg(env, "clearEventfd must be a boolean");
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_int32_array)
    return throw_arg(env, "out must be an Int32Array");
  uint64_t drained;
  /* Clear before reading the CQ: a completion posted after this read signals again. */
  if (clear && read(r->event_fd, &drained, sizeof drained) < 0 && errno != EAGAIN) return throw_errno(env, "read eventfd", errno);
  int32_t *out = data;
  size_t max = length / 2, n = 0;
  unsigned head = *r->cq_head;
  unsigned tail = atomic_load_explicit((_Atomic unsigned *)r->cq_tail, memory_order_acquire);
  while (head != tail && n < max) {
    struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
    out[2 * n] = (int32_t)(uint32_t)c->user_data;
    out[2 * n + 1] = c->res;
    n++;
    head++;
  }
  atomic_store_explicit((_Atomic unsigned *)r->cq_head, head, memory_order_release);
  return make_int(env, (int64_t)n);
}

/* uringClose(handle): idempotent. */
static napi_value js_uring_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *p = NULL;
  napi_valuetype t;
  if (!get_args(env, info, 1, argv, NULL)) return NULL;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL)
    return throw_arg(env, "not an io_uring handle");
  ring_close(p);
  return NULL;
}

/* errnoName(n) -> "EIO", ... for a completion's -res. */
static napi_value js_errno_name(napi_env env, napi_callback_info info) {
  napi_value argv[1], v;
  int64_t e;
  if (!get_args(env, info, 1, argv, NULL) || !get_uint(env, argv[0], 4095, "errno", &e)) return NULL;
  NAPI_CALL(env, napi_create_string_utf8(env, errno_name((int)e), NAPI_AUTO_LENGTH, &v));
  return v;
}

/*
 * dioAlignment(fd) -> [memAlign, offsetAlign]: what O_DIRECT needs of buffers and of file
 * offsets and lengths (statx STATX_DIOALIGN, Linux 6.1). [0, 0] when the kernel or the
 * filesystem does not say (the caller then assumes a safe value) or direct I/O is unsupported.
 */
static napi_value js_dio_alignment(napi_env env, napi_callback_info info) {
  napi_value argv[1], arr;
  int fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  struct statx stx;
  memset(&stx, 0, sizeof stx);
  int64_t mem = 0, off = 0;
  if (syscall(__NR_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN)) {
    mem = stx.stx_dio_mem_align;
    off = stx.stx_dio_offset_align;
  }
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &arr));
  NAPI_CALL(env, napi_set_element(env, arr, 0, make_int(env, mem)));
  NAPI_CALL(env, napi_set_element(env, arr, 1, make_int(env, off)));
  return arr;
}

bool register_io_uring(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("uringSetup", js_uring_setup),
      EXPORT_FN("uringInfo", js_uring_info),
      EXPORT_FN("uringPrepRw", js_uring_prep_rw),
      EXPORT_FN("uringPrepFsync", js_uring_prep_fsync),
      EXPORT_FN("uringPrepFallocate", js_uring_prep_fallocate),
      EXPORT_FN("uringSubmit", js_uring_submit),
      EXPORT_FN("uringSubmitWait", js_uring_submit_wait),
      EXPORT_FN("uringPending", js_uring_pending),
      EXPORT_FN("uringReap", js_uring_reap),
      EXPORT_FN("uringClose", js_uring_close),
      EXPORT_FN("errnoName", js_errno_name),
      EXPORT_FN("dioAlignment", js_dio_alignment),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
