#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""lockunit under a user's service manager (`--user`), end to end, on a real systemd 252 booted
in a container: root's `systemd --user` (user@0.service) runs lockunit as a transient user
service, and lockunit makes the payload's scope on the user bus, bound (BindsTo=) to its own
user unit found with sd_pid_get_user_unit(). Every assertion is on real state: the user
manager's `systemctl --user show`/`status`, /proc/PID/cgroup, the lock file's holder."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import main, wait_for  # noqa: E402
from systemd_container import LOCKUNIT, Container, require_nspawn  # noqa: E402

RUNTIME_DIR = "/run/user/0"
USER_ENV = ["env", "XDG_RUNTIME_DIR=" + RUNTIME_DIR,
            "DBUS_SESSION_BUS_ADDRESS=unix:path=%s/bus" % RUNTIME_DIR]
BACKEND = "--backend=file://%s/lu" % RUNTIME_DIR
# The user manager's cgroup, and where transient user services and their scopes go.
USER_CGROUP = "/user.slice/user-0.slice/user@0.service"
APP_SLICE = USER_CGROUP + "/app.slice"

# The container's /etc starts empty, so the PAM stack of user@.service (PAMName=systemd-user)
# is missing and the user manager fails with 224/PAM. A minimal one: pam_systemd gives the
# manager its XDG_RUNTIME_DIR (without it `systemd --user` exits at once).
PAM_SYSTEMD_USER = ("account required pam_permit.so\n"
                    "session required pam_permit.so\n"
                    "session optional pam_systemd.so\n")

# ExecStopPost= of the user services: what systemd says about how the main process ended.
RECORD_RESULT = '#!/bin/sh\necho "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" > "%s/$1.result"\n' \
    % RUNTIME_DIR

STATUS_RE = re.compile(r"^active: holding '(?P<name>[^']+)' \(token (?P<token>\d+)\) since \S+, "
                       r"payload PID (?P<pid>\d+) in (?P<scope>\S+)$")


class UserMode(unittest.TestCase):
    """One container, one user manager (user@0.service); one user unit per test."""

    @classmethod
    def setUpClass(cls):
        cls.c = Container("user").boot()
        try:
            cls.c.write("/etc/pam.d/systemd-user", PAM_SYSTEMD_USER)
            cls.c.write("/etc/lockunit-record-result", RECORD_RESULT)
            cls.c.run(["chmod", "755", "/etc/lockunit-record-result"])
            r = cls.c.systemctl("start", "user@0.service", check=False)
            if r.returncode != 0:
                st = cls.c.systemctl("status", "user@0.service", "--no-pager", "-n", "30",
                                     check=False)
                raise RuntimeError("no user manager in the container: systemctl start "
                                   "user@0.service exited %d: %s\n%s" % (
                                       r.returncode, r.stderr, st.stdout))
            bus = cls.c.path(RUNTIME_DIR + "/bus")
            if not wait_for(lambda: os.path.exists(bus), 10):
                raise RuntimeError("user@0.service is up but %s/bus never appeared"
                                   % RUNTIME_DIR)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.poweroff()
        cls.c.cleanup_logs()

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is not None and any(t is self for t, _ in result.failures + result.errors):
            print("\n--- journal of %s:\n%s" % (self.c.name, self.c.journal(lines=150)),
                  file=sys.stderr)

    # -- the user manager ------------------------------------------------------------------
    def user(self, args, check=True, timeout=60):
        return self.c.run(USER_ENV + list(args), check=check, timeout=timeout)

    def usystemctl(self, *args, check=True):
        return self.user(["systemctl", "--user"] + list(args), check=check)

    def ushow(self, unit, *props):
        r = self.usystemctl("show", unit, *["-p" + p for p in props])
        return dict(line.partition("=")[::2] for line in r.stdout.splitlines())

    def scope_loaded(self, scope):
        return self.ushow(scope, "LoadState")["LoadState"] == "loaded"

    def start_service(self, unit, name, *args):
        """lockunit as a transient Type=notify user service; returns (main PID, payload PID,
        scope name) once the payload runs."""
        self.user(["systemd-run", "--user", "--quiet", "--unit=" + unit, "-p", "Type=notify",
                   "-p", "NotifyAccess=main", "-p", "TimeoutStopSec=30s",
                   "-p", "ExecStopPost=/etc/lockunit-record-result " + unit,
                   LOCKUNIT, "-v", "--user", "--name=" + name, BACKEND] + list(args) +
                  ["--", "sleep", "infinity"])
        status = wait_for(lambda: STATUS_RE.match(self.ushow(unit, "StatusText")["StatusText"]),
                          15)
        self.assertTrue(status, "no 'active' STATUS from %s: %r" % (
            unit, self.ushow(unit, "StatusText", "ActiveState")))
        main_pid = int(self.ushow(unit, "MainPID")["MainPID"])
        scope = self.expected_scope(unit)
        # The real name, backslash included: systemd 252 drops single backslashes of a STATUS=
        # it receives, so lockunit doubles them.
        self.assertEqual(status.group("scope"), scope)
        logged = "acquired lock '%s' (token %s), payload PID %s in %s" % (
            name, status.group("token"), status.group("pid"), scope)
        self.assertTrue(wait_for(lambda: logged in self.journal_text("--user-unit=" + unit), 5),
                        "no %r in the journal of %s" % (logged, unit))
        return main_pid, int(status.group("pid")), scope

    def expected_scope(self, unit):
        escaped = self.c.run(["systemd-escape", unit]).stdout.strip()
        return "lockunit-%s.scope" % escaped

    def journal_text(self, *matches):
        return self.c.run(["journalctl", "--no-pager", "-o", "cat"] + list(matches)).stdout

    def lock_held(self, name):
        r = self.c.run([LOCKUNIT, "status", "--name=" + name, BACKEND, "--json"], check=False)
        out = r.stdout.replace(" ", "")
        self.assertTrue('"held":true' in out or '"held":false' in out,
                        "lockunit status: %s%s" % (r.stdout, r.stderr))
        return '"held":true' in out

    def result_of(self, unit):
        path = self.c.path("%s/%s.result" % (RUNTIME_DIR, unit))
        if not wait_for(lambda: os.path.exists(path), 10):
            return None
        with open(path) as f:
            return f.read().split()

    # -- scenarios ---------------------------------------------------------------------------
    def test_1_payload_in_user_scope_bound_to_user_service_then_stop(self):
        unit = "lu-user.service"
        main_pid, payload, scope = self.start_service(unit, "u1", "--scope=yes")
        self.assertEqual(scope, "lockunit-lu\\x2duser.service.scope")
        # The payload is the command (not a lockunit child still waiting to exec).
        self.assertEqual(self.c.run(["cat", "/proc/%d/cmdline" % payload]).stdout,
                         "sleep\0infinity\0")
        self.assertEqual(self.c.cgroup_of(main_pid), APP_SLICE + "/" + unit)
        self.assertEqual(self.c.cgroup_of(payload), APP_SLICE + "/" + scope)
        props = self.ushow(scope, "ActiveState", "BindsTo", "After", "ControlGroup",
                           "CollectMode", "Description")
        self.assertEqual(props["ActiveState"], "active")
        self.assertEqual(props["BindsTo"], unit)
        self.assertNotIn(unit, props["After"].split())
        self.assertEqual(props["ControlGroup"], APP_SLICE + "/" + scope)
        self.assertEqual(props["CollectMode"], "inactive-or-failed")
        self.assertIn("lock 'u1'", props["Description"])
        # Made by the user manager, not the system's.
        self.assertEqual(self.c.prop(scope, "LoadState"), "not-found")
        shown = self.usystemctl("status", unit, "--no-pager", check=False).stdout
        self.assertRegex(shown, r"Status: \"active: holding 'u1' \(token \d+\) since \S+, "
                                r"payload PID %d in lockunit-lu\\x2duser.service.scope\""
                         % payload)
        self.assertTrue(self.lock_held("u1"))

        self.usystemctl("stop", unit)
        self.assertFalse(self.c.alive(payload))
        self.assertFalse(self.scope_loaded(scope))
        self.assertEqual(self.result_of(unit), ["success", "exited", "0"])
        # A transient unit that ended well is unloaded; a failed one would stay, "failed".
        self.assertEqual(self.ushow(unit, "ActiveState")["ActiveState"], "inactive")
        self.assertFalse(self.lock_held("u1"))

    def test_2_sigkill_of_lockunit_takes_user_scope_and_payload_down(self):
        unit = "lu-user-kill.service"
        main_pid, payload, scope = self.start_service(unit, "u2", "--scope=yes",
                                                      "--stop-timeout=2s")
        self.assertEqual(self.c.cgroup_of(payload), APP_SLICE + "/" + scope)
        self.assertEqual(self.ushow(scope, "BindsTo")["BindsTo"], unit)
        self.c.run(["kill", "-9", str(main_pid)])
        gone = wait_for(lambda: not self.c.alive(payload) and not self.scope_loaded(scope),
                        2 + 3)
        self.assertTrue(gone, "payload or scope survived a SIGKILLed lockunit (scope %s)"
                        % self.ushow(scope, "LoadState", "ActiveState"))
        self.assertEqual(self.result_of(unit), ["signal", "killed", "KILL"])
        self.assertEqual(self.ushow(unit, "Result")["Result"], "signal")
        self.assertFalse(self.lock_held("u2"))
        self.usystemctl("reset-failed", unit, check=False)

    def test_3_auto_with_user_picks_the_user_scope(self):
        unit = "lu-user-auto.service"
        r = self.user(["systemd-run", "--user", "--quiet", "--wait", "--pipe", "--unit=" + unit,
                       LOCKUNIT, "--user", "--name=u3", BACKEND, "--",
                       "/bin/sh", "-c", "grep ^0:: /proc/self/cgroup; exit 3"], check=False)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        scope = self.expected_scope(unit)
        self.assertEqual(r.stdout.strip(), "0::" + APP_SLICE + "/" + scope)
        self.assertIn("running the payload in transient scope '%s', bound to '%s'"
                      % (scope, unit), r.stderr)
        self.usystemctl("reset-failed", unit, check=False)

    def test_4_without_user_under_the_user_manager_no_system_scope(self):
        # sd_pid_get_unit() names the manager's own user@0.service here; a scope on the system
        # bus bound to it would be shared by every lockunit of this user and outlive them.
        why = ("lockunit runs in '%s' of a user's service manager ('user@0.service'), which "
               "only --user (user = true) talks to")
        unit = "lu-nouser-auto.service"
        r = self.user(["systemd-run", "--user", "--quiet", "--wait", "--pipe", "--unit=" + unit,
                       LOCKUNIT, "--name=u4", BACKEND, "--",
                       "/bin/sh", "-c", "grep ^0:: /proc/self/cgroup; exit 3"], check=False)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "0::" + APP_SLICE + "/" + unit)
        self.assertIn("running the payload in its own process group (%s)" % (why % unit),
                      r.stderr)
        unit = "lu-nouser-yes.service"
        r = self.user(["systemd-run", "--user", "--quiet", "--wait", "--pipe", "--unit=" + unit,
                       LOCKUNIT, "--scope=yes", "--name=u4", BACKEND, "--", "/bin/true"],
                      check=False)
        self.assertEqual(r.returncode, 69, r.stdout + r.stderr)
        self.assertIn(why % unit, r.stderr)
        self.assertEqual(self.c.systemctl("list-units", "--all", "--no-legend", "lockunit-*")
                         .stdout.strip(), "")
        self.usystemctl("reset-failed", check=False)


if __name__ == "__main__":
    require_nspawn()
    started = time.monotonic()
    try:
        main()
    finally:
        print("user-mode e2e: %.1f s" % (time.monotonic() - started), file=sys.stderr)
