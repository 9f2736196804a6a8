// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// The option table (options.cpp): every setting once, with its config key, its command-line
// spelling, its help text and the check of its value. The command-line parser, the loader,
// --help and the shell completions all read it.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/values.hpp"

namespace lockunit {

// An option as the table declares it.
struct OptionSpec {
    const char* key;     // TOML key; the long option is the same with '-' for '_'
    char shortName;      // 0 if none
    const char* metavar; // nullptr: a flag that takes no value
    const char* help;
    bool onCommandLine;
    Apply apply;
};

// The option of this config key, if there is one.
const OptionSpec* findByKey(std::string_view key);
// The long option of a config key: "stop_timeout" → "stop-timeout".
std::string flagName(const char* key);

// An option as the command line knows it: its config key, whether it takes a value, and the
// value it stands for when it is an alias that takes none (-n, --nonblock: wait = "0").
struct OptionLookup {
    std::string key;
    bool takesValue;
    std::string fixedValue;
};
// The option spelled --FLAG (without the dashes), if there is one.
std::optional<OptionLookup> findOption(std::string_view flag);
// The option spelled -C, if there is one.
std::optional<OptionLookup> findShortOption(char c);

// Every option of the command line, for --help and the shell completions.
struct OptionInfo {
    std::string name;    // long name, without "--"
    char shortName;      // 0 if none
    std::string metavar; // empty: takes no value
    std::string help;
    std::vector<std::string> choices; // the values it takes, when they are a fixed set
};
std::vector<OptionInfo> commandLineOptions();

// Every long option --help lists (without "--"), for the man-page test.
std::vector<std::string> optionNames();
// Every top-level config key.
std::vector<std::string> configKeys();

} // namespace lockunit
