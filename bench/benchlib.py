# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared pieces of lockunit's benchmarks (Python 3 stdlib only).

Every benchmark is a program in bench/ that takes the build directory as its one argument and
prints its figures on stdout, one per line, in the form that bench/run-all collects:

    BENCH <backend> <metric> <value> <unit>
    NOTE <backend> <free text>

Anything else it prints is kept in the log. Exit 0 when done, 77 when it cannot run here (a
server is missing: say why on stderr), anything else on failure. See bench/README.md."""

import os
import sys
import tempfile
import time

QUICK = os.environ.get("BENCH_QUICK") == "1"


def build_paths(argv):
    """(lockunit, test payload) of the build directory given as argv[1]."""
    if len(argv) != 2:
        print("usage: %s BUILD_DIR" % os.path.basename(argv[0]), file=sys.stderr)
        sys.exit(64)
    build = os.path.abspath(argv[1])
    lockunit = os.environ.get("LOCKUNIT_BIN", os.path.join(build, "src", "lockunit"))
    payload = os.environ.get("LOCKUNIT_TEST_PAYLOAD",
                             os.path.join(build, "tests", "lockunit-test-payload"))
    for p in (lockunit, payload):
        if not os.access(p, os.X_OK):
            print("%s: not built (run ninja -C %s first)" % (p, build), file=sys.stderr)
            sys.exit(66)
    return lockunit, payload


def report(backend, metric, value, unit):
    if isinstance(value, float):
        value = "%.4g" % value
    print("BENCH %s %s %s %s" % (backend, metric, value, unit), flush=True)


def note(backend, text):
    """A remark for docs/benchmarks.md, under the figures of `backend`."""
    print("NOTE %s %s" % (backend, text), flush=True)


def fs_type(path):
    """"tmpfs", "ext2/ext3" (stat's name for ext4 too), … of the filesystem holding path."""
    import subprocess
    p = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


def percentile(samples, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(samples)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def median(samples):
    s = sorted(samples)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def lock_dir(prefix):
    """A fresh lock directory on tmpfs (where /run/lock lives on a usual systemd machine), or
    in /tmp without one."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def read_records(log):
    """{node: {"start": ns, "end": ns}} from the test payload's records."""
    out = {}
    try:
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 5:
                    continue
                what, node, _token, _pid, ns = parts
                out.setdefault(node, {})
                if what in ("start", "end") and what not in out[node]:
                    out[node][what] = int(ns)
    except FileNotFoundError:
        pass
    return out


def wait_for(predicate, timeout, interval=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    return predicate()


def clean_env():
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    return env
