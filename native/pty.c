/*
 * Pseudo-terminals for console ports (virtio-ts console --port ...,pty): the master side, read
 * and written non-blocking, whether a program has the terminal (the slave) open, and its size.
 * Node has no posix_openpt, and its tty streams write a pty master blocking (libuv cannot
 * reopen a master), so the console reads and writes it here, watched by fd-watch.c.
 */
#include "napi-args.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* ptyOpen() -> [masterFd, slavePath]; the master is non-blocking and close-on-exec. */
static napi_value js_pty_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return throw_errno(env, "posix_openpt", errno);
  char path[128];
  if (grantpt(fd) != 0 || unlockpt(fd) != 0 || ptsname_r(fd, path, sizeof path) != 0) {
    int e = errno;
    close_keep_errno(fd);
    return throw_errno(env, "grantpt/unlockpt/ptsname", e);
  }
  /* Raw on the master's line discipline: the guest's bytes reach the terminal as they are. */
  struct termios t;
  if (tcgetattr(fd, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(fd, TCSANOW, &t);
  }
  napi_value res, vfd, vpath;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &res));
  vfd = make_int(env, fd);
  if (vfd == NULL) return NULL;
  NAPI_CALL(env, napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &vpath));
  NAPI_CALL(env, napi_set_element(env, res, 0, vfd));
  NAPI_CALL(env, napi_set_element(env, res, 1, vpath));
  return res;
}

/* ptyRead(fd, buf, off, len) -> bytes read (>0), -1 nothing ready, -2 no program has it open (EIO). */
static napi_value js_pty_read(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  uint8_t *ptr;
  size_t len;
  if (!get_args(env, info, 4, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_range(env, argv[1], argv[2], argv[3], &ptr, &len)) return NULL;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t r = read(fd, ptr, len);
    if (r > 0) return make_int(env, r);
    if (r == 0 || errno == EIO) return make_int(env, -2);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    if (errno != EINTR) return throw_errno(env, "pty read", errno);
  }
  return throw_errno(env, "pty read", EINTR);
}

/* ptyWrite(fd, buf, off, len) -> bytes written, -1 when it would block, -2 when closed (EIO). */
static napi_value js_pty_write(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  uint8_t *ptr;
  size_t len;
  if (!get_args(env, info, 4, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_range(env, argv[1], argv[2], argv[3], &ptr, &len)) return NULL;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t r = write(fd, ptr, len);
    if (r >= 0) return make_int(env, r);
    if (errno == EIO) return make_int(env, -2);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    if (errno != EINTR) return throw_errno(env, "pty write", errno);
  }
  return throw_errno(env, "pty write", EINTR);
}

/* ptyPeerOpen(fd) -> whether a program has the slave open (the master polls without POLLHUP). */
static napi_value js_pty_peer_open(napi_env env, napi_callback_info info) {
  napi_value argv[1], res;
  int fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
  int r = -1;
  for (int i = 0; i < MAX_EINTR && r < 0; i++) {
    r = poll(&p, 1, 0);
    if (r < 0 && errno != EINTR) return throw_errno(env, "poll", errno);
  }
  if (r < 0) return throw_errno(env, "poll", EINTR);
  NAPI_CALL(env, napi_get_boolean(env, (p.revents & (POLLHUP | POLLERR | POLLNVAL)) == 0, &res));
  return res;
}

/* ptyGetSize(fd) -> [cols, rows] */
static napi_value js_pty_get_size(napi_env env, napi_callback_info info) {
  napi_value argv[1], res;
  int fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  struct winsize w = {0};
  if (ioctl(fd, TIOCGWINSZ, &w) != 0) return throw_errno(env, "TIOCGWINSZ", errno);
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &res));
  napi_value c = make_int(env, w.ws_col), r = make_int(env, w.ws_row);
  if (c == NULL || r == NULL) return NULL;
  NAPI_CALL(env, napi_set_element(env, res, 0, c));
  NAPI_CALL(env, napi_set_element(env, res, 1, r));
  return res;
}

/* ptySetSize(fd, cols, rows) */
static napi_value js_pty_set_size(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t cols, rows;
  if (!get_args(env, info, 3, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_uint(env, argv[1], 65535, "cols", &cols) ||
      !get_uint(env, argv[2], 65535, "rows", &rows))
    return NULL;
  struct winsize w = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(fd, TIOCSWINSZ, &w) != 0) return throw_errno(env, "TIOCSWINSZ", errno);
  return NULL;
}

bool register_pty(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("ptyOpen", js_pty_open),
      EXPORT_FN("ptyRead", js_pty_read),
      EXPORT_FN("ptyWrite", js_pty_write),
      EXPORT_FN("ptyPeerOpen", js_pty_peer_open),
      EXPORT_FN("ptyGetSize", js_pty_get_size),
      EXPORT_FN("ptySetSize", js_pty_set_size),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
