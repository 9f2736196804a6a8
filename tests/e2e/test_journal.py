#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""lockunit's journal fields, proven with a real systemd and journald: boots systemd 252 in a
systemd-nspawn container (tests/e2e/systemd_container.py), runs lockunit there as transient
services (`systemd-run`), and reads `journalctl LOCKUNIT_LOCK=… -o json` inside, and what
`journalctl -x` explains with lockunit's catalog. Needs root and systemd-container: skipped (77)
otherwise, a failure under CI=true."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import main  # noqa: E402
from systemd_container import LOCKUNIT, Container, require_nspawn  # noqa: E402

LOCKDIR = "/run/lock/lu-journal"
CATALOG = os.environ.get("LOCKUNIT_CATALOG",
                         os.path.join(os.path.dirname(__file__), "..", "..", "units",
                                      "lockunit.catalog"))

# Published MESSAGE_IDs never change: a log filter written against one keeps working.
MESSAGE_IDS = {
    "standby": "5355c6cd903d44fb9804ae4073650a4f",
    "acquired": "7e590123ec844726a91f47d3cc63e546",
    "renew-failed": "e76283684e0d4a42ade440b6ad15ecf7",
    "lost": "8223e2f204394b2eafd4e6f6dff91855",
    "released": "8f4927b5bb6f49cbb8166500ef42b813",
    "busy": "9289cb42172a48efa127dfa72e9393a2",
    "gave-up": "7aba16ec2aa34f5d8c10b9e831118f70",
}


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
            # The catalog where a package installs it. journalctl reads catalogs only from
            # /usr/lib and /usr/local/lib, which is the host's, read-only, here: the container
            # gets a copy of that directory with ours added, mounted over it.
            with open(CATALOG) as f:
                cls.container.write("/run/catalog/lockunit.catalog", f.read())
            cls.container.run(["sh", "-ec", "cp /usr/lib/systemd/catalog/* /run/catalog/; "
                               "mount --bind /run/catalog /usr/lib/systemd/catalog; "
                               "journalctl --update-catalog"])
        except Exception:
            cls.container.poweroff()
            cls.container = None
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.container:
            cls.container.poweroff()
            cls.container.cleanup_logs()

    def start_unit(self, unit, *args, lock="jlock", unit_type="notify"):
        p = self.container.run(["systemd-run", "--unit=" + unit, "--property=Type=" + unit_type,
                                "--property=TimeoutStopSec=20s", LOCKUNIT,
                                "--backend=file://" + LOCKDIR, "--name=" + lock, "--scope=no",
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
        """The unit's entries of that event (of every event for None)."""
        return [e for u, ev, _, e in self.events(unit) if event in (None, ev)]

    def test_one_locks_history_across_units_with_structured_fields(self):
        c = self.container
        self.start_unit("lu-j-holder")
        wait_until(lambda: self.has_event("lu-j-holder", "acquired"), 30, "holder's acquired")
        self.start_unit("lu-j-waiter")
        # STATUS= is set before the event is logged: who sees the event sees the status.
        status = c.run(["systemctl", "show", "-p", "StatusText", "lu-j-holder"]).stdout
        self.assertIn("StatusText=active: holding 'jlock' (token 1)", status)
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
            self.assertEqual(entry["MESSAGE_ID"], MESSAGE_IDS[event], entry)
            self.assertEqual(entry["LOCKUNIT_UNIT"], unit + ".service", entry)
            self.assertRegex(entry["LOCKUNIT_HOLDER"], r"^[^:]+:\d+:[0-9a-f]{16}$", entry)
            if event == "standby":
                self.assertNotIn("LOCKUNIT_PAYLOAD_PID", entry)
            else:
                self.assertRegex(entry["LOCKUNIT_PAYLOAD_PID"], r"^[1-9]\d*$", entry)
        acquired = self.has_event("lu-j-waiter", "acquired")[0]
        self.assertIn("payload PID %s " % acquired["LOCKUNIT_PAYLOAD_PID"], acquired["MESSAGE"])
        # One holder's entries carry one holder id, which its environment names too.
        self.assertEqual(len({e["LOCKUNIT_HOLDER"] for e in self.has_event("lu-j-waiter", None)}),
                         1)
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

        # A MESSAGE_ID selects one kind of event, and `journalctl -x` explains it with the
        # entry's own fields filled in.
        by_id = c.journal_json("MESSAGE_ID=" + MESSAGE_IDS["lost"])
        self.assertEqual([e["LOCKUNIT_EVENT"] for e in by_id], ["lost"])
        explained = c.run(["journalctl", "--no-pager", "-x", "MESSAGE_ID=" + MESSAGE_IDS["lost"]])
        text = " ".join(line.lstrip("░ ").strip() for line in explained.stdout.splitlines())
        self.assertIn("Subject: Lock jlock lost: payload stopped", text)
        self.assertIn("Holder %s (unit lu-j-waiter.service) lost lock jlock on the file backend"
                      % by_id[0]["LOCKUNIT_HOLDER"], text)
        self.assertIn("payload (PID %s, if it had started)" % by_id[0]["LOCKUNIT_PAYLOAD_PID"],
                      text)
        self.assertIn("exits with status 79", text)

    def test_busy_and_gave_up_are_events_explained_by_the_catalog(self):
        c = self.container
        self.start_unit("lu-j-busy-holder", lock="jbusy")
        wait_until(lambda: self.lock_event("jbusy", "lu-j-busy-holder", "acquired"), 30,
                   "busy holder's acquired")
        self.start_unit("lu-j-busy", "--wait=0", lock="jbusy", unit_type="exec")
        self.start_unit("lu-j-gave-up", "--wait=1s", lock="jbusy", unit_type="exec")
        busy = wait_until(lambda: self.lock_event("jbusy", "lu-j-busy", "busy"), 30, "busy")
        gave_up = wait_until(lambda: self.lock_event("jbusy", "lu-j-gave-up", "gave-up"), 30,
                             "gave-up")
        for entry, event in ((busy[0], "busy"), (gave_up[0], "gave-up")):
            self.assertEqual(entry["MESSAGE_ID"], MESSAGE_IDS[event], entry)
            self.assertEqual(entry["PRIORITY"], "5", entry)
            self.assertNotIn("LOCKUNIT_PAYLOAD_PID", entry)
        self.assertEqual(busy[0]["MESSAGE"], "lock 'jbusy' is busy")
        self.assertEqual(gave_up[0]["MESSAGE"], "lock 'jbusy' is busy, gave up after 1s")
        for unit in ("lu-j-busy", "lu-j-gave-up"):
            wait_until(lambda: "ExecMainStatus=75" in c.run(
                ["systemctl", "show", "-p", "ExecMainStatus", unit]).stdout, 30, unit + " exit")
        explained = c.run(["journalctl", "--no-pager", "-x", "MESSAGE_ID=" + MESSAGE_IDS["busy"],
                           "LOCKUNIT_LOCK=jbusy"]).stdout
        self.assertIn("Subject: Lock jbusy is busy: not started", explained)
        self.assertIn("this unit (lu-j-busy.service) was told not to wait", explained)
        c.run(["systemctl", "stop", "lu-j-busy-holder"])

    def lock_event(self, lock, unit, event):
        return [e for e in self.container.journal_json("LOCKUNIT_LOCK=" + lock,
                                                        "_SYSTEMD_UNIT=%s.service" % unit)
                if e["LOCKUNIT_EVENT"] == event]


if __name__ == "__main__":
    require_nspawn()
    main()
