// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/process_group.hpp"

#include <csignal>

namespace lockunit {

Result<pid_t> ProcessGroupRunner::start(const LaunchSpec& spec, Interrupt&,
                                        TimePoint releaseBefore) {
    stopSignal_ = spec.stopSignal;
    stopTimeout_ = spec.stopTimeout;
    // A pause between acquiring and here (SIGSTOP, suspend) may have eaten the lease. Nothing
    // has to happen between fork and exec here (no scope to enter), so the child exec()s at
    // once: a handshake would only add a wake-up of each side to every start.
    if (BootClock::now() >= releaseBefore)
        return makeError(Errc::Lost, "the lease ran out before the payload could start");
    reaper_.recordForeign();
    auto pid = spawnPayload(spec, true);
    if (!pid) return pid.error();
    pgid_ = *pid;
    reaper_.setMain(*pid);
    return pgid_;
}

void ProcessGroupRunner::signalEverything(int sig) const {
    if (pgid_ > 0) ::kill(-pgid_, sig);
    reaper_.signalChildren(sig); // descendants that left the group and were adopted by us
}

void ProcessGroupRunner::forward(int sig, bool toAll) {
    if (toAll)
        signalEverything(sig);
    else if (!reaper_.mainExit())
        ::kill(reaper_.main(), sig);
}

void ProcessGroupRunner::stop() {
    if (killAt_) return;
    signalEverything(stopSignal_);
    if (stopSignal_ != SIGCONT) signalEverything(SIGCONT); // a stopped process cannot act on it
    killAt_ = BootClock::now() + stopTimeout_;
}

bool ProcessGroupRunner::finished() const {
    return reaper_.mainExit().has_value() && !reaper_.childrenLeft() &&
           !(pgid_ > 0 && ::kill(-pgid_, 0) == 0);
}

std::optional<TimePoint> ProcessGroupRunner::nextTimeout() const {
    return killAt_;
}

void ProcessGroupRunner::onTimeout(TimePoint now) {
    if (!killAt_ || now < *killAt_) return;
    // SIGKILL, and again every 50 ms: a killed parent's children are adopted by us only after
    // it dies, and must be caught too.
    signalEverything(SIGKILL);
    killAt_ = now + std::chrono::milliseconds(50);
}

std::string ProcessGroupRunner::where() const {
    return "process group " + std::to_string(pgid_);
}

} // namespace lockunit
