/*
 * Shared by every file of the virtio-ts platform addon: argument checking, errno-named
 * exceptions, and how each file registers its functions. Conventions (all files):
 * - Every fd the addon creates is close-on-exec; sockets are non-blocking.
 * - "Nothing ready" (EAGAIN) is a value (-1, 0 or an empty result), never an exception.
 * - Any other failure throws an Error whose `code` is the errno name (e.g. "EBADF"); the TS
 *   wrapper turns it into VirtioError code PLATFORM.
 * - No fd leaks on error paths: whatever was opened before a failure is closed (saving errno).
 * - EINTR is retried a bounded number of times (MAX_EINTR) so no loop is unbounded.
 */
#ifndef VIRTIO_TS_NAPI_ARGS_H
#define VIRTIO_TS_NAPI_ARGS_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_EINTR 64
/* Largest integer a JS number holds exactly. */
#define MAX_SAFE_INT 9007199254740991.0

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

/* One exported function in a file's property table. */
#define EXPORT_FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
#define DEFINE_EXPORTS(env, exports, props) \
  (napi_define_properties((env), (exports), sizeof(props) / sizeof((props)[0]), (props)) == napi_ok)

const char *errno_name(int e);
/* Throws Error{code: errno name} and returns NULL so callers can `return throw_errno(...)`. */
napi_value throw_errno(napi_env env, const char *what, int e);
napi_value throw_arg(napi_env env, const char *msg);
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, size_t *got);
bool is_undefined(napi_env env, napi_value v);
/* A non-negative integer no larger than `max`; throws and returns false otherwise. */
bool get_uint(napi_env env, napi_value v, double max, const char *name, int64_t *out);
bool get_fd(napi_env env, napi_value v, int *fd);
/* The bytes of a Uint8Array (or Buffer): data already points at the view's first byte. */
bool get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len);
/* Checks offset/len against the view and yields the byte range. */
bool get_range(napi_env env, napi_value vbuf, napi_value voff, napi_value vlen, uint8_t **ptr, size_t *len);
napi_value make_int(napi_env env, int64_t x);
void close_keep_errno(int fd);
struct sockaddr_un;
/* A Unix socket address from a JS path string; throws and returns false when it is unusable (unix-sockets.c). */
bool fill_sockaddr(napi_env env, napi_value vpath, struct sockaddr_un *sa);

/* Each file of the addon adds its functions to `exports`; false when an exception is pending. */
bool register_unix_sockets(napi_env env, napi_value exports);
bool register_fd_watch(napi_env env, napi_value exports);
bool register_shared_memory(napi_env env, napi_value exports);
bool register_fds(napi_env env, napi_value exports);
bool register_pty(napi_env env, napi_value exports);
bool register_fs_at(napi_env env, napi_value exports);
bool register_fs_io(napi_env env, napi_value exports);
bool register_tap(napi_env env, napi_value exports);
bool register_seqpacket(napi_env env, napi_value exports);
bool register_memory_advice(napi_env env, napi_value exports);
bool register_io_uring(napi_env env, napi_value exports);

#endif
