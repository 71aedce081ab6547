/* Unix sockets with SCM_RIGHTS fd passing (vhost-user, x-remote). */
#include "napi-args.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The kernel's limit of fds per SCM_RIGHTS message (SCM_MAX_FD in include/net/scm.h). */
#define MAX_PASS_FDS 253


/* A Unix socket address from a JS path string (non-empty, fits sun_path, no NUL). */
bool fill_sockaddr(napi_env env, napi_value vpath, struct sockaddr_un *sa) {
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

/* listenUnix(path, backlog = 128) -> fd
 *
 * bind() makes the socket file appear before listen() makes it accept, so a client that waits
 * for the file (a supervisor, QEMU started beside us, a test) can meet ECONNREFUSED. The socket is
 * therefore bound and listening under a sibling name first, then renamed into place: whoever sees
 * the path finds a listening socket. Paths too long for the sibling name are bound directly. */
static napi_value js_listen_unix(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct sockaddr_un sa;
  struct sockaddr_un tmp;
  int64_t backlog = 128;
  struct stat st;
  if (!get_args(env, info, 2, argv, NULL) || !fill_sockaddr(env, argv[0], &sa)) return NULL;
  if (!is_undefined(env, argv[1]) && !get_uint(env, argv[1], 65535, "backlog", &backlog)) return NULL;
  tmp = sa;
  int staged = snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s.%ld~", sa.sun_path, (long)getpid());
  bool use_tmp = staged > 0 && (size_t)staged < sizeof tmp.sun_path;
  struct sockaddr_un *bind_to = use_tmp ? &tmp : &sa;
  /* A stale socket file from an earlier run makes bind fail with EADDRINUSE; remove it, but
   * never anything that is not a socket. */
  if (lstat(bind_to->sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(bind_to->sun_path);
  if (!use_tmp && lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(sa.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (bind(fd, (struct sockaddr *)bind_to, sizeof *bind_to) < 0) {
    close_keep_errno(fd);
    return throw_errno(env, "bind", errno);
  }
  if (listen(fd, (int)backlog) < 0) {
    int e = errno;
    if (use_tmp) unlink(tmp.sun_path);
    close(fd);
    return throw_errno(env, "listen", e);
  }
  if (use_tmp) {
    /* rename() replaces a stale file at the path atomically; never a non-socket. */
    if (lstat(sa.sun_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
      unlink(tmp.sun_path);
      close(fd);
      return throw_errno(env, "bind", EADDRINUSE);
    }
    if (rename(tmp.sun_path, sa.sun_path) < 0) {
      int e = errno;
      unlink(tmp.sun_path);
      close(fd);
      return throw_errno(env, "rename", e);
    }
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

bool register_unix_sockets(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("listenUnix", js_listen_unix),
      EXPORT_FN("accept", js_accept),
      EXPORT_FN("connectUnix", js_connect_unix),
      EXPORT_FN("socketpair", js_socketpair),
      EXPORT_FN("recvmsg", js_recvmsg),
      EXPORT_FN("sendmsg", js_sendmsg),
      EXPORT_FN("close", js_close),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
