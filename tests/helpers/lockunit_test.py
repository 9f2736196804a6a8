# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared pieces of lockunit's integration tests: run the built binary, record what the test
payload did, and check that no two payloads ever ran at once.

meson passes the paths of the built programs in LOCKUNIT_BIN and LOCKUNIT_TEST_PAYLOAD.
A test whose real server is missing is skipped with exit code 77 (meson shows SKIP) on a
developer's machine, and fails under CI=true, where .ci/run has installed everything."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

LOCKUNIT = os.environ.get("LOCKUNIT_BIN", "build/src/lockunit")
PAYLOAD = os.environ.get("LOCKUNIT_TEST_PAYLOAD", "build/tests/lockunit-test-payload")
IN_CI = os.environ.get("CI") == "true"

EX_USAGE, EX_UNAVAILABLE, EX_BUSY, EX_CONFIG, EX_LOST = 64, 69, 75, 78, 79

# The lockunits the tests start inherit our signal dispositions. Started under nohup (SIGHUP
# ignored), a lockunit would never see the SIGHUP that a test sends it to forward.
signal.signal(signal.SIGHUP, signal.SIG_DFL)


def missing_programs(*programs):
    """Those of the programs (names on PATH, or paths) that are not installed."""
    return [p for p in programs if shutil.which(p) is None and not os.path.exists(p)]


def require(*programs):
    """Skip (77) or, under CI, fail when a program a test needs is not installed."""
    missing = missing_programs(*programs)
    if missing:
        msg = "missing: " + ", ".join(missing)
        if IN_CI:
            print("FAIL: " + msg + " (CI must install it)", file=sys.stderr)
            sys.exit(1)
        print("SKIP: " + msg, file=sys.stderr)
        sys.exit(77)


class Instance:
    """One running lockunit, with its output captured to files."""

    def __init__(self, args, workdir, label="lockunit", env=None):
        self.label = label
        self.out_path = os.path.join(workdir, label + ".out")
        self.err_path = os.path.join(workdir, label + ".err")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("INVOCATION_ID", None)
        if env:
            full_env.update(env)
        self.started = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([LOCKUNIT] + list(args), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=full_env)

    @property
    def pid(self):
        return self.proc.pid

    def wait(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def alive(self):
        return self.proc.poll() is None

    def stderr(self):
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def kill_with_guard(self):
        """SIGKILL to lockunit and its lock guard at once (a node that dies): nobody is left
        to release the lock; the payload's main process dies with the guard
        (PR_SET_PDEATHSIG)."""
        with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
            below = [int(p) for p in f.read().split()]
        # Stopped first: a guard that saw lockunit die before its own SIGKILL came would stop
        # the payload and release the lock cleanly (a loaded machine, between two kill()s).
        for pid in below:
            os.kill(pid, signal.SIGSTOP)
        self.proc.kill()
        for pid in below:
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(5)


def run(args, timeout=30, env=None):
    """Runs lockunit to completion; returns (exit code, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("NOTIFY_SOCKET", None)
    full_env.pop("INVOCATION_ID", None)
    if env:
        full_env.update(env)
    p = subprocess.run([LOCKUNIT] + list(args), capture_output=True, text=True,
                       timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def contend_in_cycles(args_for, contenders=5, cycles=40, timeout=120):
    """Runs `contenders` threads, each running lockunit `cycles` times in a row with the
    arguments args_for(i) (i = the thread's number). Returns the failures — (i, cycle, exit
    code, end of stderr) of every run that did not exit 0 — and the seconds it all took."""
    import threading
    failures = []

    def contender(i):
        for cycle in range(cycles):
            code, _, err = run(args_for(i), timeout=timeout)
            if code != 0:
                failures.append((i, cycle, code, err[-500:]))

    t0 = time.monotonic()
    threads = [threading.Thread(target=contender, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures, time.monotonic() - t0


def payload(log, node, *extra):
    """The command line of the recording test payload."""
    return [PAYLOAD, "--log", log, "--node", node] + [str(e) for e in extra]


class Run:
    """One payload run, from its records: [start, last sign of life]."""

    def __init__(self, node, token, pid, start):
        self.node, self.token, self.pid = node, token, pid
        self.start = self.last = start
        self.ended = False

    def __repr__(self):
        return "Run(%s token=%s pid=%s %.3f..%.3f)" % (
            self.node, self.token, self.pid, self.start / 1e9, self.last / 1e9)


def read_runs(log):
    runs = {}
    if not os.path.exists(log):
        return []
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 5:
                continue  # a line torn by a kill
            what, node, token, pid, ns = parts
            key = (node, pid)
            ns = int(ns)
            if what == "start":
                runs[key] = Run(node, token, int(pid), ns)
            elif key in runs:
                runs[key].last = max(runs[key].last, ns)
                if what == "end":
                    runs[key].ended = True
    return sorted(runs.values(), key=lambda r: r.start)


def overlaps(runs, holders=1):
    """Every moment at which more than `holders` runs were alive, as (run, run) pairs."""
    bad = []
    active = []
    for r in runs:
        active = [a for a in active if a.last >= r.start]
        if len(active) >= holders:
            bad.append((active[-1], r))
        active.append(r)
    return bad


def holder_spans(runs):
    """Runs grouped by holder: a node and its "NODE/child" daemon are one holder's tree.
    Returns {node: (first start, last sign of life)} in seconds."""
    out = {}
    for r in runs:
        node = r.node.split("/")[0]
        start, last = out.get(node, (r.start, r.last))
        out[node] = (min(start, r.start), max(last, r.last))
    return {node: (start / 1e9, last / 1e9) for node, (start, last) in out.items()}


def max_concurrency(runs):
    events = []
    for r in runs:
        events.append((r.start, 1))
        events.append((r.last, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def tokens_increase(runs):
    """Tokens strictly increase in start order (runs without a token are ignored)."""
    tokens = [int(r.token) for r in runs if r.token not in ("-", "")]
    return all(a < b for a, b in zip(tokens, tokens[1:])), tokens


def wait_for(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class LockunitTestCase(unittest.TestCase):
    """Gives each test a scratch directory and cleans up every instance it started."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lockunit-test-")
        self.instances = []

    def require(self, *programs):
        """require() for one test, called before its setUp makes anything: skips that test
        (the file's others still run) or, under CI, fails it."""
        missing = missing_programs(*programs)
        if missing:
            if IN_CI:
                self.fail("missing: " + ", ".join(missing) + " (CI must install it)")
            self.skipTest("missing: " + ", ".join(missing))

    def tearDown(self):
        for inst in self.instances:
            inst.kill()
        if not self._failed():
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("\nkept test directory " + self.dir, file=sys.stderr)
            for inst in self.instances:
                print("--- %s stderr:\n%s" % (inst.label, inst.stderr()[-3000:]), file=sys.stderr)

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in result.failures + result.errors)

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, args, label=None, env=None):
        inst = Instance(args, self.dir, label or "lockunit%d" % len(self.instances), env)
        self.instances.append(inst)
        return inst

    def assertStopsAtOnceOnSigterm(self, inst):
        """SIGTERM to a waiting (or running) lockunit: exit 0, promptly. The design bound is
        100 ms; the assertion allows 500 ms for a noisy machine, and prints what it saw."""
        t0 = time.monotonic()
        inst.signal(signal.SIGTERM)
        self.assertEqual(inst.wait(5), 0, inst.stderr())
        elapsed = time.monotonic() - t0
        print("SIGTERM → exit in %.1f ms" % (elapsed * 1000))
        self.assertLess(elapsed, 0.5)

    def assertNoOverlap(self, runs, holders=1):
        bad = overlaps(runs, holders)
        self.assertEqual(bad, [], "payload runs overlapped: %r" % bad[:5])

    # --- the lock-delay (docs/guarantees.md), the same on every backend ---------------------

    def lingering_holder_and_waiter(self, args_for, stop_timeout="4s", linger_ms=2000,
                                    timing=("--ttl=15s", "--renew=5s")):
        """A holder whose payload lingers `linger_ms` on SIGTERM, and a waiter that waits.
        args_for(*extra) gives a lockunit's arguments (backend, name) before its payload."""
        log = self.path("holder.log")
        holder = self.start(args_for(*timing, "--stop-timeout=" + stop_timeout)
                            + ["--"] + payload(log, "holder", "--linger", linger_ms), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 15), holder.stderr())
        wlog = self.path("waiter.log")
        waiter = self.start(args_for() + ["--"] + payload(wlog, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        time.sleep(0.3)  # the waiter has looked the holder up and queued for the lock
        return holder, log, waiter, wlog

    def assertNextStartsOnlyAfterTheOldTreeIsGone(self, old_log, new_log, timeout):
        """Samples every 10 ms until the next payload starts: the old one is dead by then.
        Returns the gap between the old payload's last record and the new one's start (s)."""
        old_pid = read_runs(old_log)[0].pid
        deadline = time.monotonic() + timeout
        while not read_runs(new_log):
            self.assertLess(time.monotonic(), deadline, "the next payload never started")
            time.sleep(0.01)
        self.assertFalse(pid_alive(old_pid), "the next payload started while the old one "
                         "(pid %d) still ran" % old_pid)
        old, new = read_runs(old_log)[0], read_runs(new_log)[0]
        self.assertTrue(old.ended, "the lingering payload never finished: %r" % old)
        self.assertGreater(new.start, old.last, "overlap: %r then %r" % (old, new))
        return (new.start - old.last) / 1e9

    def assertCleanHandoverOfALingeringPayload(self, args_for, bound=0.5, **holder):
        """SIGTERM to a holder whose payload lingers: its release is clean, so the waiter
        starts within `bound` s of the old payload's end (its retry interval where nothing
        wakes it), with no lock-delay. `holder`: the holder's timing
        (lingering_holder_and_waiter())."""
        holder, log, waiter, wlog = self.lingering_holder_and_waiter(args_for, **holder)
        holder.signal(signal.SIGTERM)
        gap = self.assertNextStartsOnlyAfterTheOldTreeIsGone(log, wlog, 15)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        print("graceful handover of a lingering payload: next payload %.1f ms after the old "
              "one's last beat" % (gap * 1000))
        self.assertNotIn("lock-delay", waiter.stderr())
        self.assertLess(gap, bound)

    def assertUncleanEndCostsTheLockDelay(self, args_for, forget, fault, holder_exit=None,
                                          delay=("4s500ms", 4.5), **holder):
        """forget() ends the holder's lock behind its back (stop_timeout 4 s, a payload that
        lingers 2 s on SIGTERM): the waiter takes the lock, says why it waits, and starts only
        after the delay (its text and seconds: the holder's stop budget, 4 s + 0.5 s, plus its
        renew of 5 s on a backend where it notices at its next renewal), never beside the old
        payload. `holder`: the holder's timing (lingering_holder_and_waiter()). Returns the
        takeover time (s)."""
        holder, log, waiter, wlog = self.lingering_holder_and_waiter(args_for, **holder)
        t0 = time.monotonic()
        forget(holder)
        self.assertTrue(wait_for(lambda: "lock-delay of" in waiter.stderr(), 10), waiter.stderr())
        gap = self.assertNextStartsOnlyAfterTheOldTreeIsGone(log, wlog, 20)
        took = time.monotonic() - t0
        print("%s → next payload after %.0f ms (%.0f ms after the old one's last beat)"
              % (fault, took * 1000, gap * 1000))
        self.assertIn("lock-delay of " + delay[0], waiter.stderr())
        self.assertIn("ended without a release", waiter.stderr())
        self.assertGreaterEqual(took, delay[1])
        if holder_exit is not None:
            self.assertEqual(holder.wait(20), holder_exit, holder.stderr())
        return took


def main():
    """unittest.main, with exit code 77 when every test was skipped."""
    prog = unittest.main(exit=False, verbosity=2)
    result = prog.result
    if result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(77)
    sys.exit(0 if result.wasSuccessful() else 1)
