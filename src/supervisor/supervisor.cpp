// SPDX-License-Identifier: LGPL-2.1-or-later
#include "supervisor/supervisor.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <poll.h>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

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

SignalSource::SignalSource(const std::vector<int>& forwarded) {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGCHLD, SIGHUP, SIGUSR1, SIGUSR2})
        sigaddset(&set, sig);
    for (int sig : forwarded)
        sigaddset(&set, sig);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) < 0)
        throw std::runtime_error(errnoMessage("sigprocmask"));
    fd_.reset(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_.valid()) throw std::runtime_error(errnoMessage("signalfd"));
}

std::vector<int> SignalSource::drain() {
    std::vector<int> out;
    signalfd_siginfo info{};
    while (::read(fd_.get(), &info, sizeof info) == sizeof info)
        out.push_back(static_cast<int>(info.ssi_signo));
    return out;
}

// Lets a backend call give way to SIGTERM/SIGINT while it waits on the network.
class Supervisor::SignalInterrupt final : public Interrupt {
public:
    explicit SignalInterrupt(Supervisor& s) : s_(s) {}
    // Readable on a signal, or when the timer fires: while the payload runs the timer is armed
    // at the lease's stop time, so that no backend call can hold up the deadline rule.
    int fd() const override { return s_.interruptFd_.get(); }
    bool stopRequested() override {
        s_.handleSignals();
        uint64_t expirations;
        [[maybe_unused]] auto n = ::read(s_.timer_.get(), &expirations, sizeof expirations);
        if (s_.phase_ == Phase::Releasing) return false;
        return s_.stopRequested_ ||
               (s_.phase_ == Phase::Running && s_.lease_.mustStop(s_.d_.clock.now()));
    }

private:
    Supervisor& s_;
};

Supervisor::Supervisor(Deps deps, LaunchSpec spec, std::string holderId)
    : d_(deps), spec_(std::move(spec)), holderId_(std::move(holderId)),
      lease_(deps.config.drift(), deps.config.stopTimeout.value, deps.config.margin()) {
    timer_.reset(timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_.valid()) throw std::runtime_error(errnoMessage("timerfd"));
    interruptFd_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!interruptFd_.valid()) throw std::runtime_error(errnoMessage("epoll"));
    for (int fd : {d_.signals.fd(), timer_.get()}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(interruptFd_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
            throw std::runtime_error(errnoMessage("epoll_ctl"));
    }
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

void Supervisor::handleSignals() {
    for (int sig : d_.signals.drain()) {
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
}

void Supervisor::armTimer(TimePoint at) {
    auto now = d_.clock.now();
    itimerspec spec{};
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(at - now);
    if (at == TimePoint::max() || left > std::chrono::hours(24)) left = std::chrono::hours(24);
    if (left <= std::chrono::nanoseconds::zero()) left = std::chrono::nanoseconds(1);
    spec.it_value.tv_sec = left.count() / 1'000'000'000;
    spec.it_value.tv_nsec = left.count() % 1'000'000'000;
    timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

int Supervisor::pollOnce(TimePoint until, std::initializer_list<int> extras) {
    auto now = d_.clock.now();
    if (until > now) armTimer(until);
    std::vector<pollfd> fds = {{d_.signals.fd(), POLLIN, 0},
                               {timer_.get(), POLLIN, 0},
                               {d_.guard.fd(), POLLIN, 0}};
    for (int fd : extras)
        fds.push_back({fd, POLLIN, 0}); // poll() ignores fd -1
    int r = ::poll(fds.data(), fds.size(), until > now ? -1 : 0);
    if (r < 0 && errno != EINTR) throw std::runtime_error(errnoMessage("poll"));
    uint64_t expirations;
    [[maybe_unused]] auto n = ::read(timer_.get(), &expirations, sizeof expirations);
    if (fds[0].revents) handleSignals();
    if (fds[2].revents) d_.guard.process();
    int ready = 0;
    for (size_t i = 3; i < fds.size(); ++i)
        if (fds[i].fd >= 0 && fds[i].revents) ready |= 1 << (i - 3);
    return ready;
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
        handleSignals();
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
                      watchdogInterval_ ? nextWatchdog_ : TimePoint::max(),
                      d_.runner.nextTimeout().value_or(TimePoint::max())});
        // A stop request read while asking for the holder must not wait for the next wake-up.
        if (stopRequested_) return exitcode::Ok;
        // The runner's D-Bus connection is served while we wait, so nothing piles up on it.
        int ready = pollOnce(until, {d_.backend.wakeFd(), d_.runner.fd()});
        holderChanged = ready & 1;
        if (holderChanged) d_.backend.drainWake();
        if (ready & 2) d_.runner.process();
        d_.runner.onTimeout(d_.clock.now());
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
        const TimePoint until = std::min({end, nextRenew, lease_.stopAt(),
                                          watchdogInterval_ ? nextWatchdog_ : TimePoint::max(),
                                          d_.runner.nextTimeout().value_or(TimePoint::max())});
        if (pollOnce(until, {d_.runner.fd()})) d_.runner.process();
        d_.runner.onTimeout(d_.clock.now());
    }
}

int Supervisor::runPayload() {
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
            log::event(log::Level::Error,
                       {log::EventKind::Lost, cfg.name.value, backendScheme(), token_},
                       "lost lock '" + cfg.name.value + "': " + pid.error().message);
            return exitcode::Lost;
        }
        log::error("cannot start the payload: " + pid.error().message);
        return exitcode::Unavailable;
    }
    payloadPid_ = *pid;
    d_.notifier.status("active: holding '" + cfg.name.value + "'" +
                       (token_.empty() ? "" : " (token " + token_ + ")") + " since " + since_ +
                       ", payload PID " + std::to_string(payloadPid_) + " in " + d_.runner.where());
    log::event(log::Level::Notice,
               {log::EventKind::Acquired, cfg.name.value, backendScheme(), token_, payloadPid_},
               "acquired lock '" + cfg.name.value + "'" +
                   (token_.empty() ? "" : " (token " + token_ + ")") + ", payload PID " +
                   std::to_string(payloadPid_) + " in " + d_.runner.where());
    if (cfg.notify.value == NotifyMode::Running) d_.notifier.ready();

    // Renewals count from the acquisition, not from the payload's start, which a slow scope
    // start job may have delayed; from an earlier keepalive if that is what the lease rests on.
    TimePoint nextRenew = lease_.renewDue(cfg.renew.value, cfg.ttl.value);
    // Watch the backend's loss events only while renewals work: a failing renewal must not be
    // retried at the speed of an fd that stays readable.
    bool watchLoss = true;
    for (;;) {
        // Deadline first, before any I/O: after a SIGSTOP or a suspend it may already be gone.
        TimePoint now = d_.clock.now();
        if (lease_.mustStop(now))
            return stopPayload(exitcode::Lost,
                               "lease of '" + cfg.name.value + "' could not be renewed in time",
                               "lost lock '" + cfg.name.value +
                                   "': its lease could not be renewed before the deadline");
        if (auto trouble = guardTrouble(); !trouble.empty()) {
            if (d_.guard.tookOver())
                log::event(log::Level::Error,
                           {log::EventKind::GuardStopped, cfg.name.value, backendScheme(), token_,
                            payloadPid_},
                           "the lock guard stopped the payload of lock '" + cfg.name.value +
                               "': lockunit missed the lease's stop time");
            return stopPayload(exitcode::Lost, trouble,
                               "lost lock '" + cfg.name.value + "': " + trouble);
        }
        if (stopRequested_) return stopPayload(exitcode::Ok, "stop requested");
        if (auto code = d_.runner.mainExit()) {
            log::info("payload exited with " + std::to_string(*code));
            phase_ = Phase::Stopping;
            d_.runner.stop(); // whatever it left behind goes too, before the lock is released
            waitUntilStopped();
            // systemd may stop the scope (BindsTo=) a moment before our SIGTERM arrives: that
            // is still a requested stop, which exits 0. Asked only now that nothing runs.
            handleSignals();
            if (!stopRequested_ && d_.runner.ownUnitStopping()) {
                log::info("this unit is being stopped");
                stopRequested_ = true;
            }
            return stopRequested_ ? exitcode::Ok : *code;
        }
        if (now >= nextRenew) {
            armTimer(lease_.stopAt()); // a renewal still pending then is abandoned
            auto renewed = d_.backend.renew(interrupt);
            if (renewed) {
                confirmLease(now, renewed->validity);
                nextRenew = now + cfg.renew.value;
                watchLoss = true;
            } else if (renewed.error().code == Errc::Lost) {
                takenAway_ = true;
                return stopPayload(exitcode::Lost, "lock '" + cfg.name.value + "' lost",
                                   "lost lock '" + cfg.name.value +
                                       "': " + renewed.error().message);
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
        TimePoint until = std::min({nextRenew, lease_.stopAt(),
                                    watchdogInterval_ ? nextWatchdog_ : TimePoint::max(),
                                    d_.runner.nextTimeout().value_or(TimePoint::max())});
        const int lossFd = watchLoss ? d_.backend.watchFd() : -1;
        int ready = pollOnce(until, {d_.runner.fd(), d_.relay ? d_.relay->fd() : -1, lossFd});
        if (ready & 1) d_.runner.process();
        if (ready & 2) relayNotifications();
        if (ready & 4) {
            log::debug("backend reports an event on the held lock; renewing now");
            nextRenew = std::min(nextRenew, d_.clock.now());
        }
        d_.runner.onTimeout(d_.clock.now());
    }
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
    if (!lost.empty())
        log::event(log::Level::Error, {log::EventKind::Lost, d_.config.name.value,
                                       backendScheme(), token_, payloadPid_},
                   lost);
    log::info("stopping the payload (" + why + ")");
    d_.runner.stop();
    waitUntilStopped();
    return exitCode;
}

void Supervisor::waitUntilStopped() {
    for (;;) {
        // The tree is gone: the guard's work is done. It leaves first (in scope mode it is in
        // the scope, which can end only then), and the lock is released after that.
        if (d_.runner.mainExit() && !d_.guard.treeLeft() && d_.guard.alive()) d_.guard.finish();
        if (d_.runner.finished()) return;
        if (pollOnce(d_.runner.nextTimeout().value_or(TimePoint::max()), {d_.runner.fd()}))
            d_.runner.process();
        d_.runner.onTimeout(d_.clock.now());
    }
}

void Supervisor::confirmLease(TimePoint sentAt, Duration validity) {
    lease_.confirm(sentAt, validity);
    d_.guard.publishStopAt(lease_.infinite() ? TimePoint::max() : lease_.stopAt());
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
        const TimePoint giveUp = BootClock::now() + d_.config.stopTimeout.value + kExtendEvery;
        while (!d_.runner.finished() && BootClock::now() < giveUp) {
            d_.runner.reap();
            d_.runner.process();
            d_.runner.onTimeout(BootClock::now());
            ::usleep(10'000);
        }
        throw;
    }
    releaseLock(takenAway_);
    d_.guard.finish();
    return code;
}

} // namespace lockunit
