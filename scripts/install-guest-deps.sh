#!/usr/bin/env bash
# Installs what the real-guest integration tests need (test/support/guest.ts): QEMU 7.2 with TCG
# (qemu-system-x86_64, qemu-storage-daemon), a Debian cloud kernel whose virtio drivers are
# modules, a static busybox for the initramfs, and cpio/gzip to pack it; also the arm64 cross
# compiler `npm pack` uses for the prebuilt addon (test/package-install.test.ts); Chromium for the
# inspector page test (test/inspector-browser.test.ts).
# Idempotent: returns at once when everything is already there. Needs root on Debian (CI is).
set -euo pipefail

PKGS=(qemu-system-x86 qemu-utils ipxe-qemu linux-image-cloud-amd64 busybox-static cpio gzip kmod dpdk-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross chromium nbdkit openssl)

have_all() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 || return 1
  command -v qemu-storage-daemon >/dev/null 2>&1 || return 1
  command -v dpdk-testpmd >/dev/null 2>&1 || return 1 # vhost-user front-end tests (net_vhost peer)
  command -v cpio >/dev/null 2>&1 || return 1
  command -v nbdkit >/dev/null 2>&1 || return 1 # NBD back-end tests (test/blk-nbd-*.test.ts); qemu-nbd comes with qemu-utils
  command -v openssl >/dev/null 2>&1 || return 1 # certificates for the NBD-over-TLS tests (test/blk-nbd-tls.test.ts)
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || return 1 # npm pack cross-builds the arm64 addon (scripts/prebuild.mjs)
  # ... with the arm64 C library and kernel headers, only a Recommends of the cross compiler.
  [ -e /usr/aarch64-linux-gnu/include/asm/errno.h ] || return 1
  command -v gzip >/dev/null 2>&1 || return 1
  command -v chromium >/dev/null 2>&1 || return 1 # the inspector page in a real browser (test/inspector-browser.test.ts)
  [ -x /bin/busybox ] || return 1
  # busybox (dynamic) from another package would not run in the initramfs: require the static one.
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || return 1
  # virtio-net-pci and other -pci NICs load an option ROM from ipxe-qemu (a Recommends).
  [ -e /usr/lib/ipxe/qemu/efi-virtio.rom ] || return 1
  compgen -G '/boot/vmlinuz-*-cloud-amd64' >/dev/null || return 1
  return 0
}

if have_all; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-guest-deps: must run as root to install: ${PKGS[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-guest-deps: apt-get not found (Debian expected)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# A list that fails to refresh (a mirror mid-sync serving an index whose size disagrees with its
# Release file, seen for bookworm-security i386 once install-v86-deps.sh added that architecture)
# does not stop the install: the packages come from the lists that did refresh, and a package
# that cannot be found still fails the install below with apt's message.
apt-get update -q || echo "install-guest-deps: apt-get update reported errors; going on" >&2
# --no-install-recommends keeps the install small and quick (no GUI, no firmware blobs).
apt-get install -y -q --no-install-recommends "${PKGS[@]}"

if ! have_all; then
  echo "install-guest-deps: packages installed but something is still missing" >&2
  exit 1
fi
