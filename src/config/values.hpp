// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// The check of one value, as the option table (options.cpp) names it for each option: it
// takes the value as it arrived, stores it in the Config with its origin, or returns the
// complaint ("expected …, found …"). The loader (load.cpp) applies them to the file's values
// and to the command line's.

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "util/result.hpp"

namespace lockunit {

// A value as it arrived, before it is checked: text from the command line; text, number,
// boolean or array from TOML.
using RawValue = std::variant<std::string, long long, bool, std::vector<std::string>>;

// The value as a complaint shows it: "'5s'", "the integer 5", "true", "an array".
std::string showRaw(const RawValue& raw);

// Checks one raw value and stores it; returns the complaint ("expected …, found …") if bad.
using Apply = std::function<std::optional<std::string>(Config&, const RawValue&, const Origin&)>;

// A span as systemd.time(7) reads it; a TOML integer is seconds, as a bare number is.
Result<Duration> spanOf(const RawValue& raw);
// The complaint about `found` when it is not such a span.
std::string spanComplaint(const std::string& found, bool allowInfinity, const Error& why);

Apply durationOption(Setting<Duration> Config::*member, bool allowInfinity);
Apply countOption(Setting<long long> Config::*member, long long min, long long max);
Apply stringOption(Setting<std::string> Config::*member); // not empty
Apply signalOption(Setting<int> Config::*member);
Apply signalListOption(Setting<std::vector<int>> Config::*member); // none of KILL, STOP, CHLD
// One of the named values (NotifyMode, ScopeMode, ForwardTo).
template <typename E>
Apply enumOption(Setting<E> Config::*member, std::vector<std::pair<const char*, E>> choices);
Apply flagOption(Setting<bool> Config::*member);
Apply commandOption(); // a non-empty array of strings
// Text (or an integer, as text) that `valid` accepts; `expected` says what that is.
Apply patternOption(Setting<std::string> Config::*member, const char* expected,
                    std::function<bool(const std::string&)> valid);
Apply propertyOption();                                   // NAME=VALUE, as systemd-run -p
Apply exitCodeOption(Setting<long long> Config::*member); // 0-255, not lockunit's own

} // namespace lockunit
