# SPDX-License-Identifier: LGPL-2.1-or-later
"""Real redis-server and redis-sentinel processes for integration tests: started on free
loopback ports in a temporary directory, without persistence, and stopped by PID.

"Without persistence" as Redis means it: no `save` points and no AOF. A replica still writes the
RDB of each full sync to its `dbfilename` (repl-diskless-load is off by default) and loads it
when it restarts, as a master too if it was started as one. Each server therefore has its own
`dbfilename` (NAME.rdb): servers that shared the directory's dump.rdb would come back with
another server's old snapshot, which no real deployment does."""

import math
import os
import signal
import socket
import subprocess
import tempfile
import time

from lockunit_test import LockunitTestCase

REDIS_SERVER = "redis-server"
REDIS_SENTINEL = "redis-sentinel"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RespError(Exception):
    pass


def _encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read_reply(f) for _ in range(n)]
    raise RespError("bad reply type %r" % kind)


def command(port, *args, password=None, timeout=2.0):
    """One command on a fresh connection; returns the decoded reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        if password is not None:
            s.sendall(_encode(["AUTH", password]))
            _read_reply(f)
        s.sendall(_encode(list(args)))
        return _read_reply(f)


class Server:
    """One redis-server (or redis-sentinel, with sentinel=True)."""

    def __init__(self, workdir, name, port=None, args=(), sentinel_conf=None):
        self.workdir, self.name = workdir, name
        self.port = port or free_port()
        self.args = list(args)
        self.sentinel_conf = sentinel_conf
        self.proc = None
        self.password = None
        self.started_at = None
        for i, a in enumerate(self.args):
            if a == "--requirepass":
                self.password = self.args[i + 1]

    def start(self, timeout=10):
        log = os.path.join(self.workdir, self.name + ".log")
        if self.sentinel_conf is not None:
            conf = os.path.join(self.workdir, self.name + ".conf")
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n%s\n" %
                        (self.port, self.workdir, log, self.sentinel_conf))
            argv = [REDIS_SENTINEL, conf]
        else:
            argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", self.workdir,
                    "--dbfilename", self.name + ".rdb",
                    "--logfile", log, "--daemonize", "no"] + self.args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.started_at = time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.cmd("PING") == "PONG":
                    return self
            except (OSError, RespError, ConnectionError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("%s did not start on port %d (see %s)" % (self.name, self.port, log))
            time.sleep(0.02)

    def cmd(self, *args, timeout=2.0):
        return command(self.port, *args, password=self.password, timeout=timeout)

    def ready_for_ttl(self, ttl):
        """Sleeps until lockunit grants locks here: a server grants nothing until its
        uptime_in_seconds (whole seconds) covers one ttl plus drift."""
        self.age_at_least(math.ceil(ttl * 1.01 + 0.002) + 0.3)

    def age_at_least(self, seconds):
        """Sleeps until the server has been up for `seconds` (lockunit grants no lock on a
        server younger than one ttl)."""
        left = self.started_at + seconds - time.monotonic()
        if left > 0:
            time.sleep(left)

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self):
        """Stops the server by its PID (SIGCONT first, in case a test paused it)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Sentinels:
    """A master, one replica and three sentinels watching them as MASTER_NAME."""

    MASTER_NAME = "mymaster"

    def __init__(self, workdir, down_after_ms=1000, failover_timeout_ms=3000):
        self.workdir = workdir
        self.master = Server(workdir, "master")
        self.replica = None
        self.sentinels = []
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def start(self):
        self.master.args += ["--repl-diskless-sync-delay", "0"]
        self.master.start()
        self.replica = Server(self.workdir, "replica",
                              args=["--replicaof", "127.0.0.1", str(self.master.port),
                                    "--repl-diskless-sync-delay", "0"]).start()
        conf = ("sentinel monitor %s 127.0.0.1 %d 2\n"
                "sentinel down-after-milliseconds %s %d\n"
                "sentinel failover-timeout %s %d\n"
                "sentinel parallel-syncs %s 1\n") % (
            self.MASTER_NAME, self.master.port, self.MASTER_NAME, self.down_after_ms,
            self.MASTER_NAME, self.failover_timeout_ms, self.MASTER_NAME)
        for i in range(3):
            self.sentinels.append(Server(self.workdir, "sentinel%d" % i, sentinel_conf=conf).start())
        # Ready when the replica is in sync and every sentinel sees it and the two others.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if "master_link_status:up" in self.replica.cmd("INFO", "replication") and all(len(s.cmd("SENTINEL", "replicas", self.MASTER_NAME)) == 1 and
                       len(s.cmd("SENTINEL", "sentinels", self.MASTER_NAME)) == 2
                       for s in self.sentinels):
                    return self
            except (OSError, RespError, ConnectionError):
                pass
            time.sleep(0.1)
        raise RuntimeError("sentinels did not discover each other and the replica")

    def url(self, db=None):
        hosts = ",".join("127.0.0.1:%d" % s.port for s in self.sentinels)
        return "redis+sentinel://%s/%s%s" % (hosts, self.MASTER_NAME, "" if db is None else "/%d" % db)

    def master_port(self):
        for s in self.sentinels:
            try:
                addr = s.cmd("SENTINEL", "get-master-addr-by-name", self.MASTER_NAME)
                if addr:
                    return int(addr[1])
            except (OSError, RespError, ConnectionError):
                pass
        return None

    def servers(self):
        return [self.master, self.replica] + self.sentinels

    def stop(self):
        for s in self.sentinels + [self.replica, self.master]:
            if s is not None:
                s.stop()


class ServerTestCase(LockunitTestCase):
    """One redis-server for the whole class, old enough (one `ttl`, in seconds) to grant locks."""

    server = None
    ttl = 3

    @classmethod
    def setUpClass(cls):
        cls.serverdir = tempfile.mkdtemp(prefix="lockunit-redis-")
        cls.server = Server(cls.serverdir, "redis").start()
        cls.server.ready_for_ttl(cls.ttl)

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
