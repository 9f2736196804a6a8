#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The man pages pass `mandoc -T lint -W warning` and render with man(1) without complaint."""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import main, require  # noqa: E402

ROOT = os.environ.get("LOCKUNIT_SOURCE_ROOT",
                      os.path.join(os.path.dirname(__file__), "..", ".."))
PAGES = [os.path.join(ROOT, "man", p) for p in ("lockunit.1", "lockunit.toml.5")]


class ManLint(unittest.TestCase):
    def test_mandoc_finds_no_warning(self):
        for page in PAGES:
            p = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", page],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, "%s:\n%s%s" % (page, p.stdout, p.stderr))
            self.assertEqual(p.stdout + p.stderr, "")

    def test_mandoc_renders_every_section(self):
        for page in PAGES:
            p = subprocess.run(["mandoc", "-T", "utf8", page], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            text = re.sub(".\b", "", p.stdout)  # bold and underline are overstrikes
            for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
                self.assertIn("\n" + section + "\n", text, page)

    @unittest.skipUnless(shutil.which("groff"), "groff not installed")
    def test_groff_renders_without_warnings(self):
        for page in PAGES:
            p = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "", page)


if __name__ == "__main__":
    require("mandoc")
    main()
