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

# Faults of the driver (faults.py). The units run without WatchdogSec= (the lock guard stops a
# paused lockunit's payload; `--watchdog` adds it back), `freeze-node` stops every process of
# the holder's container, the guard's included. `crash-lockunit` is a SIGSEGV of lockunit,
# `kill-guard` a SIGKILL of its lock guard, `systemctl-kill-all` a SIGKILL of the unit's cgroup.
NODE_FAULTS = ["kill-lockunit", "crash-lockunit", "kill-guard", "pause-lockunit", "freeze-node",
               "systemctl-stop", "systemctl-restart", "systemctl-kill", "systemctl-kill-all",
               "reboot"]
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
    # The payload goes on beating for this long after its stop signal (test_payload --linger):
    # a payload that takes its time to stop, which the faults where the server forgets a lock
    # need to show anything.
    linger_ms = 0

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
    faults = NODE_FAULTS + NET_FAULTS + SERVER_FAULTS + ["server-forgets"]
    # A frozen node's kernel keeps its session (and lock) alive: no overlap. A server restart or
    # a terminated session frees the lock at once while the old holder's payload lingers; the
    # waiter that gets it waits out the holder's stop budget first (docs/backends/postgres.md,
    # "Lock-delay"), so an overlap there is a bug too.
    linger_ms = 600

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
        self.server.stop(sig=signal.SIGQUIT)
        time.sleep(rng.uniform(0.2, 2.0))
        self.server.start()
        return "postgres stopped immediately (SIGQUIT) and restarted"

    def forget_holder(self):
        """The server forgets: pg_terminate_backend of the session that holds the lock."""
        pids = self.server.sql("WITH h AS MATERIALIZED (SELECT pid FROM pg_locks "
                               "WHERE locktype = 'advisory' AND granted "
                               "AND pid <> pg_backend_pid()) "
                               "SELECT pid FROM h WHERE pg_terminate_backend(pid)")
        return "pg_terminate_backend of session %s" % (pids.replace("\n", ", ") or "(none)")


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


class _LeaseBackend(Backend):
    """A lock service whose lock is a lease that expires on the server after `ttl`: a holder
    whose whole node is paused past the ttl loses it while its payload is paused too, and that
    payload resumes for a moment before its lockunit can stop it — an overlap that only a
    fencing token at the resource can catch. Without WatchdogSec, a paused lockunit alone
    leaves its payload running past the lease."""
    faults = NODE_FAULTS + NET_FAULTS + SERVER_FAULTS
    contrast_only = {"freeze-node"}
    limits_with_watchdog = {"freeze-node"}


class RedisBackend(_LeaseBackend):
    """One redis-server with a maxmemory and maxmemory-policy noeviction (lockunit refuses a
    server that may evict its key, docs/backends/redis.md): the eviction storm fills it until
    it refuses writes."""
    name = "redis"
    programs = ["redis-server"]
    faults = _LeaseBackend.faults + ["eviction-storm"]

    def start(self):
        from redis_fixture import Server
        self.dir = tempfile.mkdtemp(prefix="lockunit-faults-redis-")
        self.servers = [Server(self.dir, "redis", args=["--maxmemory", "32mb",
                                                        "--maxmemory-policy", "noeviction"]).start()]
        self.make_proxies([s.port for s in self.servers])

    def eviction_storm(self, hold):
        """Fills database 9 with 256 kB values until the server answers OOM, keeps it full for
        `hold` s (the lock's renewals are refused meanwhile), then empties database 9."""
        import socket
        from redis_fixture import RespError, _encode, _read_reply
        s = self.servers[0]
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            f = sock.makefile("rb")
            sock.sendall(_encode(["SELECT", "9"]))
            _read_reply(f)
            value, n, refused = b"x" * 262144, 0, ""
            while n < 1000 and not refused:
                sock.sendall(_encode(["SET", "storm:%d" % n, value]))
                try:
                    _read_reply(f)
                    n += 1
                except RespError as e:
                    refused = str(e)
            time.sleep(hold)
            sock.sendall(_encode(["FLUSHDB"]))
            _read_reply(f)
        return "%d MB written until %r; full for %.1f s" % (n // 4, refused[:40], hold)

    def stop(self):
        for s in getattr(self, "servers", []):
            s.stop()
        shutil.rmtree(getattr(self, "dir", ""), ignore_errors=True)

    def url(self, node):
        return "redis://%s" % self.proxies[node][0].address

    def kill_and_restart(self, rng, log):
        s = rng.choice(self.servers)
        s.kill()
        time.sleep(rng.uniform(0.2, 2.0))
        s.start()
        return "%s (port %d) SIGKILLed and restarted empty" % (s.name, s.port)


class RedlockBackend(RedisBackend):
    """Three independent redis-servers; each node reaches each through its own proxy."""
    name = "redlock"
    tokens = False  # Redlock gives no fencing token (docs/backends/redis.md)
    faults = _LeaseBackend.faults

    def start(self):
        from redis_fixture import Server
        self.dir = tempfile.mkdtemp(prefix="lockunit-faults-redlock-")
        self.servers = [Server(self.dir, "redlock%d" % i).start() for i in range(3)]
        self.make_proxies([s.port for s in self.servers])

    def url(self, node):
        return "redlock://" + ",".join(p.address for p in self.proxies[node])


class SentinelBackend(RedisBackend):
    """A master, a replica and three sentinels. Each node reaches the sentinels through its
    own proxies; the master it is sent to is the real address that the sentinels hand out,
    so network faults here cut a node off the sentinels only. The server fault kills the
    current master: the sentinels fail over to the replica (asynchronous replication: a lock
    taken just before can be lost, the documented limit), and the old master comes back as a
    replica."""
    name = "redis+sentinel"
    programs = ["redis-server", "redis-sentinel"]
    # min_replicas = 1 (tables()): a lock is used only once the replica has it, so a failover
    # right after an acquire does not grant it twice. The plain server-restart (a master killed
    # at a random moment) is still drawn: it is covered by min_replicas too.
    faults = _LeaseBackend.faults + ["failover-after-acquire"]
    limits_with_watchdog = {"freeze-node"}

    def tables(self, node):
        return "[redis]\nmin_replicas = 1\n"

    def start(self):
        from redis_fixture import Sentinels
        self.dir = tempfile.mkdtemp(prefix="lockunit-faults-sentinel-")
        self.group = Sentinels(self.dir, down_after_ms=1000, failover_timeout_ms=3000).start()
        self.servers = [self.group.master, self.group.replica]
        self.make_proxies([s.port for s in self.group.sentinels])

    def stop(self):
        if getattr(self, "group", None):
            self.group.stop()
        shutil.rmtree(getattr(self, "dir", ""), ignore_errors=True)

    def url(self, node):
        return "redis+sentinel://%s/%s" % (",".join(p.address for p in self.proxies[node]),
                                           self.group.MASTER_NAME)

    def kill_and_restart(self, rng, log):
        port = self.group.master_port()
        master = next((s for s in self.servers if s.port == port), None)
        if master is None:
            return "no master known to the sentinels: nothing killed"
        master.kill()
        # Come back once the sentinels have promoted the other one (down-after 1 s + election).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.group.master_port() in (port, None):
            time.sleep(0.1)
        promoted = self.group.master_port()
        master.start()
        return "master :%d SIGKILLed, sentinels promoted :%s, old master restarted" % (
            port, promoted)


class _QuorumBackend(_LeaseBackend):
    """A lease on a three-member quorum (self.cluster: members, leader(), kill(), restart()),
    each member reached by each node through its own proxy."""

    def start(self):
        self.cluster = self.make_cluster()
        self.make_proxies([m.client_port for m in self.cluster.members])

    def stop(self):
        if getattr(self, "cluster", None):
            self.cluster.stop()

    def url(self, node):
        return self.name + "://" + ",".join(p.address for p in self.proxies[node])

    def kill_and_restart(self, rng, log):
        leader = self.cluster.leader()
        m = leader if leader is not None and rng.random() < 0.5 else rng.choice(
            self.cluster.members)
        self.cluster.kill(m)
        time.sleep(rng.uniform(0.2, 2.0))
        self.cluster.restart(m)
        return "member %s%s SIGKILLed and restarted" % (m.name, " (the leader)" if m is leader
                                                         else "")


class EtcdBackend(_QuorumBackend):
    """A three-member etcd cluster."""
    name = "etcd"
    programs = ["etcd"]

    def make_cluster(self):
        from etcd_fixture import EtcdCluster
        return EtcdCluster(size=3).start()


class ZooKeeperBackend(_QuorumBackend):
    """A three-member ZooKeeper ensemble. Its session timeout is the lease: a session that the
    ensemble stops hearing from expires `ttl` after the last request it heard, and its
    ephemeral node goes with it."""
    name = "zookeeper"
    programs = ["java", "/usr/share/java/zookeeper.jar"]

    def make_cluster(self):
        from zookeeper_fixture import ZooKeeperEnsemble
        return ZooKeeperEnsemble(3, tick_ms=500).start()


BACKENDS.update({"redis": RedisBackend, "redis+sentinel": SentinelBackend,
                 "redlock": RedlockBackend, "etcd": EtcdBackend, "zookeeper": ZooKeeperBackend})
