# SPDX-License-Identifier: LGPL-2.1-or-later
"""The lock services of the fault suite, served from the host's loopback, and what each node
reaches them through: its own fault-injecting proxy per server (proxy.py), so that a partition
or a slow link affects one node only. Servers are started by the suite and stopped by PID.

Each backend says which faults apply to it, and which of them its documentation calls *safe*
(an overlap there is a bug in lockunit) — see docs/guarantees.md."""

import os
import random
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))

# Faults of the driver (faults.py). `pause-lockunit` runs with WatchdogSec= (the contrast
# profile runs it without), `freeze-node` stops every process of the holder's container.
NODE_FAULTS = ["kill-lockunit", "pause-lockunit", "freeze-node", "systemctl-stop",
               "systemctl-restart", "systemctl-kill", "reboot"]
NET_FAULTS = ["partition", "partition-cut", "latency"]
SERVER_FAULTS = ["server-restart"]


class Backend:
    name = ""
    tokens = True          # LOCKUNIT_TOKEN is a fencing token to check
    programs = []          # server binaries that must exist
    faults = NODE_FAULTS   # the faults that apply
    # Faults after which two payloads can run at once by design of the lock service (an
    # expiring lease), as docs/guarantees.md says; an overlap after any other fault is a bug.
    # They run only in the contrast runs (faults.py --contrast).
    contrast_only = set()
    limits_with_watchdog = set()
    limits_without_watchdog = set()

    def limits(self, watchdog):
        return self.limits_with_watchdog | (set() if watchdog else self.limits_without_watchdog)

    def __init__(self, hub, nodes, workdir, ttl):
        self.hub, self.nodes, self.workdir, self.ttl = hub, nodes, workdir, ttl
        self.proxies = {}  # node index → [Proxy]

    def start(self):
        pass

    def stop(self):
        pass

    def url(self, node):
        raise NotImplementedError

    def tables(self, node):
        """Extra TOML for the node's config (backend tables)."""
        return ""

    def kill_and_restart(self, rng, log):
        raise NotImplementedError

    def make_proxies(self, upstream_ports):
        for n in range(self.nodes):
            self.proxies[n] = [self.hub.proxy(p, "n%d→:%d" % (n, p)) for p in upstream_ports]

    def node_proxies(self, node):
        return self.proxies.get(node, [])


class FileBackend(Backend):
    """A lock directory on the host, bind-mounted into every node: flock() works across the
    containers because they share one kernel."""
    name = "file"

    def url(self, node):
        return "file:///run/shared/locks"

    def start(self):
        os.makedirs(os.path.join(self.workdir, "shared", "locks"), exist_ok=True)


class PostgresBackend(Backend):
    name = "postgres"
    faults = NODE_FAULTS + NET_FAULTS + SERVER_FAULTS
    # A frozen node's kernel keeps its session (and lock) alive: no overlap. A server restart
    # ends every session at once, while the old holder needs up to stop_timeout to notice and
    # stop its payload (docs/backends/postgres.md, "Server-side loss is immediate").
    limits_with_watchdog = {"server-restart"}

    @property
    def programs(self):
        from postgres_fixture import INITDB, POSTGRES
        return [INITDB, POSTGRES, "psql"]

    def start(self):
        from postgres_fixture import SUPERUSER_PASSWORD, PostgresServer
        self.server = PostgresServer()
        self.server.start()
        pw = os.path.join(self.workdir, "shared", "pgpass")
        with open(pw, "w") as f:
            f.write(SUPERUSER_PASSWORD + "\n")
        os.chmod(pw, 0o600)
        self.make_proxies([self.server.port])

    def stop(self):
        if getattr(self, "server", None):
            self.server.destroy()

    def url(self, node):
        from postgres_fixture import SUPERUSER
        return "postgres://%s@%s/postgres" % (SUPERUSER, self.proxies[node][0].address)

    def tables(self, node):
        return '[postgres]\npassword_file = "/run/shared/pgpass"\nconnect_timeout = "2s"\n'

    def kill_and_restart(self, rng, log):
        # SIGQUIT: immediate shutdown, as close to a crash as a postmaster allows without
        # leaving orphaned backends that keep the port.
        log("postgres: immediate shutdown (SIGQUIT)")
        self.server.stop(sig=signal.SIGQUIT)
        time.sleep(rng.uniform(0.2, 2.0))
        self.server.start()
        log("postgres: restarted")


BACKENDS = {"file": FileBackend, "postgres": PostgresBackend}


def available(names):
    """(backend classes to run, [(name, why skipped)])."""
    run, skipped = [], []
    for n in names:
        cls = BACKENDS.get(n)
        if cls is None:
            skipped.append((n, "not merged into this build yet"))
            continue
        progs = cls.programs if isinstance(cls.programs, list) else cls(None, 0, "", 0).programs
        missing = [p for p in progs if shutil.which(p) is None and not os.path.exists(p)]
        if missing:
            skipped.append((n, "missing " + ", ".join(missing)))
        else:
            run.append(cls)
    return run, skipped
