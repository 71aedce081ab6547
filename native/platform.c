/*
 * virtio-ts platform addon: the only code of the project that makes system calls Node cannot
 * make by itself (Unix sockets with SCM_RIGHTS fd passing, mmap of shared memory, eventfd,
 * memfd, fd readiness through libuv). Kept small on purpose: every policy decision lives in
 * src/platform/native-platform.ts; this file only maps JS values to syscalls and back.
 *
 * Conventions
 * - Every fd this file creates is close-on-exec; sockets are non-blocking.
 * - "Nothing ready" (EAGAIN) is a value (-1, 0 or an empty result), never an exception.
 * - Any other failure throws an Error whose `code` is the errno name (e.g. "EBADF"); the TS
 *   wrapper turns it into VirtioError code PLATFORM.
 * - No fd leaks on error paths: whatever was opened before a failure is closed (saving errno).
 * - EINTR is retried a bounded number of times (MAX_EINTR) so no loop is unbounded.
 */
#include <node_api.h>
#include <uv.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The kernel's limit of fds per SCM_RIGHTS message (SCM_MAX_FD in include/net/scm.h). */
#define MAX_PASS_FDS 253
#define MAX_EINTR 64
/* Node 20 caps an external ArrayBuffer at 4 GiB: callers map larger areas in chunks. */
#define MAX_MAP_LEN ((int64_t)1 << 32)
/* Largest integer a JS number holds exactly. */
#define MAX_SAFE_INT 9007199254740991.0

/* ---------------------------------------------------------------- errors and arguments */

static const char *errno_name(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(e);
  if (n != NULL) return n;
#endif
  switch (e) {
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EPIPE: return "EPIPE";
    case ENOMEM: return "ENOMEM";
    default: return "EUNKNOWN";
  }
}

/* Throws Error{code: errno name} and returns NULL so callers can `return throw_errno(...)`. */
static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[320];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(e), errno_name(e));
  napi_throw_error(env, errno_name(e), msg);
  return NULL;
}

static napi_value throw_arg(napi_env env, const char *msg) {
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}

/* A failed napi_* call: keep a pending exception, or raise a generic one. */
#define NAPI_CALL(env, call)                                              \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      bool pending_ = false;                                              \
      napi_is_exception_pending((env), &pending_);                        \
      if (!pending_) napi_throw_error((env), "ENAPI", "N-API call failed: " #call); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, size_t *got) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  for (size_t i = argc; i < want; i++) napi_get_undefined(env, &argv[i]);
  if (got != NULL) *got = argc;
  return true;
}

static bool is_undefined(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_undefined || t == napi_null);
}

/* A non-negative integer no larger than `max`; throws and returns false otherwise. */
static bool get_uint(napi_env env, napi_value v, double max, const char *name, int64_t *out) {
  double d;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
      !(d >= 0) || d > max || d != (double)(int64_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an integer in [0, %.0f]", name, max);
    throw_arg(env, msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool get_fd(napi_env env, napi_value v, int *fd) {
  int64_t x;
  if (!get_uint(env, v, 2147483647.0, "fd", &x)) return false;
  *fd = (int)x;
  return true;
}

/* The bytes of a Uint8Array (or Buffer): data already points at the view's first byte. */
static bool get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_ta = false;
  napi_typedarray_type type;
  void *p = NULL;
  size_t n = 0;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &n, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_arg(env, "buf must be a Uint8Array");
    return false;
  }
  *data = p;
  *len = n;
  return true;
}

/* Checks offset/len against the view and yields the byte range. */
static bool get_range(napi_env env, napi_value vbuf, napi_value voff, napi_value vlen, uint8_t **ptr, size_t *len) {
  uint8_t *data;
  size_t n;
  int64_t off, l;
  if (!get_bytes(env, vbuf, &data, &n)) return false;
  if (!get_uint(env, voff, MAX_SAFE_INT, "offset", &off) || !get_uint(env, vlen, MAX_SAFE_INT, "len", &l)) return false;
  if ((uint64_t)off > n || (uint64_t)l > n - (uint64_t)off) {
    throw_arg(env, "offset + len exceeds the buffer");
    return false;
  }
  *ptr = data == NULL ? NULL : data + off;
  *len = (size_t)l;
  return true;
}

static napi_value make_int(napi_env env, int64_t x) {
  napi_value v;
  NAPI_CALL(env, napi_create_int64(env, x, &v));
  return v;
}

static void close_keep_errno(int fd) {
  int e = errno;
  close(fd);
  errno = e;
}

/* ---------------------------------------------------------------- Unix sockets */

static bool fill_sockaddr(napi_env env, napi_value vpath, struct sockaddr_un *sa) {
  size_t n = 0;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, vpath, NULL, 0, &n) != napi_ok) {
    throw_arg(env, "path must be a string");
    return false;
  }
  if (n == 0 || n >= sizeof sa->sun_path) {
    throw_arg(env, "socket path is empty or longer than sun_path (107 bytes)");
    return false;
  }
  if (napi_get_value_string_utf8(env, vpath, sa->sun_path, sizeof sa->sun_path, &n) != napi_ok) return false;
  if (strlen(sa->sun_path) != n) {
    throw_arg(env, "socket path contains a NUL byte");
    return false;
  }
  return true;
}

/* listenUnix(path, backlog = 128) -> fd */
static napi_value js_listen_unix(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct sockaddr_un sa;
  int64_t backlog = 128;
  struct stat st;
  if (!get_args(env, info, 2, argv, NULL) || !fill_sockaddr(env, argv[0], &sa)) return NULL;
  if (!is_undefined(env, argv[1]) && !get_uint(env, argv[1], 65535, "backlog", &backlog)) return NULL;
  /* A stale socket file from an earlier run makes bind fail with EADDRINUSE; remove it, but
   * never anything that is not a socket. */
  if (lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(sa.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close_keep_errno(fd);
    return throw_errno(env, "bind", errno);
  }
  if (listen(fd, (int)backlog) < 0) {
    close_keep_errno(fd);
    return throw_errno(env, "listen", errno);
  }
  return make_int(env, fd);
}

/* accept(listenFd) -> fd, or -1 when no connection is pending */
static napi_value js_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int lfd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &lfd)) return NULL;
  for (int i = 0; i < MAX_EINTR; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) return make_int(env, fd);
    if (errno == EINTR) continue;
    /* A peer that gave up before we accepted is "nothing pending", not an error. */
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return make_int(env, -1);
    return throw_errno(env, "accept4", errno);
  }
  return throw_errno(env, "accept4", EINTR);
}

/* connectUnix(path) -> fd (connected blocking, then made non-blocking) */
static napi_value js_connect_unix(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un sa;
  if (!get_args(env, info, 1, argv, NULL) || !fill_sockaddr(env, argv[0], &sa)) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    if (errno != EINTR) {
      close_keep_errno(fd);
      return throw_errno(env, "connect", errno);
    }
    /* Interrupted: the connection goes on; wait for it (bounded) and read its outcome. */
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&p, 1, 5000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
      if (err == 0) err = errno != 0 ? errno : ETIMEDOUT;
      close(fd);
      return throw_errno(env, "connect", err);
    }
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    close_keep_errno(fd);
    return throw_errno(env, "fcntl(O_NONBLOCK)", errno);
  }
  return make_int(env, fd);
}

/* socketpair() -> [fd, fd] */
static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  napi_value arr, a, b;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) return throw_errno(env, "socketpair", errno);
  if (napi_create_array_with_length(env, 2, &arr) != napi_ok || napi_create_int32(env, sv[0], &a) != napi_ok ||
      napi_create_int32(env, sv[1], &b) != napi_ok || napi_set_element(env, arr, 0, a) != napi_ok ||
      napi_set_element(env, arr, 1, b) != napi_ok) {
    close(sv[0]);
    close(sv[1]);
    return throw_errno(env, "socketpair result", ENOMEM);
  }
  return arr;
}

/*
 * recvmsg(fd, buf, offset, len, maxFds) -> { bytes, fds, dropped }
 * bytes is -1 when nothing is ready, 0 at end of stream. The control buffer always has room for
 * the kernel's maximum, so fds beyond maxFds are seen here and closed (counted in `dropped`)
 * rather than leaked; MSG_CTRUNC (should not happen) also counts as dropped.
 */
static napi_value js_recvmsg(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd;
  uint8_t *ptr;
  size_t len;
  int64_t max_fds;
  if (!get_args(env, info, 5, argv, NULL) || !get_fd(env, argv[0], &fd) ||
      !get_range(env, argv[1], argv[2], argv[3], &ptr, &len) ||
      !get_uint(env, argv[4], MAX_PASS_FDS, "maxFds", &max_fds))
    return NULL;

  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * MAX_PASS_FDS)];
  } control;
  struct iovec iov = {.iov_base = ptr, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n = -1;
  int e = EINTR;
  for (int i = 0; i < MAX_EINTR && e == EINTR; i++) {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    e = n < 0 ? errno : 0;
  }
  if (n < 0 && e != EAGAIN && e != EWOULDBLOCK) return throw_errno(env, "recvmsg", e);

  int kept[MAX_PASS_FDS];
  int nkept = 0, dropped = 0;
  if (n >= 0) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count; k++) {
        int f;
        memcpy(&f, CMSG_DATA(c) + k * sizeof(int), sizeof f); /* CMSG_DATA may be unaligned */
        if (nkept < max_fds) kept[nkept++] = f;
        else {
          close(f);
          dropped++;
        }
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) dropped++;
  }

  napi_value res, arr, v;
  bool ok = napi_create_object(env, &res) == napi_ok && napi_create_array_with_length(env, (size_t)nkept, &arr) == napi_ok;
  for (int k = 0; ok && k < nkept; k++)
    ok = napi_create_int32(env, kept[k], &v) == napi_ok && napi_set_element(env, arr, (uint32_t)k, v) == napi_ok;
  ok = ok && napi_create_int64(env, n < 0 ? -1 : (int64_t)n, &v) == napi_ok && napi_set_named_property(env, res, "bytes", v) == napi_ok;
  ok = ok && napi_set_named_property(env, res, "fds", arr) == napi_ok;
  ok = ok && napi_create_int32(env, dropped, &v) == napi_ok && napi_set_named_property(env, res, "dropped", v) == napi_ok;
  if (!ok) {
    for (int k = 0; k < nkept; k++) close(kept[k]); /* nobody will own them */
    return throw_errno(env, "recvmsg result", ENOMEM);
  }
  return res;
}

/* sendmsg(fd, buf, offset, len, fds?) -> bytes sent, or -1 when the socket buffer is full */
static napi_value js_sendmsg(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd;
  uint8_t *ptr;
  size_t len;
  if (!get_args(env, info, 5, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_range(env, argv[1], argv[2], argv[3], &ptr, &len))
    return NULL;

  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * MAX_PASS_FDS)];
  } control;
  int fds[MAX_PASS_FDS];
  uint32_t nfds = 0;
  if (!is_undefined(env, argv[4])) {
    bool is_arr = false;
    if (napi_is_array(env, argv[4], &is_arr) != napi_ok || !is_arr) return throw_arg(env, "fds must be an array");
    NAPI_CALL(env, napi_get_array_length(env, argv[4], &nfds));
    if (nfds > MAX_PASS_FDS) return throw_arg(env, "at most 253 fds per message");
    for (uint32_t k = 0; k < nfds; k++) {
      napi_value v;
      NAPI_CALL(env, napi_get_element(env, argv[4], k, &v));
      if (!get_fd(env, v, &fds[k])) return NULL;
    }
  }
  struct iovec iov = {.iov_base = ptr, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    if (len == 0) return throw_arg(env, "fds need at least one byte to travel with");
    memset(control.buf, 0, sizeof control.buf);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (int i = 0; i < MAX_EINTR; i++) {
    /* MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE. */
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return make_int(env, n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    return throw_errno(env, "sendmsg", errno);
  }
  return throw_errno(env, "sendmsg", EINTR);
}

/* close(fd). EINTR leaves the fd closed on Linux, so it is not retried (that could close a reused fd). */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

/* ---------------------------------------------------------------- readiness watcher */

/*
 * Lifetime: the struct is shared by the libuv handle and by the JS external that names it,
 * and freed when both let go (refs 2 -> 0): uv_close's callback drops one, the external's
 * finalizer the other. So stopping from inside the watcher's own callback is safe: the struct
 * stays valid until libuv has finished with the handle, after the callback has returned.
 */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int refs;
  bool stopped;
} watcher_t;

static void watcher_release(watcher_t *w) {
  if (--w->refs == 0) free(w);
}

static void on_watcher_closed(uv_handle_t *h) {
  watcher_release((watcher_t *)h->data);
}

static void watcher_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watcher_release(data);
}

/* Environment teardown (process exit, worker end) with the watcher still running. */
static void watcher_cleanup_hook(void *arg) {
  watcher_t *w = arg;
  if (w->stopped) return;
  w->stopped = true;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_watcher_closed);
}

static void watcher_stop(watcher_t *w) {
  if (w->stopped) return;
  w->stopped = true;
  napi_remove_env_cleanup_hook(w->env, watcher_cleanup_hook, w);
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->cb);
  napi_async_destroy(w->env, w->ctx);
  uv_close((uv_handle_t *)&w->poll, on_watcher_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  watcher_t *w = h->data;
  /* status < 0 (e.g. the fd was closed under us): libuv has stopped the poll; the callback
   * still runs once so the owner reads, sees the error or end of stream, and stops. */
  (void)status;
  if (w->stopped) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, result;
  if (napi_get_reference_value(env, w->cb, &fn) == napi_ok && fn != NULL && napi_get_global(env, &recv) == napi_ok) {
    /* napi_make_callback (not napi_call_function): runs the microtask queue afterwards and
     * keeps async_hooks context, as any libuv-driven callback in Node does. */
    if (napi_make_callback(env, w->ctx, recv, fn, 0, NULL, &result) != napi_ok) {
      bool pending = false;
      napi_value exc;
      if (napi_is_exception_pending(env, &pending) == napi_ok && pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok)
        napi_fatal_exception(env, exc); /* becomes process 'uncaughtException' */
    }
  }
  /* `w` may be stopped now, but stays allocated until on_watcher_closed: nothing more to touch. */
  napi_close_handle_scope(env, scope);
}

/* watchReadable(fd, cb) -> handle (pass to stopWatch) */
static napi_value js_watch_readable(napi_env env, napi_callback_info info) {
  napi_value argv[2], ext, resource, rname;
  int fd;
  napi_valuetype t;
  uv_loop_t *loop;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) return throw_arg(env, "cb must be a function");
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  watcher_t *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, "watchReadable", ENOMEM);
  w->env = env;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w); /* the handle was not initialised: nothing to close */
    return throw_errno(env, "uv_poll_init", -r);
  }
  w->poll.data = w;
  w->refs = 1; /* the handle's */
  if (napi_create_reference(env, argv[1], 1, &w->cb) != napi_ok || napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "virtio-ts:watchReadable", NAPI_AUTO_LENGTH, &rname) != napi_ok ||
      napi_async_init(env, resource, rname, &w->ctx) != napi_ok) {
    if (w->cb != NULL) napi_delete_reference(env, w->cb);
    w->stopped = true;
    uv_close((uv_handle_t *)&w->poll, on_watcher_closed);
    return throw_errno(env, "watchReadable", ENOMEM);
  }
  if (napi_create_external(env, w, watcher_finalize, NULL, &ext) != napi_ok) {
    watcher_stop(w);
    return throw_errno(env, "watchReadable", ENOMEM);
  }
  w->refs++; /* the external's */
  r = uv_poll_start(&w->poll, UV_READABLE, on_poll);
  if (r < 0) {
    watcher_stop(w);
    return throw_errno(env, "uv_poll_start", -r);
  }
  napi_add_env_cleanup_hook(env, watcher_cleanup_hook, w);
  return ext;
}

/* stopWatch(handle): idempotent; safe from inside the watcher's own callback. */
static napi_value js_stop_watch(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *p = NULL;
  napi_valuetype t;
  if (!get_args(env, info, 1, argv, NULL)) return NULL;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL)
    return throw_arg(env, "not a watcher handle");
  watcher_stop(p);
  return NULL;
}

/*
 * pollReadable(fd, timeoutMs?) -> boolean: whether fd is readable (or at end of stream / in
 * error). Without timeoutMs (or 0) a zero-timeout poll(2), for busy checks without a watcher;
 * with it, blocks the calling thread up to timeoutMs, for synchronous request/reply protocols
 * (x-remote register accesses). EINTR resumes the wait with the time left, never longer.
 */
static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static napi_value js_poll_readable(napi_env env, napi_callback_info info) {
  napi_value argv[2], v;
  int fd, r = -1;
  int64_t timeout = 0;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (!is_undefined(env, argv[1]) && !get_uint(env, argv[1], 2147483647.0, "timeoutMs", &timeout)) return NULL;
  const int64_t deadline = monotonic_ms() + timeout;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  for (int i = 0; i < MAX_EINTR; i++) {
    int64_t left = deadline - monotonic_ms();
    r = poll(&p, 1, left > 0 ? (int)left : 0);
    if (r >= 0 || errno != EINTR) break;
  }
  if (r < 0) return throw_errno(env, "poll", errno);
  if (r == 1 && (p.revents & POLLNVAL)) return throw_errno(env, "poll", EBADF);
  NAPI_CALL(env, napi_get_boolean(env, r == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0, &v));
  return v;
}

/* ---------------------------------------------------------------- shared memory */

/*
 * A mapping is named by two JS values: the external ArrayBuffer over it and an external handle.
 * Both finalizers hold a reference (refs 2 -> 0 frees the struct). The memory itself is
 * unmapped exactly once: by unmap() (which first detaches the buffer so no JS view can reach
 * the pages afterwards) or, if the program never unmaps, when the buffer is collected.
 */
typedef struct {
  void *base;   /* what mmap returned (page-aligned) */
  size_t len;   /* what was mapped */
  void *view;   /* base + (offset % page): the ArrayBuffer's first byte */
  size_t view_len;
  bool unmapped;
  int refs;
} mapping_t;

static void mapping_release(mapping_t *m) {
  if (--m->refs == 0) free(m);
}

static void mapping_buffer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping_t *m = hint;
  if (!m->unmapped) {
    m->unmapped = true;
    munmap(m->base, m->len);
  }
  mapping_release(m);
}

static void mapping_handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  mapping_release(data);
}

/* mmap(fd, offset, length) -> [ArrayBuffer, handle]; MAP_SHARED read-write. */
static napi_value js_mmap(napi_env env, napi_callback_info info) {
  napi_value argv[3], ab, ext, arr;
  int fd;
  int64_t off, len;
  if (!get_args(env, info, 3, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_uint(env, argv[1], MAX_SAFE_INT, "offset", &off) ||
      !get_uint(env, argv[2], (double)MAX_MAP_LEN, "length (map larger areas in chunks)", &len))
    return NULL;
  if (len == 0) return throw_arg(env, "length must be positive");
  /* Pages of a file beyond its end map fine but raise SIGBUS when touched: a front-end that
   * announces more memory than its memfd holds must get an error here, not crash us later. */
  struct stat st;
  if (fstat(fd, &st) < 0) return throw_errno(env, "fstat", errno);
  if (S_ISREG(st.st_mode) && (off > st.st_size || len > st.st_size - off)) return throw_errno(env, "mmap beyond the end of the file", ENXIO);
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  /* mmap needs a page-aligned file offset: map from the page below and point the view in. */
  int64_t delta = off % page;
  mapping_t *m = calloc(1, sizeof *m);
  if (m == NULL) return throw_errno(env, "mmap", ENOMEM);
  m->len = (size_t)(len + delta);
  m->base = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(off - delta));
  if (m->base == MAP_FAILED) {
    int e = errno;
    free(m);
    return throw_errno(env, "mmap", e);
  }
  m->view = (uint8_t *)m->base + delta;
  m->view_len = (size_t)len;
  m->refs = 1; /* the buffer's finalizer */
  if (napi_create_external_arraybuffer(env, m->view, m->view_len, mapping_buffer_finalize, m, &ab) != napi_ok) {
    munmap(m->base, m->len);
    free(m);
    return throw_errno(env, "napi_create_external_arraybuffer", ENOMEM);
  }
  /* From here the buffer owns the pages; on failure its finalizer unmaps them. */
  if (napi_create_external(env, m, mapping_handle_finalize, NULL, &ext) != napi_ok) return throw_errno(env, "mmap handle", ENOMEM);
  m->refs++;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &arr));
  NAPI_CALL(env, napi_set_element(env, arr, 0, ab));
  NAPI_CALL(env, napi_set_element(env, arr, 1, ext));
  return arr;
}

/* munmap(arrayBuffer, handle): detaches the buffer (byteLength 0 afterwards), then unmaps. Idempotent. */
static napi_value js_munmap(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *p = NULL, *data = NULL;
  size_t n = 0;
  bool is_ab = false;
  napi_valuetype t;
  if (!get_args(env, info, 2, argv, NULL)) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[1], &p) != napi_ok || p == NULL)
    return throw_arg(env, "not a mapping handle");
  mapping_t *m = p;
  if (m->unmapped) return NULL;
  if (napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab || napi_get_arraybuffer_info(env, argv[0], &data, &n) != napi_ok ||
      data != m->view || n != m->view_len)
    return throw_arg(env, "the ArrayBuffer does not belong to this mapping");
  NAPI_CALL(env, napi_detach_arraybuffer(env, argv[0]));
  m->unmapped = true;
  if (munmap(m->base, m->len) < 0) return throw_errno(env, "munmap", errno);
  return NULL;
}

/* memfd(name, size) -> fd: memfd_create + ftruncate */
static napi_value js_memfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[250];
  size_t n;
  int64_t size;
  if (!get_args(env, info, 2, argv, NULL)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok) return throw_arg(env, "name must be a string");
  if (!get_uint(env, argv[1], MAX_SAFE_INT, "size", &size)) return NULL;
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, "memfd_create", errno);
  if (ftruncate(fd, (off_t)size) < 0) {
    close_keep_errno(fd);
    return throw_errno(env, "ftruncate", errno);
  }
  return make_int(env, fd);
}

/* ---------------------------------------------------------------- eventfd, dup, fd count */

/* eventfd(initial = 0) -> fd */
static napi_value js_eventfd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t init = 0;
  if (!get_args(env, info, 1, argv, NULL)) return NULL;
  if (!is_undefined(env, argv[0]) && !get_uint(env, argv[0], 4294967295.0, "initial", &init)) return NULL;
  int fd = eventfd((unsigned int)init, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, "eventfd", errno);
  return make_int(env, fd);
}

/* eventfdWrite(fd, value = 1): adds to the counter (EAGAIN only if it would overflow: thrown). */
static napi_value js_eventfd_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t value = 1;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (!is_undefined(env, argv[1]) && !get_uint(env, argv[1], MAX_SAFE_INT, "value", &value)) return NULL;
  uint64_t v = (uint64_t)value;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t r = write(fd, &v, sizeof v);
    if (r == (ssize_t)sizeof v) return NULL;
    if (r >= 0) return throw_errno(env, "eventfd write", EIO);
    if (errno != EINTR) return throw_errno(env, "eventfd write", errno);
  }
  return throw_errno(env, "eventfd write", EINTR);
}

/* eventfdRead(fd) -> counter (and clears it); 0 when it was 0 */
static napi_value js_eventfd_read(napi_env env, napi_callback_info info) {
  napi_value argv[1], res;
  int fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  uint64_t v = 0;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t r = read(fd, &v, sizeof v);
    if (r == (ssize_t)sizeof v) {
      NAPI_CALL(env, napi_create_double(env, (double)v, &res));
      return res;
    }
    if (r >= 0) return throw_errno(env, "eventfd read", EIO);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, 0);
    if (errno != EINTR) return throw_errno(env, "eventfd read", errno);
  }
  return throw_errno(env, "eventfd read", EINTR);
}

/* dup(fd) -> new fd, close-on-exec */
static napi_value js_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) return throw_errno(env, "dup", errno);
  return make_int(env, r);
}

/* openFdCount() -> number of open fds of this process (entries of /proc/self/fd, minus the
 * directory's own fd). */
static napi_value js_open_fd_count(napi_env env, napi_callback_info info) {
  (void)info;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return throw_errno(env, "opendir(/proc/self/fd)", errno);
  int64_t count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) /* bounded: a directory listing ends */
    if (e->d_name[0] != '.') count++;
  closedir(d);
  return make_int(env, count - 1);
}

/* ---------------------------------------------------------------- module */

static napi_value init(napi_env env, napi_value exports) {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
  const napi_property_descriptor props[] = {
      FN("listenUnix", js_listen_unix),   FN("accept", js_accept),
      FN("connectUnix", js_connect_unix), FN("socketpair", js_socketpair),
      FN("recvmsg", js_recvmsg),          FN("sendmsg", js_sendmsg),
      FN("close", js_close),              FN("watchReadable", js_watch_readable),
      FN("stopWatch", js_stop_watch),     FN("pollReadable", js_poll_readable),
      FN("mmap", js_mmap),                FN("munmap", js_munmap),
      FN("memfd", js_memfd),              FN("eventfd", js_eventfd),
      FN("eventfdWrite", js_eventfd_write), FN("eventfdRead", js_eventfd_read),
      FN("dup", js_dup),                  FN("openFdCount", js_open_fd_count),
  };
#undef FN
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
