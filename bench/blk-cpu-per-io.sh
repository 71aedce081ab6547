#!/usr/bin/env bash
# Back-end CPU time per I/O of `virtio-ts blk` under the C vhost-user load generator, for two
# builds of virtio-ts side by side (A B A B ...): user+system CPU of the back-end process over the
# run (from /proc/<pid>/stat) divided by the I/Os it served. Less sensitive to a shared machine's
# load than IOPS, since a descheduled back-end uses no CPU while it waits.
#
#   bench/blk-cpu-per-io.sh TREE_A TREE_B [ROUNDS]
#   env: JOB (loadgen job spec, default r4k32call:rand:4096:32:call), DUR (s, default 3),
#        POLL (--poll-us, default 0), LOADGEN (default build/bench/vhost-blk-loadgen of this tree)
# Each tree must be built (dist/). Prints one line per run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
a="${1:?TREE_A}"; b="${2:?TREE_B}"; rounds="${3:-4}"
lg="${LOADGEN:-$here/build/bench/vhost-blk-loadgen}"
[ -x "$lg" ] || gcc -O2 -Wall -Wextra -Werror -o "$lg" "$here/bench/c/vhost-blk-loadgen.c"
tck=$(getconf CLK_TCK)
tmp=$(mktemp -d /tmp/vts-cpuio-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 1 "$rounds"); do
  for tree in "$a" "$b"; do
    sock="$tmp/b.sock"; rm -f "$sock"
    node "$tree/dist/src/cli/main.js" blk --socket-path "$sock" --memory 256M -q --poll-us "${POLL:-0}" &
    pid=$!
    for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    out=$("$lg" --socket "$sock" --duration "${DUR:-3}" --job "${JOB:-r4k32call:rand:4096:32:call}" 2>&1 | grep RESULT || true)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    ios=$(sed -E 's/.* ios=([0-9]+).*/\1/' <<<"$out"); iops=$(sed -E 's/.* iops=([0-9]+).*/\1/' <<<"$out")
    cpu_us=$(( ((u1 - u0) + (s1 - s0)) * 1000000 / tck ))
    echo "$tree round $i iops=$iops ios=$ios backend_cpu_us_per_io=$(awk -v c="$cpu_us" -v n="$ios" 'BEGIN{printf "%.2f", c/n}') load=$(cut -d' ' -f1 /proc/loadavg)"
  done
done
