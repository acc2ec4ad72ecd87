#!/usr/bin/env bash
# What multi-vantage quorum adds to failover time: one gslb alone and three gslb instances
# with [quorum] (peers of each other through their admin APIs, or with TRANSPORT=hub
# through a stand-in hub API, bench/hub_standin.py), all probing the same stand-in
# ingresses, in the same run; a fault (the primary refuses connections) and its
# recovery, TRIALS times.
# See bench/quorum_failover.py for the procedure.
#
#   bench/quorum_failover.sh                      # TRIALS=20 (about 2 minutes)
#   TRIALS=30 POLL_INTERVAL=200ms FRESH_WITHIN=2s bench/quorum_failover.sh
#   TRANSPORT=hub bench/quorum_failover.sh        # views through the hub's API
#   GSLB=target/debug/gslb bench/quorum_failover.sh   # skip the release build
#
# Every address is on 127.0.0.0/8 (stand-ins on 127.0.5.1 and 127.0.5.2, gslb and the
# stand-in hub on 127.0.0.1 with free ports); everything started is stopped on exit.
#
# Needs: python3 (installs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null || {
  echo "bench: python3 is missing; install it with: apt-get install -y python3" >&2
  exit 1
}
if [ -z "${GSLB:-}" ]; then
  echo "== cargo build --release" >&2
  cargo build --release --quiet
  GSLB=target/release/gslb
fi
work="$(mktemp -d /tmp/gslb-quorum-failover.XXXXXX)"
trap '[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$work"' EXIT
echo "gslb $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%F)" >&2
python3 bench/quorum_failover.py "$GSLB" "$work"
