// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace lockunit {

using Duration = std::chrono::milliseconds;
inline constexpr Duration kInfinity = Duration::max();

// Parses "500ms", "15s", "2m", "1h", "1m30s", "0", "infinity". A bare number other than 0 is
// not accepted: "15" could mean seconds or milliseconds, and a lock tool must not guess.
std::optional<Duration> parseDuration(std::string_view text);

// The shortest exact spelling: "15s", "1m30s", "250ms", "infinity".
std::string formatDuration(Duration d);

} // namespace lockunit
