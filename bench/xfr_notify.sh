#!/usr/bin/env bash
# Hidden primary: how long a failover takes to reach clients of a real secondary.
#
#   bench/xfr_notify.sh                              # TRIALS=7, release build
#   GSLB_BIN=target/debug/gslb TRIALS=11 bench/xfr_notify.sh
#
# gslb (DNS 127.0.0.1:25591, admin 127.0.0.1:29591) serves tke-demo.cn, with two stand-in
# ingresses (`python3 -m http.server` on 127.0.3.1 and 127.0.3.2, port 18183) under the
# failover policy, `allow_transfer = ["127.0.0.0/8"]` and `notify` to a Knot DNS
# secondary (knotd, 127.0.3.53:25592, in-memory zone, SOA refresh an hour away, so NOTIFY
# is the only way it learns of a change). Per trial: a `fail` override on the answered
# cluster through the admin API (the failover), then a poller sends an A query to gslb
# and to knot every 2 ms (UDP, in one process) until each answers the other cluster; the
# next trial lifts the override (the return). Reported per direction: gslb's switch time
# (override to new answer), knot's (override to knot serving it), and the difference,
# which is NOTIFY → SOA query → IXFR (answered as a full transfer) → served. Median and
# maximum over the trials. Every wait is bounded; everything started is stopped on exit.
#
# Needs: knot (knotd), dig, curl, python3 (installs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

TRIALS="${TRIALS:-7}"
GSLB_BIN="${GSLB_BIN:-}"
DNS=25591
ADMIN=29591
KNOT_IP=127.0.3.53
KNOT_PORT=25592
HTTP_PORT=18183
PRIMARY=127.0.3.1
SECONDARY=127.0.3.2

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_need knotd knot
bench_need dig bind9-dnsutils
bench_need curl curl
bench_need python3 python3

work="$(mktemp -d /tmp/gslb-xfr-notify.XXXXXX)"
bench_init
for port in "$DNS" "$ADMIN" "$KNOT_PORT"; do bench_port_free "$port"; done
for ip in "$PRIMARY" "$SECONDARY"; do
  bench_accepts "$ip" "$HTTP_PORT" && bench_die "$ip:$HTTP_PORT is already taken"
done
if [ -z "$GSLB_BIN" ]; then
  bench_build_gslb
  GSLB_BIN=target/release/gslb
fi
gslb_rev=$(git describe --always --dirty 2>/dev/null || echo '?')

mkdir -p "$work/www" "$work/knot"
for ip in "$PRIMARY" "$SECONDARY"; do
  bench_spawn "$work/http-$ip.log" python3 -m http.server --bind "$ip" --directory "$work/www" "$HTTP_PORT"
done

cat >"$work/gslb.toml" <<EOF
[server]
dns_listen = ["127.0.0.1:$DNS"]
admin_listen = "127.0.0.1:$ADMIN"

[[zone]]
name = "tke-demo.cn"
nameservers = ["ns1.tke-demo.cn"]
hostmaster = "hostmaster.tke-demo.cn"
allow_transfer = ["127.0.0.0/8"]
notify = ["$KNOT_IP:$KNOT_PORT"]
records = [{ name = "ns1", type = "A", value = "$KNOT_IP" }]

[[cluster]]
name = "guangzhou-01"
vips = ["$PRIMARY"]
priority = 1

[[cluster]]
name = "guangzhou-02"
vips = ["$SECONDARY"]
priority = 2

[[app]]
name = "tke-demo.cn"
ttl = 5
probe = { kind = "http", port = $HTTP_PORT, interval = "1s", timeout = "800ms" }
EOF
bench_log "gslb $gslb_rev ($GSLB_BIN)"
bench_spawn "$work/gslb.log" env RUST_LOG=info "$GSLB_BIN" serve --config "$work/gslb.toml"

cat >"$work/knot/knot.conf" <<EOF
server:
    rundir: "$work/knot"
    listen: $KNOT_IP@$KNOT_PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "$work/knot"
remote:
  - id: gslb
    address: 127.0.0.1@$DNS
acl:
  - id: notify-from-gslb
    address: 127.0.0.0/8
    action: notify
template:
  - id: default
    storage: "$work/knot"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: tke-demo.cn
    master: gslb
    acl: notify-from-gslb
EOF
bench_log "$(knotd --version)"
bench_spawn "$work/knot.log" knotd -c "$work/knot/knot.conf"

answer() { dig @"$1" -p "$2" tke-demo.cn A +short +time=1 +tries=1 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//'; }
for _ in $(seq 1 300); do
  [ "$(answer 127.0.0.1 "$DNS")" = "$PRIMARY" ] && [ "$(answer "$KNOT_IP" "$KNOT_PORT")" = "$PRIMARY" ] && break
  sleep 0.1
done
[ "$(answer "$KNOT_IP" "$KNOT_PORT")" = "$PRIMARY" ] || bench_die "knot does not serve $PRIMARY; see $work/knot.log (KEEP_WORK=1 keeps it)"

python3 - "$TRIALS" "$DNS" "$KNOT_IP" "$KNOT_PORT" "$ADMIN" "$PRIMARY" "$SECONDARY" <<'EOF'
import json, random, socket, statistics, struct, sys, time, urllib.request

trials, dns, knot_ip, knot_port, admin, primary, secondary = sys.argv[1:]
trials, dns, knot_port = int(trials), int(dns), int(knot_port)
servers = {"gslb": ("127.0.0.1", dns), "knot": (knot_ip, knot_port)}
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.05)
qname = b"".join(bytes([len(l)]) + l for l in b"tke-demo.cn".split(b".")) + b"\0"

def answers(server):
    """The set of IPv4 addresses in the answer, or None on a timeout."""
    qid = random.randrange(65536)
    sock.sendto(struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + qname + b"\0\1\0\1", server)
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            return None
        if struct.unpack(">H", data[:2])[0] != qid:
            continue
        count = struct.unpack(">H", data[6:8])[0]
        at = 12 + len(qname) + 4
        out = set()
        for _ in range(count):
            while data[at] not in (0,) and data[at] < 0xC0:
                at += 1 + data[at]
            at += 2 if data[at] >= 0xC0 else 1
            rtype, _, _, rdlen = struct.unpack(">HHIH", data[at:at + 10])
            at += 10
            if rtype == 1:
                out.add(socket.inet_ntoa(data[at:at + 4]))
            at += rdlen
        return out
    return None

def admin_call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", method=method,
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()

results = {"failover": [], "return": []}
for trial in range(trials):
    direction = "failover" if trial % 2 == 0 else "return"
    want = {secondary} if direction == "failover" else {primary}
    time.sleep(1.0 + random.random())  # let the previous change settle, at a random phase
    start = time.monotonic()
    if direction == "failover":
        admin_call("POST", "/api/v1/overrides", {"cluster": "guangzhou-01", "kind": "fail", "reason": "bench xfr_notify"})
    else:
        admin_call("DELETE", "/api/v1/overrides?cluster=guangzhou-01")
    seen = {}
    while len(seen) < 2 and time.monotonic() - start < 30:
        for name, server in servers.items():
            if name not in seen and answers(server) == want:
                seen[name] = time.monotonic() - start
        time.sleep(0.002)
    if len(seen) < 2:
        sys.exit(f"trial {trial}: no switch within 30 s: {seen}")
    results[direction].append((seen["gslb"], seen["knot"]))
    print(f"trial {trial + 1} {direction:8}: gslb {seen['gslb'] * 1000:7.1f} ms, knot {seen['knot'] * 1000:7.1f} ms, "
          f"knot after gslb {(seen['knot'] - seen['gslb']) * 1000:7.1f} ms", flush=True)

print()
print(f"{'':10} {'n':>3} {'gslb median':>12} {'knot median':>12} {'knot-gslb median':>17} {'knot-gslb max':>14}")
for direction, rows in results.items():
    if not rows:
        continue
    g = [r[0] * 1000 for r in rows]
    k = [r[1] * 1000 for r in rows]
    d = [(r[1] - r[0]) * 1000 for r in rows]
    print(f"{direction:10} {len(rows):>3} {statistics.median(g):>9.1f} ms {statistics.median(k):>9.1f} ms "
          f"{statistics.median(d):>14.1f} ms {max(d):>11.1f} ms")
EOF
echo
grep -c 'notify, incoming' "$work/knot.log" | sed 's/^/NOTIFYs received by knot: /'
grep -c 'zone updated' "$work/knot.log" | sed 's/^/zone updates by knot: /'
