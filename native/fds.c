/* eventfd, dup and the open-fd count. */
#include "napi-args.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

bool register_fds(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("eventfd", js_eventfd),
      EXPORT_FN("eventfdWrite", js_eventfd_write),
      EXPORT_FN("eventfdRead", js_eventfd_read),
      EXPORT_FN("dup", js_dup),
      EXPORT_FN("openFdCount", js_open_fd_count),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
