# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway etcd for lockunit's tests: one member or a small cluster on free loopback ports,
data in a temporary directory (on /dev/shm when there is one: no fsync cost on a shared disk),
optionally with TLS (a CA, server and client certificates made with openssl) and user/password
authentication. Members are started and stopped by PID, never through a service manager."""

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def free_ports(count):
    """Ports that were free a moment ago (held open together, so they are distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _scratch_dir(prefix):
    # LOCKUNIT_ETCD_DATA_DIR puts the data on a disk of one's choice instead, to see what
    # etcd's fsync adds (bench/etcd_handover).
    base = os.environ.get("LOCKUNIT_ETCD_DATA_DIR") or (
        "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None)
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def stop_members(members, scratch_dir):
    """SIGTERM to every live member, SIGKILL to one that is still there 10 s later, by PID;
    then the scratch directory goes. For any ensemble of server processes (etcd, ZooKeeper)."""
    for m in members:
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(signal.SIGTERM)
    for m in members:
        if m.proc is None:
            continue
        try:
            m.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
        if m.log:
            m.log.close()
    shutil.rmtree(scratch_dir, ignore_errors=True)


def kill_member(member, sig=signal.SIGKILL):
    member.proc.send_signal(sig)
    if sig == signal.SIGKILL:
        member.proc.wait(timeout=10)


class Member:
    def __init__(self, name, client_port, peer_port):
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.proc = None
        self.log = None

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """`size` members on loopback. tls=True serves clients over https with client-certificate
    authentication; auth_password enables etcd's auth with user root and that password."""

    def __init__(self, size=1, tls=False, auth_password=None):
        self.size = size
        self.tls = tls
        self.auth_password = auth_password
        self.dir = _scratch_dir("lockunit-etcd-")
        ports = free_ports(2 * size)
        self.members = [Member("m%d" % i, ports[2 * i], ports[2 * i + 1]) for i in range(size)]
        self.certs = {}

    # ---- lifecycle ----

    def start(self, timeout=30):
        if self.tls:
            self._make_certs()
        cluster = ",".join("%s=http://127.0.0.1:%d" % (m.name, m.peer_port) for m in self.members)
        scheme = "https" if self.tls else "http"
        for m in self.members:
            args = [ETCD, "--name", m.name,
                    "--data-dir", os.path.join(self.dir, m.name),
                    "--listen-client-urls", "%s://127.0.0.1:%d" % (scheme, m.client_port),
                    "--advertise-client-urls", "%s://127.0.0.1:%d" % (scheme, m.client_port),
                    "--listen-peer-urls", "http://127.0.0.1:%d" % m.peer_port,
                    "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % m.peer_port,
                    "--initial-cluster", cluster,
                    "--initial-cluster-state", "new",
                    "--initial-cluster-token", os.path.basename(self.dir)]
            if self.tls:
                args += ["--cert-file", self.certs["server.crt"], "--key-file", self.certs["server.key"],
                         "--client-cert-auth", "--trusted-ca-file", self.certs["ca.crt"]]
            m.args = args
            m.log = open(os.path.join(self.dir, m.name + ".log"), "wb")
            m.proc = subprocess.Popen(args, stdout=m.log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._healthy(m) for m in self.members):
                break
            for m in self.members:
                if not m.alive():
                    raise RuntimeError("etcd %s exited at start-up:\n%s" % (m.name, self.member_log(m)))
            time.sleep(0.1)
        else:
            raise RuntimeError("etcd did not become healthy in %ds:\n%s" %
                               (timeout, self.member_log(self.members[0])))
        if self.auth_password:
            self.etcdctl("user", "add", "root:" + self.auth_password, auth=False)
            self.etcdctl("auth", "enable", auth=False)
        return self

    def stop(self):
        stop_members(self.members, self.dir)

    def kill(self, member, sig=signal.SIGKILL):
        kill_member(member, sig)

    def restart(self, member):
        """Starts a killed member again on its data directory (it rejoins the cluster)."""
        if member.alive():
            return
        if member.log:
            member.log.close()
        member.log = open(os.path.join(self.dir, member.name + ".log"), "ab")
        member.proc = subprocess.Popen(member.args, stdout=member.log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)

    def member_log(self, member):
        try:
            with open(os.path.join(self.dir, member.name + ".log"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    # ---- addresses ----

    def url(self, members=None):
        members = self.members if members is None else members
        return ("etcds://" if self.tls else "etcd://") + ",".join(m.endpoint for m in members)

    def endpoints(self, members=None):
        members = self.members if members is None else members
        scheme = "https" if self.tls else "http"
        return ",".join("%s://%s" % (scheme, m.endpoint) for m in members)

    # ---- talking to it ----

    def _healthy(self, member):
        if not member.alive():
            return False
        try:
            status = self.api(member, "/v3/maintenance/status", {}, auth=False)
            return bool(status.get("leader"))
        except Exception:
            return False

    def api(self, member, path, body, auth=True, timeout=3):
        """One JSON call to a member's v3 gateway."""
        headers = {"Content-Type": "application/json"}
        if auth and self.auth_password:
            token = self._post(member, "/v3/auth/authenticate",
                               {"name": "root", "password": self.auth_password}, headers, timeout)
            headers["Authorization"] = token["token"]
        return self._post(member, path, body, headers, timeout)

    def _post(self, member, path, body, headers, timeout):
        scheme = "https" if self.tls else "http"
        req = urllib.request.Request("%s://%s%s" % (scheme, member.endpoint, path),
                                     data=json.dumps(body).encode(), headers=headers, method="POST")
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=self.certs["ca.crt"])
            context.load_cert_chain(self.certs["client.crt"], self.certs["client.key"])
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return json.loads(resp.read().decode())

    def leader(self):
        """The member that is leader now, as the live members see it (None during an election)."""
        ids = {}
        leader_id = None
        for m in self.members:
            if not m.alive():
                continue
            try:
                status = self.api(m, "/v3/maintenance/status", {}, auth=False)
            except Exception:
                continue
            ids[status["header"]["member_id"]] = m
            leader_id = status.get("leader") or leader_id
        return ids.get(leader_id)

    def messages_received(self, member=None):
        """etcd's count of request messages received by a member (gRPC or through the JSON
        gateway: every call and every stream message), from its metrics endpoint."""
        member = member or self.members[0]
        scheme = "https" if self.tls else "http"
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=self.certs["ca.crt"])
            context.load_cert_chain(self.certs["client.crt"], self.certs["client.key"])
        with urllib.request.urlopen("%s://%s/metrics" % (scheme, member.endpoint), timeout=5,
                                    context=context) as resp:
            text = resp.read().decode()
        return sum(float(line.rsplit(None, 1)[1]) for line in text.splitlines()
                   if line.startswith("grpc_server_msg_received_total{"))

    def keys(self, prefix):
        """{key: value} of every key under prefix, read through a live member."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = {"key": base64.b64encode(prefix.encode()).decode(),
                "range_end": base64.b64encode(end.encode()).decode()}
        for m in self.members:
            if m.alive():
                answer = self.api(m, "/v3/kv/range", body)
                return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
                        for kv in answer.get("kvs", [])}
        raise RuntimeError("no live etcd member")

    def etcdctl(self, *args, auth=True, timeout=20):
        cmd = [ETCDCTL, "--endpoints=" + self.endpoints(
            [m for m in self.members if m.alive()]), "--dial-timeout=3s"]
        if self.tls:
            cmd += ["--cacert=" + self.certs["ca.crt"], "--cert=" + self.certs["client.crt"],
                    "--key=" + self.certs["client.key"]]
        if auth and self.auth_password:
            cmd += ["--user=root:" + self.auth_password]
        env = dict(os.environ, ETCDCTL_API="3")
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, env=env)
        if p.returncode != 0:
            raise RuntimeError("etcdctl %s failed: %s" % (" ".join(args), p.stderr))
        return p.stdout

    # ---- TLS material ----

    def _make_certs(self):
        d = os.path.join(self.dir, "pki")
        os.makedirs(d)
        path = lambda n: os.path.join(d, n)

        def ssl(*args):
            subprocess.run([OPENSSL] + list(args), check=True, capture_output=True, timeout=60)

        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lockunit test CA",
            "-keyout", path("ca.key"), "-out", path("ca.crt"))
        for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth"),
                          ("client", "extendedKeyUsage=clientAuth")):
            with open(path(name + ".ext"), "w") as f:
                f.write(ext + "\n")
            ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=lockunit-" + name,
                "-keyout", path(name + ".key"), "-out", path(name + ".csr"))
            ssl("x509", "-req", "-in", path(name + ".csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
                "-CAcreateserial", "-days", "2", "-extfile", path(name + ".ext"), "-out", path(name + ".crt"))
        # (etcd's gateway dials its own gRPC port with the server certificate: it needs
        # clientAuth too.)
        # A second CA that signed nothing: a client that trusts only it must refuse the server.
        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other CA",
            "-keyout", path("other-ca.key"), "-out", path("other-ca.crt"))
        for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key", "other-ca.crt"):
            self.certs[n] = path(n)
