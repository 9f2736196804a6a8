# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway PostgreSQL 15 cluster for lockunit's tests.

initdb into a temp dir as the unprivileged user `nobody` (PostgreSQL refuses to run as root;
the tests run as root, so every server command goes through setpriv), start `postgres` on a
free loopback port with its Unix socket in the same temp dir, stop it by PID. Nothing is
persisted: fsync is off and the directory is removed at the end.

TCP connections need a password (scram-sha-256) so that the password options can be tested;
the Unix socket trusts the superuser, for the tests' own admin statements through psql."""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("LOCKUNIT_PG_BIN", "/usr/lib/postgresql/15/bin")
INITDB = os.path.join(PG_BIN, "initdb")
POSTGRES = os.path.join(PG_BIN, "postgres")
PSQL = "psql"

SUPERUSER = "lockadmin"
SUPERUSER_PASSWORD = "s3cret-admin-pw"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, user="nobody", max_connections=100):
        self.user = user
        self.max_connections = max_connections
        pw = pwd.getpwnam(user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.dir = tempfile.mkdtemp(prefix="lockunit-pg-")
        os.chown(self.dir, self.uid, self.gid)
        os.chmod(self.dir, 0o700)
        self.data = os.path.join(self.dir, "data")
        self.sockdir = self.dir
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "postgres.log")
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(SUPERUSER_PASSWORD + "\n")
        os.chown(pwfile, self.uid, self.gid)
        self._as_user([INITDB, "-D", self.data, "-U", SUPERUSER, "--pwfile=" + pwfile,
                       "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
                       "-E", "UTF8", "--locale=C"], timeout=120)
        os.unlink(pwfile)

    def _as_user(self, argv, timeout=60, **kw):
        cmd = ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.gid, "--clear-groups", "--"] + argv
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir, **kw)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (argv[0], p.returncode, p.stdout, p.stderr))
        return p

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        os.chown(self.log_path, self.uid, self.gid)
        cmd = ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.gid, "--clear-groups", "--",
               POSTGRES, "-D", self.data, "-p", str(self.port), "-k", self.sockdir,
               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
               "-c", "full_page_writes=off", "-c", "max_connections=%d" % self.max_connections,
               "-c", "shared_buffers=16MB", "-c", "log_min_messages=warning"]
        # setpriv execs postgres: the PID is the postmaster's.
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited with %s: %s" % (self.proc.returncode, self.log()))
            p = subprocess.run(self.psql_argv("SELECT 1"), capture_output=True, text=True, timeout=10)
            if p.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not come up: " + self.log())

    def stop(self, sig=signal.SIGINT, timeout=30):
        """Stops the postmaster by its PID (SIGINT = fast shutdown; SIGQUIT if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def url(self, db="postgres", user=SUPERUSER, query=""):
        return "postgres://%s@127.0.0.1:%d/%s%s" % (user, self.port, db, query)

    def psql_argv(self, sql, db="postgres"):
        return [PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.sockdir,
                "-p", str(self.port), "-U", SUPERUSER, "-d", db, "-c", sql]

    def sql(self, sql, db="postgres"):
        """Runs SQL as the superuser over the Unix socket; returns stdout stripped."""
        p = subprocess.run(self.psql_argv(sql, db), capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("psql %r failed: %s" % (sql, p.stderr))
        return p.stdout.strip()
