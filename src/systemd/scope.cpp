// SPDX-License-Identifier: LGPL-2.1-or-later
// Scope mode's logic over systemd's manager (systemd/systemd_manager.hpp): the scope's start,
// its stop with the fall-backs to signals, and a stale scope's stop. Part of the module
// lockunit-scope.so (see systemd/scope.hpp), with sdbus_manager.cpp, which connects it.
#include "systemd/scope.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <poll.h>

#include "systemd/systemd_manager.hpp"
#include "util/log.hpp"
#include "util/module.hpp"

namespace lockunit {

namespace {

constexpr const char* kNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit";
constexpr const char* kUnitExists = "org.freedesktop.systemd1.UnitExists";

// From StartTransientUnit to the start job's end.
constexpr Duration kStartTimeout = std::chrono::seconds(15);
// A stale scope's stop: its own TimeoutStopUSec= (unknown to us) plus SIGKILL.
constexpr Duration kStaleStopTimeout = std::chrono::seconds(120);
// How long past our stop timeout we wait for systemd before signalling the payload ourselves.
constexpr Duration kStopGrace = std::chrono::seconds(15);
// How long after stop_timeout lockunit SIGKILLs a scope systemd has not finished stopping:
// well inside the deadline rule's 500 ms margin.
constexpr Duration kKillSlack = std::chrono::milliseconds(200);

} // namespace

class SystemdScopeRunner final : public ScopeRunner {
public:
    SystemdScopeRunner(Options options, std::unique_ptr<SystemdManager> manager,
                       const Clock& clock);

    // Stops a stale scope of the same name left by an earlier run (a crash, a restart).
    Result<void> prepare(Interrupt& interrupt) override;
    Result<pid_t> start(const LaunchSpec& spec, Interrupt& interrupt,
                        TimePoint releaseBefore) override;
    void forward(int sig, bool toAll) override;
    void stop() override;
    void reap() override { guard().reap(); }
    std::optional<int> mainExit() const override { return guard().mainExit(); }
    bool finished() const override;
    int fd() const override;
    short events() const override;
    void process() override;
    std::optional<TimePoint> nextTimeout() const override;
    void onTimeout(TimePoint now) override;
    std::string where() const override { return scope_; }
    bool ownUnitStopping() override;

private:
    // One asynchronous call's outcome, filled in by its reply handler.
    struct Call {
        bool done = false;
        SystemdManager::Reply reply;
        bool failed() const { return done && reply.failed(); }
    };
    // A handler that fills in *call.
    static SystemdManager::ReplyHandler into(std::shared_ptr<Call> call);

    // Dispatches everything the bus has for us; false once the connection is broken.
    bool dispatch();
    // Processes the bus until done() holds, the deadline passes or the interrupt fires.
    Result<void> waitUntil(const std::function<bool()>& done, TimePoint deadline,
                           Interrupt& interrupt, const std::string& what);
    // StopUnit(scope, "replace"); the reply and the job's end arrive through dispatch().
    void requestStop();
    void checkStopJob();
    // Without the bus: signal the payload's processes through the lock guard, whose
    // descendants they are, as the process-group runner does.
    PayloadGuard& guard() const { return *options_.guard; }
    void fallBackToSignals(const std::string& why);

    Options options_;
    std::unique_ptr<SystemdManager> manager_;
    const Clock& clock_;
    bool broken_ = false;
    // JobRemoved results of this scope's jobs, by job object path.
    std::map<std::string, std::string> jobs_;

    int stopSignal_ = 15;
    Duration stopTimeout_{};
    bool started_ = false;

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

std::unique_ptr<ScopeRunner> makeScopeRunner(ScopeRunner::Options options,
                                             std::unique_ptr<SystemdManager> manager,
                                             const Clock& clock) {
    return std::make_unique<SystemdScopeRunner>(std::move(options), std::move(manager), clock);
}

SystemdScopeRunner::SystemdScopeRunner(Options options, std::unique_ptr<SystemdManager> manager,
                                       const Clock& clock)
    : ScopeRunner(scopeNameFor(options.ownUnit)), options_(std::move(options)),
      manager_(std::move(manager)), clock_(clock) {
    manager_->onJobRemoved(
        [this](const std::string& job, const std::string& unit, const std::string& result) {
            if (unit == scope_) jobs_[job] = result;
        });
}

SystemdManager::ReplyHandler SystemdScopeRunner::into(std::shared_ptr<Call> call) {
    return [call = std::move(call)](const SystemdManager::Reply& reply) {
        call->done = true;
        call->reply = reply;
    };
}

bool SystemdScopeRunner::dispatch() {
    if (broken_) return false;
    if (auto r = manager_->dispatch(); !r) {
        broken_ = true;
        log::warning("D-Bus connection to systemd lost: " + r.error().message);
        return false;
    }
    return true;
}

int SystemdScopeRunner::fd() const {
    return broken_ ? -1 : manager_->fd();
}

short SystemdScopeRunner::events() const {
    if (broken_) return POLLIN;
    auto data = manager_->pollData();
    return data ? data->events : POLLIN; // a broken connection is found by process()
}

Result<void> SystemdScopeRunner::waitUntil(const std::function<bool()>& done, TimePoint deadline,
                                           Interrupt& interrupt, const std::string& what) {
    for (;;) {
        if (!dispatch()) return makeError(Errc::Unavailable, what + ": D-Bus connection lost");
        if (done()) return {};
        TimePoint now = clock_.now();
        if (now >= deadline) return makeError(Errc::Unavailable, what + ": timed out");
        // sdbus-c++'s poll data: the bus fd, the events it waits for, and its own timeout.
        pollfd p{manager_->fd(), POLLIN, 0};
        TimePoint until = deadline;
        auto data = manager_->pollData();
        if (!data) {
            broken_ = true;
            return makeError(Errc::Unavailable, what + ": " + data.error().message);
        }
        p.events = data->events;
        if (data->timeout)
            until = std::min(until, now + std::chrono::ceil<std::chrono::milliseconds>(*data->timeout));
        // The wait is on CLOCK_BOOTTIME, like every I/O deadline; ours are on clock_.
        const TimePoint bootUntil = BootClock::now() + (until - now);
        if (auto r = interrupt.wait({&p, 1}, bootUntil, what.c_str()); !r) return r;
    }
}

Result<void> SystemdScopeRunner::prepare(Interrupt& interrupt) {
    // A scope of our name can only be a leftover: stop it (and its processes) before anyone
    // could start a second payload next to it.
    auto call = std::make_shared<Call>();
    const TimePoint deadline = clock_.now() + kStaleStopTimeout;
    if (auto r = manager_->stopUnit(scope_, "replace", into(call)); !r)
        return makeError(Errc::Unavailable, "StopUnit '" + scope_ + "': " + r.error().message);
    if (auto r = waitUntil([&] { return call->done; }, deadline, interrupt,
                           "stopping stale scope '" + scope_ + "'");
        !r)
        return r;
    if (call->failed()) {
        if (call->reply.errorName == kNoSuchUnit) return {};
        return makeError(Errc::Unavailable,
                         "cannot stop stale scope '" + scope_ + "': " + call->reply.errorMessage);
    }
    const std::string job = call->reply.job;
    if (auto r = waitUntil([&] { return jobs_.count(job) > 0; }, deadline, interrupt,
                           "stopping stale scope '" + scope_ + "'");
        !r)
        return r;
    stoppedStale_ = true;
    log::debug("stale scope '" + scope_ + "': stop job " + jobs_[job]);
    return {};
}

Result<pid_t> SystemdScopeRunner::start(const LaunchSpec& spec, Interrupt& interrupt,
                                        TimePoint releaseBefore) {
    stopSignal_ = spec.stopSignal;
    stopTimeout_ = spec.stopTimeout;
    const TimePoint deadline = std::min(clock_.now() + kStartTimeout, releaseBefore);
    // The lock guard goes into the scope first, and starts the payload there once the scope
    // exists: every process of the payload is born in the scope, and the guard leaves the
    // service's cgroup, so that systemd's stop of a dead lockunit's service (which may
    // SIGKILL what is left in it) does not reach the guard (docs/design.md, "The lock guard",
    // order of a stop).
    ScopeSettings settings;
    settings.pid = guard().pid();
    settings.ownUnit = options_.ownUnit;
    settings.description = spec.description;
    settings.stopSignal = spec.stopSignal;
    // The guard SIGKILLs the payload stop_timeout after the stop signal; systemd's own
    // SIGKILL, which would take the guard too, is the backstop a margin later.
    settings.stopTimeout = spec.stopTimeout + 2 * spec.guardSlack;
    settings.slice = options_.slice;
    settings.memoryMax = options_.memoryMax;
    settings.cpuQuota = options_.cpuQuota;
    settings.tasksMax = options_.tasksMax;
    settings.properties = options_.properties;
    auto props = scopeProperties(settings);
    if (!props) return props.error();

    const std::string what = "starting scope '" + scope_ + "'";
    std::string job;
    for (int attempt = 0;; ++attempt) {
        auto call = std::make_shared<Call>();
        if (auto r = manager_->startTransientUnit(scope_, "fail", *props, into(call)); !r)
            return makeError(Errc::Unavailable, what + ": " + r.error().message);
        if (auto r = waitUntil([&] { return call->done; }, deadline, interrupt, what); !r)
            return r.error();
        if (!call->failed()) {
            job = call->reply.job;
            break;
        }
        if (call->reply.errorName != kUnitExists || attempt >= 3)
            return makeError(Errc::Unavailable, what + ": " + call->reply.errorMessage + " (" +
                                                    call->reply.errorName + ")");
        // A scope of our name is still loaded (a stale one, or ours not yet collected):
        // stop it, give systemd a moment to unload it, and try again.
        log::debug(what + ": the name is still loaded, stopping it first");
        if (auto r = prepare(interrupt); !r) return r.error();
        const TimePoint pause = clock_.now() + std::chrono::milliseconds(100 * (attempt + 1));
        (void)waitUntil([] { return false; }, std::min(pause, deadline), interrupt, what);
    }
    if (auto r = waitUntil([&] { return jobs_.count(job) > 0; }, deadline, interrupt,
                           what + ": waiting for its start job");
        !r) {
        // The child is dropped and exits (127) without running anything.
        return r.error();
    }
    if (jobs_[job] != "done")
        return makeError(Errc::Unavailable,
                         what + ": the start job ended with result '" + jobs_[job] + "'");
    if (clock_.now() >= releaseBefore)
        return makeError(Errc::Unavailable, what + ": took longer than the lease allows");
    auto child = guard().spawn(spec, spec.guardSlack, interrupt, releaseBefore);
    if (!child) return child.error();
    started_ = true;
    return *child;
}

bool SystemdScopeRunner::ownUnitStopping() {
    if (broken_) return false;
    auto unit = manager_->unitState(options_.ownUnit);
    if (!unit) {
        log::debug("cannot read the state of '" + options_.ownUnit + "': " + unit.error().message);
        return false;
    }
    const std::string& state = unit->activeState;
    if (state == "deactivating" || state == "inactive" || state == "failed") return true;
    // The stop job may be queued but not yet running.
    const std::string& type = unit->jobType;
    return type == "stop" || type == "restart" || type == "try-restart";
}

void SystemdScopeRunner::forward(int sig, bool toAll) {
    if (!started_) return;
    if (toAll && !broken_ && !signalling_) {
        // Every process in the cgroup: a scope has no main process of its own.
        auto logFailure = [sig, scope = scope_](const SystemdManager::Reply& reply) {
            if (reply.failed())
                log::debug("KillUnit '" + scope + "' signal " + std::to_string(sig) + ": " +
                           reply.errorMessage);
        };
        auto sent = manager_->killUnit(scope_, "all", sig, logFailure);
        if (sent) return;
        log::debug("KillUnit '" + scope_ + "': " + sent.error().message + ", signalling directly");
    }
    guard().signal(sig, toAll);
}

void SystemdScopeRunner::requestStop() {
    ++stopAttempts_;
    stopCall_ = std::make_shared<Call>();
    stopJob_.clear();
    if (auto r = manager_->stopUnit(scope_, "replace", into(stopCall_)); !r) {
        stopCall_.reset();
        fallBackToSignals("StopUnit '" + scope_ + "' failed: " + r.error().message);
    }
}

void SystemdScopeRunner::stop() {
    if (stopping_) return;
    stopping_ = true;
    if (!started_) {
        scopeGone_ = true; // nothing ever ran: a dropped child exits by itself
        return;
    }
    if (broken_) {
        fallBackToSignals("no D-Bus connection to systemd");
        return;
    }
    // systemd SIGKILLs the scope stop_timeout after the stop signal (SendSIGKILL=); if it is
    // late (a busy manager, a queued job), lockunit SIGKILLs the scope itself just after that,
    // still inside the safety margin of the deadline rule.
    const auto now = clock_.now();
    guard().stop(false); // the guard's SIGKILL backstop, should lockunit stall from here on
    giveUpOnBusAt_ = now + stopTimeout_ + kStopGrace;
    killAt_ = now + stopTimeout_ + kKillSlack;
    requestStop();
}

void SystemdScopeRunner::checkStopJob() {
    if (!stopping_ || scopeGone_) return;
    if (broken_) {
        fallBackToSignals("D-Bus connection lost while stopping");
        return;
    }
    if (stopCall_ && stopCall_->done) {
        auto call = std::move(stopCall_);
        if (call->failed()) {
            if (call->reply.errorName == kNoSuchUnit) {
                scopeGone_ = true; // already gone (the payload exited and the scope with it)
                return;
            }
            fallBackToSignals("StopUnit '" + scope_ + "' failed: " + call->reply.errorMessage);
            return;
        }
        stopJob_ = call->reply.job;
    }
    if (!stopJob_.empty()) {
        auto it = jobs_.find(stopJob_);
        if (it == jobs_.end()) return;
        std::string result = it->second;
        stopJob_.clear();
        if (result == "done") {
            scopeGone_ = true;
        } else if (stopAttempts_ < 3) {
            log::debug("stop job of '" + scope_ + "' ended with '" + result + "', again");
            requestStop();
        } else {
            fallBackToSignals("the stop job of '" + scope_ + "' ended with '" + result + "'");
        }
    }
}

void SystemdScopeRunner::fallBackToSignals(const std::string& why) {
    if (signalling_) return;
    log::warning(why + "; signalling the payload's processes directly");
    signalling_ = true;
    scopeGone_ = true; // from now on, finished() counts lockunit's own children
    giveUpOnBusAt_.reset();
    guard().signal(stopSignal_, true);
    if (stopSignal_ != SIGCONT) guard().signal(SIGCONT, true);
    // Never later than the SIGKILL that stop() planned.
    const auto kill = clock_.now() + stopTimeout_;
    if (!killAt_ || kill < *killAt_) killAt_ = kill;
}

void SystemdScopeRunner::process() {
    dispatch();
    checkStopJob();
}

bool SystemdScopeRunner::finished() const {
    // The guard is in the scope too: the scope ends once the guard has left, after the tree.
    return guard().mainExit().has_value() && !guard().treeLeft() && scopeGone_;
}

std::optional<TimePoint> SystemdScopeRunner::nextTimeout() const {
    std::optional<TimePoint> next;
    auto consider = [&](std::optional<TimePoint> t) {
        if (t && (!next || *t < *next)) next = t;
    };
    consider(giveUpOnBusAt_);
    consider(killAt_);
    if (!broken_) {
        auto data = manager_->pollData();
        if (!data)
            consider(clock_.now()); // process() will find the broken connection
        else if (data->timeout)
            consider(clock_.now() + std::chrono::ceil<std::chrono::milliseconds>(*data->timeout));
    }
    return next;
}

void SystemdScopeRunner::onTimeout(TimePoint now) {
    process();
    if (giveUpOnBusAt_ && now >= *giveUpOnBusAt_ && !scopeGone_)
        fallBackToSignals("systemd did not stop '" + scope_ + "' in time");
    if (killAt_ && now >= *killAt_) {
        // Every process of the scope (KillUnit reaches those that are not our descendants
        // too), and again every 50 ms: a killed parent's children are adopted by us only
        // after it dies.
        // Not KillUnit: that would kill the guard, which is in the scope too.
        guard().signal(SIGKILL, true);
        killAt_ = now + std::chrono::milliseconds(50);
    }
}

namespace {

// The runner over a new connection to the bus.
Result<std::unique_ptr<ScopeRunner>> connectScopeRunner(ScopeRunner::Options options) {
    auto manager = connectSystemd(options.userBus);
    if (!manager) return manager.error();
    static const RealClock clock;
    return makeScopeRunner(std::move(options), std::move(*manager), clock);
}

} // namespace

LOCKUNIT_MODULE(scope, ScopeModule) {
    static const ScopeModule module{&connectScopeRunner};
    return &module;
}

} // namespace lockunit
