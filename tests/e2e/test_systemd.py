#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""lockunit as a systemd citizen, end to end, on a real systemd 252 booted in containers:
the payload's transient scope, stop/kill/restart/reload, exit codes, notify modes, the
watchdog, and two nodes contending for one lock. Every assertion is on real state:
`systemctl show`, /proc/PID/cgroup, the journal, the payload's own records."""

import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import main, overlaps, read_runs, wait_for  # noqa: E402
from systemd_container import (BUILD_ROOT, LOCKUNIT, PAYLOAD, Container,  # noqa: E402
                               require_nspawn)

EX_LOST = 79


def read(path):
    with open(path) as f:
        return f.read()


def unit_text(args, command, service_extra="", unit_extra=""):
    return ("[Unit]\n%s\n[Service]\nType=notify\nNotifyAccess=main\n"
            "ExecStart=%s -v %s -- %s\n"
            "ExecStopPost=-%s cleanup\n"
            "ExecReload=/bin/kill -HUP $MAINPID\n"
            "TimeoutStopSec=30s\n%s\n") % (unit_extra, LOCKUNIT, args, command, LOCKUNIT,
                                          service_extra)


class ContainerTestCase(unittest.TestCase):
    """One container per test class (boots take ~3 s); units are named per test."""

    nodes = 1
    shared_lock_dir = False

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="lockunit-e2e-out-")
        os.chmod(cls.out, 0o777)
        binds = [(cls.out, "/run/out")]
        if cls.shared_lock_dir:
            cls.locks = tempfile.mkdtemp(prefix="lockunit-e2e-locks-")
            binds.append((cls.locks, "/run/shared"))
        cls.containers = []
        try:
            for i in range(cls.nodes):
                cls.containers.append(Container("n%d" % i, binds).boot())
        except Exception:
            cls.tearDownClass()
            raise
        cls.c = cls.containers[0]

    @classmethod
    def tearDownClass(cls):
        for c in cls.containers:
            c.poweroff()
            c.cleanup_logs()
        shutil.rmtree(cls.out, ignore_errors=True)
        if cls.shared_lock_dir:
            shutil.rmtree(cls.locks, ignore_errors=True)

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = result is not None and any(
            t is self for t, _ in result.failures + result.errors)
        if failed:
            for c in self.containers:
                print("\n--- journal of %s:\n%s" % (c.name, c.journal(lines=150)), file=sys.stderr)

    # -- helpers -------------------------------------------------------------------------
    def log(self, name):
        """(host path, inside path) of a payload record log."""
        return os.path.join(self.out, name), "/run/out/" + name

    def payload(self, inside_log, node, *extra):
        return " ".join([PAYLOAD, "--log", inside_log, "--node", node] + [str(e) for e in extra])

    def runs_of(self, host_log, node=None):
        return [r for r in read_runs(host_log) if node is None or r.node == node]

    def started_payload(self, host_log, node="a", count=1, timeout=15):
        runs = wait_for(lambda: len(self.runs_of(host_log, node)) >= count and
                        self.runs_of(host_log, node), timeout)
        self.assertTrue(runs, "payload %s never started" % node)
        return runs[-1]

    def lock_is_free(self, name, c=None):
        c = c or self.c
        r = c.run([LOCKUNIT, "status", "--name=" + name, "--json"], check=False)
        held = '"held":true' in r.stdout.replace(" ", "")
        free = '"held":false' in r.stdout.replace(" ", "")
        self.assertTrue(held or free, "lockunit status: %s%s" % (r.stdout, r.stderr))
        return free

    def scope_loaded(self, unit, c=None):
        c = c or self.c
        return c.prop("lockunit-%s.scope" % unit, "LoadState") == "loaded"


class Scope(ContainerTestCase):
    """Scenarios 1–7 of issue 3."""

    def test_0_scope_mode_is_chosen_only_inside_a_unit(self):
        # nsenter'd commands run in no unit of the container's systemd.
        r = self.c.run([LOCKUNIT, "--name=s0", "--scope=yes", "--", "/bin/true"], check=False)
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertIn("--scope=yes needs lockunit to run in a systemd unit", r.stderr)
        r = self.c.run([LOCKUNIT, "--name=s0", "--", "/bin/sh", "-c", "exit 3"], check=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("process group (not started by systemd)", r.stderr)
        r = self.c.run([LOCKUNIT, "cleanup"], check=False)
        self.assertEqual(r.returncode, 69, r.stderr)
        r = self.c.run([LOCKUNIT, "cleanup", "--ttl=5s"], check=False)
        self.assertEqual(r.returncode, 64, r.stderr)
        # Inside a unit, auto means a scope.
        r = self.c.run(["systemd-run", "--quiet", "--wait", "--pipe", "--unit=s0-auto", LOCKUNIT,
                        "--name=s0", "--", "/bin/sh", "-c", "cat /proc/self/cgroup; exit 3"],
                       check=False)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("0::/system.slice/lockunit-s0\\x2dauto.service.scope", r.stdout)

    def test_0b_scope_mode_without_its_module_exits_69_and_says_why(self):
        # Scope mode is the module lockunit-scope.so, loaded from next to the program or from
        # the installed module directory: a lone copy of the program finds neither. It still
        # runs a payload in a process group, but scope mode (yes, or auto inside a unit) and
        # cleanup fail with 69 instead of running the payload unscoped.
        self.c.run(["mkdir", "-p", "/run/lone"])
        self.c.run(["cp", LOCKUNIT, "/run/lone/lockunit"])

        def lone(unit, *args):
            return self.c.run(["systemd-run", "--quiet", "--wait", "--pipe", "--unit=" + unit,
                               "/run/lone/lockunit"] + list(args), check=False)
        for unit, args in (("s0b-yes", ["--scope=yes"]), ("s0b-auto", [])):
            r = lone(unit, "--name=s0b", *args, "--", "/bin/true")
            self.assertEqual(r.returncode, 69, r.stdout + r.stderr)
            self.assertIn("cannot load the scope module", r.stderr)
        r = lone("s0b-cleanup", "cleanup")
        self.assertEqual(r.returncode, 69, r.stdout + r.stderr)
        self.assertIn("cannot load the scope module", r.stderr)
        r = lone("s0b-no", "--name=s0b", "--scope=no", "--", "/bin/sh", "-c", "exit 3")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)

    def test_1_payload_runs_in_its_own_scope_with_its_properties(self):
        host_log, log = self.log("s1.log")
        self.c.install_unit("s1.service", unit_text(
            "--name=s1 --memory-max=256M --cpu-quota=50% --tasks-max=32 --stop-timeout=3s "
            "--stop-signal=SIGINT", self.payload(log, "a")))
        self.c.systemctl("start", "s1")
        run = self.started_payload(host_log)
        main_pid = int(self.c.prop("s1.service", "MainPID"))
        self.assertEqual(self.c.cgroup_of(main_pid), "/system.slice/s1.service")
        self.assertEqual(self.c.cgroup_of(run.pid), "/system.slice/lockunit-s1.service.scope")
        scope = self.c.show("lockunit-s1.service.scope", "BindsTo", "After", "CollectMode",
                            "KillSignal", "SendSIGKILL", "TimeoutStopUSec", "MemoryMax",
                            "TasksMax", "CPUQuotaPerSecUSec", "Description", "ActiveState")
        self.assertEqual(scope["ActiveState"], "active")
        self.assertEqual(scope["BindsTo"], "s1.service")
        self.assertNotIn("s1.service", scope["After"])
        self.assertEqual(scope["CollectMode"], "inactive-or-failed")
        self.assertEqual(scope["KillSignal"], str(signal.SIGINT.value))
        self.assertEqual(scope["SendSIGKILL"], "yes")
        # stop_timeout + the margin: the lock guard SIGKILLs at stop_timeout, systemd after.
        self.assertEqual(scope["TimeoutStopUSec"], "3.500000s")
        self.assertEqual(scope["MemoryMax"], str(256 << 20))
        self.assertEqual(scope["TasksMax"], "32")
        self.assertEqual(scope["CPUQuotaPerSecUSec"], "500ms")
        self.assertIn("lock 's1'", scope["Description"])
        self.assertIn(PAYLOAD, scope["Description"])
        status = self.c.prop("s1.service", "StatusText")
        self.assertRegex(status, r"^active: holding 's1' \(token \d+\) since .*, payload PID %d "
                                 r"in lockunit-s1.service.scope$" % run.pid)
        shown = self.c.systemctl("status", "s1", "--no-pager", check=False).stdout
        self.assertIn('Status: "active: holding \'s1\'', shown)
        self.assertIn("transient scope 'lockunit-s1.service.scope'", self.c.journal("s1.service"))
        self.c.systemctl("stop", "s1")

    def test_1c_scope_properties_are_set_as_systemd_run_p_sets_them(self):
        host_log, log = self.log("s1c.log")
        self.c.install_unit("s1c.service", unit_text(
            "--name=s1c -p MemoryHigh=1G -pCPUQuota=20%% \"-pRuntimeMaxSec=1h 30min\" "
            "--property=Delegate=yes -p CPUWeight=50 --memory-max=256M -p MemoryMax=512M "
            "\"--description=nightly reports\"", self.payload(log, "a")))
        self.c.systemctl("start", "s1c")
        self.started_payload(host_log)
        scope = self.c.show("lockunit-s1c.service.scope", "MemoryHigh", "CPUQuotaPerSecUSec",
                            "RuntimeMaxUSec", "Delegate", "CPUWeight", "MemoryMax", "Description",
                            "BindsTo", "ActiveState")
        self.assertEqual(scope["ActiveState"], "active")
        self.assertEqual(scope["MemoryHigh"], str(1 << 30))
        self.assertEqual(scope["CPUQuotaPerSecUSec"], "200ms")
        self.assertEqual(scope["RuntimeMaxUSec"], "1h 30min")
        self.assertEqual(scope["Delegate"], "yes")
        self.assertEqual(scope["CPUWeight"], "50")
        self.assertEqual(scope["MemoryMax"], str(512 << 20))  # -p comes after --memory-max
        self.assertEqual(scope["Description"], "nightly reports")
        self.assertEqual(scope["BindsTo"], "s1c.service")  # lockunit's own properties stay
        self.c.systemctl("stop", "s1c")

    def test_2_stop_leaves_unit_inactive_scope_gone_and_lock_free(self):
        host_log, log = self.log("s2.log")
        self.c.install_unit("s2.service", unit_text("--name=s2", self.payload(log, "a")))
        self.c.systemctl("start", "s2")
        run = self.started_payload(host_log)
        self.assertFalse(self.lock_is_free("s2"))
        self.c.systemctl("stop", "s2")
        st = self.c.show("s2.service", "ActiveState", "Result", "ExecMainStatus")
        self.assertEqual(st["ActiveState"], "inactive")
        self.assertEqual(st["Result"], "success")
        self.assertEqual(st["ExecMainStatus"], "0")
        self.assertFalse(self.c.alive(run.pid))
        self.assertTrue(self.runs_of(host_log)[-1].ended, "payload did not stop gracefully")
        self.assertFalse(self.scope_loaded("s2.service"))
        self.assertTrue(self.lock_is_free("s2"))

    def test_3_sigkill_of_lockunit_takes_scope_and_payload_down(self):
        host_log, log = self.log("s3.log")
        self.c.install_unit("s3.service", unit_text("--name=s3 --stop-timeout=2s",
                                                    self.payload(log, "a")))
        self.c.systemctl("start", "s3")
        run = self.started_payload(host_log)
        main_pid = int(self.c.prop("s3.service", "MainPID"))
        self.c.run(["kill", "-9", str(main_pid)])
        gone = wait_for(lambda: not self.c.alive(run.pid) and not self.scope_loaded("s3.service"),
                        2 + 3)
        self.assertTrue(gone, "payload or scope survived a SIGKILLed lockunit")
        self.assertEqual(self.c.prop("s3.service", "Result"), "signal")
        self.assertTrue(self.lock_is_free("s3"))
        self.c.systemctl("reset-failed", "s3", check=False)

    def test_4_daemonizing_payload_is_stopped_completely(self):
        host_log, log = self.log("s4.log")
        self.c.install_unit("s4.service", unit_text("--name=s4 --stop-timeout=2s",
                                                    self.payload(log, "a", "--daemon-child")))
        self.c.systemctl("start", "s4")
        self.started_payload(host_log, "a")
        child = self.started_payload(host_log, "a/child")
        # setsid + double fork: out of the process group, still in the scope's cgroup.
        self.assertEqual(self.c.cgroup_of(child.pid), "/system.slice/lockunit-s4.service.scope")
        self.c.systemctl("stop", "s4")
        self.assertFalse(self.c.alive(child.pid), "the daemonized grandchild survived")
        self.assertEqual(self.c.prop("s4.service", "ActiveState"), "inactive")
        self.assertFalse(self.scope_loaded("s4.service"))

    def test_5_restart_of_a_hung_lockunit_leaves_no_old_scope(self):
        host_log, log = self.log("s5.log")
        self.c.install_unit("s5.service", unit_text("--name=s5 --stop-timeout=2s",
                                                    self.payload(log, "a"),
                                                    "TimeoutStopSec=3s"))
        self.c.systemctl("start", "s5")
        old = self.started_payload(host_log)
        main_pid = int(self.c.prop("s5.service", "MainPID"))
        self.c.run(["kill", "-STOP", str(main_pid)])
        self.c.systemctl("restart", "s5", timeout=60)
        new = self.started_payload(host_log, count=2)
        self.assertNotEqual(new.pid, old.pid)
        self.assertFalse(self.c.alive(old.pid), "the old payload survived the restart")
        self.assertEqual(self.c.cgroup_of(new.pid), "/system.slice/lockunit-s5.service.scope")
        alive = [r for r in self.runs_of(host_log) if self.c.alive(r.pid)]
        self.assertEqual([r.pid for r in alive], [new.pid])
        self.c.systemctl("stop", "s5")

    def test_5b_stale_scope_is_stopped_before_a_new_one_is_made(self):
        host_log, log = self.log("s5b.log")
        self.c.install_unit("s5b.service", unit_text("--name=s5b", self.payload(log, "a")))
        # A leftover scope of the same name, with a process in it, not bound to anything.
        stale = self.c.spawn(["systemd-run", "--quiet", "--scope",
                              "--unit=lockunit-s5b.service.scope", "sleep", "600"], "stale.log")
        try:
            self.assertTrue(wait_for(lambda: self.scope_loaded("s5b.service"), 10))
            self.c.systemctl("start", "s5b")
            run = self.started_payload(host_log)
            stale.wait(timeout=10)  # its sleep was killed with the stale scope
            self.assertEqual(self.c.cgroup_of(run.pid),
                             "/system.slice/lockunit-s5b.service.scope")
            procs = self.c.run(["systemctl", "show", "-p", "MainPID", "s5b"]).stdout
            self.assertIn("MainPID=", procs)
            self.c.systemctl("stop", "s5b")
        finally:
            if stale.poll() is None:
                stale.kill()
                stale.wait()

    def test_5c_cleanup_in_exec_stop_post_stops_a_leftover_scope(self):
        self.c.install_unit("c5.service", "[Service]\nExecStart=/bin/sleep 600\n"
                                          "ExecStopPost=%s cleanup\n" % LOCKUNIT)
        self.c.systemctl("start", "c5")
        stale = self.c.spawn(["systemd-run", "--quiet", "--scope",
                              "--unit=lockunit-c5.service.scope", "sleep", "600"], "c5.log")
        try:
            self.assertTrue(wait_for(lambda: self.scope_loaded("c5.service"), 10))
            self.c.systemctl("stop", "c5")
            self.assertFalse(self.scope_loaded("c5.service"))
            self.assertIn("stopped leftover payload scope 'lockunit-c5.service.scope'",
                          self.c.journal("c5.service"))
            stale.wait(timeout=10)
        finally:
            if stale.poll() is None:
                stale.kill()
                stale.wait()

    def test_6_payload_exit_3_fails_the_unit_and_restart_starts_it_again(self):
        marker = "/run/out/s6.first"
        script = ("if [ -e %s ]; then exec sleep 600; fi; touch %s; exit 3" % (marker, marker))
        self.c.install_unit("s6.service", unit_text(
            "--name=s6", "/bin/sh -c '%s'" % script, "Restart=on-failure\nRestartSec=1s"))
        self.c.systemctl("start", "s6")
        restarted = wait_for(lambda: self.c.prop("s6.service", "NRestarts") == "1" and
                             self.c.prop("s6.service", "ActiveState") == "active", 20)
        self.assertTrue(restarted, self.c.show("s6.service", "NRestarts", "ActiveState"))
        journal = self.c.journal("s6.service")
        self.assertIn("Main process exited, code=exited, status=3", journal)
        self.assertIn("Failed with result 'exit-code'", journal)
        self.c.systemctl("stop", "s6")
        self.assertEqual(self.c.prop("s6.service", "ActiveState"), "inactive")

    def test_7_reload_sends_sighup_to_the_payload(self):
        hup = "/run/out/s7.hup"
        script = "trap \"echo main >> %s\" HUP; while :; do sleep 0.1; done" % hup
        self.c.install_unit("s7.service", unit_text("--name=s7", "/bin/sh -c '%s'" % script))
        self.c.systemctl("start", "s7")
        time.sleep(0.5)
        self.c.systemctl("reload", "s7")
        host = os.path.join(self.out, "s7.hup")
        self.assertTrue(wait_for(lambda: os.path.exists(host) and read(host) == "main\n",
                                 5))
        self.assertEqual(self.c.prop("s7.service", "ActiveState"), "active")
        self.c.systemctl("stop", "s7")

    def test_7b_forward_to_all_reaches_every_process_of_the_scope(self):
        hup = "/run/out/s7b.hup"
        child = "(trap \"echo child >> %s\" HUP; while :; do sleep 0.1; done) &" % hup
        script = child + " trap \"echo main >> %s\" HUP; while :; do sleep 0.1; done" % hup
        self.c.install_unit("s7b.service", unit_text("--name=s7b --forward-to=all",
                                                     "/bin/sh -c '%s'" % script))
        self.c.systemctl("start", "s7b")
        time.sleep(0.5)
        self.c.systemctl("reload", "s7b")
        host = os.path.join(self.out, "s7b.hup")
        got = wait_for(lambda: os.path.exists(host) and
                       sorted(read(host).split()) == ["child", "main"], 5)
        self.assertTrue(got, read(host) if os.path.exists(host) else "no SIGHUP at all")
        self.c.systemctl("stop", "s7b")


    def test_11_shipped_template_unit_runs_the_config_files_command(self):
        with open(os.path.join(BUILD_ROOT, "units", "lockunit@.service")) as f:
            text = f.read()
        bindir = os.path.dirname(LOCKUNIT)
        text = text.replace("/usr/local/bin/lockunit", LOCKUNIT).replace("/usr/bin/lockunit",
                                                                          LOCKUNIT)
        self.assertIn("ExecStart=%s/lockunit --conf=/etc/lockunit/%%i.toml" % bindir, text)
        host_log, log = self.log("tmpl.log")
        self.c.write("/etc/lockunit/tmpl.toml",
                     'command = ["%s", "--log", "%s", "--node", "a"]\nstop_timeout = "2s"\n'
                     % (PAYLOAD, log))
        self.c.install_unit("lockunit@.service", text)
        self.c.systemctl("start", "lockunit@tmpl")
        run = self.started_payload(host_log)
        scope = "lockunit-lockunit\\x40tmpl.service.scope"
        self.assertEqual(self.c.cgroup_of(run.pid), "/system.slice/" + scope)
        unit = self.c.show("lockunit@tmpl.service", "ActiveState", "StatusText", "WatchdogUSec",
                           "Type", "NotifyAccess")
        self.assertEqual(unit["ActiveState"], "active")
        self.assertEqual(unit["Type"], "notify")
        self.assertEqual(unit["WatchdogUSec"], "4s")
        self.assertTrue(unit["StatusText"].startswith("active: holding 'tmpl'"), unit)
        # The scope's real name, backslash included (systemd 252 would drop a single one).
        self.assertIn("payload PID %d in %s" % (run.pid, scope), unit["StatusText"])
        self.assertEqual(self.c.prop(scope, "BindsTo"), "lockunit@tmpl.service")
        self.c.systemctl("stop", "lockunit@tmpl")
        self.assertEqual(self.c.prop("lockunit@tmpl.service", "Result"), "success")
        self.assertFalse(self.c.alive(run.pid))
        self.assertNotEqual(self.c.prop(scope, "LoadState"), "loaded")


class Notify(ContainerTestCase):
    """Scenarios 8 and 9: notify modes and the watchdog."""

    def hold(self, name):
        """Holds lock `name` from outside any unit, until the returned process is killed."""
        holder = name + "-holder"
        self.c.run(["systemd-run", "--quiet", "--unit=" + holder, "--collect", LOCKUNIT,
                    "--name=" + name, "--scope=no", "--", "/bin/sleep", "600"])
        self.assertTrue(wait_for(lambda: not self.lock_is_free(name), 10))
        return holder

    def release(self, holder):
        self.c.systemctl("stop", holder)

    def test_8a_standby_is_active_at_once_and_says_who_holds_the_lock(self):
        holder = self.hold("n8a")
        try:
            host_log, log = self.log("n8a.log")
            self.c.install_unit("n8a.service", unit_text("--name=n8a --notify=standby",
                                                         self.payload(log, "a")))
            t = time.monotonic()
            self.c.systemctl("start", "n8a", timeout=30)
            self.assertLess(time.monotonic() - t, 10)
            self.assertEqual(self.c.prop("n8a.service", "ActiveState"), "active")
            status = wait_for(lambda: self.c.prop("n8a.service", "StatusText").startswith(
                "standby: waiting for lock 'n8a' (held by") and
                self.c.prop("n8a.service", "StatusText"), 5)
            self.assertTrue(status, self.c.prop("n8a.service", "StatusText"))
            self.assertEqual(self.runs_of(host_log), [])
            self.release(holder)
            self.started_payload(host_log, timeout=15)
            self.assertTrue(wait_for(lambda: self.c.prop("n8a.service", "StatusText")
                                     .startswith("active: holding 'n8a'"), 5))
            self.c.systemctl("stop", "n8a")
        finally:
            self.c.systemctl("stop", holder, check=False)

    def test_8b_running_mode_stays_activating_until_it_holds_the_lock(self):
        holder = self.hold("n8b")
        try:
            host_log, log = self.log("n8b.log")
            self.c.install_unit("n8b.service", unit_text("--name=n8b --notify=running",
                                                         self.payload(log, "a")))
            self.c.systemctl("start", "--no-block", "n8b")
            time.sleep(2.5)
            self.assertEqual(self.c.prop("n8b.service", "ActiveState"), "activating")
            self.assertEqual(self.runs_of(host_log), [])
            self.release(holder)
            self.assertTrue(wait_for(lambda: self.c.prop("n8b.service", "ActiveState") ==
                                     "active", 15))
            self.started_payload(host_log)
            self.c.systemctl("stop", "n8b")
        finally:
            self.c.systemctl("stop", holder, check=False)

    def test_8c_relay_mode_is_ready_only_after_the_payload_says_so(self):
        host_log, log = self.log("n8c.log")
        self.c.install_unit("n8c.service", unit_text(
            "--name=n8c --notify=relay",
            self.payload(log, "a", "--notify-ready", "--ready-delay", 2500)))
        self.c.systemctl("start", "--no-block", "n8c")
        self.started_payload(host_log)
        self.assertEqual(self.c.prop("n8c.service", "ActiveState"), "activating")
        self.assertTrue(wait_for(lambda: self.c.prop("n8c.service", "ActiveState") == "active",
                                 10))
        self.assertEqual(self.c.prop("n8c.service", "StatusText"), "test payload ready")
        self.assertIn("payload reported READY=1", self.c.journal("n8c.service"))
        self.c.systemctl("stop", "n8c")

    def test_9_watchdog_kills_a_paused_lockunit_and_its_payload(self):
        host_log, log = self.log("n9.log")
        self.c.install_unit("n9.service", unit_text("--name=n9 --stop-timeout=2s",
                                                    self.payload(log, "a"), "WatchdogSec=2s"))
        self.c.systemctl("start", "n9")
        run = self.started_payload(host_log)
        time.sleep(3)  # longer than WatchdogSec: lockunit is feeding it
        self.assertEqual(self.c.prop("n9.service", "ActiveState"), "active")
        main_pid = int(self.c.prop("n9.service", "MainPID"))
        self.c.run(["kill", "-STOP", str(main_pid)])
        stopped_at = time.monotonic()
        gone = wait_for(lambda: not self.c.alive(run.pid), 2 + 2 + 4)
        self.assertTrue(gone, "payload still running after WatchdogSec + stop timeout")
        self.assertLess(time.monotonic() - stopped_at, 2 + 2 + 4)
        self.assertTrue(wait_for(lambda: self.c.prop("n9.service", "Result") == "watchdog", 10),
                        self.c.show("n9.service", "Result", "ActiveState"))
        self.assertTrue(wait_for(lambda: not self.scope_loaded("n9.service"), 10))
        self.c.systemctl("reset-failed", "n9", check=False)


class TwoNodes(ContainerTestCase):
    """Scenario 10: two containers, one lock directory (bind-mounted from the host)."""

    nodes = 2
    shared_lock_dir = True

    def test_10_only_one_node_runs_and_the_other_takes_over(self):
        host_log, log = self.log("two.log")
        for i, c in enumerate(self.containers):
            c.install_unit("two.service", unit_text(
                "--name=two --backend=file:///run/shared",
                self.payload(log, "node%d" % i, "--heartbeat", 50)))
        self.containers[0].systemctl("start", "two")
        first = self.started_payload(host_log, "node0")
        self.containers[1].systemctl("start", "two")
        time.sleep(2)
        self.assertEqual(self.runs_of(host_log, "node1"), [])
        self.assertTrue(self.containers[1].prop("two.service", "StatusText")
                        .startswith("standby: waiting for lock 'two'"))
        self.containers[0].systemctl("stop", "two")
        self.assertFalse(self.containers[0].alive(first.pid))
        second = self.started_payload(host_log, "node1", timeout=15)
        self.assertEqual(self.containers[1].cgroup_of(second.pid),
                         "/system.slice/lockunit-two.service.scope")
        self.containers[1].systemctl("stop", "two")
        runs = read_runs(host_log)
        self.assertEqual([r.node for r in runs], ["node0", "node1"])
        self.assertEqual(overlaps(runs), [])
        self.assertLess(int(runs[0].token), int(runs[1].token))


if __name__ == "__main__":
    require_nspawn()
    main()
