#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The lockunit binary on the etcd backend, against real etcd 3.4 servers that the tests start on
free loopback ports: a single member, a 3-member cluster (leader failover), a TLS member with
client certificates and a member with user/password authentication."""

import base64
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import (contend_in_cycles, EX_BUSY, EX_CONFIG, EX_LOST, EX_UNAVAILABLE, PAYLOAD, LockunitTestCase,
                           main, max_concurrency, payload, pid_alive, read_runs, require, run,
                           tokens_increase, wait_for)

require("etcd", "etcdctl")
from etcd_fixture import ETCDCTL, EtcdCluster, free_ports  # noqa: E402

PREFIX = "lockunit/"


class EtcdTestCase(LockunitTestCase):
    cluster_size = 1
    tls = False
    auth_password = None

    @classmethod
    def setUpClass(cls):
        cls.etcd = EtcdCluster(cls.cluster_size, tls=cls.tls, auth_password=cls.auth_password)
        try:
            cls.etcd.start()
        except Exception:
            cls.etcd.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.etcd.stop()

    def setUp(self):
        super().setUp()
        # Each test locks its own name, so that tests sharing a server never meet.
        self.lock = self.id().rsplit(".", 1)[-1].replace("test_", "")[:60]

    def args(self, *extra, url=None, name=None):
        return (["--backend=" + (url or self.etcd.url()), "--name=" + (name or self.lock),
                 "--scope=no"] + list(extra))

    def queue(self):
        return self.etcd.keys(PREFIX + self.lock + "/")

    def hold(self, *extra, label="holder", log=None, node="holder"):
        log = log or self.path("runs.log")
        inst = self.start(self.args(*extra) + ["--"] + payload(log, node), label=label)
        self.assertTrue(wait_for(lambda: any(r.node == node for r in read_runs(log)), 20),
                        inst.stderr())
        return inst, log

    def write_conf(self, text, name="etcd.toml"):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path


class SingleNode(EtcdTestCase):
    def test_five_contenders_forty_cycles_never_overlap_and_tokens_increase(self):
        log = self.path("runs.log")
        failures, took = contend_in_cycles(
            lambda i: self.args() + ["--"] + payload(log, "n%d" % i, "--hold", 10))
        print("5 x 40 cycles in %.1f s" % took)
        self.assertEqual(failures, [])
        runs = read_runs(log)
        self.assertEqual(len(runs), 200)
        self.assertNoOverlap(runs)
        ok, tokens = tokens_increase(runs)
        self.assertTrue(ok, "tokens not strictly increasing: %r" % tokens)
        self.assertEqual(len(set(tokens)), 200)
        self.assertEqual(self.queue(), {}, "keys left behind")

    def test_six_contenders_on_three_holders_never_exceed_three(self):
        log = self.path("runs.log")
        insts = [self.start(self.args("--holders=3") + ["--"] + payload(log, "n%d" % i, "--hold", 700))
                 for i in range(6)]
        for inst in insts:
            self.assertEqual(inst.wait(60), 0, inst.stderr())
        runs = read_runs(log)
        self.assertEqual(len(runs), 6)
        self.assertEqual(max_concurrency(runs), 3, runs)
        self.assertNoOverlap(runs, holders=3)

    def test_wait_zero_when_busy_exits_75_and_leaves_no_key(self):
        holder, _ = self.hold()
        t0 = time.monotonic()
        code, _, err = run(self.args("--wait=0", "--", "true"))
        self.assertEqual(code, EX_BUSY, err)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertIn("busy", err)
        self.assertEqual(len(self.queue()), 1, "the busy contender left its key in the queue")

    def test_wait_expiry_exits_75_after_the_wait_and_leaves_no_key(self):
        self.hold()
        t0 = time.monotonic()
        code, _, err = run(self.args("--wait=1500ms", "--", "true"))
        elapsed = time.monotonic() - t0
        self.assertEqual(code, EX_BUSY, err)
        self.assertGreaterEqual(elapsed, 1.4)
        self.assertLess(elapsed, 6.0)
        self.assertEqual(len(self.queue()), 1)

    def test_sigterm_while_waiting_exits_fast_and_removes_its_key(self):
        self.hold()
        waiter = self.start(self.args() + ["--", "true"], label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        self.assertEqual(len(self.queue()), 2)
        self.assertStopsAtOnceOnSigterm(waiter)
        self.assertEqual(len(self.queue()), 1)

    def test_graceful_release_hands_over_at_once(self):
        log = self.path("runs.log")
        holder = self.start(self.args() + ["--"] + payload(log, "holder", "--hold", 1500))
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        waiter = self.start(self.args() + ["--"] + payload(log, "waiter", "--hold", 0), label="waiter")
        self.assertEqual(holder.wait(20), 0, holder.stderr())
        self.assertEqual(waiter.wait(20), 0, waiter.stderr())
        first, second = read_runs(log)
        gap = (second.start - first.last) / 1e9
        print("handover gap %.1f ms" % (gap * 1000))
        self.assertGreater(gap, 0)
        # The watch wakes the waiter: far below any periodic re-check.
        self.assertLess(gap, 0.5)

    def test_an_idle_waiter_sends_one_keepalive_per_renew_and_still_wakes_at_once(self):
        # ttl 6 s, renew 2 s: the waiter keeps its lease alive every 2 s and leaves the rest
        # to its watch (a full check only every 30 s); the holder renews every 2 s too
        # (keepalive + own key). Before: a check and a keepalive every second.
        timing = ("--ttl=6s", "--renew=2s", "--stop-timeout=1s")
        holder, log = self.hold(*timing)
        waiter = self.start(self.args(*timing) + ["--"] + payload(log, "waiter", "--hold", 0),
                            label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        time.sleep(1)  # past the waiter's start-up requests
        period = 10.0
        before = self.etcd.messages_received()
        time.sleep(period)
        sent = self.etcd.messages_received() - before
        holder_at_most = 2 * (period / 2 + 1)
        waiter_rate = (sent - holder_at_most) / period
        print("%d request messages in %.0f s: the waiter sent at most %.2f/s"
              % (sent, period, max(0, waiter_rate)))
        self.assertLessEqual(waiter_rate, 1.0, "%d messages in %.0f s" % (sent, period))
        holder.signal(signal.SIGTERM)
        released = time.time_ns()
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())
        took = ([r for r in read_runs(log) if r.node == "waiter"][0].start - released) / 1e9
        self.assertLess(took, 2.0, "the watch did not wake the idle waiter")
        self.assertNoOverlap(read_runs(log))

    def test_a_wake_up_whose_check_times_out_is_not_lost(self):
        # The waiter reaches etcd through a proxy that adds 400 ms each way: a round trip takes
        # longer than its request_timeout (renew/2 = 500 ms). The release wakes it through its
        # watch, but the check that follows times out, and the failover comes back to the
        # watch's member (its only one here; with three members, often too), so the watch
        # looks healthy. The wake-up stays owed until a check gets through: once the latency
        # is gone the waiter takes the lock at once, not at the 30 s safety net.
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "faults"))
        from proxy import Hub
        hub = Hub()
        self.addCleanup(hub.close)
        proxy = hub.proxy(int(self.etcd.members[0].endpoint.rsplit(":", 1)[1]))
        timing = ["--ttl=4s", "--renew=1s", "--stop-timeout=1s"]
        holder, log = self.hold(*timing)
        waiter = self.start(self.args(*timing, "-v", url="etcd://" + proxy.address) + ["--"] +
                            payload(log, "waiter", "--hold", 0), label="waiter")
        self.assertTrue(wait_for(lambda: "etcd: watching" in waiter.stderr(), 10),
                        waiter.stderr())
        time.sleep(0.5)
        proxy.set_delay(400)
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        # The deletion reaches the waiter 400 ms later; its check and keepalives time out.
        time.sleep(3)
        proxy.set_pass()
        healed = time.time_ns()
        self.assertTrue(wait_for(lambda: any(r.node == "waiter" for r in read_runs(log)), 12),
                        "the waiter missed the release\n" + waiter.stderr())
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())
        took = ([r for r in read_runs(log) if r.node == "waiter"][0].start - healed) / 1e9
        print("the waiter took over %.2f s after the latency ended" % took)
        self.assertLess(took, 3.0)
        self.assertNoOverlap(read_runs(log))

    def test_holder_node_dies_a_waiter_takes_over_after_the_lease_ttl(self):
        # lockunit and its lock guard die together (a node that dies): nobody can release, so
        # the lease runs out. (A SIGKILL of lockunit alone: tests/integration/test_guard.py.)
        timing = ("--ttl=3s", "--renew=1s", "--stop-timeout=1s")
        holder, log = self.hold(*timing)
        waiter = self.start(self.args(*timing) + ["--"] + payload(log, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        killed = time.time_ns()
        holder.kill_with_guard()
        self.assertTrue(wait_for(lambda: any(r.node == "waiter" for r in read_runs(log)), 15),
                        waiter.stderr())
        runs = read_runs(log)
        took = ([r for r in runs if r.node == "waiter"][0].start - killed) / 1e9
        print("takeover %.2f s after SIGKILL (ttl 3 s, renew 1 s)" % took)
        # The lease was renewed at most 1 s before the kill: etcd keeps it ≥ 2 s more. An
        # expired lease is not a release: then the lock-delay (renew 1 s + stop_timeout 1 s
        # + 0.5 s).
        self.assertIn("lock-delay of 2s500ms", waiter.stderr())
        self.assertGreater(took, 1.5 + 2.5)
        self.assertLess(took, 10.5)
        self.assertNoOverlap(runs)

    def test_sigstop_past_the_ttl_stops_the_payload_on_wake_before_any_backend_io(self):
        # The pause of a whole machine: lockunit and its payload freeze, the lease expires in
        # etcd, a waiter takes over. On wake lockunit must kill its payload before it does
        # anything else. SIGKILL as stop signal: a payload's own SIGTERM handler would run
        # after the wake whatever lockunit did, and blur what this test looks at.
        timing = ("--ttl=3s", "--renew=1s", "--stop-timeout=1s")
        holder, log = self.hold(*timing, "--stop-signal=SIGKILL", "-v")
        waiter = self.start(self.args(*timing) + ["--"] + payload(log, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        holder_pid = read_runs(log)[0].pid
        holder.signal(signal.SIGSTOP)
        os.kill(holder_pid, signal.SIGSTOP)
        stopped = time.time_ns()
        mark = len(holder.stderr())
        self.assertTrue(wait_for(lambda: any(r.node == "waiter" for r in read_runs(log)), 15),
                        waiter.stderr())
        took = ([r for r in read_runs(log) if r.node == "waiter"][0].start - stopped) / 1e9
        print("waiter took over %.2f s after the holder froze" % took)
        self.assertGreater(took, 1.5)
        t0 = time.monotonic()
        holder.signal(signal.SIGCONT)
        self.assertEqual(holder.wait(10), EX_LOST, holder.stderr())
        print("holder exited %.0f ms after SIGCONT" % ((time.monotonic() - t0) * 1000))
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertFalse(pid_alive(holder_pid), "the frozen payload survived")
        after = holder.stderr()[mark:]
        stop_at = after.find("stopping the payload")
        self.assertGreaterEqual(stop_at, 0, after)
        first_io = after.find("etcd: /v3/")
        self.assertTrue(first_io < 0 or first_io > stop_at,
                        "backend I/O before the payload was stopped:\n" + after)
        self.assertNoOverlap(read_runs(log))
        waiter.signal(signal.SIGTERM)
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())

    def test_waiter_whose_lease_expired_while_waiting_queues_again_at_the_back(self):
        # etcd 3.4's own lock recipe takes a waiter's vanished key for the lock; ours re-reads
        # its key and queues again, behind whoever came in the meantime.
        log = self.path("runs.log")
        holder, _ = self.hold(log=log)
        timing = ("--ttl=3s", "--renew=1s", "--stop-timeout=1s")
        late = self.start(self.args(*timing) + ["--"] + payload(log, "late", "--hold", 300), label="late")
        self.assertTrue(wait_for(lambda: len(self.queue()) == 2, 10), late.stderr())
        late.signal(signal.SIGSTOP)
        self.assertTrue(wait_for(lambda: len(self.queue()) == 1, 15), "the frozen waiter's key stayed")
        other = self.start(self.args() + ["--"] + payload(log, "other", "--hold", 300), label="other")
        self.assertTrue(wait_for(lambda: len(self.queue()) == 2, 10), other.stderr())
        late.signal(signal.SIGCONT)
        self.assertTrue(wait_for(lambda: len(self.queue()) == 3, 10), late.stderr())
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        self.assertEqual(other.wait(20), 0, other.stderr())
        self.assertEqual(late.wait(20), 0, late.stderr())
        runs = read_runs(log)
        self.assertEqual([r.node for r in runs], ["holder", "other", "late"], runs)
        self.assertNoOverlap(runs)

    def test_deleting_the_holders_key_is_a_lost_lock(self):
        holder, log = self.hold("--ttl=3s", "--renew=500ms", "--stop-timeout=1s")
        (key,) = self.queue().keys()
        self.etcd.etcdctl("del", key)
        self.assertEqual(holder.wait(10), EX_LOST, holder.stderr())
        self.assertIn("deleted", holder.stderr())
        self.assertFalse(pid_alive(read_runs(log)[0].pid))

    # --- the lock-delay (docs/backends/etcd.md, "Lock-delay") -------------------------------

    def holder_lease(self, holder):
        """The lease id (hex) of the key whose record names `holder`."""
        (key,) = [k for k, v in self.queue().items() if "pid=%d\n" % holder.pid in v]
        return key.rsplit("/", 1)[1]

    def test_graceful_release_of_a_lingering_payload_costs_no_lock_delay(self):
        self.assertCleanHandoverOfALingeringPayload(self.args)

    def test_a_revoked_lease_makes_the_waiter_wait_out_the_lingering_payload(self):
        def revoke(holder):
            self.etcd.etcdctl("lease", "revoke", self.holder_lease(holder))
        self.assertUncleanEndCostsTheLockDelay(self.args, revoke, "etcdctl lease revoke",
                                               holder_exit=EX_LOST, delay=("9s500ms", 9.5))

    def test_deleting_the_holders_key_makes_the_waiter_wait_out_the_lingering_payload(self):
        def delete(holder):
            (key,) = [k for k, v in self.queue().items() if "pid=%d\n" % holder.pid in v]
            self.etcd.etcdctl("del", key)
        self.assertUncleanEndCostsTheLockDelay(self.args, delete, "etcdctl del",
                                               holder_exit=EX_LOST, delay=("9s500ms", 9.5))

    def revision(self):
        return int(json.loads(self.etcd.etcdctl("get", "x", "-w", "json"))["header"]["revision"])

    def history(self, since):
        """The watch responses on the lock's keys from revision `since` on, as etcd replays
        them: lists of (type, key, mod_revision, previous value) per response."""
        watch = subprocess.Popen([ETCDCTL, "--endpoints=" + self.etcd.endpoints(), "watch",
                                  "--prefix", PREFIX + self.lock + "/", "--prev-kv", "-w", "json",
                                  "--rev=%d" % since], stdout=subprocess.PIPE, text=True,
                                 env=dict(os.environ, ETCDCTL_API="3"))
        time.sleep(1)
        watch.kill()
        out = watch.communicate()[0]
        b64 = lambda text: base64.b64decode(text or "").decode()  # noqa: E731
        return [[("DELETE" if e.get("type") == 1 else "PUT", b64(e["kv"]["key"]),
                  int(e["kv"]["mod_revision"]), b64(e.get("prev_kv", {}).get("value")))
                 for e in json.loads(line)["Events"]]
                for line in out.splitlines() if line.startswith("{")]

    def test_a_clean_release_is_one_write_that_deletes_the_key_and_puts_its_marker(self):
        # docs/backends/etcd.md, "Lock-delay": the holder's key goes and KEY/released comes in
        # the one revision that wakes the waiter; the revoke that removes the marker follows.
        holder, log = self.hold()
        waiter = self.start(self.args() + ["--"] + payload(log, "waiter", "--hold", 0),
                            label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        (key,) = [k for k, v in self.queue().items() if "pid=%d\n" % holder.pid in v]
        self.assertIn("token=", self.queue()[key])
        marker = key + "/released"
        before = self.revision()
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        # The revoke ran before the holder exited: its marker is gone.
        self.assertNotIn(marker, self.queue())
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())
        self.assertNotIn("lock-delay", waiter.stderr())
        responses = self.history(before + 1)
        events = [e for r in responses for e in r]
        # The first write after the waiter queued is the release, and it is one revision:
        # the key's deletion (its last value the holder record) and the marker's put.
        release = [e for e in events if e[2] == before + 1]
        self.assertEqual([(e[0], e[1]) for e in release], [("DELETE", key), ("PUT", marker)],
                         events)
        self.assertIn("pid=%d\n" % holder.pid, release[0][3])
        self.assertTrue(any(all(e in r for e in release) for r in responses),
                        "one revision split over two watch responses: %r" % responses)
        # The revoke removed the marker, later.
        (gone,) = [e for e in events if e[0] == "DELETE" and e[1] == marker]
        self.assertGreater(gone[2], before + 1)
        self.assertEqual(self.queue(), {})

    def test_a_lingering_release_marker_is_no_contender(self):
        # A release whose revoke did not get through leaves its marker until its lease runs
        # out: made here by hand, after the holder's key and before everyone else's in create
        # order. `lockunit status` counts it neither as holder nor as waiter, and it takes
        # nobody's place: a newcomer that reads only the nearest keys before its own finds the
        # marker there, so it reads them all and queues behind the holder.
        holder, log = self.hold()
        lease = self.etcd.etcdctl("lease", "grant", "60").split()[1]
        self.addCleanup(self.etcd.etcdctl, "lease", "revoke", lease)
        marker = PREFIX + self.lock + "/" + lease + "/released"
        self.etcd.etcdctl("put", marker, "released\n", "--lease=" + lease)
        code, _, err = run(self.args("--wait=0", "--", "true"))
        self.assertEqual(code, EX_BUSY, err)
        waiter = self.start(self.args() + ["--"] + payload(log, "waiter", "--hold", 0),
                            label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        self.assertEqual(len(self.queue()), 3)
        code, out, err = run(["status", "--json"] + self.args())
        self.assertEqual(code, 0, err)
        status = json.loads(out)
        self.assertEqual([h["pid"] for h in status["holders"]], [holder.pid], out)
        self.assertEqual(status["waiters"], 1, out)
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())
        self.assertNotIn("lock-delay", waiter.stderr())
        self.assertEqual([r.node for r in read_runs(log)], ["holder", "waiter"])
        self.assertNoOverlap(read_runs(log))
        self.assertEqual(list(self.queue()), [marker])

    def test_a_release_by_a_lockunit_from_before_the_marker_costs_no_lock_delay(self):
        # A mixed fleet: the holder, an older lockunit, releases by writing "released" into its
        # key and then revoking its lease (played here with etcdctl); the waiter takes that
        # deletion for the release it is.
        lease = self.etcd.etcdctl("lease", "grant", "60").split()[1]
        key = PREFIX + self.lock + "/" + lease
        self.etcd.etcdctl("put", key, "id=old:1:x\nhost=old\nunit=\npid=1\nsince=\ntoken=7\n"
                          "budget_ms=9500\n", "--lease=" + lease)
        log = self.path("runs.log")
        waiter = self.start(self.args() + ["--"] + payload(log, "waiter", "--hold", 0),
                            label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        time.sleep(0.3)  # watching the old holder's key
        self.etcd.etcdctl("put", key, "released\n", "--lease=" + lease)
        released = time.time_ns()
        self.etcd.etcdctl("lease", "revoke", lease)
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())
        self.assertNotIn("lock-delay", waiter.stderr())
        took = (read_runs(log)[0].start - released) / 1e9
        self.assertLess(took, 2.0)

    def test_sigterm_during_the_lock_delay_releases_and_exits_0(self):
        holder, log, waiter, wlog = self.lingering_holder_and_waiter(self.args)
        self.etcd.etcdctl("lease", "revoke", self.holder_lease(holder))
        self.assertTrue(wait_for(lambda: "lock-delay of" in waiter.stderr(), 10), waiter.stderr())
        self.assertStopsAtOnceOnSigterm(waiter)
        self.assertEqual(read_runs(wlog), [])
        self.assertTrue(wait_for(lambda: not self.queue(), 5), self.queue())

    def test_a_wait_shorter_than_the_lock_delay_releases_and_exits_75(self):
        holder, log = self.hold("--ttl=15s", "--renew=5s", "--stop-timeout=4s")
        waiter = self.start(self.args("--wait=2s") + ["--"] + payload(self.path("w.log"), "w"),
                            label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        self.etcd.etcdctl("lease", "revoke", self.holder_lease(holder))
        self.assertEqual(waiter.wait(10), EX_BUSY, waiter.stderr())
        self.assertIn("longer than --wait allows", waiter.stderr())
        self.assertIn("ended without a release", waiter.stderr())
        self.assertEqual(self.queue(), {})

    def test_status_shows_the_holder_record_and_token(self):
        holder, log = self.hold()
        code, out, err = run(["status"] + self.args())
        self.assertEqual(code, 0, err)
        self.assertIn("held", out)
        self.assertIn("pid %d" % holder.pid, out)
        self.assertIn("token " + read_runs(log)[0].token, out)
        code, out, err = run(["status", "--json"] + self.args())
        self.assertEqual(code, 0, err)
        self.assertIn('"held":true', out)
        self.assertIn('"lease_left_ms":', out)
        (value,) = self.queue().values()
        self.assertIn("pid=%d" % holder.pid, value)
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0)
        code, out, _ = run(["status"] + self.args())
        self.assertEqual(code, 3, out)
        self.assertEqual(self.queue(), {})

    def test_payload_environment_and_no_inherited_sockets(self):
        code, out, err = run(self.args("--", PAYLOAD, "--hold", "0", "--fds"))
        self.assertEqual(code, 0, err)
        self.assertNotIn("socket:", out)
        self.assertNotIn("eventpoll", out)
        self.assertNotIn("eventfd", out)
        code, out, err = run(self.args("--", "sh", "-c", "echo T=$LOCKUNIT_TOKEN B=$LOCKUNIT_BACKEND"))
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"T=\d+ B=etcd\n")

    def test_plain_etcd_maps_no_tls_library(self):
        # TLS is a part of the module (lockunit-etcd-tls.so) loaded only for etcds://: a plain
        # etcd:// lock stays small (libssl and libcrypto are several MB of resident memory).
        code, out, err = run(self.args("--", "sh", "-c", "cat /proc/$(cut -d' ' -f4 /proc/$PPID/stat)/maps"))
        self.assertEqual(code, 0, err)
        self.assertIn("lockunit-etcd.so", out)
        for lib in ("lockunit-etcd-tls", "libssl", "libcrypto", "libcurl", "libgnutls"):
            self.assertNotIn(lib, out)

    def test_sigterm_while_etcd_does_not_answer_is_acted_on_at_once(self):
        member = self.etcd.members[0]
        member.proc.send_signal(signal.SIGSTOP)
        try:
            inst = self.start(self.args("--", "true"))
            time.sleep(0.5)  # lockunit now waits for an answer that does not come
            self.assertTrue(inst.alive(), inst.stderr())
            t0 = time.monotonic()
            inst.signal(signal.SIGTERM)
            self.assertEqual(inst.wait(5), 0, inst.stderr())
            elapsed = time.monotonic() - t0
        finally:
            member.proc.send_signal(signal.SIGCONT)
        print("SIGTERM during a hung request → exit in %.1f ms" % (elapsed * 1000))
        self.assertLess(elapsed, 0.5)

    def test_failover_skips_a_dead_endpoint(self):
        (dead,) = free_ports(1)
        url = "etcd://127.0.0.1:%d,%s" % (dead, self.etcd.members[0].endpoint)
        code, out, err = run(self.args("--", "sh", "-c", "echo ok", url=url))
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), "ok")

    def test_unreachable_server_exits_69_with_a_clear_message(self):
        (dead,) = free_ports(1)
        t0 = time.monotonic()
        code, _, err = run(self.args("--", "true", url="etcd://127.0.0.1:%d" % dead))
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("cannot reach etcd (127.0.0.1:%d: " % dead, err)

    def test_unresolvable_host_exits_69(self):
        code, _, err = run(self.args("--", "true", url="etcd://no-such-host.invalid:2379"))
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("no-such-host.invalid", err)

    def test_a_url_that_is_not_an_etcd_client_url_exits_69(self):
        # A web server on loopback: HTTP/1 only, no gRPC. (etcd's own peer port would not do:
        # it serves the gRPC API too.)
        server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = "etcd://127.0.0.1:%d" % server.server_address[1]
            code, _, err = run(self.args("--", "true", url=url))
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("not speak HTTP/2 (gRPC): is this an etcd 3.4+ client URL?", err)

    def test_malformed_urls_are_config_errors(self):
        for url, what in (("etcd://", "no endpoint"), ("etcd://host:99999", "bad port"),
                          ("etcd://root:pw@host:2379", "credentials do not belong in the URL"),
                          ("etcd://host:2379/prefix", "path")):
            code, _, err = run(self.args("--", "true", url=url))
            self.assertEqual(code, EX_CONFIG, "%s: %s" % (url, err))
            self.assertIn(what, err)
            self.assertNotIn(":pw@", err)

    def test_etcd_table_keys_are_checked(self):
        pw, open_pw = self.path("pw"), self.path("pw-open")
        for path, mode in ((pw, 0o600), (open_pw, 0o644)):
            with open(path, "w") as f:
                f.write("x\n")
            os.chmod(path, mode)
        cases = (
            ('[etcd]\nrequest_timeout = "6s"\n', "etcd.request_timeout: 6s must stay under renew 5s"),
            ('[etcd]\nca_file = "/etc/hostname"\n', "etcd.ca_file: is only used with etcds://"),
            ('[etcd]\nuser = "root"\n', "etcd.user: is set but neither password_file nor"),
            ('[etcd]\npassword_file = "%s"\n' % pw, "a password needs [etcd] user"),
            ('[etcd]\nuser = "root"\npassword_file = "%s"\n' % open_pw,
             "etcd.password_file: '%s' can be read by every user (mode 0644)" % open_pw),
            ('[etcd]\nprefix = ""\n', "etcd.prefix: must not be empty"),
        )
        for table, message in cases:
            conf = self.write_conf('backend = "%s"\nname = "%s"\n%s' % (self.etcd.url(), self.lock, table))
            code, _, err = run(["--conf=" + conf, "--scope=no", "--", "true"])
            self.assertEqual(code, EX_CONFIG, table + err)
            self.assertIn(message, err)
        conf = self.write_conf('[etcd]\nprefixx = "a/"\n')
        code, _, err = run(["check", "--conf=" + conf])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("etcd.prefixx: unknown key", err)

    def test_prefix_and_timeouts_from_the_etcd_table(self):
        conf = self.write_conf('backend = "%s"\nname = "%s"\n[etcd]\nprefix = "custom/locks/"\n'
                               'request_timeout = "800ms"\nconnect_timeout = "300ms"\n'
                               % (self.etcd.url(), self.lock))
        inst = self.start(["--conf=" + conf, "--scope=no", "--", "sleep", "30"])
        self.assertTrue(wait_for(lambda: self.etcd.keys("custom/locks/" + self.lock + "/"), 10),
                        inst.stderr())
        inst.signal(signal.SIGTERM)
        self.assertEqual(inst.wait(10), 0, inst.stderr())
        self.assertEqual(self.etcd.keys("custom/locks/"), {})


    def test_queues_with_etcdctl_lock_on_the_same_prefix(self):
        conf = self.write_conf('backend = "%s"\nname = "%s"\n[etcd]\nprefix = "x-"\n'
                               % (self.etcd.url(), self.lock))
        log = self.path("runs.log")
        ctl = subprocess.Popen([ETCDCTL, "--endpoints=" + self.etcd.endpoints(), "lock",
                                "x-" + self.lock, "--"] + payload(log, "etcdctl", "--hold", 1000),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self.assertTrue(wait_for(lambda: read_runs(log), 10), "etcdctl lock never ran")
            code, _, err = run(["--conf=" + conf, "--scope=no", "--wait=0", "--", "true"])
            self.assertEqual(code, EX_BUSY, err)
            code, _, err = run(["--conf=" + conf, "--scope=no", "--"] + payload(log, "lockunit", "--hold", 0))
            self.assertEqual(code, 0, err)
            self.assertEqual(ctl.wait(10), 0)
        finally:
            if ctl.poll() is None:
                ctl.kill()
                ctl.wait()
        runs = read_runs(log)
        self.assertEqual([r.node for r in runs], ["etcdctl", "lockunit"])
        self.assertNoOverlap(runs)


class Cluster(EtcdTestCase):
    cluster_size = 3

    def test_a_member_that_does_not_answer_is_passed_over(self):
        leader = wait_for(self.etcd.leader, 10)
        frozen = [m for m in self.etcd.members if m is not leader][0]
        frozen.proc.send_signal(signal.SIGSTOP)
        try:
            url = self.etcd.url([frozen] + [m for m in self.etcd.members if m is not frozen])
            t0 = time.monotonic()
            code, out, err = run(self.args("--wait=0", "--", "sh", "-c", "echo ok", url=url))
            elapsed = time.monotonic() - t0
        finally:
            frozen.proc.send_signal(signal.SIGCONT)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), "ok")
        print("acquired past a frozen member in %.2f s" % elapsed)
        self.assertLess(elapsed, 5)

    def test_killing_the_leader_while_held_keeps_the_lock(self):
        leader = wait_for(self.etcd.leader, 10)
        self.assertIsNotNone(leader)
        others = [m for m in self.etcd.members if m is not leader]
        # The leader first, so that the holder talks to it and has to fail over.
        url = self.etcd.url([leader] + others)
        log = self.path("runs.log")
        # ttl 8 s: a renewal may fail while the members elect a new leader (1-3 s here),
        # and the lease must outlast that, as it would in production.
        holder = self.start(["--backend=" + url, "--name=" + self.lock, "--scope=no", "--ttl=8s",
                             "--renew=2s", "--stop-timeout=1s", "--"] + payload(log, "holder"),
                            label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 20), holder.stderr())
        self.etcd.kill(leader)
        t0 = time.monotonic()
        new_leader = wait_for(self.etcd.leader, 20)
        self.assertIsNotNone(new_leader, "no new leader")
        print("new leader after %.2f s" % (time.monotonic() - t0))
        time.sleep(12)  # well past the ttl: the lease lives only if renewed through the new leader
        self.assertTrue(holder.alive(), holder.stderr())
        self.assertNotIn("lost", holder.stderr())
        last = read_runs(log)[0].last
        self.assertLess(time.time_ns() - last, 2e9, "the payload stopped beating")
        code, _, err = run(["--backend=" + self.etcd.url(others), "--name=" + self.lock,
                            "--scope=no", "--wait=0", "--", "true"])
        self.assertEqual(code, EX_BUSY, err)
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        code, _, err = run(["--backend=" + self.etcd.url(others), "--name=" + self.lock,
                            "--scope=no", "--wait=5s", "--", "true"])
        self.assertEqual(code, 0, err)


    def test_a_stop_during_a_leader_election_still_hands_the_lock_over_at_once(self):
        # The holder is stopped right after the leader dies: while the members elect a new
        # one, every member answers UNAVAILABLE; the release is tried again until it goes
        # through, so the waiter does not wait out the 8 s lease.
        leader = wait_for(self.etcd.leader, 10)
        self.assertIsNotNone(leader)
        others = [m for m in self.etcd.members if m is not leader]
        log = self.path("runs.log")
        timing = ["--ttl=8s", "--renew=2s", "--stop-timeout=1s"]
        holder = self.start(self.args(*timing, url=self.etcd.url(others)) + ["--"] +
                            payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 20), holder.stderr())
        waiter = self.start(self.args(*timing, url=self.etcd.url(others)) + ["--"] +
                            payload(log, "waiter", "--hold", 0), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        try:
            self.etcd.kill(leader)
            stopped = time.time_ns()
            holder.signal(signal.SIGTERM)
            self.assertEqual(holder.wait(15), 0, holder.stderr())
            self.assertEqual(waiter.wait(15), 0, waiter.stderr())
        finally:
            self.etcd.restart(leader)
        runs = read_runs(log)
        took = ([r for r in runs if r.node == "waiter"][0].start - stopped) / 1e9
        print("waiter started %.2f s after the stop during the election" % took)
        self.assertNotIn("it expires with its lease", holder.stderr())
        self.assertLess(took, 6.0)
        self.assertNoOverlap(runs)

    def test_a_waiter_whose_watch_member_dies_watches_again_through_another(self):
        # The waiter's watch runs on the first member of its URL; that member is killed while
        # the waiter idles. The watch's end makes it check again and watch through a live
        # member, so the release still wakes it at once, not at the 30 s safety net.
        first = self.etcd.members[0]
        others = self.etcd.members[1:]
        log = self.path("runs.log")
        holder = self.start(["--backend=" + self.etcd.url(others), "--name=" + self.lock,
                             "--scope=no", "--ttl=8s", "--renew=2s", "--stop-timeout=1s", "--"]
                            + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 20), holder.stderr())
        waiter = self.start(["--backend=" + self.etcd.url([first] + others), "--name=" + self.lock,
                             "--scope=no", "--ttl=8s", "--renew=2s", "--stop-timeout=1s", "-v",
                             "--"] + payload(log, "waiter", "--hold", 0), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        self.etcd.kill(first)
        try:
            # A new leader, if the killed member led, and the waiter's new watch.
            self.assertIsNotNone(wait_for(self.etcd.leader, 20), "no leader")
            self.assertTrue(wait_for(lambda: waiter.stderr().count("etcd: watching") >= 2, 15),
                            waiter.stderr())
            holder.signal(signal.SIGTERM)
            released = time.time_ns()
            self.assertEqual(holder.wait(15), 0, holder.stderr())
            self.assertEqual(waiter.wait(20), 0, waiter.stderr())
        finally:
            self.etcd.restart(first)
        took = ([r for r in read_runs(log) if r.node == "waiter"][0].start - released) / 1e9
        print("the waiter took over %.2f s after the release" % took)
        self.assertLess(took, 5.0)
        self.assertNoOverlap(read_runs(log))
        self.assertTrue(wait_for(lambda: self.etcd._healthy(first), 30), "the member did not rejoin")


class Tls(EtcdTestCase):
    tls = True

    def conf(self, **keys):
        table = "".join('%s = "%s"\n' % kv for kv in keys.items())
        return self.write_conf('backend = "%s"\nname = "%s"\n[etcd]\n%s' % (self.etcd.url(), self.lock, table))

    def test_etcds_with_ca_and_client_certificate(self):
        c = self.etcd.certs
        conf = self.conf(ca_file=c["ca.crt"], cert_file=c["client.crt"], key_file=c["client.key"])
        code, out, err = run(["--conf=" + conf, "--scope=no", "--", "sh", "-c", "echo T=$LOCKUNIT_TOKEN"])
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"T=\d+")
        self.assertEqual(self.etcd.etcdctl("get", "--prefix", PREFIX, "--keys-only").strip(), "")

    def test_etcds_loads_the_tls_part(self):
        c = self.etcd.certs
        conf = self.conf(ca_file=c["ca.crt"], cert_file=c["client.crt"], key_file=c["client.key"])
        code, out, err = run(["--conf=" + conf, "--scope=no", "--", "sh", "-c", "cat /proc/$(cut -d' ' -f4 /proc/$PPID/stat)/maps"])
        self.assertEqual(code, 0, err)
        self.assertIn("lockunit-etcd-tls.so", out)
        self.assertIn("libssl", out)

    def test_etcds_without_a_client_certificate_exits_69(self):
        conf = self.conf(ca_file=self.etcd.certs["ca.crt"])
        code, _, err = run(["--conf=" + conf, "--scope=no", "--", "true"])
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("cannot reach etcd (127.0.0.1:", err)

    def test_etcds_with_the_wrong_ca_exits_69(self):
        c = self.etcd.certs
        conf = self.conf(ca_file=c["other-ca.crt"], cert_file=c["client.crt"], key_file=c["client.key"])
        code, _, err = run(["--conf=" + conf, "--scope=no", "--", "true"])
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("certificate", err)

    def test_a_ca_file_that_is_not_pem_is_a_config_error(self):
        bad = self.path("not-a-ca.pem")
        with open(bad, "w") as f:
            f.write("this is no certificate\n")
        conf = self.conf(ca_file=bad)
        code, _, err = run(["--conf=" + conf, "--scope=no", "--", "true"])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("ca_file '%s'" % bad, err)

    def test_cert_file_without_key_file_is_a_config_error(self):
        conf = self.conf(cert_file=self.etcd.certs["client.crt"])
        code, _, err = run(["--conf=" + conf, "--scope=no", "--", "true"])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("cert_file and key_file go together", err)


class Auth(EtcdTestCase):
    auth_password = "s3cret-Pa55"

    def conf(self, **keys):
        table = "".join('%s = "%s"\n' % kv for kv in keys.items())
        return self.write_conf('backend = "%s"\nname = "%s"\n[etcd]\n%s' % (self.etcd.url(), self.lock, table))

    def password_file(self, text):
        path = self.path("pw")
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)  # lockunit refuses a secret others can read
        return path

    def test_password_file_authenticates_and_stays_secret(self):
        conf = self.conf(user="root", password_file=self.password_file(self.auth_password))
        code, out, err = run(["--conf=" + conf, "--scope=no", "-v", "--", "env"])
        self.assertEqual(code, 0, err)
        self.assertIn("LOCKUNIT_TOKEN=", out)
        self.assertNotIn(self.auth_password, out + err)

    def test_password_credential_authenticates(self):
        creds = self.path("creds")
        os.makedirs(creds)
        with open(os.path.join(creds, "etcd-pw"), "w") as f:
            f.write(self.auth_password + "\n")
        conf = self.conf(user="root", password_credential="etcd-pw")
        code, _, err = run(["--conf=" + conf, "--scope=no", "--", "true"],
                           env={"CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(code, 0, err)

    def test_wrong_password_exits_69_with_a_clear_message(self):
        conf = self.conf(user="root", password_file=self.password_file("wrong"))
        code, _, err = run(["--conf=" + conf, "--scope=no", "--", "true"])
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("etcd refused user 'root'", err)
        self.assertIn("authentication failed", err)

    def test_no_credentials_exits_69_and_says_what_is_missing(self):
        code, _, err = run(self.args("--", "true"))
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("requires authentication", err)


if __name__ == "__main__":
    main()
