#!/usr/bin/env bash
# Fetches what the v86 real-driver tests (test/v86-*.test.ts, docs/v86.md) need: Debian's SeaBIOS (bios.bin,
# vgabios-stdvga.bin), an i386 Debian kernel whose virtio drivers are modules
# (linux-image-<abi>-686, the ABI of the installed cloud kernel where it can be had) and an i386
# static busybox, both unpacked with dpkg -x into DIR
# (default: $TMPDIR/virtio-ts-v86). The i386 packages are fetched with `apt-get download`, never
# installed. Idempotent: returns at once when everything is already there. Needs root (CI is)
# for apt-get update and the seabios install.
#
# Layout of DIR afterwards:
#   DIR/kernel/boot/vmlinuz-<version>      DIR/kernel/lib/modules/<version>/
#   DIR/busybox/bin/busybox                DIR/READY (holds <version>)
set -euo pipefail

DIR="${1:-${TMPDIR:-/tmp}/virtio-ts-v86}"

# The ABI (6.1.0-NN) of the installed cloud kernel, or nothing. The guest kit builds out-of-tree
# modules for v86 against that ABI's 686 headers (scripts/install-guest-kit.sh), so the i386
# kernel is taken at the same ABI when it can be had: a module of another ABI does not load
# ("invalid module format").
cloud_abi() {
  find /boot -maxdepth 1 -name 'vmlinuz-*-cloud-amd64' -printf '%f\n' 2>/dev/null | sed 's/^vmlinuz-//; s/-cloud-amd64$//' | sort -V | tail -n 1
}
ABI="$(cloud_abi)"

have_all() {
  [ -f /usr/share/seabios/bios.bin ] || return 1
  [ -f /usr/share/seabios/vgabios-stdvga.bin ] || return 1
  [ -f "$DIR/READY" ] || return 1
  local v
  v="$(cat "$DIR/READY")"
  # A kernel of another ABI than the cloud kernel's (fetched while the right one could not be):
  # try again.
  [ -z "$ABI" ] || [ "$v" = "$ABI-686" ] || return 1
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

work="$(mktemp -d "${TMPDIR:-/tmp}/v86-deps.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

# The i386 (686, non-PAE) kernel of the cloud kernel's ABI: from the package lists, or, when the
# i386 lists could not be refreshed (a mirror mid-sync serving a bookworm-security index whose
# size disagrees with its Release file), its unsigned build from the pool beside the arch-all
# linux-headers-<abi>-common, whose file the amd64 lists name (same source version). Else the
# newest 6.1 686 kernel the lists offer (out-of-tree modules then do not load).
pkg=""
if [ -n "$ABI" ]; then
  if apt-cache show "linux-image-$ABI-686:i386" >/dev/null 2>&1; then
    pkg="linux-image-$ABI-686"
  else
    uri="$(apt-get download --print-uris "linux-headers-$ABI-common" 2>/dev/null | awk '{print $1}' | tr -d "'")"
    if [ -n "$uri" ]; then
      uri="${uri/linux-headers-$ABI-common_/linux-image-$ABI-686-unsigned_}"
      uri="${uri%_all.deb}_i386.deb"
      echo "install-v86-deps: the i386 lists lack linux-image-$ABI-686; fetching $uri" >&2
      /usr/lib/apt/apt-helper download-file "$uri" "$work/$(basename "$uri")" && pkg="linux-image-$ABI-686-unsigned"
    fi
  fi
fi
if [ -z "$pkg" ]; then
  pkg="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-686$' | awk '{print $1}' | sort -V | tail -n 1)"
fi
if [ -z "$pkg" ]; then
  echo "install-v86-deps: no linux-image-6.1.0-*-686 package found (is the i386 architecture enabled?)" >&2
  exit 1
fi
version="${pkg#linux-image-}"
version="${version%-unsigned}"

# apt-get download runs as _apt where it can: the folder must be writable by it.
if compgen -G "$work/${pkg}_*_i386.deb" >/dev/null; then
  (cd "$work" && apt-get download -q "busybox-static:i386")
else
  (cd "$work" && apt-get download -q "${pkg}:i386" "busybox-static:i386")
fi

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
