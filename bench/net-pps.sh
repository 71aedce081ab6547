#!/usr/bin/env bash
# Packets per second through a vhost-user net back-end, virtio-ts net against DPDK's net_vhost,
# with the same load generator: DPDK testpmd's net_virtio_user front-ends (no guest).
#
#   sink:    testpmd txonly --> back-end (one port; virtio-ts: the switch has nowhere to send it,
#            DPDK: testpmd rxonly on net_vhost)           = the back-end's transmit-queue drain
#   forward: testpmd txonly --> back-end --> testpmd rxonly (virtio-ts: two ports of its switch,
#            DPDK: testpmd io forwarding between two net_vhost ports)
#                                                          = the back-end's forwarding rate
#
# Frame sizes 64 and 1500 bytes (testpmd --txpkts), one queue pair, split rings. Each run warms up
# WARM seconds, then measures from one statistics print of testpmd to the first one at least
# MEASURE seconds later (testpmd prints every 1-2 s; see next_print): packets counted by the receiving side (the
# back-end's own counter in sink mode for DPDK, testpmd rxonly in forward mode; for virtio-ts
# sink the generator's TX count, since nothing counts drops outside the process) and the CPU
# seconds the back-end process used (utime+stime from /proc). Prints one table row per run and
# the virtio-ts/DPDK ratios. testpmd needs no hugepages here (--no-huge).
#
# A third back-end, virtio-ts-threads, is `virtio-ts net --threads`: sink with --threads 1 (the
# port served on a ring thread), forward with --threads 2 (each port on its own thread, frames
# crossing the SharedArrayBuffer ring between the threads' switches). It is allowed both CPUs
# (taskset -c 0,1), the single-threaded virtio-ts one CPU as before.
#
# Usage: bash bench/net-pps.sh [MEASURE_SECONDS]   (after npx tsc; as root)
#        PACKED=1 bash bench/net-pps.sh ...           (packed rings: net_virtio_user packed_vq=1)
#        BACKENDS="virtio-ts dpdk" bash bench/net-pps.sh ...   (default: virtio-ts virtio-ts-threads dpdk)
#        NET_ARGS="--poll-us 0" bash bench/net-pps.sh ...   (extra options of both virtio-ts back-ends)
#        NET_PPS_ROUNDS=8 NET_PPS_SCENARIOS=sink NET_PPS_SIZES=64 bash bench/net-pps.sh 5
#            (8 rounds of the back-ends, the order reversed every other round; the ratio of the
#            medians and each round's ratio: the VM's speed drifts between runs)
set -euo pipefail
MEASURE=${1:-10}
# The generator's (and receiver's) ring layout: virtio-ts and net_vhost take what it negotiates.
VQ=${PACKED:+,packed_vq=1}
WARM=3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLI="$ROOT/dist/src/cli/main.js"
DIR=$(mktemp -d /tmp/vts-netpps.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$DIR" /var/run/dpdk/vts*"$$"   # testpmd's runtime directories (--file-prefix)
}
trap cleanup EXIT
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd is not installed (Debian package dpdk)" >&2; exit 1; }
[ -f "$CLI" ] || { echo "build first: npx tsc -p tsconfig.json" >&2; exit 1; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# testpmd on one CPU: lcore 0 (main, mostly asleep) and lcore 1 (forwarding) both on CPU $2.
# Starts testpmd in the background (its pid in TPID): name cpu mode "vdev ..." [app args...]
testpmd() {
  local name=$1 cpu=$2 mode=$3 vdevs=() v
  for v in $4; do vdevs+=(--vdev "$v"); done
  shift 4
  timeout $((MEASURE + WARM + 60)) dpdk-testpmd --lcores "0@$cpu,1@$cpu" --no-huge -m 512 --no-pci --file-prefix="vts$name$$" \
    "${vdevs[@]}" -- --forward-mode="$mode" --stats-period=1 --total-num-mbufs=8192 "$@" >"$DIR/$name.log" 2>&1 &
  TPID=$!
  PIDS+=("$TPID")
}

wait_sock() { for _ in $(seq 1 100); do [ -S "$1" ] && return 0; sleep 0.1; done; echo "no socket $1" >&2; return 1; }

# The last "<KIND>-packets: N" (RX or TX) of port $3 in testpmd's periodic statistics.
packets() { # log RX|TX port
  awk -v kind="$2" -v port="$3" '
    /NIC statistics for port/ { p = $(NF-1) }
    $1 == kind "-packets:" && p == port { n = $2 }
    END { print n + 0 }' "$1"
}

# Waits (up to 10 s) for testpmd's next statistics block in log $1, so that a counter is read
# when it was just printed: testpmd prints every 1-2 s here (its main lcore shares a CPU with a
# busy forwarding lcore), and a counter read at an arbitrary moment is up to that old, which
# made a 5 s window 3-7 s of counting.
next_print() {
  local n0 n
  n0=$(grep -c "NIC statistics for port" "$1" || true)
  for _ in $(seq 1 200); do
    n=$(grep -c "NIC statistics for port" "$1" || true)
    # the block is complete once its last line is there
    [ "$n" -gt "$n0" ] && tail -n 3 "$1" | grep -qE '^ *#{20,} *$' && return 0
    sleep 0.05
  done
  echo "no statistics from testpmd in $1 for 10 s" >&2
  return 1
}

stop_all() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  rm -f "$DIR"/*.sock
}

# run BACKEND SCENARIO SIZE -> prints "pps cpu_seconds"
run() {
  local backend=$1 scenario=$2 size=$3 be rxlog rxkind rxport
  local a="$DIR/a.sock" b="$DIR/b.sock"
  if [ "$backend" = virtio-ts ]; then
    if [ "$scenario" = sink ]; then
      taskset -c 1 node "$CLI" net --socket-path "$a" --queue-size 1024 ${NET_ARGS:-} >"$DIR/be.log" 2>&1 &
    else
      taskset -c 1 node "$CLI" net --socket-path "$a" --socket-path "$b" --queue-size 1024 -v ${NET_ARGS:-} >"$DIR/be.log" 2>&1 &
    fi
    be=$!
    PIDS+=("$be")
  elif [ "$backend" = virtio-ts-threads ]; then
    if [ "$scenario" = sink ]; then
      taskset -c 0,1 node "$CLI" net --socket-path "$a" --queue-size 1024 --threads 1 ${NET_ARGS:-} >"$DIR/be.log" 2>&1 &
    else
      taskset -c 0,1 node "$CLI" net --socket-path "$a" --socket-path "$b" --queue-size 1024 --threads 2 ${NET_ARGS:-} >"$DIR/be.log" 2>&1 &
    fi
    be=$!
    PIDS+=("$be")
  else
    if [ "$scenario" = sink ]; then
      testpmd be 1 rxonly "net_vhost0,iface=$a,queues=1"
    else
      testpmd be 1 io "net_vhost0,iface=$a,queues=1 net_vhost1,iface=$b,queues=1"
    fi
    be=""
    for _ in $(seq 1 50); do be=$(pgrep -P "$TPID" -f dpdk-testpmd || true); [ -n "$be" ] && break; sleep 0.1; done
    [ -n "$be" ] || { echo "testpmd did not start" >&2; return 1; }
  fi
  wait_sock "$a"
  [ "$scenario" = forward ] && wait_sock "$b"
  if [ "$scenario" = forward ]; then
    testpmd rx 1 rxonly "net_virtio_user1,path=$b,queues=1,queue_size=1024$VQ"
    sleep 2
  fi
  # Addressed to virtio-ts's second port (02:76:74:00:00:02, the default MAC of port 1): its
  # device filters unicast for other addresses once the driver negotiated VIRTIO_NET_F_MAC.
  testpmd tx 0 txonly "net_virtio_user0,path=$a,queues=1,queue_size=1024$VQ" --txpkts="$size" --eth-peer=0,02:76:74:00:00:02
  sleep "$WARM"
  # What counts: the receiving side when it is testpmd, else the generator.
  if [ "$scenario" = forward ]; then rxlog="$DIR/rx.log"; rxkind=RX; rxport=0
  elif [ "$backend" = dpdk ]; then rxlog="$DIR/be.log"; rxkind=RX; rxport=0
  else rxlog="$DIR/tx.log"; rxkind=TX; rxport=0; fi
  local p0 c0 t0 p1 c1 t1
  # The window runs from one printed counter to the first one printed MEASURE seconds later.
  next_print "$rxlog" || true   # (a warning; the counter then read is up to a period old)
  p0=$(packets "$rxlog" "$rxkind" "$rxport"); c0=$(cpu_ticks "$be"); t0=$(date +%s.%N)
  sleep "$MEASURE"
  next_print "$rxlog" || true   # (a warning; the counter then read is up to a period old)
  p1=$(packets "$rxlog" "$rxkind" "$rxport"); c1=$(cpu_ticks "$be"); t1=$(date +%s.%N)
  stop_all
  [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$DIR"/*.log "$KEEP_LOGS/" 2>/dev/null
  awk -v p0="$p0" -v p1="$p1" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v tick="$TICK" \
    'BEGIN { printf "%.0f %.2f\n", (p1 - p0) / (t1 - t0), (c1 - c0) / tick }'
}

[ -n "${ONLY:-}" ] && { run $ONLY; exit 0; }
ROUNDS=${NET_PPS_ROUNDS:-1}
echo "net-pps: $(date -u +%FT%TZ)${NET_ARGS:+, virtio-ts $NET_ARGS}, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, measure ${MEASURE}s, $([ -n "${PACKED:-}" ] && echo packed || echo split) rings, $ROUNDS round(s)"
printf '%-8s %-5s %-5s %-17s %12s %10s\n' scenario bytes round back-end pps cpu-s
BACKENDS=${BACKENDS:-virtio-ts virtio-ts-threads dpdk}
# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for scenario in ${NET_PPS_SCENARIOS:-sink forward}; do
  for size in ${NET_PPS_SIZES:-64 1500}; do
    : >"$DIR/rows"
    for round in $(seq 1 "$ROUNDS"); do
      # The VM's speed drifts for minutes at a time: the order is reversed every other round so
      # that no back-end always runs first.
      order=$BACKENDS
      [ $((round % 2)) -eq 0 ] && order=$(echo "$BACKENDS" | tr ' ' '\n' | tac | tr '\n' ' ')
      for backend in $order; do
        run "$backend" "$scenario" "$size" >"$DIR/result"
        read -r pps cpu <"$DIR/result"
        echo "$round $backend $pps $cpu" >>"$DIR/rows"
        printf '%-8s %-5s %-5s %-17s %12s %10s\n' "$scenario" "$size" "$round" "$backend" "$pps" "$cpu"
      done
    done
    # Each back-end against DPDK: the ratio in each round (both measured minutes apart at most)
    # and, over several rounds, the ratio of the medians.
    for backend in $BACKENDS; do
      [ "$backend" = dpdk ] && continue
      ratios=$(awk -v b="$backend" -v k="$ROUNDS" '$2 == b { p[$1] = $3 } $2 == "dpdk" { d[$1] = $3 }
        END { for (r = 1; r <= k; r++) if (d[r] > 0) printf "%s%.3f", (r > 1 ? " " : ""), p[r] / d[r] }' "$DIR/rows")
      mine=$(awk -v b="$backend" '$2 == b { print $3 }' "$DIR/rows" | median)
      dpdk=$(awk '$2 == "dpdk" { print $3 }' "$DIR/rows" | median)
      awk -v a="$mine" -v b="$dpdk" -v n="$backend" -v s="$scenario" -v z="$size" -v r="$ratios" -v k="$ROUNDS" \
        'BEGIN { printf "%-8s %-5s ratio %s/dpdk %.3f%s\n", s, z, n, (b > 0 ? a / b : 0), (k > 1 ? " (medians; per round: " r ")" : "") }'
    done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
