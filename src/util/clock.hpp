// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <chrono>
#include <ctime>
#include <string>

namespace lockunit {

// CLOCK_BOOTTIME: keeps counting through suspend, so a lease deadline on it cannot be slept past.
struct BootClock {
    using duration = std::chrono::nanoseconds;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::time_point<BootClock>;
    static constexpr bool is_steady = true;
    static time_point now() noexcept {
        timespec ts{};
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
    }
};
using TimePoint = BootClock::time_point;

// The seam for deadline tests: the supervisor and the lease rule read time only through this.
class Clock {
public:
    virtual ~Clock() = default;
    virtual TimePoint now() const = 0;
};

class RealClock final : public Clock {
public:
    TimePoint now() const override { return BootClock::now(); }
};

// Wall-clock time as "2026-11-26T04:08:47Z", for holder records and STATUS.
std::string formatWallTime(std::time_t t);

} // namespace lockunit
