/* fd readiness: a libuv poll watcher calling back into JS, and a bounded poll(2). */
#include "napi-args.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

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

bool register_fd_watch(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("watchReadable", js_watch_readable),
      EXPORT_FN("stopWatch", js_stop_watch),
      EXPORT_FN("pollReadable", js_poll_readable),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
