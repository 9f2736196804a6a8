// SPDX-License-Identifier: LGPL-2.1-or-later
#include "supervisor/supervisor.hpp"

#include <algorithm>
#include <ctime>
#include <sys/epoll.h>

#include "backends/registry.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"

namespace lockunit {

namespace {

constexpr Duration kExtendEvery = std::chrono::seconds(10);
constexpr Duration kExtendBy = std::chrono::seconds(30);

// Retry a failed renewal this often, until it works or the deadline rule stops the payload.
Duration renewRetry(Duration renew) {
    return std::clamp<Duration>(renew / 4, std::chrono::milliseconds(100), std::chrono::seconds(2));
}

} // namespace

// The wait under the backend's and the runner's calls: the loop's wait(), which meanwhile serves
// the urgent sources (signals, the lease deadline, the lock guard), and gives way to a stop
// request, or to the lease deadline while the payload runs: no call can hold up the deadline rule.
class Supervisor::SignalInterrupt final : public Interrupt {
public:
    explicit SignalInterrupt(Supervisor& s) : s_(s) {}
    Result<void> wait(std::span<pollfd> fds, TimePoint until, const char* what) override {
        s_.guardSource_.setFd(s_.d_.guard.fd());
        return s_.loop_.wait(fds, until, [this] { return mustGiveWay(); }, what);
    }

private:
    bool mustGiveWay() const {
        if (s_.phase_ == Phase::Releasing) return false;
        return s_.stopRequested_ ||
               (s_.phase_ == Phase::Running && s_.lease_.mustStop(s_.d_.clock.now()));
    }
    Supervisor& s_;
};

Supervisor::Supervisor(Deps deps, LaunchSpec spec, std::string holderId)
    : d_(deps), spec_(std::move(spec)), holderId_(std::move(holderId)),
      lease_(deps.config.drift(), deps.config.stopTimeout.value, deps.config.margin()),
      loop_(deps.clock) {
    using P = EventLoop::Priority;
    signalSource_ = loop_.addSignals(d_.signals, [this](int sig) { onSignal(sig); });
    guardSource_ = loop_.addFd(d_.guard.fd(), EPOLLIN, [this] { d_.guard.process(); }, P::Urgent);
    // The lease deadline: a timer of its own, urgent, so that nothing can delay it. Its firing
    // is all it takes: whoever waits then looks at the deadline (mustGiveWay(), runPayload()).
    deadlineTimer_ = loop_.addTimer([] {}, P::Urgent);
    runnerSource_ = loop_.addFd(-1, EPOLLIN, [this] { d_.runner.process(); });
    relaySource_ = loop_.addFd(-1, EPOLLIN, [this] { relayNotifications(); });
    wakeSource_ = loop_.addFd(-1, EPOLLIN, [this] {
        holderChanged_ = true;
        d_.backend.drainWake();
    });
    lossSource_ = loop_.addFd(-1, EPOLLIN, [this] { lossEvent_ = true; });
    watchdogInterval_ = d_.notifier.watchdogInterval();
    // The dead-man switch only protects a lease that outlives it: a lockunit paused just
    // before a renewal is killed WatchdogSec later, and its payload needs stop_timeout more.
    const auto& c = d_.config;
    if (watchdogInterval_ &&
        c.renew.value + *watchdogInterval_ + c.stopTimeout.value + c.margin() + c.drift() >=
            c.ttl.value)
        log::warning("WatchdogSec=" + formatDuration(*watchdogInterval_) + " is too long for ttl " +
                     formatDuration(c.ttl.value) +
                     ": a paused lockunit would be killed after its "
                     "lease could run out (keep renew + WatchdogSec + stop_timeout + " +
                     formatDuration(c.margin() + c.drift()) + " under ttl), ignoring");
}

std::string Supervisor::backendScheme() const {
    return backends::urlScheme(d_.config.backend.value);
}

void Supervisor::drainSignals() {
    for (int sig : d_.signals.drain())
        onSignal(sig);
}

void Supervisor::onSignal(int sig) {
    if (sig == SIGCHLD) {
        d_.runner.reap();
    } else if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
        // SIGQUIT too: its default (a core dump) would leave the payload to the guard,
        // while a stop ends it in order and releases the lock at once.
        if (!stopRequested_) log::info(signalName(sig) + " received, stopping");
        stopRequested_ = true;
    } else if (phase_ == Phase::Running || phase_ == Phase::Stopping) {
        const auto& fwd = d_.config.forwardSignals.value;
        if (std::find(fwd.begin(), fwd.end(), sig) != fwd.end()) {
            log::debug("forwarding " + signalName(sig) + " to the payload");
            d_.runner.forward(sig, d_.config.forwardTo.value == ForwardTo::All);
        }
    } else {
        log::debug(signalName(sig) + " received while no payload runs, ignoring");
    }
}

void Supervisor::dispatch(TimePoint until) {
    dispatch(until, Watched{});
}

void Supervisor::dispatch(TimePoint until, Watched watched) {
    // The fds that change (a backend that reconnects, a guard that left) are watched for this
    // round only, so that none stays registered after it closed.
    guardSource_.setFd(d_.guard.fd());
    runnerSource_.setFd(d_.runner.fd(), static_cast<uint16_t>(d_.runner.events()));
    wakeSource_.setFd(watched.wake);
    lossSource_.setFd(watched.loss);
    relaySource_.setFd(watched.relay && d_.relay ? d_.relay->fd() : -1);
    loop_.dispatch(std::min(until, d_.runner.nextTimeout().value_or(TimePoint::max())));
    runnerSource_.setFd(-1);
    wakeSource_.setFd(-1);
    lossSource_.setFd(-1);
    relaySource_.setFd(-1);
    d_.runner.onTimeout(d_.clock.now());
}

void Supervisor::feedWatchdog(TimePoint now, bool confirmed) {
    if (!watchdogInterval_ || now < nextWatchdog_) return;
    // Dead-man switch (invariant 3): no WATCHDOG=1 unless the loop runs and the lease holds.
    if (!confirmed) return;
    d_.notifier.watchdog();
    // A quarter of the interval: a backend call may hold the loop for up to its own timeout.
    nextWatchdog_ = now + *watchdogInterval_ / 4;
}

void Supervisor::showWaitingStatus(const std::string& reason) {
    std::string text = "standby: waiting for lock '" + d_.config.name.value + "'";
    if (!reason.empty()) {
        d_.notifier.status(text + ": it is not held, but " + reason);
        return;
    }
    SignalInterrupt interrupt(*this);
    auto state = d_.backend.inspect(interrupt);
    if (state && !state->holders.empty()) {
        text += " (held by ";
        for (size_t i = 0; i < state->holders.size(); ++i)
            text += (i ? ", " : "") + state->holders[i].describe();
        text += ")";
    }
    d_.notifier.status(text);
}

std::optional<int> Supervisor::waitForLock() {
    const auto& cfg = d_.config;
    const auto start = d_.clock.now();
    const bool forever = cfg.wait.value == kInfinity;
    const TimePoint giveUp = forever ? TimePoint::max() : start + cfg.wait.value;
    TimePoint nextExtend = start;
    bool announced = false, holderChanged = true;
    std::string lastReason;
    SignalInterrupt interrupt(*this);

    if (cfg.notify.value == NotifyMode::Standby) d_.notifier.ready();
    for (;;) {
        drainSignals();
        if (stopRequested_) return exitcode::Ok;
        if (d_.guard.lost()) {
            log::error("cannot wait for lock '" + cfg.name.value + "' without the lock guard");
            return exitcode::Software;
        }
        const TimePoint sentAt = d_.clock.now();
        auto lease = d_.backend.tryAcquire(interrupt);
        if (lease) {
            confirmLease(sentAt, lease->validity);
            // From here on a dead lockunit's lock outlives it until the payload's tree is
            // gone, and is then released by the guard.
            d_.guard.hold(d_.backend.heldFds(), d_.backend.handoff());
            token_ = lease->token;
            if (!lease->warning.empty())
                log::warning("lock '" + cfg.name.value + "': " + lease->warning);
            if (lease->delay <= Duration::zero()) return std::nullopt;
            auto delayed = sitOutLockDelay(*lease, giveUp);
            if (delayed != kWaitAgain) return delayed;
            phase_ = Phase::Waiting;
            continue;
        }
        const Error& err = lease.error();
        if (err.code == Errc::Interrupted) continue;
        if (err.code != Errc::Busy) {
            log::error("cannot acquire lock '" + cfg.name.value + "': " + err.message);
            return err.code == Errc::Config ? exitcode::Config : exitcode::Unavailable;
        }
        auto now = d_.clock.now();
        const std::string reason = d_.backend.waitReason();
        if (now >= giveUp) {
            lastWaitReason_ = reason; // run() logs it, after STATUS=
            return exitcode::Busy;
        }
        if (reason != lastReason) {
            if (!reason.empty())
                log::info("lock '" + cfg.name.value + "' is not held, but " + reason);
            lastReason = reason;
            holderChanged = true;
        }
        // STATUS= first, then the event: who reads the event finds the status already set.
        if (holderChanged) showWaitingStatus(reason);
        if (!announced) {
            log::event(log::Level::Info,
                       {log::EventKind::Standby, cfg.name.value, backendScheme(), ""},
                       "waiting for lock '" + cfg.name.value + "'");
            announced = true;
        }
        if (cfg.notify.value != NotifyMode::Standby && now >= nextExtend) {
            d_.notifier.extendTimeout(kExtendBy);
            nextExtend = now + kExtendEvery;
        }
        feedWatchdog(now, true);
        TimePoint until =
            std::min({now + d_.backend.retryInterval(), giveUp,
                      cfg.notify.value != NotifyMode::Standby ? nextExtend : TimePoint::max(),
                      watchdogInterval_ ? nextWatchdog_ : TimePoint::max()});
        // A stop request read while asking for the holder must not wait for the next wake-up.
        if (stopRequested_) return exitcode::Ok;
        // The runner's D-Bus connection is served while we wait, so nothing piles up on it.
        holderChanged_ = false;
        dispatch(until, {.wake = d_.backend.wakeFd()});
        holderChanged = holderChanged_;
    }
}

std::optional<int> Supervisor::sitOutLockDelay(const Lease& lease, TimePoint giveUp) {
    const auto& cfg = d_.config;
    const TimePoint end = d_.clock.now() + lease.delay;
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(lease.delay).count();
    const std::string why =
        lease.delayReason + ", so its payload may still be stopping: lock-delay of " +
        formatDuration(lease.delay) + " until " + formatWallTime(std::time(nullptr) + seconds);
    if (end > giveUp) {
        log::notice("lock '" + cfg.name.value + "' is free, but " + why +
                    ", longer than --wait allows");
        releaseLock(false);
        return exitcode::Busy;
    }
    log::event(log::Level::Notice, {log::EventKind::LockDelay, cfg.name.value, backendScheme(), token_},
               "lock '" + cfg.name.value + "' acquired, but " + why);
    d_.notifier.status("lock-delay: holding '" + cfg.name.value + "', the payload starts at " +
                       formatWallTime(std::time(nullptr) + seconds) + " (" + lease.delayReason +
                       ")");
    if (cfg.notify.value != NotifyMode::Standby) d_.notifier.extendTimeout(lease.delay + kExtendBy);
    SignalInterrupt interrupt(*this);
    TimePoint nextRenew = lease_.renewDue(cfg.renew.value, cfg.ttl.value);
    for (;;) {
        if (stopRequested_) {
            releaseLock(false);
            return exitcode::Ok;
        }
        const TimePoint now = d_.clock.now();
        if (now >= end) {
            log::info("lock-delay of '" + cfg.name.value + "' over, starting the payload");
            return std::nullopt;
        }
        if (now >= nextRenew || lease_.mustStop(now)) {
            auto renewed = d_.backend.renew(interrupt);
            if (renewed) {
                confirmLease(now, renewed->validity);
                nextRenew = now + cfg.renew.value;
            } else if (renewed.error().code == Errc::Lost || lease_.mustStop(d_.clock.now())) {
                log::warning("lost lock '" + cfg.name.value + "' during its lock-delay (" +
                             renewed.error().message + "); waiting again");
                releaseLock(true);
                return kWaitAgain;
            } else {
                nextRenew = d_.clock.now() + renewRetry(cfg.renew.value);
            }
            continue;
        }
        feedWatchdog(now, true);
        dispatch(std::min({end, nextRenew, lease_.stopAt(),
                           watchdogInterval_ ? nextWatchdog_ : TimePoint::max()}));
    }
}

std::optional<int> Supervisor::startPayload() {
    const auto& cfg = d_.config;
    phase_ = Phase::Running;
    since_ = formatWallTime(std::time(nullptr));
    spec_.env.push_back("LOCKUNIT_TOKEN=" + token_);

    SignalInterrupt interrupt(*this);
    auto pid = lease_.mustStop(d_.clock.now())
                   ? Result<pid_t>(makeError(Errc::Lost, "the lease ran out before the payload "
                                                         "could start"))
                   : d_.runner.start(spec_, interrupt, lease_.stopAt());
    if (!pid) {
        // A child that was forked but never released exits by itself (EOF on its pipe), so
        // nothing of the payload ran and the lock can be released at once.
        if (pid.error().code == Errc::Interrupted && stopRequested_) return exitcode::Ok;
        if (pid.error().code == Errc::Lost || lease_.mustStop(d_.clock.now())) {
            d_.notifier.stopping("stopping: lost lock '" + cfg.name.value + "'");
            logLost(pid.error().message);
            return exitcode::Lost;
        }
        log::error("cannot start the payload: " + pid.error().message);
        return exitcode::Unavailable;
    }
    payloadPid_ = *pid;
    const std::string token = token_.empty() ? "" : " (token " + token_ + ")";
    const std::string where = "payload PID " + std::to_string(payloadPid_) + " in " +
                              d_.runner.where();
    d_.notifier.status("active: holding '" + cfg.name.value + "'" + token + " since " + since_ +
                       ", " + where);
    log::event(log::Level::Notice,
               {log::EventKind::Acquired, cfg.name.value, backendScheme(), token_, payloadPid_},
               "acquired lock '" + cfg.name.value + "'" + token + ", " + where);
    if (cfg.notify.value == NotifyMode::Running) d_.notifier.ready();
    return std::nullopt;
}

std::optional<int> Supervisor::mustStopNow(TimePoint now) {
    const auto& name = d_.config.name.value;
    // Deadline first, before any I/O: after a SIGSTOP or a suspend it may already be gone.
    if (lease_.mustStop(now))
        return stopPayload(exitcode::Lost, "lease of '" + name + "' could not be renewed in time",
                           "its lease could not be renewed before the deadline");
    if (auto trouble = guardTrouble(); !trouble.empty()) {
        if (d_.guard.tookOver())
            log::event(log::Level::Error,
                       {log::EventKind::GuardStopped, name, backendScheme(), token_, payloadPid_},
                       "the lock guard stopped the payload of lock '" + name +
                           "': lockunit missed the lease's stop time");
        return stopPayload(exitcode::Lost, trouble, trouble);
    }
    if (stopRequested_) return stopPayload(exitcode::Ok, "stop requested");
    return std::nullopt;
}

int Supervisor::payloadExited(int code) {
    log::info("payload exited with " + std::to_string(code));
    phase_ = Phase::Stopping;
    d_.runner.stop(); // whatever it left behind goes too, before the lock is released
    waitUntilStopped();
    // systemd may stop the scope (BindsTo=) a moment before our SIGTERM arrives: that is still
    // a requested stop, which exits 0. Asked only now that nothing runs.
    drainSignals();
    if (!stopRequested_ && d_.runner.ownUnitStopping()) {
        log::info("this unit is being stopped");
        stopRequested_ = true;
    }
    return stopRequested_ ? exitcode::Ok : code;
}

int Supervisor::runPayload() {
    const auto& cfg = d_.config;
    if (auto failed = startPayload()) return *failed;
    SignalInterrupt interrupt(*this);
    // Renewals count from the acquisition, not from the payload's start, which a slow scope
    // start job may have delayed; from an earlier keepalive if that is what the lease rests on.
    TimePoint nextRenew = lease_.renewDue(cfg.renew.value, cfg.ttl.value);
    // Watch the backend's loss events only while renewals work: a failing renewal must not be
    // retried at the speed of an fd that stays readable.
    bool watchLoss = true;
    for (;;) {
        const TimePoint now = d_.clock.now();
        if (auto code = mustStopNow(now)) return *code;
        if (auto code = d_.runner.mainExit()) return payloadExited(*code);
        if (now >= nextRenew) {
            auto renewed = d_.backend.renew(interrupt);
            if (renewed) {
                confirmLease(now, renewed->validity);
                nextRenew = now + cfg.renew.value;
                watchLoss = true;
            } else if (renewed.error().code == Errc::Lost) {
                takenAway_ = true;
                return stopPayload(exitcode::Lost, "lock '" + cfg.name.value + "' lost",
                                   renewed.error().message);
            } else if (renewed.error().code != Errc::Interrupted) {
                log::event(log::Level::Warning, {log::EventKind::RenewFailed, cfg.name.value,
                                                 backendScheme(), token_, payloadPid_},
                           "renewing lock '" + cfg.name.value +
                               "' failed: " + renewed.error().message + "; retrying");
                nextRenew = d_.clock.now() + renewRetry(cfg.renew.value);
                watchLoss = false;
            }
            continue;
        }
        feedWatchdog(now, !lease_.mustStop(now));
        lossEvent_ = false;
        dispatch(std::min({nextRenew, lease_.stopAt(),
                           watchdogInterval_ ? nextWatchdog_ : TimePoint::max()}),
                 {.loss = watchLoss ? d_.backend.watchFd() : -1, .relay = true});
        if (lossEvent_) {
            log::debug("backend reports an event on the held lock; renewing now");
            nextRenew = std::min(nextRenew, d_.clock.now());
        }
    }
}

void Supervisor::logLost(const std::string& why) {
    log::event(log::Level::Error,
               {log::EventKind::Lost, d_.config.name.value, backendScheme(), token_, payloadPid_},
               "lost lock '" + d_.config.name.value + "': " + why);
}

void Supervisor::relayNotifications() {
    for (const auto& datagram : d_.relay->drain()) {
        auto n = parseNotification(datagram);
        std::string state;
        if (n.ready && !relayedReady_) {
            relayedReady_ = true;
            log::info("payload reported READY=1");
            state += "READY=1\n";
        }
        if (n.status) state += "STATUS=" + *n.status + "\n";
        if (n.extendTimeoutUsec) state += "EXTEND_TIMEOUT_USEC=" + *n.extendTimeoutUsec + "\n";
        if (!state.empty()) {
            state.pop_back();
            d_.notifier.send(state);
        }
    }
}

int Supervisor::stopPayload(int exitCode, const std::string& why, const std::string& lost) {
    phase_ = Phase::Stopping;
    d_.notifier.stopping("stopping: " + why + "; stopping payload PID " +
                         std::to_string(payloadPid_));
    if (!lost.empty()) logLost(lost);
    log::info("stopping the payload (" + why + ")");
    d_.runner.stop();
    waitUntilStopped();
    return exitCode;
}

void Supervisor::waitUntilStopped(TimePoint giveUp) {
    while (d_.clock.now() < giveUp) {
        // The tree is gone: the guard's work is done. It leaves first (in scope mode it is in
        // the scope, which can end only then), and the lock is released after that.
        if (d_.runner.mainExit() && !d_.guard.treeLeft() && d_.guard.alive()) d_.guard.finish();
        if (d_.runner.finished()) return;
        dispatch(giveUp);
    }
}

void Supervisor::confirmLease(TimePoint sentAt, Duration validity) {
    lease_.confirm(sentAt, validity);
    const TimePoint stopAt = lease_.infinite() ? TimePoint::max() : lease_.stopAt();
    deadlineTimer_.setTime(stopAt); // a renewal still pending then is abandoned
    d_.guard.publishStopAt(stopAt);
}

std::string Supervisor::guardTrouble() const {
    if (d_.guard.lost()) return "the lock guard is gone";
    if (d_.guard.tookOver())
        return "lockunit missed the lease's stop time (stalled?), so the lock guard stopped "
               "the payload";
    return {};
}

void Supervisor::releaseLock(bool takenAway) {
    phase_ = Phase::Releasing;
    SignalInterrupt interrupt(*this);
    // A guard still there (no payload ran: a lock-delay, a failed start) lets go of its copies
    // first: a session it kept open would keep the lock.
    if (d_.guard.alive()) d_.guard.hold({}, {});
    auto r = d_.backend.release(interrupt);
    // After a loss the release only tidies up (it cannot take back what is not ours); the
    // journal's history of the lock ends with "lost", not with a misleading "released".
    if (takenAway)
        log::debug("tidied up after losing lock '" + d_.config.name.value + "'" +
                   (r ? std::string() : ": " + r.error().message));
    else if (!r)
        log::warning("releasing lock '" + d_.config.name.value + "' failed: " + r.error().message +
                     " (it expires with its lease), ignoring");
    else
        log::event(log::Level::Info,
                   {log::EventKind::Released, d_.config.name.value, backendScheme(), token_,
                    payloadPid_},
                   "released lock '" + d_.config.name.value + "'");
}

int Supervisor::run() {
    {
        // Before the lock: whatever an earlier run left behind (a stale scope) goes first.
        SignalInterrupt interrupt(*this);
        if (auto r = d_.runner.prepare(interrupt); !r) {
            if (r.error().code == Errc::Interrupted) return exitcode::Ok;
            log::error(r.error().message);
            return exitcode::Unavailable;
        }
    }
    d_.notifier.status("starting: waiting for lock '" + d_.config.name.value + "'");
    if (auto code = waitForLock()) {
        const auto& cfg = d_.config;
        d_.notifier.stopping("stopping: never acquired lock '" + cfg.name.value + "'");
        d_.guard.finish();
        if (*code == exitcode::Busy) {
            const bool once = cfg.wait.value == Duration::zero();
            log::event(log::Level::Notice,
                       {once ? log::EventKind::Busy : log::EventKind::GaveUp, cfg.name.value,
                        backendScheme(), ""},
                       "lock '" + cfg.name.value + "' is " +
                           (lastWaitReason_.empty() ? "busy"
                                                    : "not held, but " + lastWaitReason_) +
                           (once ? std::string()
                                 : ", gave up after " + formatDuration(cfg.wait.value)));
            return static_cast<int>(cfg.conflictExitCode.value); // 75 unless -E says otherwise
        }
        return *code;
    }
    int code;
    try {
        code = runPayload();
    } catch (...) {
        // Unwinding would close the backend (and with it, for some, the lock) while the payload
        // still runs: stop it first, SIGKILL included, then let the error go on.
        phase_ = Phase::Stopping;
        d_.runner.stop();
        try {
            waitUntilStopped(d_.clock.now() + d_.config.stopTimeout.value + kExtendEvery);
        } catch (...) {
            // The loop itself failed: the lock guard still stops the tree when we are gone.
        }
        throw;
    }
    releaseLock(takenAway_);
    d_.guard.finish();
    return code;
}

} // namespace lockunit
