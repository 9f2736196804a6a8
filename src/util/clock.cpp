// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/clock.hpp"

#include <cstdio>

namespace lockunit {

std::string formatWallTime(std::time_t t) {
    // Calendar arithmetic, not gmtime_r()/strftime(): glibc's first call of those reads
    // /etc/localtime (tzset()), which a time in UTC does not need.
    using namespace std::chrono;
    const sys_seconds at{seconds{t}};
    const auto day = floor<days>(at);
    const year_month_day date{day};
    const hh_mm_ss time{at - day};
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(date.year()),
                  static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                  static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                  static_cast<int>(time.seconds().count()));
    return buf;
}

} // namespace lockunit
