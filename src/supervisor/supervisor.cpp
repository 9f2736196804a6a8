// SPDX-License-Identifier: LGPL-2.1-or-later
#include "supervisor/supervisor.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <poll.h>
#include <stdexcept>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

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
    for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&set, sig);
    for (int sig : forwarded) sigaddset(&set, sig);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) < 0)
        throw std::runtime_error(std::string("sigprocmask: ") + std::strerror(errno));
    fd_.reset(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_.valid()) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
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
    int fd() const override { return s_.d_.signals.fd(); }
    bool stopRequested() override {
        s_.handleSignals();
        return s_.stopRequested_ && s_.phase_ != Phase::Releasing;
    }

private:
    Supervisor& s_;
};

Supervisor::Supervisor(Deps deps, LaunchSpec spec, std::string holderId)
    : d_(deps), spec_(std::move(spec)), holderId_(std::move(holderId)),
      lease_(deps.config.drift(), deps.config.stopTimeout.value, deps.config.margin()) {
    timer_.reset(timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_.valid()) throw std::runtime_error(std::string("timerfd: ") + std::strerror(errno));
    watchdogInterval_ = d_.notifier.watchdogInterval();
}

std::string Supervisor::backendScheme() const {
    const std::string& url = d_.config.backend.value;
    return url.substr(0, url.find("://"));
}

void Supervisor::handleSignals() {
    for (int sig : d_.signals.drain()) {
        if (sig == SIGCHLD) {
            d_.runner.reap();
        } else if (sig == SIGTERM || sig == SIGINT) {
            if (!stopRequested_)
                log::info(signalName(sig) + " received, stopping");
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

bool Supervisor::pollOnce(TimePoint until, int extra1, int extra2) {
    auto now = d_.clock.now();
    if (until > now) {
        itimerspec spec{};
        auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now);
        if (until == TimePoint::max() || left > std::chrono::hours(24)) left = std::chrono::hours(24);
        spec.it_value.tv_sec = left.count() / 1'000'000'000;
        spec.it_value.tv_nsec = left.count() % 1'000'000'000;
        timerfd_settime(timer_.get(), 0, &spec, nullptr);
    }
    pollfd fds[4] = {{d_.signals.fd(), POLLIN, 0},
                     {timer_.get(), POLLIN, 0},
                     {extra1, POLLIN, 0},
                     {extra2, POLLIN, 0}};
    int r = until > now ? ::poll(fds, 4, -1) : ::poll(fds, 4, 0);
    if (r < 0 && errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    uint64_t expirations;
    [[maybe_unused]] auto n = ::read(timer_.get(), &expirations, sizeof expirations);
    if (fds[0].revents) handleSignals();
    return (extra1 >= 0 && fds[2].revents) || (extra2 >= 0 && fds[3].revents);
}

void Supervisor::feedWatchdog(TimePoint now, bool confirmed) {
    if (!watchdogInterval_ || now < nextWatchdog_) return;
    // Dead-man switch (invariant 3): no WATCHDOG=1 unless the loop runs and the lease holds.
    if (!confirmed) return;
    d_.notifier.watchdog();
    nextWatchdog_ = now + *watchdogInterval_ / 2;
}

void Supervisor::showWaitingStatus() {
    std::string text = "standby: waiting for lock '" + d_.config.name.value + "'";
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
    SignalInterrupt interrupt(*this);

    if (cfg.notify.value == NotifyMode::Standby) d_.notifier.ready();
    for (;;) {
        handleSignals();
        if (stopRequested_) return exitcode::Ok;
        const TimePoint sentAt = d_.clock.now();
        auto lease = d_.backend.tryAcquire(interrupt);
        if (lease) {
            lease_.confirm(sentAt, lease->validity);
            token_ = lease->token;
            if (!lease->warning.empty())
                log::warning("lock '" + cfg.name.value + "': " + lease->warning);
            return std::nullopt;
        }
        const Error& err = lease.error();
        if (err.code == Errc::Interrupted) continue;
        if (err.code != Errc::Busy) {
            log::error("cannot acquire lock '" + cfg.name.value + "': " + err.message);
            return err.code == Errc::Config ? exitcode::Config : exitcode::Unavailable;
        }
        auto now = d_.clock.now();
        if (now >= giveUp) {
            log::notice("lock '" + cfg.name.value + "' is busy" +
                        (cfg.wait.value == Duration::zero()
                             ? std::string()
                             : ", gave up after " + formatDuration(cfg.wait.value)));
            return exitcode::Busy;
        }
        if (!announced) {
            log::event(log::Level::Info, {"standby", cfg.name.value, backendScheme(), ""},
                       "waiting for lock '" + cfg.name.value + "'");
            announced = true;
        }
        if (holderChanged) showWaitingStatus();
        if (cfg.notify.value != NotifyMode::Standby && now >= nextExtend) {
            d_.notifier.extendTimeout(kExtendBy);
            nextExtend = now + kExtendEvery;
        }
        feedWatchdog(now, true);
        TimePoint until = std::min({now + d_.backend.retryInterval(), giveUp,
                                    cfg.notify.value != NotifyMode::Standby ? nextExtend
                                                                            : TimePoint::max(),
                                    watchdogInterval_ ? nextWatchdog_ : TimePoint::max()});
        holderChanged = pollOnce(until, d_.backend.wakeFd());
        if (holderChanged) d_.backend.drainWake();
    }
}

int Supervisor::runPayload() {
    const auto& cfg = d_.config;
    phase_ = Phase::Running;
    since_ = formatWallTime(std::time(nullptr));
    spec_.env.push_back("LOCKUNIT_TOKEN=" + token_);

    auto pid = d_.runner.start(spec_);
    if (!pid) {
        // A child that was forked but never released exits by itself (EOF on its pipe).
        log::error("cannot start the payload: " + pid.error().message);
        return exitcode::Unavailable;
    }
    payloadPid_ = *pid;
    log::event(log::Level::Notice, {"acquired", cfg.name.value, backendScheme(), token_},
               "acquired lock '" + cfg.name.value + "'" +
                   (token_.empty() ? "" : " (token " + token_ + ")") + ", payload PID " +
                   std::to_string(payloadPid_) + " in " + d_.runner.where());
    d_.notifier.status("active: holding '" + cfg.name.value + "'" +
                       (token_.empty() ? "" : " (token " + token_ + ")") + " since " + since_ +
                       ", payload PID " + std::to_string(payloadPid_) + " in " + d_.runner.where());
    if (cfg.notify.value == NotifyMode::Running) d_.notifier.ready();

    SignalInterrupt interrupt(*this);
    TimePoint nextRenew = d_.clock.now() + cfg.renew.value;
    // Watch the backend's loss events only while renewals work: a failing renewal must not be
    // retried at the speed of an fd that stays readable.
    bool watchLoss = true;
    for (;;) {
        // Deadline first, before any I/O: after a SIGSTOP or a suspend it may already be gone.
        TimePoint now = d_.clock.now();
        if (lease_.mustStop(now))
            return stopPayload(exitcode::Lost, "lease of '" + cfg.name.value +
                                                   "' could not be renewed in time");
        if (stopRequested_) return stopPayload(exitcode::Ok, "stop requested");
        if (auto code = d_.runner.mainExit()) {
            log::info("payload exited with " + std::to_string(*code));
            phase_ = Phase::Stopping;
            d_.runner.stop(); // whatever it left behind goes too, before the lock is released
            while (!d_.runner.finished()) {
                pollOnce(d_.runner.nextTimeout().value_or(TimePoint::max()), d_.runner.fd());
                d_.runner.process();
                d_.runner.onTimeout(d_.clock.now());
            }
            return *code;
        }
        if (now >= nextRenew) {
            auto renewed = d_.backend.renew(interrupt);
            if (renewed) {
                lease_.confirm(now, renewed->validity);
                nextRenew = now + cfg.renew.value;
                watchLoss = true;
            } else if (renewed.error().code == Errc::Lost) {
                log::event(log::Level::Error, {"lost", cfg.name.value, backendScheme(), token_},
                           "lost lock '" + cfg.name.value + "': " + renewed.error().message);
                return stopPayload(exitcode::Lost, "lock '" + cfg.name.value + "' lost");
            } else if (renewed.error().code != Errc::Interrupted) {
                log::event(log::Level::Warning,
                           {"renew-failed", cfg.name.value, backendScheme(), token_},
                           "renewing lock '" + cfg.name.value + "' failed: " +
                               renewed.error().message + "; retrying");
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
        if (pollOnce(until, d_.runner.fd(), lossFd)) {
            pollfd fds[2] = {{d_.runner.fd(), POLLIN, 0}, {lossFd, POLLIN, 0}};
            ::poll(fds, 2, 0);
            if (d_.runner.fd() >= 0 && fds[0].revents) d_.runner.process();
            if (lossFd >= 0 && fds[1].revents) {
                log::debug("backend reports an event on the held lock; renewing now");
                nextRenew = std::min(nextRenew, d_.clock.now());
            }
        }
        d_.runner.onTimeout(d_.clock.now());
    }
}

int Supervisor::stopPayload(int exitCode, const std::string& why) {
    phase_ = Phase::Stopping;
    d_.notifier.stopping("stopping: " + why + "; stopping payload PID " +
                         std::to_string(payloadPid_));
    log::info("stopping the payload (" + why + ")");
    d_.runner.stop();
    while (!d_.runner.finished()) {
        if (pollOnce(d_.runner.nextTimeout().value_or(TimePoint::max()), d_.runner.fd()))
            d_.runner.process();
        d_.runner.onTimeout(d_.clock.now());
    }
    return exitCode;
}

void Supervisor::releaseLock() {
    phase_ = Phase::Releasing;
    SignalInterrupt interrupt(*this);
    auto r = d_.backend.release(interrupt);
    if (!r)
        log::warning("releasing lock '" + d_.config.name.value + "' failed: " + r.error().message +
                     " (it expires with its lease), ignoring");
    else
        log::event(log::Level::Info, {"released", d_.config.name.value, backendScheme(), token_},
                   "released lock '" + d_.config.name.value + "'");
}

int Supervisor::run() {
    d_.notifier.status("starting: waiting for lock '" + d_.config.name.value + "'");
    if (auto code = waitForLock()) {
        d_.notifier.stopping("stopping: never acquired lock '" + d_.config.name.value + "'");
        return *code;
    }
    int code = runPayload();
    releaseLock();
    return code;
}

} // namespace lockunit
