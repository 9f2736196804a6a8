# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared pieces of lockunit's benchmarks (Python 3 stdlib only).

Every benchmark is a program in bench/ that takes the build directory as its one argument and
prints its figures on stdout, one per line, in the form that bench/run-all collects:

    BENCH <backend> <metric> <value> <unit>
    NOTE <backend> <free text>

Anything else it prints is kept in the log. Exit 0 when done, 77 when it cannot run here (a
server is missing: say why on stderr), anything else on failure. See bench/README.md."""

import os
import sys
import tempfile
import time

QUICK = os.environ.get("BENCH_QUICK") == "1"


def build_paths(argv):
    """(lockunit, test payload) of the build directory given as argv[1]."""
    if len(argv) != 2:
        print("usage: %s BUILD_DIR" % os.path.basename(argv[0]), file=sys.stderr)
        sys.exit(64)
    build = os.path.abspath(argv[1])
    lockunit = os.environ.get("LOCKUNIT_BIN", os.path.join(build, "src", "lockunit"))
    payload = os.environ.get("LOCKUNIT_TEST_PAYLOAD",
                             os.path.join(build, "tests", "lockunit-test-payload"))
    for p in (lockunit, payload):
        if not os.access(p, os.X_OK):
            print("%s: not built (run ninja -C %s first)" % (p, build), file=sys.stderr)
            sys.exit(66)
    return lockunit, payload


def report(backend, metric, value, unit):
    if isinstance(value, float):
        value = "%.4g" % value
    print("BENCH %s %s %s %s" % (backend, metric, value, unit), flush=True)


def note(backend, text):
    """A remark for docs/benchmarks.md, under the figures of `backend`."""
    print("NOTE %s %s" % (backend, text), flush=True)


def fs_type(path):
    """"tmpfs", "ext2/ext3" (stat's name for ext4 too), … of the filesystem holding path."""
    import subprocess
    p = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


def percentile(samples, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(samples)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def median(samples):
    s = sorted(samples)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def lock_dir(prefix):
    """A fresh lock directory on tmpfs (where /run/lock lives on a usual systemd machine), or
    in /tmp without one."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def read_records(log):
    """{node: {"start": ns, "end": ns, "pid": pid}} from the test payload's records."""
    out = {}
    try:
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 5:
                    continue
                what, node, _token, pid, ns = parts
                out.setdefault(node, {})["pid"] = int(pid)
                if what in ("start", "end") and what not in out[node]:
                    out[node][what] = int(ns)
    except FileNotFoundError:
        pass
    return out


def wait_for(predicate, timeout, interval=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    return predicate()


def clean_env():
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    return env


# ---- shared by the backend benchmarks (bench/<backend>_handover) ---------------------------

HELPERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                       "helpers")


def skip(why):
    """Exit 77: run-all shows the benchmark as skipped, with this reason."""
    print(why, file=sys.stderr)
    sys.exit(77)


def log(text):
    """A progress line for the log (stderr), not a figure."""
    print(text, file=sys.stderr, flush=True)


def payload_argv(payload, log_path, node, *extra):
    return [payload, "--log", log_path, "--node", node] + [str(e) for e in extra]


class Proc:
    """A lock tool (lockunit, etcdctl lock, …) started in the background in a session of its
    own, so that crash() can take the whole "node" down at once; its stderr is kept in a file
    (lockunit says "waiting for lock" there when it finds the lock busy)."""

    def __init__(self, argv, workdir, label, env=None):
        self.err_path = os.path.join(workdir, label + ".err")
        import subprocess
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         env=env or clean_env(), start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def waiting(self):
        return "waiting for lock" in self.stderr()

    def wait(self, timeout=60):
        return self.proc.wait(timeout=timeout)

    def crash(self):
        """SIGKILL to the tool's whole process group (a node that dies)."""
        import signal
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def kill_main(self):
        """SIGKILL to the tool's own process only: the tool dies, its node and its payload do
        not (what a crash, the OOM killer or `kill -9 PID` of lockunit does)."""
        import signal
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self):
        import signal
        import subprocess
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.crash()


class Tool:
    """How one lock tool is driven: start(name, label, payload argv) -> Proc, and
    waiting(name, proc) -> whether that process is queued behind the current holder."""

    def __init__(self, label, start, waiting=None):
        self.label = label
        self.start = start
        self.waiting = waiting or (lambda name, proc: proc.waiting())


def started(log_path, node):
    return "start" in read_records(log_path).get(node, {})


def uncontended_starts(tool, payload, workdir, runs, name="uncontended"):
    """ms from spawning the tool (lock free) to its payload's first record."""
    log_path = os.path.join(workdir, "%s-%s.log" % (tool.label, name))
    out = []
    for i in range(runs):
        node = "u%d" % i
        t0 = time.time_ns()
        p = tool.start(name, "%s-%s" % (tool.label, node), payload_argv(payload, log_path, node,
                                                                        "--hold", 0))
        if p.wait(60) != 0:
            raise SystemExit("%s failed uncontended: %s" % (tool.label, p.stderr()[-800:]))
        out.append((read_records(log_path)[node]["start"] - t0) / 1e6)
    return out


def chain_handovers(tool, payload, workdir, count, hold_ms, name="handover"):
    """Graceful handovers with exactly one waiter at a time: lock tool i+1 is started while
    payload i holds the lock (HOLD ms, then it exits). A sample is payload i+1's start minus
    payload i's end, kept only when tool i+1 was seen queued (tool.waiting) before it got the
    lock. Runs until `count` samples (at most 2*count links). Returns (samples ms, skipped)."""
    log_path = os.path.join(workdir, "%s-%s.log" % (tool.label, name))

    def start(i):
        node = "r%d" % i
        return tool.start(name, "%s-%s" % (tool.label, node),
                          payload_argv(payload, log_path, node, "--hold", hold_ms,
                                       "--heartbeat", 1000))

    procs = [start(0)]
    if not wait_for(lambda: started(log_path, "r0"), 30):
        raise SystemExit("%s: the first holder never ran: %s" % (tool.label, procs[0].stderr()))
    queued = {}
    i = 0
    while sum(queued.values()) < count and i < 2 * count:
        i += 1
        p = start(i)
        procs.append(p)
        node = "r%d" % i
        # Queued = seen waiting before its payload started (a waiter that came too late
        # would count its own start-up as handover time).
        deadline = time.monotonic() + 30
        queued[i] = False
        while not started(log_path, node) and time.monotonic() < deadline:
            if tool.waiting(name, p):
                queued[i] = True
                break
            time.sleep(0.003)
        if not wait_for(lambda: started(log_path, node), 30):
            raise SystemExit("%s: %s never got the lock: %s" % (tool.label, node, p.stderr()))
        for q in procs[:-2]:  # reap the finished ones as we go
            q.proc.poll()
    for p in procs:
        if p.wait(60) != 0:
            raise SystemExit("%s: a contender failed: %s" % (tool.label, p.stderr()[-800:]))
    records = read_records(log_path)
    samples = [(records["r%d" % j]["start"] - records["r%d" % (j - 1)]["end"]) / 1e6
               for j in sorted(queued) if queued[j]]
    if any(s < 0 for s in samples):
        raise SystemExit("%s: two payloads overlapped" % tool.label)
    return samples, len(queued) - len(samples)


def crash_failovers(tool, payload, workdir, count, name="failover", crash=lambda p: p.crash()):
    """The holder (tool and payload) is SIGKILLed while one waiter is queued; ms from the kill
    to the waiter's payload start. `crash` is how the holder dies (default: its whole process
    group, a node that dies; Proc.kill_main: the lock tool alone)."""
    log_path = os.path.join(workdir, "%s-%s.log" % (tool.label, name))
    out = []
    for i in range(count):
        holder = tool.start(name, "%s-h%d" % (tool.label, i),
                            payload_argv(payload, log_path, "h%d" % i, "--heartbeat", 1000))
        if not wait_for(lambda: started(log_path, "h%d" % i), 30):
            raise SystemExit("%s: holder never ran: %s" % (tool.label, holder.stderr()))
        waiter = tool.start(name, "%s-w%d" % (tool.label, i),
                            payload_argv(payload, log_path, "w%d" % i, "--hold", 0))
        if not wait_for(lambda: tool.waiting(name, waiter), 30):
            raise SystemExit("%s: waiter never queued: %s" % (tool.label, waiter.stderr()))
        time.sleep(0.3)  # let the waiter settle into its idle wait
        t0 = time.time_ns()
        crash(holder)
        if not wait_for(lambda: started(log_path, "w%d" % i), 120, interval=0.005):
            raise SystemExit("%s: the waiter never took over: %s" % (tool.label, waiter.stderr()))
        out.append((read_records(log_path)["w%d" % i]["start"] - t0) / 1e6)
        waiter.wait(60)
    return out


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def proc_cpu_ns(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def idle_waiters(tool, workdir, waiters, seconds, requests, name="idle", settle=12.0):
    """One holder (`sleep` as payload, the tool's default ttl) and `waiters` queued waiters.
    After `settle` s, over `seconds` s: requests() (the server's request counter) and each
    lockunit's CPU time. Returns {requests, elapsed, cpu_holder %, rss_peak_holder kB,
    rss_peak_waiter kB (largest), cpu_waiter % (median)}; stops everything."""
    procs = []
    try:
        holder = tool.start(name, "%s-idle-holder" % tool.label, ["sleep", "3600"])
        procs.append(holder)
        if not wait_for(lambda: _child_alive(holder.pid), 30):
            raise SystemExit("%s: the idle holder never ran: %s" % (tool.label, holder.stderr()))
        time.sleep(0.3)
        ws = []
        for i in range(waiters):
            ws.append(tool.start(name, "%s-idle-w%d" % (tool.label, i), ["true"]))
        procs += ws
        if not wait_for(lambda: all(w.waiting() for w in ws), 120, interval=0.2):
            late = [w for w in ws if not w.waiting()]
            raise SystemExit("%s: %d waiters never queued: %s" % (
                tool.label, len(late), late[0].stderr()[-500:]))
        time.sleep(settle)  # past start-up and every waiter's first re-check
        cpu0 = {p.pid: proc_cpu_ns(p.pid) for p in procs}
        r0 = requests()
        t0 = time.monotonic()
        time.sleep(seconds)
        r1 = requests()
        elapsed = time.monotonic() - t0
        for p in procs:
            if p.proc.poll() is not None:
                raise SystemExit("%s: a lockunit exited while idle: %s" % (tool.label, p.stderr()))
        cpu = {p.pid: (proc_cpu_ns(p.pid) - cpu0[p.pid]) / 1e9 / elapsed * 100 for p in procs}
        return {"rss_by_file": rss_by_file(holder.pid),"requests": r1 - r0, "elapsed": elapsed,
                "cpu_holder": cpu[holder.pid],
                "rss_peak_holder": proc_status(holder.pid, "VmHWM"),
                "rss_peak_waiter": max(proc_status(w.pid, "VmHWM") for w in ws),
                "cpu_waiter": median([cpu[w.pid] for w in ws])}
    finally:
        for p in procs:
            if p.proc.poll() is None:
                import signal
                p.proc.send_signal(signal.SIGTERM)
        for p in procs:
            p.stop()


def rss_by_file(pid, top=6):
    """A short text: the files (libraries) that account for most of a process's resident
    memory, from /proc/PID/smaps, e.g. "libcrypto.so.3 1480 kB, [heap] 900 kB, …"."""
    sizes = {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                name = os.path.basename(parts[5]) if len(parts) >= 6 else "[anonymous]"
            elif parts[0] == "Rss:" and name is not None:
                sizes[name] = sizes.get(name, 0) + int(parts[1])
    total = sum(sizes.values())
    biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:top]
    return "RSS %d kB, of which %s" % (total, ", ".join("%s %d kB" % kv for kv in biggest))


def _child_alive(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return bool(f.read().split())
    except OSError:
        return False


def report_latency(backend, prefix, samples):
    report(backend, prefix + "_p50", median(samples), "ms")
    report(backend, prefix + "_p99", percentile(samples, 99), "ms")
    report(backend, prefix + "_max", max(samples), "ms")
    report(backend, prefix + "_samples", len(samples), "count")


def lockunit_tool(lockunit, backend_args, workdir, extra=(), label="lockunit"):
    """lockunit on one backend: backend_args are e.g. ["--backend=redis://…"]."""
    def start(name, proc_label, argv):
        return Proc([lockunit] + list(backend_args) + ["--name=" + name, "--scope=no"] +
                    list(extra) + ["--"] + argv, workdir, proc_label)
    return Tool(label, start)


def library_load_rss(soname):
    """kB of resident memory that loading one shared library (with everything it needs) adds
    to a process that does nothing else with it: a fresh Python reads its VmRSS before and
    after ctypes.CDLL(soname). A floor for any program that links that library."""
    import subprocess
    code = ("import ctypes\n"
            "def rss():\n"
            "    for l in open('/proc/self/status'):\n"
            "        if l.startswith('VmRSS:'): return int(l.split()[1])\n"
            "a = rss(); ctypes.CDLL(%r); print(rss() - a)\n" % soname)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return int(p.stdout) if p.returncode == 0 else None
