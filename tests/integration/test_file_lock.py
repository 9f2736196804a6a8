#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The lockunit binary on the embedded file backend, in process-group mode: real processes,
real flock, real signals."""

import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import (EX_BUSY, EX_CONFIG, EX_USAGE, LOCKUNIT, PAYLOAD, LockunitTestCase,
                           main, max_concurrency, payload, pid_alive, read_runs, run,
                           tokens_increase, wait_for)


class FileLock(LockunitTestCase):
    def base(self, name="jobs", *extra):
        return ["--backend=file://" + self.path("locks"), "--name=" + name, "--scope=no"] + list(extra)

    def contend(self, count, hold_ms=150, extra=()):
        log = self.path("runs.log")
        insts = [self.start(self.base("jobs", *extra) + ["--"] + payload(log, "n%d" % i, "--hold", hold_ms))
                 for i in range(count)]
        for inst in insts:
            self.assertEqual(inst.wait(60), 0, inst.stderr())
        return read_runs(log)

    def test_network_filesystems_key_is_a_boolean_and_a_local_directory_needs_no_opt_in(self):
        # NFS, CIFS and the other kernel clients are out of reach here (this machine's kernel
        # has none of them): which f_types count is pinned by the unit test FsKind, and a real
        # network filesystem through FUSE, sshfs, by SshfsLockDir below. This checks the key and
        # the local path end to end.
        conf = self.path("f.toml")
        for value, code in (("true", 0), ("false", 0), ('"yes"', EX_CONFIG)):
            with open(conf, "w") as f:
                f.write("[file]\nnetwork_filesystems = %s\n" % value)
            got, _, err = run(["--conf=" + conf] + self.base("nfs", "--", "true"))
            self.assertEqual(got, code, err)
        self.assertIn("network_filesystems", err)

    def test_two_instances_take_turns_without_overlap(self):
        runs = self.contend(2)
        self.assertEqual(sorted(r.node for r in runs), ["n0", "n1"])
        self.assertNoOverlap(runs)

    def test_five_instances_all_get_a_turn_and_never_overlap(self):
        runs = self.contend(5)
        self.assertEqual(sorted(r.node for r in runs), ["n%d" % i for i in range(5)])
        self.assertNoOverlap(runs)
        ok, tokens = tokens_increase(runs)
        self.assertTrue(ok, "tokens not strictly increasing: %r" % tokens)
        self.assertEqual(len(set(tokens)), 5)

    def test_three_holders_let_exactly_three_run_at_once(self):
        runs = self.contend(6, hold_ms=600, extra=("--holders=3",))
        self.assertEqual(len(runs), 6)
        self.assertEqual(max_concurrency(runs), 3, runs)
        self.assertNoOverlap(runs, holders=3)

    def hold_lock(self, name="jobs", *extra):
        log = self.path("holder.log")
        holder = self.start(self.base(name, *extra) + ["--"] + payload(log, "holder"), label="holder")
        self.assertTrue(wait_for(lambda: read_runs(log), 10), holder.stderr())
        return holder, log

    def test_wait_zero_when_busy_exits_75_at_once(self):
        self.hold_lock()
        t0 = time.monotonic()
        code, _, err = run(self.base("jobs", "--wait=0", "--", "true"))
        self.assertEqual(code, EX_BUSY, err)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertIn("busy", err)

    def test_flock_short_options_try_once_and_choose_the_busy_code(self):
        self.hold_lock()
        code, _, err = run(self.base("jobs", "-nE", "3", "--", "true"))
        self.assertEqual(code, 3, err)
        code, _, err = run(self.base("jobs", "-E0", "-w", "0.2", "--", "true"))
        self.assertEqual(code, 0, err)
        self.assertIn("busy, gave up after 200ms", err)
        code, _, err = run(self.base("jobs", "--nonblock", "--", "true"))
        self.assertEqual(code, EX_BUSY, err)

    def test_wait_expiry_exits_75_after_the_wait(self):
        self.hold_lock()
        t0 = time.monotonic()
        code, _, err = run(self.base("jobs", "--wait=1s", "--", "true"))
        elapsed = time.monotonic() - t0
        self.assertEqual(code, EX_BUSY, err)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 5.0)

    def test_payload_exit_code_passes_through(self):
        code, _, err = run(self.base("jobs", "--", PAYLOAD, "--hold", "0", "--exit", "3"))
        self.assertEqual(code, 3, err)

    def test_payload_killed_by_signal_gives_128_plus_n(self):
        code, _, err = run(self.base("jobs", "--", "sh", "-c", "kill -9 $$"))
        self.assertEqual(code, 128 + 9, err)

    def test_sigterm_while_running_stops_payload_and_its_group_and_releases(self):
        log = self.path("runs.log")
        holder = self.start(self.base() + ["--"] + payload(log, "holder", "--daemon-child"))
        self.assertTrue(wait_for(lambda: len(read_runs(log)) == 2, 10), holder.stderr())
        pids = [r.pid for r in read_runs(log)]
        t0 = time.monotonic()
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(15), 0, holder.stderr())
        # The daemonized grandchild ignores SIGTERM: it must have been SIGKILLed at the
        # stop timeout (5 s by default).
        self.assertLess(time.monotonic() - t0, 10)
        for pid in pids:
            self.assertFalse(pid_alive(pid), "payload process %d survived" % pid)
        code, _, err = run(self.base("jobs", "--wait=0", "--", "true"))
        self.assertEqual(code, 0, "lock not released: " + err)

    def test_stop_timeout_escalates_to_sigkill(self):
        log = self.path("runs.log")
        holder = self.start(self.base("jobs", "--stop-timeout=700ms") + ["--"] +
                            payload(log, "holder", "--ignore-term"))
        self.assertTrue(wait_for(lambda: read_runs(log), 10))
        t0 = time.monotonic()
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.6)
        self.assertLess(elapsed, 4.0)
        self.assertFalse(pid_alive(read_runs(log)[0].pid))

    def test_sigterm_while_waiting_exits_0_within_100ms(self):
        self.hold_lock()
        waiter = self.start(self.base() + ["--", "true"], label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        self.assertStopsAtOnceOnSigterm(waiter)

    def test_waiter_wakes_at_release_not_at_its_next_retry(self):
        # A waiter watches the lock directory (inotify, set up when it first finds the lock
        # busy), so the holder's end wakes it at once; its retries are a second apart.
        holder, _ = self.hold_lock()
        log = self.path("waiter.log")
        waiter = self.start(self.base() + ["--"] + payload(log, "waiter", "--hold", 0), label="waiter")
        self.assertTrue(wait_for(lambda: "waiting" in waiter.stderr(), 10), waiter.stderr())
        time.sleep(0.4)  # about half-way to its next retry
        released = time.time_ns()
        holder.signal(signal.SIGKILL)  # the kernel closes the lock file: the waiters' event
        self.assertEqual(waiter.wait(10), 0, waiter.stderr())
        delay = (read_runs(log)[0].start - released) / 1e9
        self.assertLess(delay, 0.3, "the waiter took the lock %.3f s after the release" % delay)

    def test_sigkill_of_lockunit_kills_payload_and_frees_lock(self):
        holder, log = self.hold_lock()
        payload_pid = read_runs(log)[0].pid
        holder.signal(signal.SIGKILL)
        holder.wait(5)
        self.assertTrue(wait_for(lambda: not pid_alive(payload_pid), 5), "payload survived SIGKILL of lockunit")
        code, _, err = run(self.base("jobs", "--wait=2s", "--", "true"))
        self.assertEqual(code, 0, err)

    def test_children_lockunit_inherited_are_neither_signalled_nor_waited_for(self):
        # `lockunit … 2> >(logger)`: the shell forks the logger, then execs lockunit, so the
        # logger is lockunit's child without being the payload's.
        import subprocess
        from lockunit_test import LOCKUNIT
        term, done = self.path("term"), self.path("done")
        script = ('exec 3> >(exec >/dev/null 2>&1; trap "echo TERM > %s" TERM; sleep 2; echo alive > %s); exec "$@"'
                  % (term, done))
        t0 = time.monotonic()
        p = subprocess.run(["bash", "-c", script, "bash", LOCKUNIT] + self.base() + ["--", "true"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertLess(time.monotonic() - t0, 1.5, "lockunit waited for a child that is not the payload's")
        self.assertTrue(wait_for(lambda: os.path.exists(done), 5))
        self.assertFalse(os.path.exists(term), "lockunit signalled a child that is not the payload's")

    def test_file_lock_in_a_process_group_loads_no_module(self):
        # Network backends and scope mode are modules loaded on first use: a file lock in a
        # process group maps none of them (nor libpq, libssl, nghttp2, protobuf, hiredis,
        # sdbus-c++), and toml++ is compiled in, which keeps lockunit's start-up and memory small.
        # The program carries libstdc++ itself (docs/architecture.md, "libstdc++ inside the
        # program"): no shared libstdc++, nor the libm it brings.
        code, out, err = run(self.base("jobs", "--", "sh", "-c", "cat /proc/$(cut -d' ' -f4 /proc/$PPID/stat)/maps"))
        self.assertEqual(code, 0, err)
        self.assertIn("lockunit", out)
        unneeded = ["lockunit-redis", "lockunit-etcd", "lockunit-postgres", "lockunit-zookeeper",
                    "lockunit-scope", "libzookeeper",
                    "libpq", "libssl", "libnghttp2", "libprotobuf", "libhiredis",
                    "libsdbus-c++", "libtomlplusplus", "libstdc++", "/libm.so"]
        if not os.path.exists("/run/systemd/system"):
            # libsystemd is loaded only to talk to systemd (here: none, no NOTIFY_SOCKET,
            # stderr not the journal), or to name lockunit's unit on a system booted with it.
            unneeded.append("libsystemd")
        for lib in unneeded:
            self.assertNotIn(lib, out)

    def test_payload_cannot_see_the_lock_fd(self):
        code, out, err = run(self.base("jobs", "--", PAYLOAD, "--hold", "0", "--fds"))
        self.assertEqual(code, 0, err)
        self.assertIn("fd 0", out)
        self.assertNotIn(".lock", out)
        self.assertNotIn("inotify", out)
        self.assertNotIn("signalfd", out)

    def test_payload_environment(self):
        code, out, err = run(self.base("envtest", "--", "sh", "-c",
                                       "echo N=$LOCKUNIT_NAME T=$LOCKUNIT_TOKEN B=$LOCKUNIT_BACKEND "
                                       "H=$LOCKUNIT_HOLDER NS=${NOTIFY_SOCKET-unset}"),
                             env={"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1"})
        self.assertEqual(code, 0, err)
        self.assertIn("N=envtest", out)
        self.assertRegex(out, r"T=\d+ ")
        self.assertIn("B=file ", out)
        self.assertRegex(out, r"H=\S+:\d+:[0-9a-f]+")
        self.assertIn("NS=unset", out)

    def test_tokens_strictly_increase_across_runs(self):
        tokens = []
        for _ in range(4):
            code, out, err = run(self.base("tok", "--", "sh", "-c", "echo $LOCKUNIT_TOKEN"))
            self.assertEqual(code, 0, err)
            tokens.append(int(out.strip()))
        self.assertEqual(tokens, sorted(set(tokens)))

    def test_forwarded_sighup_reaches_the_payload(self):
        marker = self.path("hup")
        holder = self.start(self.base() + ["--", "sh", "-c",
                                           "trap 'touch %s' HUP; echo up > %s.up; while :; do sleep 0.05; done" % (marker, marker)])
        self.assertTrue(wait_for(lambda: os.path.exists(marker + ".up"), 10), holder.stderr())
        holder.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: os.path.exists(marker), 5), "payload never saw SIGHUP")
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0)

    def test_a_signal_ignored_at_start_stays_ignored_for_the_payload(self):
        # As under nohup: lockunit never sees SIGHUP, and the payload starts with it ignored,
        # as it would without lockunit (so it survives a SIGHUP it sends itself).
        script = "kill -HUP $$; echo survived"
        p = subprocess.run([LOCKUNIT] + self.base() + ["--", "sh", "-c", script],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                           preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        self.assertEqual((p.returncode, p.stdout), (0, "survived\n"), p.stderr)
        # The control: with SIGHUP at its default, the same payload dies of it.
        code, out, err = run(self.base() + ["--", "sh", "-c", script])
        self.assertEqual((code, out), (128 + signal.SIGHUP, ""), err)

    def test_lock_lost_when_lock_file_is_replaced(self):
        holder, log = self.hold_lock("swap", "--ttl=3s", "--renew=500ms", "--stop-timeout=1s")
        lockfile = os.path.join(self.path("locks"), "swap.lock")
        os.rename(lockfile, lockfile + ".old")
        with open(lockfile, "w"):
            pass
        self.assertEqual(holder.wait(10), 79, holder.stderr())
        self.assertIn("lost", holder.stderr())
        self.assertFalse(pid_alive(read_runs(log)[0].pid))

    def test_status_reports_the_holder(self):
        holder, _ = self.hold_lock("st")
        code, out, err = run(["status"] + self.base("st"))
        self.assertEqual(code, 0, err)
        self.assertIn("held", out)
        self.assertIn("pid %d" % holder.pid, out)
        code, out, err = run(["status", "--json"] + self.base("st"))
        self.assertEqual(code, 0, err)
        self.assertIn('"held":true', out)
        holder.signal(signal.SIGTERM)
        holder.wait(10)
        code, out, err = run(["status"] + self.base("st"))
        self.assertEqual(code, 3, out + err)
        self.assertIn("free", out)


class Config(LockunitTestCase):
    def write(self, text, name="reports.toml"):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_command_and_name_come_from_the_config_file(self):
        conf = self.write('backend = "file://%s"\nscope = "no"\ncommand = ["sh", "-c", "echo $LOCKUNIT_NAME"]\n'
                          % self.path("locks"))
        code, out, err = run(["--conf=" + conf])
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), "reports")

    def test_check_prints_the_resolved_config_with_origins(self):
        conf = self.write('ttl = "30s"\ncommand = ["/bin/true"]\n')
        code, out, err = run(["check", "--conf=" + conf, "--stop-timeout=2s"])
        self.assertEqual(code, 0, err)
        self.assertIn('ttl = "30s"  # %s:1:7' % conf, out)
        self.assertIn('renew = "10s"  # default', out)
        self.assertIn('stop_timeout = "2s"  # --stop-timeout', out)
        self.assertIn('name = "reports"', out)

    def assertConfigError(self, text, *fragments, code=EX_CONFIG):
        conf = self.write(text)
        rc, out, err = run(["check", "--conf=" + conf])
        self.assertEqual(rc, code, err)
        for frag in fragments:
            self.assertIn(frag.replace("FILE", conf), err)
        return err

    def test_unknown_key_is_refused_with_its_position(self):
        self.assertConfigError('ttl = "20s"\nttll = "3s"\n', "FILE:2:1: ttll: unknown key")

    def test_wrong_type_names_expected_and_found(self):
        self.assertConfigError('holders = "three"\n', "FILE:1:11: holders: expected a whole number, found 'three'")

    def test_bad_duration_is_refused(self):
        self.assertConfigError('\n\nttl = "fifteen"\n', "FILE:3:7: ttl: expected a duration", "found 'fifteen'")

    def test_bare_number_is_seconds_as_in_systemd(self):
        conf = self.write('ttl = 15\nwait = "1.5"\n')
        rc, out, err = run(["check", "--conf=" + conf])
        self.assertEqual(rc, 0, err)
        self.assertIn('ttl = "15s"', out)
        self.assertIn('wait = "1s500ms"', out)

    def test_budget_that_breaks_the_deadline_rule_is_refused(self):
        err = self.assertConfigError('ttl = "10s"\nstop_timeout = "8s"\n', "FILE:", "too short")
        self.assertIn("stop_timeout 8s", err)

    def test_unknown_backend_lists_the_known_ones(self):
        self.assertConfigError('backend = "etdc://localhost:2379"\n',
                               "FILE:1:11: backend: unknown backend 'etdc' (available: ", "file")

    def test_unknown_table_is_refused(self):
        self.assertConfigError('[redsi]\nhost = "x"\n', "FILE:1:2: unknown table [redsi]")

    def test_toml_syntax_error_has_a_position(self):
        self.assertConfigError('ttl = "15s\n', "FILE:1:", "syntax error")

    def test_every_error_is_reported_not_just_the_first(self):
        err = self.assertConfigError('ttl = "x"\nwait = "y"\n', "FILE:1:7", "FILE:2:8")
        self.assertEqual(err.count("expected a duration"), 2)

    def test_missing_command_is_refused_before_any_lock(self):
        conf = self.write('backend = "file://%s"\n' % self.path("locks"))
        rc, _, err = run(["--conf=" + conf])
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("no command to run", err)
        self.assertFalse(os.path.exists(self.path("locks")), "a lock directory was touched")

    def test_command_not_found_is_refused_before_any_lock(self):
        rc, _, err = run(["--backend=file://" + self.path("locks"), "--", "no-such-program-xyz"])
        self.assertEqual(rc, EX_USAGE, err)
        self.assertIn("not found", err)
        self.assertFalse(os.path.exists(self.path("locks")))

    def test_bad_command_line_is_64(self):
        for args in (["--ttl=abc", "--", "true"], ["--no-such-flag", "--", "true"],
                     ["--ttl"], ["--", ]):
            rc, _, err = run(args)
            self.assertEqual(rc, EX_USAGE, "%r: %s" % (args, err))

    def test_bad_signal_names_are_refused(self):
        rc, _, err = run(["--stop-signal=SIGFOO", "--", "true"])
        self.assertEqual(rc, EX_USAGE)
        self.assertIn("--stop-signal: expected a signal name", err)
        self.assertConfigError('forward_signals = ["HUP", "KILL"]\n', "SIGKILL cannot be forwarded")


class LockFilePermissions(LockunitTestCase):
    """Anyone who can open a lock file can flock it: root's lock files must be closed to other
    users, who can then neither take nor block a root lock."""

    AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root, to run commands as nobody")
        os.chmod(self.dir, 0o755)  # others may look in, as in /run/lock
        self.locks = self.path("locks")

    def as_nobody(self, args, timeout=30):
        p = subprocess.run(self.AS_NOBODY + args, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def args(self, *extra, locks=None):
        return ["--backend=file://" + (locks or self.locks), "--name=jobs", "--scope=no"] + list(extra)

    def mode(self, name, locks=None):
        return os.stat(os.path.join(locks or self.locks, name)).st_mode & 0o7777

    def test_nobody_can_neither_take_nor_block_a_root_lock(self):
        code, _, err = run(self.args("--", "true"))
        self.assertEqual(code, 0, err)
        self.assertEqual(self.mode("jobs.lock"), 0o600)
        self.assertEqual(self.mode("jobs.fence"), 0o600)
        lock = os.path.join(self.locks, "jobs.lock")
        # The attack: flock the file read-only while root tries once.
        blocker = subprocess.Popen(self.AS_NOBODY + ["flock", "-n", lock, "sleep", "5"],
                                   stderr=subprocess.PIPE, text=True)
        try:
            code, _, err = run(self.args("--wait=0", "--", "true"))
            self.assertEqual(code, 0, err)
        finally:
            blocker.kill()
            _, blocker_err = blocker.communicate()
        self.assertIn("Permission denied", blocker_err)
        code, _, err = self.as_nobody([LOCKUNIT] + self.args("--wait=0", "--", "true"))
        self.assertEqual(code, 69, err)
        self.assertIn("Permission denied", err)

    def test_existing_files_are_closed_when_opened(self):
        os.makedirs(self.locks, mode=0o755)
        for name, mode in (("jobs.lock", 0o644), ("jobs.fence", 0o666)):
            with open(os.path.join(self.locks, name), "w"):
                pass
            os.chmod(os.path.join(self.locks, name), mode)
        code, _, err = run(self.args("--", "true"))
        self.assertEqual(code, 0, err)
        self.assertEqual(self.mode("jobs.lock"), 0o600)
        self.assertEqual(self.mode("jobs.fence"), 0o600)

    def test_status_works_for_whoever_may_read_the_files(self):
        holder = self.start(self.args("--", PAYLOAD, "--hold", "30000"), label="holder")
        lock = os.path.join(self.locks, "jobs.lock")
        self.assertTrue(wait_for(lambda: os.path.exists(lock) and os.path.getsize(lock) > 0, 10),
                        holder.stderr())
        code, out, err = run(["status"] + self.args())
        self.assertEqual(code, 0, err)  # root: held
        code, _, err = self.as_nobody([LOCKUNIT, "status"] + self.args())
        self.assertEqual(code, 69, err)
        self.assertIn("Permission denied", err)
        holder.signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr())
        # With [file] group = "nogroup" the files are 0640 root:nogroup: nobody may read them.
        conf = self.path("jobs.toml")
        with open(conf, "w") as f:
            f.write('backend = "file://%s"\nscope = "no"\n[file]\ngroup = "nogroup"\n' % self.locks)
        os.chmod(conf, 0o644)
        holder = self.start(["--conf=" + conf, "--", PAYLOAD, "--hold", "30000"], label="holder2")
        self.assertTrue(wait_for(lambda: self.mode("jobs.lock") == 0o640 and
                                 os.path.getsize(lock) > 0, 10), holder.stderr())
        self.assertEqual(os.stat(lock).st_gid, 65534)
        code, out, err = self.as_nobody([LOCKUNIT, "status", "--conf=" + conf])
        self.assertEqual(code, 0, err)
        self.assertIn("jobs", out)

    def test_a_directory_others_can_write_is_refused_unless_sticky(self):
        shared = self.path("shared")
        os.mkdir(shared)
        os.chmod(shared, 0o777)
        code, _, err = run(self.args("--", "true", locks=shared))
        self.assertEqual(code, 69, err)
        self.assertIn("can be written by others", err)
        os.chmod(shared, 0o1777)  # as /tmp: only a file's owner can replace it
        code, _, err = run(self.args("--", "true", locks=shared))
        self.assertEqual(code, 0, err)
        self.assertEqual(self.mode("jobs.lock", locks=shared), 0o600)
        # A file someone else put there first is not ours, and is refused.
        code, _, err = self.as_nobody(["touch", os.path.join(shared, "other.lock")])
        self.assertEqual(code, 0, err)
        code, _, err = run(["--backend=file://" + shared, "--name=other", "--scope=no", "--", "true"])
        self.assertEqual(code, 69, err)
        self.assertIn("belongs to uid 65534", err)

    def test_a_directory_of_another_user_is_refused(self):
        os.makedirs(self.locks)
        os.chown(self.locks, 65534, 65534)
        code, _, err = run(self.args("--", "true"))
        self.assertEqual(code, 69, err)
        self.assertIn("belongs to uid 65534", err)


class SshfsLockDir(LockunitTestCase):
    """A lock directory on a real network filesystem: a directory served over SFTP on loopback
    TCP (socat runs an sftp-server for each connection, no sshd) and mounted with sshfs, twice,
    as two machines sharing it would."""

    SFTP_SERVER = "/usr/lib/openssh/sftp-server"
    NEEDS = ("sshfs", "fusermount3", "socat", SFTP_SERVER, "flock", "/dev/fuse")

    def setUp(self):
        self.require(*self.NEEDS)
        super().setUp()
        self.served = self.path("served")
        os.mkdir(self.served)
        self.socat = self.serve_sftp()
        self.addCleanup(self.stop, self.socat)
        self.mounts = [self.mount(self.path("m%d" % i)) for i in (1, 2)]

    def tearDown(self):
        # Unmounted first: the scratch directory that LockunitTestCase then removes holds the
        # mount points. The lockunits go before, as a process inside a mount keeps it busy.
        for inst in self.instances:
            inst.kill()
        self.doCleanups()
        super().tearDown()

    def stop(self, proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def serve_sftp(self):
        """socat serving SFTP on a free loopback port (another test may take the one we picked
        before socat binds it: then another one)."""
        for _ in range(10):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            with open(self.path("socat.err"), "ab") as err:
                proc = subprocess.Popen(
                    ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % self.port,
                     "EXEC:" + self.SFTP_SERVER], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err)

            def listening():
                if proc.poll() is not None:
                    return True
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                    return True
                except OSError:
                    return False
            wait_for(listening, 10)
            if proc.poll() is None:
                return proc
        self.fail("socat could not listen: " + open(self.path("socat.err")).read()[-2000:])

    def mount(self, point):
        """sshfs, in the foreground so that its PID is ours to stop, mounting the served
        directory at `point` straight over TCP (directport: no ssh)."""
        os.mkdir(point)
        with open(point + ".err", "wb") as err:
            proc = subprocess.Popen(
                ["sshfs", "-f", "-o", "directport=%d" % self.port,
                 "127.0.0.1:" + self.served, point],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(self.stop, proc)  # cleanups run last first: after the unmount
        self.addCleanup(self.unmount, point)
        mounted = wait_for(lambda: os.path.ismount(point) or proc.poll() is not None, 15)
        if not (mounted and proc.poll() is None):
            self.fail("sshfs did not mount %s: %s" % (point, open(point + ".err").read()[-2000:]))
        return point

    def unmount(self, point):
        if os.path.ismount(point):
            if subprocess.run(["fusermount3", "-u", point], timeout=30).returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", point], timeout=30)  # lazily, if busy

    def args(self, *extra, conf=None):
        return (["--conf=" + conf] if conf else []) + [
            "--backend=file://" + os.path.join(self.mounts[0], "locks"), "--name=jobs",
            "--scope=no"] + list(extra)

    def test_a_lock_directory_on_sshfs_is_refused_unless_network_filesystems_is_set(self):
        with open(os.path.join(self.mounts[0], "probe"), "w") as f:
            f.write("over sftp")
        with open(os.path.join(self.served, "probe")) as f:
            self.assertEqual(f.read(), "over sftp")  # the mount is the real thing
        code, _, err = run(self.args("--", "true"))
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("is on fuse.sshfs, a network filesystem", err)
        self.assertIn("network_filesystems = true", err)
        conf = self.path("f.toml")
        with open(conf, "w") as f:
            f.write("[file]\nnetwork_filesystems = true\n")
        log = self.path("runs.log")
        code, _, err = run(self.args("--", *payload(log, "n0", "--hold", 100), conf=conf))
        self.assertEqual(code, 0, err)
        self.assertEqual([r.node for r in read_runs(log)], ["n0"])
        self.assertTrue(os.path.exists(os.path.join(self.served, "locks", "jobs.lock")))

    def test_two_sshfs_mounts_of_one_directory_both_get_one_flock_at_once(self):
        # Why the refusal: sshfs forwards no lock to the server, so each mount's flock is its
        # own kernel's. Two machines sharing the directory would both hold the lock.
        with open(os.path.join(self.served, "f.lock"), "w"):
            pass
        first, second = (os.path.join(m, "f.lock") for m in self.mounts)

        def nested_flocks(outer, inner):
            return subprocess.run(["flock", "-n", outer, "flock", "-n", "-E", "42", inner, "true"],
                                  timeout=30, capture_output=True, text=True)
        # flock -n does see a holder: through one mount, the inner flock is refused (its -E 42)…
        p = nested_flocks(first, first)
        self.assertEqual(p.returncode, 42, p.stderr)
        # …but through two mounts of the same served file both are granted at once.
        p = nested_flocks(first, second)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    main()
