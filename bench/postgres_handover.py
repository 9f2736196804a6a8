#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Prints how fast lockunit's postgres backend hands a lock over, on a throwaway PostgreSQL 15
cluster on loopback (the same fixture the integration tests use).

  acquire → payload start   an uncontended `lockunit -- payload`: from launching lockunit to
                            the payload's first record (process start, connect + SCRAM
                            authentication, LISTEN, pg_try_advisory_lock, nextval, fork/exec)
  graceful handover         CONTENDERS instances cycle on one lock; each payload holds HOLD ms
                            and exits; from one payload's exit record to the next payload's
                            start record (unlock + NOTIFY, a waiter's wake-up, its acquire,
                            nextval, fork/exec)
The same two figures for the embedded file backend follow, as a reference for what process
handling and the machine's load cost by themselves.

Usage (from the source tree, after `ninja -C build`; as root, like the tests):
  python3 bench/postgres_handover.py [--samples N] [--contenders C] [--hold MS]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "helpers"))
import postgres_fixture  # noqa: E402
from lockunit_test import read_runs  # noqa: E402

LOCKUNIT = os.environ.get("LOCKUNIT_BIN", os.path.join(HERE, "..", "build", "src", "lockunit"))
PAYLOAD = os.environ.get("LOCKUNIT_TEST_PAYLOAD",
                         os.path.join(HERE, "..", "build", "tests", "lockunit-test-payload"))


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def show(label, seconds):
    ms = [s * 1000 for s in seconds]
    print("%-44s n=%-4d p50 %7.2f ms   p99 %7.2f ms   min %7.2f ms   max %7.2f ms" % (
        label, len(ms), percentile(ms, 50), percentile(ms, 99), min(ms), max(ms)))


def uncontended(base, work, label, samples):
    """Launch -> payload start, one instance at a time."""
    log = os.path.join(work, label.split()[0] + "-single.log")
    starts = []
    for i in range(samples):
        t0 = time.time_ns()
        subprocess.run(base + ["--name=single", "--", PAYLOAD, "--log", log, "--node", "s%d" % i,
                               "--hold", "0"], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        starts.append((t0, "s%d" % i))
    first = {r.node: r.start for r in read_runs(log)}
    return [(first[node] - t0) / 1e9 for t0, node in starts if node in first]


def handovers(base, work, label, args):
    """From one payload's exit to the next one's start, between instances already waiting."""
    log = os.path.join(work, label.split()[0] + "-cycle.log")
    per = -(-(args.samples + args.contenders + 1) // args.contenders)
    errors = []

    def contender(i):
        for _ in range(per):
            p = subprocess.run(base + ["--name=cycle", "--", PAYLOAD, "--log", log, "--node",
                                       "c%d" % i, "--hold", str(args.hold)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                errors.append(p.stderr)
                return

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(args.contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("a contender failed: " + errors[0], file=sys.stderr)
        return None
    runs = read_runs(log)
    gaps = [(b.start - a.last) / 1e9 for a, b in zip(runs, runs[1:])]
    # The first handovers may go to an instance still starting up: skip that warm-up.
    return gaps[args.contenders:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--contenders", type=int, default=2)
    ap.add_argument("--hold", type=int, default=200,
                    help="payload hold time in ms; long enough that the next holder is "
                         "already waiting when the lock is released")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="lockunit-bench-")
    server = postgres_fixture.PostgresServer()
    try:
        server.start()
        pw = os.path.join(work, "pw")
        with open(pw, "w") as f:
            f.write(postgres_fixture.SUPERUSER_PASSWORD + "\n")
        conf = os.path.join(work, "pg.toml")
        with open(conf, "w") as f:
            f.write('[postgres]\npassword_file = "%s"\n' % pw)
        pg_base = [LOCKUNIT, "--conf=" + conf, "--backend=" + server.url(), "--scope=no"]
        file_base = [LOCKUNIT, "--backend=file://" + os.path.join(work, "locks"), "--scope=no"]
        print("lockunit, PostgreSQL %s on 127.0.0.1 (TCP, scram-sha-256); %d contenders, "
              "payload hold %d ms; load average %s" % (
                  server.sql("SHOW server_version"), args.contenders, args.hold,
                  open("/proc/loadavg").read().split()[0]))
        bad = 0
        for label, base in (("postgres", pg_base), ("file (reference)", file_base)):
            acquire = uncontended(base, work, label, args.samples)
            gaps = handovers(base, work, label, args)
            if gaps is None:
                return 1
            overlapping = sum(1 for g in gaps if g < 0)
            bad += overlapping
            show(label + ": acquire -> payload start", acquire)
            show(label + ": graceful handover", gaps)
            print("%s: overlapping runs: %d" % (label, overlapping))
        return 0 if bad == 0 else 1
    finally:
        server.destroy()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
