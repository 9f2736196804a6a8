#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""lockunit's journal fields, proven with a real systemd and journald: boots systemd 252 in a
systemd-nspawn container (DESIGN.md's command), runs lockunit there as transient services
(`systemd-run`), and reads `journalctl LOCKUNIT_LOCK=… -o json` inside.

Self-contained on purpose (the container code here is small); the e2e harness of
tests/e2e/test_systemd.py may absorb it later. Needs root and systemd-container: skipped (77)
otherwise, a failure under CI=true."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import IN_CI, LOCKUNIT, main, require  # noqa: E402

BUILD_ROOT = os.environ.get("LOCKUNIT_BUILD_ROOT",
                            os.path.dirname(os.path.dirname(os.path.abspath(LOCKUNIT))))
INSIDE = "/opt/lockunit"
LOCKUNIT_INSIDE = os.path.join(INSIDE, os.path.relpath(os.path.abspath(LOCKUNIT), BUILD_ROOT))
LOCKDIR = "/run/lock/lu-journal"

# Services the host has installed that would start in a container with an empty /etc and share
# the host's loopback ports with other tests.
MASKED = ["redis-server", "redis-sentinel", "etcd", "postgresql", "mysql", "mariadb", "ssh",
          "cron", "console-getty", "systemd-networkd", "systemd-resolved"]


class Container:
    """One booted systemd in systemd-nspawn, with the build directory at /opt/lockunit."""

    def __init__(self, name):
        self.name = name
        self.log_path = tempfile.mktemp(prefix="lockunit-journal-nspawn-", suffix=".log")
        cmd = ["systemd-nspawn", "--quiet", "--directory=/", "--volatile=yes", "--register=no",
               "--keep-unit", "--machine=" + name, "--console=passive",
               "--bind-ro=%s:%s" % (BUILD_ROOT, INSIDE), "--boot", "--",
               "systemd.firstboot=off"] + ["systemd.mask=%s.service" % s for s in MASKED]
        self.log = open(self.log_path, "wb")
        self.nspawn = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                       stderr=subprocess.STDOUT)
        self.init_pid = None

    def wait_booted(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError("systemd-nspawn exited with %d: %s" % (
                    self.nspawn.returncode, self.boot_log()))
            if self.init_pid is None:
                children = subprocess.run(["pgrep", "-P", str(self.nspawn.pid)],
                                          capture_output=True, text=True).stdout.split()
                if children:
                    self.init_pid = int(children[0])
            if self.init_pid is not None:
                state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return state
            time.sleep(0.3)
        raise RuntimeError("container %s did not boot in %ds: %s" % (self.name, timeout,
                                                                     self.boot_log()))

    def run(self, argv, check=True, timeout=60):
        p = subprocess.run(["nsenter", "-t", str(self.init_pid), "-a"] + argv,
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("%s exited with %d: %s%s" % (" ".join(argv), p.returncode,
                                                               p.stdout, p.stderr))
        return p

    def journal(self, *matches):
        out = self.run(["journalctl", "--no-pager", "-o", "json"] + list(matches), check=False)
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    def boot_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def poweroff(self):
        """Powers the container off by its own init's PID; kills it if that does not work."""
        if self.nspawn.poll() is None and self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGRTMIN + 4)  # systemd: poweroff
            except ProcessLookupError:
                pass
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.init_pid, signal.SIGKILL)  # takes the whole PID namespace
        if self.nspawn.poll() is None:
            try:
                self.nspawn.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait()
        self.log.close()
        os.unlink(self.log_path)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    value = predicate()
    if not value:
        raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))
    return value


class JournalFields(unittest.TestCase):
    container = None

    @classmethod
    def setUpClass(cls):
        cls.container = Container("lu-journal-%d" % os.getpid())
        try:
            cls.container.wait_booted()
        except Exception:
            cls.container.poweroff()
            cls.container = None
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.container:
            cls.container.poweroff()

    def start_unit(self, unit, *args):
        p = self.container.run(["systemd-run", "--unit=" + unit, "--property=Type=notify",
                                "--property=TimeoutStopSec=20s", LOCKUNIT_INSIDE,
                                "--backend=file://" + LOCKDIR, "--name=jlock", "--scope=no",
                                "--ttl=3s", "--stop-timeout=1s"] + list(args) +
                               ["--", "sleep", "infinity"], check=False)
        if p.returncode != 0:
            log = self.container.run(["journalctl", "--no-pager", "-u", unit], check=False)
            self.fail("systemd-run %s failed: %s\n%s" % (unit, p.stderr, log.stdout[-3000:]))

    def events(self, unit=None):
        matches = ["LOCKUNIT_LOCK=jlock"] + (["_SYSTEMD_UNIT=%s.service" % unit] if unit else [])
        return [(e.get("_SYSTEMD_UNIT", "").replace(".service", ""), e["LOCKUNIT_EVENT"],
                 e.get("LOCKUNIT_TOKEN", ""), e) for e in self.container.journal(*matches)]

    def has_event(self, unit, event):
        return [e for u, ev, _, e in self.events(unit) if ev == event]

    def test_one_locks_history_across_units_with_structured_fields(self):
        c = self.container
        self.start_unit("lu-j-holder")
        wait_until(lambda: self.has_event("lu-j-holder", "acquired"), 30, "holder's acquired")
        self.start_unit("lu-j-waiter")
        wait_until(lambda: self.has_event("lu-j-waiter", "standby"), 30, "waiter's standby")
        # Standby mode: the waiting unit is already active, and says why.
        status = c.run(["systemctl", "show", "-p", "ActiveState,StatusText", "lu-j-waiter"]).stdout
        self.assertIn("ActiveState=active", status)
        self.assertIn("StatusText=standby: waiting for lock 'jlock'", status)

        c.run(["systemctl", "stop", "lu-j-holder"])
        wait_until(lambda: self.has_event("lu-j-waiter", "acquired"), 30, "waiter's acquired")
        # Replacing the lock file takes the lock away from its holder: the next renewal (every
        # second at ttl 3s) notices, and lockunit stops the payload and exits 79.
        c.run(["sh", "-c", "rm %s/jlock.lock && touch %s/jlock.lock" % (LOCKDIR, LOCKDIR)])
        wait_until(lambda: self.has_event("lu-j-waiter", "lost"), 30, "waiter's lost")
        wait_until(lambda: "ActiveState=failed" in c.run(
            ["systemctl", "show", "-p", "ActiveState", "lu-j-waiter"]).stdout, 30, "waiter failed")
        status = c.run(["systemctl", "show", "-p", "ExecMainStatus", "lu-j-waiter"]).stdout
        self.assertIn("ExecMainStatus=79", status)

        # One query gives the lock's whole history, across both units. (The holder logs
        # "released" just after unlocking, so it may race the waiter's "acquired".)
        history = [(u, ev, tok) for u, ev, tok, _ in self.events()]
        self.assertEqual([h for h in history if h[0] == "lu-j-holder"],
                         [("lu-j-holder", "acquired", "1"), ("lu-j-holder", "released", "1")])
        self.assertEqual([h for h in history if h[0] == "lu-j-waiter"],
                         [("lu-j-waiter", "standby", ""), ("lu-j-waiter", "acquired", "2"),
                          ("lu-j-waiter", "lost", "2")])
        self.assertEqual(history[:2], [("lu-j-holder", "acquired", "1"),
                                       ("lu-j-waiter", "standby", "")])
        priority = {"acquired": "5", "standby": "6", "released": "6", "lost": "3"}
        for unit, event, _, entry in self.events():
            self.assertEqual(entry["LOCKUNIT_BACKEND"], "file", entry)  # the scheme, no path
            self.assertEqual(entry["SYSLOG_IDENTIFIER"], "lockunit")
            self.assertEqual(entry["PRIORITY"], priority[event], entry)
            self.assertIn("jlock", entry["MESSAGE"])
            self.assertFalse(entry["MESSAGE"].startswith("<"), entry["MESSAGE"])
        self.assertIn("token 2", self.has_event("lu-j-waiter", "acquired")[0]["MESSAGE"])

        # A field match selects one kind of event, across units.
        lost = c.journal("LOCKUNIT_EVENT=lost")
        self.assertEqual([e["_SYSTEMD_UNIT"] for e in lost], ["lu-j-waiter.service"])

        # The other lines reach journald over the stream with their <N> prefix parsed into
        # PRIORITY: "stopping the payload" is info (6), never a raw "<6>" in the message.
        plain = [e for e in c.journal("_SYSTEMD_UNIT=lu-j-waiter.service")
                 if e.get("MESSAGE", "").startswith("stopping the payload")]
        self.assertEqual(len(plain), 1, [e.get("MESSAGE") for e in plain])
        self.assertEqual(plain[0]["PRIORITY"], "6")
        self.assertEqual(plain[0]["_TRANSPORT"], "stdout")
        self.assertNotIn("LOCKUNIT_EVENT", plain[0])
        for e in c.journal("_SYSTEMD_UNIT=lu-j-waiter.service"):
            self.assertNotIn("<", e.get("MESSAGE", "")[:1], e.get("MESSAGE"))
            self.assertFalse(e.get("MESSAGE", "").startswith("lockunit: "), e.get("MESSAGE"))


if __name__ == "__main__":
    if os.geteuid() != 0:
        if IN_CI:
            print("FAIL: the journal test needs root (CI runs as root)", file=sys.stderr)
            sys.exit(1)
        print("SKIP: needs root", file=sys.stderr)
        sys.exit(77)
    require("systemd-nspawn", "nsenter", "pgrep", "journalctl")
    main()
