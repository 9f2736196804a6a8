// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/notify.hpp"

#include <cstdlib>

namespace lockunit {

Result<SdNotifier> SdNotifier::create() {
    // Without either variable sd_notify() sends nothing and sd_watchdog_enabled() says no:
    // then libsystemd is not needed at all.
    if (!std::getenv("NOTIFY_SOCKET") && !std::getenv("WATCHDOG_USEC")) return SdNotifier(nullptr);
    auto sd = libsystemd::get();
    if (!sd)
        return makeError(Errc::Unavailable,
                         "systemd waits for notifications, but " + sd.error().message);
    return SdNotifier(*sd);
}

void SdNotifier::send(const std::string& state) {
    if (sd_) sd_->notify(0, state.c_str());
}

std::optional<Duration> SdNotifier::watchdogInterval() const {
    uint64_t usec = 0;
    if (!sd_ || sd_->watchdogEnabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::duration_cast<Duration>(std::chrono::microseconds(usec));
}

} // namespace lockunit
