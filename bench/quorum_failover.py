#!/usr/bin/env python3
"""Quorum failover driver for bench/quorum_failover.sh (run by it, not by hand).

What multi-vantage quorum adds to failover time. It hosts two stand-in HTTP ingresses
(primary 127.0.5.1, secondary 127.0.5.2, from bench/failover.py) that every server
probes, and runs, at once:

  single   one gslb without [quorum];
  q1..q3   three gslb instances with [quorum] (required = majority, fresh_within from
           the knobs), exchanging views by TRANSPORT: `admin` (default), peers of each
           other through their admin APIs (poll_interval from the knobs); or `hub`,
           through a stand-in hub API (bench/hub_standin.py, on 127.0.0.1) that is also
           their Clusternet [[source]] (with no clusters: the static ones are served),
           each writing its view object on change and every fresh_within/3 and watching
           the others'.

All use gslb's probe defaults (http, interval 1s, timeout 800ms, rise 2, fall 3, recheck
200ms). TRIALS times: wait a random phase in [0, 1 s), make the primary refuse
connections, poll every server's A answer every 50 ms until it is the secondary alone
(fault -> answer changed); wait another random phase, restore the primary, poll until
each answers the primary alone (recovery -> answer back); let it settle 2 s.

Output: a markdown table on stdout (median, p95, min, max per server; the quorum's "all
three" is the last of the three instances in each trial), and the difference and ratio
of medians, quorum instance against the single instance of the same run.

argv: GSLB_BINARY WORK_DIR. Knobs (environment): TRIALS (default 20), TRANSPORT (admin or
hub, default admin), POLL_INTERVAL (default 500ms, admin only), FRESH_WITHIN (default 3s).
"""

import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from failover import Poller, StandIn, POLL  # noqa: E402
from hub_standin import HubStandIn  # noqa: E402

TRIALS = int(os.environ.get("TRIALS", "20"))
POLL_INTERVAL = os.environ.get("POLL_INTERVAL", "500ms")
FRESH_WITHIN = os.environ.get("FRESH_WITHIN", "3s")
TRANSPORT = os.environ.get("TRANSPORT", "admin")
PRIMARY, SECONDARY = "127.0.5.1", "127.0.5.2"
LIMIT = 30.0


def free_port():
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def config(dns, admin, http_port, quorum):
    return f"""
[server]
dns_listen = ["127.0.0.1:{dns}"]
admin_listen = "127.0.0.1:{admin}"
{quorum}
[[zone]]
name = "tke-demo.cn"
nameservers = ["ns1.tke-demo.cn"]
hostmaster = "hostmaster.tke-demo.cn"
records = [{{ name = "ns1", type = "A", value = "127.0.0.1" }}]

[[cluster]]
name = "guangzhou-01"
vips = ["{PRIMARY}"]
priority = 1

[[cluster]]
name = "guangzhou-02"
vips = ["{SECONDARY}"]
priority = 2

[[app]]
name = "tke-demo.cn"
probe = {{ kind = "http", port = {http_port}, path = "/" }}
"""


def metric_text(admin):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=1) as r:
            return r.read().decode()
    except OSError:
        return ""


async def poll_until(poller, want, limit):
    """Seconds until the answer is exactly `want`, or None after `limit`."""
    start = time.monotonic()
    while True:
        t = time.monotonic()
        try:
            ans = await poller.ask()
        except OSError:  # not listening yet (ICMP port unreachable)
            ans = None
        if ans == want:
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            return None
        await asyncio.sleep(max(0.0, POLL - (time.monotonic() - t)))


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def row(name, values):
    ok = [v for v in values if v is not None]
    missed = len(values) - len(ok)
    if not ok:
        return f"| {name} | {len(values)} | no switch | | | |"
    extra = f" ({missed} missed)" if missed else ""
    return (f"| {name} | {len(values)}{extra} | {statistics.median(ok):.2f} s | "
            f"{pct(ok, 0.95):.2f} s | {min(ok):.2f} s | {max(ok):.2f} s |")


async def main():
    binary, work = sys.argv[1], sys.argv[2]
    http_port = free_port()
    primary, secondary = StandIn(PRIMARY, http_port), StandIn(SECONDARY, http_port)
    await primary.start()
    await secondary.start()
    names = ["single", "q1", "q2", "q3"]
    ports = {n: (free_port(), free_port()) for n in names}
    peers = ", ".join(f'"http://127.0.0.1:{ports[n][1]}"' for n in names[1:])
    if TRANSPORT not in ("admin", "hub"):
        sys.exit(f"bench: TRANSPORT must be admin or hub, not {TRANSPORT}")
    hub = None
    if TRANSPORT == "hub":
        hub = HubStandIn()
        await hub.start()
        hub.kubeconfig(os.path.join(work, "hub.kubeconfig"))
    procs = {}
    try:
        for n in names:
            if n == "single":
                quorum = ""
            elif TRANSPORT == "hub":
                quorum = (f'[[source]]\nname = "hub"\nkind = "clusternet"\n'
                          f'kubeconfig = "{os.path.join(work, "hub.kubeconfig")}"\n\n'
                          f'[quorum]\ninstance = "{n}"\nhub = "hub"\n'
                          f'fresh_within = "{FRESH_WITHIN}"\n')
            else:
                quorum = (f'[quorum]\ninstance = "{n}"\npeers = [{peers}]\n'
                          f'poll_interval = "{POLL_INTERVAL}"\nfresh_within = "{FRESH_WITHIN}"\n')
            path = os.path.join(work, f"{n}.toml")
            with open(path, "w") as f:
                f.write(config(ports[n][0], ports[n][1], http_port, quorum))
            log = open(os.path.join(work, f"{n}.log"), "w")
            procs[n] = subprocess.Popen([binary, "serve", "--config", path],
                                        stdout=subprocess.DEVNULL, stderr=log)
        pollers = {n: Poller(ports[n][0]) for n in names}
        want_primary, want_secondary = frozenset([PRIMARY]), frozenset([SECONDARY])
        for n in names:
            if await poll_until(pollers[n], want_primary, LIMIT) is None:
                sys.exit(f"bench: {n} never answered {PRIMARY}; see {work}/{n}.log")
        deadline = time.monotonic() + LIMIT
        while not all('gslb_quorum_views{fresh="true"} 3' in metric_text(ports[n][1])
                      for n in names[1:]):
            if time.monotonic() > deadline:
                sys.exit("bench: the quorum instances never saw three fresh views")
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        fail = {n: [] for n in names}
        back = {n: [] for n in names}
        for i in range(TRIALS):
            await asyncio.sleep(random.random())
            await primary.refuse()
            times = await asyncio.gather(
                *(poll_until(pollers[n], want_secondary, LIMIT) for n in names))
            for n, t in zip(names, times):
                fail[n].append(t)
            await asyncio.sleep(random.random())
            await primary.restore()
            times = await asyncio.gather(
                *(poll_until(pollers[n], want_primary, LIMIT) for n in names))
            for n, t in zip(names, times):
                back[n].append(t)
            print(f"trial {i + 1}/{TRIALS}: fault " +
                  " ".join(f"{n}={t:.2f}" if t is not None else f"{n}=-" for n, t in zip(names, fail_last(fail, names))) +
                  "; back " +
                  " ".join(f"{n}={t:.2f}" if t is not None else f"{n}=-" for n, t in zip(names, fail_last(back, names))),
                  file=sys.stderr)
            await asyncio.sleep(2)
    finally:
        for p in procs.values():
            p.terminate()
        if hub:
            hub.close()
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def last_of_three(d):
        return [None if any(d[n][i] is None for n in names[1:])
                else max(d[n][i] for n in names[1:]) for i in range(TRIALS)]

    how = ("views through a stand-in hub API, renewed every fresh_within/3" if TRANSPORT == "hub"
           else f"views through the admin APIs, poll_interval {POLL_INTERVAL}")
    print(f"{how}, fresh_within {FRESH_WITHIN}, required majority, "
          f"{TRIALS} trials, refused connections\n")
    for title, d in (("fault → answer changed", fail), ("recovery → answer back", back)):
        print(f"| {title} | trials | median | p95 | min | max |")
        print("|---|---|---|---|---|---|")
        print(row("single instance", d["single"]))
        for n in names[1:]:
            print(row(f"quorum, instance {n}", d[n]))
        print(row("quorum, the last of the three", last_of_three(d)))
        single = statistics.median([v for v in d["single"] if v is not None])
        quorum = statistics.median([v for n in names[1:] for v in d[n] if v is not None])
        print(f"\nmedian over the three quorum instances {quorum:.2f} s against "
              f"{single:.2f} s alone: {quorum - single:+.2f} s, ratio {quorum / single:.2f}\n")
    return 0


def fail_last(d, names):
    return [d[n][-1] for n in names]


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
