// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.hpp"

namespace lockunit {

using Duration = std::chrono::milliseconds;
inline constexpr Duration kInfinity = Duration::max();
inline constexpr std::uint64_t kInfinityUsec = UINT64_MAX;

// Reads a time span exactly as systemd.time(7) does (systemd 252's parse_time()), in
// microseconds: "1.5s", "1m 30s", "1min30s", "500us", "2d", "1w", "5" (a bare number is
// seconds), ".5s", "infinity" (kInfinityUsec). Units, matched as the longest-first prefix
// systemd uses: us usec µs, ms msec, s sec second seconds, m min minute minutes, h hr hour
// hours, d day days, w week weeks, M month months (30.44 d), y year years (365.25 d).
// Errors (Errc::Config) say what is wrong ("a '.' must be followed by digits"); the caller
// names the key and the text.
Result<std::uint64_t> parseTimespanUsec(std::string_view text);

// The same span in lockunit's milliseconds: a sub-millisecond rest is rounded up (lockunit's
// timers count whole milliseconds), "infinity" is kInfinity, and a finite span must stay
// under 1e12 ms (31 years).
Result<Duration> parseSpan(std::string_view text);
inline std::optional<Duration> parseDuration(std::string_view text) {
    auto d = parseSpan(text);
    return d ? std::optional<Duration>(*d) : std::nullopt;
}

// The shortest exact spelling, which lockunit and systemd both read back: "15s", "1m30s",
// "250ms", "infinity".
std::string formatDuration(Duration d);

} // namespace lockunit
