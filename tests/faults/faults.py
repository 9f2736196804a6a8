#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The fault-injection suite (issue 6): three systemd 252 containers run the shipped
lockunit@.service, all contending for ONE lock on each backend, while a seeded driver injects
faults at random; after each fault, exactly one payload must run again within a stated bound,
and at the end the checker (checker.py) proves that no two payloads ever ran at once and that
fencing tokens increased.

    faults.py --profile ci                     # the CI profile (meson test --suite faults)
    faults.py --faults 500 --backends postgres # a soak, by hand
    faults.py --contrast                       # the documented contrast runs (no watchdog)
    faults.py --seed 1234 ...                  # replays a run's choices
    faults.py --verbose ...                    # lockunit -v; the nodes' journals are kept

Needs root, systemd-nspawn and the servers of each backend: skipped (77) otherwise, a
failure under CI=true. See docs/guarantees.md for what the results mean."""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
from lockunit_test import IN_CI  # noqa: E402
from systemd_container import require_nspawn  # noqa: E402
import backends as B  # noqa: E402
from checker import Report, describe_overlap  # noqa: E402
from cluster import UNIT, Node, Records, Settings  # noqa: E402
from proxy import Hub  # noqa: E402

ALL_BACKENDS = ["file", "postgres", "redis", "redis+sentinel", "redlock", "etcd", "zookeeper"]
NODES = 3


def now():
    return time.monotonic()


class Stat:
    def __init__(self):
        self.count = self.runs = self.overlaps = self.missed = 0
        self.worst = self.gap = 0.0


class Driver:
    def __init__(self, args, settings, rng, workdir):
        self.args, self.s, self.rng, self.workdir = args, settings, rng, workdir
        self.t0 = now()
        self.hub = Hub()
        self.out = os.path.join(workdir, "out")
        self.shared = os.path.join(workdir, "shared")
        for d in (self.out, self.shared):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o777)
        binds = [(self.out, "/run/out"), (self.shared, "/run/shared")]
        self.nodes = [Node(i, binds) for i in range(NODES)]
        self.stats = {}        # (backend, fault) → Stat
        self.failures = []
        self.limits = []       # overlaps that the docs call a limit (expected)

    def log(self, msg):
        wall = time.strftime(" %H:%M:%S", time.gmtime()) if self.args.verbose else ""
        print("[%7.1f%s] %s" % (now() - self.t0, wall, msg), flush=True)

    # -- cluster --------------------------------------------------------------------------------
    def boot(self):
        for n in self.nodes:
            n.boot()
        self.log("booted %d nodes: %s" % (len(self.nodes), ", ".join(n.c.name for n in self.nodes)))

    def shutdown(self):
        for n in self.nodes:
            try:
                n.poweroff()
            except Exception as e:  # keep tearing down the others
                self.log("poweroff %s: %s" % (n.name, e))
        self.hub.close()

    def recovery_bound(self):
        # From the moment a fault ends: one ttl for a lease to run out, one ttl for a restarted
        # server to be old enough to grant locks (redis), one more for a retry or an election,
        # RestartSec for a node to come back, the lock-delay after a lease that ended without a
        # release (at most the holder's renew + stop_timeout + 0.5 s; postgres: no renew),
        # and 10 s for a loaded machine.
        lock_delay = self.s.renew + self.s.stop_timeout + 0.5
        return 3 * self.s.ttl + self.s.restart_sec + lock_delay + 10

    # -- one backend ----------------------------------------------------------------------------
    def run_backend(self, cls):
        name = cls.name
        record_dir = name.replace("+", "-")
        host_dir = os.path.join(self.out, record_dir)
        os.makedirs(host_dir, exist_ok=True)
        os.chmod(host_dir, 0o777)
        backend = cls(self.hub, NODES, self.workdir, self.s.ttl)
        backend.record_dir = record_dir
        records = self.records = Records(host_dir)
        faults = self.fault_list(backend)
        self.log("== backend %s: %d faults from %s" % (name, self.args.faults, ", ".join(faults)))
        fault_log = []  # (realtime ns at injection, fault)
        try:
            backend.start()
            for n in self.nodes:
                n.install(self.s, backend, record_dir)
                n.start()
            t = now()
            if not self.wait_single(records, 30 + 2 * self.s.ttl):
                raise AssertionError("%s: no single payload running after start-up" % name)
            self.log("first holder after %.1f s" % (now() - t))
            deck = []
            for i in range(self.args.faults):
                if not deck:
                    deck = list(faults)
                    self.rng.shuffle(deck)
                fault = deck.pop()
                fault_log.append((time.time_ns(), fault))
                self.one_fault(backend, records, fault, i)
            for n in self.nodes:
                n.stop()
        finally:
            if self.args.verbose:
                self.save_journals(host_dir)
            for n in self.nodes:
                n.thaw()
            backend.stop()
        report = Report(records.runs(), 1, backend.tokens, len(fault_log))
        self.log("%s: %s" % (name, report.summary()))
        self.attribute(backend, report, fault_log)
        return report

    def save_journals(self, host_dir):
        """--verbose: each node's journal of the unit (lockunit's debug messages), UTC."""
        for n in self.nodes:
            if n.c is None:
                continue
            try:
                r = n.c.run(["journalctl", "--no-pager", "--utc", "-o", "short-iso-precise",
                             "-u", UNIT], check=False, timeout=120)
                with open(os.path.join(host_dir, "%s.journal" % n.name), "w") as f:
                    f.write(r.stdout)
            except Exception as e:
                self.log("journal of %s: %s" % (n.name, e))

    def fault_list(self, backend):
        faults = [f for f in backend.faults if not self.args.only or f in self.args.only]
        if self.args.contrast:
            return [f for f in faults if f in ("pause-lockunit", "freeze-node")]
        # Faults that overlap by design of the backend (an expiring lease) run in the
        # contrast runs only.
        return [f for f in faults if f not in backend.contrast_only]

    def holder(self, records, timeout=10):
        """The node whose payload runs now (exactly one), or None."""
        deadline = now() + timeout
        while now() < deadline:
            live = records.live()
            if len(live) == 1:
                return self.nodes[int(live[0].node[1:])], live[0]
            time.sleep(0.05)
        return None, None

    def wait_single(self, records, timeout, stable=1.5):
        """Waits until exactly one payload runs, steadily for `stable` s. Returns the
        monotonic time at which that state began, or None."""
        deadline = now() + timeout
        since, who = None, None
        while now() < deadline:
            live = records.live()
            if len(live) == 1 and (who is None or who is live[0]):
                if since is None:
                    since, who = now(), live[0]
                elif now() - since >= stable:
                    return since
            else:
                since, who = None, None
            time.sleep(0.05)
        return None

    def one_fault(self, backend, records, fault, i):
        st = self.stats.setdefault((backend.name, fault), Stat())
        st.count += 1
        holder, run = self.holder(records)
        if holder is None:
            self.failures.append("%s fault %d (%s): no single holder before the fault" %
                                 (backend.name, i, fault))
            holder = self.rng.choice(self.nodes)
        before = len(records.runs())
        injected = time.time_ns()
        desc = getattr(self, "f_" + fault.replace("-", "_"))(backend, holder)
        self.log("fault %d/%d %s on %s%s" % (i + 1, self.args.faults, fault, holder.name,
                                              (": " + desc) if desc else ""))
        since = self.wait_single(records, self.recovery_bound())
        if since is None:
            st.missed += 1
            states = {n.name: n.state() for n in self.nodes if n.c}
            self.failures.append("%s fault %d (%s on %s): not exactly one payload within %g s "
                                 "(live: %r, units: %r)" % (backend.name, i, fault, holder.name,
                                                            self.recovery_bound(),
                                                            records.live(), states))
            self.log("NOT RECOVERED: " + self.failures[-1])
        else:
            # Recovery: from the fault to the start of the payload that runs afterwards (0 when
            # the holder's payload went through the fault).
            live = records.live()
            new = live[0] if live else None
            rec = max(0.0, (new.start - injected) / 1e9) if new is not None else 0.0
            st.worst = max(st.worst, rec)
            self.log("   one payload again on %s, %.2f s after the fault began%s" % (
                new.node if new else "?", rec, "" if new is None or new.start > injected
                else " (the holder's payload went through it)"))
        st.runs += len(records.runs()) - before
        for n in self.nodes:
            if n.ensure_running():
                self.log("   started %s again" % n.name)

    def attribute(self, backend, report, fault_log):
        """Charges each overlap (and each gap without a payload) to the fault during whose
        window the later run started."""
        def fault_at(ns):
            fault = "start-up"
            for t, f in fault_log:
                if t <= ns:
                    fault = f
            return fault
        runs = report.runs
        for a, b in zip(runs, runs[1:]):
            st = self.stats.get((backend.name, fault_at(b.start)))
            if st is not None:
                st.gap = max(st.gap, (b.start - a.last) / 1e9)
        for a, b in report.overlaps:
            fault = fault_at(b.start)
            self.stats.setdefault((backend.name, fault), Stat()).overlaps += 1
            what = "%s/%s: %s: %r and %r" % (backend.name, fault, describe_overlap(a, b), a, b)
            if fault in backend.limits(watchdog=bool(self.s.watchdog)):
                self.limits.append(what)
            else:
                self.failures.append("BUG? " + what)
        for a, b in report.token_regressions:
            self.failures.append("%s: token did not increase: %r then %r" % (backend.name, a, b))

    # -- the faults -----------------------------------------------------------------------------
    def hold(self):
        return self.s.ttl + self.rng.uniform(0.5, 2.0)

    def f_kill_lockunit(self, backend, node):
        node.c.run(["kill", "-KILL", str(node.main_pid())], check=False)

    def f_crash_lockunit(self, backend, node):
        node.c.run(["kill", "-SEGV", str(node.main_pid())], check=False)

    def f_kill_guard(self, backend, node):
        main = node.main_pid()
        guard = node.c.run(["sh", "-c", "for c in $(cat /proc/%d/task/%d/children); do "
                            "[ \"$(cat /proc/$c/comm)\" = lockunit-guard ] && echo $c; done"
                            % (main, main)], check=False).stdout.split()
        for pid in guard:
            node.c.run(["kill", "-KILL", pid], check=False)
        return "guard PID %s of lockunit PID %d" % (",".join(guard) or "?", main)

    def f_pause_lockunit(self, backend, node):
        pid = node.main_pid()
        node.c.run(["kill", "-STOP", str(pid)], check=False)
        d = self.hold()
        time.sleep(d)
        node.c.run(["kill", "-CONT", str(pid)], check=False)
        return "lockunit PID %d stopped %.1f s (WatchdogSec=%s)" % (pid, d, self.s.watchdog or 0)

    def f_freeze_node(self, backend, node):
        node.freeze()
        d = self.hold()
        time.sleep(d)
        node.thaw()
        return "every process stopped %.1f s" % d

    def f_systemctl_stop(self, backend, node):
        node.c.systemctl("stop", "lockunit@faults.service", check=False)
        time.sleep(self.rng.uniform(0.2, 1.5))
        node.start()

    def f_systemctl_restart(self, backend, node):
        node.c.systemctl("restart", "lockunit@faults.service", check=False)

    def f_systemctl_kill(self, backend, node):
        # SIGTERM to every process of the unit, or SIGKILL to lockunit (its main process).
        sig, whom = self.rng.choice([("TERM", "all"), ("KILL", "main")])
        node.c.systemctl("kill", "--kill-whom=" + whom, "-s", sig, "lockunit@faults.service",
                         check=False)
        return "SIG%s to %s" % (sig, whom)

    def f_systemctl_kill_all(self, backend, node):
        # SIGKILL to every process of the unit's own cgroup: lockunit alone, since its lock
        # guard lives in the payload's scope (docs/design.md, "The lock guard").
        node.c.systemctl("kill", "--kill-whom=all", "-s", "KILL", "lockunit@faults.service",
                         check=False)

    def f_reboot(self, backend, node):
        clean = node.reboot()
        node.install(self.s, backend, backend.record_dir)
        node.start()
        return "container rebooted" + ("" if clean else " (forced: it did not exit)")

    def _net(self, backend, node, kind):
        target = node if self.rng.random() < 0.8 else self.rng.choice(self.nodes)
        proxies = backend.node_proxies(target.index)
        d = self.hold()
        for p in proxies:
            if kind == "blackhole":
                p.set_blackhole(reset_after=self.s.ttl)
            else:
                p.set_cut()
        time.sleep(d)
        for p in proxies:
            p.set_pass()
        return "%s of %s (%d proxies) for %.1f s" % (kind, target.name, len(proxies), d)

    def f_partition(self, backend, node):
        return self._net(backend, node, "blackhole")

    def f_partition_cut(self, backend, node):
        return self._net(backend, node, "cut")

    def f_latency(self, backend, node):
        ms = int(self.s.renew * 1000 * self.rng.uniform(0.3, 0.5))
        targets = [node] if self.rng.random() < 0.5 else self.nodes
        d = self.rng.uniform(2 * self.s.renew, self.s.ttl + 2)
        for t in targets:
            for p in backend.node_proxies(t.index):
                p.set_delay(ms)
        time.sleep(d)
        for t in targets:
            for p in backend.node_proxies(t.index):
                p.set_pass()
        return "+%d ms each way on %s for %.1f s" % (ms, "+".join(t.name for t in targets), d)

    def f_server_restart(self, backend, node):
        return backend.kill_and_restart(self.rng, self.log)

    def f_server_forgets(self, backend, node):
        return backend.forget_holder()

    def f_eviction_storm(self, backend, node):
        return backend.eviction_storm(self.hold())

    def f_failover_after_acquire(self, backend, node):
        """The holder stops; the moment another node's payload starts (its acquire has just
        been confirmed), the master is killed and the sentinels fail over."""
        before = {(r.node, r.pid) for r in self.records.runs()}
        node.c.systemctl("stop", "lockunit@faults.service", check=False)
        deadline = now() + 15
        while now() < deadline and not [r for r in self.records.runs()
                                         if (r.node, r.pid) not in before]:
            time.sleep(0.01)
        desc = backend.kill_and_restart(self.rng, self.log)
        node.start()
        return "after a new acquire: " + desc

    # -- results --------------------------------------------------------------------------------
    def table(self):
        rows = [("backend", "fault", "faults", "runs", "overlaps", "worst recovery",
                 "longest gap", "missed bound")]
        for (b, f), st in sorted(self.stats.items()):
            rows.append((b, f, str(st.count), str(st.runs), str(st.overlaps),
                         "%.2f s" % st.worst, "%.2f s" % st.gap, str(st.missed)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for j, r in enumerate(rows):
            lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
            if j == 0:
                lines.append("-+-".join("-" * w for w in widths))
        return "\n".join(lines)


def skip_or_fail(why):
    if IN_CI:
        print("FAIL: " + why, file=sys.stderr)
        sys.exit(1)
    print("SKIP: " + why, file=sys.stderr)
    sys.exit(77)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=["ci", "soak"], default="soak")
    ap.add_argument("--faults", type=int, help="faults per backend (ci: 4, soak: 500)")
    ap.add_argument("--backends", default=",".join(ALL_BACKENDS))
    ap.add_argument("--only", default="", help="comma-separated faults to draw from")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--ttl", type=float, default=4.0)
    ap.add_argument("--contrast", action="store_true",
                    help="the documented contrast runs: pause and freeze only")
    ap.add_argument("--watchdog", action="store_true",
                    help="units with WatchdogSec=ttl/4 (default: none; the lock guard acts)")
    ap.add_argument("--keep", action="store_true", help="keep the records directory")
    ap.add_argument("--verbose", action="store_true",
                    help="lockunit -v on the nodes; their journals kept as NODE.journal with the "
                         "records (implies --keep), wall-clock UTC times in the log")
    args = ap.parse_args()
    if args.faults is None:
        args.faults = 4 if args.profile == "ci" else 500
    args.only = [f for f in args.only.split(",") if f]
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print("fault suite: seed %d (replay with --seed %d), profile %s, %d faults per backend%s" %
          (seed, seed, args.profile, args.faults, ", CONTRAST (no watchdog)" if args.contrast
           else ""), flush=True)

    require_nspawn()
    wanted = [b for b in args.backends.split(",") if b]
    run, skipped = B.available(wanted)
    for n, why in skipped:
        print("backend %s skipped: %s" % (n, why), flush=True)
    if IN_CI and any("missing" in why for _, why in skipped):
        print("FAIL: a backend's server is missing under CI", file=sys.stderr)
        return 1
    if not run:
        skip_or_fail("no backend can run")

    settings = Settings(ttl=args.ttl, renew=args.ttl / 4, stop_timeout=args.ttl / 4,
                        watchdog=args.ttl / 4 if args.watchdog else 0, verbose=args.verbose)
    rng = random.Random(seed)
    workdir = tempfile.mkdtemp(prefix="lockunit-faults-")
    driver = Driver(args, settings, rng, workdir)
    reports = {}
    try:
        driver.boot()
        for cls in run:
            try:
                reports[cls.name] = driver.run_backend(cls)
            except Exception as e:
                traceback.print_exc()
                driver.failures.append("%s: %s" % (cls.name, e))
    finally:
        driver.shutdown()
    print("\nseed %d; ttl %gs, renew %gs, stop_timeout %gs, WatchdogSec=%s, RestartSec=%gs; "
          "recovery bound %g s" % (seed, settings.ttl, settings.renew, settings.stop_timeout,
                                   ("%gs" % settings.watchdog) if settings.watchdog else "0",
                                   settings.restart_sec, driver.recovery_bound()))
    print(driver.table())
    for name, rep in reports.items():
        print("%-15s %s" % (name, rep.summary()))
    for line in driver.limits:
        print("documented limit: " + line)
    for line in driver.failures:
        print("FAILURE: " + line)
    keep = args.keep or args.verbose or driver.failures or driver.limits
    if keep:
        print("records kept in %s/out" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if driver.failures else 0


if __name__ == "__main__":
    sys.exit(main())
