#!/usr/bin/env bash
# Load-tests gslb's DNS path with dnsperf and prints throughput, latency and the server's
# CPU time per answered query.
#
#   bench/dnsperf.sh                     # 10 s run
#   DURATION=5 MAX_QPS=50000 bench/dnsperf.sh
#
# It builds gslb in release, serves bench/bench.toml (DNS on 127.0.0.1:25353, admin on
# 127.0.0.1:29153) with stand-in TCP listeners on 127.0.1.1:18080 and 127.0.1.2:18080,
# waits for /readyz, and runs dnsperf over a mix of A, AAAA, SOA, NS, CNAME-chain and
# (20%) NXDOMAIN queries. With two or more CPUs the server is pinned to CPU 0 and dnsperf
# to CPU 1, so they do not compete. Every process it starts is stopped on exit.
#
# Needs: dnsperf, dig, taskset, curl, python3 (installs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
MAX_QPS="${MAX_QPS:-200000}"
DNS_PORT=25353
ADMIN="http://127.0.0.1:29153"
STAND_INS=(127.0.1.1 127.0.1.2)
STAND_IN_PORT=18080

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_need dnsperf dnsperf
bench_need dig bind9-dnsutils
bench_need taskset util-linux
bench_need curl curl
bench_need python3 python3

work="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== build"
cargo build --release --quiet

# gslb on CPU 0, dnsperf on CPU 1.
bench_pin_cpus

accepts() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

echo "== stand-in ingresses"
for ip in "${STAND_INS[@]}"; do
  if accepts "$ip" "$STAND_IN_PORT"; then
    echo "bench: $ip:$STAND_IN_PORT is already taken (is gslb demo running?)" >&2
    exit 1
  fi
done
mkdir "$work/www"
for ip in "${STAND_INS[@]}"; do
  python3 -m http.server --bind "$ip" --directory "$work/www" "$STAND_IN_PORT" \
    >"$work/stand-in-$ip.log" 2>&1 &
  pids+=("$!")
done

# gslb's first probe decides at once, so the stand-ins must accept connections first.
deadline=$((SECONDS + 20))
for i in "${!STAND_INS[@]}"; do
  until accepts "${STAND_INS[$i]}" "$STAND_IN_PORT"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "bench: the stand-in on ${STAND_INS[$i]}:$STAND_IN_PORT did not start (port taken?):" >&2
      cat "$work/stand-in-${STAND_INS[$i]}.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done

echo "== gslb serve --config bench/bench.toml"
"${bench_cpu0[@]}" target/release/gslb serve --config bench/bench.toml 2>"$work/gslb.log" &
gslb_pid=$!
pids+=("$gslb_pid")

deadline=$((SECONDS + 20))
until curl -sf "$ADMIN/readyz" >/dev/null; do
  if ! kill -0 "$gslb_pid" 2>/dev/null; then
    echo "bench: gslb exited during start-up; its log:" >&2
    cat "$work/gslb.log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "bench: gslb not ready after 20 s; its log:" >&2
    cat "$work/gslb.log" >&2
    exit 1
  fi
  sleep 0.2
done
answer="$(dig @127.0.0.1 -p "$DNS_PORT" tke-demo.cn A +short +time=2 +tries=1)"
if [ "$answer" != "127.0.1.1" ]; then
  echo "bench: expected tke-demo.cn A 127.0.1.1, got: ${answer:-nothing}" >&2
  exit 1
fi

# 100 lines: 80% names that exist (apex A/AAAA/SOA/NS, a CNAME to the app), 20% NXDOMAIN.
queries="$work/queries.txt"
for i in $(seq 1 16); do
  printf '%s\n' "tke-demo.cn A" "tke-demo.cn AAAA" "tke-demo.cn SOA" "tke-demo.cn NS" \
    "www.tke-demo.cn A"
  printf 'nope%d.tke-demo.cn A\n' "$i"
done >"$queries"
for i in $(seq 17 20); do
  printf 'nope%d.tke-demo.cn A\n' "$i"
done >>"$queries"

cpu_ticks() {
  # utime and stime are fields 14 and 15; the command name (field 2) may hold spaces.
  local stat
  stat="$(cat "/proc/$1/stat")"
  set -- ${stat##*) }
  echo $((${12} + ${13}))
}

echo "== dnsperf: ${DURATION}s, 4 clients, at most ${MAX_QPS} queries/s"
before="$(cpu_ticks "$gslb_pid")"
# In the background so that a signal reaches the traps at once, not after the run.
"${bench_cpu1[@]}" dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$queries" -l "$DURATION" -c 4 \
  -Q "$MAX_QPS" >"$work/dnsperf.out" 2>&1 &
pids+=("$!")
if ! wait "$!"; then
  cat "$work/dnsperf.out" >&2
  echo "bench: dnsperf failed" >&2
  exit 1
fi
after="$(cpu_ticks "$gslb_pid")"
cat "$work/dnsperf.out"

clk_tck="$(getconf CLK_TCK)"
awk -v ticks="$((after - before))" -v hz="$clk_tck" -v cpus="$(nproc)" '
  /Queries completed:/ { completed = $3 }
  /Queries lost:/ { lost = $3 " " $4 }
  /Queries per second:/ { qps = $4 }
  /Average Latency \(s\):/ {
    avg = $4; max = $8; sub(/\)/, "", max)
  }
  END {
    if (completed == 0) { print "bench: dnsperf completed no query"; exit 1 }
    cpu = ticks / hz
    printf "\n== summary (%d CPUs)\n", cpus
    printf "queries/s        %.0f\n", qps
    printf "latency avg      %.3f ms\n", avg * 1000
    printf "latency max      %.3f ms\n", max * 1000
    printf "lost queries     %s\n", lost
    printf "server CPU       %.2f s for %d answered queries = %.1f us/query\n", cpu, completed, cpu * 1e6 / completed
  }' "$work/dnsperf.out"
