// SPDX-License-Identifier: LGPL-2.1-or-later
// Time spans as systemd.time(7) reads them, so that a span copied from a unit file means the
// same here. This follows systemd 252's parse_time() step by step, quirks included: a part
// without a unit is seconds, parts need no space between them ("1s2" is 3 s; "1 2" too),
// fractions are cut at the microsecond, and the units are matched as prefixes in systemd's
// order (so "ms" is milliseconds and "m" minutes, "M" months). An integration test
// (tests/integration/test_spans.py) compares it with `systemd-analyze timespan`.
#include "util/duration.hpp"

#include <cerrno>
#include <cstdlib>
#include <string>

namespace lockunit {

namespace {

constexpr std::uint64_t kSec = 1'000'000, kMin = 60 * kSec, kHour = 60 * kMin, kDay = 24 * kHour,
                        kWeek = 7 * kDay, kMonth = 2'629'800 * kSec, kYear = 31'557'600 * kSec;

struct Unit {
    std::string_view suffix;
    std::uint64_t usec;
};
// systemd's table, in its order: the first suffix that the text starts with wins.
constexpr Unit kUnits[] = {
    {"seconds", kSec}, {"second", kSec}, {"sec", kSec},      {"s", kSec},       {"minutes", kMin},
    {"minute", kMin},  {"min", kMin},    {"months", kMonth}, {"month", kMonth}, {"M", kMonth},
    {"msec", 1000},    {"ms", 1000},     {"m", kMin},        {"hours", kHour},  {"hour", kHour},
    {"hr", kHour},     {"h", kHour},     {"days", kDay},     {"day", kDay},     {"d", kDay},
    {"weeks", kWeek},  {"week", kWeek},  {"w", kWeek},       {"years", kYear},  {"year", kYear},
    {"y", kYear},      {"usec", 1},      {"us", 1},          {"\u03bcs", 1},    {"\u00b5s", 1},
};

bool isSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

size_t skipSpace(std::string_view t, size_t i) {
    while (i < t.size() && isSpace(t[i]))
        ++i;
    return i;
}

// The unit at t[i..], if any: its multiplier and length.
const Unit* unitAt(std::string_view t, size_t i) {
    for (const Unit& u : kUnits)
        if (t.substr(i, u.suffix.size()) == u.suffix) return &u;
    return nullptr;
}

Error bad(std::string_view, const std::string& why) {
    return makeError(Errc::Config, why);
}

} // namespace

Result<std::uint64_t> parseTimespanUsec(std::string_view text) {
    size_t i = skipSpace(text, 0);
    if (text.substr(i, 8) == "infinity") {
        if (skipSpace(text, i + 8) != text.size())
            return bad(text, "nothing may follow \"infinity\"");
        return kInfinityUsec;
    }
    std::uint64_t total = 0;
    bool something = false;
    const std::string digits(text); // strtoll needs a terminated string
    for (;;) {
        i = skipSpace(text, i);
        if (i == text.size()) {
            if (!something) return bad(text, "it is empty");
            return total;
        }
        if (text[i] == '-') return bad(text, "it is negative");
        size_t start = i;
        if (text[i] == '+') ++i;
        size_t intStart = i;
        while (i < text.size() && isDigit(text[i]))
            ++i;
        size_t intEnd = i;
        bool fraction = i < text.size() && text[i] == '.';
        if (intEnd == intStart && (!fraction || intStart != start))
            return bad(text, "expected a number at '" + std::string(text.substr(start)) + "'");
        errno = 0;
        long long whole =
            intEnd == intStart ? 0 : std::strtoll(digits.c_str() + intStart, nullptr, 10);
        if (errno == ERANGE) return bad(text, "too large");
        size_t fracStart = i + 1, fracEnd = fracStart;
        if (fraction) {
            while (fracEnd < text.size() && isDigit(text[fracEnd]))
                ++fracEnd;
            i = fracEnd;
        }
        size_t afterNumber = i;
        std::uint64_t multiplier = kSec;
        size_t unitPos = skipSpace(text, i);
        if (const Unit* u = unitAt(text, unitPos)) {
            multiplier = u->usec;
            i = unitPos + u->suffix.size();
        } else if (unitPos == afterNumber && unitPos < text.size()) {
            // Not a unit, not a space, not the end: "15x", "1.2.3".
            return bad(text, "unknown unit at '" + std::string(text.substr(unitPos)) +
                                 "' (units: us, ms, s, min, h, d, w, M, y)");
        } else {
            i = unitPos;
        }
        if (static_cast<std::uint64_t>(whole) >= kInfinityUsec / multiplier)
            return bad(text, "too large");
        std::uint64_t k = static_cast<std::uint64_t>(whole) * multiplier;
        if (k >= kInfinityUsec - total) return bad(text, "too large");
        total += k;
        something = true;
        if (fraction) {
            if (fracEnd == fracStart) return bad(text, "a '.' must be followed by digits");
            std::uint64_t m = multiplier / 10;
            for (size_t f = fracStart; f < fracEnd; ++f, m /= 10) {
                k = static_cast<std::uint64_t>(text[f] - '0') * m;
                if (k >= kInfinityUsec - total) return bad(text, "too large");
                total += k;
            }
        }
    }
}

Result<Duration> parseSpan(std::string_view text) {
    auto usec = parseTimespanUsec(text);
    if (!usec) return usec.error();
    if (*usec == kInfinityUsec) return kInfinity;
    std::uint64_t ms = *usec / 1000 + (*usec % 1000 != 0);
    if (ms > 1'000'000'000'000) return bad(text, "too large (at most 31 years, or \"infinity\")");
    return Duration(static_cast<Duration::rep>(ms));
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
