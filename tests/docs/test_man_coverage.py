#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every option of `lockunit --help` has an entry in lockunit(1); every top-level config key
has one in lockunit.toml(5), and every backend key and scheme is described there; and neither
page documents an option or key that does not exist."""

import glob
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import LOCKUNIT, main  # noqa: E402

ROOT = os.environ.get("LOCKUNIT_SOURCE_ROOT",
                      os.path.join(os.path.dirname(__file__), "..", ".."))
# Long options that are not config keys.
# Command-line only: --conf, status --json/--format/--all, and the flock(1) spellings of --wait.
NOT_KEYS = {"conf", "format", "json", "all", "help", "version", "nonblock", "timeout"}


def plain(text):
    """Roff text → plain text: escapes resolved, font changes dropped."""
    text = re.sub(r"\\f[BIRP]", "", text)
    for roff, out in (("\\-", "-"), ("\\&", ""), ("\\(dq", '"'), ("\\(aq", "'"), ("\\c", ""),
                      ("\\e", "\\"), ("\\(em", "\u2014")):
        text = text.replace(roff, out)
    return text


ALTERNATING = {".BR", ".RB", ".BI", ".IB", ".IR", ".RI"}


def macro_text(line):
    """The text a roff line shows: `.B a "b c"` shows `a b c`; the alternating macros join
    their arguments without spaces (`.BI \\-\\-ttl= DURATION` shows `--ttl=DURATION`)."""
    if not line.startswith("."):
        return plain(line)
    parts = line.split(None, 1)
    if len(parts) == 1:
        return ""
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', parts[1])]
    return plain(("" if parts[0] in ALTERNATING else " ").join(args))


def sections(path):
    """{section name: [(tag text, body text)]} for the .TP entries of each .SH section, plus
    the whole text of each section under the key (name, None)."""
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if not l.startswith('.\\"')]
    out, current, text = {}, None, {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".SH"):
            current = macro_text(line)
            out.setdefault(current, [])
            text.setdefault(current, "")
        elif line.startswith(".TP") and current and i + 1 < len(lines):
            out[current].append(macro_text(lines[i + 1]))
            text[current] += out[current][-1] + "\n"  # a tag is part of its section's text
            i += 1
        if current:
            text[current] += macro_text(line) + "\n"
        i += 1
    return out, text


def help_text():
    p = subprocess.run([LOCKUNIT, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def help_options():
    return sorted(set(re.findall(r"--([a-z][a-z-]*)", help_text())))


def help_schemes():
    m = re.search(r"^Backends: (.*)$", help_text(), re.M)
    return [s.strip() for s in m.group(1).split(",")]


def backend_keys():
    """Every key a backend declares (KeySpec{"name", KeyType::…}) in src/backends."""
    keys = set()
    for path in glob.glob(os.path.join(ROOT, "src", "backends", "**", "*.[ch]pp"), recursive=True):
        with open(path, encoding="utf-8") as f:
            keys.update(re.findall(r'"([a-z][a-z0-9_]*)"\s*,\s*KeyType::', f.read()))
    return sorted(keys)


class ManCoverage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tags1, cls.text1 = sections(os.path.join(ROOT, "man", "lockunit.1"))
        cls.tags5, cls.text5 = sections(os.path.join(ROOT, "man", "lockunit.toml.5"))
        with open(os.path.join(ROOT, "man", "lockunit.toml.5"), encoding="utf-8") as f:
            cls.source5 = f.read()

    def test_help_lists_options_at_all(self):
        # Guards the other tests against a --help that the regular expression no longer reads.
        self.assertIn("backend", help_options())
        self.assertGreater(len(help_options()), 15)

    def test_every_option_has_an_entry_in_lockunit_1(self):
        documented = " ".join(self.tags1["OPTIONS"])
        for opt in help_options():
            self.assertRegex(documented, r"--%s\b(?!-)" % re.escape(opt),
                             "--%s has no entry under OPTIONS in lockunit.1" % opt)

    def test_lockunit_1_documents_no_option_that_does_not_exist(self):
        known = set(help_options())
        for tag in self.tags1["OPTIONS"]:
            for opt in re.findall(r"--([a-z][a-z-]*)", tag):
                self.assertIn(opt, known, "lockunit.1 documents --%s, which --help lacks" % opt)

    def test_every_config_key_has_an_entry_in_lockunit_toml_5(self):
        keys = [o.replace("-", "_") for o in help_options() if o not in NOT_KEYS] + ["command"]
        documented = self.tags5["TOP-LEVEL KEYS"]
        for key in keys:
            self.assertIn(key, documented, "key %s has no entry in lockunit.toml.5" % key)
        for tag in documented:
            self.assertIn(tag, keys, "lockunit.toml.5 documents key %s, which does not exist" % tag)

    def test_every_backend_key_is_described_in_lockunit_toml_5(self):
        text = self.text5["BACKENDS"]
        for key in backend_keys():
            self.assertTrue(re.search(r"\b%s\b" % key, text),
                            "backend key %s is not described under BACKENDS in lockunit.toml.5" % key)

    def test_every_built_backend_has_a_section(self):
        subsections = re.findall(r"^\.SS (\S+)", self.source5, re.M)
        names = {n.rstrip(",") for n in subsections}
        for line in re.findall(r"^\.SS (.*)$", self.source5, re.M):
            names.update(w.rstrip(",") for w in plain(line).split("\u2014")[0].split())
        for scheme in help_schemes():
            self.assertTrue(scheme in names or plain(scheme) in names,
                            "backend %s has no section in lockunit.toml.5" % scheme)

    def test_every_exit_code_of_help_is_in_exit_status(self):
        codes = re.findall(r"\b(\d\d) [a-z]", help_text().split("Exit codes:")[1])
        self.assertGreaterEqual(len(codes), 5)
        for code in codes:
            self.assertIn(code, self.tags1["EXIT STATUS"])

    def test_subcommands_are_documented(self):
        commands = " ".join(self.tags1["COMMANDS"])
        for sub in ("check", "status", "cleanup"):
            self.assertIn("lockunit " + sub, commands)

    def test_no_placeholder_is_left(self):
        for page in ("lockunit.1", "lockunit.toml.5"):
            with open(os.path.join(ROOT, "man", page), encoding="utf-8") as f:
                self.assertNotIn("PLACEHOLDER", f.read(), page)


if __name__ == "__main__":
    main()
