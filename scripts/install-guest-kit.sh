#!/usr/bin/env bash
# The guest kit beyond the cloud kernel (test/support/guest-kernels.ts, guest-oot-modules.ts,
# guest-userspace.ts, s390x-guest.ts): everything comes from Debian packages, fetched with
# `apt-get download` and unpacked with `dpkg -x` (never installed), except the host tools, which
# are installed. Idempotent: each part returns at once when its READY file is there.
#
#   install-guest-kit.sh [PART...]      PART: tools generic headers-amd64 headers-686 source s390x
#                                       s390x-gcc
#                                       (default: all of them)
#
# Cache folder: $VIRTIO_TS_GUESTKIT_DIR, else ${TMPDIR:-/tmp}/virtio-ts-guestkit. Each part lives
# in a folder named after its package version, with a READY file holding that version:
#   generic-<abi>-amd64/    boot/vmlinuz-<abi>-amd64, lib/modules/<abi>-amd64/ (+ modules.dep)
#   headers-<abi>-<flavour>/ usr/src/linux-headers-<abi>-<flavour> (its Makefile points at the
#                           unpacked -common tree), usr/lib/linux-kbuild-6.1 (host tools, amd64)
#   source-<debian version>/ the few driver sources of linux-source-6.1 the kit builds out of tree
#   s390x-<abi>/            boot/vmlinuz-<abi>-s390x, lib/modules/..., bin/busybox (s390x)
#   s390x-gcc-<version>/    usr/bin/s390x-linux-gnu-gcc-12 with binutils and the s390x libc, unpacked
#                           (installing gcc-s390x-linux-gnu would remove gcc-multilib), for static
#                           s390x test programs (run it with LD_LIBRARY_PATH=usr/lib/x86_64-linux-gnu)
# and <part>.version files naming the folder in use. Needs root (CI is) for apt-get.
set -euo pipefail

DIR="${VIRTIO_TS_GUESTKIT_DIR:-${TMPDIR:-/tmp}/virtio-ts-guestkit}"
PARTS=("$@")
[ "${#PARTS[@]}" -gt 0 ] || PARTS=(tools generic headers-amd64 headers-686 source s390x s390x-gcc)

log() { echo "install-guest-kit: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# Host tools: QEMU for s390x, socat (vsock), iperf3, gcc -m32 for i386 test programs, make.
TOOL_PKGS=(qemu-system-misc socat iperf3 gcc libc6-dev gcc-multilib libc6-dev-i386 make xz-utils)
tools_ready() {
  command -v qemu-system-s390x >/dev/null 2>&1 || return 1
  command -v socat >/dev/null 2>&1 || return 1
  command -v iperf3 >/dev/null 2>&1 || return 1
  command -v make >/dev/null 2>&1 || return 1
  [ -f /usr/lib32/libc.a ] || [ -f /usr/lib/i386-linux-gnu/libc.a ] || return 1
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || return 1
  return 0
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root to fetch or install: $*"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found (Debian expected)"
}

export DEBIAN_FRONTEND=noninteractive
# Other apt users may hold the lock for a while (parallel installs on a shared machine).
APT_LOCK=(-o DPkg::Lock::Timeout=600)
updated=0
update_once() {
  if [ "$updated" -eq 0 ]; then
    apt-get "${APT_LOCK[@]}" update -q || log "apt-get update reported errors; going on"
    updated=1
  fi
}

# The kernel ABI (6.1.0-NN) of the installed cloud kernel: the generic kernel and the headers are
# taken at the same ABI, so modules built here and the kernels agree.
cloud_abi() {
  local v
  v="$(find /boot -maxdepth 1 -name 'vmlinuz-*-cloud-amd64' -printf '%f\n' | sed 's/^vmlinuz-//; s/-cloud-amd64$//' | sort -V | tail -n 1)"
  [ -n "$v" ] || die "no /boot/vmlinuz-*-cloud-amd64 (run scripts/install-guest-deps.sh first)"
  echo "$v"
}

# A scratch folder that apt's _apt user can write to; removed on exit.
WORK=""
scratch() {
  if [ -z "$WORK" ]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/guest-kit.XXXXXX")"
    chmod 777 "$WORK"
    trap 'rm -rf "$WORK"' EXIT
  fi
}

# Private package lists for a foreign architecture: the system's apt state is left alone.
foreign_apt_opts() {
  local arch="$1" d="$DIR/apt-$1"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  chmod -R 777 "$d"
  echo "-o APT::Architecture=$arch -o APT::Architectures::=$arch -o Dir::State::Lists=$d/lists -o Dir::Cache=$d/cache"
}
foreign_update() {
  local arch="$1" stamp="$DIR/apt-$1/updated"
  # shellcheck disable=SC2046
  if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
    # A failed update (a mirror mid-sync) leaves no stamp, so the next run updates again instead
    # of trusting half-fetched lists for a day.
    if apt-get -q $(foreign_apt_opts "$arch") update; then
      touch "$stamp"
    else
      log "apt-get update ($arch) reported errors; going on"
    fi
  fi
}

# download DEST PKG... (system lists) ; download_foreign ARCH DEST PKG...
download() {
  local dest="$1"
  shift
  (cd "$dest" && apt-get download -q "$@")
}
download_foreign() {
  local arch="$1" dest="$2"
  shift 2
  # shellcheck disable=SC2046
  (cd "$dest" && apt-get download -q $(foreign_apt_opts "$arch") "$@")
}

ready() { [ -f "$DIR/$1.version" ] && [ -f "$DIR/$(cat "$DIR/$1.version")/READY" ]; }
publish() { echo "$2" >"$DIR/$2/READY" && echo "$2" >"$DIR/$1.version"; }

part_tools() {
  tools_ready && return 0
  need_root "${TOOL_PKGS[*]}"
  update_once
  apt-get "${APT_LOCK[@]}" install -y -q --no-install-recommends "${TOOL_PKGS[@]}"
  tools_ready || die "tools installed but something is still missing"
}

part_generic() {
  local abi name
  abi="$(cloud_abi)"
  name="generic-$abi-amd64"
  [ -f "$DIR/$name/READY" ] && echo "$name" >"$DIR/generic.version" && return 0
  need_root "linux-image-$abi-amd64"
  scratch
  download "$WORK" "linux-image-$abi-amd64"
  rm -rf "${DIR:?}/$name"
  dpkg -x "$WORK"/linux-image-"$abi"-amd64_*.deb "$DIR/$name"
  rm -f "$WORK"/*.deb
  # The package's postinst builds modules.dep; dpkg -x does not run it.
  depmod -b "$DIR/$name" "$abi-amd64"
  publish generic "$name"
}

# When the foreign package lists could not be fetched (a mirror mid-sync serves an index whose size
# disagrees with its Release file, seen for bookworm-security i386), fetch the flavour's headers from
# the pool beside linux-headers-<abi>-common: that package is arch all, so the system's lists name
# its file, and the flavour's file differs only in name and architecture (same source version).
download_headers_from_pool() {
  local abi="$1" flavour="$2" arch="$3" uri
  log "the $arch lists lack linux-headers-$abi-$flavour; fetching it from the pool"
  rm -f "$WORK"/*.deb
  download "$WORK" "linux-headers-$abi-common"
  uri="$(apt-get download --print-uris "linux-headers-$abi-common" | awk '{print $1}' | tr -d "'")"
  uri="${uri/linux-headers-$abi-common_/linux-headers-$abi-${flavour}_}"
  uri="${uri%_all.deb}_$arch.deb"
  /usr/lib/apt/apt-helper download-file "$uri" "$WORK/$(basename "$uri")" || die "cannot fetch $uri"
}

# headers FLAVOUR ARCH: linux-headers-<abi>-<flavour> with its -common tree and the (host) kbuild tools.
part_headers() {
  local flavour="$1" arch="$2" abi name src
  abi="$(cloud_abi)"
  name="headers-$abi-$flavour"
  [ -f "$DIR/$name/READY" ] && echo "$name" >"$DIR/headers-$flavour.version" && return 0
  need_root "linux-headers-$abi-$flavour"
  scratch
  if [ "$arch" = amd64 ]; then
    download "$WORK" "linux-headers-$abi-$flavour" "linux-headers-$abi-common" linux-kbuild-6.1
  else
    foreign_update "$arch"
    download_foreign "$arch" "$WORK" "linux-headers-$abi-$flavour" "linux-headers-$abi-common" ||
      download_headers_from_pool "$abi" "$flavour" "$arch"
    download "$WORK" linux-kbuild-6.1 # host tools (fixdep, modpost) run here, so amd64
  fi
  rm -rf "${DIR:?}/$name"
  for deb in "$WORK"/linux-headers-*.deb "$WORK"/linux-kbuild-6.1_*.deb; do dpkg -x "$deb" "$DIR/$name"; done
  rm -f "$WORK"/*.deb
  src="$DIR/$name/usr/src/linux-headers-$abi-$flavour"
  [ -f "$src/Makefile" ] || die "no Makefile in $src"
  # The flavour's Makefile includes the -common tree by absolute path (/usr/src/...): point it at
  # the unpacked copy. The scripts/ and tools/ symlinks into /usr/lib/linux-kbuild-6.1 are
  # absolute too: make them relative to the unpacked tree.
  sed -i "s|/usr/src/linux-headers-$abi-common|$DIR/$name/usr/src/linux-headers-$abi-common|g" "$src/Makefile"
  grep -q "$DIR/$name/usr/src/linux-headers-$abi-common" "$src/Makefile" || die "unexpected Makefile in $src"
  find "$DIR/$name/usr/src" -type l -lname '/usr/lib/linux-kbuild-6.1*' | while read -r l; do
    ln -sfn "$DIR/$name$(readlink "$l")" "$l"
  done
  publish "headers-$flavour" "$name"
}

# The driver sources Debian's 6.1 kernels leave unbuilt (CONFIG_*=n), from linux-source-6.1 at the
# headers' Debian version. Only these paths are kept (the tarball unpacks to ~1.4 GB).
SOURCE_PATHS=(drivers/i2c/busses/i2c-virtio.c drivers/gpio/gpio-virtio.c sound/virtio)
part_source() {
  local ver name
  ver="$(apt-cache policy "linux-headers-$(cloud_abi)-common" | awk '/Candidate:/ {print $2}')"
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no linux-headers-$(cloud_abi)-common in the package lists"
  name="source-$ver"
  [ -f "$DIR/$name/READY" ] && echo "$name" >"$DIR/source.version" && return 0
  need_root "linux-source-6.1=$ver"
  scratch
  download "$WORK" "linux-source-6.1=$ver"
  rm -rf "${DIR:?}/$name"
  mkdir -p "$DIR/$name"
  dpkg -x "$WORK"/linux-source-6.1_*.deb "$WORK/src"
  rm -f "$WORK"/*.deb
  tar -xJf "$WORK/src/usr/src/linux-source-6.1.tar.xz" -C "$DIR/$name" --strip-components=1 \
    "${SOURCE_PATHS[@]/#/linux-source-6.1/}"
  rm -rf "$WORK/src"
  publish source "$name"
}

part_s390x() {
  local pkg abi name
  need_root "linux-image-*-s390x:s390x busybox-static:s390x"
  foreign_update s390x
  # shellcheck disable=SC2046
  pkg="$(apt-cache $(foreign_apt_opts s390x) search --names-only '^linux-image-6\.1\.0-[0-9]+-s390x$' | awk '{print $1}' | sort -V | tail -n 1)"
  [ -n "$pkg" ] || die "no linux-image-6.1.0-*-s390x in the s390x package lists"
  abi="${pkg#linux-image-}"
  abi="${abi%-s390x}"
  name="s390x-$abi"
  [ -f "$DIR/$name/READY" ] && echo "$name" >"$DIR/s390x.version" && return 0
  scratch
  download_foreign s390x "$WORK" "$pkg" busybox-static
  rm -rf "${DIR:?}/$name"
  for deb in "$WORK"/*.deb; do dpkg -x "$deb" "$DIR/$name"; done
  rm -f "$WORK"/*.deb
  [ -f "$DIR/$name/lib/modules/$abi-s390x/modules.dep" ] || depmod -b "$DIR/$name" "$abi-s390x"
  [ -f "$DIR/$name/boot/vmlinuz-$abi-s390x" ] || die "no s390x kernel image in $DIR/$name/boot"
  [ -x "$DIR/$name/bin/busybox" ] || die "no s390x busybox in $DIR/$name"
  publish s390x "$name"
}

# The s390x cross compiler as Debian packages unpacked, never installed: gcc-s390x-linux-gnu
# conflicts with gcc-multilib (the i386 test programs need it). gcc finds its cc1, as, ld and the
# s390x libc relative to its own folder.
S390X_GCC_PKGS=(binutils-s390x-linux-gnu gcc-12-s390x-linux-gnu gcc-12-s390x-linux-gnu-base cpp-12-s390x-linux-gnu
  libgcc-12-dev-s390x-cross libc6-dev-s390x-cross libc6-s390x-cross linux-libc-dev-s390x-cross)
part_s390x_gcc() {
  local version name
  need_root "${S390X_GCC_PKGS[*]}"
  update_once
  version="$(apt-cache policy gcc-12-s390x-linux-gnu | awk '/Candidate:/ {print $2}')"
  [ -n "$version" ] && [ "$version" != "(none)" ] || die "no gcc-12-s390x-linux-gnu in the package lists"
  name="s390x-gcc-${version//[^A-Za-z0-9.+-]/_}"
  [ -f "$DIR/$name/READY" ] && echo "$name" >"$DIR/s390x-gcc.version" && return 0
  scratch
  download "$WORK" "${S390X_GCC_PKGS[@]}"
  rm -rf "${DIR:?}/$name"
  for deb in "$WORK"/*.deb; do dpkg -x "$deb" "$DIR/$name"; done
  rm -f "$WORK"/*.deb
  [ -x "$DIR/$name/usr/bin/s390x-linux-gnu-gcc-12" ] || die "no s390x-linux-gnu-gcc-12 in $DIR/$name"
  [ -f "$DIR/$name/usr/s390x-linux-gnu/lib/libc.a" ] || die "no s390x libc.a in $DIR/$name"
  publish s390x-gcc "$name"
}

mkdir -p "$DIR"
for part in "${PARTS[@]}"; do
  case "$part" in
  tools) part_tools ;;
  # generic and headers follow the cloud kernel's ABI, read from /boot each time.
  generic) part_generic ;;
  headers-amd64) part_headers amd64 amd64 ;;
  headers-686) part_headers 686 i386 ;;
  source) part_source ;;
  s390x) ready s390x || part_s390x ;;
  s390x-gcc) ready s390x-gcc || part_s390x_gcc ;;
  *) die "unknown part $part (tools generic headers-amd64 headers-686 source s390x s390x-gcc)" ;;
  esac
done
