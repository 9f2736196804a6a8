#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The redis:// and unix:// backends against real redis-server processes on loopback."""

import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import (contend_in_cycles, EX_BUSY, EX_CONFIG, EX_LOST, EX_UNAVAILABLE, LockunitTestCase, main,
                           max_concurrency, payload, pid_alive, read_runs, require, run,
                           tokens_increase, wait_for)
import redis_fixture
from redis_fixture import Server

TTL = 3  # seconds: renew 1s + stop_timeout 1s + 500 ms + 32 ms < 3 s
TIMING = ["--ttl=3s", "--renew=1s", "--stop-timeout=1s"]


class RedisTestCase(redis_fixture.ServerTestCase):
    """One redis-server for the whole class, old enough (one ttl) to grant locks."""

    ttl = TTL

    def url(self, server=None, db=None):
        server = server or self.server
        return "redis://127.0.0.1:%d%s" % (server.port, "" if db is None else "/%d" % db)

    def base(self, name, *extra, server=None):
        return (["--backend=" + self.url(server), "--name=" + name, "--scope=no"] + TIMING +
                list(extra))

    def wait_waiting(self, inst, timeout=10):
        self.assertTrue(wait_for(lambda: "waiting for lock" in inst.stderr(), timeout),
                        inst.stderr())


class RedisLock(RedisTestCase):
    def test_five_contenders_forty_cycles_never_overlap_and_tokens_increase(self):
        log = self.path("runs.log")
        failures, took = contend_in_cycles(
            lambda i: self.base("cycles") + ["--"] + payload(log, "n%d" % i, "--hold", 15))
        print("5 x 40 cycles took %.1f s" % took)
        self.assertEqual(failures, [])
        runs = read_runs(log)
        self.assertEqual(len(runs), 200)
        self.assertNoOverlap(runs)
        ok, tokens = tokens_increase(runs)
        self.assertTrue(ok, "tokens not strictly increasing in time order: %r" % tokens)
        self.assertEqual(len(set(tokens)), 200)
        for i in range(5):
            self.assertEqual(sum(1 for r in runs if r.node == "n%d" % i), 40)

    def test_graceful_release_wakes_a_waiter_at_once(self):
        # A chain of holders: each waits while the previous one holds for 700 ms. Without the
        # release message a waiter would only look again when the lease could run out (seconds).
        log = self.path("runs.log")
        insts = []
        for i in range(6):
            # h(i) starts waiting once h(i-1) holds the lock: one waiter at a time
            self.assertTrue(wait_for(lambda: len(read_runs(log)) >= i, 10))
            inst = self.start(self.base("handover") + ["--"] + payload(log, "h%d" % i, "--hold", 700),
                              label="h%d" % i)
            insts.append(inst)
            if i > 0:
                self.wait_waiting(inst)
        for inst in insts:
            self.assertEqual(inst.wait(30), 0, inst.stderr())
        runs = read_runs(log)
        self.assertEqual(len(runs), 6)
        self.assertNoOverlap(runs)
        gaps = [(b.start - a.last) / 1e6 for a, b in zip(runs, runs[1:])]
        print("graceful handover (payload end -> next payload start), ms: " +
              ", ".join("%.1f" % g for g in gaps))
        self.assertLess(max(gaps), 300, gaps)
        self.assertLess(statistics.median(gaps), 100, gaps)

    def test_a_waiter_never_gets_a_token_below_the_holder_it_saw(self):
        # The counter goes back (data restored from an older snapshot) while a waiter waits,
        # and is ahead of the server's clock (so the clock floor cannot help): the waiter still
        # asks for a token above the holder's token that it saw in the busy answers.
        ahead = str(int(time.time() * 1e6) + 10**12)  # ~11.6 days ahead of the clock
        self.server.cmd("SET", "lockunit:seen:fence", ahead)
        log = self.path("runs.log")
        holder = self.start(self.base("seen") + ["--"] + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        waiter = self.start(self.base("seen") + ["--"] + payload(log, "waiter"), label="waiter")
        self.wait_waiting(waiter)
        self.server.cmd("SET", "lockunit:seen:fence", "5")
        self.server.cmd("DEL", "lockunit:seen")
        self.assertEqual(holder.wait(TTL + 5), EX_LOST, holder.stderr())
        self.assertTrue(wait_for(lambda: len(read_runs(log)) == 2, TTL + 5), waiter.stderr())
        first, second = read_runs(log)
        self.assertEqual((first.node, second.node), ("holder", "waiter"))
        self.assertEqual(int(first.token), int(ahead) + 1)
        self.assertEqual(int(second.token), int(first.token) + 1)
        waiter.signal(signal.SIGTERM)
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())

    def test_holder_killed_waiter_takes_over_within_ttl_plus_2s_with_higher_token(self):
        log = self.path("runs.log")
        holder = self.start(self.base("killed") + ["--"] + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        waiter = self.start(self.base("killed") + ["--"] + payload(log, "waiter"), label="waiter")
        self.wait_waiting(waiter)
        t0 = time.time()
        holder.signal(signal.SIGKILL)
        holder.wait(5)
        self.assertTrue(wait_for(lambda: len(read_runs(log)) == 2, TTL + 4), waiter.stderr())
        first, second = read_runs(log)
        took = second.start / 1e9 - t0
        print("takeover after SIGKILL of the holder: %.2f s (ttl %d s)" % (took, TTL))
        self.assertLess(took, TTL + 2)
        self.assertGreater(second.start, first.last)
        self.assertGreater(int(second.token), int(first.token))
        waiter.signal(signal.SIGTERM)
        self.assertEqual(waiter.wait(10), 0)

    # --- the lock-delay (docs/backends/redis.md, "Lock-delay") ------------------------------
    # A holder with ttl 3 s, renew 1 s, stop_timeout 1 s whose payload lingers 0.7 s on
    # SIGTERM: its budget is renew + stop_timeout + 0.5 s.
    LINGER = dict(stop_timeout="1s", linger_ms=700, timing=("--ttl=3s", "--renew=1s"))

    def lock_args(self, name):
        return lambda *extra: ["--backend=" + self.url(), "--name=" + name, "--scope=no"] + list(
            extra or TIMING)

    def test_graceful_release_of_a_lingering_payload_costs_no_lock_delay(self):
        self.assertCleanHandoverOfALingeringPayload(self.lock_args("clean-linger"), **self.LINGER)

    def test_a_key_deleted_by_hand_makes_the_waiter_wait_out_the_lingering_payload(self):
        self.assertUncleanEndCostsTheLockDelay(
            self.lock_args("del-linger"), lambda holder: self.server.cmd("DEL", "lockunit:del-linger"),
            "DEL of the lock key", holder_exit=EX_LOST, delay=("2s500ms", 2.5), **self.LINGER)

    def test_three_holders_six_contenders_never_more_than_three(self):
        log = self.path("runs.log")
        insts = [self.start(self.base("sem", "--holders=3") + ["--"] +
                            payload(log, "s%d" % i, "--hold", 700)) for i in range(6)]
        for inst in insts:
            self.assertEqual(inst.wait(60), 0, inst.stderr())
        runs = read_runs(log)
        self.assertEqual(sorted(r.node for r in runs), ["s%d" % i for i in range(6)])
        self.assertNoOverlap(runs, holders=3)
        self.assertEqual(max_concurrency(runs), 3, runs)
        # Holders of a semaphore run side by side, so start order need not follow token order;
        # every acquisition still gets its own token from the one counter.
        tokens = [int(r.token) for r in runs]
        self.assertEqual(len(set(tokens)), 6, tokens)

    def test_semaphore_slot_of_a_killed_holder_is_taken_over(self):
        log = self.path("runs.log")
        holders = [self.start(self.base("semkill", "--holders=2") + ["--"] + payload(log, "k%d" % i))
                   for i in range(2)]
        self.assertTrue(wait_for(lambda: len(read_runs(log)) == 2, 10))
        waiter = self.start(self.base("semkill", "--holders=2") + ["--"] + payload(log, "w"))
        self.wait_waiting(waiter)
        code, out, err = run(["status"] + self.base("semkill", "--holders=2"))
        self.assertEqual(code, 0, err)
        self.assertEqual(out.count("holder:"), 2, out)
        t0 = time.time()
        holders[0].signal(signal.SIGKILL)
        self.assertTrue(wait_for(lambda: len(read_runs(log)) == 3, TTL + 4), waiter.stderr())
        self.assertLess(read_runs(log)[2].start / 1e9 - t0, TTL + 2)
        self.assertEqual(max_concurrency(read_runs(log)), 2)

    def test_status_shows_holder_lease_left_and_waiters(self):
        holder = self.start(self.base("st") + ["--", "sleep", "30"], label="holder")
        self.assertTrue(wait_for(lambda: "acquired" in holder.stderr(), 10), holder.stderr())
        waiter = self.start(self.base("st") + ["--", "true"], label="waiter")
        self.wait_waiting(waiter)
        code, out, err = run(["status"] + self.base("st"))
        self.assertEqual(code, 0, err)
        self.assertIn("held", out)
        self.assertIn("pid %d" % holder.pid, out)
        self.assertIn("lease left:", out)
        self.assertIn("waiters: 1", out)
        code, out, err = run(["status", "--json"] + self.base("st"))
        self.assertEqual(code, 0, err)
        self.assertIn('"held":true', out)
        self.assertRegex(out, r'"token":"\d+"')
        self.assertRegex(out, r'"lease_left_ms":\d+')
        waiter.signal(signal.SIGTERM)
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0)
        code, out, _ = run(["status"] + self.base("st"))
        self.assertEqual(code, 3, out)
        self.assertIn("free", out)

    def test_wait_zero_when_busy_exits_75(self):
        holder = self.start(self.base("busy") + ["--", "sleep", "30"])
        self.assertTrue(wait_for(lambda: "acquired" in holder.stderr(), 10), holder.stderr())
        t0 = time.monotonic()
        code, _, err = run(self.base("busy", "--wait=0") + ["--", "true"])
        self.assertEqual(code, EX_BUSY, err)
        self.assertLess(time.monotonic() - t0, 2)

    def test_sigterm_while_waiting_exits_0_fast(self):
        holder = self.start(self.base("term") + ["--", "sleep", "30"])
        self.assertTrue(wait_for(lambda: "acquired" in holder.stderr(), 10), holder.stderr())
        waiter = self.start(self.base("term") + ["--", "true"], label="waiter")
        self.wait_waiting(waiter)
        self.assertStopsAtOnceOnSigterm(waiter)

    def test_key_prefix_and_payload_cannot_see_redis_sockets(self):
        conf = self.path("l.toml")
        with open(conf, "w") as f:
            f.write('backend = "%s"\nname = "pfx"\nscope = "no"\nttl = "3s"\nrenew = "1s"\n'
                    'stop_timeout = "1s"\n[redis]\nkey_prefix = "myapp/"\ncommand_timeout = "400ms"\n'
                    'connect_timeout = "300ms"\n' % self.url())
        marker = self.path("marker")
        code, out, err = run(["--conf=" + conf, "--", "sh", "-c",
                              "ls -l /proc/$$/fd; cp /dev/null %s" % marker])
        self.assertEqual(code, 0, err)
        self.assertNotIn("socket:", out)
        self.assertEqual(self.server.cmd("EXISTS", "myapp/pfx:fence"), 1)
        self.assertEqual(self.server.cmd("EXISTS", "lockunit:pfx:fence"), 0)

    def test_command_timeout_not_under_renew_is_a_config_error(self):
        conf = self.path("bad.toml")
        with open(conf, "w") as f:
            f.write('backend = "%s"\nscope = "no"\nttl = "3s"\nrenew = "1s"\nstop_timeout = "1s"\n'
                    '[redis]\ncommand_timeout = "1s"\n' % self.url())
        code, _, err = run(["--conf=" + conf, "--", "true"])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("command_timeout", err)

    def test_min_replicas_is_validated(self):
        for value, url, table, why in (
                ("-1", self.url(), "redis", "must be between 0 and 100"),
                ("1", "redlock://127.0.0.1:%d" % self.server.port, "redlock",
                 "min_replicas is for redis:// and redis+sentinel://")):
            conf = self.path("repl.toml")
            with open(conf, "w") as f:
                f.write('backend = "%s"\nscope = "no"\nttl = "3s"\nrenew = "1s"\n'
                        'stop_timeout = "1s"\n[%s]\nmin_replicas = %s\n' % (url, table, value))
            code, _, err = run(["--conf=" + conf, "--", "true"])
            self.assertEqual(code, EX_CONFIG, err)
            self.assertIn(why, err)

    def test_min_replicas_on_a_server_without_replicas_never_starts_the_payload(self):
        conf = self.path("repl.toml")
        with open(conf, "w") as f:
            f.write('[redis]\nmin_replicas = 1\n')
        log = self.path("runs.log")
        inst = self.start(["--conf=" + conf] + self.base("norepl") + ["--"] + payload(log, "x"))
        self.assertTrue(wait_for(lambda: "reached 0 replica(s)" in inst.stderr(), 10), inst.stderr())
        self.assertIn("min_replicas is 1; retrying", inst.stderr())
        self.assertEqual(read_runs(log), [])
        self.assertIsNone(self.server.cmd("GET", "lockunit:norepl"), "the key was not given back")
        self.assertStopsAtOnceOnSigterm(inst)

    def test_unix_socket(self):
        sock = os.path.join(self.serverdir, "redis.sock")
        srv = Server(self.serverdir, "unixredis", args=["--unixsocket", sock, "--unixsocketperm", "700"]).start()
        try:
            srv.ready_for_ttl(TTL)
            code, out, err = run(["--backend=unix://%s?db=2" % sock, "--name=ux", "--scope=no"] + TIMING +
                                 ["--", "sh", "-c", "echo T=$LOCKUNIT_TOKEN B=$LOCKUNIT_BACKEND"])
            self.assertEqual(code, 0, err)
            self.assertRegex(out, r"T=\d+ B=unix")
            self.assertEqual(srv.cmd("SELECT", "2"), "OK")
        finally:
            srv.stop()


class RedisOutages(LockunitTestCase):
    """Each test gets its own server, to restart or pause."""

    def setUp(self):
        super().setUp()
        self.server = Server(self.dir, "redis").start()

    def tearDown(self):
        self.server.stop()
        super().tearDown()

    def base(self, name, *extra):
        return (["--backend=redis://127.0.0.1:%d" % self.server.port, "--name=" + name,
                 "--scope=no"] + TIMING + list(extra))

    def test_restart_empty_while_held_stops_holder_before_anyone_else_starts(self):
        self.server.ready_for_ttl(TTL)
        log = self.path("runs.log")
        holder = self.start(self.base("rs") + ["--"] + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        waiter = self.start(self.base("rs") + ["--"] + payload(log, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting for lock" in waiter.stderr(), 10))
        self.server.restart()
        self.assertEqual(holder.wait(TTL + 5), EX_LOST, holder.stderr())
        self.assertIn("lost", holder.stderr())
        self.assertTrue(wait_for(lambda: len(read_runs(log)) == 2, TTL + 5), waiter.stderr())
        first, second = read_runs(log)
        self.assertEqual((first.node, second.node), ("holder", "waiter"))
        self.assertFalse(pid_alive(first.pid))
        print("restart: holder payload's last sign of life %.0f ms before the waiter's start" %
              ((second.start - first.last) / 1e6))
        self.assertLess(first.last, second.start)
        # The fence counter was lost with the data; tokens still increase.
        self.assertGreater(int(second.token), int(first.token))

    def test_a_young_server_is_named_as_the_reason_for_the_wait(self):
        self.server.restart()  # up for less than one ttl from now on
        code, _, err = run(self.base("young", "--wait=0", "--", "true"))
        self.assertEqual(code, EX_BUSY, err)
        self.assertNotIn("is busy", err)
        self.assertIn("lock 'young' is not held, but redis 127.0.0.1:%d started less than one "
                      "ttl ago" % self.server.port, err)
        self.assertIn("grants no lock until", err)
        code, out, err = run(["status"] + self.base("young"))
        self.assertEqual(code, 3, out + err)
        self.assertIn("free, but redis 127.0.0.1:%d started less than one ttl ago" % self.server.port, out)
        log = self.path("runs.log")
        waiter = self.start(self.base("young") + ["--"] + payload(log, "w"), label="waiter")
        self.assertTrue(wait_for(lambda: "started less than one ttl ago" in waiter.stderr(), 10),
                        waiter.stderr())
        self.assertTrue(wait_for(lambda: read_runs(log), TTL + 5), waiter.stderr())

    def test_a_server_that_may_evict_the_lock_key_is_refused(self):
        self.server.ready_for_ttl(TTL)
        self.server.cmd("CONFIG", "SET", "maxmemory", "3mb")
        self.server.cmd("CONFIG", "SET", "maxmemory-policy", "volatile-lru")
        code, _, err = run(self.base("evict", "--wait=0", "--", "true"))
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("may evict the lock key 'lockunit:evict' while its holder runs (maxmemory "
                      "3145728 bytes, maxmemory-policy volatile-lru): set maxmemory-policy "
                      "noeviction, or maxmemory 0, on it", err)
        self.assertEqual(self.server.cmd("EXISTS", "lockunit:evict"), 0, "a lock was taken")
        for policy in ("allkeys-lru", "volatile-ttl"):
            self.server.cmd("CONFIG", "SET", "maxmemory-policy", policy)
            code, _, err = run(self.base("evict", "--wait=0", "--", "true"))
            self.assertEqual(code, EX_UNAVAILABLE, err)
            self.assertIn("maxmemory-policy " + policy, err)
        self.server.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
        code, _, err = run(self.base("evict", "--wait=0", "--", "true"))
        self.assertEqual(code, 0, err)
        self.server.cmd("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        self.server.cmd("CONFIG", "SET", "maxmemory", "0")
        code, _, err = run(self.base("evict", "--wait=0", "--", "true"))
        self.assertEqual(code, 0, err)

    def test_sigstopped_redis_payload_stopped_before_the_deadline(self):
        self.server.ready_for_ttl(TTL)
        log = self.path("runs.log")
        holder = self.start(self.base("stop") + ["--"] + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        time.sleep(1.2)  # a renewal or two
        stopped_at = time.time()
        self.server.signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            self.assertEqual(holder.wait(TTL + 5), EX_LOST, holder.stderr())
            # SIGTERM to a pending renewal must still be handled: covered elsewhere; here the
            # deadline rule acts on its own.
            print("redis SIGSTOPped: lockunit exited 79 after %.2f s" % (time.monotonic() - t0))
        finally:
            self.server.signal(signal.SIGCONT)
        run_ = read_runs(log)[0]
        self.assertFalse(pid_alive(run_.pid))
        # No renewal can have succeeded after the SIGSTOP, so the lease ended by stopped_at + ttl.
        self.assertLess(run_.last / 1e9, stopped_at + TTL,
                        "payload outlived its lease by %.3f s" % (run_.last / 1e9 - stopped_at - TTL))

    def test_sigterm_during_a_hung_renewal_is_acted_on_fast(self):
        self.server.ready_for_ttl(TTL)
        holder = self.start(self.base("hung", "--stop-timeout=1s") + ["--", "sleep", "30"], label="holder")
        self.assertTrue(wait_for(lambda: "acquired" in holder.stderr(), 10), holder.stderr())
        self.server.signal(signal.SIGSTOP)
        try:
            time.sleep(1.3)  # a renewal is now waiting on the paused server
            t0 = time.monotonic()
            holder.signal(signal.SIGTERM)
            code = holder.wait(10)
            elapsed = time.monotonic() - t0
        finally:
            self.server.signal(signal.SIGCONT)
        print("SIGTERM during a hung renewal -> exit in %.0f ms" % (elapsed * 1000))
        self.assertEqual(code, 0, holder.stderr())
        self.assertLess(elapsed, 1.5)  # stopping `sleep` is immediate; the release is bounded

    def test_server_down_at_start_exits_69(self):
        self.server.stop()
        code, _, err = run(self.base("down") + ["--", "true"])
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("Connection refused", err)


class FakeServer:
    """Something that is not Redis, listening on a loopback port."""

    def __init__(self, answer=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


class RedisCredentials(LockunitTestCase):
    """A server with a password for the default user and an ACL user 'alice'."""

    PASSWORD = "s3cret-default-pw"
    ALICE = "alice-pw-7781"

    @classmethod
    def setUpClass(cls):
        cls.serverdir = tempfile.mkdtemp(prefix="lockunit-redis-auth-")
        cls.server = Server(cls.serverdir, "authredis",
                            args=["--requirepass", cls.PASSWORD,
                                  "--user", "alice", "on", ">" + cls.ALICE, "~*", "&*", "+@all"]).start()
        cls.server.ready_for_ttl(TTL)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def conf(self, url, table="", name="auth"):
        path = self.path(name + ".toml")
        with open(path, "w") as f:
            f.write('backend = "%s"\nname = "%s"\nscope = "no"\nttl = "3s"\nrenew = "1s"\n'
                    'stop_timeout = "1s"\n[redis]\n%s' % (url, name, table))
        return path

    def secret_file(self, text):
        path = self.path("pw")
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)  # lockunit refuses a secret others can read
        return path

    def url(self, user="", db=""):
        return "redis://%s127.0.0.1:%d%s" % (user + "@" if user else "", self.server.port, db)

    def run_conf(self, conf, env=None, *flags):
        marker = self.path("ran")
        code, out, err = run(["--conf=" + conf] + list(flags) + ["--", "sh", "-c", "env; touch " + marker],
                             env=env)
        return code, out, err, os.path.exists(marker)

    def assertRefused(self, conf, *expected, env=None):
        code, out, err, ran = self.run_conf(conf, env, "-v")
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertFalse(ran, "the payload ran")
        for e in expected:
            self.assertIn(e, err)
        for secret in (self.PASSWORD, self.ALICE, "wrong-pw-123"):
            self.assertNotIn(secret, err)
        return err

    def test_password_file_works_and_the_secret_stays_out_of_env_and_logs(self):
        conf = self.conf(self.url(), 'password_file = "%s"\n' % self.secret_file(self.PASSWORD))
        code, out, err, ran = self.run_conf(conf, None, "-v")
        self.assertEqual(code, 0, err)
        self.assertTrue(ran)
        self.assertNotIn(self.PASSWORD, out + err)

    def test_password_credential_works(self):
        creds = self.path("creds")
        os.mkdir(creds)
        with open(os.path.join(creds, "redis-pw"), "w") as f:
            f.write(self.PASSWORD)
        os.chmod(os.path.join(creds, "redis-pw"), 0o644)  # systemd's business, trusted as is
        conf = self.conf(self.url(), 'password_credential = "redis-pw"\n')
        code, out, err, ran = self.run_conf(conf, {"CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(code, 0, err)
        self.assertTrue(ran)
        self.assertNotIn(self.PASSWORD, out)
        self.assertNotIn("warning", err.lower())
        # A password_file inside $CREDENTIALS_DIRECTORY is a credential too.
        conf = self.conf(self.url(), 'password_file = "%s"\n' % os.path.join(creds, "redis-pw"))
        code, out, err, ran = self.run_conf(conf, {"CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(code, 0, err)
        self.assertTrue(ran)

    def test_password_file_others_can_read_is_refused_before_any_lock(self):
        path = self.secret_file(self.PASSWORD)
        os.chmod(path, 0o644)
        conf = self.conf(self.url(), 'password_file = "%s"\n' % path)
        code, out, err, ran = self.run_conf(conf)
        self.assertEqual(code, EX_CONFIG, err)
        self.assertFalse(ran)
        self.assertIn("redis.password_file: '%s' can be read by every user (mode 0644)" % path, err)
        self.assertNotIn(self.PASSWORD, out + err)

    def test_acl_user_works(self):
        conf = self.conf(self.url("alice"), 'password_file = "%s"\n' % self.secret_file(self.ALICE))
        code, out, err, ran = self.run_conf(conf)
        self.assertEqual(code, 0, err)
        self.assertTrue(ran)

    def test_wrong_password_exits_69(self):
        conf = self.conf(self.url(), 'password_file = "%s"\n' % self.secret_file("wrong-pw-123"))
        err = self.assertRefused(conf, "login refused", "WRONGPASS")
        print("wrong password: " + err.strip().splitlines()[-1])

    def test_unknown_user_exits_69(self):
        conf = self.conf(self.url("mallory"), 'password_file = "%s"\n' % self.secret_file(self.ALICE))
        self.assertRefused(conf, "as user 'mallory' refused", "WRONGPASS")

    def test_missing_password_exits_69(self):
        err = self.assertRefused(self.conf(self.url()), "wants a password")
        print("no password: " + err.strip().splitlines()[-1])

    def test_wrong_db_exits_69(self):
        conf = self.conf(self.url(db="/99"), 'password_file = "%s"\n' % self.secret_file(self.PASSWORD))
        err = self.assertRefused(conf, "SELECT refused", "DB index is out of range")
        print("wrong db: " + err.strip().splitlines()[-1])

    def test_not_a_redis_server_exits_69(self):
        fake = FakeServer()
        try:
            err = self.assertRefused(self.conf("redis://127.0.0.1:%d" % fake.port), "not a Redis server")
            print("not redis: " + err.strip().splitlines()[-1])
        finally:
            fake.close()

    def test_silent_server_exits_69_after_the_timeout(self):
        fake = FakeServer(answer=b"")
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts (the kernel does) but never answers
        try:
            t0 = time.monotonic()
            self.assertRefused(self.conf("redis://127.0.0.1:%d" % silent.getsockname()[1]), "timed out")
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            silent.close()
            fake.close()

    def test_password_in_url_is_refused_without_echoing_it(self):
        code, _, err = run(["--backend=redis://bob:hunter2pw@127.0.0.1:%d" % self.server.port,
                            "--scope=no", "--ttl=3s", "--renew=1s", "--stop-timeout=1s", "--", "true"])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("password_file", err)


if __name__ == "__main__":
    require(redis_fixture.REDIS_SERVER)
    main()
