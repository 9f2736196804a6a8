#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""redis+sentinel:// against a real master, replica and three sentinels on loopback."""

import contextlib
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import (EX_BUSY, EX_LOST, LockunitTestCase, main, payload, pid_alive,
                           read_runs, require, run, wait_for)
import redis_fixture
from redis_fixture import Sentinels


class Sentinel(LockunitTestCase):
    def setUp(self):
        super().setUp()
        self.cluster = Sentinels(self.dir).start()

    def tearDown(self):
        self.cluster.stop()
        super().tearDown()

    def base(self, name, *timing):
        return ["--backend=" + self.cluster.url(), "--name=" + name, "--scope=no"] + list(timing)

    def wait_master(self, port, timeout=30):
        return wait_for(lambda: self.cluster.master_port() == port, timeout, interval=0.1)

    @contextlib.contextmanager
    def replication_cut(self):
        """Inside: the replica is paused and the master has dropped its link, so a write
        reaches only the master."""
        self.cluster.replica.signal(signal.SIGSTOP)
        try:
            self.cluster.master.cmd("CLIENT", "KILL", "TYPE", "replica")
            yield
        finally:
            self.cluster.replica.signal(signal.SIGCONT)

    def test_holder_follows_a_failover_and_keeps_the_lock(self):
        timing = ["--ttl=3s", "--renew=1s", "--stop-timeout=1s"]
        self.cluster.master.ready_for_ttl(3)
        log = self.path("runs.log")
        holder = self.start(self.base("fo", *timing) + ["--"] + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        old, new = self.cluster.master, self.cluster.replica
        self.cluster.sentinels[0].cmd("SENTINEL", "FAILOVER", Sentinels.MASTER_NAME)
        t0 = time.monotonic()
        self.assertTrue(self.wait_master(new.port), "the sentinels never promoted the replica")
        print("manual failover took %.2f s" % (time.monotonic() - t0))
        self.assertTrue(wait_for(lambda: new.cmd("ROLE")[0] == "master", 10))
        # Several renewals later the holder still runs, now renewing on the new master.
        time.sleep(3.5)
        self.assertTrue(holder.alive(), holder.stderr())
        self.assertTrue(pid_alive(read_runs(log)[0].pid))
        self.assertIsNotNone(new.cmd("GET", "lockunit:fo"))
        code, out, err = run(["status"] + self.base("fo", *timing))
        self.assertEqual(code, 0, err)
        self.assertIn("pid %d" % holder.pid, out)
        code, _, err = run(self.base("fo", "--wait=0", *timing) + ["--", "true"])
        self.assertEqual(code, EX_BUSY, err)
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())

    def test_asynchronous_failover_can_lose_the_lock_and_the_token_shows_it(self):
        # The documented loss case: the master acknowledges our SET, dies before its replica
        # has it, the replica is promoted without the key, and a second instance gets the lock
        # while the first still believes in its lease. The first finds out at its next renewal
        # (exit 79); the token of the second is higher, so a resource that checks tokens can
        # refuse the stale holder.
        timing = ["--ttl=10s", "--renew=2s", "--stop-timeout=1s"]
        master, replica = self.cluster.master, self.cluster.replica
        master.ready_for_ttl(10)
        log = self.path("runs.log")
        with self.replication_cut():  # the SET below reaches only the master
            first = self.start(self.base("loss", *timing) + ["--"] + payload(log, "first"), label="first")
            self.assertTrue(wait_for(lambda: read_runs(log), 10), first.stderr())
            master.kill()
        t0 = time.monotonic()
        self.assertTrue(self.wait_master(replica.port, 40), "no failover")
        print("failover after the master's death: %.2f s" % (time.monotonic() - t0))
        self.assertIsNone(replica.cmd("GET", "lockunit:loss"), "the replica had the key after all")
        second = self.start(self.base("loss", *timing) + ["--"] + payload(log, "second", "--hold", 500),
                            label="second")
        self.assertEqual(first.wait(20), EX_LOST, first.stderr())
        self.assertEqual(second.wait(20), 0, second.stderr())
        runs = {r.node: r for r in read_runs(log)}
        a, b = runs["first"], runs["second"]
        overlap = (a.last - b.start) / 1e6
        print("async failover: second holder started %.0f ms %s the first one's payload stopped "
              "(tokens %s -> %s)" % (abs(overlap), "before" if overlap > 0 else "after", a.token, b.token))
        # The second got the lock while the first one's lease had not run out yet.
        self.assertLess(b.start, a.start + 10e9)
        self.assertGreater(int(b.token), int(a.token))

    def test_min_replicas_keeps_the_lock_through_a_failover_right_after_the_acquire(self):
        # As above, but with min_replicas = 1: while the replica cannot have the key, nobody
        # starts; once it has it, the master may die at once and the promoted replica still
        # holds the lock for its holder.
        timing = ["--ttl=10s", "--renew=2s", "--stop-timeout=1s"]
        conf = self.path("repl.toml")
        with open(conf, "w") as f:
            f.write('[redis]\nmin_replicas = 1\n')
        master, replica = self.cluster.master, self.cluster.replica
        master.ready_for_ttl(10)
        log = self.path("runs.log")
        with self.replication_cut():
            first = self.start(["--conf=" + conf] + self.base("repl", *timing) + ["--"] +
                               payload(log, "first"), label="first")
            self.assertTrue(wait_for(lambda: "reached 0 replica(s)" in first.stderr(), 10),
                            first.stderr())
            self.assertEqual(read_runs(log), [], "the payload started on an unreplicated lock")
        self.assertTrue(wait_for(lambda: read_runs(log), 20), first.stderr())
        t_acq = time.monotonic()
        master.kill()  # right after the acquire
        self.assertTrue(self.wait_master(replica.port, 40), "no failover")
        print("failover %.2f s after the acquire" % (time.monotonic() - t_acq))
        self.assertIsNotNone(replica.cmd("GET", "lockunit:repl"), "the promoted replica lost the key")
        second = self.start(["--conf=" + conf] + self.base("repl", *timing) + ["--"] +
                            payload(log, "second", "--hold", 300), label="second")
        self.assertTrue(wait_for(lambda: "waiting for lock" in second.stderr(), 15), second.stderr())
        # With no replica left, the holder's renewals cannot reach min_replicas: it stops on its
        # deadline, and only then can the second one start.
        self.assertEqual(first.wait(30), EX_LOST, first.stderr())
        self.assertIn("min_replicas is 1", first.stderr())
        runs = {r.node: r for r in read_runs(log)}
        a = runs["first"]
        self.assertFalse(pid_alive(a.pid))
        if "second" in runs:
            self.assertGreater(runs["second"].start, a.last)

    def test_a_master_back_from_an_older_snapshot_still_hands_out_higher_tokens(self):
        # The master restarts from an RDB snapshot older than its last grants (here a SAVE;
        # in the fault run the snapshot a server wrote when it last synced as a replica), and
        # the sentinels keep it as the master: the fencing counter is back at an old value.
        # The next token must still be higher than every token granted before.
        timing = ["--ttl=3s", "--renew=1s", "--stop-timeout=1s"]
        master, replica = self.cluster.master, self.cluster.replica
        master.ready_for_ttl(3)
        log = self.path("runs.log")

        def grant(label):
            code, _, err = run(self.base("snap", "--wait=20s", *timing) + ["--"] +
                               payload(log, label, "--hold", 50), timeout=60)
            self.assertEqual(code, 0, err)
            return int(next(r.token for r in read_runs(log) if r.node == label))

        first = grant("first")
        self.assertEqual(master.cmd("SAVE"), "OK")  # the snapshot holds the counter at `first`
        later = [grant("second"), grant("third")]
        replica.kill()  # no replica to fail over to: the sentinels keep the master
        master.kill()
        master.start()
        replica.start()
        self.assertEqual(int(master.cmd("GET", "lockunit:snap:fence")), first,
                         "the master did not come back from the snapshot")
        self.assertTrue(wait_for(lambda: "master_link_status:up" in
                                 replica.cmd("INFO", "replication"), 30))
        self.assertTrue(self.wait_master(master.port), "the sentinels moved the master")
        master.ready_for_ttl(3)
        after = grant("after")
        print("tokens %d, %r; after the restart from the snapshot: %d" % (first, later, after))
        self.assertGreater(after, max(later))

    def test_unknown_master_name_exits_69(self):
        hosts = ",".join("127.0.0.1:%d" % s.port for s in self.cluster.sentinels)
        code, _, err = run(["--backend=redis+sentinel://%s/nosuchmaster" % hosts, "--scope=no",
                            "--ttl=3s", "--renew=1s", "--stop-timeout=1s", "--", "true"])
        self.assertEqual(code, 69, err)
        self.assertIn("does not know master 'nosuchmaster'", err)


if __name__ == "__main__":
    require(redis_fixture.REDIS_SERVER, redis_fixture.REDIS_SENTINEL)
    main()
