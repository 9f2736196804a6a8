// SPDX-License-Identifier: LGPL-2.1-or-later
// Scope mode over sdbus-c++: the module lockunit-scope.so (see systemd/scope.hpp).
#include "systemd/scope.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>

#include "util/log.hpp"

namespace lockunit {

namespace {

constexpr const char* kService = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr const char* kNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit";
constexpr const char* kUnitExists = "org.freedesktop.systemd1.UnitExists";

// One D-Bus call to systemd; a start job for a scope is quick, these bounds are for a
// manager that does not answer at all.
constexpr auto kCallTimeout = std::chrono::seconds(10);
// From StartTransientUnit to the start job's end.
constexpr Duration kStartTimeout = std::chrono::seconds(15);
// A stale scope's stop: its own TimeoutStopUSec= (unknown to us) plus SIGKILL.
constexpr Duration kStaleStopTimeout = std::chrono::seconds(120);
// How long past our stop timeout we wait for systemd before signalling the payload ourselves.
constexpr Duration kStopGrace = std::chrono::seconds(15);
// How long after stop_timeout lockunit SIGKILLs a scope systemd has not finished stopping:
// well inside the deadline rule's 500 ms margin.
constexpr Duration kKillSlack = std::chrono::milliseconds(200);

using DbusProperties = std::vector<sdbus::Struct<std::string, sdbus::Variant>>;
using DbusAux = std::vector<sdbus::Struct<std::string, DbusProperties>>;

DbusProperties toDbus(const std::vector<ScopeProperty>& props) {
    DbusProperties out;
    for (const auto& p : props)
        std::visit([&](const auto& v) { out.emplace_back(p.name, sdbus::Variant(v)); }, p.value);
    return out;
}

} // namespace

class DbusScopeRunner final : public ScopeRunner {
public:
    static Result<std::unique_ptr<ScopeRunner>> connect(Options options);
    ~DbusScopeRunner() override;

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
    void process() override;
    std::optional<TimePoint> nextTimeout() const override;
    void onTimeout(TimePoint now) override;
    std::string where() const override { return scope_; }
    bool ownUnitStopping() override;

private:
    struct Bus;
    struct Call;
    explicit DbusScopeRunner(Options options);

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
    Guard& guard() const { return *options_.guard; }
    void fallBackToSignals(const std::string& why);

    Options options_;
    std::unique_ptr<Bus> bus_;
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

[[maybe_unused]] const bool provided = ScopeRunner::provide(&DbusScopeRunner::connect);

// The connection and the proxy of systemd's manager object.
struct DbusScopeRunner::Bus {
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<sdbus::IProxy> manager;
    int fd = -1;
};

// One asynchronous call's outcome, filled in by its reply handler.
struct DbusScopeRunner::Call {
    bool done = false;
    std::string errorName, errorMessage;
    std::string job; // the job object path, for StartTransientUnit and StopUnit
    bool failed() const { return done && !errorName.empty(); }
    // The reply handler of a call that answers with a job (StartTransientUnit, StopUnit).
    void answered(const sdbus::Error* e, const sdbus::ObjectPath& path) {
        done = true;
        if (e) {
            errorName = e->getName();
            errorMessage = e->getMessage();
        } else {
            job = path;
        }
    }
};

DbusScopeRunner::DbusScopeRunner(Options options)
    : ScopeRunner(scopeNameFor(options.ownUnit)), options_(std::move(options)) {}

DbusScopeRunner::~DbusScopeRunner() {
    // The proxy goes before the connection it refers to.
    if (bus_) bus_->manager.reset();
}

Result<std::unique_ptr<ScopeRunner>> DbusScopeRunner::connect(Options options) {
    std::unique_ptr<DbusScopeRunner> runner(new DbusScopeRunner(std::move(options)));
    auto bus = std::make_unique<Bus>();
    const char* which = runner->options_.userBus ? "user" : "system";
    try {
        bus->connection = runner->options_.userBus ? sdbus::createSessionBusConnection()
                                                   : sdbus::createSystemBusConnection();
        bus->connection->setMethodCallTimeout(kCallTimeout);
        bus->manager = sdbus::createProxy(*bus->connection, kService, kPath);
        DbusScopeRunner* self = runner.get();
        // Subscribed before any job exists (sdbus-c++ 1.2 adds the match only in
        // finishRegistration()), so no JobRemoved of ours can be missed.
        bus->manager->uponSignal("JobRemoved")
            .onInterface(kManager)
            .call([self](uint32_t, const sdbus::ObjectPath& job, const std::string& unit,
                         const std::string& result) {
                if (unit == self->scope_) self->jobs_[job] = result;
            });
        bus->manager->finishRegistration();
        bus->fd = bus->connection->getEventLoopPollData().fd;
    } catch (const sdbus::Error& e) {
        return makeError(Errc::Unavailable, std::string("cannot connect to the ") + which +
                                                " bus: " + e.getMessage() + " (" + e.getName() +
                                                ")");
    }
    runner->bus_ = std::move(bus);
    return std::unique_ptr<ScopeRunner>(std::move(runner));
}

bool DbusScopeRunner::dispatch() {
    if (broken_) return false;
    try {
        while (bus_->connection->processPendingRequest()) {
        }
        return true;
    } catch (const sdbus::Error& e) {
        broken_ = true;
        log::warning("D-Bus connection to systemd lost: " + e.getMessage());
        return false;
    }
}

int DbusScopeRunner::fd() const {
    return broken_ ? -1 : bus_->fd;
}

Result<void> DbusScopeRunner::waitUntil(const std::function<bool()>& done, TimePoint deadline,
                                    Interrupt& interrupt, const std::string& what) {
    for (;;) {
        if (!dispatch()) return makeError(Errc::Unavailable, what + ": D-Bus connection lost");
        if (done()) return {};
        TimePoint now = BootClock::now();
        if (now >= deadline) return makeError(Errc::Unavailable, what + ": timed out");
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
        pollfd fds[2] = {{bus_->fd, POLLIN, 0}, {interrupt.fd(), POLLIN, 0}};
        try {
            auto data = bus_->connection->getEventLoopPollData();
            fds[0].events = data.events;
            if (auto rel = data.getRelativeTimeout())
                left = std::min(left, std::chrono::ceil<std::chrono::milliseconds>(*rel));
        } catch (const sdbus::Error& e) {
            broken_ = true;
            return makeError(Errc::Unavailable, what + ": " + e.getMessage());
        }
        int r = ::poll(fds, 2, static_cast<int>(std::clamp<long long>(left.count(), 0, 60'000)));
        if (r < 0 && errno != EINTR) return makeError(Errc::System, errnoMessage(what + ": poll"));
        if (r > 0 && (fds[1].revents & POLLIN) && interrupt.stopRequested())
            return makeError(Errc::Interrupted, what + ": interrupted");
    }
}

namespace {

// Sends StopUnit(name, "replace"); the outcome lands in *call.
template <typename Call>
void sendStopUnit(sdbus::IProxy& manager, const std::string& name, std::shared_ptr<Call> call) {
    manager.callMethodAsync("StopUnit")
        .onInterface(kManager)
        .withTimeout(kCallTimeout)
        .withArguments(name, std::string("replace"))
        .uponReplyInvoke(
            [call](const sdbus::Error* e, sdbus::ObjectPath job) { call->answered(e, job); });
}

} // namespace

Result<void> DbusScopeRunner::prepare(Interrupt& interrupt) {
    // A scope of our name can only be a leftover: stop it (and its processes) before anyone
    // could start a second payload next to it.
    auto call = std::make_shared<Call>();
    const TimePoint deadline = BootClock::now() + kStaleStopTimeout;
    try {
        sendStopUnit(*bus_->manager, scope_, call);
    } catch (const sdbus::Error& e) {
        return makeError(Errc::Unavailable, "StopUnit '" + scope_ + "': " + e.getMessage());
    }
    if (auto r = waitUntil([&] { return call->done; }, deadline, interrupt,
                           "stopping stale scope '" + scope_ + "'");
        !r)
        return r;
    if (call->failed()) {
        if (call->errorName == kNoSuchUnit) return {};
        return makeError(Errc::Unavailable,
                         "cannot stop stale scope '" + scope_ + "': " + call->errorMessage);
    }
    const std::string job = call->job;
    if (auto r = waitUntil([&] { return jobs_.count(job) > 0; }, deadline, interrupt,
                           "stopping stale scope '" + scope_ + "'");
        !r)
        return r;
    stoppedStale_ = true;
    log::debug("stale scope '" + scope_ + "': stop job " + jobs_[job]);
    return {};
}

Result<pid_t> DbusScopeRunner::start(const LaunchSpec& spec, Interrupt& interrupt,
                                 TimePoint releaseBefore) {
    stopSignal_ = spec.stopSignal;
    stopTimeout_ = spec.stopTimeout;
    const TimePoint deadline = std::min(BootClock::now() + kStartTimeout, releaseBefore);
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
    const DbusProperties dbusProps = toDbus(*props);

    const std::string what = "starting scope '" + scope_ + "'";
    std::string job;
    for (int attempt = 0;; ++attempt) {
        auto call = std::make_shared<Call>();
        try {
            bus_->manager->callMethodAsync("StartTransientUnit")
                .onInterface(kManager)
                .withTimeout(kCallTimeout)
                .withArguments(scope_, std::string("fail"), dbusProps, DbusAux{})
                .uponReplyInvoke([call](const sdbus::Error* e, sdbus::ObjectPath path) {
                    call->answered(e, path);
                });
        } catch (const sdbus::Error& e) {
            return makeError(Errc::Unavailable, what + ": " + e.getMessage());
        }
        if (auto r = waitUntil([&] { return call->done; }, deadline, interrupt, what); !r)
            return r.error();
        if (!call->failed()) {
            job = call->job;
            break;
        }
        if (call->errorName != kUnitExists || attempt >= 3)
            return makeError(Errc::Unavailable,
                             what + ": " + call->errorMessage + " (" + call->errorName + ")");
        // A scope of our name is still loaded (a stale one, or ours not yet collected):
        // stop it, give systemd a moment to unload it, and try again.
        log::debug(what + ": the name is still loaded, stopping it first");
        if (auto r = prepare(interrupt); !r) return r.error();
        const TimePoint pause = BootClock::now() + std::chrono::milliseconds(100 * (attempt + 1));
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
    if (BootClock::now() >= releaseBefore)
        return makeError(Errc::Unavailable, what + ": took longer than the lease allows");
    auto child = guard().spawn(spec, spec.guardSlack, interrupt, releaseBefore);
    if (!child) return child.error();
    started_ = true;
    return *child;
}

bool DbusScopeRunner::ownUnitStopping() {
    if (broken_) return false;
    try {
        sdbus::ObjectPath unitPath;
        bus_->manager->callMethod("GetUnit")
            .onInterface(kManager)
            .withTimeout(kCallTimeout)
            .withArguments(options_.ownUnit)
            .storeResultsTo(unitPath);
        auto unit = sdbus::createProxy(*bus_->connection, kService, unitPath);
        const std::string state =
            unit->getProperty("ActiveState").onInterface("org.freedesktop.systemd1.Unit");
        if (state == "deactivating" || state == "inactive" || state == "failed") return true;
        // The stop job may be queued but not yet running.
        auto job = unit->getProperty("Job")
                       .onInterface("org.freedesktop.systemd1.Unit")
                       .get<sdbus::Struct<uint32_t, sdbus::ObjectPath>>();
        if (std::get<0>(job) == 0) return false;
        auto jobProxy = sdbus::createProxy(*bus_->connection, kService, std::get<1>(job));
        const std::string type =
            jobProxy->getProperty("JobType").onInterface("org.freedesktop.systemd1.Job");
        return type == "stop" || type == "restart" || type == "try-restart";
    } catch (const sdbus::Error& e) {
        log::debug("cannot read the state of '" + options_.ownUnit + "': " + e.getMessage());
        return false;
    }
}

void DbusScopeRunner::forward(int sig, bool toAll) {
    if (!started_) return;
    if (toAll && !broken_ && !signalling_) {
        try {
            // Every process in the cgroup: a scope has no main process of its own.
            bus_->manager->callMethodAsync("KillUnit")
                .onInterface(kManager)
                .withTimeout(kCallTimeout)
                .withArguments(scope_, std::string("all"), static_cast<int32_t>(sig))
                .uponReplyInvoke([sig, scope = scope_](const sdbus::Error* e) {
                    if (e)
                        log::debug("KillUnit '" + scope + "' signal " + std::to_string(sig) + ": " +
                                   e->getMessage());
                });
            return;
        } catch (const sdbus::Error& e) {
            log::debug("KillUnit '" + scope_ + "': " + e.getMessage() + ", signalling directly");
        }
    }
    guard().signal(sig, toAll);
}

void DbusScopeRunner::requestStop() {
    ++stopAttempts_;
    stopCall_ = std::make_shared<Call>();
    stopJob_.clear();
    try {
        sendStopUnit(*bus_->manager, scope_, stopCall_);
    } catch (const sdbus::Error& e) {
        stopCall_.reset();
        fallBackToSignals("StopUnit '" + scope_ + "' failed: " + e.getMessage());
    }
}

void DbusScopeRunner::stop() {
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
    const auto now = BootClock::now();
    guard().stop(false); // the guard's SIGKILL backstop, should lockunit stall from here on
    giveUpOnBusAt_ = now + stopTimeout_ + kStopGrace;
    killAt_ = now + stopTimeout_ + kKillSlack;
    requestStop();
}

void DbusScopeRunner::checkStopJob() {
    if (!stopping_ || scopeGone_) return;
    if (broken_) {
        fallBackToSignals("D-Bus connection lost while stopping");
        return;
    }
    if (stopCall_ && stopCall_->done) {
        auto call = std::move(stopCall_);
        if (call->failed()) {
            if (call->errorName == kNoSuchUnit) {
                scopeGone_ = true; // already gone (the payload exited and the scope with it)
                return;
            }
            fallBackToSignals("StopUnit '" + scope_ + "' failed: " + call->errorMessage);
            return;
        }
        stopJob_ = call->job;
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

void DbusScopeRunner::fallBackToSignals(const std::string& why) {
    if (signalling_) return;
    log::warning(why + "; signalling the payload's processes directly");
    signalling_ = true;
    scopeGone_ = true; // from now on, finished() counts lockunit's own children
    giveUpOnBusAt_.reset();
    guard().signal(stopSignal_, true);
    if (stopSignal_ != SIGCONT) guard().signal(SIGCONT, true);
    // Never later than the SIGKILL that stop() planned.
    const auto kill = BootClock::now() + stopTimeout_;
    if (!killAt_ || kill < *killAt_) killAt_ = kill;
}

void DbusScopeRunner::process() {
    dispatch();
    checkStopJob();
}

bool DbusScopeRunner::finished() const {
    // The guard is in the scope too: the scope ends once the guard has left, after the tree.
    return guard().mainExit().has_value() && !guard().treeLeft() && scopeGone_;
}

std::optional<TimePoint> DbusScopeRunner::nextTimeout() const {
    std::optional<TimePoint> next;
    auto consider = [&](std::optional<TimePoint> t) {
        if (t && (!next || *t < *next)) next = t;
    };
    consider(giveUpOnBusAt_);
    consider(killAt_);
    if (!broken_) {
        try {
            if (auto rel = bus_->connection->getEventLoopPollData().getRelativeTimeout())
                consider(BootClock::now() + std::chrono::ceil<std::chrono::milliseconds>(*rel));
        } catch (const sdbus::Error&) {
            consider(BootClock::now()); // process() will find the broken connection
        }
    }
    return next;
}

void DbusScopeRunner::onTimeout(TimePoint now) {
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

} // namespace lockunit
