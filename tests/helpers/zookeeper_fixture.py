# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway ZooKeeper ensemble for lockunit's tests: Debian's ZooKeeper 3.8 (a JVM each),
one to three members on free loopback ports, data in a temporary directory (on /dev/shm when
there is one). Members are started and stopped by PID, never through a service manager.
A JVM takes a few seconds to start on a busy machine: a test module shares one ensemble."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from etcd_fixture import free_ports, kill_member, stop_members

JAVA = shutil.which("java") or "/usr/bin/java"
ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def four_letter(endpoint, word, timeout=2):
    """A four-letter-word command ("ruok", "srvr", "mntr") to one member; its answer."""
    host, port = endpoint.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


class Member:
    def __init__(self, myid, client_port, peer_port, election_port):
        self.myid = myid
        self.client_port = client_port
        self.peer_port = peer_port
        self.election_port = election_port
        self.proc = None
        self.log = None
        self.dir = None

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def name(self):
        return "m%d" % self.myid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class ZooKeeperEnsemble:
    """`size` members on loopback, tickTime `tick_ms` (so min/maxSessionTimeout default to 2 and
    20 ticks unless given)."""

    def __init__(self, size=3, tick_ms=500, min_session_ms=None, max_session_ms=None):
        self.size = size
        self.tick_ms = tick_ms
        self.min_session_ms = min_session_ms
        self.max_session_ms = max_session_ms
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix="lockunit-zk-", dir=base)
        ports = free_ports(3 * size)
        self.members = [Member(i + 1, *ports[3 * i:3 * i + 3]) for i in range(size)]

    def _config(self, m):
        lines = ["tickTime=%d" % self.tick_ms, "initLimit=20", "syncLimit=5",
                 "dataDir=" + m.dir, "clientPort=%d" % m.client_port,
                 "clientPortAddress=127.0.0.1", "4lw.commands.whitelist=*",
                 "admin.enableServer=false", "maxClientCnxns=0"]
        if self.min_session_ms:
            lines.append("minSessionTimeout=%d" % self.min_session_ms)
        if self.max_session_ms:
            lines.append("maxSessionTimeout=%d" % self.max_session_ms)
        if self.size > 1:
            lines += ["server.%d=127.0.0.1:%d:%d" % (o.myid, o.peer_port, o.election_port)
                      for o in self.members]
        return "\n".join(lines) + "\n"

    def start(self, timeout=60):
        for m in self.members:
            m.dir = os.path.join(self.dir, m.name)
            os.makedirs(m.dir)
            with open(os.path.join(m.dir, "myid"), "w") as f:
                f.write("%d\n" % m.myid)
            cfg = os.path.join(m.dir, "zoo.cfg")
            with open(cfg, "w") as f:
                f.write(self._config(m))
            # Small heap, no JIT tiers beyond C1: a member starts in seconds and stays small.
            m.args = [JAVA, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                      "-Dzookeeper.log.dir=" + m.dir, "-Dzookeeper.root.logger=INFO,CONSOLE",
                      "-cp", "/etc/zookeeper/conf:" + ZOOKEEPER_JAR, MAIN, cfg]
            self._spawn(m, "wb")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.serving(m) for m in self.members):
                return self
            for m in self.members:
                if not m.alive():
                    raise RuntimeError("zookeeper %d exited at start-up:\n%s" % (m.myid, self.member_log(m)))
            time.sleep(0.1)
        raise RuntimeError("zookeeper did not serve in %ds:\n%s" % (timeout, self.member_log(self.members[0])))

    def _spawn(self, m, mode):
        if m.log:
            m.log.close()
        m.log = open(os.path.join(m.dir, "server.log"), mode)
        m.proc = subprocess.Popen(m.args, stdout=m.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)

    def stop(self):
        stop_members(self.members, self.dir)

    def kill(self, member, sig=signal.SIGKILL):
        kill_member(member, sig)

    def restart(self, member):
        """Starts a killed member again on its data directory (it rejoins the ensemble)."""
        if not member.alive():
            self._spawn(member, "ab")

    def member_log(self, member):
        try:
            with open(os.path.join(member.dir, "server.log"), encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except (FileNotFoundError, TypeError):
            return ""

    # ---- state ----

    def mode(self, member):
        """"leader", "follower", "standalone", or None when it does not serve."""
        if not member.alive():
            return None
        try:
            for line in four_letter(member.endpoint, "srvr").splitlines():
                if line.startswith("Mode:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return None

    def serving(self, member):
        return self.mode(member) in ("leader", "follower", "standalone")

    def leader(self):
        for m in self.members:
            if self.mode(m) == "leader":
                return m
        return None

    def packets_received(self, members=None):
        """The members' count of packets received from clients (requests and pings)."""
        total = 0
        for m in self.members if members is None else members:
            if not m.alive():
                continue
            for line in four_letter(m.endpoint, "mntr").splitlines():
                key, _, value = line.partition("\t")
                if key == "zk_packets_received":
                    total += int(value)
        return total

    def url(self, members=None, chroot=""):
        members = self.members if members is None else members
        return "zookeeper://" + ",".join(m.endpoint for m in members) + chroot
