// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lockunit {

// "SIGTERM", "TERM", "term", "15" → 15.
std::optional<int> parseSignal(std::string_view text);
// "SIGHUP,USR1" → {1, 10}; nullopt if any element is not a signal. "" and "none" → {}.
std::optional<std::vector<int>> parseSignalList(std::string_view text);
// 15 → "SIGTERM".
std::string signalName(int sig);

} // namespace lockunit
