# Shared by the bench/*.sh scripts (sourced, not run): installs the peer servers, writes
# their configs, starts them and stops everything that was started; raises the open-file
# limit and pins processes to CPUs.
#
# Every address used is on 127.0.0.0/8. The caller sets `work` (a scratch directory) and
# calls `bench_init` first; `bench_cleanup` runs on exit.

HICKORY_VERSION=0.26.3
BENCH_TOOLS="$PWD/target/bench-tools"
HICKORY_BIN="$BENCH_TOOLS/bin/hickory-dns"

bench_pids=()
bench_policy_rc_created=0

bench_log() { printf '== %s\n' "$*" >&2; }
bench_die() {
  printf 'bench: %s\n' "$*" >&2
  exit 1
}

# Exits unless command $1 is installed, naming the Debian package $2 that has it.
bench_need() {
  command -v "$1" >/dev/null 2>&1 || bench_die "$1 is missing; install it with: apt-get install -y $2"
}

# The pids of $1 and all of its descendants (so only what it started).
bench_tree() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      keep[root] = 1; out = root; changed = 1
      while (changed) {
        changed = 0
        for (i in pids) {
          p = pids[i]
          if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; out = out " " p; changed = 1 }
        }
      }
      print out
    }'
}

bench_cleanup() {
  local pid tree=()
  for pid in "${bench_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      tree+=($(bench_tree "$pid"))
    fi
  done
  for pid in "${tree[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  # Give them a moment, then insist on the ones that are still there.
  local deadline=$((SECONDS + 5))
  for pid in "${tree[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for pid in "${bench_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$bench_policy_rc_created" = 1 ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  if [ -n "${work:-}" ] && [ -d "$work" ] && [ "${KEEP_WORK:-0}" != 1 ]; then
    rm -rf "$work"
  fi
}

bench_init() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

# For a process that holds up to $1 sockets at once (probed targets, stand-in listeners):
# raises this shell's open-file limit, and so that of what it starts, to the hard limit,
# or exits if the hard limit is below $1 plus a margin of 1,024.
bench_raise_fd_limit() {
  local need=$(($1 + 1024)) hard
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    bench_die "$1 sockets need $need open files per process; the hard limit is $hard (ulimit -Hn)"
  fi
  ulimit -n "$hard" 2>/dev/null || ulimit -n "$need"
}

# Sets bench_cpu0=(taskset -c 0) and bench_cpu1=(taskset -c 1), to put before a command
# to pin it to CPU 0 or 1, so that the process measured and its peer (stand-in, load
# generator) do not share a CPU; with a single CPU both are empty, and a warning says so.
# shellcheck disable=SC2034 # bench_cpu0 and bench_cpu1 are for the scripts sourcing this
bench_pin_cpus() {
  bench_cpu0=()
  bench_cpu1=()
  if [ "$(nproc)" -ge 2 ]; then
    bench_cpu0=(taskset -c 0)
    bench_cpu1=(taskset -c 1)
  else
    echo "bench: only one CPU: every process shares it" >&2
  fi
}

# Starts "$@" in the background, remembers its pid (in bench_last_pid) for cleanup.
bench_spawn() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  bench_last_pid=$!
  bench_pids+=("$bench_last_pid")
}

# ---------------------------------------------------------------------------------------
# Installation

# Debian's packages start their daemons on install (port 53 on every address). Keep them
# from starting with a policy-rc.d (only while installing, and only if none is there), then
# stop and disable whatever the init system would start.
bench_install_debian() {
  local pkgs=(dnsperf bind9-dnsutils gdnsd knot nsd pdns-server pdns-backend-bind util-linux curl python3)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || bench_die "missing packages (${missing[*]}); run as root or install them"
    bench_log "apt-get install -y ${missing[*]}"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\n# written by gslb bench/lib.sh while installing; removed after\nexit 101\n' \
        >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      bench_policy_rc_created=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >"$work/apt.log" 2>&1 || {
      DEBIAN_FRONTEND=noninteractive apt-get update >>"$work/apt.log" 2>&1
      DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$work/apt.log" 2>&1
    } || {
      tail -20 "$work/apt.log" >&2
      bench_die "apt-get install failed"
    }
    if [ "$bench_policy_rc_created" = 1 ]; then
      rm -f /usr/sbin/policy-rc.d
      bench_policy_rc_created=0
    fi
  fi
  bench_disable_services
}

bench_disable_services() {
  local svc
  if [ -d /run/systemd/system ]; then
    for svc in gdnsd knot nsd pdns; do
      systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
    done
  else
    for svc in gdnsd knot nsd pdns; do
      if [ -x "/etc/init.d/$svc" ]; then
        "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        update-rc.d "$svc" disable >/dev/null 2>&1 || true
      fi
    done
  fi
  # Report (never kill) any of these daemons that still runs: it would share the CPUs.
  local p exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "$exe" in
      */gdnsd | */knotd | */nsd | */pdns_server)
        case " ${bench_pids[*]} " in *" ${p#/proc/} "*) continue ;; esac
        echo "bench: warning: $exe (pid ${p#/proc/}) is running and not ours; it shares the CPUs" >&2
        ;;
    esac
  done
}

bench_install_hickory() {
  if [ -x "$HICKORY_BIN" ] && "$HICKORY_BIN" --version 2>/dev/null | grep -q "$HICKORY_VERSION"; then
    return 0
  fi
  bench_log "cargo install hickory-dns --version $HICKORY_VERSION (into target/bench-tools, once)"
  mkdir -p "$BENCH_TOOLS"
  cargo install --locked --root "$BENCH_TOOLS" --target-dir "$BENCH_TOOLS/build" \
    hickory-dns --version "$HICKORY_VERSION" >"$BENCH_TOOLS/install.log" 2>&1 || {
    tail -20 "$BENCH_TOOLS/install.log" >&2
    echo "bench: cargo install hickory-dns failed; it is left out" >&2
    return 1
  }
}

bench_build_gslb() {
  bench_log "cargo build --release"
  cargo build --release --quiet || bench_die "cargo build --release failed"
}

# ---------------------------------------------------------------------------------------
# Checks

bench_accepts() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

bench_port_free() {
  # UDP or TCP on 127.0.0.1:$1 already bound?
  if ss -H -ln "( sport = :$1 )" 2>/dev/null | grep -q .; then
    bench_die "port $1 is already in use on this machine; stop what uses it or change the port"
  fi
}

# The sorted A records of tke-demo.cn at 127.0.0.1:$1, space-separated.
bench_answer() {
  dig @127.0.0.1 -p "$1" "${2:-tke-demo.cn}" A +short +time=1 +tries=1 2>/dev/null |
    grep -E '^[0-9.]+$' | sort | tr '\n' ' ' | sed 's/ $//'
}

# Waits (at most $3 s) until the A answer of tke-demo.cn on port $2 is "$4"; $1 names the
# server for messages and $5 is its log.
bench_wait_answer() {
  local name=$1 port=$2 limit=$3 want=$4 log=$5 pid=$6 got=""
  local deadline=$((SECONDS + limit))
  while :; do
    got=$(bench_answer "$port")
    [ "$got" = "$want" ] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: $name exited during start-up; its log:" >&2
      tail -30 "$log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "bench: $name: expected tke-demo.cn A '$want' within ${limit}s, got '${got:-nothing}'; log:" >&2
      tail -30 "$log" >&2
      return 1
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------
# Zone and configs. The zone of every static server: the same records gslb serves from
# bench/bench.toml, with the two VIPs of the app as two A records at the apex.

bench_static_zone() {
  local a1=$1 a2=$2
  cat <<EOF
\$ORIGIN tke-demo.cn.
\$TTL 30
@       IN SOA ns1.tke-demo.cn. hostmaster.tke-demo.cn. 1 3600 600 86400 30
@       IN NS ns1.tke-demo.cn.
ns1     IN A 127.0.0.1
@       IN A $a1
@       IN A $a2
info    IN TXT "served by a static zone"
www     IN CNAME tke-demo.cn.
EOF
}

# $1: dir, $2: port, $3: "static" or "multifo", $4 $5: VIPs, $6: HTTP port,
# $7: interval, $8: timeout, $9: up_thresh, $10: down_thresh, $11: ok_thresh
bench_gdnsd_config() {
  local dir=$1 port=$2 mode=$3 a1=$4 a2=$5
  mkdir -p "$dir/zones" "$dir/run" "$dir/state"
  if [ "$mode" = static ]; then
    bench_static_zone "$a1" "$a2" >"$dir/zones/tke-demo.cn"
    cat >"$dir/config" <<EOF
options => {
  listen => [ 127.0.0.1:$port ]
  run_dir => $dir/run
  state_dir => $dir/state
}
EOF
  else
    local hport=$6 interval=$7 timeout=$8 up=$9 down=${10} ok=${11}
    cat >"$dir/zones/tke-demo.cn" <<EOF
\$ORIGIN tke-demo.cn.
\$TTL 30
@       IN SOA ns1.tke-demo.cn. hostmaster.tke-demo.cn. 1 3600 600 86400 30
@       IN NS ns1.tke-demo.cn.
ns1     IN A 127.0.0.1
@       30 DYNA multifo!tke
info    IN TXT "served by gdnsd multifo"
www     IN CNAME tke-demo.cn.
EOF
    cat >"$dir/config" <<EOF
options => {
  listen => [ 127.0.0.1:$port ]
  run_dir => $dir/run
  state_dir => $dir/state
}
service_types => {
  ingress => {
    plugin => http_status
    port => $hport
    url_path => /
    vhost => tke-demo.cn
    ok_codes => [ 200 ]
    interval => $interval
    timeout => $timeout
    up_thresh => $up
    down_thresh => $down
    ok_thresh => $ok
  }
}
plugins => {
  multifo => {
    tke => {
      service_types => ingress
      addrs_v4 => [ $a1, $a2 ]
    }
  }
}
EOF
  fi
}

bench_knot_config() {
  local dir=$1 port=$2
  mkdir -p "$dir/db"
  bench_static_zone 127.0.1.1 127.0.1.2 >"$dir/tke-demo.cn.zone"
  cat >"$dir/knot.conf" <<EOF
server:
    rundir: "$dir"
    listen: 127.0.0.1@$port
control:
    listen: "$dir/knot.sock"
database:
    storage: "$dir/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$dir"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: tke-demo.cn
EOF
}

bench_nsd_config() {
  local dir=$1 port=$2
  mkdir -p "$dir/xfr"
  bench_static_zone 127.0.1.1 127.0.1.2 >"$dir/tke-demo.cn.zone"
  cat >"$dir/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$port
    port: $port
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$dir"
    database: ""
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir/xfr"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/nsd.log"
    verbosity: 0
    # Debian's NSD has response rate limiting on (200 answers/s per client /24): off, as
    # every query here comes from 127.0.0.1.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: tke-demo.cn
    zonefile: tke-demo.cn.zone
EOF
}

# $1 dir, $2 port, $3 mode: static | lua | lua-shared, $4 $5 VIPs, $6 HTTP port,
# $7 health-check interval (s), $8 ifurlup options ("" or e.g. "timeout=1")
bench_pdns_config() {
  local dir=$1 port=$2 mode=$3 a1=$4 a2=$5 hport=${6:-} interval=${7:-5} opts=${8:-}
  mkdir -p "$dir"
  local lua=no
  if [ "$mode" = static ]; then
    bench_static_zone "$a1" "$a2" >"$dir/tke-demo.cn.zone"
  else
    [ "$mode" = lua-shared ] && lua=shared || lua=yes
    local optarg=""
    [ -n "$opts" ] && optarg=", {$opts}"
    cat >"$dir/tke-demo.cn.zone" <<EOF
\$ORIGIN tke-demo.cn.
\$TTL 30
@       IN SOA ns1.tke-demo.cn. hostmaster.tke-demo.cn. 1 3600 600 86400 30
@       IN NS ns1.tke-demo.cn.
ns1     IN A 127.0.0.1
@       30 IN LUA A "ifurlup('http://tke-demo.cn:$hport/', {{'$a1'}, {'$a2'}}$optarg)"
info    IN TXT "served by PowerDNS LUA"
www     IN CNAME tke-demo.cn.
EOF
  fi
  cat >"$dir/named.conf" <<EOF
options { directory "$dir"; };
zone "tke-demo.cn" { type master; file "$dir/tke-demo.cn.zone"; };
EOF
  cat >"$dir/pdns.conf" <<EOF
launch=bind
bind-config=$dir/named.conf
local-address=127.0.0.1
local-port=$port
guardian=no
daemon=no
socket-dir=$dir
disable-syslog=yes
loglevel=4
log-dns-queries=no
setuid=
setgid=
webserver=no
api=no
security-poll-suffix=
enable-lua-records=$lua
lua-health-checks-interval=$interval
EOF
}

bench_hickory_config() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  bench_static_zone 127.0.1.1 127.0.1.2 >"$dir/tke-demo.cn.zone"
  cat >"$dir/named.toml" <<EOF
listen_addrs_ipv4 = ["127.0.0.1"]
listen_port = $port
directory = "$dir"
drop_privileges = false

[[zones]]
zone = "tke-demo.cn"
zone_type = "Primary"
stores = { type = "file", zone_path = "tke-demo.cn.zone" }
EOF
}

# gslb: bench/bench.toml with its ports and probe swapped. $1 file, $2 DNS port, $3 admin
# port, $4 $5 VIPs, $6 HTTP port, $7 extra probe settings (", interval = ..." or "").
bench_gslb_config() {
  local file=$1 port=$2 admin=$3 a1=$4 a2=$5 hport=$6 extra=${7:-}
  sed -e "s/127\.0\.0\.1:25353/127.0.0.1:$port/" \
    -e "s/127\.0\.0\.1:29153/127.0.0.1:$admin/" \
    -e "s/vips = \[\"127\.0\.1\.1\"\]/vips = [\"$a1\"]/" \
    -e "s/vips = \[\"127\.0\.1\.2\"\]/vips = [\"$a2\"]/" \
    -e "s/^probe = .*/probe = { kind = \"http\", port = $hport, path = \"\/\"$extra }/" \
    bench/bench.toml >"$file"
  grep -q "127.0.0.1:$port" "$file" && grep -q "\"$a2\"" "$file" && grep -q 'kind = "http"' "$file" ||
    bench_die "bench/bench.toml changed shape; bench_gslb_config in bench/lib.sh needs updating"
}

bench_versions() {
  echo "gdnsd $({ gdnsd 2>&1 || true; } | sed -n 's/^gdnsd version //p' | head -1)"
  echo "knot $(knotd -V 2>&1 | sed -n 's/.*version //p' | head -1)"
  echo "nsd $(nsd -v 2>&1 | sed -n 's/^NSD version //p' | head -1)"
  echo "pdns $(dpkg-query -W -f='${Version}' pdns-server 2>/dev/null)"
  echo "dnsperf $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null)"
  [ -x "$HICKORY_BIN" ] && echo "hickory-dns $("$HICKORY_BIN" --version 2>/dev/null | awk '{print $NF}')"
  return 0
}

# Ends a gslb run under callgrind whose profile is already dumped (callgrind_control -d):
# under valgrind gslb can hang in its shutdown (natively it stops in about a second), so
# it gets 20 s after SIGTERM, then it and its children are killed.
bench_callgrind_stop() {
  local pid=$1 deadline p
  kill "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 20))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  for p in $(bench_tree "$pid"); do kill -9 "$p" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

# The top $2 functions of callgrind profile $1, exclusive (self) then inclusive.
bench_callgrind_report() {
  local file=$1 top=$2
  echo
  echo "== top $top functions, exclusive (self) instructions"
  callgrind_annotate --threshold=100 "$file" 2>/dev/null |
    awk '/^-+$/ {n++} n >= 3' | grep -v '^-' | sed '/^$/d' | head -"$top" || true
  echo
  echo "== top $top functions, inclusive"
  callgrind_annotate --inclusive=yes --threshold=100 "$file" 2>/dev/null |
    awk '/^-+$/ {n++} n >= 3' | grep -v '^-' | sed '/^$/d' | head -"$top" || true
  echo
  echo "kept: $file (callgrind_annotate --inclusive=yes --tree=caller $file)"
}
