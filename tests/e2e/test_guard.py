#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The lock guard under a real systemd, in scope mode: `kill -9` of a lockunit whose payload
lingers 2 s on SIGTERM, with a standby unit on the same lock. systemd stops the dead
lockunit's scope through BindsTo= at once; the lock must still pass only once every process of
that scope is gone (the guard holds the flock fd, or the postgres session, until then), and
then at once."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import IN_CI, holder_spans, main, read_runs, wait_for  # noqa: E402
from systemd_container import LOCKUNIT, require_nspawn  # noqa: E402
from test_systemd import ContainerTestCase, unit_text  # noqa: E402
from postgres_fixture import POSTGRES, SUPERUSER_PASSWORD, PostgresServer  # noqa: E402

LINGER_MS = 2000


class GuardScope(ContainerTestCase):
    """Scope mode: the payload's processes are in the scope's cgroup, the guard stays in the
    service's own."""

    def backend_args(self):
        return "--backend=file:///run/lock/lockunit"

    def kill_holder_with_a_standby(self, name):
        host_log, log = self.log(name + ".log")
        for node in ("a", "b"):
            self.c.install_unit("%s%s.service" % (name, node), unit_text(
                "--name=%s %s --stop-timeout=5s" % (name, self.backend_args()),
                self.payload(log, node, "--linger", LINGER_MS, "--daemon-child")))
        self.c.systemctl("start", name + "a")
        self.started_payload(host_log, "a")
        child = self.started_payload(host_log, "a/child")
        self.assertEqual(self.c.cgroup_of(child.pid),
                         "/system.slice/lockunit-%sa.service.scope" % name)
        self.c.systemctl("start", name + "b")
        self.assertTrue(wait_for(lambda: self.c.prop(name + "b.service", "StatusText")
                                 .startswith("standby"), 15))
        main_pid = int(self.c.prop(name + "a.service", "MainPID"))
        killed = time.time()
        self.c.run(["kill", "-9", str(main_pid)])
        self.assertTrue(wait_for(lambda: "b" in holder_spans(read_runs(host_log)), 30),
                        "the standby never took over")
        time.sleep(0.5)  # a survivor of a's tree would write another heartbeat meanwhile
        h = holder_spans(read_runs(host_log))
        print("a's tree ended %.3f s after kill -9; b started %.3f s after that"
              % (h["a"][1] - killed, h["b"][0] - h["a"][1]))
        self.assertLess(h["a"][1], h["b"][0], "b started beside a's tree: %r" % h)
        # The payload lingered 2 s; its daemon ignores SIGTERM and dies at the SIGKILL 5 s on.
        self.assertGreater(h["a"][1] - killed, 1.5)
        self.assertLess(h["b"][0] - h["a"][1], 1.5)
        self.assertFalse(self.c.alive(child.pid))
        for node in ("a", "b"):
            self.c.systemctl("stop", "%s%s" % (name, node), check=False)
            self.c.systemctl("reset-failed", "%s%s" % (name, node), check=False)

    def test_kill_9_of_lockunit_passes_the_lock_only_after_its_scope_is_empty(self):
        self.kill_holder_with_a_standby("gf")


class GuardScopePostgres(GuardScope):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(POSTGRES):
            if IN_CI:
                raise RuntimeError("postgres missing: CI must install it")
            raise __import__("unittest").SkipTest("postgres missing")
        cls.pg = PostgresServer()
        cls.pg.start()
        super().setUpClass()
        with open(os.path.join(cls.out, "pgpass"), "w") as f:
            f.write(SUPERUSER_PASSWORD + "\n")
        os.chmod(os.path.join(cls.out, "pgpass"), 0o600)  # lockunit refuses a readable secret
        with open(os.path.join(cls.out, "pg.toml"), "w") as f:
            f.write('[postgres]\npassword_file = "/run/out/pgpass"\n')

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.pg.destroy()

    def backend_args(self):
        return "--conf=/run/out/pg.toml --backend=" + self.pg.url()

    def test_kill_9_of_lockunit_passes_the_lock_only_after_its_scope_is_empty(self):
        self.kill_holder_with_a_standby("gp")


del ContainerTestCase  # imported for its setup, not to run its tests

if __name__ == "__main__":
    require_nspawn()
    main()
