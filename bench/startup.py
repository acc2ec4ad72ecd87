#!/usr/bin/env python3
"""Start-up and reload timing driver for bench/startup.sh (run by it, not by hand).

Subcommands:

  standin IP PORT
      A stand-in ingress for `tcp` probes: accepts every connection and closes it at
      once. Runs until killed.

  start --config FILE --name NAME --want IPS [...]
      One start-up trial: exec `gslb serve --config FILE` from here (the clock starts
      just before the exec), query NAME A over UDP every 5 ms and GET /readyz every 5 ms
      until NAME answers exactly IPS and /readyz says 200; then SIGTERM gslb and wait
      for it to exit. Prints `dns_ms=... ready_ms=...`.

  reload --config FILE --small SMALL --big BIG --name NAME --want IPS [...]
      One reload trial: copy SMALL to FILE, start gslb on it and wait for its first
      correct answer (SMALL's first app) and /readyz; then replace FILE with BIG (an
      atomic rename), keep querying NAME (BIG's last app) every 5 ms, and run
      `curl -X POST .../api/v1/reload -w %{time_total}`. The clock starts just before
      curl is spawned. Prints `curl_s=... http=... dns_ms=... body=...`.

  table RESULTS
      Reads `figure<TAB>value_ms` lines and prints a markdown table (median, max, n).

Polling uses this process's own DNS client (a plain A query, RD off; equivalent to
`dig +norec NAME A`) because a dig process every 5 ms would cost more than what is
measured. Every wait is bounded (--limit, default 10 s); gslb is always stopped
(SIGTERM, then SIGKILL after 5 s) before a subcommand returns, on success, failure,
SIGINT or SIGTERM.
"""

import argparse
import http.client
import os
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

TICK = 0.005  # 5 ms between queries


# ----------------------------------------------------------------------------- DNS

def dns_query(qname, qid):
    header = struct.pack(">HHHHHH", qid, 0x0000, 1, 0, 0, 0)  # RD off: authoritative
    q = b"".join(bytes([len(p)]) + p.encode() for p in qname.rstrip(".").split(".")) + b"\x00"
    return header + q + struct.pack(">HH", 1, 1)


def skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += n + 1


def parse_answer(msg):
    """(id, rcode, set of A addresses) of a response, or None."""
    try:
        rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
        if not flags & 0x8000:
            return None
        off = 12
        for _ in range(qd):
            off = skip_name(msg, off) + 4
        addrs = set()
        for _ in range(an):
            off = skip_name(msg, off)
            rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
            off += 10
            if rtype == 1 and rdlen == 4:
                addrs.add(socket.inet_ntoa(msg[off:off + 4]))
            off += rdlen
        return rid, flags & 0x000F, addrs
    except (struct.error, IndexError):
        return None


class DnsPoller:
    """Sends `NAME A` every TICK; `wait(t0, deadline)` returns the seconds from t0 to the
    first response that answers exactly `want` (NOERROR). Also remembers the last
    response seen, for error messages."""

    def __init__(self, server, name, want):
        self.server = server
        self.name = name
        self.want = want
        self.last = "no response"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(server)
        self.sock.setblocking(False)
        self.ids = set()

    def close(self):
        self.sock.close()

    def _send(self):
        qid = random.randrange(65536)
        self.ids.add(qid)
        if len(self.ids) > 64:
            self.ids = {qid}
        try:
            self.sock.send(dns_query(self.name, qid))
        except (ConnectionRefusedError, BlockingIOError):
            pass  # not bound yet (an ICMP port unreachable from the previous send)

    def _drain(self):
        """The time of the first correct response waiting on the socket, or None."""
        while True:
            try:
                msg = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return None
            except ConnectionRefusedError:
                self.last = "port closed (not bound yet)"
                continue
            now = time.monotonic()
            parsed = parse_answer(msg)
            if parsed is None:
                self.last = "unparsable response"
                continue
            rid, rcode, addrs = parsed
            if rid not in self.ids:
                continue
            self.last = f"rcode {rcode}, A {' '.join(sorted(addrs)) or '(none)'}"
            if rcode == 0 and addrs == self.want:
                return now

    def wait(self, t0, deadline, alive=lambda: True):
        """Seconds from t0 to the first correct answer; None at the deadline or when
        alive() turns false."""
        next_send = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_send:
                self._send()
                next_send = max(next_send + TICK, now)
            got = self._drain()
            if got is not None:
                return got - t0
            if now >= deadline or not alive():
                return None
            wait = max(0.0, min(next_send, deadline) - time.monotonic())
            # Wake on a response or at the next send, whichever comes first.
            select.select([self.sock], [], [], wait)


def ready_poller(admin_host, admin_port, t0, deadline, out, alive):
    """GET /readyz every TICK until 200; stores the seconds from t0 in out['ready']."""
    out["ready_last"] = "no response"
    while time.monotonic() < deadline and alive():
        start = time.monotonic()
        conn = http.client.HTTPConnection(admin_host, admin_port, timeout=1)
        try:
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            resp.read()
            out["ready_last"] = f"HTTP {resp.status}"
            if resp.status == 200:
                out["ready"] = time.monotonic() - t0
                return
        except OSError as e:
            out["ready_last"] = type(e).__name__
        finally:
            conn.close()
        time.sleep(max(0.0, start + TICK - time.monotonic()))


# ----------------------------------------------------------------------------- gslb

class Gslb:
    def __init__(self, binary, config, log):
        self.binary = binary
        self.config = config
        self.log_path = log
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", self.config],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )
        return t0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Seconds from SIGTERM to exit (None if it had exited already)."""
        if self.proc is None:
            return None
        took = None
        if self.proc.poll() is None:
            t = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"startup.py: gslb (pid {self.proc.pid}) ignored SIGTERM for 5 s; killing it",
                      file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
            took = time.monotonic() - t
        self.log.close()
        self.proc = None
        return took

    def fail(self, what):
        status = "running" if self.alive() else f"exited with {self.proc.returncode}"
        raise SystemExit(f"startup.py: {what} (gslb {status}); log {self.log_path}:\n"
                         + tail(self.log_path))


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def startup(args, gslb, name, want):
    """Starts gslb and waits for NAME == want and /readyz 200: (dns_s, ready_s)."""
    dns = DnsPoller(addr(args.dns), name, want)
    admin_host, admin_port = addr(args.admin)
    try:
        t0 = gslb.start()
        deadline = t0 + args.limit
        ready = {}
        th = threading.Thread(target=ready_poller,
                              args=(admin_host, admin_port, t0, deadline, ready, gslb.alive))
        th.start()
        dns_s = dns.wait(t0, deadline, gslb.alive)
        th.join()
        if dns_s is None:
            gslb.fail(f"{name} A did not answer {' '.join(sorted(want))} within {args.limit} s "
                      f"of the start (last: {dns.last})")
        if "ready" not in ready:
            gslb.fail(f"/readyz not 200 within {args.limit} s of the start (last: {ready['ready_last']})")
        return dns_s, ready["ready"]
    finally:
        dns.close()


def cmd_start(args):
    gslb = Gslb(args.gslb, args.config, args.log)
    try:
        dns_s, ready_s = startup(args, gslb, args.name, set(args.want.split()))
    except BaseException:
        gslb.stop()
        raise
    stop_s = gslb.stop()
    print(f"dns_ms={dns_s * 1000:.1f} ready_ms={ready_s * 1000:.1f} stop_ms={stop_s * 1000:.1f}")


def cmd_reload(args):
    shutil.copyfile(args.small, args.config)
    gslb = Gslb(args.gslb, args.config, args.log)
    want = set(args.want.split())
    try:
        startup(args, gslb, args.small_name, want)
        tmp = args.config + ".next"
        shutil.copyfile(args.big, tmp)
        os.replace(tmp, args.config)
        dns = DnsPoller(addr(args.dns), args.name, want)
        body = args.log + ".reply"
        result = {}

        def run_curl():
            curl = subprocess.Popen(
                ["curl", "-sS", "--max-time", str(args.limit), "-o", body,
                 "-w", "%{http_code} %{time_total}", "-X", "POST",
                 f"http://{args.admin}/api/v1/reload"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = curl.communicate(timeout=args.limit + 1)
            except subprocess.TimeoutExpired:
                curl.kill()
                out, err = curl.communicate()
            result.update(exited=time.monotonic(), rc=curl.returncode, out=out, err=err)

        try:
            spawned = time.monotonic()
            th = threading.Thread(target=run_curl)
            th.start()
            # Absolute monotonic time of the first correct answer (t0 = 0).
            answered = dns.wait(0.0, spawned + args.limit, gslb.alive)
            th.join()
        finally:
            dns.close()
        parts = result["out"].split()
        if result["rc"] != 0 or len(parts) != 2:
            gslb.fail(f"curl failed ({result['rc']}): {result['err'].strip()} {result['out'].strip()}")
        code, total = parts
        reply = open(body, errors="replace").read().strip()
        if code != "200":
            gslb.fail(f"POST /api/v1/reload answered {code}: {reply}")
        if answered is None:
            gslb.fail(f"{args.name} A did not answer {args.want} within {args.limit} s "
                      f"of the reload (last: {dns.last})")
        # curl spends ~10 ms starting before it sends anything: the request went out at
        # about its exit minus its time_total, not at the spawn.
        sent = result["exited"] - float(total)
        dns_s = answered - sent
        spawn_s = answered - spawned
    finally:
        gslb.stop()
    print(f"curl_s={total} http={code} dns_ms={dns_s * 1000:.1f} "
          f"from_spawn_ms={spawn_s * 1000:.1f} body={reply}")


def cmd_standin(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.ip, args.port))
    s.listen(4096)
    while True:
        c, _ = s.accept()
        c.close()


def cmd_table(args):
    figures = {}
    order = []
    with open(args.results) as f:
        for line in f:
            fig, value = line.rstrip("\n").split("\t")
            if fig not in figures:
                figures[fig] = []
                order.append(fig)
            figures[fig].append(float(value))
    print("| figure | median | max | trials |")
    print("|---|---:|---:|---:|")
    for fig in order:
        v = figures[fig]
        print(f"| {fig} | {statistics.median(v):.1f} ms | {max(v):.1f} ms | {len(v)} |")


def main():
    # SIGTERM (from the script's cleanup) unwinds through the finally blocks that stop gslb.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--gslb", default="target/release/gslb")
        sp.add_argument("--config", required=True)
        sp.add_argument("--dns", required=True, help="host:port")
        sp.add_argument("--admin", required=True, help="host:port")
        sp.add_argument("--name", required=True)
        sp.add_argument("--want", required=True, help="space-separated A records")
        sp.add_argument("--log", required=True)
        sp.add_argument("--limit", type=float, default=10.0)

    sp = sub.add_parser("start")
    common(sp)
    sp.set_defaults(func=cmd_start)
    sp = sub.add_parser("reload")
    common(sp)
    sp.add_argument("--small", required=True)
    sp.add_argument("--small-name", required=True)
    sp.add_argument("--big", required=True)
    sp.set_defaults(func=cmd_reload)
    sp = sub.add_parser("standin")
    sp.add_argument("ip")
    sp.add_argument("port", type=int)
    sp.set_defaults(func=cmd_standin)
    sp = sub.add_parser("table")
    sp.add_argument("results")
    sp.set_defaults(func=cmd_table)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
