#!/usr/bin/env bash
# Side-by-side load test: gslb and the authoritative servers people would pick instead,
# installed from Debian on this machine and measured one after the other in the same run.
#
#   bench/compare.sh                          # 15 s per server
#   DURATION=5 bench/compare.sh               # quick run
#   SERVERS="gslb gdnsd nsd" bench/compare.sh # a subset
#
# Installs (when missing, as root) dnsperf, gdnsd, knot, nsd, pdns-server and
# pdns-backend-bind from Debian, keeping their packaged services stopped and disabled, and
# hickory-dns $HICKORY_VERSION with `cargo install` into target/bench-tools (once). Builds
# gslb in release. Each server is authoritative for tke-demo.cn on its own 127.0.0.1 port
# with the same records (the app's two VIPs as two A records, SOA, NS, ns1 A, a TXT and a
# CNAME www -> apex). The health-checked variants (gdnsd multifo + http_status, PowerDNS
# LUA ifurlup, gslb with an http probe) check stand-in HTTP ingresses (python3 -m
# http.server) on 127.0.1.1:18180 and 127.0.1.2:18180.
#
# For each server in turn: started alone, every thread pinned to CPU 0; dnsperf pinned to
# CPU 1 with 4 clients over the query mix of bench/dnsperf.sh (A, AAAA, SOA, NS, a CNAME
# and 20% NXDOMAIN) for DURATION seconds, at most MAX_QPS. Reported per server: queries/s,
# average and maximum latency, lost queries, VmRSS (summed over the server's processes, at
# the end of the load) and server CPU per answered query: utime+stime of all the server's
# processes over the load window / answered queries. Prints a markdown table; stops every
# process it started, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-15}"
MAX_QPS="${MAX_QPS:-1000000}"
SERVERS="${SERVERS:-gslb gdnsd gdnsd-multifo knot nsd pdns pdns-lua-shared pdns-lua hickory-dns}"
HTTP_PORT=18180
VIP1=127.0.1.1
VIP2=127.0.1.2
# DNS ports: one per server, on 127.0.0.1 only.
declare -A PORT=(
  [gslb]=25451 [gdnsd]=25452 [gdnsd-multifo]=25453 [knot]=25454 [nsd]=25455
  [pdns]=25456 [pdns-lua-shared]=25457 [pdns-lua]=25458 [hickory-dns]=25459
)
GSLB_ADMIN=29451

work="$(mktemp -d /tmp/gslb-compare.XXXXXX)"
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_init

[ "$(nproc)" -ge 2 ] || bench_die "needs 2 CPUs (server on CPU 0, dnsperf on CPU 1)"
bench_install_debian
hickory_ok=0
case " $SERVERS " in *" hickory-dns "*) bench_install_hickory && hickory_ok=1 ;; esac
case " $SERVERS " in *" gslb"*) bench_build_gslb ;; esac
# What was built (the tree may move on while a long run goes).
gslb_rev=$(git describe --always --dirty 2>/dev/null || echo '?')

for s in $SERVERS; do
  [ -n "${PORT[$s]:-}" ] || bench_die "unknown server '$s' (known: ${!PORT[*]})"
  bench_port_free "${PORT[$s]}"
done
bench_port_free "$GSLB_ADMIN"
for ip in $VIP1 $VIP2; do
  bench_accepts "$ip" "$HTTP_PORT" && bench_die "$ip:$HTTP_PORT is already taken"
done

bench_log "stand-in ingresses on $VIP1:$HTTP_PORT and $VIP2:$HTTP_PORT"
mkdir -p "$work/www"
for ip in $VIP1 $VIP2; do
  bench_spawn "$work/stand-in-$ip.log" python3 -m http.server --bind "$ip" --directory "$work/www" "$HTTP_PORT"
done
deadline=$((SECONDS + 20))
for ip in $VIP1 $VIP2; do
  until bench_accepts "$ip" "$HTTP_PORT"; do
    [ "$SECONDS" -lt "$deadline" ] || bench_die "the stand-in on $ip:$HTTP_PORT did not start"
    sleep 0.1
  done
done

# The query mix of bench/dnsperf.sh: 100 lines, 80% existing names, 20% NXDOMAIN.
queries="$work/queries.txt"
for i in $(seq 1 16); do
  printf '%s\n' "tke-demo.cn A" "tke-demo.cn AAAA" "tke-demo.cn SOA" "tke-demo.cn NS" \
    "www.tke-demo.cn A"
  printf 'nope%d.tke-demo.cn A\n' "$i"
done >"$queries"
for i in $(seq 17 20); do printf 'nope%d.tke-demo.cn A\n' "$i"; done >>"$queries"

cpu_ticks() { # "utime stime" summed over every pid given, in clock ticks
  local p stat u=0 s=0
  for p in "$@"; do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    stat=${stat##*) }
    set -- $stat
    u=$((u + ${12}))
    s=$((s + ${13}))
  done
  echo "$u $s"
}
pss_kb() { # proportional set size: shared pages split between the processes sharing them
  local p total=0 v
  for p in "$@"; do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
rss_kb() {
  local p total=0 v
  for p in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# Starts server $1 pinned to CPU 0; sets server_pid, or returns 1 with a reason in $why.
start_server() {
  local s=$1 port=${PORT[$1]} dir="$work/$1" log="$work/$1.log"
  mkdir -p "$dir"
  why=""
  case "$s" in
    gslb)
      bench_gslb_config "$dir/gslb.toml" "$port" "$GSLB_ADMIN" "$VIP1" "$VIP2" "$HTTP_PORT"
      bench_spawn "$log" taskset -c 0 target/release/gslb serve --config "$dir/gslb.toml"
      ;;
    gdnsd)
      bench_gdnsd_config "$dir" "$port" static "$VIP1" "$VIP2"
      bench_spawn "$log" taskset -c 0 gdnsd -c "$dir" start
      ;;
    gdnsd-multifo)
      # gdnsd's monitor defaults: interval 10, timeout 5, up 20, down 10, ok 10.
      bench_gdnsd_config "$dir" "$port" multifo "$VIP1" "$VIP2" "$HTTP_PORT" 10 5 20 10 10
      bench_spawn "$log" taskset -c 0 gdnsd -c "$dir" start
      ;;
    knot)
      bench_knot_config "$dir" "$port"
      bench_spawn "$log" taskset -c 0 knotd -c "$dir/knot.conf"
      ;;
    nsd)
      bench_nsd_config "$dir" "$port"
      bench_spawn "$log" taskset -c 0 nsd -d -c "$dir/nsd.conf"
      ;;
    pdns)
      bench_pdns_config "$dir" "$port" static "$VIP1" "$VIP2"
      bench_spawn "$log" taskset -c 0 pdns_server --config-dir="$dir"
      ;;
    pdns-lua-shared | pdns-lua)
      local mode=lua
      [ "$s" = pdns-lua-shared ] && mode=lua-shared
      bench_pdns_config "$dir" "$port" "$mode" "$VIP1" "$VIP2" "$HTTP_PORT" 5 ""
      bench_spawn "$log" taskset -c 0 pdns_server --config-dir="$dir"
      ;;
    hickory-dns)
      if [ "$hickory_ok" != 1 ]; then
        why="cargo install hickory-dns failed (see target/bench-tools/install.log)"
        return 1
      fi
      bench_hickory_config "$dir" "$port"
      # -q: no per-query INFO line (hickory logs every query by default).
      bench_spawn "$log" taskset -c 0 "$HICKORY_BIN" -q -c "$dir/named.toml" -z "$dir"
      ;;
  esac
  server_pid=$bench_last_pid
  local want="$VIP1 $VIP2"
  case "$s" in
    gslb)
      local deadline=$((SECONDS + 30))
      until curl -sf "http://127.0.0.1:$GSLB_ADMIN/readyz" >/dev/null; do
        if ! kill -0 "$server_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
          why="gslb did not become ready: $(tail -3 "$log" | tr '\n' ' ')"
          return 1
        fi
        sleep 0.2
      done
      want="$VIP1"
      ;;
    pdns-lua*)
      # The first ifurlup call registers the check and answers the fallback; wait for the
      # checker's first round (interval 5 s) before expecting the healthy answer.
      bench_wait_answer "$s" "$port" 20 "$VIP1" "$log" "$server_pid" 2>/dev/null || true
      sleep 6
      want="$VIP1"
      ;;
  esac
  if ! bench_wait_answer "$s" "$port" 30 "$want" "$log" "$server_pid"; then
    why="did not answer tke-demo.cn A '$want' (log: $(tail -2 "$log" | tr '\n' ' '))"
    return 1
  fi
  # Pin every thread of every process of the server (some fork workers) to CPU 0.
  local p
  for p in $(bench_tree "$server_pid"); do
    taskset -a -p -c 0 "$p" >/dev/null 2>&1 || true
  done
}

stop_server() {
  local p tree
  tree=$(bench_tree "$1")
  for p in $tree; do kill "$p" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for p in $tree; do
    while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  wait "$1" 2>/dev/null || true
}

declare -A VERSION
while read -r name ver; do VERSION[$name]=$ver; done < <(bench_versions)
gslb_version=$(target/release/gslb --version 2>/dev/null | awk '{print $NF}')
label() {
  case "$1" in
    gslb) echo "gslb ${gslb_version:-?} (http probe, failover)" ;;
    gdnsd) echo "gdnsd ${VERSION[gdnsd]:-?} (static zone)" ;;
    gdnsd-multifo) echo "gdnsd ${VERSION[gdnsd]:-?} multifo + http_status" ;;
    knot) echo "Knot DNS ${VERSION[knot]:-?}" ;;
    nsd) echo "NSD ${VERSION[nsd]:-?}" ;;
    pdns) echo "PowerDNS ${VERSION[pdns]:-?} (bind backend)" ;;
    pdns-lua-shared) echo "PowerDNS ${VERSION[pdns]:-?} LUA ifurlup (enable-lua-records=shared)" ;;
    pdns-lua) echo "PowerDNS ${VERSION[pdns]:-?} LUA ifurlup (default)" ;;
    hickory-dns) echo "hickory-dns ${VERSION[hickory-dns]:-$HICKORY_VERSION} (-q, logging off)" ;;
  esac
}

rows=()
clk_tck=$(getconf CLK_TCK)
for s in $SERVERS; do
  bench_log "$s: start on 127.0.0.1:${PORT[$s]} (CPU 0)"
  if ! start_server "$s"; then
    echo "bench: $s: $why" >&2
    rows+=("| $(label "$s") | did not run: $why | | | | | | |")
    [ -n "${server_pid:-}" ] && stop_server "$server_pid"
    server_pid=""
    continue
  fi
  tree=$(bench_tree "$server_pid")
  bench_log "$s: dnsperf ${DURATION}s (CPU 1), processes: $tree"
  read -r ubefore sbefore < <(cpu_ticks $tree)
  t0=$(date +%s.%N)
  bench_spawn "$work/$s.dnsperf" timeout $((DURATION + 60)) taskset -c 1 \
    dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$queries" -l "$DURATION" -c 4 -Q "$MAX_QPS"
  rc=0
  wait "$bench_last_pid" || rc=$?
  tree_after=$(bench_tree "$server_pid")
  read -r uafter safter < <(cpu_ticks $tree_after)
  t1=$(date +%s.%N)
  rss=$(rss_kb $tree_after)
  pss=$(pss_kb $tree_after)
  nproc_server=$(echo $tree_after | wc -w)
  stop_server "$server_pid"
  server_pid=""
  if [ "$rc" != 0 ]; then
    rows+=("| $(label "$s") | dnsperf failed (exit $rc) | | | | | | |")
    tail -5 "$work/$s.dnsperf" >&2
    continue
  fi
  row=$(awk -v uticks="$((uafter - ubefore))" -v sticks="$((safter - sbefore))" -v hz="$clk_tck" -v rss="$rss" -v pss="$pss" -v np="$nproc_server" -v t0="$t0" -v t1="$t1" \
    -v label="$(label "$s")" '
    /Queries completed:/ { completed = $3 }
    /Queries lost:/ { lost = $3; pct = $4; gsub(/[()]/, "", pct) }
    /Queries per second:/ { qps = $4 }
    /Average Latency \(s\):/ { avg = $4; max = $8; sub(/\)/, "", max) }
    END {
      if (completed == 0) { printf "| %s | answered no query | | | | | | |\n", label; exit }
      cpu = (uticks + sticks) / hz; wall = t1 - t0
      rs = sprintf("%.1f MB", rss / 1024)
      if (np > 1) rs = rs sprintf(" (%d processes; PSS %.1f MB)", np, pss / 1024)
      printf "| %s | %.0f | %.3f ms | %.1f ms | %d (%s) | %s | %.2f s (user %.2f, sys %.2f) / %.1f s | %.1f |", \
        label, qps, avg * 1000, max * 1000, lost, pct, rs, cpu, uticks / hz, sticks / hz, wall, cpu * 1e6 / completed
    }' "$work/$s.dnsperf")
  rows+=("$row")
  echo "$row" >&2
done

echo
echo "DURATION=${DURATION}s per server, dnsperf -c 4 -Q $MAX_QPS, $(date -u +%Y-%m-%d), gslb at $gslb_rev, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
echo
echo "| server | queries/s | avg latency | max latency | lost | VmRSS | server CPU (user, sys) / load window | µs server CPU per answered query |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
