#!/usr/bin/env bash
# gslb's own (user-space) cost per probe, as instructions counted by valgrind's callgrind:
# repeatable whatever else the machine does, unlike CPU time, so two builds can be told
# apart by a few percent. The kernel's part (the TCP handshake) is not counted; see
# bench/probe_floor.sh for it.
#
#   bench/probe_profile.sh                               # N=500 tcp targets, 20 s
#   GSLB=/tmp/gslb-before bench/probe_profile.sh          # another build, side by side
#   KIND=http N=200 bench/probe_profile.sh
#
# Knobs: N (targets, default 500), KIND (tcp or http, default tcp), WINDOW (s measured,
# default 20), WARMUP (s after every target is up, default 5), TOP (functions listed,
# default 25), GSLB (a gslb binary to run; default: target/release/gslb, built first with
# BUILD=1, the default), KEEP_WORK=1 keeps the scratch directory.
#
# The targets, config and stand-in are bench/probe_scale.sh's (bench/probe_scale.py: N
# listeners on 127.2.x.y port 18090, one probe a second each). gslb runs under callgrind
# with instrumentation off; once every target is up and the warm-up is over it is
# switched on for WINDOW seconds, then the profile is dumped. Probes are counted in the
# profile itself, as the calls to libc's connect() made while instrumented (one per tcp
# or http probe), so the figure is exact: instructions while instrumented / probes.
# Everything gslb did in that time is in it (health, the answer table's rebuilds, the
# timer and I/O driver), which is what a probe costs it.
#
# Prints the instructions per probe and the top functions (self and inclusive); keeps the
# profile in target/bench-profile/probe-callgrind.out. Needs: valgrind, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-500}"
KIND="${KIND:-tcp}"
WINDOW="${WINDOW:-20}"
WARMUP="${WARMUP:-5}"
TOP="${TOP:-25}"
BUILD="${BUILD:-1}"
GSLB="${GSLB:-}"
PORT=18090
DNS_PORT=25391
ADMIN_PORT=29191
ADMIN="http://127.0.0.1:$ADMIN_PORT"
HELPER=bench/probe_scale.py
out_dir="$PWD/target/bench-profile"

work="$(mktemp -d /tmp/gslb-probe-profile.XXXXXX)"
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_init

bench_need valgrind "apt-get install -y valgrind"
bench_need python3 "apt-get install -y python3"
bench_need curl "apt-get install -y curl"
case "$KIND" in tcp | http) ;; *) bench_die "KIND is tcp or http" ;; esac
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 5000 ] || bench_die "N is 1 to 5000"
[[ "$WINDOW" =~ ^[0-9]+$ ]] && [ "$WINDOW" -ge 1 ] || bench_die "WINDOW is a whole number of seconds"
if [ -z "$GSLB" ]; then
  [ "$BUILD" = 1 ] && bench_build_gslb
  GSLB=target/release/gslb
fi
[ -x "$GSLB" ] || bench_die "$GSLB is not an executable"
GSLB=$(realpath "$GSLB")
bench_port_free "$DNS_PORT"
bench_port_free "$ADMIN_PORT"
mkdir -p "$out_dir"
bench_raise_fd_limit "$N"

python3 "$HELPER" config "$N" "$KIND" "$PORT" 1s 800ms "127.0.0.1:$DNS_PORT" \
  "127.0.0.1:$ADMIN_PORT" >"$work/gslb.toml"
bench_log "stand-in: $N $KIND listeners on 127.2.0.0/16 port $PORT"
bench_spawn "$work/standin.log" python3 "$HELPER" standin "$N" "$KIND" "$PORT" \
  $((WINDOW + WARMUP + 300)) "$work/standin.ready" "$work/standin.stats"
deadline=$((SECONDS + 60))
until [ -s "$work/standin.ready" ]; do
  [ "$SECONDS" -lt "$deadline" ] || { cat "$work/standin.log" >&2; bench_die "the stand-in did not start"; }
  sleep 0.1
done

out="$out_dir/probe-callgrind.out"
rm -f "$out"*
bench_log "gslb ($GSLB) under callgrind, instrumentation off"
(cd "$work" && exec valgrind --tool=callgrind --instr-atstart=no --separate-threads=no \
  --dump-instr=no --callgrind-out-file="$out" "$GSLB" serve --config "$work/gslb.toml") \
  >"$work/gslb.log" 2>&1 &
gslb_pid=$!
bench_pids+=("$gslb_pid")

deadline=$((SECONDS + 120 + N / 10))
until [ "$(curl -s -m 10 "$ADMIN/api/v1/status" >"$work/status.json" && python3 "$HELPER" states "$work/status.json")" = "$N $N" ]; do
  kill -0 "$gslb_pid" 2>/dev/null || { tail -20 "$work/gslb.log" >&2; bench_die "gslb exited"; }
  [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$work/gslb.log" >&2; bench_die "not every target was up in time"; }
  sleep 1
done
bench_log "every target up; warm-up ${WARMUP}s, then ${WINDOW}s instrumented"
sleep "$WARMUP"
callgrind_control -i on "$gslb_pid" >/dev/null
sleep "$WINDOW"
callgrind_control -i off "$gslb_pid" >/dev/null
callgrind_control -d "$gslb_pid" >/dev/null
bench_callgrind_stop "$gslb_pid"

set +o pipefail
file=$(ls -S "$out"* | head -1)
# Instructions while instrumented, and the calls made to connect() in that time.
read -r total probes < <(python3 - "$file" <<'EOF'
import re, sys
names, total, probes, cfn = {}, 0, 0, None
def name(spec):
    m = re.match(r"\((\d+)\)(?: (.*))?", spec)
    if not m:
        return spec
    if m.group(2):
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), "")
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("totals:"):
        total = int(line.split()[1])
    elif line.startswith("cfn="):
        cfn = name(line[4:].strip())
    elif line.startswith("fn="):
        name(line[3:].strip())
    elif line.startswith("calls=") and cfn is not None:
        if re.fullmatch(r"(__libc_)?connect", cfn):
            probes += int(line.split("=", 1)[1].split()[0])
        cfn = None
print(total, probes)
EOF
)
[ "$probes" -gt 0 ] || bench_die "no connect() calls in the profile ($file)"
echo
echo "$N $KIND targets, ${WINDOW}s instrumented: $probes probes (connect calls)," \
  "$total instructions; per probe: $(awk -v t="$total" -v p="$probes" 'BEGIN { printf "%.0f", t / p }')"
bench_callgrind_report "$file" "$TOP"
