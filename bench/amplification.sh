#!/usr/bin/env bash
# Largest response-to-query size ratio gslb produces over UDP for the demo zone, for
# every query type a reflector would try, with and without EDNS (4096-byte buffer).
#
#   bash bench/amplification.sh        # builds gslb, runs the demo config, prints a table
#
# Query size is computed from the wire format: 12 (header) + QNAME + 4, plus 11 for an
# OPT record; the response size is what dig reports (MSG SIZE rcvd).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dig >/dev/null || { echo "needs dig: apt-get install -y bind9-dnsutils" >&2; exit 1; }
cargo build --release --quiet
dir=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
sed -e 's/127.0.0.1:15353/127.0.0.1:25354/' -e 's/127.0.0.1:19153/127.0.0.1:29154/' config/demo.toml > "$dir/gslb.toml"
RUST_LOG=warn target/release/gslb serve --config "$dir/gslb.toml" 2>/dev/null &
pid=$!
for _ in $(seq 50); do dig @127.0.0.1 -p 25354 tke-demo.cn SOA +short >/dev/null 2>&1 && break; sleep 0.1; done

qname_len() { # wire length of a name: each label + its length byte, plus the root
  local n=$1 len=1 IFS=.
  for l in $n; do [ -n "$l" ] && len=$((len + ${#l} + 1)); done
  echo "$len"
}

printf '| query | EDNS | query bytes | response bytes | ratio |\n|---|---|---|---|---|\n'
worst=0
for name in tke-demo.cn www.tke-demo.cn info.tke-demo.cn nothing.tke-demo.cn example.com; do
  for type in A AAAA ANY NS SOA TXT MX CNAME DNSKEY; do
    for edns in no yes; do
      opts=(+norec +ignore +tries=1 +time=2)
      qbytes=$((12 + $(qname_len "$name") + 4))
      if [ "$edns" = yes ]; then opts+=(+bufsize=4096); qbytes=$((qbytes + 11)); else opts+=(+noedns); fi
      rbytes=$(dig @127.0.0.1 -p 25354 "$name" "$type" "${opts[@]}" | sed -n 's/.*MSG SIZE  rcvd: \([0-9]*\).*/\1/p')
      [ -n "$rbytes" ] || continue
      ratio=$(awk -v r="$rbytes" -v q="$qbytes" 'BEGIN { printf "%.2f", r / q }')
      if awk -v a="$ratio" -v b="$worst" 'BEGIN { exit !(a > b) }'; then worst=$ratio; worst_q="$name $type (EDNS $edns)"; fi
      printf '| %s %s | %s | %d | %d | %s |\n' "$name" "$type" "$edns" "$qbytes" "$rbytes" "$ratio"
    done
  done
done
echo
echo "largest ratio: $worst for $worst_q"
