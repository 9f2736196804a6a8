// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <optional>
#include <poll.h>
#include <string>
#include <sys/types.h>
#include <vector>

#include "backends/backend.hpp"
#include "util/clock.hpp"
#include "util/duration.hpp"
#include "util/result.hpp"

namespace lockunit {

// What to start, prepared before the lock is taken (nothing is allocated after fork).
struct LaunchSpec {
    std::string path;              // resolved executable
    std::vector<std::string> argv; // argv[0] as the operator wrote it
    std::vector<std::string> env;  // "KEY=VALUE"
    int stopSignal = 15;
    Duration stopTimeout = std::chrono::seconds(5);
    std::string description; // for the scope's Description=
    // How long after the lease's stop time the lock guard stops the payload itself, when
    // lockunit's main process has not (it is stalled): half the safety margin.
    Duration guardSlack = std::chrono::milliseconds(250);
};

// Runs the payload and stops everything it started: in a transient systemd scope, or in a
// process group when there is no systemd. The supervisor drives it from its event loop.
class PayloadRunner {
public:
    virtual ~PayloadRunner() = default;

    // Called once before the lock is taken: a scope runner stops a stale scope of an earlier
    // run here. Waits only as long as `interrupt` lets it.
    virtual Result<void> prepare(Interrupt& interrupt) {
        (void)interrupt;
        return {};
    }
    // Starts the payload; returns once it has been released to exec(). The payload is never
    // released after `releaseBefore` (the lease's stop time): then, or when `interrupt` fires
    // (Errc::Interrupted), the child is dropped before it ran anything.
    virtual Result<pid_t> start(const LaunchSpec& spec, Interrupt& interrupt,
                                TimePoint releaseBefore) = 0;
    // Passes a signal on, to the main process or to every process of the payload.
    virtual void forward(int sig, bool toAll) = 0;
    // Begins stopping every process of the payload: the stop signal now, SIGKILL once the
    // stop timeout has passed. finished() says when all are gone.
    virtual void stop() = 0;
    // Called on SIGCHLD: reaps every child that exited.
    virtual void reap() = 0;
    // The main process's exit, as lockunit's exit code (128+N if killed by signal N).
    virtual std::optional<int> mainExit() const = 0;
    // True once the main process has exited and nothing of the payload is left.
    virtual bool finished() const = 0;
    // An fd to poll (the D-Bus connection), -1 if none; the events it waits for (sdbus-c++'s
    // poll data: POLLOUT too while output is queued); and what to do when it is ready.
    virtual int fd() const { return -1; }
    virtual short events() const { return POLLIN; }
    virtual void process() {}
    // The runner's own next timer (SIGKILL escalation), and what to do when it fires.
    virtual std::optional<TimePoint> nextTimeout() const = 0;
    virtual void onTimeout(TimePoint now) = 0;
    // True if the service manager is stopping (or restarting) lockunit's own unit: then a
    // payload that just ended was stopped as part of that (BindsTo= stops the scope in the
    // same transaction, so the payload can die before lockunit sees its own SIGTERM).
    virtual bool ownUnitStopping() { return false; }
    // "process group 1234" / "lockunit-reports.scope", for STATUS.
    virtual std::string where() const = 0;
};

// Starts the payload's main process, for the lock guard, so it allocates nothing: a
// vfork-style clone() on `stack` that exec()s at once, about twice as fast as fork() (no page
// tables to copy). The child gets a process group of its own, SIGKILL when its parent dies, and
// no signal blocked. Returns the pid, or -1 with errno.
pid_t startPayloadChild(const char* path, char** argv, char** envp, char* stack,
                        size_t stackSize);

// Reaps children (lockunit is a child subreaper, so orphaned descendants of the payload come
// back to it) and remembers how the main process ended.
//
// lockunit may also have children that are not the payload's: a shell that runs
// `lockunit … 2> >(logger)` forks the logger before it execs lockunit. Those are recorded just
// before the payload is forked (after, an orphan of a quick payload could pass for one) and are
// never signalled or waited for.
class ChildReaper {
public:
    // Records every child we have now as foreign: call it just before forking the payload.
    void recordForeign();
    // Records the payload's main process.
    void setMain(pid_t pid);
    pid_t main() const { return main_; }
    void reap();
    std::optional<int> mainExit() const { return mainExit_; }
    // True while any child of the payload (orphans adopted from it included) is left.
    bool childrenLeft() const;
    // Sends sig to every direct child of lockunit that belongs to the payload.
    void signalChildren(int sig) const;

private:
    struct Foreign {
        pid_t pid;
        unsigned long long startTime; // tells a recycled pid apart
    };
    std::vector<pid_t> payloadChildren() const;

    pid_t main_ = -1;
    std::optional<int> mainExit_;
    std::vector<Foreign> foreign_;
};

} // namespace lockunit
