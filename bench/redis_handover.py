#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark of the redis backend on loopback; prints figures, asserts nothing.

  python3 bench/redis_handover.py [--handovers 300] [--waiters 100] [--idle-seconds 30]

Starts its own redis-server on a free port (no persistence) and measures
  1. acquire -> payload start: from the moment Redis received the successful acquire script
     (MONITOR timestamp) to the payload's first record, uncontended;
  2. graceful handover: one payload's end -> the next payload's start, with contenders always
     waiting, p50/p99 over --handovers handovers;
  3. Redis commands per second per idle waiter, with --waiters waiters behind one holder
     (INFO commandstats deltas over --idle-seconds; the holder's own renewals taken off).
Uses build/src/lockunit and build/tests/lockunit-test-payload (or $LOCKUNIT_BIN,
$LOCKUNIT_TEST_PAYLOAD)."""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "helpers"))
import lockunit_test  # noqa: E402
from lockunit_test import payload, read_runs  # noqa: E402
from redis_fixture import Server  # noqa: E402

LOCKUNIT = os.environ.get("LOCKUNIT_BIN", os.path.join(HERE, "..", "build", "src", "lockunit"))
lockunit_test.PAYLOAD = os.environ.get("LOCKUNIT_TEST_PAYLOAD",
                                       os.path.join(HERE, "..", "build", "tests", "lockunit-test-payload"))


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def lockunit(url, name, cmd, *extra, **kw):
    return subprocess.Popen([LOCKUNIT, "--backend=" + url, "--name=" + name, "--scope=no"] +
                            list(extra) + ["--"] + cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=kw.get("stderr", subprocess.DEVNULL))


class Monitor:
    """MONITOR on its own connection: server timestamps of successful acquires are taken from
    the EVALSHA lines that name a lock key."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.lines = []
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            *done, buf = buf.split(b"\r\n")
            self.lines += [l.decode(errors="replace") for l in done]

    def scripts(self, key, numkeys):
        """Server times (s) of script calls whose first key is `key`: numkeys "2" is an
        acquire, "1" an extend/release/inspect."""
        out = []
        for l in self.lines:
            if '"EVALSHA"' in l or '"EVAL"' in l:
                fields = l.split('"')[1::2]
                if len(fields) >= 4 and fields[3] == key and fields[2] == numkeys:
                    out.append(float(l[1:].split()[0]))
        return out

    def acquires(self, key):
        return self.scripts(key, "2")

    def close(self):
        self.sock.close()


def bench_acquire(server, url, workdir, runs=40):
    mon = Monitor(server.port)
    time.sleep(0.2)
    lat = []
    for i in range(runs):
        log = os.path.join(workdir, "acq%d.log" % i)
        name = "acq%d" % i
        p = lockunit(url, name, payload(log, "a", "--hold", 0), "--ttl=3s", "--renew=1s",
                     "--stop-timeout=1s")
        p.wait(30)
        time.sleep(0.05)
        acq = mon.acquires("lockunit:" + name)
        r = read_runs(log)
        if acq and r:
            lat.append((r[0].start / 1e9 - acq[-1]) * 1000)
    mon.close()
    print("acquire -> payload start (Redis received the acquire script -> payload's first "
          "record), %d uncontended runs: p50 %.2f ms, p99 %.2f ms, max %.2f ms" %
          (len(lat), pct(lat, 50), pct(lat, 99), max(lat)))


def bench_handover(server, url, workdir, handovers, contenders=4):
    mon = Monitor(server.port)
    log = os.path.join(workdir, "handover.log")
    stop = threading.Event()

    def loop(i):
        while not stop.is_set():
            p = lockunit(url, "handover", payload(log, "c%d" % i, "--hold", 10), "--ttl=3s",
                         "--renew=1s", "--stop-timeout=1s")
            p.wait(60)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(contenders)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    while len(read_runs(log)) < handovers + 1 + 5:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    runs = read_runs(log)[5:]  # skip the warm-up
    gaps = [(b.start - a.last) / 1e6 for a, b in zip(runs, runs[1:])]
    overlaps = sum(1 for g in gaps if g < 0)
    print("graceful handover (payload end -> next payload start), %d handovers with %d "
          "contenders in %.1f s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (overlaps: %d)" %
          (len(gaps), contenders, time.monotonic() - t0, pct(gaps, 50), pct(gaps, 99),
           max(gaps), overlaps))
    # Split each handover at the moment Redis ran the release script.
    time.sleep(0.2)
    releases = sorted(mon.scripts("lockunit:handover", "1"))
    mon.close()
    before, after = [], []
    for a, b in zip(runs, runs[1:]):
        inside = [t for t in releases if a.last / 1e9 <= t <= b.start / 1e9]
        if inside:
            before.append((inside[0] - a.last / 1e9) * 1000)
            after.append((b.start / 1e9 - inside[0]) * 1000)
    if before:
        print("  of which payload end -> release at Redis: p50 %.2f ms, p99 %.2f ms; release at "
              "Redis -> next payload start: p50 %.2f ms, p99 %.2f ms" %
              (pct(before, 50), pct(before, 99), pct(after, 50), pct(after, 99)))


def commandstats(server):
    info = server.cmd("INFO", "commandstats")
    out = {}
    for line in info.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[8:].split(":", 1)
            out[name] = int(rest.split(",")[0].split("=")[1])
    return out


def bench_idle(server, url, workdir, waiters, seconds):
    holder = lockunit(url, "idle", ["sleep", "3600"])  # default ttl 15s, renew 5s
    time.sleep(0.5)
    errs = []
    procs = []
    for i in range(waiters):
        err = open(os.path.join(workdir, "w%d.err" % i), "w+")
        errs.append(err)
        procs.append(lockunit(url, "idle", ["true"], stderr=err))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all("waiting" in open(e.name).read() for e in errs):
            break
        time.sleep(0.2)
    time.sleep(12)  # past every waiter's first re-check
    before = commandstats(server)
    t0 = time.monotonic()
    time.sleep(seconds)
    after = commandstats(server)
    elapsed = time.monotonic() - t0
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta["info"] = delta.get("info", 0) - 1  # our own INFO commandstats
    holder_renews = elapsed / 5.0
    # commandstats also counts the commands a script runs; the client sends only these:
    sent = sum(v for k, v in delta.items()
               if v > 0 and k in ("evalsha", "eval", "subscribe", "ping", "auth", "select",
                                  "pubsub|numsub", "role")) - holder_renews
    total = sum(v for v in delta.values() if v > 0) - 4 * holder_renews
    shown = ", ".join("%s %d" % (k, v) for k, v in sorted(delta.items()) if v > 0)
    print("idle waiters: %d waiters behind one holder (ttl 15s, renew 5s) for %.0f s: %s" %
          (waiters, elapsed, shown))
    print("  commands sent per idle waiter: %.3f/s; Redis commands run per idle waiter "
          "(counting those inside scripts): %.3f/s" %
          (sent / elapsed / waiters, total / elapsed / waiters))
    for p in procs + [holder]:
        p.send_signal(signal.SIGTERM)
    for p in procs + [holder]:
        p.wait(30)
    for e in errs:
        e.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--handovers", type=int, default=300)
    ap.add_argument("--waiters", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=30)
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="lockunit-bench-")
    server = Server(workdir, "redis", args=["--maxclients", "1000"]).start()
    try:
        server.ready_for_ttl(15)
        url = "redis://127.0.0.1:%d" % server.port
        print("redis-server %s on 127.0.0.1:%d, %d CPUs" %
              (server.cmd("INFO", "server").split("redis_version:")[1].split()[0], server.port,
               os.cpu_count()))
        bench_acquire(server, url, workdir)
        bench_handover(server, url, workdir, args.handovers)
        bench_idle(server, url, workdir, args.waiters, args.idle_seconds)
        stats = commandstats(server)
        print("scripts run by EVALSHA: %d, by EVAL (NOSCRIPT fallback): %d" %
              (stats.get("evalsha", 0), stats.get("eval", 0)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
