// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/io.hpp"

#include <cerrno>
#include <cstring>
#include <string>

namespace lockunit::io {

Result<void> waitFor(int fd, short events, TimePoint deadline, Interrupt& interrupt,
                     const char* what) {
    for (;;) {
        auto now = BootClock::now();
        if (now >= deadline) {
            if (fd < 0) return {};
            return makeError(Errc::Unavailable, std::string(what) + ": timed out");
        }
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
        pollfd fds[2] = {{fd, events, 0}, {interrupt.fd(), POLLIN, 0}};
        int r = ::poll(fds, 2, static_cast<int>(std::min<long long>(left, 60'000)));
        if (r < 0) {
            if (errno == EINTR) continue;
            return makeError(Errc::System, std::string(what) + ": poll: " + std::strerror(errno));
        }
        if (fds[1].revents & POLLIN) {
            if (interrupt.stopRequested())
                return makeError(Errc::Interrupted, std::string(what) + ": interrupted");
        }
        if (fd >= 0 && fds[0].revents) return {};
    }
}

Result<void> sleepUntil(TimePoint deadline, Interrupt& interrupt) {
    auto r = waitFor(-1, 0, deadline, interrupt, "sleep");
    return r;
}

} // namespace lockunit::io
