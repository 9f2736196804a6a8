#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The lockunit binary on the ZooKeeper backend, against a real 3-member ZooKeeper 3.8 ensemble
that the tests start on free loopback ports (one for the whole module: a JVM start costs
seconds). tickTime 500 ms, so the servers accept session timeouts from 1 s to 60 s."""

import http.server
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "faults"))
from lockunit_test import (contend_in_cycles, EX_CONFIG, EX_LOST, EX_UNAVAILABLE, LockunitTestCase,
                           main, max_concurrency, payload, read_runs, require, run,
                           tokens_increase, wait_for)

require("java", "/usr/share/java/zookeeper.jar")
from etcd_fixture import free_ports  # noqa: E402
from proxy import Hub  # noqa: E402
from zookeeper_fixture import ZooKeeperEnsemble  # noqa: E402

# ttl 4 s: renew 1 s + stop_timeout 1 s + margin fit under it, and a lost session ends soon.
FAST = ("--ttl=4s", "--renew=1s", "--stop-timeout=1s")


class ZooKeeperTest(LockunitTestCase):
    @classmethod
    def setUpClass(cls):
        cls.zk = ZooKeeperEnsemble(3, tick_ms=500, max_session_ms=60000)
        try:
            cls.zk.start()
        except Exception:
            cls.zk.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.zk.stop()

    def setUp(self):
        super().setUp()
        self.lock = self.id().rsplit(".", 1)[-1].replace("test_", "")[:60]

    def args(self, *extra, url=None):
        return ["--backend=" + (url or self.zk.url()), "--name=" + self.lock, "--scope=no"] + \
            list(extra or FAST)

    def hold(self, *extra, log=None, node="holder", url=None):
        log = log or self.path("runs.log")
        inst = self.start(self.args(*extra, url=url) + ["--"] + payload(log, node), label=node)
        self.assertTrue(wait_for(lambda: any(r.node == node for r in read_runs(log)), 20),
                        inst.stderr())
        return inst, log

    def write_conf(self, text, name="zk.toml"):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)  # a password file others can read is refused
        return path

    # ---- the recipe ----

    def test_four_contenders_fifteen_cycles_never_overlap_and_tokens_increase(self):
        log = self.path("runs.log")
        failures, took = contend_in_cycles(
            lambda i: self.args() + ["--"] + payload(log, "n%d" % i, "--hold", 10),
            contenders=4, cycles=15)
        print("4 x 15 cycles in %.1f s" % took)
        self.assertEqual(failures, [])
        runs = read_runs(log)
        self.assertEqual(len(runs), 60)
        self.assertNoOverlap(runs)
        ok, tokens = tokens_increase(runs)
        self.assertTrue(ok, "tokens not strictly increasing: %r" % tokens)
        self.assertEqual(len(set(tokens)), 60)
        code, out, _ = run(["status"] + self.args())
        self.assertEqual(code, 3, out)  # free: every node was deleted

    def test_six_contenders_on_three_holders_never_exceed_three(self):
        log = self.path("runs.log")
        insts = [self.start(self.args("--holders=3", *FAST) + ["--"] +
                            payload(log, "n%d" % i, "--hold", 700)) for i in range(6)]
        for inst in insts:
            self.assertEqual(inst.wait(60), 0, inst.stderr())
        runs = read_runs(log)
        self.assertEqual(len(runs), 6)
        self.assertEqual(max_concurrency(runs), 3, runs)
        self.assertNoOverlap(runs, holders=3)

    def test_status_lists_the_holder_and_counts_the_waiters(self):
        holder, log = self.hold()
        waiters = [self.start(self.args() + ["--", "true"], label="w%d" % i) for i in range(2)]
        for w in waiters:
            self.assertTrue(wait_for(lambda: "waiting" in w.stderr(), 10), w.stderr())
        code, out, err = run(["status"] + self.args())
        self.assertEqual(code, 0, err)
        self.assertIn("pid %d" % holder.pid, out)
        self.assertIn("token " + read_runs(log)[0].token, out)
        self.assertIn("waiters: 2", out)

    def test_an_idle_waiter_sends_only_pings_and_wakes_at_once(self):
        # ttl 9 s: the client pings every 3 s. The waiter talks to member 0 only, the holder
        # to member 1, so member 0's count is the waiter's.
        timing = ("--ttl=9s", "--renew=3s", "--stop-timeout=1s")
        first, second = self.zk.members[:2]
        holder, log = self.hold(*timing, url=self.zk.url([second]))
        waiter = self.start(self.args(*timing, url=self.zk.url([first])) + ["--"] +
                            payload(log, "waiter", "--hold", 0), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        time.sleep(1)
        period = 10.5  # holds 3 or 4 pings, 3 s apart
        before = self.zk.packets_received([first])
        time.sleep(period)
        sent = self.zk.packets_received([first]) - before
        print("an idle waiter sent %d packets in %.0f s" % (sent, period))
        self.assertLessEqual(sent, 4)
        holder.signal(signal.SIGTERM)
        released = time.time_ns()
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())
        took = ([r for r in read_runs(log) if r.node == "waiter"][0].start - released) / 1e9
        print("the watch woke the waiter %.0f ms after the holder's SIGTERM" % (took * 1000))
        self.assertLess(took, 1.0)
        self.assertNoOverlap(read_runs(log))

    def test_sigterm_while_waiting_exits_at_once_and_removes_its_node(self):
        self.hold()
        waiter = self.start(self.args() + ["--", "true"], label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        self.assertIn("waiters: 1", run(["status"] + self.args())[1])
        self.assertStopsAtOnceOnSigterm(waiter)
        self.assertIn("waiters: 0", run(["status"] + self.args())[1])

    def test_sigterm_while_the_server_does_not_answer_exits_at_once(self):
        # The waiter talks to member 0 only, which is then stopped (for well under the
        # ensemble's syncLimit, so no election follows).
        first, second = self.zk.members[:2]
        self.hold(url=self.zk.url([second]))
        waiter = self.start(self.args(url=self.zk.url([first])) + ["--", "true"], label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        first.proc.send_signal(signal.SIGSTOP)
        try:
            self.assertStopsAtOnceOnSigterm(waiter)
        finally:
            first.proc.send_signal(signal.SIGCONT)

    # ---- failures ----

    def test_holder_node_dies_a_waiter_takes_over_after_the_session_timeout(self):
        # lockunit and its lock guard die together (a node that dies): nobody deletes the node,
        # so it goes with the session. (A SIGKILL of lockunit alone: test_guard.py.)
        holder, log = self.hold()
        waiter = self.start(self.args() + ["--"] + payload(log, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        killed = time.time_ns()
        holder.kill_with_guard()
        self.assertTrue(wait_for(lambda: any(r.node == "waiter" for r in read_runs(log)), 20),
                        waiter.stderr())
        took = ([r for r in read_runs(log) if r.node == "waiter"][0].start - killed) / 1e9
        print("takeover %.2f s after SIGKILL (session timeout 4 s)" % took)
        # The session was last heard at most 1 s (a renewal) before the kill.
        self.assertGreater(took, 2.5)
        self.assertLess(took, 10.0)
        self.assertNoOverlap(read_runs(log))

    def test_leader_killed_the_holder_keeps_its_lock_and_hands_over(self):
        timing = ("--ttl=9s", "--renew=1s", "--stop-timeout=1s")
        log = self.path("runs.log")
        holder = self.start(self.args(*timing) + ["--"] + payload(log, "holder", "--hold", 5000),
                            label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 20), holder.stderr())
        waiter = self.start(self.args(*timing) + ["--"] + payload(log, "waiter", "--hold", 0),
                            label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        leader = self.zk.leader()
        self.assertIsNotNone(leader)
        self.zk.kill(leader)
        try:
            self.assertEqual(holder.wait(30), 0, holder.stderr())
            self.assertEqual(waiter.wait(30), 0, waiter.stderr())
        finally:
            self.zk.restart(leader)
            self.assertTrue(wait_for(lambda: self.zk.serving(leader), 60), self.zk.member_log(leader))
        runs = read_runs(log)
        self.assertEqual([r.node for r in runs], ["holder", "waiter"])
        self.assertTrue(runs[0].ended, "the holder's payload did not run to its end")
        self.assertNoOverlap(runs)

    def test_partitioned_holder_stops_before_its_session_expires_and_a_waiter_takes_over(self):
        hub = Hub()
        try:
            proxy = hub.proxy(self.zk.members[0].client_port, "holder")
            url = "zookeeper://" + proxy.address
            holder, log = self.hold(url=url)
            waiter = self.start(self.args() + ["--"] + payload(log, "waiter"), label="waiter")
            self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
            proxy.set_blackhole()
            cut = time.time_ns()
            self.assertEqual(holder.wait(20), EX_LOST, holder.stderr())
            self.assertTrue(wait_for(lambda: any(r.node == "waiter" for r in read_runs(log)), 20),
                            waiter.stderr())
        finally:
            hub.close()
        runs = read_runs(log)
        print("holder's payload stopped %.2f s, waiter started %.2f s after the partition"
              % ((runs[0].last - cut) / 1e9, (runs[1].start - cut) / 1e9))
        self.assertNoOverlap(runs)
        self.assertGreater(int(runs[1].token), int(runs[0].token))

    def test_wrong_password_exits_69(self):
        good = self.write_conf("alice-good\n", "good.pw")
        bad = self.write_conf("alice-bad\n", "bad.pw")
        url = self.zk.url(chroot="/auth")

        def conf(pw):
            return self.write_conf('backend = "%s"\nname = "%s"\nttl = "4s"\nrenew = "1s"\n'
                                   'stop_timeout = "1s"\n[zookeeper]\nuser = "alice"\n'
                                   'password_file = "%s"\n' % (url, self.lock, pw),
                                   os.path.basename(pw) + ".toml")

        code, out, err = run(["--conf=" + conf(good), "--scope=no", "--", "echo", "ok"])
        self.assertEqual((code, out.strip()), (0, "ok"), err)
        code, _, err = run(["--conf=" + conf(bad), "--scope=no", "--", "true"])
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("NOAUTH", err)
        self.assertNotIn("alice-bad", err)

    def test_a_server_that_is_not_zookeeper_exits_69_and_says_so(self):
        class Quiet(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = "zk://127.0.0.1:%d" % server.server_address[1]
            t0 = time.monotonic()
            code, _, err = run(self.args(url=url) + ["--", "true"])
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("did not answer as ZooKeeper does (is it a ZooKeeper client port?)", err)

    def test_unreachable_server_exits_69(self):
        (dead,) = free_ports(1)
        code, _, err = run(self.args(url="zookeeper://127.0.0.1:%d" % dead) + ["--", "true"])
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("cannot reach ZooKeeper at 127.0.0.1:%d" % dead, err)

    def test_a_negotiated_timeout_that_breaks_the_deadline_rule_exits_78(self):
        # The servers clamp a 90 s session timeout to their maxSessionTimeout, 60 s; renew
        # 50 s + stop_timeout 10 s does not fit under that.
        code, _, err = run(self.args("--ttl=90s", "--renew=50s", "--stop-timeout=10s") +
                           ["--", "true"])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("negotiated a session timeout of 1m for ttl 1m30s", err)
        # Within the servers' bounds, the same lock works.
        code, _, err = run(self.args("--ttl=60s", "--renew=20s", "--stop-timeout=10s") +
                           ["--", "true"])
        self.assertEqual(code, 0, err)

    def test_malformed_urls_and_keys_are_config_errors(self):
        for url, what in (("zookeeper://alice:pw@h:2181", "credentials do not go in the URL"),
                          ("zookeeper://h:99999", "bad port"), ("zk://h1,,h2", "empty host")):
            code, _, err = run(self.args(url=url) + ["--", "true"])
            self.assertEqual(code, EX_CONFIG, "%s: %s" % (url, err))
            self.assertIn(what, err)
            self.assertNotIn(":pw@", err)
        conf = self.write_conf('backend = "%s"\nname = "x"\n[zookeeper]\nuser = "alice"\n'
                               % self.zk.url())
        code, _, err = run(["--conf=" + conf, "--scope=no", "--", "true"])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("zookeeper.user: is set but neither password_file nor", err)

    def test_payload_gets_the_czxid_token_and_the_scheme(self):
        code, out, err = run(self.args(url=self.zk.url().replace("zookeeper://", "zk://")) +
                             ["--", "sh", "-c", "echo T=$LOCKUNIT_TOKEN B=$LOCKUNIT_BACKEND"])
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"T=\d+ B=zk\n")


if __name__ == "__main__":
    main()
