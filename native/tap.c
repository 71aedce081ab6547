/*
 * Linux TAP devices (drivers/net/tun.c, Documentation/networking/tuntap.rst): open /dev/net/tun
 * and attach to (or create) a TAP interface, and move Ethernet frames through the fd. Policy
 * (header size, offloads asked for, batching) lives in src/platform/tap.ts.
 */
#include "napi-args.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* tapOpen(name, vnetHdrSize) -> [fd, interface name]. name "" lets the kernel pick (tap%d).
 * vnetHdrSize 0: IFF_NO_PI only; otherwise IFF_VNET_HDR with TUNSETVNETHDRSZ(vnetHdrSize).
 * The fd is non-blocking and close-on-exec. */
static napi_value js_tap_open(napi_env env, napi_callback_info info) {
  napi_value argv[2], res, v;
  char name[IFNAMSIZ];
  size_t len = 0;
  int64_t hdr = 0;
  if (!get_args(env, info, 2, argv, NULL)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != napi_ok) return throw_arg(env, "name must be a string");
  if (len >= IFNAMSIZ) return throw_arg(env, "interface name longer than 15 bytes");
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len));
  if (!get_uint(env, argv[1], 64, "vnetHdrSize", &hdr)) return NULL;
  if (hdr != 0 && hdr < 10) return throw_arg(env, "vnetHdrSize must be 0 or at least 10");
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open(/dev/net/tun)", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (hdr != 0 ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, len);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "TUNSETIFF", e);
  }
  if (hdr != 0) {
    int sz = (int)hdr;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, "TUNSETVNETHDRSZ", e);
    }
  }
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &res));
  v = make_int(env, fd);
  if (v == NULL) return NULL;
  NAPI_CALL(env, napi_set_element(env, res, 0, v));
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  NAPI_CALL(env, napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_element(env, res, 1, v));
  return res;
}

/* tapSetOffload(fd, flags): TUNSETOFFLOAD with TUN_F_* bits (what the kernel may hand us). */
static napi_value js_tap_set_offload(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t flags;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (!get_uint(env, argv[1], 255, "flags", &flags)) return NULL;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) return throw_errno(env, "TUNSETOFFLOAD", errno);
  return NULL;
}

/* The two pieces of a frame: the whole of `hdr` (its vnet header) and data[0, len). */
static bool get_frame_iov(napi_env env, napi_value *argv, struct iovec iov[2]) {
  uint8_t *h, *d;
  size_t hlen, dlen;
  int64_t len;
  if (!get_bytes(env, argv[1], &h, &hlen) || !get_bytes(env, argv[2], &d, &dlen)) return false;
  if (!get_uint(env, argv[3], (double)dlen, "len", &len)) return false;
  iov[0].iov_base = h;
  iov[0].iov_len = hlen;
  iov[1].iov_base = d;
  iov[1].iov_len = (size_t)len;
  return true;
}

/* tapRead(fd, hdr, data, len) -> bytes of one frame with its header (hdr filled first, then
 * data), or -1 when none is waiting. The kernel truncates a frame that does not fit. */
static napi_value js_tap_read(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  struct iovec iov[2];
  if (!get_args(env, info, 4, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_frame_iov(env, argv, iov)) return NULL;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t r = readv(fd, iov, 2);
    if (r >= 0) return make_int(env, r);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    if (errno != EINTR) return throw_errno(env, "tap read", errno);
  }
  return throw_errno(env, "tap read", EINTR);
}

/* tapWrite(fd, hdr, data, len) -> bytes written (header included), or -1 when the interface
 * queue is full (frame not sent). */
static napi_value js_tap_write(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  struct iovec iov[2];
  if (!get_args(env, info, 4, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_frame_iov(env, argv, iov)) return NULL;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t r = writev(fd, iov, 2);
    if (r >= 0) return make_int(env, r);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    if (errno != EINTR) return throw_errno(env, "tap write", errno);
  }
  return throw_errno(env, "tap write", EINTR);
}

bool register_tap(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("tapOpen", js_tap_open),
      EXPORT_FN("tapSetOffload", js_tap_set_offload),
      EXPORT_FN("tapRead", js_tap_read),
      EXPORT_FN("tapWrite", js_tap_write),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
