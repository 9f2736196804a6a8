// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "systemd/payload.hpp"
#include "systemd/scope_spec.hpp"

namespace lockunit {

// The unit lockunit itself runs in: sd_pid_get_unit(), or sd_pid_get_user_unit() for the user
// manager. Errc::Unavailable when there is none (not started by systemd), and without
// userManager also when lockunit runs under a user's manager (the system unit is then that
// manager's user@UID.service, not lockunit's own).
Result<std::string> ownUnit(bool userManager);

// The payload in its own transient scope, created over D-Bus (DESIGN.md "systemd facts"):
// the child is forked blocked on a pipe, moved into a new scope by StartTransientUnit with
// PIDs=[child], and released to exec() only once that start job has finished with "done".
// The scope is bound to lockunit's own unit (BindsTo=), so it goes down with lockunit however
// lockunit dies. Stopping is StopUnit(scope) and waiting for that job: KillSignal= to every
// process in the cgroup, SIGKILL after TimeoutStopUSec=.
//
// D-Bus runs in lockunit's own poll loop: fd() and nextTimeout() feed the supervisor's poll,
// process() and onTimeout() dispatch. sdbus-c++ stays inside scope.cpp; its exceptions stop
// at this class's edge.
class ScopeRunner final : public PayloadRunner {
public:
    struct Options {
        bool userBus = false; // the user's manager (--user) rather than the system's
        std::string ownUnit;  // BindsTo=, and where the scope's name comes from
        std::string slice, memoryMax, cpuQuota, tasksMax;
    };
    // Connects to the bus and subscribes to JobRemoved; nothing is started yet.
    static Result<std::unique_ptr<ScopeRunner>> connect(Options options);
    ~ScopeRunner() override;

    // Stops a stale scope of the same name left by an earlier run (a crash, a restart).
    Result<void> prepare(Interrupt& interrupt) override;
    Result<pid_t> start(const LaunchSpec& spec, Interrupt& interrupt,
                        TimePoint releaseBefore) override;
    void forward(int sig, bool toAll) override;
    void stop() override;
    void reap() override { reaper_.reap(); }
    std::optional<int> mainExit() const override { return reaper_.mainExit(); }
    bool finished() const override;
    int fd() const override;
    void process() override;
    std::optional<TimePoint> nextTimeout() const override;
    void onTimeout(TimePoint now) override;
    std::string where() const override { return scope_; }
    bool ownUnitStopping() override;

    const std::string& scopeName() const { return scope_; }
    // True if prepare() found and stopped a stale scope.
    bool stoppedStale() const { return stoppedStale_; }

private:
    struct Bus;
    struct Call;
    explicit ScopeRunner(Options options);

    // Dispatches everything the bus has for us; false once the connection is broken.
    bool dispatch();
    // Processes the bus until done() holds, the deadline passes or the interrupt fires.
    Result<void> waitUntil(const std::function<bool()>& done, TimePoint deadline,
                           Interrupt& interrupt, const std::string& what);
    // StopUnit(scope, "replace"); the reply and the job's end arrive through dispatch().
    void requestStop();
    void onStopReply(const Call& call);
    void checkStopJob();
    // Without the bus: signal lockunit's own children (the payload's processes: lockunit is
    // their subreaper) as the process-group runner does.
    void fallBackToSignals(const std::string& why);

    Options options_;
    std::string scope_;
    std::unique_ptr<Bus> bus_;
    bool broken_ = false;
    // JobRemoved results of this scope's jobs, by job object path.
    std::map<std::string, std::string> jobs_;

    ChildReaper reaper_;
    int stopSignal_ = 15;
    Duration stopTimeout_{};
    bool started_ = false;
    bool stoppedStale_ = false;

    // Stopping.
    bool stopping_ = false;
    bool scopeGone_ = false;
    int stopAttempts_ = 0;
    std::shared_ptr<Call> stopCall_;
    std::string stopJob_;
    std::optional<TimePoint> giveUpOnBusAt_; // safety net if systemd never answers
    bool signalling_ = false;                // fallen back to signals
    std::optional<TimePoint> killAt_;
};

} // namespace lockunit
