#!/usr/bin/env bash
# Where gslb's time goes under dnsperf: instruction counts per function from
# valgrind --tool=callgrind (repeatable whatever else the machine does), over a fixed
# number of queries, with start-up excluded (instrumentation is switched on once gslb is
# ready and the load starts).
#
#   bench/profile.sh                  # 20,000 queries (the query mix of bench/dnsperf.sh)
#   RUNS=50 TOP=40 bench/profile.sh   # 5,000 queries, 40 functions
#   TOOL=perf DURATION=5 bench/profile.sh
#
# TOOL=perf samples instead with `perf record -e cpu-clock` (a software timer, so it works
# where `perf stat -e instructions true` says "not supported") while gslb, pinned to CPU 0,
# serves dnsperf (pinned to CPU 1, unthrottled) for DURATION seconds: real time per
# function, kernel included, but noisier than instruction counts.
#
# gslb serves bench/bench.toml's zone and app (DNS on 127.0.0.1:25471, admin on
# 127.0.0.1:29471, http probes of stand-ins on 127.0.1.1:18182 and 127.0.1.2:18182).
# Prints instructions per answered query and the top functions, exclusive (self) and
# inclusive; keeps callgrind.out in target/bench-profile/ for callgrind_annotate or
# kcachegrind. With `perf stat -e instructions true` working, `perf record -g` on the
# same setup gives cycles instead; on machines where it prints "not supported" this is the
# way. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOL="${TOOL:-callgrind}"
DURATION="${DURATION:-5}"
RUNS="${RUNS:-200}"   # passes over the 100-line query file
TOP="${TOP:-30}"
PORT=25471
ADMIN=29471
HTTP_PORT=18182
VIP1=127.0.1.1
VIP2=127.0.1.2
out_dir="$PWD/target/bench-profile"

work="$(mktemp -d /tmp/gslb-profile.XXXXXX)"
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_init

case "$TOOL" in
  callgrind) command -v valgrind >/dev/null || bench_die "valgrind is missing: apt-get install -y valgrind" ;;
  perf) command -v perf >/dev/null || bench_die "perf is missing: apt-get install -y linux-perf" ;;
  *) bench_die "TOOL is callgrind or perf" ;;
esac
command -v dnsperf >/dev/null || bench_die "dnsperf is missing: apt-get install -y dnsperf"
bench_build_gslb
bench_port_free "$PORT"
bench_port_free "$ADMIN"
mkdir -p "$out_dir" "$work/www"

for ip in $VIP1 $VIP2; do
  bench_accepts "$ip" "$HTTP_PORT" && bench_die "$ip:$HTTP_PORT is already taken"
  bench_spawn "$work/stand-in-$ip.log" python3 -m http.server --bind "$ip" --directory "$work/www" "$HTTP_PORT"
done
deadline=$((SECONDS + 20))
for ip in $VIP1 $VIP2; do
  until bench_accepts "$ip" "$HTTP_PORT"; do
    [ "$SECONDS" -lt "$deadline" ] || bench_die "the stand-in on $ip:$HTTP_PORT did not start"
    sleep 0.1
  done
done

bench_gslb_config "$work/gslb.toml" "$PORT" "$ADMIN" "$VIP1" "$VIP2" "$HTTP_PORT"

write_queries() {
  for i in $(seq 1 16); do
    printf '%s\n' "tke-demo.cn A" "tke-demo.cn AAAA" "tke-demo.cn SOA" "tke-demo.cn NS" \
      "www.tke-demo.cn A"
    printf 'nope%d.tke-demo.cn A\n' "$i"
  done
  for i in $(seq 17 20); do printf 'nope%d.tke-demo.cn A\n' "$i"; done
}

if [ "$TOOL" = perf ]; then
  write_queries >"$work/queries.txt"
  bench_spawn "$work/gslb.log" taskset -c 0 target/release/gslb serve --config "$work/gslb.toml"
  gslb_pid=$bench_last_pid
  deadline=$((SECONDS + 30))
  until curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null; do
    kill -0 "$gslb_pid" 2>/dev/null || { tail -20 "$work/gslb.log" >&2; bench_die "gslb exited"; }
    [ "$SECONDS" -lt "$deadline" ] || bench_die "gslb not ready in 30 s"
    sleep 0.2
  done
  bench_log "perf record -e cpu-clock on gslb (CPU 0) under dnsperf (CPU 1) for ${DURATION}s"
  bench_spawn "$work/perf.log" timeout $((DURATION + 30)) perf record -e cpu-clock -F 2000 -g \
    -o "$out_dir/perf.data" -p "$gslb_pid" -- sleep "$DURATION"
  perf_pid=$bench_last_pid
  bench_spawn "$work/dnsperf.out" timeout $((DURATION + 30)) taskset -c 1 dnsperf -s 127.0.0.1 \
    -p "$PORT" -d "$work/queries.txt" -l "$DURATION" -c 4 -Q 1000000
  wait "$bench_last_pid" || { cat "$work/dnsperf.out" >&2; bench_die "dnsperf failed"; }
  wait "$perf_pid" || { cat "$work/perf.log" >&2; bench_die "perf record failed"; }
  set +o pipefail
  grep -E 'Queries completed|Queries per second' "$work/dnsperf.out"
  echo
  echo "== top $TOP symbols by samples (self), kernel included"
  perf report -i "$out_dir/perf.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -"$TOP"
  echo
  echo "== by where: [k] kernel, [.] user"
  perf report -i "$out_dir/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -10
  echo
  echo "== kernel time by the system call or path it serves (kernel call chains; user stacks"
  echo "   need frame pointers, which the release build lacks)"
  perf report -i "$out_dir/perf.data" --stdio --no-children --sort symbol -g caller,0.5,callee,function,percent \
    --percent-limit 5 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -60
  echo
  echo "kept: $out_dir/perf.data (perf report -i $out_dir/perf.data)"
  exit 0
fi
rm -f "$out_dir"/callgrind.out*
bench_log "gslb under callgrind (instrumentation off until the load)"
(cd "$out_dir" && exec valgrind --tool=callgrind --instr-atstart=no --separate-threads=no \
  --dump-instr=no --callgrind-out-file="$out_dir/callgrind.out" \
  "$OLDPWD/target/release/gslb" serve --config "$work/gslb.toml") >"$work/gslb.log" 2>&1 &
gslb_pid=$!
bench_pids+=("$gslb_pid")

deadline=$((SECONDS + 120))
until curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null; do
  kill -0 "$gslb_pid" 2>/dev/null || { tail -20 "$work/gslb.log" >&2; bench_die "gslb exited"; }
  [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$work/gslb.log" >&2; bench_die "gslb not ready in 120 s"; }
  sleep 0.5
done
[ "$(bench_answer "$PORT")" = "$VIP1" ] || bench_die "unexpected answer: $(bench_answer "$PORT")"

queries="$work/queries.txt"
write_queries >"$queries"

callgrind_control -i on "$gslb_pid" >/dev/null
bench_log "dnsperf: $RUNS passes over 100 queries (at most 300 s)"
bench_spawn "$work/dnsperf.out" timeout 330 dnsperf -s 127.0.0.1 -p "$PORT" -d "$queries" \
  -n "$RUNS" -l 300 -c 4 -q 20 -t 10
wait "$bench_last_pid" || { cat "$work/dnsperf.out" >&2; bench_die "dnsperf failed"; }
callgrind_control -i off "$gslb_pid" >/dev/null
callgrind_control -d "$gslb_pid" >/dev/null
bench_callgrind_stop "$gslb_pid"

# The report below pipes into head: a closed pipe upstream is not a failure.
set +o pipefail
completed=$(awk '/Queries completed:/ {print $3}' "$work/dnsperf.out")
lost=$(awk '/Queries lost:/ {print $3}' "$work/dnsperf.out")
# The dump taken while the load ran (callgrind_control -d) holds the instrumented part.
file=$(ls -S "$out_dir"/callgrind.out* | head -1)
total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo
echo "queries answered: $completed (lost: $lost); instructions while loaded: $total;" \
  "per answered query: $(awk -v t="$total" -v q="$completed" 'BEGIN { printf "%.0f", t / q }')"
bench_callgrind_report "$file" "$TOP"
