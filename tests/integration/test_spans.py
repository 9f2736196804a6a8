#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Time spans mean what they mean to systemd: every span is read by `lockunit check` and by
systemd's own parser (`systemd-analyze timespan`), and the two must agree, down to lockunit's
millisecond (a sub-millisecond rest is rounded up). What lockunit prints back is read by
systemd again, so `check` output can be pasted into a unit file."""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import EX_USAGE, main, require, run

SPANS = [
    "1.5s", "1m 30s", "1min30s", "500us", "2d", "5", "1.5", ".5s", "1 2", "1s2", "5 s", "+5s",
    " 5s ", "1w", "3 weeks", "2 hours 1 minute", "1hr", "1day", "10usec", "10msec", "1 second",
    "2seconds", "1µs", "1μs", "0.0000001s", "1.25min", "1M", "1y", "1.0005s", "0", "00", "250ms",
    "1h 2min 3s 4ms 5us", "infinity", " infinity ",
    # refused by both
    "", " ", "s", "15x", "-1s", "3.", "1.2.3", "inf", "1e3s", "infinity 5", "+.5s", "1S", "5..s",
    "1 s s", "99999999999999999999s", "600000y", "1,5s",
]


def systemd_usec(span):
    """The span in µs as systemd reads it, or None if it refuses it."""
    p = subprocess.run(["systemd-analyze", "timespan", span], capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        return None
    return int(re.search(r"μs: (\d+)", p.stdout).group(1))


def lockunit_wait(span):
    """--wait=SPAN as `lockunit check` prints it back, or None if lockunit refuses it."""
    rc, out, err = run(["check", "--wait=" + span, "--", "true"])
    if rc == EX_USAGE:
        return None
    assert rc == 0, err
    return re.search(r'^wait = "(.*)"  # --wait$', out, re.M).group(1)


class Spans(unittest.TestCase):
    def test_every_span_means_what_it_means_to_systemd(self):
        for span in SPANS:
            with self.subTest(span=span):
                expected = systemd_usec(span)
                printed = lockunit_wait(span)
                if expected is None:
                    self.assertIsNone(printed, "systemd refuses %r, lockunit read %r" % (span, printed))
                    continue
                self.assertIsNotNone(printed, "systemd reads %r, lockunit refused it" % span)
                if printed == "infinity":
                    self.assertEqual(expected, 2**64 - 1)
                    continue
                # lockunit counts milliseconds, rounding a sub-millisecond rest up.
                self.assertEqual(systemd_usec(printed), -(-expected // 1000) * 1000,
                                 "%r printed back as %r" % (span, printed))

    def test_a_bad_span_says_what_is_wrong(self):
        rc, _, err = run(["check", "--ttl=1.2.3", "--", "true"])
        self.assertEqual(rc, EX_USAGE)
        self.assertIn("--ttl: expected a duration", err)
        self.assertIn("found '1.2.3' (unknown unit at '.3'", err)


if __name__ == "__main__":
    require("systemd-analyze")
    main()
