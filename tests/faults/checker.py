#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The overlap checker of the fault-injection suite.

Reads the records of the recording test payload (tests/payload/test_payload.cpp: lines
`start|beat|end NODE TOKEN PID NS`, NS = CLOCK_REALTIME in nanoseconds; all nodes share one
kernel clock) from any number of files, and fails when

* more than `holders` payload runs were alive at once, a run being alive over
  [its start record, its last record], or
* a fencing token does not increase with start time (for backends that give tokens).

    python3 tests/faults/checker.py [--holders N] [--no-tokens] [--faults N] FILE|DIR ...

prints "checked R payload runs, H handovers, F faults: ..." and exits 0 (clean) or 1."""

import argparse
import bisect
import os
import sys
from array import array

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from lockunit_test import Run, overlaps  # noqa: E402


def record_files(paths):
    """Every *.log file named, or found directly inside a named directory."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, n) for n in os.listdir(p) if n.endswith(".log"))
        else:
            out.append(p)
    return out


class RecordReader:
    """Reads record files incrementally (a soak run's files grow to megabytes: each call
    reads only what was appended since). A line torn by a kill is skipped; a PID that a
    rebooted node uses again starts a new run rather than extending the old one."""

    def __init__(self):
        self.offsets = {}   # path → bytes consumed
        self.current = {}   # (path, node, pid) → the run that record key belongs to now
        self.runs = []

    def update(self, paths):
        for path in paths:
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                continue
            with f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1  # leave a half-written last line for next time
            self.offsets[path] = self.offsets.get(path, 0) + end
            for raw in data[:end].split(b"\n"):
                self._line(path, raw.decode("utf-8", "replace"))
        return self.runs

    def _line(self, path, line):
        parts = line.split()
        if len(parts) != 5 or parts[0] not in ("start", "beat", "end"):
            return
        what, node, token, pid, ns = parts
        try:
            ns, pid_n = int(ns), int(pid)
        except ValueError:
            return
        key = (path, node, pid)
        if what == "start":
            run = Run(node, token, pid_n, ns)
            run.times = array("q", [ns])
            self.current[key] = run
            self.runs.append(run)
        elif key in self.current:
            run = self.current[key]
            run.last = max(run.last, ns)
            run.times.append(ns)
            if what == "end":
                run.ended = True
                del self.current[key]

    def sorted_runs(self):
        return sorted(self.runs, key=lambda r: r.start)


def read_all(paths):
    reader = RecordReader()
    reader.update(record_files(paths))
    return reader.sorted_runs()


def token_regressions(runs):
    """(earlier, later) pairs of consecutive token-bearing runs, in start order, whose tokens
    do not strictly increase. Runs without a token ('-') are left out."""
    with_token = [r for r in runs if r.token not in ("-", "")]
    bad = []
    for a, b in zip(with_token, with_token[1:]):
        try:
            if int(a.token) >= int(b.token):
                bad.append((a, b))
        except ValueError:
            bad.append((a, b))
    return bad


def stale_records(a, b):
    """(first, last, count) of the records that run `a` wrote after run `b` had started."""
    times = getattr(a, "times", None)
    if not times:
        return (a.last, a.last, 1) if a.last >= b.start else None
    i = bisect.bisect_left(times, b.start)
    if i == len(times):
        return None
    return times[i], times[-1], len(times) - i


def describe_overlap(a, b):
    """How two runs overlapped: their intervals, and when the earlier one showed signs of life
    after the later one had started (a payload resumed after a freeze writes them late)."""
    text = "intervals overlap %.3f s" % ((min(a.last, b.last) - b.start) / 1e9)
    stale = stale_records(a, b)
    if stale:
        first, last, n = stale
        text += "; %s wrote %d records from %.3f s to %.3f s after %s started" % (
            a.node, n, (first - b.start) / 1e9, (last - b.start) / 1e9, b.node)
    return text


def handovers(runs):
    """How often the lock passed from a run on one node to a run on another."""
    return sum(1 for a, b in zip(runs, runs[1:]) if a.node != b.node)


class Report:
    def __init__(self, runs, holders=1, tokens=True, faults=0):
        self.runs = runs
        self.faults = faults
        self.handovers = handovers(runs)
        self.overlaps = overlaps(runs, holders)
        self.token_regressions = token_regressions(runs) if tokens else []
        self.tokens_checked = tokens and any(r.token not in ("-", "") for r in runs)

    @property
    def ok(self):
        return not self.overlaps and not self.token_regressions

    def summary(self):
        text = "checked %d payload runs, %d handovers, %d faults: " % (
            len(self.runs), self.handovers, self.faults)
        if self.ok:
            return text + "no overlap" + (", tokens increase" if self.tokens_checked else
                                          " (no tokens to check)")
        return text + "%d overlaps, %d token regressions" % (len(self.overlaps),
                                                             len(self.token_regressions))

    def details(self, limit=10):
        lines = []
        for a, b in self.overlaps[:limit]:
            lines.append("OVERLAP %s: %r and %r" % (describe_overlap(a, b), a, b))
        for a, b in self.token_regressions[:limit]:
            lines.append("TOKEN NOT INCREASING: %r then %r" % (a, b))
        return "\n".join(lines)


def check(paths, holders=1, tokens=True, faults=0):
    return Report(read_all(paths), holders, tokens, faults)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="record files, or directories of *.log files")
    ap.add_argument("--holders", type=int, default=1)
    ap.add_argument("--no-tokens", action="store_true", help="do not check fencing tokens")
    ap.add_argument("--faults", type=int, default=0, help="faults injected (for the summary)")
    args = ap.parse_args(argv)
    report = check(args.paths, args.holders, not args.no_tokens, args.faults)
    print(report.summary())
    if not report.ok:
        print(report.details(50))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
