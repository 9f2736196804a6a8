// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/fd.hpp"

namespace lockunit {

// "SIGTERM", "TERM", "term", "15" → 15.
std::optional<int> parseSignal(std::string_view text);
// "SIGHUP,USR1" → {1, 10}; nullopt if any element is not a signal. "" and "none" → {}.
std::optional<std::vector<int>> parseSignalList(std::string_view text);
// 15 → "SIGTERM".
std::string signalName(int sig);

// Blocks the signals lockunit handles itself, and reads them from a signalfd. Must be created
// before any other thread or child, and before the backend opens anything.
class SignalSource {
public:
    explicit SignalSource(const std::vector<int>& forwarded);
    int fd() const { return fd_.get(); }
    // Every pending signal, oldest first (non-blocking).
    std::vector<int> drain();

private:
    UniqueFd fd_;
};

} // namespace lockunit
