#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""redlock:// against five independent redis-server processes on loopback."""

import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import (EX_BUSY, EX_LOST, EX_UNAVAILABLE, LockunitTestCase, main, payload,
                           pid_alive, read_runs, require, run, wait_for)
import redis_fixture
from redis_fixture import Server

TTL = 3
TIMING = ["--ttl=3s", "--renew=1s", "--stop-timeout=1s"]


class Redlock(LockunitTestCase):
    def setUp(self):
        super().setUp()
        self.nodes = [Server(self.dir, "node%d" % i).start() for i in range(5)]
        self.nodes[-1].ready_for_ttl(TTL)  # a node younger than one ttl does not vote

    def tearDown(self):
        for n in self.nodes:
            n.stop()
        super().tearDown()

    def base(self, name, *extra):
        url = "redlock://" + ",".join("127.0.0.1:%d" % n.port for n in self.nodes)
        return ["--backend=" + url, "--name=" + name, "--scope=no"] + TIMING + list(extra)

    def test_contenders_take_turns_and_the_token_is_empty(self):
        log = self.path("runs.log")
        insts = [self.start(self.base("turns") + ["--"] + payload(log, "c%d" % i, "--hold", 200))
                 for i in range(4)]
        for inst in insts:
            self.assertEqual(inst.wait(60), 0, inst.stderr())
        runs = read_runs(log)
        self.assertEqual(sorted(r.node for r in runs), ["c%d" % i for i in range(4)])
        self.assertNoOverlap(runs)
        self.assertEqual({r.token for r in runs}, {"-"})  # LOCKUNIT_TOKEN is empty
        for n in self.nodes:
            self.assertEqual(n.cmd("EXISTS", "lockunit:turns"), 0)  # released everywhere

    def test_two_nodes_down_still_acquires(self):
        self.nodes[0].kill()
        self.nodes[1].signal(signal.SIGSTOP)  # one dead, one hung
        code, out, err = run(self.base("two", "--wait=0") + ["--", "sh", "-c", "echo T=[$LOCKUNIT_TOKEN]"])
        self.assertEqual(code, 0, err)
        self.assertIn("T=[]", out)

    def test_three_nodes_down_refuses_with_69(self):
        for n in self.nodes[:3]:
            n.kill()
        marker = self.path("ran")
        t0 = time.monotonic()
        code, _, err = run(self.base("three") + ["--", "touch", marker])
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("only 2 of 5 redlock nodes answered (quorum 3)", err)
        self.assertFalse(os.path.exists(marker))
        self.assertLess(time.monotonic() - t0, 5)
        print("3 of 5 down: " + err.strip().splitlines()[-1][:160])

    def test_busy_with_wait_zero_exits_75(self):
        holder = self.start(self.base("busy") + ["--", "sleep", "30"], label="holder")
        self.assertTrue(wait_for(lambda: "acquired" in holder.stderr(), 10), holder.stderr())
        code, _, err = run(self.base("busy", "--wait=0") + ["--", "true"])
        self.assertEqual(code, EX_BUSY, err)
        code, out, err = run(["status"] + self.base("busy"))
        self.assertEqual(code, 0, err)
        self.assertIn("pid %d" % holder.pid, out)

    def test_lock_kept_while_a_quorum_extends_lost_when_it_cannot(self):
        log = self.path("runs.log")
        holder = self.start(self.base("quorum") + ["--"] + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        self.nodes[0].kill()
        self.nodes[1].kill()
        time.sleep(2 * TTL)  # renewals on 3 of 5 nodes keep it
        self.assertTrue(holder.alive(), holder.stderr())
        self.assertTrue(pid_alive(read_runs(log)[0].pid))
        killed_at = time.time()
        self.nodes[2].kill()
        self.assertEqual(holder.wait(TTL + 5), EX_LOST, holder.stderr())
        run_ = read_runs(log)[0]
        self.assertFalse(pid_alive(run_.pid))
        self.assertLess(run_.last / 1e9, killed_at + TTL)

    def lock_args(self, name):
        return lambda *extra: self.base(name)[:3] + list(extra or TIMING)

    LINGER = dict(stop_timeout="1s", linger_ms=700, timing=("--ttl=3s", "--renew=1s"))

    def test_graceful_release_of_a_lingering_payload_costs_no_lock_delay(self):
        # No release message on redlock: the waiter looks again every 0.3 to 1 s.
        self.assertCleanHandoverOfALingeringPayload(self.lock_args("clean-linger"), bound=1.2,
                                                    **self.LINGER)

    def test_keys_deleted_by_hand_on_a_majority_make_the_waiter_wait_out_the_lingering_payload(self):
        def forget(holder):
            for n in self.nodes[:3]:
                n.cmd("DEL", "lockunit:del-linger")
        self.assertUncleanEndCostsTheLockDelay(
            self.lock_args("del-linger"), forget, "DEL on 3 of 5 redlock nodes",
            holder_exit=EX_LOST, delay=("2s500ms", 2.5), **self.LINGER)

    def test_a_node_that_may_evict_the_lock_key_is_refused(self):
        self.nodes[2].cmd("CONFIG", "SET", "maxmemory", "100mb")
        self.nodes[2].cmd("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        code, _, err = run(self.base("evict", "--wait=0") + ["--", "true"])
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("may evict the lock key 'lockunit:evict'", err)
        self.assertIn("127.0.0.1:%d" % self.nodes[2].port, err)

    def test_holder_killed_waiter_takes_over_after_the_ttl(self):
        log = self.path("runs.log")
        holder = self.start(self.base("kill") + ["--"] + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        waiter = self.start(self.base("kill") + ["--"] + payload(log, "waiter", "--hold", 100), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting for lock" in waiter.stderr(), 10))
        t0 = time.time()
        holder.signal(signal.SIGKILL)
        self.assertEqual(waiter.wait(TTL + 5), 0, waiter.stderr())
        first, second = read_runs(log)
        print("redlock takeover after SIGKILL: %.2f s" % (second.start / 1e9 - t0))
        self.assertLess(second.start / 1e9 - t0, TTL + 2)
        self.assertGreater(second.start, first.last)


if __name__ == "__main__":
    require(redis_fixture.REDIS_SERVER)
    main()
