/*
 * File I/O off the event loop: a READ or WRITE of a file server runs its pread/pwrite on the
 * libuv thread pool, into or out of a bounce buffer the request owns, never guest memory
 * (src/platform/fs-io.ts wraps it; src/devices/fs/fs-async-io.ts uses it).
 *
 * Why a bounce buffer: a vhost-user memory-table change or a reset may unmap guest memory while
 * a pool thread works; the JS thread copies the bounce buffer into guest memory at completion,
 * after checking the request is still live (one memcpy). The bounce buffer is a JS Uint8Array
 * held by a strong reference while the work is queued, so the thread never writes into freed
 * memory either.
 *
 * A slot is made once and reused for every request (no allocation per request):
 *   fsIoSlot(bounce: Uint8Array, done: (result: number) => void) -> slot (external)
 *   fsIoSubmit(slot, op: 0 read | 1 write, fd, position, len) -> undefined
 *   fsIoFree(slot) -> undefined (at once when idle, else when the running work completes)
 * The addon holds `bounce` and `done` weakly while the slot is idle and strongly while a transfer
 * is queued: the caller keeps them alive between transfers (a collected `done` cannot be called).
 * `done(result)` runs on the JS thread: bytes moved, or -errno when nothing moved. A short
 * transfer (end of file, full disk) ends the loop. The caller keeps `fd` open until `done`.
 * Submitting a busy slot throws EBUSY (a programming error, never the guest's).
 *
 * Also here, synchronous: fsPreadv / fsPwritev, one system call for data scattered over guest
 * buffers (a Linux guest sends a 128 KiB WRITE as 32 page-sized buffers).
 */
#include "napi-args.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

enum { IO_READ = 0, IO_WRITE = 1 };

typedef struct {
  napi_env env;
  napi_async_work work;
  napi_ref bounce_ref;   /* strong while work is queued */
  napi_ref done_ref;     /* strong while work is queued */
  uint8_t *bounce;
  size_t cap;
  int op;
  int fd;
  int64_t pos;
  size_t len;
  long result;
  bool busy;
  bool freed;  /* fsIoFree: no more submits, no more callbacks */
  bool orphan; /* the external was collected while busy: `complete` frees the struct */
} io_slot;

/* The work and the references go; the struct itself belongs to the external (finalize_slot). */
static void release_slot(napi_env env, io_slot *s) {
  if (s->work != NULL) napi_delete_async_work(env, s->work);
  if (s->bounce_ref != NULL) napi_delete_reference(env, s->bounce_ref);
  if (s->done_ref != NULL) napi_delete_reference(env, s->done_ref);
  s->work = NULL;
  s->bounce_ref = NULL;
  s->done_ref = NULL;
}

/* Pool thread: the whole transfer, EINTR retried, a short one ends it. */
static void execute(napi_env env, void *data) {
  (void)env;
  io_slot *s = data;
  size_t done = 0;
  int err = 0, eintr = 0;
  while (done < s->len) {
    ssize_t r = s->op == IO_READ ? pread(s->fd, s->bounce + done, s->len - done, (off_t)(s->pos + (int64_t)done))
                                 : pwrite(s->fd, s->bounce + done, s->len - done, (off_t)(s->pos + (int64_t)done));
    if (r < 0) {
      if (errno == EINTR && ++eintr < MAX_EINTR) continue;
      err = errno;
      break;
    }
    if (r == 0) break;
    done += (size_t)r;
  }
  s->result = done == 0 && err != 0 ? -(long)err : (long)done;
}

/* JS thread: the references become weak again, then `done(result)`. */
static void complete(napi_env env, napi_status status, void *data) {
  io_slot *s = data;
  s->busy = false;
  uint32_t rc;
  napi_reference_unref(env, s->bounce_ref, &rc);
  napi_value done = NULL, global, arg;
  napi_get_reference_value(env, s->done_ref, &done);
  napi_reference_unref(env, s->done_ref, &rc);
  long result = status == napi_ok ? s->result : -ECANCELED;
  if (s->orphan) {
    release_slot(env, s);
    free(s);
    return;
  }
  if (s->freed) {
    release_slot(env, s);
    return;
  }
  if (done == NULL) return;
  if (napi_get_global(env, &global) != napi_ok || napi_create_double(env, (double)result, &arg) != napi_ok) return;
  /* An exception thrown by `done` stays pending: Node reports it as uncaught. */
  napi_call_function(env, global, done, 1, &arg, NULL);
}

static void finalize_slot(napi_env env, void *data, void *hint) {
  (void)hint;
  io_slot *s = data;
  if (s->busy) {
    s->orphan = true; /* the pool thread still uses it: `complete` frees it */
    return;
  }
  release_slot(env, s);
  free(s);
}

static bool get_slot(napi_env env, napi_value v, io_slot **out) {
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    throw_arg(env, "slot must be an fsIoSlot");
    return false;
  }
  *out = p;
  if ((*out)->freed) {
    throw_errno(env, "fsIo slot freed", EBADF);
    return false;
  }
  return true;
}

static napi_value js_io_slot(napi_env env, napi_callback_info info) {
  napi_value argv[2], name, ext;
  uint8_t *data;
  size_t len;
  napi_valuetype t;
  if (!get_args(env, info, 2, argv, NULL) || !get_bytes(env, argv[0], &data, &len)) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) return throw_arg(env, "done must be a function");
  io_slot *s = calloc(1, sizeof *s);
  if (s == NULL) return throw_errno(env, "fsIoSlot", ENOMEM);
  s->env = env;
  s->bounce = data;
  s->cap = len;
  if (napi_create_reference(env, argv[0], 0, &s->bounce_ref) != napi_ok || napi_create_reference(env, argv[1], 0, &s->done_ref) != napi_ok ||
      napi_create_string_utf8(env, "virtio-ts:fs-io", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, s, &s->work) != napi_ok ||
      napi_create_external(env, s, finalize_slot, NULL, &ext) != napi_ok) {
    release_slot(env, s);
    free(s);
    return throw_errno(env, "fsIoSlot", ENOMEM);
  }
  return ext;
}

static napi_value js_io_submit(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  io_slot *s;
  int64_t op, pos, len;
  int fd;
  if (!get_args(env, info, 5, argv, NULL) || !get_slot(env, argv[0], &s) || !get_uint(env, argv[1], 1, "op", &op) || !get_fd(env, argv[2], &fd) ||
      !get_uint(env, argv[3], MAX_SAFE_INT, "position", &pos) || !get_uint(env, argv[4], MAX_SAFE_INT, "len", &len))
    return NULL;
  if (s->busy) return throw_errno(env, "fsIoSubmit", EBUSY);
  if ((uint64_t)len > s->cap) return throw_arg(env, "len exceeds the bounce buffer");
  uint32_t rc;
  /* Strong while queued: the bounce buffer and the callback outlive any GC until `complete`.
     Both must still exist (weak while idle): a collected one is the caller's bug. */
  napi_value alive = NULL;
  if (napi_get_reference_value(env, s->done_ref, &alive) != napi_ok || alive == NULL ||
      napi_get_reference_value(env, s->bounce_ref, &alive) != napi_ok || alive == NULL)
    return throw_errno(env, "fsIoSubmit: the slot's buffer or callback was collected", EINVAL);
  NAPI_CALL(env, napi_reference_ref(env, s->bounce_ref, &rc));
  if (napi_reference_ref(env, s->done_ref, &rc) != napi_ok) {
    napi_reference_unref(env, s->bounce_ref, &rc);
    return throw_errno(env, "fsIoSubmit", ENOMEM);
  }
  s->op = (int)op;
  s->fd = fd;
  s->pos = pos;
  s->len = (size_t)len;
  s->result = 0;
  if (napi_queue_async_work(env, s->work) != napi_ok) {
    napi_reference_unref(env, s->bounce_ref, &rc);
    napi_reference_unref(env, s->done_ref, &rc);
    return throw_errno(env, "fsIoSubmit", EAGAIN);
  }
  s->busy = true;
  return NULL;
}

static napi_value js_io_free(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  io_slot *s;
  if (!get_args(env, info, 1, argv, NULL) || !get_slot(env, argv[0], &s)) return NULL;
  /* The external stays (a JS value cannot be taken back); its struct goes now or at completion. */
  s->freed = true;
  if (!s->busy) release_slot(env, s);
  return NULL;
}


/* A Float64Array of at least `want` elements. */
static bool get_spans(napi_env env, napi_value v, size_t want, double **out) {
  napi_typedarray_type type;
  size_t n;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, &n, &p, NULL, NULL) != napi_ok || type != napi_float64_array || n < want) {
    throw_arg(env, "spans must be a Float64Array large enough");
    return false;
  }
  *out = p;
  return true;
}

/*
 * preadv/pwritev(fd, position, views, spans, count) -> bytes | -errno: one system call for a
 * request whose data is scattered over guest buffers. `views` is an array of Uint8Arrays (the
 * guest memory regions the spans lie in, at most VIEWS_MAX), `spans` a Float64Array of `count`
 * triples (view index, offset in the view, length), each checked against its view.
 */
#define VIEWS_MAX 64
#define SPANS_MAX 1024
static napi_value vectored(napi_env env, napi_callback_info info, bool write) {
  napi_value argv[5];
  int fd;
  int64_t pos, count;
  double *sp;
  uint32_t nviews;
  bool is_array = false;
  if (!get_args(env, info, 5, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_uint(env, argv[1], MAX_SAFE_INT, "position", &pos) ||
      !get_uint(env, argv[4], SPANS_MAX, "count", &count) || !get_spans(env, argv[3], (size_t)count * 3, &sp))
    return NULL;
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &nviews) != napi_ok || nviews > VIEWS_MAX)
    return throw_arg(env, "views must be an array of at most 64 Uint8Arrays");
  uint8_t *base[VIEWS_MAX];
  size_t size[VIEWS_MAX];
  for (uint32_t i = 0; i < nviews; i++) {
    napi_value v;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || !get_bytes(env, v, &base[i], &size[i])) return NULL;
  }
  struct iovec iov[SPANS_MAX];
  for (int64_t i = 0; i < count; i++) {
    double vi = sp[3 * i], off = sp[3 * i + 1], len = sp[3 * i + 2];
    if (!(vi >= 0 && vi < nviews && vi == (uint32_t)vi) || !(off >= 0 && len >= 0 && off == (double)(size_t)off && len == (double)(size_t)len) ||
        off + len > (double)size[(uint32_t)vi])
      return throw_arg(env, "span outside its view");
    iov[i].iov_base = base[(uint32_t)vi] + (size_t)off;
    iov[i].iov_len = (size_t)len;
  }
  ssize_t r;
  int eintr = 0;
  do r = write ? pwritev(fd, iov, (int)count, (off_t)pos) : preadv(fd, iov, (int)count, (off_t)pos);
  while (r < 0 && errno == EINTR && ++eintr < MAX_EINTR);
  napi_value res;
  NAPI_CALL(env, napi_create_double(env, r < 0 ? -(double)errno : (double)r, &res));
  return res;
}

static napi_value js_preadv(napi_env env, napi_callback_info info) {
  return vectored(env, info, false);
}

static napi_value js_pwritev(napi_env env, napi_callback_info info) {
  return vectored(env, info, true);
}

bool register_fs_io(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("fsIoSlot", js_io_slot),
      EXPORT_FN("fsIoSubmit", js_io_submit),
      EXPORT_FN("fsIoFree", js_io_free),
      EXPORT_FN("fsPreadv", js_preadv),
      EXPORT_FN("fsPwritev", js_pwritev),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
