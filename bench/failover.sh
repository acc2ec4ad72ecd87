#!/usr/bin/env bash
# Failover timing, side by side: how long from a fault at an ingress to the DNS answer
# changing, and from its recovery to the answer coming back, for
#
#   gslb          with its probe defaults (http, interval 1s, timeout 800ms, rise 2, fall 3, recheck 200ms)
#   gslb          with the fastest settings it accepts (interval 100ms, timeout 100ms,
#                 rise 1, fall 1)
#   gdnsd 3       multifo + http_status, monitor defaults (interval 10, timeout 5,
#                 up_thresh 20, down_thresh 10, ok_thresh 10)
#   gdnsd 3       fastest it accepts (interval 2, timeout 1, thresholds 1)
#   PowerDNS 4.7  LUA ifurlup, defaults (lua-health-checks-interval 5, timeout 2)
#   PowerDNS 4.7  fastest (lua-health-checks-interval 1, timeout 1; one failure)
#
#   bench/failover.sh                 # TRIALS=20 per fault kind (gdnsd defaults: ~5 min a trial)
#   TRIALS=5 SLOW_TRIALS=2 bench/failover.sh
#
# Each server runs with its own pair of stand-in HTTP ingresses (primary 127.0.1.x1,
# secondary 127.0.1.x2, port 18181), all hosted by bench/failover.py, and the trials of
# all servers run at once (each has its own VIPs, so they do not interfere). Per fault
# kind (refused: the stand-in stops listening and resets its connections, as a killed
# process would; blackhole: it accepts and never answers), TRIALS times, at a random phase
# of the server's check interval: inject the fault, poll the A answer of tke-demo.cn every
# 50 ms until the primary VIP leaves it, restore at another random phase, poll until it
# is back. Then a flapping window: 20% of the primary's requests fail for FLAP_SECONDS
# (default 60), counting answer changes and gslb's state changes. Prints markdown tables
# with median and 95th percentile; stops everything it started.
#
# Knobs: TRIALS (default 20), SLOW_TRIALS (trials for gdnsd defaults, whose trials last
# ~5 minutes each; default TRIALS), KINDS (default "refused blackhole"; also http5xx, slow), FLAP_SECONDS
# (default 60, 0 to skip), SERVERS (subset of the names below).
set -euo pipefail
cd "$(dirname "$0")/.."

TRIALS="${TRIALS:-20}"
SLOW_TRIALS="${SLOW_TRIALS:-$TRIALS}"
KINDS="${KINDS:-refused blackhole}"
FLAP_SECONDS="${FLAP_SECONDS:-60}"
SERVERS="${SERVERS:-gslb-defaults gslb-fastest gdnsd-defaults gdnsd-fastest pdns-defaults pdns-fastest}"
HTTP_PORT=18181

work="$(mktemp -d /tmp/gslb-failover.XXXXXX)"
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_init

bench_install_debian
case " $SERVERS " in *" gslb"*) bench_build_gslb ;; esac
# What was built (the tree may move on while a long run goes).
gslb_rev=$(git describe --always --dirty 2>/dev/null || echo '?')

# name: DNS port, VIP octet base, check interval (s), fault limit (s), back limit (s)
declare -A PORT=([gslb-defaults]=25461 [gslb-fastest]=25462 [gdnsd-defaults]=25463
  [gdnsd-fastest]=25464 [pdns-defaults]=25465 [pdns-fastest]=25466)
declare -A OCTET=([gslb-defaults]=1 [gslb-fastest]=2 [gdnsd-defaults]=3 [gdnsd-fastest]=4
  [pdns-defaults]=5 [pdns-fastest]=6)
declare -A INTERVAL=([gslb-defaults]=1 [gslb-fastest]=0.1 [gdnsd-defaults]=10 [gdnsd-fastest]=2
  [pdns-defaults]=5 [pdns-fastest]=1)
declare -A FAULT_LIMIT=([gslb-defaults]=30 [gslb-fastest]=30 [gdnsd-defaults]=240
  [gdnsd-fastest]=30 [pdns-defaults]=60 [pdns-fastest]=30)
declare -A BACK_LIMIT=([gslb-defaults]=30 [gslb-fastest]=30 [gdnsd-defaults]=400
  [gdnsd-fastest]=30 [pdns-defaults]=60 [pdns-fastest]=30)
declare -A ADMIN=([gslb-defaults]=29461 [gslb-fastest]=29462)

gdnsd_version=$({ gdnsd 2>&1 || true; } | sed -n 's/^gdnsd version //p' | head -1)
pdns_version=$(dpkg-query -W -f='${Version}' pdns-server | sed 's/-.*//')
declare -A LABEL=(
  [gslb-defaults]="gslb, defaults (http, interval 1s, timeout 800ms, rise 2, fall 3, recheck 200ms)"
  [gslb-fastest]="gslb, fastest accepted (interval 100ms, timeout 100ms, rise 1, fall 1)"
  [gdnsd-defaults]="gdnsd $gdnsd_version multifo, defaults (interval 10, timeout 5, up 20, down 10, ok 10)"
  [gdnsd-fastest]="gdnsd $gdnsd_version multifo, fastest (interval 2, timeout 1, thresholds 1)"
  [pdns-defaults]="PowerDNS $pdns_version LUA ifurlup, defaults (checks every 5 s, timeout 2 s)"
  [pdns-fastest]="PowerDNS $pdns_version LUA ifurlup, fastest (checks every 1 s, timeout 1 s)"
)

for s in $SERVERS; do
  [ -n "${PORT[$s]:-}" ] || bench_die "unknown server '$s' (known: ${!PORT[*]})"
  bench_port_free "${PORT[$s]}"
  [ -n "${ADMIN[$s]:-}" ] && bench_port_free "${ADMIN[$s]}"
  for ip in "127.0.1.${OCTET[$s]}1" "127.0.1.${OCTET[$s]}2"; do
    bench_accepts "$ip" "$HTTP_PORT" && bench_die "$ip:$HTTP_PORT is already taken"
  done
done

# The spec for the driver.
{
  printf '{"trials": %d, "kinds": [%s], "http_port": %d, "flap_seconds": %d, "flap_rate": 0.2,\n' \
    "$TRIALS" "$(printf '"%s",' $KINDS | sed 's/,$//')" "$HTTP_PORT" "$FLAP_SECONDS"
  printf ' "start_limit": 120, "log": "%s", "raw": "%s", "ready_file": "%s", "go_file": "%s",\n' \
    "$work/trials.log" "$work/raw.json" "$work/standins.ready" "$work/servers.started"
  printf ' "servers": ['
  sep=""
  for s in $SERVERS; do
    n=""
    [ "$s" = gdnsd-defaults ] && n=", \"trials\": $SLOW_TRIALS"
    m=""
    [ -n "${ADMIN[$s]:-}" ] && m=", \"metrics\": \"http://127.0.0.1:${ADMIN[$s]}/metrics\""
    printf '%s\n  {"name": "%s", "label": "%s", "port": %d, "primary": "127.0.1.%s1", "secondary": "127.0.1.%s2", "interval": %s, "fault_limit": %d, "back_limit": %d%s%s}' \
      "$sep" "$s" "${LABEL[$s]}" "${PORT[$s]}" "${OCTET[$s]}" "${OCTET[$s]}" "${INTERVAL[$s]}" \
      "${FAULT_LIMIT[$s]}" "${BACK_LIMIT[$s]}" "$n" "$m"
    sep=","
  done
  printf '\n]}\n'
} >"$work/spec.json"

bench_log "stand-in ingresses (bench/failover.py)"
# Its progress goes to stderr (here), its tables to driver.out.
python3 bench/failover.py "$work/spec.json" >"$work/driver.out" &
driver=$!
bench_pids+=("$driver")
deadline=$((SECONDS + 30))
until [ -e "$work/standins.ready" ]; do
  kill -0 "$driver" 2>/dev/null || { cat "$work/driver.out" >&2; bench_die "the driver exited"; }
  [ "$SECONDS" -lt "$deadline" ] || bench_die "the stand-ins did not start"
  sleep 0.1
done

for s in $SERVERS; do
  dir="$work/$s"
  mkdir -p "$dir"
  a1="127.0.1.${OCTET[$s]}1"
  a2="127.0.1.${OCTET[$s]}2"
  port=${PORT[$s]}
  case "$s" in
    gslb-defaults)
      bench_gslb_config "$dir/gslb.toml" "$port" "${ADMIN[$s]}" "$a1" "$a2" "$HTTP_PORT"
      bench_spawn "$work/$s.log" target/release/gslb serve --config "$dir/gslb.toml"
      ;;
    gslb-fastest)
      bench_gslb_config "$dir/gslb.toml" "$port" "${ADMIN[$s]}" "$a1" "$a2" "$HTTP_PORT" \
        ', interval = "100ms", timeout = "100ms", rise = 1, fall = 1'
      bench_spawn "$work/$s.log" target/release/gslb serve --config "$dir/gslb.toml"
      ;;
    gdnsd-defaults)
      bench_gdnsd_config "$dir" "$port" multifo "$a1" "$a2" "$HTTP_PORT" 10 5 20 10 10
      bench_spawn "$work/$s.log" gdnsd -c "$dir" start
      ;;
    gdnsd-fastest)
      bench_gdnsd_config "$dir" "$port" multifo "$a1" "$a2" "$HTTP_PORT" 2 1 1 1 1
      bench_spawn "$work/$s.log" gdnsd -c "$dir" start
      ;;
    pdns-defaults)
      bench_pdns_config "$dir" "$port" lua "$a1" "$a2" "$HTTP_PORT" 5 ""
      bench_spawn "$work/$s.log" pdns_server --config-dir="$dir"
      ;;
    pdns-fastest)
      bench_pdns_config "$dir" "$port" lua "$a1" "$a2" "$HTTP_PORT" 1 "timeout=1"
      bench_spawn "$work/$s.log" pdns_server --config-dir="$dir"
      ;;
  esac
  # Answers at all (SOA), within 30 s.
  deadline=$((SECONDS + 30))
  until dig @127.0.0.1 -p "$port" tke-demo.cn SOA +short +time=1 +tries=1 2>/dev/null | grep -q .; do
    if ! kill -0 "$bench_last_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      tail -20 "$work/$s.log" >&2
      bench_die "$s did not start"
    fi
    sleep 0.2
  done
  # PowerDNS registers an ifurlup check on its first use: ask once now.
  bench_answer "$port" >/dev/null || true
done
touch "$work/servers.started"

est=$(( (TRIALS * 12 + 60) ))
case " $SERVERS " in *" gdnsd-defaults "*) est=$((SLOW_TRIALS * $(echo $KINDS | wc -w) * 320 + 60)) ;; esac
bench_log "trials: $TRIALS per fault kind ($KINDS), all servers at once; about $((est / 60)) min"
rc=0
wait "$driver" || rc=$?
if [ "$rc" != 0 ]; then
  cat "$work/driver.out" >&2
  bench_die "the driver failed ($rc)"
fi
echo
echo "TRIALS=$TRIALS (gdnsd defaults: $SLOW_TRIALS), kinds: $KINDS, $(date -u +%Y-%m-%d), gslb at $gslb_rev, answer polled every 50 ms"
cat "$work/driver.out"
