/*
 * Extended attributes of an object the caller holds an O_PATH descriptor of: getxattr,
 * listxattr, setxattr and removexattr through "/proc/self/fd/N", the magic link that resolves to
 * the pinned object itself (no path the guest spelled is ever walked). Node has no xattr calls.
 * The caller passes only regular files and directories (a symlink's xattrs are not reachable
 * this way without following it).
 */
#include "napi-args.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

#define XATTR_NAME_BYTES 255

/* "/proc/self/fd/N" of fd argv[0]. */
static bool fd_path(napi_env env, napi_value v, char *out, size_t size) {
  int fd;
  if (!get_fd(env, v, &fd)) return false;
  snprintf(out, size, "/proc/self/fd/%d", fd);
  return true;
}

/* A name as a NUL-terminated string: 1..255 bytes, no NUL inside. */
static bool get_name(napi_env env, napi_value v, char *out) {
  uint8_t *data;
  size_t n;
  if (!get_bytes(env, v, &data, &n)) return false;
  if (n == 0 || n > XATTR_NAME_BYTES || memchr(data, 0, n) != NULL) {
    throw_errno(env, "xattr name", n > XATTR_NAME_BYTES ? ERANGE : EINVAL);
    return false;
  }
  memcpy(out, data, n);
  out[n] = 0;
  return true;
}

/* xattrGet(fd, name, dst) -> length of the value (dst empty: its size only) */
static napi_value js_xattr_get(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[64], name[XATTR_NAME_BYTES + 1];
  uint8_t *dst;
  size_t len;
  if (!get_args(env, info, 3, argv, NULL) || !fd_path(env, argv[0], path, sizeof path) || !get_name(env, argv[1], name) ||
      !get_bytes(env, argv[2], &dst, &len))
    return NULL;
  ssize_t r = getxattr(path, name, len == 0 ? NULL : dst, len);
  if (r < 0) return throw_errno(env, "getxattr", errno);
  return make_int(env, r);
}

/* xattrList(fd, dst) -> length of the NUL-separated names (dst empty: the size only) */
static napi_value js_xattr_list(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[64];
  uint8_t *dst;
  size_t len;
  if (!get_args(env, info, 2, argv, NULL) || !fd_path(env, argv[0], path, sizeof path) || !get_bytes(env, argv[1], &dst, &len)) return NULL;
  ssize_t r = listxattr(path, len == 0 ? NULL : (char *)dst, len);
  if (r < 0) return throw_errno(env, "listxattr", errno);
  return make_int(env, r);
}

/* xattrSet(fd, name, value, flags) (flags: XATTR_CREATE 1, XATTR_REPLACE 2) */
static napi_value js_xattr_set(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[64], name[XATTR_NAME_BYTES + 1];
  uint8_t *value;
  size_t len;
  int64_t flags;
  if (!get_args(env, info, 4, argv, NULL) || !fd_path(env, argv[0], path, sizeof path) || !get_name(env, argv[1], name) ||
      !get_bytes(env, argv[2], &value, &len) || !get_uint(env, argv[3], 3, "flags", &flags))
    return NULL;
  if (setxattr(path, name, value, len, (int)flags) < 0) return throw_errno(env, "setxattr", errno);
  return NULL;
}

/* xattrRemove(fd, name) */
static napi_value js_xattr_remove(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[64], name[XATTR_NAME_BYTES + 1];
  if (!get_args(env, info, 2, argv, NULL) || !fd_path(env, argv[0], path, sizeof path) || !get_name(env, argv[1], name)) return NULL;
  if (removexattr(path, name) < 0) return throw_errno(env, "removexattr", errno);
  return NULL;
}

bool register_xattrs(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      EXPORT_FN("xattrGet", js_xattr_get),
      EXPORT_FN("xattrList", js_xattr_list),
      EXPORT_FN("xattrSet", js_xattr_set),
      EXPORT_FN("xattrRemove", js_xattr_remove),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
