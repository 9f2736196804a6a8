// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/clock.hpp"

namespace lockunit {

std::string formatWallTime(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

} // namespace lockunit
