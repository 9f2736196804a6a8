#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The bash completion generated at build time: bash sources it and runs its function for a
few command lines, as bash-completion would (COMP_WORDS, COMP_CWORD); and it offers every
option that `lockunit --help` lists, so it cannot drift from the option table."""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import IN_CI, LOCKUNIT, main, require

SCRIPT = os.environ.get("LOCKUNIT_BASH_COMPLETION", "build/src/completions/lockunit")
ZSH_SCRIPT = os.path.join(os.path.dirname(SCRIPT), "_lockunit")

DRIVER = r'''
source "$1"; shift
complete -p lockunit
COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=()
_lockunit
[ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}"
'''


def complete(*words, cwd=None):
    """What the completion offers for the command line `words` (the last one being completed)."""
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", DRIVER, "complete", SCRIPT]
                       + list(words), capture_output=True, text=True, timeout=30, cwd=cwd)
    assert p.returncode == 0, p.stderr
    registered, *offers = p.stdout.splitlines()
    assert registered == "complete -F _lockunit lockunit", registered
    return sorted(set(offers))


class BashCompletion(unittest.TestCase):
    def test_long_options_by_prefix(self):
        self.assertEqual(complete("lockunit", "--st"), ["--stop-signal=", "--stop-timeout="])
        self.assertEqual(complete("lockunit", "--non"), ["--nonblock"])
        self.assertEqual(complete("lockunit", "-v", "--conflict"), ["--conflict-exit-code="])

    def test_values_of_options_with_a_fixed_set(self):
        self.assertEqual(complete("lockunit", "--scope", ""), ["auto", "no", "yes"])
        # bash splits "--notify=r" into "--notify", "=", "r"
        self.assertEqual(complete("lockunit", "--notify", "=", "r"), ["relay", "running"])
        self.assertEqual(complete("lockunit", "-p", "CPUQ"), ["CPUQuota=", "CPUQuotaPeriodSec="])
        self.assertEqual(complete("lockunit", "-w", "5"), [])  # a span: no guess

    def test_subcommands_first_then_the_command_and_its_files(self):
        self.assertIn("check", complete("lockunit", "ch"))
        self.assertIn("status", complete("lockunit", "st"))
        self.assertNotIn("check", complete("lockunit", "-n", "ch"))
        self.assertIn("sleep", complete("lockunit", "-n", "-w", "5", "--", "slee"))
        self.assertIn("sleep", complete("lockunit", "-nw", "5", "slee"))
        here = os.path.dirname(os.path.abspath(__file__))
        # Past the command, its arguments are files, and lockunit's options are not offered.
        self.assertEqual(complete("lockunit", "-n", "true", "test_comp", cwd=here),
                         ["test_completions.py"])
        self.assertEqual(complete("lockunit", "-n", "true", "--sc", cwd=here), [])

    def test_every_option_of_help_is_offered(self):
        help_text = subprocess.run([LOCKUNIT, "--help"], capture_output=True, text=True,
                                   timeout=30).stdout
        in_help = set(re.findall(r"^  (?:-[a-zA-Z], )?(--[a-z][a-z-]*=?)", help_text, re.M))
        shorts = set(re.findall(r"^  (-[a-zA-Z]),", help_text, re.M))
        offered = set(complete("lockunit", "-"))
        self.assertGreater(len(in_help), 20)
        self.assertEqual(in_help - offered, set())
        self.assertEqual(shorts - offered, set())
        self.assertEqual({o for o in offered if o.startswith("--")} - in_help, set())


class ZshCompletion(unittest.TestCase):
    """zsh's is only parsed here (driving zsh's completion needs a terminal), and checked to
    list every option of the table that bash's offers."""

    def test_parses_and_lists_every_option(self):
        if shutil.which("zsh") is None:
            if IN_CI:
                self.fail("zsh is missing (tests/deps/test.txt installs it)")
            self.skipTest("no zsh")
        p = subprocess.run(["zsh", "-n", ZSH_SCRIPT], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(ZSH_SCRIPT) as f:
            text = f.read()
        self.assertTrue(text.startswith("#compdef lockunit\n"))
        for option in complete("lockunit", "-"):
            spellings = [option + "["] + ([option + "+["] if not option.startswith("--") else [])
            self.assertTrue(any(s in text for s in spellings), option)


if __name__ == "__main__":
    require("bash")
    main()
