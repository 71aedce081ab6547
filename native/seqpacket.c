/*
 * Unix SOCK_SEQPACKET sockets: message-preserving, connection-oriented (the host side of
 * virtio-vsock seqpacket connections, 5.10.6.6). Node's net module has no SOCK_SEQPACKET.
 * Sockets are non-blocking and close-on-exec; readiness comes from the fd watcher (fd-watch.c),
 * accept from unix-sockets.c (accept4 serves any socket type), close from fds' close.
 */
#include "napi-args.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Send buffer asked for (the kernel caps it at net.core.wmem_max, then doubles it): a message
 * must fit the send buffer whole, and a vsock message may be as long as the guest's buf_alloc. */
#define SEQPACKET_SNDBUF (512 * 1024)

static int seq_socket(void) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd >= 0) {
    int sz = SEQPACKET_SNDBUF;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz); /* best effort */
  }
  return fd;
}

/* seqpacketListen(path, backlog = 128) -> fd (a stale socket file at path is replaced) */
static napi_value js_seqpacket_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct sockaddr_un sa;
  int64_t backlog = 128;
  struct stat st;
  if (!get_args(env, info, 2, argv, NULL) || !fill_sockaddr(env, argv[0], &sa)) return NULL;
  if (!is_undefined(env, argv[1]) && !get_uint(env, argv[1], 65535, "backlog", &backlog)) return NULL;
  if (lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(sa.sun_path);
  int fd = seq_socket();
  if (fd < 0) return throw_errno(env, "socket(SOCK_SEQPACKET)", errno);
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

/* seqpacketConnect(path) -> fd. A Unix connect completes at once (or fails: ENOENT,
 * ECONNREFUSED, EPROTOTYPE for a socket of another type); a full backlog is EAGAIN, thrown. */
static napi_value js_seqpacket_connect(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un sa;
  if (!get_args(env, info, 1, argv, NULL) || !fill_sockaddr(env, argv[0], &sa)) return NULL;
  int fd = seq_socket();
  if (fd < 0) return throw_errno(env, "socket(SOCK_SEQPACKET)", errno);
  for (int i = 0; i < MAX_EINTR; i++) {
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) return make_int(env, fd);
    if (errno != EINTR) break;
  }
  close_keep_errno(fd);
  return throw_errno(env, "connect(SOCK_SEQPACKET)", errno);
}

/* seqpacketSend(fd, head, tail) -> bytes sent (head then tail as ONE message), -1 when the
 * socket buffer is full (EAGAIN). EMSGSIZE and EPIPE are thrown. */
static napi_value js_seqpacket_send(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  uint8_t *h, *t;
  size_t hl, tl;
  if (!get_args(env, info, 3, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_bytes(env, argv[1], &h, &hl) ||
      !get_bytes(env, argv[2], &t, &tl))
    return NULL;
  struct iovec iov[2] = {{.iov_base = h, .iov_len = hl}, {.iov_base = t, .iov_len = tl}};
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = tl > 0 ? 2 : 1};
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return make_int(env, n);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    if (errno != EINTR) return throw_errno(env, "sendmsg(SOCK_SEQPACKET)", errno);
  }
  return throw_errno(env, "sendmsg(SOCK_SEQPACKET)", EINTR);
}

/* seqpacketRecv(fd, buf) -> message length (bytes beyond buf's length are lost: the result is
 * then larger than buf), -1 when nothing is ready, 0 at the end (or an empty message: a Unix
 * seqpacket socket does not tell them apart). */
static napi_value js_seqpacket_recv(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  uint8_t *p;
  size_t len;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_bytes(env, argv[1], &p, &len)) return NULL;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t n = recv(fd, p, len, MSG_DONTWAIT | MSG_TRUNC);
    if (n >= 0) return make_int(env, n);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    if (errno != EINTR) return throw_errno(env, "recv(SOCK_SEQPACKET)", errno);
  }
  return throw_errno(env, "recv(SOCK_SEQPACKET)", EINTR);
}

/* seqpacketShutdown(fd, how): 0 receive, 1 send, 2 both (SHUT_RD / SHUT_WR / SHUT_RDWR). */
static napi_value js_seqpacket_shutdown(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t how;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_uint(env, argv[1], 2, "how", &how)) return NULL;
  if (shutdown(fd, (int)how) < 0 && errno != ENOTCONN) return throw_errno(env, "shutdown", errno);
  return NULL;
}

bool register_seqpacket(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("seqpacketListen", js_seqpacket_listen),
      EXPORT_FN("seqpacketConnect", js_seqpacket_connect),
      EXPORT_FN("seqpacketSend", js_seqpacket_send),
      EXPORT_FN("seqpacketRecv", js_seqpacket_recv),
      EXPORT_FN("seqpacketShutdown", js_seqpacket_shutdown),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
