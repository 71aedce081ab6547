/* Argument checking and errno-named exceptions for the addon (see napi-args.h). */
#include "napi-args.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *errno_name(int e) {
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
napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[320];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(e), errno_name(e));
  napi_throw_error(env, errno_name(e), msg);
  return NULL;
}

napi_value throw_arg(napi_env env, const char *msg) {
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}


bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, size_t *got) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  for (size_t i = argc; i < want; i++) napi_get_undefined(env, &argv[i]);
  if (got != NULL) *got = argc;
  return true;
}

bool is_undefined(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_undefined || t == napi_null);
}

/* A non-negative integer no larger than `max`; throws and returns false otherwise. */
bool get_uint(napi_env env, napi_value v, double max, const char *name, int64_t *out) {
  double d;
  /* No napi_typeof first: napi_get_value_double itself refuses a non-number (napi_number_expected,
   * no exception pending), and every N-API call counts on the per-request paths. */
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > max || d != (double)(int64_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an integer in [0, %.0f]", name, max);
    throw_arg(env, msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool get_fd(napi_env env, napi_value v, int *fd) {
  int64_t x;
  if (!get_uint(env, v, 2147483647.0, "fd", &x)) return false;
  *fd = (int)x;
  return true;
}

/* The bytes of a Uint8Array (or Buffer): data already points at the view's first byte. */
bool get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  void *p = NULL;
  size_t n = 0;
  /* napi_get_typedarray_info refuses anything but a typed array (napi_invalid_arg, no exception
   * pending): no separate napi_is_typedarray call. */
  if (napi_get_typedarray_info(env, v, &type, &n, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_arg(env, "buf must be a Uint8Array");
    return false;
  }
  *data = p;
  *len = n;
  return true;
}

/* Checks offset/len against the view and yields the byte range. */
bool get_range(napi_env env, napi_value vbuf, napi_value voff, napi_value vlen, uint8_t **ptr, size_t *len) {
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

napi_value make_int(napi_env env, int64_t x) {
  napi_value v;
  NAPI_CALL(env, napi_create_int64(env, x, &v));
  return v;
}

void close_keep_errno(int fd) {
  int e = errno;
  close(fd);
  errno = e;
}
