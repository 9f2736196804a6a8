#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Debian packages, installed as an operator would: two systemd containers, each a fresh
root on tmpfs with this host's /usr under an overlay of its own and a copy of its dpkg database
(the host is not touched; all of it is thrown away), get the built .debs with dpkg; then `systemctl enable --now lockunit@x` on both, contending over one real
redis-server on 127.0.0.1: one runs the payload, the other stands by, and takes over when the
first stops. Also: the base package alone refuses a redis:// lock with exit 69 and names the
package to install, the metrics timer's service writes node_exporter's file, and the catalog
is installed for `journalctl -x`.

The .debs come from LOCKUNIT_DEB_DIR (tests/package/build-deb.sh writes them to BUILD/deb; so
does tests/run-all.sh). Needs root and systemd-container; skipped (77) without them or without
the .debs, a failure under CI=true."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import IN_CI, main, require  # noqa: E402
from systemd_container import BUILD_ROOT, Container, require_nspawn  # noqa: E402
import redis_fixture  # noqa: E402
from redis_fixture import Server  # noqa: E402

DEB_DIR = os.environ.get("LOCKUNIT_DEB_DIR", os.path.join(BUILD_ROOT, "deb"))
ACQUIRED_ID = "7e590123ec844726a91f47d3cc63e546"
NETWORK_LIBS = ("libpq", "libnghttp2", "libprotobuf", "libssl", "libcrypto", "libhiredis")


def deb(package):
    found = glob.glob(os.path.join(DEB_DIR, "%s_*.deb" % package))
    return found[0] if found else None


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not value:
        raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))
    return value


class Package(unittest.TestCase):
    nodes = []
    server = None

    @classmethod
    def setUpClass(cls):
        cls.serverdir = tempfile.mkdtemp(prefix="lockunit-pkg-redis-")
        cls.server = Server(cls.serverdir, "redis").start()
        debdir = tempfile.mkdtemp(prefix="lockunit-pkg-debs-")
        subprocess.run(["cp", "-t", debdir] + glob.glob(os.path.join(DEB_DIR, "*.deb")),
                       check=True)
        # A copy of the host's package database, so that dpkg inside sees the libraries that
        # the host's /usr holds.
        subprocess.run(["cp", "-a", "/var/lib/dpkg", os.path.join(debdir, "dpkg")], check=True)
        cls.debdir = debdir
        try:
            for i in (1, 2):
                node = Container("pkg", binds=[(debdir, "/run/debs")], overlays=["/usr"])
                cls.nodes.append(node)
                node.boot()
                # Its stat overrides name the host's groups, which this /etc lacks.
                node.run(["sh", "-ec", "cp -a /run/debs/dpkg /var/lib/dpkg; "
                          ": >/var/lib/dpkg/statoverride"])
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for node in cls.nodes:
            node.poweroff()
            node.cleanup_logs()
        if cls.server:
            cls.server.stop()
        shutil.rmtree(cls.debdir, ignore_errors=True)

    def install(self, node, *packages):
        debs = [os.path.join("/run/debs", os.path.basename(deb(p))) for p in packages]
        node.run(["dpkg", "-i"] + debs, timeout=300)

    def status(self, node):
        return node.prop("lockunit@x.service", "StatusText")

    def test_base_package_pulls_no_network_library(self):
        depends = subprocess.run(["dpkg-deb", "-f", deb("lockunit"), "Depends"],
                                 capture_output=True, text=True, check=True).stdout
        for lib in NETWORK_LIBS:
            self.assertNotIn(lib, depends)
        self.assertIn("libhiredis", subprocess.run(
            ["dpkg-deb", "-f", deb("lockunit-redis"), "Depends"], capture_output=True,
            text=True, check=True).stdout)

    def test_two_nodes_over_one_redis_one_runs_one_stands_by(self):
        a, b = self.nodes
        url = "redis://127.0.0.1:%d/0" % self.server.port
        self.install(a, "lockunit")
        # Without its module a redis:// lock is "unavailable" (69), and says what to install.
        r = a.run(["lockunit", "--backend=" + url, "--name=x", "--scope=no", "--", "true"],
                  check=False)
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertIn("lockunit-redis", r.stderr)

        for node in (a, b):
            if node is b:
                self.install(node, "lockunit")
            self.install(node, "lockunit-redis")
            self.assertTrue(node.run(["test", "-d", "/etc/lockunit"], check=False).returncode
                            == 0)
            node.write("/etc/lockunit/x.toml",
                       'backend = "%s"\nttl = "10s"\nstop_timeout = "2s"\n'
                       'command = ["/bin/sleep", "infinity"]\n' % url)

        a.systemctl("enable", "--now", "lockunit@x")
        wait_until(lambda: self.status(a).startswith("active: holding 'x'"), 60, "a holds x")
        b.systemctl("enable", "--now", "lockunit@x")
        wait_until(lambda: self.status(b).startswith("standby: waiting for lock 'x'"), 60,
                   "b stands by")
        self.assertIn(a.name, self.status(b))  # held by a's host
        for node in (a, b):
            self.assertEqual(node.prop("lockunit@x.service", "ActiveState"), "active")
            self.assertEqual(node.prop("lockunit@x.service", "UnitFileState"), "enabled")
        self.assertTrue(self.status(a).startswith("active: holding 'x'"), self.status(a))

        # The catalog came with the package (systemd's trigger updated the database).
        explained = a.run(["journalctl", "--no-pager", "-x", "MESSAGE_ID=" + ACQUIRED_ID]).stdout
        self.assertIn("Subject: Lock x acquired: payload started", explained)

        # The metrics timer's service writes node_exporter's file, whole.
        a.systemctl("start", "lockunit-metrics.service", timeout=120)
        prom = a.run(["cat", "/var/lib/prometheus/node-exporter/lockunit.prom"]).stdout
        self.assertIn('lockunit_held{lock="x",backend="redis"} 1', prom)
        self.assertIn('host="%s"' % a.name, prom)
        self.assertEqual(a.run(["ls", "/var/lib/prometheus/node-exporter"]).stdout.split(),
                         ["lockunit.prom"])

        # The holder stops: the one that stood by takes over.
        a.systemctl("stop", "lockunit@x", timeout=120)
        wait_until(lambda: self.status(b).startswith("active: holding 'x'"), 60, "b takes over")


if __name__ == "__main__":
    require_nspawn()
    require(redis_fixture.REDIS_SERVER, "dpkg-deb")
    missing = [p for p in ("lockunit", "lockunit-redis") if not deb(p)]
    if missing:
        print("%s: no .deb of %s in %s (tests/package/build-deb.sh builds them)"
              % ("FAIL" if IN_CI else "SKIP", ", ".join(missing), DEB_DIR), file=sys.stderr)
        sys.exit(1 if IN_CI else 77)
    main()
