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

/* tapRead(fd, buf, offset, len) -> bytes of one frame (with its vnet header), or -1 when none
 * is waiting. A frame longer than len is truncated by the kernel (the caller sizes len). */
static napi_value js_tap_read(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  uint8_t *p;
  size_t len;
  if (!get_args(env, info, 4, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (!get_range(env, argv[1], argv[2], argv[3], &p, &len)) return NULL;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t r = read(fd, p, len);
    if (r >= 0) return make_int(env, r);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    if (errno != EINTR) return throw_errno(env, "tap read", errno);
  }
  return throw_errno(env, "tap read", EINTR);
}

/* tapWrite(fd, buf, offset, len) -> len, or -1 when the device queue is full (frame not sent). */
static napi_value js_tap_write(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  uint8_t *p;
  size_t len;
  if (!get_args(env, info, 4, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (!get_range(env, argv[1], argv[2], argv[3], &p, &len)) return NULL;
  for (int i = 0; i < MAX_EINTR; i++) {
    ssize_t r = write(fd, p, len);
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
