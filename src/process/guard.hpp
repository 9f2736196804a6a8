// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "backends/backend.hpp"
#include "process/payload.hpp"
#include "util/clock.hpp"
#include "util/fd.hpp"
#include "util/result.hpp"

namespace lockunit {

// What a payload runner asks of the lock guard: start the payload, signal and stop its tree,
// learn how it ended. Guard is the one implementation; the scope runner's unit tests
// (tests/unit/test_scope_runner.cpp) put a fake in its place.
class PayloadGuard {
public:
    virtual ~PayloadGuard() = default;
    virtual pid_t pid() const = 0;
    virtual Result<pid_t> spawn(const LaunchSpec& spec, Duration slack, Interrupt& interrupt,
                                TimePoint deadline) = 0;
    virtual void signal(int sig, bool toAll) = 0;
    virtual void stop(bool sendSignal) = 0;
    virtual void reap() = 0;
    virtual std::optional<int> mainExit() const = 0;
    virtual bool treeLeft() const = 0;
};

// The lock guard (docs/design.md, "The lock guard"): a small process that lockunit forks at
// start and that keeps the promise when lockunit's main process cannot, because it was
// SIGKILLed, crashed, was OOM-killed or is stalled.
//
//   lockunit (main: backend, renewals, sd_notify, D-Bus, signals)
//     │  a socketpair (SOCK_SEQPACKET): commands down, the payload's PID, its exit and
//     │  "tree empty" up; a shared page: the stop time main last confirmed (CLOCK_BOOTTIME)
//     └─ guard: child subreaper; every signal blocked; no allocation and no backend protocol
//        │      in its loop; holds duplicates of the backend's heldFds() while a lock is held
//        └─ payload (started by the guard, so every process of its tree, daemons included,
//                    stays a descendant of the guard; in scope mode the guard moves into the
//                    scope first, so the payload is born there)
//
// The guard acts on its own in two cases only:
// - main is gone (EOF on the socket): it stops the payload's whole tree (the stop signal to
//   every descendant, SIGKILL after stop_timeout, reap), then releases: if the backend gave a
//   handoff(), it runs lockunit's own binary in release mode with the handoff on fd 3 and the
//   held fds still open; otherwise it exits, and closing the held fds ends the lock.
// - main's published stop time has passed by more than a slack (main stalled): it stops the
//   tree the same way and tells main, which then exits 79 (lost). The lock stays with main.
// If the guard dies, main sees EOF on the socket: it stops the payload as on a lost lock (the
// payload's processes are then reparented to main, a subreaper too) and exits 79.
class Guard final : public PayloadGuard {
public:
    // Forks the guard. `argv` and `envp` are lockunit's own, for the release mode; call it
    // after the signals are blocked and before anything else is forked.
    static Result<std::unique_ptr<Guard>> start(char** argv, char** envp);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

    // The socket to poll, and what to do when it is readable.
    int fd() const { return sock_.get(); }
    void process();

    // The lock is ours: keep these fds open until the tree is gone, and release with this
    // handoff if main dies (see LockBackend::heldFds(), handoff()).
    void hold(const std::vector<int>& fds, const std::string& handoff);
    // The lease's stop time as main last confirmed it (TimePoint::max(): none).
    void publishStopAt(TimePoint stopAt);

    // Starts the payload (in scope mode, once the guard is in the scope). `slack`: how long
    // after the published stop time the guard steps in for a stalled main.
    Result<pid_t> spawn(const LaunchSpec& spec, Duration slack, Interrupt& interrupt,
                        TimePoint deadline) override;
    // Passes a signal to the payload's main process, or to every process of its tree.
    void signal(int sig, bool toAll) override;
    // Stops the whole tree: the stop signal now (unless `sendSignal` is false, when systemd
    // sends it), SIGKILL once the stop timeout has passed.
    void stop(bool sendSignal) override;

    pid_t pid() const override { return pid_; }
    pid_t payload() const { return payload_; }
    std::optional<int> mainExit() const override;
    // True while any process of the payload's tree is left.
    bool treeLeft() const override;
    bool alive() const { return alive_; }
    // True if the guard died on its own (not after finish()).
    bool lost() const { return lost_; }
    // True once the guard has stopped the tree on its own (main missed its stop time).
    bool tookOver() const { return tookOver_; }
    // On SIGCHLD: reaps the guard if it died, and the payload's processes reparented to main.
    void reap() override;
    // While the guard is dead: main's own SIGKILL escalation for what is left.
    std::optional<TimePoint> nextTimeout() const { return alive_ ? std::nullopt : killAt_; }
    void onTimeout(TimePoint now);
    // The payload's tree is gone, or main is done: the guard exits (its held fds close; the
    // lock stays with main's own, which the guard's dup never unlocks).
    void finish();

private:
    Guard(pid_t pid, int sock, void* page) : pid_(pid), sock_(sock), page_(page) {}
    bool send(int type, int a = 0, int b = 0, long long ns = 0, long long ns2 = 0,
              const std::vector<int>& fds = {});
    void lostGuard();
    void signalLeftovers(int sig);

    pid_t pid_;
    UniqueFd sock_;
    void* page_;
    bool alive_ = true;
    bool lost_ = false;
    bool tookOver_ = false;
    bool empty_ = false;
    // finish() came after the guard reported the tree empty: the tree stays empty (nothing but
    // the tree makes processes of the tree), so the guard's own exit need not be waited for.
    bool finishedEmpty_ = false;
    bool spawned_ = false;
    pid_t payload_ = -1;
    std::optional<int> started_; // the guard's answer to spawn(): a pid, or -errno
    std::optional<int> mainExit_;
    int stopSignal_ = 15;
    Duration stopTimeout_{};
    bool stopping_ = false;
    std::optional<TimePoint> killAt_;
    ChildReaper reaper_; // main's own children: the guard, then what the guard left behind
};

// Release mode: run by the guard after main died (LOCKUNIT_RELEASE_FD names the fd that holds
// the handoff). Returns the handoff read from that fd, or nullopt outside release mode.
std::optional<std::string> releaseHandoff();

} // namespace lockunit
