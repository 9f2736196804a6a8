#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`lockunit status --format=openmetrics|prometheus` against real locks: a file lock and a
Redis lock (a real redis-server on loopback) held by running lockunits, a free lock, and a lock
whose Redis cannot be reached, all in one config directory. The output is read by Debian's
python3-prometheus-client: its OpenMetrics parser, and its Prometheus text parser for the form
node_exporter's textfile collector reads."""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import EX_CONFIG, EX_USAGE, IN_CI, main, payload, read_runs, require, run, wait_for

try:
    from prometheus_client.openmetrics.parser import \
        text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
except ImportError:
    # Debian's package is installed for Debian's python3: run under it when another python3
    # (a pyenv, a venv) came first in PATH.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
            os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    parse_openmetrics = parse_prometheus = None

import redis_fixture  # noqa: E402


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def samples(families):
    """{family name: [(sample name, labels, value)]}"""
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in families}


class Metrics(redis_fixture.ServerTestCase):
    def setUp(self):
        super().setUp()
        self.server.cmd("FLUSHALL")  # no holder left over from the test before (killed)
        self.confdir = self.path("conf")
        os.makedirs(self.confdir)
        locks = self.path("locks")
        redis = "redis://127.0.0.1:%d/0" % self.server.port
        self.write_conf("a-file.toml", 'backend = "file://%s"\nname = "mfile"\n' % locks)
        self.write_conf("b-redis.toml", 'backend = "%s"\nname = "mredis"\nttl = "3s"\n'
                        'stop_timeout = "1s"\nholders = 2\n' % redis)
        self.write_conf("c-free.toml", 'backend = "file://%s"\nname = "mfree"\n' % locks)
        self.write_conf("d-down.toml", 'backend = "redis://127.0.0.1:%d/0"\nname = "mdown"\n'
                        '[redis]\nconnect_timeout = "1s"\n' % closed_port())
        self.write_conf("notes.txt", "not a lock\n")
        self.holders = {}
        for name, url in (("mfile", "file://" + locks), ("mredis", redis)):
            log = self.path(name + ".log")
            extra = ["--ttl=3s", "--stop-timeout=1s", "--holders=2"] if name == "mredis" else []
            inst = self.start(["--backend=" + url, "--name=" + name, "--scope=no"] + extra +
                              ["--"] + payload(log, name), label=name)
            self.assertTrue(wait_for(lambda: read_runs(log), 15), inst.stderr())
            self.holders[name] = (inst, read_runs(log)[0])

    def write_conf(self, name, text):
        with open(os.path.join(self.confdir, name), "w") as f:
            f.write(text)

    def status(self, fmt):
        code, out, err = run(["status", "--conf=" + self.confdir, "--format=" + fmt], timeout=60)
        self.assertEqual(code, 0, err)
        return out, err

    def test_openmetrics_for_every_lock_of_a_directory(self):
        out, err = self.status("openmetrics")
        self.assertTrue(out.endswith("# EOF\n"), out)
        families = list(parse_openmetrics(out))
        by_name = {f.name: f for f in families}
        self.assertEqual(by_name["lockunit_holder"].type, "info")
        self.assertEqual(by_name["lockunit_lease_left_seconds"].unit, "seconds")
        m = samples(families)

        def value(family, lock, **labels):
            found = [v for _, l, v in m[family] if l["lock"] == lock and
                     all(l.get(k) == str(x) for k, x in labels.items())]
            self.assertEqual(len(found), 1, (family, lock, labels, m[family]))
            return found[0]

        # Up where the backend answered; 0 and nothing else for the one that cannot be reached.
        self.assertEqual({l["lock"]: v for _, l, v in m["lockunit_up"]},
                         {"mfile": 1, "mredis": 1, "mfree": 1, "mdown": 0})
        self.assertIn("mdown", err)
        for family in ("lockunit_held", "lockunit_holders", "lockunit_capacity"):
            self.assertNotIn("mdown", [l["lock"] for _, l, _ in m[family]], family)
        self.assertEqual(value("lockunit_held", "mfile"), 1)
        self.assertEqual(value("lockunit_held", "mredis"), 1)
        self.assertEqual(value("lockunit_held", "mfree"), 0)
        self.assertEqual(value("lockunit_holders", "mredis"), 1)
        self.assertEqual(value("lockunit_capacity", "mredis"), 2)
        self.assertEqual(value("lockunit_capacity", "mfile"), 1)
        for _, labels, _ in m["lockunit_up"]:
            self.assertEqual(labels["backend"], "file" if labels["lock"][1:] in ("file", "free")
                             else "redis", labels)

        # The holder: its id, host, unit and lockunit's pid as labels of the info metric, and
        # the fencing token its payload got.
        for lock in ("mfile", "mredis"):
            inst, first = self.holders[lock]
            info = [l for _, l, _ in m["lockunit_holder"] if l["lock"] == lock]
            self.assertEqual(len(info), 1, info)
            self.assertEqual(info[0]["pid"], str(inst.pid))
            self.assertEqual(info[0]["host"], os.uname().nodename)
            self.assertTrue(info[0]["holder"].startswith("%s:%d:" % (info[0]["host"], inst.pid)))
            self.assertRegex(info[0]["since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            self.assertEqual(value("lockunit_fencing_token", lock, holder=info[0]["holder"]),
                             int(first.token))
        self.assertEqual([l["lock"] for _, l, _ in m["lockunit_holder"]], ["mfile", "mredis"])
        # A flock lasts as long as its holder; a Redis lease runs out within its ttl.
        self.assertEqual(value("lockunit_lease_left_seconds", "mfile"), float("inf"))
        self.assertTrue(0 < value("lockunit_lease_left_seconds", "mredis") <= 3)
        self.assertNotIn("mfree", [l["lock"] for _, l, _ in m["lockunit_lease_left_seconds"]])

    def test_prometheus_text_for_node_exporters_textfile_collector(self):
        out, _ = self.status("prometheus")
        self.assertNotIn("# EOF", out)
        families = {f.name: f for f in parse_prometheus(out)}
        self.assertEqual(families["lockunit_holder_info"].type, "gauge")
        holders = sorted(s.labels["lock"] for s in families["lockunit_holder_info"].samples)
        self.assertEqual(holders, ["mfile", "mredis"])
        up = {s.labels["lock"]: s.value for s in families["lockunit_up"].samples}
        self.assertEqual(up, {"mfile": 1, "mredis": 1, "mfree": 1, "mdown": 0})

    def test_a_lock_freed_shows_as_free(self):
        inst, _ = self.holders["mredis"]
        inst.signal(15)
        self.assertEqual(inst.wait(30), 0)
        m = samples(parse_openmetrics(self.status("openmetrics")[0]))
        held = {l["lock"]: v for _, l, v in m["lockunit_held"]}
        self.assertEqual(held["mredis"], 0)
        self.assertNotIn("mredis", [l["lock"] for _, l, _ in m["lockunit_holder"]])

    def test_a_bad_file_in_the_directory_is_a_config_error_before_any_backend_is_asked(self):
        self.write_conf("e-bad.toml", 'ttl = "soon"\n')
        code, out, err = run(["status", "--conf=" + self.confdir, "--format=openmetrics"])
        self.assertEqual(code, EX_CONFIG, err)
        self.assertEqual(out, "")
        self.assertIn("e-bad.toml:1:", err)

    def test_an_unknown_format_or_all_with_conf_is_a_usage_error(self):
        code, out, err = run(["status", "--conf=" + self.confdir, "--format=xml"])
        self.assertEqual((code, out), (EX_USAGE, ""), err)
        self.assertIn("--format: expected text, json, openmetrics or prometheus, found 'xml'", err)
        code, out, err = run(["status", "--all", "--conf=" + self.confdir])
        self.assertEqual((code, out), (EX_USAGE, ""), err)
        self.assertIn("give --all or --conf, not both", err)


if __name__ == "__main__":
    require(redis_fixture.REDIS_SERVER)
    if parse_openmetrics is None:
        print(("FAIL" if IN_CI else "SKIP") + ": python3-prometheus-client missing",
              file=sys.stderr)
        sys.exit(1 if IN_CI else 77)
    main()
