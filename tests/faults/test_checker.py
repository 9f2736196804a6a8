#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The overlap checker on synthetic records: it must fail on an overlap and on a token that
goes backwards, and pass a clean sequence of handovers — proof that it can fail."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S


class Records:
    """Writes payload records the way test_payload.cpp does."""

    def __init__(self, directory):
        self.dir = directory

    def run(self, node, token, pid, start, end, beat=0.02, ended=True, torn=False):
        path = os.path.join(self.dir, node + ".log")
        with open(path, "a") as f:
            t = start
            f.write("start %s %s %d %d\n" % (node, token, pid, T0 + int(t * S)))
            while t + beat < end:
                t += beat
                f.write("beat %s %s %d %d\n" % (node, token, pid, T0 + int(t * S)))
            f.write("beat %s %s %d %d\n" % (node, token, pid, T0 + int(end * S)))
            if ended:
                f.write("end %s %s %d %d\n" % (node, token, pid, T0 + int(end * S)))
            if torn:
                f.write("beat %s %s %d %d" % (node, token, pid, T0 + int((end + 5) * S))[:12])


class CheckerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lockunit-checker-")
        self.rec = Records(self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def cli(self, *args):
        return subprocess.run([sys.executable, checker.__file__] + list(args) + [self.dir],
                              capture_output=True, text=True)

    def test_clean_handovers_pass(self):
        self.rec.run("n0", 1, 100, 0.0, 1.0)
        self.rec.run("n1", 2, 200, 1.01, 2.0, ended=False)  # killed: no end record
        self.rec.run("n2", 3, 300, 2.5, 3.0, torn=True)
        self.rec.run("n0", 4, 101, 3.001, 4.0)
        report = checker.check([self.dir], faults=3)
        self.assertTrue(report.ok, report.details())
        self.assertEqual(len(report.runs), 4)
        self.assertEqual(report.handovers, 3)
        self.assertIn("checked 4 payload runs, 3 handovers, 3 faults: no overlap, tokens increase",
                      report.summary())
        r = self.cli("--faults", "3")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_an_overlap_of_one_heartbeat_fails(self):
        self.rec.run("n0", 1, 100, 0.0, 1.0, ended=False)
        self.rec.run("n1", 2, 200, 0.99, 2.0)  # starts 10 ms before n0's last beat
        report = checker.check([self.dir])
        self.assertFalse(report.ok)
        self.assertEqual(len(report.overlaps), 1)
        a, b = report.overlaps[0]
        self.assertEqual((a.node, b.node), ("n0", "n1"))
        self.assertIn("1 overlaps", report.summary())
        r = self.cli()
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("OVERLAP", r.stdout)

    def test_a_run_resumed_after_a_freeze_overlaps_its_successor(self):
        # n0 beats until 1.0, is frozen, n1 takes over at 4.0, n0 beats once more at 6.0.
        self.rec.run("n0", 1, 100, 0.0, 1.0, ended=False)
        self.rec.run("n1", 2, 200, 4.0, 8.0)
        with open(os.path.join(self.dir, "n0.log"), "a") as f:
            f.write("beat n0 1 100 %d\n" % (T0 + 6 * S))
        report = checker.check([self.dir])
        self.assertEqual(len(report.overlaps), 1)
        self.assertIn("n0 wrote 1 records from 2.000 s to 2.000 s after n1 started",
                      report.details())

    def test_a_token_that_does_not_increase_fails(self):
        self.rec.run("n0", 5, 100, 0.0, 1.0)
        self.rec.run("n1", 5, 200, 1.1, 2.0)
        self.rec.run("n2", 4, 300, 2.1, 3.0)
        report = checker.check([self.dir])
        self.assertEqual(report.overlaps, [])
        self.assertEqual(len(report.token_regressions), 2)
        self.assertFalse(report.ok)
        self.assertTrue(checker.check([self.dir], tokens=False).ok)
        self.assertEqual(self.cli("--no-tokens").returncode, 0)

    def test_runs_without_tokens_are_not_token_checked(self):
        self.rec.run("n0", "-", 100, 0.0, 1.0)
        self.rec.run("n1", "-", 200, 1.1, 2.0)
        report = checker.check([self.dir])
        self.assertTrue(report.ok)
        self.assertIn("(no tokens to check)", report.summary())

    def test_a_pid_reused_after_a_reboot_is_a_new_run(self):
        self.rec.run("n0", 1, 100, 0.0, 1.0, ended=False)   # the node died here
        self.rec.run("n1", 2, 200, 1.5, 3.0)
        self.rec.run("n0", 3, 100, 3.5, 4.0)                 # same PID, new boot
        report = checker.check([self.dir])
        self.assertEqual(len(report.runs), 3)
        self.assertTrue(report.ok, report.details())

    def test_holders_allows_that_many_at_once(self):
        self.rec.run("n0", 1, 100, 0.0, 2.0)
        self.rec.run("n1", 2, 200, 1.0, 3.0)
        self.assertFalse(checker.check([self.dir]).ok)
        self.assertTrue(checker.check([self.dir], holders=2).ok)
        self.rec.run("n2", 3, 300, 1.5, 2.5)
        self.assertFalse(checker.check([self.dir], holders=2).ok)

    def test_incremental_reading_sees_appended_records(self):
        reader = checker.RecordReader()
        self.rec.run("n0", 1, 100, 0.0, 1.0, ended=False)
        paths = checker.record_files([self.dir])
        self.assertEqual(len(reader.update(paths)), 1)
        with open(paths[0], "a") as f:
            f.write("beat n0 1 100 %d\nbeat n0 1 1" % (T0 + 2 * S))  # second line half-written
        runs = reader.update(paths)
        self.assertEqual(runs[0].last, T0 + 2 * S)
        with open(paths[0], "a") as f:
            f.write("00 %d\n" % (T0 + 3 * S))
        self.assertEqual(reader.update(paths)[0].last, T0 + 3 * S)


if __name__ == "__main__":
    unittest.main(verbosity=2)
