// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/notify.hpp"

#include <systemd/sd-daemon.h>

namespace lockunit {

void SdNotifier::send(const std::string& state) {
    sd_notify(0, state.c_str());
}

std::optional<Duration> SdNotifier::watchdogInterval() const {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::duration_cast<Duration>(std::chrono::microseconds(usec));
}

} // namespace lockunit
