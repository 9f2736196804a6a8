# SPDX-License-Identifier: LGPL-2.1-or-later
"""Three nodes for the fault suite: systemd 252 containers booted by the e2e harness
(tests/e2e/systemd_container.py), each running the shipped units/lockunit@.service as
lockunit@faults.service, with the recording test payload writing to a host directory."""

import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
from systemd_container import BUILD_ROOT, LOCKUNIT, PAYLOAD, Container  # noqa: E402
from checker import RecordReader, record_files  # noqa: E402

UNIT = "lockunit@faults.service"
LIVE_NS = 300_000_000  # a run whose last record is older than this is not running (beats: 20 ms)


def shipped_unit():
    with open(os.path.join(BUILD_ROOT, "units", "lockunit@.service")) as f:
        text = f.read()
    for prefix in ("/usr/local/bin/lockunit", "/usr/bin/lockunit"):
        text = text.replace(prefix, LOCKUNIT)
    return text


class Settings:
    def __init__(self, ttl=4.0, renew=1.0, stop_timeout=1.0, watchdog=1.0, restart_sec=1.0,
                 heartbeat_ms=20, verbose=False):
        self.ttl, self.renew, self.stop_timeout = ttl, renew, stop_timeout
        self.verbose = verbose  # lockunit -v (debug messages in the journal)
        self.watchdog, self.restart_sec, self.heartbeat_ms = watchdog, restart_sec, heartbeat_ms

    def dropin(self):
        # The shipped unit's WatchdogSec=10s and RestartSec=5s fit its default ttl of 15s; these
        # runs use a short ttl, so the watchdog must be short too: renew + WatchdogSec +
        # stop_timeout + margin < ttl bounds a paused lockunit inside its lease.
        return ("[Unit]\nStartLimitIntervalSec=0\n[Service]\nWatchdogSec=%s\nRestartSec=%s\n"
                "TimeoutStopSec=10s\n" % (("%gs" % self.watchdog) if self.watchdog else "0",
                                         "%gs" % self.restart_sec))


class Node:
    def __init__(self, index, binds):
        self.index = index
        self.name = "n%d" % index
        self.binds = binds
        self.c = None
        self.frozen = []

    def boot(self):
        self.c = Container(self.name, self.binds).boot()
        return self

    def poweroff(self):
        if self.c is not None:
            self.thaw()
            self.c.poweroff()
            self.c.cleanup_logs()
            self.c = None

    # -- the unit -----------------------------------------------------------------------------
    def install(self, settings, backend, record_dir):
        log = "/run/out/%s/%s.log" % (record_dir, self.name)
        # The payload lingers on SIGTERM (half the stop timeout), so that every stop, and
        # every takeover after a dead lockunit, has a tree that is still running.
        command = [PAYLOAD, "--log", log, "--node", self.name,
                   "--heartbeat", str(settings.heartbeat_ms),
                   "--linger", str(max(backend.linger_ms, int(settings.stop_timeout * 500)))]
        conf = ('name = "faults"\nbackend = "%s"\nttl = "%gs"\nrenew = "%gs"\n'
                'stop_timeout = "%gs"\ncommand = [%s]\n%s' % (
                    backend.url(self.index), settings.ttl, settings.renew, settings.stop_timeout,
                    ", ".join('"%s"' % a for a in command), backend.tables(self.index)))
        if settings.verbose:
            conf = "verbose = true\n" + conf
        self.c.write("/etc/lockunit/faults.toml", conf)
        self.c.write("/etc/systemd/system/lockunit@.service", shipped_unit())
        self.c.write("/etc/systemd/system/lockunit@faults.service.d/faults.conf",
                     settings.dropin())
        self.c.run(["systemctl", "daemon-reload"])

    def start(self):
        self.c.systemctl("reset-failed", UNIT, check=False)
        self.c.systemctl("start", "--no-block", UNIT)

    def stop(self):
        self.c.systemctl("stop", UNIT, check=False, timeout=60)

    def state(self):
        return self.c.prop(UNIT, "ActiveState")

    def main_pid(self):
        try:
            return int(self.c.prop(UNIT, "MainPID"))
        except ValueError:
            return 0

    def ensure_running(self):
        """Starts the unit again if a fault left it stopped or failed (not restarting)."""
        st = self.c.show(UNIT, "ActiveState", "SubState")
        if st.get("ActiveState") in ("inactive", "failed"):
            self.start()
            return True
        return False

    # -- the whole node -------------------------------------------------------------------------
    def pids(self):
        """Host PIDs of every process in the container (its PID namespace)."""
        want = os.readlink("/proc/%d/ns/pid" % self.c.pid)
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % d) == want:
                    out.append(int(d))
            except OSError:
                pass
        return out

    def freeze(self):
        """SIGSTOP to every process of the node (twice: catches a fork in between)."""
        for _ in range(2):
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGSTOP)
                    if pid not in self.frozen:
                        self.frozen.append(pid)
                except ProcessLookupError:
                    pass

    def thaw(self):
        for pid in self.frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    def reboot(self, timeout=30):
        """`systemctl reboot` inside; the harness cannot restart a container in place, so the
        node boots again as a fresh container (same binds, a new volatile root)."""
        old = self.c
        old.run(["systemctl", "reboot"], check=False, timeout=30)
        deadline = time.monotonic() + timeout
        while old.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        rebooted = old.proc.poll() is not None
        old.poweroff()
        old.cleanup_logs()
        self.c = Container(self.name, self.binds).boot()
        return rebooted


class Records:
    """The payload records of one backend's run, read incrementally."""

    def __init__(self, host_dir):
        self.dir = host_dir
        self.reader = RecordReader()

    def runs(self):
        self.reader.update(record_files([self.dir]))
        return self.reader.sorted_runs()

    def live(self, now_ns=None):
        now_ns = now_ns or time.time_ns()
        return [r for r in self.runs() if not r.ended and now_ns - r.last < LIVE_NS]
