#!/usr/bin/env bash
# Fetches what the v86 real-driver tests (test/v86-*.test.ts, docs/v86.md) need: Debian's SeaBIOS (bios.bin,
# vgabios-stdvga.bin), an i386 Debian kernel whose virtio drivers are modules
# (linux-image-6.1.0-*-686) and an i386 static busybox, both unpacked with dpkg -x into DIR
# (default: $TMPDIR/virtio-ts-v86). The i386 packages are fetched with `apt-get download`, never
# installed. Idempotent: returns at once when everything is already there. Needs root (CI is)
# for apt-get update and the seabios install.
#
# Layout of DIR afterwards:
#   DIR/kernel/boot/vmlinuz-<version>      DIR/kernel/lib/modules/<version>/
#   DIR/busybox/bin/busybox                DIR/READY (holds <version>)
set -euo pipefail

DIR="${1:-${TMPDIR:-/tmp}/virtio-ts-v86}"

have_all() {
  [ -f /usr/share/seabios/bios.bin ] || return 1
  [ -f /usr/share/seabios/vgabios-stdvga.bin ] || return 1
  [ -f "$DIR/READY" ] || return 1
  local v
  v="$(cat "$DIR/READY")"
  [ -f "$DIR/kernel/boot/vmlinuz-$v" ] || return 1
  [ -f "$DIR/kernel/lib/modules/$v/modules.dep" ] || return 1
  [ -x "$DIR/busybox/bin/busybox" ] || return 1
  return 0
}

if have_all; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-v86-deps: must run as root (apt-get update, seabios, i386 architecture)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-v86-deps: apt-get not found (Debian expected)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
updated=0
update_once() {
  if [ "$updated" -eq 0 ]; then
    # A mirror mid-sync can fail one index; what the other lists hold is still usable, and the
    # package look-up below says clearly when something is really missing.
    apt-get update -q || echo "install-v86-deps: apt-get update reported errors; going on" >&2
    updated=1
  fi
}

if [ ! -f /usr/share/seabios/bios.bin ] || [ ! -f /usr/share/seabios/vgabios-stdvga.bin ]; then
  update_once
  apt-get install -y -q --no-install-recommends seabios
fi

if ! dpkg --print-foreign-architectures | grep -qx i386; then
  dpkg --add-architecture i386
  updated=0
fi
update_once

# The newest 6.1 i386 (686, non-PAE) kernel the archive offers.
pkg="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-686$' | awk '{print $1}' | sort -V | tail -n 1)"
if [ -z "$pkg" ]; then
  echo "install-v86-deps: no linux-image-6.1.0-*-686 package found (is the i386 architecture enabled?)" >&2
  exit 1
fi
version="${pkg#linux-image-}"

work="$(mktemp -d "${TMPDIR:-/tmp}/v86-deps.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
# apt-get download runs as _apt where it can: the folder must be writable by it.
(cd "$work" && apt-get download -q "${pkg}:i386" "busybox-static:i386")

mkdir -p "$DIR"
rm -rf "$DIR/kernel" "$DIR/busybox" "$DIR/READY"
dpkg -x "$work"/linux-image-*_i386.deb "$DIR/kernel"
dpkg -x "$work"/busybox-static_*_i386.deb "$DIR/busybox"
# modules.dep is built by the package's postinst, which dpkg -x does not run.
if [ ! -f "$DIR/kernel/lib/modules/$version/modules.dep" ]; then
  depmod -b "$DIR/kernel" "$version"
fi
echo "$version" >"$DIR/READY"

if ! have_all; then
  echo "install-v86-deps: unpacked but something is still missing in $DIR" >&2
  exit 1
fi
