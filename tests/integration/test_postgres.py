#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The lockunit binary on the postgres backend, against a real PostgreSQL 15 that the test
starts itself (initdb into a temp dir as `nobody`, a free loopback port), in process-group
mode: real sessions, real advisory locks, real pg_terminate_backend and server restarts."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import (contend_in_cycles, EX_BUSY, EX_CONFIG, EX_LOST, EX_UNAVAILABLE, LOCKUNIT, PAYLOAD,
                           LockunitTestCase, main, max_concurrency, overlaps, payload, pid_alive,
                           read_runs, require, run, tokens_increase, wait_for)
import postgres_fixture
from postgres_fixture import SUPERUSER, SUPERUSER_PASSWORD, PostgresServer, free_port

require(postgres_fixture.INITDB, postgres_fixture.POSTGRES, postgres_fixture.PSQL, "setpriv")

HOLDER_SQL = ("SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
              "WHERE l.locktype = 'advisory' AND l.granted "
              "AND a.application_name LIKE 'lockunit|%%|%%|%d|%%'")


def advisory_key(name, slot=0):
    """The documented key: FNV-1a-64 of "lockunit:NAME" (slot 0) or "lockunit:NAME#SLOT"."""
    h = 0xcbf29ce484222325
    for b in ("lockunit:" + name + ("#%d" % slot if slot else "")).encode():
        h = ((h ^ b) * 0x100000001b3) & (2 ** 64 - 1)
    return h


class Postgres(LockunitTestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = PostgresServer()
        try:
            cls.server.start()
        except Exception:
            cls.server.destroy()  # tearDownClass does not run when setUpClass fails
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.destroy()

    def setUp(self):
        super().setUp()
        self.pwfile = self.path("password")
        with open(self.pwfile, "w") as f:
            f.write(SUPERUSER_PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)  # lockunit refuses a secret others can read
        self.conf = self.conf_with('password_file = "%s"\n' % self.pwfile)

    def tearDown(self):
        super().tearDown()
        if self._failed():
            print("--- postgres log:\n" + self.server.log(), file=sys.stderr)

    def conf_with(self, table, name="pg.toml"):
        path = self.path(name)
        with open(path, "w") as f:
            f.write("[postgres]\n" + table)
        return path

    def base(self, name="jobs", *extra, url=None, conf=None):
        return (["--conf=" + (conf or self.conf), "--backend=" + (url or self.server.url()),
                 "--name=" + name, "--scope=no"] + list(extra))

    def hold_lock(self, name="jobs", *extra, label="holder"):
        log = self.path(label + ".log")
        holder = self.start(self.base(name, *extra) + ["--"] + payload(log, label), label=label)
        self.assertTrue(wait_for(lambda: read_runs(log), 15), holder.stderr())
        return holder, log

    def backend_pid_of(self, lockunit_pid):
        out = self.server.sql(HOLDER_SQL % lockunit_pid)
        self.assertTrue(out, "no session holds the lock for lockunit pid %d" % lockunit_pid)
        return int(out.splitlines()[0])

    # --- mutual exclusion and tokens -------------------------------------------------------

    def test_five_contenders_forty_cycles_never_overlap_and_tokens_increase(self):
        log = self.path("runs.log")
        failures, took = contend_in_cycles(
            lambda i: self.base("cycles") + ["--"] + payload(log, "n%d" % i, "--hold", 5),
            timeout=60)
        print("5 x 40 acquisitions in %.1f s" % took)
        self.assertEqual(failures, [])
        runs = read_runs(log)
        self.assertEqual(len(runs), 200)
        self.assertEqual(sorted({r.node for r in runs}), ["n%d" % i for i in range(5)])
        self.assertNoOverlap(runs)
        ok, tokens = tokens_increase(runs)
        self.assertTrue(ok, "tokens not strictly increasing: %r" % tokens)
        self.assertEqual(len(tokens), 200)

    def test_three_holders_with_six_contenders_never_exceed_three(self):
        log = self.path("runs.log")
        insts = [self.start(self.base("sem", "--holders=3") + ["--"] + payload(log, "n%d" % i, "--hold", 700))
                 for i in range(6)]
        for inst in insts:
            self.assertEqual(inst.wait(60), 0, inst.stderr())
        runs = read_runs(log)
        self.assertEqual(len(runs), 6)
        self.assertNoOverlap(runs, holders=3)
        self.assertLessEqual(max_concurrency(runs), 3, runs)
        self.assertEqual(max_concurrency(runs), 3, "the three slots were never used at once: %r" % runs)

    def test_wait_zero_when_busy_exits_75_at_once(self):
        self.hold_lock("busy")
        t0 = time.monotonic()
        code, _, err = run(self.base("busy", "--wait=0", "--", "true"))
        self.assertEqual(code, EX_BUSY, err)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertIn("busy", err)

    def test_graceful_release_wakes_a_waiter_at_once(self):
        holder, log = self.hold_lock("handover")
        wlog = self.path("waiter.log")
        waiter = self.start(self.base("handover") + ["--"] + payload(wlog, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        time.sleep(0.3)  # the waiter now sleeps on LISTEN, with its 1 s retry just restarted
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        self.assertTrue(wait_for(lambda: read_runs(wlog), 10), waiter.stderr())
        gap = (read_runs(wlog)[0].start - read_runs(log)[0].last) / 1e9
        print("graceful handover: %.1f ms from the holder payload's last record" % (gap * 1000))
        self.assertLess(gap, 0.25, "the waiter was not woken by the server")
        self.assertNotIn("lock-delay", waiter.stderr())
        self.assertNoOverlap(read_runs(log) + read_runs(wlog))

    def test_a_server_lock_timeout_does_not_end_the_wait(self):
        holder, log = self.hold_lock("lt")
        url = self.server.url(query="?options=-c%20lock_timeout%3D200ms")
        wlog = self.path("waiter.log")
        waiter = self.start(self.base("lt", url=url) + ["--"] + payload(wlog, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        time.sleep(1.0)  # five lock_timeouts
        self.assertTrue(waiter.alive(), waiter.stderr())
        holder.signal(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: read_runs(wlog), 10), waiter.stderr())
        self.assertNoOverlap(read_runs(log) + read_runs(wlog))

    def test_status_reports_the_holder_and_its_token(self):
        holder, log = self.hold_lock("st")
        token = read_runs(log)[0].token
        code, out, err = run(["status"] + self.base("st"))
        self.assertEqual(code, 0, err)
        self.assertIn("held", out)
        self.assertIn("pid %d" % holder.pid, out)
        self.assertIn("token " + token, out)
        key = advisory_key("st")
        self.assertEqual(self.server.sql(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = %d AND l.objid = %d" % (key >> 32, key & 0xffffffff)).split("|")[3],
            str(holder.pid), "the lock is not held under its documented key")
        holder.signal(signal.SIGTERM)
        holder.wait(10)
        code, out, err = run(["status"] + self.base("st"))
        self.assertEqual(code, 3, out + err)
        self.assertIn("free", out)

    # --- failures ---------------------------------------------------------------------------

    def test_killed_lockunit_is_replaced_at_once_once_its_guard_released(self):
        # SIGKILL of lockunit alone: its lock guard stops the payload, then releases in release
        # mode (a clean release), so the waiter owes no lock-delay.
        holder, log = self.hold_lock("kill", "--stop-timeout=1s")
        wlog = self.path("waiter.log")
        waiter = self.start(self.base("kill") + ["--"] + payload(wlog, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        payload_pid = read_runs(log)[0].pid
        t0 = time.monotonic()
        holder.signal(signal.SIGKILL)
        holder.wait(5)
        self.assertTrue(wait_for(lambda: read_runs(wlog), 10), waiter.stderr())
        took = time.monotonic() - t0
        print("takeover after SIGKILL of lockunit: %.0f ms" % (took * 1000))
        self.assertNotIn("lock-delay", waiter.stderr())
        self.assertLess(took, 1.5)
        self.assertFalse(pid_alive(payload_pid), "payload survived SIGKILL of lockunit")
        self.assertNoOverlap(read_runs(log) + read_runs(wlog))

    def test_dead_holder_node_is_replaced_after_its_lock_delay(self):
        # lockunit and its guard die together (a node that dies): nobody releases, the session
        # just ends, and the waiter waits out the holder's stop budget (1 s + 0.5 s) first.
        holder, log = self.hold_lock("node", "--stop-timeout=1s")
        wlog = self.path("waiter.log")
        waiter = self.start(self.base("node") + ["--"] + payload(wlog, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        t0 = time.monotonic()
        holder.kill_with_guard()
        self.assertTrue(wait_for(lambda: read_runs(wlog), 10), waiter.stderr())
        took = time.monotonic() - t0
        print("takeover after the holder's node died: %.0f ms" % (took * 1000))
        self.assertIn("lock-delay of 1s500ms", waiter.stderr())
        self.assertGreaterEqual(took, 1.5)
        self.assertLess(took, 4.0)
        self.assertNoOverlap(read_runs(log) + read_runs(wlog))

    def args_for(self, name):
        """lockunit's arguments for lock `name`, before the payload (for the shared helpers)."""
        return lambda *extra: self.base(name, *extra)

    def test_terminated_backend_makes_the_waiter_wait_out_the_lingering_payload(self):
        holder, log, waiter, wlog = self.lingering_holder_and_waiter(self.args_for("forget"))
        backend = self.backend_pid_of(holder.pid)
        t0 = time.monotonic()
        self.assertEqual(self.server.sql("SELECT pg_terminate_backend(%d)" % backend), "t")
        self.assertTrue(wait_for(lambda: "lock-delay of" in waiter.stderr(), 5), waiter.stderr())
        code, out, err = run(["status"] + self.base("forget"))
        self.assertEqual(code, 0, err)
        self.assertIn("pid %d" % waiter.pid, out)
        self.assertIn("lock-delay: its payload starts at", out)
        took = self.assertTakenOverAfterTheLockDelay(holder, log, waiter, wlog, t0,
                                                     "pg_terminate_backend")
        # The waiter was granted at once, then waited the holder's 4 s + 0.5 s, not more.
        self.assertLess(took, 4.5 + 2.5)

    def test_server_restart_makes_the_waiter_wait_out_the_lingering_payload(self):
        holder, log, waiter, wlog = self.lingering_holder_and_waiter(self.args_for("restart-linger"))
        t0 = time.monotonic()
        self.server.stop()
        self.server.start()
        self.assertTakenOverAfterTheLockDelay(holder, log, waiter, wlog, t0, "server restart")

    def assertTakenOverAfterTheLockDelay(self, holder, log, waiter, wlog, t0, fault):
        """The holder (stop budget 4 s + 0.5 s) lost its session at t0: the waiter starts only
        after its lock-delay, and never while the old payload lives. Returns the takeover time."""
        gap = self.assertNextStartsOnlyAfterTheOldTreeIsGone(log, wlog, 20)
        took = time.monotonic() - t0
        print("%s → next payload after %.0f ms (%.0f ms after the old one's last beat)"
              % (fault, took * 1000, gap * 1000))
        self.assertEqual(holder.wait(10), EX_LOST, holder.stderr())
        self.assertIn("lock-delay of 4s500ms", waiter.stderr())
        self.assertIn("ended without a release", waiter.stderr())
        self.assertGreaterEqual(took, 4.5)
        return took

    def test_a_semaphore_slot_whose_session_was_terminated_is_taken_after_its_lock_delay(self):
        logs = [self.path("h%d.log" % i) for i in range(2)]
        holders = [self.start(self.base("sem-forget", "--holders=2", "--stop-timeout=2s") + ["--"] +
                              payload(logs[i], "h%d" % i, "--linger", 1500), label="h%d" % i)
                   for i in range(2)]
        for i in range(2):
            self.assertTrue(wait_for(lambda: read_runs(logs[i]), 15), holders[i].stderr())
        wlog = self.path("waiter.log")
        waiter = self.start(self.base("sem-forget", "--holders=2") + ["--"] + payload(wlog, "w"),
                            label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        time.sleep(0.3)
        t0 = time.monotonic()
        self.server.sql("SELECT pg_terminate_backend(%d)" % self.backend_pid_of(holders[0].pid))
        self.assertNextStartsOnlyAfterTheOldTreeIsGone(logs[0], wlog, 15)
        took = time.monotonic() - t0
        print("semaphore slot: next payload %.0f ms after pg_terminate_backend" % (took * 1000))
        self.assertIn("lock-delay of 2s500ms", waiter.stderr())
        self.assertGreaterEqual(took, 2.5)
        self.assertTrue(holders[1].alive(), "the other slot's holder was disturbed")

    def test_graceful_release_of_a_lingering_payload_costs_no_lock_delay(self):
        self.assertCleanHandoverOfALingeringPayload(self.args_for("clean-linger"))

    def test_terminated_backend_stops_the_payload_and_a_waiter_takes_over(self):
        holder, log = self.hold_lock("term", "--ttl=12s", "--renew=4s", "--stop-timeout=1s")
        wlog = self.path("waiter.log")
        waiter = self.start(self.base("term") + ["--"] + payload(wlog, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        backend = self.backend_pid_of(holder.pid)
        t0 = time.monotonic()
        self.assertEqual(self.server.sql("SELECT pg_terminate_backend(%d)" % backend), "t")
        self.assertEqual(holder.wait(10), EX_LOST, holder.stderr())
        took = time.monotonic() - t0
        print("pg_terminate_backend → holder exited 79 after %.0f ms" % (took * 1000))
        self.assertLess(took, 4.0 + 1.0)  # the bound: renew + stop timeout
        # lockunit watches the session's socket: it notices well before the next renewal.
        self.assertLess(took, 2.0)
        self.assertIn("lost", holder.stderr())
        self.assertFalse(pid_alive(read_runs(log)[0].pid))
        self.assertTrue(wait_for(lambda: read_runs(wlog), 10), waiter.stderr())

    def test_server_restart_stops_the_payload_and_a_waiter_takes_over(self):
        holder, log = self.hold_lock("restart", "--ttl=12s", "--renew=4s", "--stop-timeout=1s")
        wlog = self.path("waiter.log")
        waiter = self.start(self.base("restart") + ["--"] + payload(wlog, "waiter"), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        t0 = time.monotonic()
        self.server.stop()
        self.assertEqual(holder.wait(10), EX_LOST, holder.stderr())
        took = time.monotonic() - t0
        print("server stop → holder exited 79 after %.0f ms" % (took * 1000))
        self.assertLess(took, 4.0 + 1.0)  # the bound: renew + stop timeout
        # lockunit watches the session's socket: it notices well before the next renewal.
        self.assertLess(took, 2.0)
        self.assertFalse(pid_alive(read_runs(log)[0].pid))
        self.server.start()
        self.assertTrue(wait_for(lambda: read_runs(wlog), 15), waiter.stderr())
        self.assertTrue(waiter.alive())
        self.assertNoOverlap(read_runs(log) + read_runs(wlog))

    def test_sigterm_while_waiting_exits_0_within_100ms(self):
        self.hold_lock("sig")
        waiter = self.start(self.base("sig") + ["--", "true"], label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        self.assertStopsAtOnceOnSigterm(waiter)

    # --- bad input and credentials --------------------------------------------------------------

    def test_malformed_url_is_a_config_error_naming_the_problem(self):
        code, _, err = run(self.base("x", "--", "true", url="postgres://127.0.0.1:%d/db?bogus_opt=1" % self.server.port))
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("invalid PostgreSQL connection URI", err)
        self.assertIn("bogus_opt", err)

    def test_password_in_a_malformed_url_is_not_echoed(self):
        code, _, err = run(self.base("x", "--", "true",
                                     url="postgres://u:hunter2secret@[::1/db"))
        self.assertEqual(code, EX_CONFIG, err)
        self.assertNotIn("hunter2secret", err)

    def test_unknown_database_is_69_with_a_clear_message(self):
        code, _, err = run(self.base("x", "--", "true", url=self.server.url(db="no_such_db")))
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("cannot connect to PostgreSQL at 127.0.0.1:%d/no_such_db" % self.server.port, err)
        self.assertIn('"no_such_db" does not exist', err)

    def test_wrong_password_is_69_and_the_password_never_shows(self):
        with open(self.pwfile, "w") as f:
            f.write("wrong-password-xyzzy\n")
        code, _, err = run(self.base("x", "--", "true"))
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("password authentication failed", err)
        self.assertNotIn("xyzzy", err)

    def test_unreachable_server_is_69_with_a_clear_message(self):
        port = free_port()
        t0 = time.monotonic()
        code, _, err = run(self.base("x", "--", "true", url="postgres://127.0.0.1:%d/postgres" % port))
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertIn("cannot connect to PostgreSQL at 127.0.0.1:%d/postgres" % port, err)
        self.assertIn("Connection refused", err)

    def test_connect_timeout_bounds_a_server_that_never_answers(self):
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever speaks
        conf = self.conf_with('connect_timeout = "1s"\n', "ct.toml")
        t0 = time.monotonic()
        code, _, err = run(self.base("x", "--", "true", conf=conf,
                                     url="postgres://127.0.0.1:%d/postgres" % silent.getsockname()[1]))
        elapsed = time.monotonic() - t0
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertIn("no answer within connect_timeout", err)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 4.0)

    def test_schema_holds_the_fence_sequence(self):
        self.server.sql("CREATE SCHEMA IF NOT EXISTS locks")
        conf = self.conf_with('password_file = "%s"\nschema = "locks"\n' % self.pwfile, "schema.toml")
        code, out, err = run(self.base("schema", "--", "sh", "-c", "echo T=$LOCKUNIT_TOKEN", conf=conf))
        self.assertEqual(code, 0, err)
        self.assertIn("T=" + self.server.sql("SELECT last_value FROM locks.lockunit_fence"), out)

    def test_password_from_a_systemd_credential(self):
        creds = self.path("creds")
        os.mkdir(creds)
        with open(os.path.join(creds, "pgpw"), "w") as f:
            f.write(SUPERUSER_PASSWORD + "\n")
        conf = self.conf_with('password_credential = "pgpw"\n', "cred.toml")
        code, _, err = run(self.base("cred", "--", "true", conf=conf),
                           env={"CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(code, 0, err)

    def test_unknown_key_in_the_postgres_table_is_refused(self):
        conf = self.conf_with('query_timout = "1s"\n', "typo.toml")
        code, _, err = run(["check", "--conf=" + conf])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("postgres.query_timout: unknown key", err)
        self.assertIn("query_timeout", err)

    def test_query_timeout_not_shorter_than_renew_is_refused(self):
        conf = self.conf_with('query_timeout = "3s"\n', "slow.toml")
        code, _, err = run(self.base("x", "--renew=2s", "--", "true", conf=conf))
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("query_timeout 3s must be more than 0 and shorter than renew (2s)", err)

    def test_libpq_passfile_works_without_password_file(self):
        passfile = self.path("pgpass")
        with open(passfile, "w") as f:
            f.write("127.0.0.1:%d:*:%s:%s\n" % (self.server.port, SUPERUSER, SUPERUSER_PASSWORD))
        os.chmod(passfile, 0o600)
        conf = self.conf_with('schema = "public"\n', "nopw.toml")
        code, out, err = run(self.base("pass", "--", "sh", "-c", "echo T=$LOCKUNIT_TOKEN", conf=conf),
                             env={"PGPASSFILE": passfile})
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"T=\d+")

    def test_token_is_empty_with_a_warning_when_the_sequence_cannot_be_created(self):
        self.server.sql("DROP DATABASE IF EXISTS plaindb")
        self.server.sql("DROP ROLE IF EXISTS plain")
        self.server.sql("CREATE ROLE plain LOGIN PASSWORD 'plain-pw'")
        self.server.sql("CREATE DATABASE plaindb")  # PostgreSQL 15: only the owner may CREATE in public
        pw = self.path("plainpw")
        with open(pw, "w") as f:
            f.write("plain-pw\n")
        os.chmod(pw, 0o600)
        conf = self.conf_with('password_file = "%s"\n' % pw, "plain.toml")
        url = self.server.url(db="plaindb", user="plain")
        code, out, err = run(self.base("plain", "--", "sh", "-c", "echo T=[$LOCKUNIT_TOKEN]", url=url, conf=conf))
        self.assertEqual(code, 0, err)
        self.assertIn("T=[]", out)
        self.assertIn("no fencing token", err)
        self.assertIn("permission denied", err)
        # Once a privileged role has created it and granted USAGE, tokens come back.
        self.server.sql('CREATE SEQUENCE public.lockunit_fence; GRANT USAGE ON SEQUENCE public.lockunit_fence TO plain',
                        db="plaindb")
        code, out, err = run(self.base("plain", "--", "sh", "-c", "echo T=[$LOCKUNIT_TOKEN]", url=url, conf=conf))
        self.assertEqual(code, 0, err)
        self.assertIn("T=[1]", out)
        self.assertNotIn("fencing", err)

    def test_payload_does_not_inherit_the_session_socket(self):
        code, out, err = run(self.base("fds", "--", PAYLOAD, "--hold", "0", "--fds"))
        self.assertEqual(code, 0, err)
        self.assertIn("fd 0", out)
        self.assertNotIn("socket:", out)


if __name__ == "__main__":
    main()
