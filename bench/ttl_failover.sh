#!/usr/bin/env bash
# Client-visible failover time through a real recursive resolver (unbound), with and
# without the adaptive TTL of an app:
#
#   fixed      ttl = 30
#   adaptive   ttl = 30, adaptive_ttl = { min = MIN_TTL }
#
#   bench/ttl_failover.sh                    # TRIALS=6 (about 9 minutes)
#   TRIALS=10 MIN_TTL=2 bench/ttl_failover.sh
#
# Each mode has its own gslb (release build, probe defaults: http, interval 1s, timeout
# 800ms, rise 2, fall 3, recheck 200ms), its own unbound (one thread, a stub zone for
# tke-demo.cn pointing at that gslb, cache defaults: cache-min-ttl 0, no prefetch) and its
# own pair of stand-in ingresses (`python3 -m http.server`: fixed on 127.0.2.1 and
# 127.0.2.2, adaptive on 127.0.2.11 and 127.0.2.12, port 18182); both modes run at once.
# Per trial: poll the resolver every 100 ms for a random time in [0, TTL) (a busy
# resolver: its cached answer is refreshed as soon as it expires, so the fault lands at a
# random age of the cached answer), kill the primary stand-in (kill -9: connections are
# refused), then poll gslb (over TCP, so that gslb's UDP query counter counts only the
# resolver) and the resolver every 100 ms until each answers the secondary alone; poll
# the resolver for another random time in [0, TTL), start the stand-in again, and poll
# until each answers the primary. Prints the median and maximum of each time, and the
# queries the resolver sent to gslb per minute. Every wait is bounded; everything started
# is stopped on exit.
#
# Knobs: TRIALS (default 6), TTL (default 30), MIN_TTL (default 5), PROBE_EXTRA (probe
# settings appended to both apps, e.g. ', interval = "5s", recheck_interval = "2s", fall = 5').
#
# Needs: unbound, dig, curl, python3 (installs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # $EPOCHREALTIME with a decimal point, read by now_us

TRIALS="${TRIALS:-6}"
TTL="${TTL:-30}"
MIN_TTL="${MIN_TTL:-5}"
PROBE_EXTRA="${PROBE_EXTRA:-}"
HTTP_PORT=18182
MODES=(fixed adaptive)
declare -A DNS=([fixed]=25471 [adaptive]=25472)
declare -A ADMIN=([fixed]=29471 [adaptive]=29472)
declare -A RESOLVER=([fixed]=25481 [adaptive]=25482)
declare -A PRIMARY=([fixed]=127.0.2.1 [adaptive]=127.0.2.11)
declare -A SECONDARY=([fixed]=127.0.2.2 [adaptive]=127.0.2.12)
declare -A EXTRA=([fixed]="" [adaptive]="adaptive_ttl = { min = $MIN_TTL }")

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_need unbound unbound
bench_need dig bind9-dnsutils
bench_need curl curl
bench_need python3 python3

work="$(mktemp -d /tmp/gslb-ttl-failover.XXXXXX)"
bench_init
# The trial loops restart stand-ins from background subshells: stop those too.
trap 'for f in "$work"/*.standin.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; bench_cleanup' EXIT

for m in "${MODES[@]}"; do
  for port in "${DNS[$m]}" "${ADMIN[$m]}" "${RESOLVER[$m]}"; do bench_port_free "$port"; done
  for ip in "${PRIMARY[$m]}" "${SECONDARY[$m]}"; do
    bench_accepts "$ip" "$HTTP_PORT" && bench_die "$ip:$HTTP_PORT is already taken"
  done
done
bench_build_gslb
gslb_rev=$(git describe --always --dirty 2>/dev/null || echo '?')
mkdir -p "$work/www"

# Time in microseconds, without a process per reading.
now_us() { echo "${EPOCHREALTIME/./}"; }
# Seconds since $1 (microseconds), to the millisecond.
since() {
  local us=$(($(now_us) - $1))
  printf '%d.%03d' $((us / 1000000)) $((us % 1000000 / 1000))
}
# A random duration in [0, $1) seconds, for sleep, to the millisecond.
phase() {
  local ms=$(((RANDOM * 32768 + RANDOM) % ($1 * 1000)))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# The A records of tke-demo.cn in $@ (dig +short output), space-separated.
addresses() {
  local w out=""
  for w in "$@"; do [[ $w =~ ^[0-9.]+$ ]] && out+="${out:+ }$w"; done
  echo "$out"
}
# ... from gslb (over TCP) or from the resolver (UDP).
gslb_answer() {
  addresses $(dig @127.0.0.1 -p "${DNS[$1]}" tke-demo.cn A +tcp +short +time=1 +tries=1 2>/dev/null || true)
}
resolver_answer() {
  addresses $(dig @127.0.0.1 -p "${RESOLVER[$1]}" tke-demo.cn A +short +time=1 +tries=1 2>/dev/null || true)
}

# Starts mode $1's stand-in on $2, waits until it accepts; its pid goes to a file.
standin_start() {
  local m=$1 ip=$2 deadline=$((SECONDS + 10))
  python3 -m http.server "$HTTP_PORT" --bind "$ip" --directory "$work/www" \
    >>"$work/$m.$ip.log" 2>&1 &
  echo $! >"$work/$m.$ip.standin.pid"
  disown $! # killed on purpose: no "Killed" notice from the shell
  until bench_accepts "$ip" "$HTTP_PORT"; do
    [ "$SECONDS" -lt "$deadline" ] || bench_die "the stand-in on $ip:$HTTP_PORT did not start"
    sleep 0.05
  done
}
standin_kill() {
  kill -9 "$(cat "$work/$1.$2.standin.pid")" 2>/dev/null || true
  rm -f "$work/$1.$2.standin.pid"
}

# Polls the resolver of mode $1 every 100 ms for $2 seconds (keeps its cache warm).
keep_asking() {
  local m=$1 t0
  t0=$(now_us)
  local end=$((t0 + 10#${2/./} * 1000))
  while [ "$(now_us)" -lt "$end" ]; do
    resolver_answer "$m" >/dev/null
    sleep 0.1
  done
}

# Polls gslb and the resolver of mode $1 every 100 ms (at most $4 s) from $3
# (microseconds) until each answers "$2"; prints "GSLB_SECONDS RESOLVER_SECONDS": the
# time each query was sent.
until_both() {
  local m=$1 want=$2 t0=$3 limit=$4 tg="" tr="" sent
  while :; do
    sent=$(since "$t0")
    [ -n "$tg" ] || { [ "$(gslb_answer "$m")" = "$want" ] && tg=$sent; }
    sent=$(since "$t0")
    [ -n "$tr" ] || { [ "$(resolver_answer "$m")" = "$want" ] && tr=$sent; }
    if [ -n "$tg" ] && [ -n "$tr" ]; then
      echo "$tg $tr"
      return 0
    fi
    [ "$(($(now_us) - t0))" -lt "$((limit * 1000000))" ] || return 1
    sleep 0.1
  done
}

udp_queries() {
  curl -sf "http://127.0.0.1:${ADMIN[$1]}/metrics" |
    awk '/^gslb_dns_queries_total\{/ && /transport="udp"/ { n += $NF } END { printf "%d", n }'
}

for m in "${MODES[@]}"; do
  standin_start "$m" "${PRIMARY[$m]}"
  standin_start "$m" "${SECONDARY[$m]}"
  cat >"$work/$m.toml" <<EOF
[server]
dns_listen = ["127.0.0.1:${DNS[$m]}"]
admin_listen = "127.0.0.1:${ADMIN[$m]}"

[[zone]]
name = "tke-demo.cn"
nameservers = ["ns1.tke-demo.cn"]
hostmaster = "hostmaster.tke-demo.cn"
records = [{ name = "ns1", type = "A", value = "127.0.0.1" }]

[[cluster]]
name = "guangzhou-01"
vips = ["${PRIMARY[$m]}"]
priority = 1

[[cluster]]
name = "guangzhou-02"
vips = ["${SECONDARY[$m]}"]
priority = 2

[[app]]
name = "tke-demo.cn"
ttl = $TTL
${EXTRA[$m]}
probe = { kind = "http", port = $HTTP_PORT, path = "/"$PROBE_EXTRA }
EOF
  target/release/gslb check-config "$work/$m.toml" >/dev/null
  bench_spawn "$work/$m.gslb.log" target/release/gslb serve --config "$work/$m.toml"
  mkdir -p "$work/$m.unbound"
  cat >"$work/$m.unbound.conf" <<EOF
server:
  interface: 127.0.0.1
  port: ${RESOLVER[$m]}
  do-not-query-localhost: no
  chroot: ""
  username: ""
  directory: "$work/$m.unbound"
  pidfile: "$work/$m.unbound/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
remote-control:
  control-enable: no
stub-zone:
  name: "tke-demo.cn"
  stub-addr: 127.0.0.1@${DNS[$m]}
EOF
  bench_spawn "$work/$m.unbound.log" unbound -d -c "$work/$m.unbound.conf"
done
for m in "${MODES[@]}"; do
  deadline=$((SECONDS + 30))
  until [ "$(resolver_answer "$m")" = "${PRIMARY[$m]}" ]; do
    [ "$SECONDS" -lt "$deadline" ] || {
      tail -20 "$work/$m.gslb.log" >&2
      bench_die "$m: the resolver does not answer ${PRIMARY[$m]}"
    }
    sleep 0.2
  done
done

# One mode's trials; lines "MODE TRIAL fault|back gslb|resolver SECONDS" (or "timeout").
trials() {
  local m=$1 i t0 r limit=$((TTL + 30))
  for i in $(seq 1 "$TRIALS"); do
    keep_asking "$m" "$(phase "$TTL")"
    t0=$(now_us)
    standin_kill "$m" "${PRIMARY[$m]}"
    if r=$(until_both "$m" "${SECONDARY[$m]}" "$t0" "$limit"); then
      set -- $r
      printf '%s %d fault gslb %s\n%s %d fault resolver %s\n' "$m" "$i" "$1" "$m" "$i" "$2"
    else
      printf '%s %d fault timeout\n' "$m" "$i"
    fi
    keep_asking "$m" "$(phase "$TTL")"
    standin_start "$m" "${PRIMARY[$m]}"
    t0=$(now_us)
    if r=$(until_both "$m" "${PRIMARY[$m]}" "$t0" "$limit"); then
      set -- $r
      printf '%s %d back gslb %s\n%s %d back resolver %s\n' "$m" "$i" "$1" "$m" "$i" "$2"
    else
      printf '%s %d back timeout\n' "$m" "$i"
      # Start the next trial from a known state.
      until_both "$m" "${PRIMARY[$m]}" "$(now_us)" "$limit" >/dev/null || true
    fi
  done
}

bench_log "$TRIALS trials per mode (fixed ttl $TTL; adaptive min $MIN_TTL), both modes at once; about $((TRIALS * (2 * TTL + 20) / 60 + 1)) min"
declare -A Q0
for m in "${MODES[@]}"; do Q0[$m]=$(udp_queries "$m"); done
start=$SECONDS
running=()
for m in "${MODES[@]}"; do
  trials "$m" >"$work/$m.results" &
  running+=("$!")
  bench_pids+=("$!")
done
for pid in "${running[@]}"; do
  wait "$pid" || true
done
minutes=$(awk -v s="$((SECONDS - start))" 'BEGIN { printf "%.3f", s / 60 }')
declare -A QPM
for m in "${MODES[@]}"; do
  QPM[$m]=$(awk -v q="$(($(udp_queries "$m") - Q0[$m]))" -v m="$minutes" 'BEGIN { printf "%.1f", q / m }')
done

probe_text=defaults
[ -z "$PROBE_EXTRA" ] || probe_text="defaults but ${PROBE_EXTRA#, }"
echo
echo "TRIALS=$TRIALS, $(date -u +%Y-%m-%d), gslb at $gslb_rev, unbound $(unbound -V 2>/dev/null | sed -n 's/^Version //p'), probe $probe_text, polled every 100 ms"
cat "$work/fixed.results" "$work/adaptive.results" >"$work/all.results"
python3 - "$work/all.results" "$TTL" "$MIN_TTL" "${QPM[fixed]}" "${QPM[adaptive]}" <<'PY'
import statistics, sys
path, ttl, mn, qpm_fixed, qpm_adaptive = sys.argv[1:6]
qpm = {"fixed": qpm_fixed, "adaptive": qpm_adaptive}
rows, timeouts = {}, {}
for line in open(path):
    f = line.split()
    if f[3] == "timeout":
        timeouts[(f[0], f[2])] = timeouts.get((f[0], f[2]), 0) + 1
        continue
    rows.setdefault((f[0], f[2], f[3]), []).append(float(f[4]))


def cell(m, phase, who):
    v = rows.get((m, phase, who), [])
    if not v:
        return "no trial"
    t = timeouts.get((m, phase), 0)
    out = "median %.2f s, max %.2f s" % (statistics.median(v), max(v))
    return out + (" (%d timed out)" % t if t else "")


label = {"fixed": "fixed: ttl %s" % ttl, "adaptive": "adaptive: ttl %s, min %s" % (ttl, mn)}
print()
print("| TTL | trials | fault -> gslb changed | fault -> unbound changed "
      "| restored -> gslb back | restored -> unbound back | queries unbound -> gslb per minute |")
print("|---|---|---|---|---|---|---|")
for m in ("fixed", "adaptive"):
    n = len(rows.get((m, "fault", "resolver"), [])) + timeouts.get((m, "fault"), 0)
    cells = [cell(m, p, w) for p in ("fault", "back") for w in ("gslb", "resolver")]
    print("| %s | %d | %s | %s |" % (label[m], n, " | ".join(cells), qpm[m]))
PY
echo
echo "raw (mode trial phase who seconds):"
cat "$work/all.results"
