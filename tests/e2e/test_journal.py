#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""lockunit's journal fields, proven with a real systemd and journald: boots systemd 252 in a
systemd-nspawn container (tests/e2e/systemd_container.py), runs lockunit there as transient
services (`systemd-run`), and reads `journalctl LOCKUNIT_LOCK=… -o json` inside. Needs root
and systemd-container: skipped (77) otherwise, a failure under CI=true."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import main  # noqa: E402
from systemd_container import LOCKUNIT, Container, require_nspawn  # noqa: E402

LOCKDIR = "/run/lock/lu-journal"


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
        cls.container = Container("journal")
        try:
            cls.container.boot()
        except Exception:
            cls.container.poweroff()
            cls.container = None
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.container:
            cls.container.poweroff()
            cls.container.cleanup_logs()

    def start_unit(self, unit, *args):
        p = self.container.run(["systemd-run", "--unit=" + unit, "--property=Type=notify",
                                "--property=TimeoutStopSec=20s", LOCKUNIT,
                                "--backend=file://" + LOCKDIR, "--name=jlock", "--scope=no",
                                "--ttl=3s", "--stop-timeout=1s"] + list(args) +
                               ["--", "sleep", "infinity"], check=False)
        if p.returncode != 0:
            log = self.container.run(["journalctl", "--no-pager", "-u", unit], check=False)
            self.fail("systemd-run %s failed: %s\n%s" % (unit, p.stderr, log.stdout[-3000:]))

    def events(self, unit=None):
        matches = ["LOCKUNIT_LOCK=jlock"] + (["_SYSTEMD_UNIT=%s.service" % unit] if unit else [])
        return [(e.get("_SYSTEMD_UNIT", "").replace(".service", ""), e["LOCKUNIT_EVENT"],
                 e.get("LOCKUNIT_TOKEN", ""), e) for e in self.container.journal_json(*matches)]

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
        lost = c.journal_json("LOCKUNIT_EVENT=lost")
        self.assertEqual([e["_SYSTEMD_UNIT"] for e in lost], ["lu-j-waiter.service"])

        # The other lines reach journald over the stream with their <N> prefix parsed into
        # PRIORITY: "stopping the payload" is info (6), never a raw "<6>" in the message.
        plain = [e for e in c.journal_json("_SYSTEMD_UNIT=lu-j-waiter.service")
                 if e.get("MESSAGE", "").startswith("stopping the payload")]
        self.assertEqual(len(plain), 1, [e.get("MESSAGE") for e in plain])
        self.assertEqual(plain[0]["PRIORITY"], "6")
        self.assertEqual(plain[0]["_TRANSPORT"], "stdout")
        self.assertNotIn("LOCKUNIT_EVENT", plain[0])
        for e in c.journal_json("_SYSTEMD_UNIT=lu-j-waiter.service"):
            self.assertNotIn("<", e.get("MESSAGE", "")[:1], e.get("MESSAGE"))
            self.assertFalse(e.get("MESSAGE", "").startswith("lockunit: "), e.get("MESSAGE"))


if __name__ == "__main__":
    require_nspawn()
    main()
