#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""lockunit's etcd backend against `etcdctl lock`, on one throwaway etcd, in one run.

Prints, for each tool:
- launch → payload start: from exec of the tool (uncontended lock) until the payload's first
  record; client start-up, connection, lease grant, queue key and fork/exec included;
- graceful handover: from the holder's payload writing its last record (just before it exits)
  until the next holder's payload writes its first; release, wake-up of the next in line, its
  checks and fork/exec included.

Usage: bench/etcd_handover.py [--build DIR] [--rounds N] [--chain K]
(DIR defaults to ./build; needs etcd, etcdctl and a built lockunit + lockunit-test-payload.)"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "helpers"))
from etcd_fixture import ETCDCTL, EtcdCluster  # noqa: E402


def read_records(log):
    """{(node, pid): (first ns, last ns)} from the test payload's log."""
    runs = {}
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 5:
                continue
            what, node, _, pid, ns = parts
            key = (node, pid)
            first, last = runs.get(key, (int(ns), int(ns)))
            runs[key] = (min(first, int(ns)), max(last, int(ns)))
    return sorted(runs.values())


def percentile(values, p):
    values = sorted(values)
    rank = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[rank]


def summary(values):
    ms = [v / 1e6 for v in values]
    return "p50 %6.2f ms   p99 %6.2f ms   min %6.2f   max %6.2f   (n=%d)" % (
        percentile(ms, 50), percentile(ms, 99), min(ms), max(ms), len(ms))


class Tool:
    def __init__(self, name, argv_for):
        self.name = name
        self.argv_for = argv_for  # (lock name, payload argv) -> argv


def launch_latency(tool, payload_argv, workdir, rounds):
    out = []
    for i in range(rounds):
        log = tempfile.mktemp(prefix="%s-launch-" % tool.name, dir=workdir)
        t0 = time.time_ns()
        p = subprocess.run(tool.argv_for("launch-%s" % tool.name, payload_argv(log, "n", 0)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("%s failed: %s" % (tool.name, p.stderr.decode()[-500:]))
        out.append(read_records(log)[0][0] - t0)
    return out


def handovers(tool, payload_argv, workdir, batches, chain):
    """Batches of `chain` contenders: the first holds 1 s while the others queue up, then
    each holds 50 ms; every consecutive pair is one graceful handover."""
    out = []
    for b in range(batches):
        log = tempfile.mktemp(prefix="%s-chain-" % tool.name, dir=workdir)
        name = "chain-%s-%s" % (tool.name, os.path.basename(log))
        procs = [subprocess.Popen(tool.argv_for(name, payload_argv(log, "first", 1000)),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        time.sleep(0.2)  # the first is the holder
        for i in range(chain - 1):
            procs.append(subprocess.Popen(tool.argv_for(name, payload_argv(log, "n%d" % i, 50)),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in procs:
            if p.wait(timeout=120) != 0:
                raise RuntimeError("%s contender failed" % tool.name)
        runs = read_records(log)
        if len(runs) != chain:
            raise RuntimeError("%s: %d runs, expected %d" % (tool.name, len(runs), chain))
        for (_, end), (start, _) in zip(runs, runs[1:]):
            if start < end:
                raise RuntimeError("%s: overlapping runs" % tool.name)
            out.append(start - end)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--rounds", type=int, default=50, help="uncontended launches per tool")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--chain", type=int, default=11, help="contenders per handover batch")
    args = ap.parse_args()
    lockunit = os.path.join(args.build, "src", "lockunit")
    test_payload = os.path.join(args.build, "tests", "lockunit-test-payload")
    for path in (lockunit, test_payload, ETCDCTL):
        if not os.access(path, os.X_OK):
            sys.exit("missing %s (build first: meson setup build && ninja -C build)" % path)

    def payload_argv(log, node, hold):
        return [test_payload, "--log", log, "--node", node, "--hold", str(hold)]

    etcd = EtcdCluster(1).start()
    try:
        url = etcd.url()
        endpoint = etcd.endpoints()
        tools = [
            Tool("lockunit", lambda name, cmd: [lockunit, "--backend=" + url, "--name=" + name,
                                                "--scope=no", "--"] + cmd),
            Tool("etcdctl", lambda name, cmd: [ETCDCTL, "--endpoints=" + endpoint, "lock", name,
                                               "--"] + cmd),
        ]
        version = subprocess.run([ETCDCTL, "version"], capture_output=True, text=True).stdout.split("\n")[0]
        print("etcd: single member on %s (data on %s), %s; %d CPUs, load %.2f" % (
            endpoint, os.path.dirname(etcd.dir), version, os.cpu_count(), os.getloadavg()[0]))
        with tempfile.TemporaryDirectory(prefix="lockunit-bench-") as work:
            results = {}
            for tool in tools:  # warm-up: page cache, first connection
                launch_latency(tool, payload_argv, work, 3)
            for tool in tools:
                results[tool.name] = (launch_latency(tool, payload_argv, work, args.rounds),
                                      handovers(tool, payload_argv, work, args.batches, args.chain))
        for name, (launch, hand) in results.items():
            print("%-9s launch → payload start: %s" % (name, summary(launch)))
            print("%-9s graceful handover:      %s" % (name, summary(hand)))
    finally:
        etcd.stop()


if __name__ == "__main__":
    main()
