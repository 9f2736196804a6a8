# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real systemd 252 for end-to-end tests: boots the host's own /usr in a systemd-nspawn
container (docs/architecture.md, "Tests"), with the build directory bound read-only at
/opt/lockunit, and runs commands inside with nsenter. Every container is powered off by its
own PID in teardown; leftovers are killed. Needs root and systemd-nspawn (systemd-container)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from lockunit_test import IN_CI  # noqa: E402

BUILD_ROOT = os.environ.get("LOCKUNIT_BUILD_ROOT", "build")
LOCKUNIT_BIN = os.environ.get("LOCKUNIT_BIN", os.path.join(BUILD_ROOT, "src", "lockunit"))
PAYLOAD_BIN = os.environ.get("LOCKUNIT_TEST_PAYLOAD",
                             os.path.join(BUILD_ROOT, "tests", "lockunit-test-payload"))
INSIDE_ROOT = "/opt/lockunit"

# Services the host has installed that would otherwise start inside every container (and
# contend for the host's ports): masked on the container's kernel command line.
MASKED = ["redis-server.service", "redis-sentinel.service", "etcd.service",
          "postgresql.service", "mysql.service", "mariadb.service", "ssh.service",
          "cron.service", "console-getty.service", "systemd-networkd.service",
          "systemd-resolved.service"]

CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}


def cgroup_roots():
    """The hierarchies a container's systemd manages: the v2 root, or on a hybrid host the
    name=systemd hierarchy and the unified one beside it."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return ["/sys/fs/cgroup"]
    return [p for p in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified") if os.path.isdir(p)]


def inside(path):
    """Where a file of the build directory appears inside the container."""
    return os.path.join(INSIDE_ROOT, os.path.relpath(os.path.realpath(path),
                                                     os.path.realpath(BUILD_ROOT)))


LOCKUNIT = inside(LOCKUNIT_BIN)
PAYLOAD = inside(PAYLOAD_BIN)


def require_nspawn():
    """Skip (77) without root or systemd-nspawn; under CI=true that is a failure."""
    why = None
    if os.geteuid() != 0:
        why = "not root (systemd-nspawn needs it)"
    elif shutil.which("systemd-nspawn") is None or shutil.which("nsenter") is None:
        why = "systemd-nspawn/nsenter missing (apt-get install systemd-container)"
    if why:
        if IN_CI:
            print("FAIL: " + why, file=sys.stderr)
            sys.exit(1)
        print("SKIP: " + why, file=sys.stderr)
        sys.exit(77)


class Container:
    """One booted container ("node"). binds: [(host_dir, inside_dir)], read-write. overlays:
    directories of the host's (e.g. "/usr") that the container may write to: an overlay whose
    upper layer is a directory of its own, deleted with its logs; the host's stays as it is."""

    counter = 0

    def __init__(self, label, binds=(), overlays=()):
        Container.counter += 1
        self.name = "lu-%s-%d-%d" % (label, os.getpid(), Container.counter)
        self.binds = list(binds)
        self.overlays = list(overlays)
        self.logdir = tempfile.mkdtemp(prefix="lockunit-e2e-%s-" % label)
        self.console_path = os.path.join(self.logdir, "console.log")
        self.proc = None
        self.pid = None  # the container's systemd, as the host sees it
        # Each container gets a cgroup of its own. nspawn --keep-unit uses the cgroup it runs
        # in as the container's root; were that the same for every container, two nodes'
        # units of one name (lockunit@faults.service, its scope) would share one cgroup, and
        # one node's scope ending would remove the other's.
        self.cgroups = [os.path.join(root, "lockunit-e2e", self.name) for root in cgroup_roots()]

    # -- lifecycle ---------------------------------------------------------------------
    def boot(self, timeout=60):
        args = ["systemd-nspawn", "--quiet", "--directory=/", "--volatile=yes", "--register=no",
                "--keep-unit", "--machine=" + self.name, "--console=passive",
                "--bind-ro=%s:%s" % (os.path.realpath(BUILD_ROOT), INSIDE_ROOT)]
        for host, dest in self.binds:
            args.append("--bind=%s:%s" % (host, dest))
        for path in self.overlays:
            upper = os.path.join(self.logdir, "overlay" + path.replace("/", "-"))
            os.makedirs(upper)
            args.append("--overlay=%s:%s:%s" % (path, upper, path))
        args += ["--boot", "--", "systemd.firstboot=off"]
        args += ["systemd.mask=" + u for u in MASKED]
        for cg in self.cgroups:
            os.makedirs(cg, exist_ok=True)
        cgroups = self.cgroups

        def enter_own_cgroup():
            for cg in cgroups:
                with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))

        console = open(self.console_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=console,
                                     stderr=subprocess.STDOUT, env=CLEAN_ENV,
                                     preexec_fn=enter_own_cgroup)
        console.close()
        deadline = time.monotonic() + timeout
        while self.pid is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("container %s did not start:\n%s" % (self.name, self.console()))
            self.pid = self._find_init()
            if self.pid is None:
                time.sleep(0.05)
        while True:
            r = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                         timeout=max(1, deadline - time.monotonic()))
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("container %s is %r:\n%s" % (self.name, state, self.console()))
            time.sleep(0.1)
        return self

    def _find_init(self):
        # nspawn's child is the container's PID 1 (systemd); with --volatile there may be an
        # intermediate process, so look one level deeper too.
        todo = [self.proc.pid]
        for _ in range(3):
            nxt = []
            for parent in todo:
                for child in _children(parent):
                    if _comm(child) == "systemd":
                        return child
                    nxt.append(child)
            todo = nxt
        return None

    def poweroff(self, timeout=20):
        if self.proc is None:
            return
        if self.proc.poll() is None and self.pid:
            try:
                os.kill(self.pid, signal.SIGRTMIN + 4)  # systemd: poweroff
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            for pid in (self.pid, self.proc.pid):
                try:
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
        self.proc = None
        for cg in self.cgroups:  # empty now: remove what the container's systemd left, leaves first
            for d, _, _ in sorted(os.walk(cg), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(d)
                except OSError:
                    pass

    def cleanup_logs(self):
        shutil.rmtree(self.logdir, ignore_errors=True)

    # -- inside --------------------------------------------------------------------------
    def cmd(self, args):
        return ["nsenter", "-t", str(self.pid), "-a"] + list(args)

    def run(self, args, check=True, timeout=60, input=None):
        r = subprocess.run(self.cmd(args), capture_output=True, text=True, timeout=timeout,
                           env=CLEAN_ENV, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError("%s in %s exited %d:\n%s%s" % (
                " ".join(args), self.name, r.returncode, r.stdout, r.stderr))
        return r

    def spawn(self, args, log_name):
        """Starts a command inside, in the background (outside any unit)."""
        out = open(os.path.join(self.logdir, log_name), "wb")
        p = subprocess.Popen(self.cmd(args), stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, env=CLEAN_ENV)
        out.close()
        return p

    def path(self, inside_path):
        """The host's view of a path inside the container."""
        return "/proc/%d/root%s" % (self.pid, inside_path)

    def write(self, inside_path, text):
        host = self.path(inside_path)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "w") as f:
            f.write(text)

    def install_unit(self, name, text):
        self.write("/etc/systemd/system/" + name, text)
        self.run(["systemctl", "daemon-reload"])

    def show(self, unit, *props):
        r = self.run(["systemctl", "show", unit] + ["-p" + p for p in props])
        out = {}
        for line in r.stdout.splitlines():
            k, _, v = line.partition("=")
            out[k] = v
        return out

    def prop(self, unit, name):
        return self.show(unit, name).get(name, "")

    def systemctl(self, *args, check=True, timeout=60):
        return self.run(["systemctl"] + list(args), check=check, timeout=timeout)

    def journal(self, unit=None, lines=200):
        args = ["journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines)]
        if unit:
            args += ["-u", unit]
        return self.run(args, check=False).stdout

    def journal_json(self, *matches):
        """journalctl's entries matching FIELD=value arguments, as dicts."""
        import json
        r = self.run(["journalctl", "--no-pager", "-o", "json"] + list(matches), check=False)
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    def cgroup_of(self, pid):
        """The unified-hierarchy cgroup of a process inside, or None if it is gone."""
        r = self.run(["cat", "/proc/%d/cgroup" % pid], check=False)
        for line in r.stdout.splitlines():
            if line.startswith("0::"):
                return line[3:]
        return None

    def alive(self, pid):
        r = self.run(["cat", "/proc/%d/stat" % pid], check=False)
        if r.returncode != 0:
            return False
        return r.stdout.split(")")[-1].split()[0] != "Z"

    def console(self):
        try:
            with open(self.console_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""


def _children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None
