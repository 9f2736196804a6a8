#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`lockunit status` on the file backend: who holds the lock, in text and JSON, and the exit
codes 0 (held), 3 (free), 64 (no lock named) and 69 (backend cannot be asked)."""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import (EX_CONFIG, EX_UNAVAILABLE, EX_USAGE, LockunitTestCase, main, payload,
                           read_runs, run, wait_for)

EXIT_FREE = 3


class Status(LockunitTestCase):
    def base(self, name="st", *extra, locks=None):
        return ["--backend=file://" + (locks or self.path("locks")), "--name=" + name,
                "--scope=no"] + list(extra)

    def hold(self, name="st", *extra, node="holder"):
        log = self.path(node + ".log")
        inst = self.start(self.base(name, *extra) + ["--"] + payload(log, node), label=node)
        self.assertTrue(wait_for(lambda: read_runs(log), 10), inst.stderr())
        return inst, read_runs(log)[0]

    def status_json(self, *args):
        code, out, err = run(["status", "--json"] + list(args))
        try:
            doc = json.loads(out)
        except ValueError:
            self.fail("status --json printed no JSON object (exit %d): %r %r" % (code, out, err))
        return code, doc, err

    def test_json_names_the_holder_its_token_and_what_cannot_be_known(self):
        holder, first = self.hold()
        code, doc, err = self.status_json(*self.base())
        self.assertEqual(code, 0, err)
        self.assertEqual(doc["lock"], "st")
        self.assertEqual(doc["backend"], "file")
        self.assertIs(doc["held"], True)
        self.assertEqual(doc["capacity"], 1)
        self.assertEqual(len(doc["holders"]), 1)
        h = doc["holders"][0]
        self.assertEqual(h["pid"], holder.pid)
        self.assertEqual(h["host"], os.uname().nodename)
        self.assertEqual(h["token"], first.token)
        self.assertRegex(h["since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertTrue(h["id"].startswith("%s:%d:" % (h["host"], holder.pid)), h["id"])
        # A flock lasts as long as its holder, and its waiters cannot be counted.
        self.assertIs(doc["lease_expires"], False)
        self.assertIsNone(doc["lease_left_ms"])
        self.assertIsNone(doc["waiters"])

    def test_text_names_the_holder_and_says_what_is_unknown(self):
        holder, first = self.hold()
        code, out, err = run(["status"] + self.base())
        self.assertEqual(code, 0, err)
        self.assertIn("lock 'st' on file://%s: held" % self.path("locks"), out)
        self.assertIn("pid %d" % holder.pid, out)
        self.assertIn("token " + first.token, out)
        self.assertIn("does not expire while the holder lives", out)
        self.assertIn("waiters: unknown", out)

    def test_free_lock_exits_3_with_an_empty_holder_list(self):
        code, doc, err = self.status_json(*self.base())
        self.assertEqual(code, EXIT_FREE, err)
        self.assertIs(doc["held"], False)
        self.assertEqual(doc["holders"], [])
        self.assertIsNone(doc["lease_expires"])

    def test_a_killed_holder_is_not_reported(self):
        # Its record stays in the lock file, but nothing holds the flock any more.
        holder, _ = self.hold()
        holder.signal(signal.SIGKILL)
        holder.wait(10)
        code, out, err = run(["status"] + self.base())
        self.assertEqual(code, EXIT_FREE, out + err)
        self.assertIn(": free", out)

    def test_semaphore_shows_every_holder_and_the_capacity(self):
        a, _ = self.hold("sem", "--holders=3", node="a")
        b, _ = self.hold("sem", "--holders=3", node="b")
        code, doc, err = self.status_json(*self.base("sem", "--holders=3"))
        self.assertEqual(code, 0, err)
        self.assertEqual(doc["capacity"], 3)
        self.assertEqual(sorted(h["pid"] for h in doc["holders"]), sorted([a.pid, b.pid]))
        code, out, err = run(["status"] + self.base("sem", "--holders=3"))
        self.assertIn("held (2 of 3 slots taken)", out)

    def test_name_comes_from_the_config_file(self):
        self.hold("reports")
        conf = self.path("reports.toml")
        with open(conf, "w") as f:
            f.write('backend = "file://%s"\n' % self.path("locks"))
        code, doc, err = self.status_json("--conf=" + conf)
        self.assertEqual(code, 0, err)
        self.assertEqual(doc["lock"], "reports")

    def test_no_lock_named_is_a_usage_error(self):
        code, out, err = run(["status", "--backend=file://" + self.path("locks")])
        self.assertEqual(code, EX_USAGE, out + err)
        self.assertIn("--name", err)

    def test_lock_directory_that_cannot_be_created_exits_69(self):
        blocker = self.path("not-a-dir")
        open(blocker, "w").close()
        code, out, err = run(["status"] + self.base(locks=os.path.join(blocker, "locks")))
        self.assertEqual(code, EX_UNAVAILABLE, out + err)
        self.assertIn("cannot create lock directory", err)
        self.assertEqual(out, "")

    def test_unreadable_lock_file_exits_69_with_a_json_error(self):
        # The backend is created, but asking it fails: its lock file is a directory.
        os.makedirs(os.path.join(self.path("locks"), "st.lock"))
        code, doc, err = self.status_json(*self.base())
        self.assertEqual(code, EX_UNAVAILABLE, err)
        self.assertEqual(doc["lock"], "st")
        self.assertIn("st.lock", doc["error"])
        self.assertNotIn("held", doc)
        self.assertIn("cannot ask backend 'file'", err)

    def test_relative_lock_directory_is_a_config_error(self):
        conf = self.path("rel.toml")
        with open(conf, "w") as f:
            f.write('backend = "file://relative/dir"\n')
        code, out, err = run(["status", "--conf=" + conf])
        self.assertEqual(code, EX_CONFIG, out + err)
        self.assertIn("absolute directory", err)


if __name__ == "__main__":
    main()
