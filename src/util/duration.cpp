// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/duration.hpp"

#include <cctype>
#include <cstdint>

namespace lockunit {

std::optional<Duration> parseDuration(std::string_view text) {
    if (text == "infinity") return kInfinity;
    if (text == "0") return Duration::zero(); // the one unit-less value that is unambiguous
    if (text.empty()) return std::nullopt;
    std::int64_t total = 0;
    size_t i = 0;
    while (i < text.size()) {
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
        std::int64_t number = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            number = number * 10 + (text[i] - '0');
            if (number > 1'000'000'000'000) return std::nullopt;
            ++i;
        }
        size_t unitStart = i;
        while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])))
            ++i;
        std::string_view unit = text.substr(unitStart, i - unitStart);
        std::int64_t scale;
        if (unit == "ms")
            scale = 1;
        else if (unit == "s")
            scale = 1000;
        else if (unit == "m" || unit == "min")
            scale = 60'000;
        else if (unit == "h")
            scale = 3'600'000;
        else
            return std::nullopt;
        total += number * scale;
        if (total > 1'000'000'000'000) return std::nullopt;
    }
    return Duration(total);
}

std::string formatDuration(Duration d) {
    if (d == kInfinity) return "infinity";
    auto ms = d.count();
    if (ms == 0) return "0";
    std::string out;
    auto take = [&](std::int64_t scale, const char* unit) {
        if (ms >= scale) {
            out += std::to_string(ms / scale) + unit;
            ms %= scale;
        }
    };
    take(3'600'000, "h");
    take(60'000, "m");
    take(1000, "s");
    take(1, "ms");
    return out;
}

} // namespace lockunit
