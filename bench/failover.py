#!/usr/bin/env python3
"""Failover timing driver for bench/failover.sh (run by it, not by hand).

It hosts the stand-in HTTP ingresses itself (one per VIP, each switchable between
serving, refusing connections, blackholing and flapping), then, for every configured
server at once, each on its own pair of VIPs:

  for each fault kind (refused, blackhole), TRIALS times:
    wait a random phase in [0, the server's probe interval), inject the fault on the
    primary VIP's stand-in, poll the server's A answer every 50 ms until the primary VIP
    is no longer in it (fault -> answer changed); wait another random phase, restore the
    stand-in, poll until the primary VIP is back (recovery -> answer back).
  then a flapping window: 20% of the primary stand-in's requests fail (connection reset
  without an answer) for FLAP_SECONDS; count answer changes (and gslb's
  gslb_health_transitions_total) in that window.

Faults:
  refused   the stand-in closes its listening socket and resets every open connection:
            what a killed process leaves (connect() gets ECONNREFUSED).
  blackhole the stand-in keeps accepting connections but never answers a request.
  http5xx   the stand-in answers every request with 503 Service Unavailable.
  slow      the stand-in answers 200, but only after SLOW_DELAY seconds (default 1.0,
            just over gslb's default 800 ms probe timeout; environment variable).

Polling is a plain DNS query over UDP from this process (equivalent to
`dig +short tke-demo.cn A`, checked against dig at start), because starting 20 dig
processes a second per server would load the 2-CPU machine far more than the servers.

Input: a JSON spec file (argv[1]); output: markdown tables on stdout, raw trials as JSON
next to the spec. Everything is bounded in time.
"""

import asyncio
import json
import math
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request

SLOW_DELAY = float(os.environ.get("SLOW_DELAY", "1.0"))
POLL = 0.05


# ----------------------------------------------------------------------------- DNS poll

def dns_query(qname, qid):
    header = struct.pack(">HHHHHH", qid, 0x0000, 1, 0, 0, 0)  # RD off: authoritative
    q = b"".join(bytes([len(p)]) + p.encode() for p in qname.split(".")) + b"\x00"
    return header + q + struct.pack(">HH", 1, 1)


def skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += n + 1


def dns_a_records(msg, qid):
    if len(msg) < 12:
        return None
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        return None
    off = 12
    for _ in range(qd):
        off = skip_name(msg, off) + 4
    out = set()
    for _ in range(an):
        off = skip_name(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            out.add(socket.inet_ntoa(msg[off:off + 4]))
        off += rdlen
    return frozenset(out)


class Poller:
    """Asks one server for tke-demo.cn A; None when no answer within the poll period."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(("127.0.0.1", port))

    async def ask(self, timeout=POLL * 0.9):
        loop = asyncio.get_running_loop()
        qid = random.randrange(1, 65535)
        # Drop late answers of earlier queries.
        while True:
            try:
                self.sock.recv(4096)
            except BlockingIOError:
                break
        await loop.sock_sendall(self.sock, dns_query("tke-demo.cn", qid))
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                msg = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), left)
            except asyncio.TimeoutError:
                return None
            ans = dns_a_records(msg, qid)
            if ans is not None:
                return ans


# ----------------------------------------------------------------------- stand-in ingress

class StandIn:
    """An HTTP ingress on (ip, port) whose behaviour can be switched at run time."""

    def __init__(self, ip, port):
        self.ip, self.port = ip, port
        self.mode = "serve"
        self.server = None
        self.writers = set()
        self.hung = set()
        self.requests = 0
        self.failed = 0
        self.flap_rate = 0.0

    async def start(self):
        self.server = await asyncio.start_server(
            self.handle, self.ip, self.port, reuse_address=True, backlog=256)

    async def handle(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                self.requests += 1
                if self.mode == "blackhole":
                    # Never answer: hold the connection until the client gives up or the
                    # stand-in is restored (which resets it).
                    self.hung.add(writer)
                    while await reader.read(65536):
                        pass
                    return
                if self.mode == "http5xx":
                    body = b"unavailable\n"
                    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    await writer.drain()
                    continue
                if self.mode == "slow":
                    await asyncio.sleep(SLOW_DELAY)
                if self.mode == "flap" and random.random() < self.flap_rate:
                    self.failed += 1
                    writer.transport.abort()  # a reset, no answer
                    return
                body = b"ok\n"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self.writers.discard(writer)
            self.hung.discard(writer)
            try:
                writer.close()
            except Exception:
                pass

    async def refuse(self):
        self.mode = "refused"
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()

    async def blackhole(self):
        self.mode = "blackhole"
        # Requests already read wait; connections being read hang at their next request.

    async def http5xx(self):
        self.mode = "http5xx"

    async def slow(self):
        self.mode = "slow"

    async def flap(self, rate):
        self.flap_rate = rate
        self.mode = "flap"

    async def restore(self):
        if self.mode == "refused":
            await self.start()
        for w in list(self.hung):
            w.transport.abort()
        self.hung.clear()
        self.mode = "serve"


# --------------------------------------------------------------------------------- trials

def now():
    return time.monotonic()


async def poll_until(poller, pred, limit):
    """Polls every 50 ms until pred(answer); returns (seconds, answer) or (None, last)."""
    start = now()
    last = None
    while True:
        t = now()
        ans = await poller.ask()
        if ans is not None:
            last = ans
            if pred(ans):
                return now() - start, ans
        if now() - start > limit:
            return None, last
        await asyncio.sleep(max(0.0, POLL - (now() - t)))


def metric(url, name):
    """Sum of a Prometheus counter over its label sets, or None."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except Exception:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def run_server(cfg, standins, trials, kinds, log):
    name = cfg["name"]
    p, s = cfg["primary"], cfg["secondary"]
    poller = Poller(cfg["port"])
    primary = standins[p]
    healthy = lambda a: p in a
    failed = lambda a: p not in a and len(a) > 0
    results = {k: [] for k in kinds}
    n_trials = cfg.get("trials", trials)
    for kind in kinds:
        for i in range(n_trials):
            # Steady state first (bounded).
            d, ans = await poll_until(poller, healthy, cfg["back_limit"])
            if d is None:
                log(f"{name}: not healthy before trial {kind} {i + 1}: {sorted(ans or [])}; stopping its trials")
                return results
            await asyncio.sleep(random.uniform(0, cfg["interval"]))
            await {"refused": primary.refuse, "blackhole": primary.blackhole,
                   "http5xx": primary.http5xx, "slow": primary.slow}[kind]()
            d_fault, ans_f = await poll_until(poller, failed, cfg["fault_limit"])
            await asyncio.sleep(random.uniform(0, cfg["interval"]))
            await primary.restore()
            d_back, ans_b = await poll_until(poller, healthy, cfg["back_limit"])
            results[kind].append({"fault": d_fault, "back": d_back})
            log(f"{name} {kind} {i + 1}/{n_trials}: fault->changed "
                f"{'>%ds' % cfg['fault_limit'] if d_fault is None else '%.2fs' % d_fault} "
                f"({' '.join(sorted(ans_f or []))}), recovery->back "
                f"{'>%ds' % cfg['back_limit'] if d_back is None else '%.2fs' % d_back}")
    return results


async def flap_window(cfg, standins, seconds, rate):
    poller = Poller(cfg["port"])
    p = cfg["primary"]
    st = standins[p]
    d, _ = await poll_until(poller, lambda a: p in a, cfg["back_limit"])
    if d is None:
        return {"skipped": "not healthy before the window"}
    url = cfg.get("metrics")
    m0 = metric(url, "gslb_health_transitions_total") if url else None
    req0, fail0 = st.requests, st.failed
    await st.flap(rate)
    changes, last, t_end = 0, None, now() + seconds
    down_polls = polls = 0
    while now() < t_end:
        t = now()
        ans = await poller.ask()
        if ans is not None:
            up = p in ans
            polls += 1
            down_polls += 0 if up else 1
            if last is not None and up != last:
                changes += 1
            last = up
        await asyncio.sleep(max(0.0, POLL - (now() - t)))
    await st.restore()
    m1 = metric(url, "gslb_health_transitions_total") if url else None
    return {
        "answer_changes": changes,
        "share_of_polls_without_primary": down_polls / polls if polls else None,
        "probes": st.requests - req0,
        "probes_failed": st.failed - fail0,
        "gslb_transitions": None if m0 is None or m1 is None else int(m1 - m0),
    }


def pct(values, q):
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def fmt(values, limit):
    ok = [x for x in values if x is not None]
    missing = len(values) - len(ok)
    if not ok:
        return f"no change within {limit} s ({missing} trials)", ""
    s = (f"median {statistics.median(ok):.2f} s, p95 {pct(ok, 0.95):.2f} s "
         f"(min {min(ok):.2f}, max {max(ok):.2f})")
    if missing:
        s += f"; {missing} of {len(values)} trials: no change within {limit} s"
    return s, ""


async def main():
    spec = json.load(open(sys.argv[1]))
    trials = spec["trials"]
    kinds = spec["kinds"]
    logf = open(spec["log"], "a")

    def log(msg):
        line = time.strftime("%H:%M:%S ") + msg
        print(line, file=sys.stderr, flush=True)
        print(line, file=logf, flush=True)

    standins = {}
    for cfg in spec["servers"]:
        for ip in (cfg["primary"], cfg["secondary"]):
            standins[ip] = StandIn(ip, spec["http_port"])
    for st in standins.values():
        await st.start()
    open(spec["ready_file"], "w").close()
    log(f"stand-ins up on {len(standins)} addresses; waiting for the servers")
    deadline = now() + spec["start_limit"]
    while not os.path.exists(spec["go_file"]):
        if now() > deadline:
            log("servers not started in time")
            return 1
        await asyncio.sleep(0.1)

    # Warm-up: every server answers the primary, stable for two of its intervals.
    async def warm(cfg):
        poller = Poller(cfg["port"])
        p = cfg["primary"]
        stable_since, t_end = None, now() + spec["start_limit"]
        while now() < t_end:
            ans = await poller.ask()
            if ans is not None and p in ans:
                stable_since = stable_since or now()
                if now() - stable_since >= max(2 * cfg["interval"], 2):
                    dig = subprocess.run(
                        ["dig", "@127.0.0.1", "-p", str(cfg["port"]), "tke-demo.cn", "A",
                         "+short", "+time=1", "+tries=1"], capture_output=True, text=True).stdout
                    got = frozenset(x for x in dig.split() if x[0].isdigit())
                    log(f"{cfg['name']}: warm, answer {' '.join(sorted(ans))} (dig: {' '.join(sorted(got))})")
                    return got == ans
            else:
                stable_since = None
            await asyncio.sleep(POLL)
        log(f"{cfg['name']}: never answered {p} steadily")
        return False

    warm_ok = await asyncio.gather(*(warm(c) for c in spec["servers"]))
    servers = [c for c, ok in zip(spec["servers"], warm_ok) if ok]
    skipped = [c["name"] for c, ok in zip(spec["servers"], warm_ok) if not ok]

    t0 = time.time()
    results = await asyncio.gather(*(run_server(c, standins, trials, kinds, log) for c in servers))
    log(f"trials done in {time.time() - t0:.0f} s")
    flaps = []
    if spec["flap_seconds"] > 0:
        log(f"flapping window: {spec['flap_seconds']} s, {int(spec['flap_rate'] * 100)}% of requests fail")
        flaps = await asyncio.gather(*(flap_window(c, standins, spec["flap_seconds"], spec["flap_rate"])
                                       for c in servers))

    json.dump({"servers": [c["name"] for c in servers], "results": results, "flaps": flaps},
              open(spec["raw"], "w"), indent=1)

    print()
    print("| server and settings | fault | trials | fault → answer changed | recovery → answer back |")
    print("|---|---|---|---|---|")
    for c, r in zip(servers, results):
        for kind in kinds:
            rows = r.get(kind, [])
            if not rows:
                continue
            f, _ = fmt([x["fault"] for x in rows], c["fault_limit"])
            b, _ = fmt([x["back"] for x in rows], c["back_limit"])
            print(f"| {c['label']} | {kind} | {len(rows)} | {f} | {b} |")
    for name in skipped:
        print(f"| {name} | | | did not answer steadily at start: not measured | |")
    if flaps:
        print()
        print(f"Flapping target: {int(spec['flap_rate'] * 100)}% of the primary ingress's requests fail "
              f"(reset, no answer) for {spec['flap_seconds']} s.")
        print()
        print("| server and settings | probes seen (failed) | answer changes | share of polls without the primary | gslb state changes |")
        print("|---|---|---|---|---|")
        for c, f in zip(servers, flaps):
            if "skipped" in f:
                print(f"| {c['label']} | {f['skipped']} | | | |")
                continue
            share = f["share_of_polls_without_primary"]
            print(f"| {c['label']} | {f['probes']} ({f['probes_failed']}) | {f['answer_changes']} | "
                  f"{'' if share is None else '%.1f%%' % (100 * share)} | "
                  f"{'' if f['gslb_transitions'] is None else f['gslb_transitions']} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
