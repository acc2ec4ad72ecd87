#!/usr/bin/env bash
# The floor under gslb's CPU per TCP probe (bench/probe_scale.sh): what a bare connect,
# closed with a reset, costs on this machine's loopback, and what gdnsd's `tcp_connect`
# monitors cost per probe, over the same N stand-in listeners, in one run.
#
#   bench/probe_floor.sh                       # N=10000, 20 s per measurement
#   N=2000 WINDOW=5 bench/probe_floor.sh       # quick check
#
# Knobs: N (targets, default 10000), WINDOW (seconds per measurement, default 20),
# GDNSD (0 to skip gdnsd; default 1), KEEP_WORK=1 keeps the scratch directory.
#
# One stand-in process (bench/probe_scale.py standin, an epoll loop that accepts and
# closes) listens on the N addresses of bench/probe_scale.sh, pinned to CPU 1. Then, each
# pinned to CPU 0, one after the other:
#   1. bench/connect_floor.c (built here with cc -O2): a single-threaded epoll loop that
#      connects to each target once a second (N connects/s), and then at N/2 a second,
#      each a non-blocking connect closed with SO_LINGER 0 (what gslb's tcp probe does,
#      without anything around it); its user and system CPU per connect (getrusage).
#   2. gdnsd (installed from Debian by bench/compare.sh) with N `tcp_connect` monitors
#      (multifo resources of two addresses, as probe_scale's apps) at its shortest interval,
#      2 s (its timeout must be at least 1 s and below the interval), so N/2 probes/s: its
#      utime and stime over WINDOW s after its monitors have started (/proc/PID/stat),
#      divided by the stand-in's count of connections accepted over the window.
# Kernel work on loopback (both ends of the handshake run in the connecting process's
# system calls and softirqs) lands on CPU 0 in every case, as it does for gslb.
#
# Needs: cc, python3, taskset; gdnsd for step 2 (`apt-get install -y gdnsd`).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-10000}"
WINDOW="${WINDOW:-20}"
GDNSD="${GDNSD:-1}"
PORT=18080
HELPER=bench/probe_scale.py

work="$(mktemp -d /tmp/gslb-probe-floor.XXXXXX)"
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_init

bench_need cc gcc
bench_need python3 python3
bench_need taskset util-linux
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 2 ] && [ "$N" -le 64000 ] || bench_die "N is 2 to 64000"
[[ "$WINDOW" =~ ^[0-9]+$ ]] && [ "$WINDOW" -ge 2 ] || bench_die "WINDOW is at least 2 s"
if [ "$GDNSD" = 1 ] && ! command -v gdnsd >/dev/null; then
  bench_die "gdnsd is missing (apt-get install -y gdnsd, or GDNSD=0)"
fi
# The stand-in holds N listeners.
bench_raise_fd_limit "$N"
bench_pin_cpus

cc -O2 -Wall -o "$work/connect_floor" bench/connect_floor.c

standin_stats() { cat "$work/standin.stats" 2>/dev/null || echo "0 0 0"; }
bench_log "stand-in: $N tcp listeners on 127.2.0.0/16 port $PORT"
bench_spawn "$work/standin.log" "${bench_cpu1[@]}" python3 "$HELPER" standin "$N" tcp "$PORT" \
  $((WINDOW * 4 + 300)) "$work/standin.ready" "$work/standin.stats"
standin_pid=$bench_last_pid
deadline=$((SECONDS + 60 + N / 500))
until [ -s "$work/standin.ready" ]; do
  kill -0 "$standin_pid" 2>/dev/null || { cat "$work/standin.log" >&2; bench_die "the stand-in exited"; }
  [ "$SECONDS" -lt "$deadline" ] || bench_die "the stand-in did not start in time"
  sleep 0.1
done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for rate in "$N" $((N / 2)); do
  bench_log "connect_floor: $N targets, $rate connects/s, ${WINDOW}s"
  "${bench_cpu0[@]}" "$work/connect_floor" "$N" "$WINDOW" "$PORT" "$rate"
done

if [ "$GDNSD" = 1 ]; then
  dir="$work/gdnsd"
  mkdir -p "$dir/zones" "$dir/run" "$dir/state"
  cat >"$dir/zones/scale.test" <<EOF
\$ORIGIN scale.test.
\$TTL 30
@       IN SOA ns1.scale.test. hostmaster.scale.test. 1 3600 600 86400 30
@       IN NS ns1.scale.test.
ns1     IN A 127.0.0.1
EOF
  {
    cat <<EOF
options => {
  listen => [ 127.0.0.1:25381 ]
  run_dir => $dir/run
  state_dir => $dir/state
}
service_types => {
  tcp => {
    plugin => tcp_connect
    port => $PORT
    interval => 2
    timeout => 1
    up_thresh => 2
    down_thresh => 3
    ok_thresh => 2
  }
}
plugins => {
  multifo => {
EOF
    # Target I's address as bench/probe_scale.py's `addr`: 127.2.<I/250>.<I%250+1>.
    awk -v n="$N" 'function addr(i) { return sprintf("127.2.%d.%d", int(i / 250), i % 250 + 1) }
      BEGIN {
        for (i = 0; i < n; i += 2) {
          list = addr(i) (i + 1 < n ? ", " addr(i + 1) : "")
          printf "    a%d => { service_types => tcp, addrs_v4 => [ %s ] }\n", i / 2, list
        }
      }'
    echo "  }"
    echo "}"
  } >"$dir/config"
  # A zone record per resource would only add start-up time; the monitors run without.
  bench_log "gdnsd: $N tcp_connect monitors every 2 s"
  bench_spawn "$work/gdnsd.log" "${bench_cpu0[@]}" gdnsd -c "$dir" -f start
  gdnsd_pid=$bench_last_pid
  sleep 5
  kill -0 "$gdnsd_pid" 2>/dev/null || { tail -20 "$work/gdnsd.log" >&2; bench_die "gdnsd exited"; }
  cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat")
    set -- ${stat##*) }
    echo "${12} ${13}"
  }
  read -r u0 s0 < <(cpu_ticks "$gdnsd_pid")
  read -r a0 _ < <(standin_stats)
  t0=$(date +%s.%N)
  sleep "$WINDOW"
  read -r u1 s1 < <(cpu_ticks "$gdnsd_pid")
  read -r a1 _ < <(standin_stats)
  t1=$(date +%s.%N)
  hz=$(getconf CLK_TCK)
  awk -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v a="$((a1 - a0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v n="$N" 'BEGIN {
    w = t1 - t0
    printf "gdnsd: n=%d seconds=%.3f accepted=%d (%.0f/s, schedule %.0f/s) user_us_per_probe=%.2f sys_us_per_probe=%.2f\n",
      n, w, a, a / w, n / 2, u / hz * 1e6 / (a > 0 ? a : 1), s / hz * 1e6 / (a > 0 ? a : 1)
  }'
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
