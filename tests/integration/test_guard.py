#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The lock guard, against real processes and real servers: whatever happens to lockunit's main
process (SIGKILL, SIGQUIT, a crash, a pause with no watchdog) or to the guard itself, the next
holder never starts while any process of the old payload's tree lives, and after a dead
lockunit it starts within the payload's stop time + 0.5 s, not after the lease's ttl.

The old payload is the recording test payload with a setsid'd, double-forked daemon child that
ignores SIGTERM (it dies only of the SIGKILL after stop_timeout), and it lingers 1 s on SIGTERM
itself. Every test runs in process-group mode; tests/e2e covers scope mode under systemd."""

import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import (EX_LOST, LockunitTestCase, holder_spans, main, payload,  # noqa: E402
                           pid_alive, read_runs, require, wait_for)
from etcd_fixture import ETCD, EtcdCluster  # noqa: E402
from postgres_fixture import POSTGRES, SUPERUSER_PASSWORD, PostgresServer  # noqa: E402
import redis_fixture  # noqa: E402
import zookeeper_fixture  # noqa: E402

STOP_TIMEOUT = 2.0  # the daemon child ignores SIGTERM: the tree ends at the SIGKILL after this
LINGER_MS = 1000


def guard_of(pid):
    """The lock guard of the lockunit with this pid: its child named lockunit-guard."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            children = [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return None
    for child in children:
        try:
            with open("/proc/%d/comm" % child) as f:
                if f.read().strip() == "lockunit-guard":
                    return child
        except FileNotFoundError:
            pass
    return None


class GuardCase(LockunitTestCase):
    """One backend; subclasses give backend_args()."""

    ttl = "15s"

    def backend_args(self):
        raise NotImplementedError

    def args(self, name, node, *extra, ttl=None, renew=None):
        a = ["--scope=no", "--name=" + name] + self.backend_args() + [
             "--stop-timeout=%gs" % STOP_TIMEOUT, "--ttl=" + (ttl or self.ttl)]
        if renew:
            a.append("--renew=" + renew)
        return a + list(extra) + ["--"] + payload(self.log, node, "--linger", LINGER_MS,
                                                  "--daemon-child")

    def setUp(self):
        super().setUp()
        self.log = self.path("runs.log")

    def start_holder_and_waiter(self, name, **kw):
        a = self.start(self.args(name, "A", **kw), label="A")
        self.assertTrue(wait_for(lambda: {"A", "A/child"} <= {r.node for r in read_runs(self.log)},
                                 15), a.stderr())
        b = self.start(self.args(name, "B", **kw), label="B")
        # B is a waiter: it said so, and it has not started.
        self.assertTrue(wait_for(lambda: "waiting for lock" in b.stderr(), 15), b.stderr())
        return a, b

    def assert_handover(self, b, since, bound):
        """B starts only once A's whole tree is gone, within `bound` seconds of `since`."""
        self.assertTrue(wait_for(lambda: "B" in holder_spans(read_runs(self.log)), 60),
                        "B never started: " + b.stderr())
        time.sleep(0.3)  # let any survivor of A's tree write one more heartbeat
        h = holder_spans(read_runs(self.log))
        a_end, b_start = h["A"][1], h["B"][0]
        print("A's tree ended %.3f s after the event; B started %.3f s after that"
              % (a_end - since, b_start - a_end))
        self.assertLess(a_end, b_start, "B started while A's tree still ran: %r" % h)
        self.assertLess(b_start - since, bound, "takeover took %.3f s" % (b_start - since))

    def kill_main_and_check(self, sig):
        a, b = self.start_holder_and_waiter("kill%d" % sig)
        since = time.time()
        a.signal(sig)
        a.wait(10)
        # Within the stop time + 0.5 s (the bound allows for a noisy machine), far below the
        # 15 s ttl that a lease would need to run out.
        self.assert_handover(b, since, STOP_TIMEOUT + 0.5 + 1.5)

    def test_sigkill_of_lockunit_passes_the_lock_only_after_the_tree_and_without_the_ttl(self):
        self.kill_main_and_check(signal.SIGKILL)

    def test_the_release_after_a_dead_lockunit_is_clean(self):
        # The guard releases in release mode once the tree is gone: the waiter owes no
        # lock-delay (docs/guarantees.md, "Lock-delay").
        a, b = self.start_holder_and_waiter("clean")
        a.signal(signal.SIGKILL)
        a.wait(10)
        self.assertTrue(wait_for(lambda: "B" in holder_spans(read_runs(self.log)), 30),
                        b.stderr())
        self.assertNotIn("lock-delay", b.stderr())

    def test_sigsegv_of_lockunit_passes_the_lock_only_after_the_tree(self):
        self.kill_main_and_check(signal.SIGSEGV)

    def test_sigquit_stops_like_sigterm(self):
        a, b = self.start_holder_and_waiter("quit")
        since = time.time()
        a.signal(signal.SIGQUIT)
        self.assertEqual(a.wait(10), 0, a.stderr())
        self.assert_handover(b, since, STOP_TIMEOUT + 0.5 + 1.5)

    def test_sigkill_of_the_guard_stops_the_payload_as_a_lost_lock(self):
        a, b = self.start_holder_and_waiter("guard")
        guard = guard_of(a.pid)
        self.assertIsNotNone(guard)
        since = time.time()
        os.kill(guard, signal.SIGKILL)
        self.assertEqual(a.wait(10), EX_LOST, a.stderr())
        self.assertIn("lock guard", a.stderr())
        self.assert_handover(b, since, STOP_TIMEOUT + 0.5 + 1.5)

    def test_the_guard_ignores_sigterm_and_holds_no_payload_fd(self):
        a = self.start(self.args("quiet", "A"), label="A")
        self.assertTrue(wait_for(lambda: read_runs(self.log), 15), a.stderr())
        guard = guard_of(a.pid)
        self.assertIsNotNone(guard)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            os.kill(guard, sig)
        time.sleep(0.2)
        self.assertTrue(pid_alive(guard))
        self.assertTrue(a.alive(), a.stderr())
        payload_pid = [r.pid for r in read_runs(self.log) if r.node == "A"][0]
        fds = os.listdir("/proc/%d/fd" % payload_pid)
        self.assertLessEqual(set(fds), {"0", "1", "2"}, "the payload sees more fds: %r" % fds)
        a.signal(signal.SIGTERM)
        self.assertEqual(a.wait(10), 0, a.stderr())
        self.assertFalse(pid_alive(guard))


class LeaseGuardCase(GuardCase):
    """A stalled lockunit (SIGSTOP, no watchdog): the guard stops the tree before the lease
    can run out, so the next holder, which gets the lock once the lease has expired, never
    overlaps it."""

    def test_sigstop_of_lockunit_without_watchdog_never_overlaps(self):
        a, b = self.start_holder_and_waiter("stall", ttl="5s", renew="1s")
        since = time.time()
        a.signal(signal.SIGSTOP)
        try:
            self.assertTrue(wait_for(lambda: "B" in holder_spans(read_runs(self.log)), 30),
                            "B never started: " + b.stderr())
            time.sleep(0.3)
            h = holder_spans(read_runs(self.log))
            print("stalled holder's tree ended %.3f s after the SIGSTOP, B started %.3f s later"
                  % (h["A"][1] - since, h["B"][0] - h["A"][1]))
            self.assertLess(h["A"][1], h["B"][0], "overlap after a stall: %r" % h)
        finally:
            a.signal(signal.SIGCONT)
        self.assertEqual(a.wait(10), EX_LOST, a.stderr())


class FileGuardTest(GuardCase):
    def backend_args(self):
        return ["--backend=file://" + self.path("locks")]


class PostgresGuardTest(GuardCase):
    """A session lock: the guard holds a duplicate of the session's socket until the tree is
    gone, then releases in release mode (a clean release: the waiter owes no lock-delay)."""

    @classmethod
    def setUpClass(cls):
        require(POSTGRES)
        cls.server = PostgresServer()
        try:
            cls.server.start()
        except Exception:
            cls.server.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.destroy()

    def backend_args(self):
        pw, conf = self.path("pw"), self.path("pg.toml")
        if not os.path.exists(conf):
            with open(pw, "w") as f:
                f.write(SUPERUSER_PASSWORD + "\n")
            os.chmod(pw, 0o600)
            with open(conf, "w") as f:
                f.write('[postgres]\npassword_file = "%s"\n' % pw)
        return ["--conf=" + conf, "--backend=" + self.server.url()]


class RedisGuardTest(LeaseGuardCase):
    @classmethod
    def setUpClass(cls):
        require(redis_fixture.REDIS_SERVER)
        cls.workdir = tempfile.mkdtemp(prefix="lockunit-guard-redis-")
        cls.server = redis_fixture.Server(cls.workdir, "redis")
        cls.server.start()
        cls.server.ready_for_ttl(15)  # a younger server grants no lock of ttl 15 s

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def backend_args(self):
        return ["--backend=redis://127.0.0.1:%d" % self.server.port]


class EtcdGuardTest(LeaseGuardCase):
    @classmethod
    def setUpClass(cls):
        require(ETCD)
        cls.etcd = EtcdCluster(1)
        cls.etcd.start()

    @classmethod
    def tearDownClass(cls):
        cls.etcd.stop()

    def backend_args(self):
        return ["--backend=" + self.etcd.url()]


class RedlockGuardTest(LeaseGuardCase):
    """Three independent servers: the guard's release frees the key on every one."""

    @classmethod
    def setUpClass(cls):
        require(redis_fixture.REDIS_SERVER)
        cls.workdir = tempfile.mkdtemp(prefix="lockunit-guard-redlock-")
        cls.nodes = [redis_fixture.Server(cls.workdir, "node%d" % i) for i in range(3)]
        for n in cls.nodes:
            n.start()
        cls.nodes[-1].ready_for_ttl(15)  # a node younger than one ttl does not vote

    @classmethod
    def tearDownClass(cls):
        for n in cls.nodes:
            n.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def backend_args(self):
        return ["--backend=redlock://" + ",".join("127.0.0.1:%d" % n.port for n in self.nodes)]


class SentinelGuardTest(LeaseGuardCase):
    @classmethod
    def setUpClass(cls):
        require(redis_fixture.REDIS_SERVER)
        cls.workdir = tempfile.mkdtemp(prefix="lockunit-guard-sentinel-")
        cls.cluster = redis_fixture.Sentinels(cls.workdir).start()
        cls.cluster.master.ready_for_ttl(15)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def backend_args(self):
        return ["--backend=" + self.cluster.url()]


class ZooKeeperGuardTest(LeaseGuardCase):
    """The session timeout is the ttl (at most the ensemble's maxSessionTimeout)."""

    @classmethod
    def setUpClass(cls):
        require(zookeeper_fixture.JAVA, zookeeper_fixture.ZOOKEEPER_JAR)
        cls.zk = zookeeper_fixture.ZooKeeperEnsemble(1, tick_ms=500, max_session_ms=60000)
        try:
            cls.zk.start()
        except Exception:
            cls.zk.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.zk.stop()

    def backend_args(self):
        return ["--backend=" + self.zk.url()]


del GuardCase, LeaseGuardCase  # only the concrete backends run

if __name__ == "__main__":
    main()
