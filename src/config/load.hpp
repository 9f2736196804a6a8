// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Loading the configuration (load.cpp): the TOML file, the command line over it, the checks.

#include <string>
#include <vector>

#include "config/config.hpp"
#include "util/result.hpp"

namespace lockunit {

// What the command line says about the configuration, each value still as text: the file to
// read, the options that override it, the command. cli/'s CommandLine is one of these, plus
// the action and `status`'s own flags.
struct CommandLineSettings {
    std::string confPath;
    struct Option {
        std::string key;   // the config key: "wait"
        std::string value; // as given: "5"; empty for a flag
        std::string flag;  // as spelled, for messages: "-w", "--timeout"
    };
    std::vector<Option> options; // in order
    std::vector<std::string> command;
};

// Reads the file (if any), applies the command line over it, fills in defaults and validates.
// Errors (all of them, one per line) are Errc::Config, or Errc::Usage when every one of them
// came from the command line. `needCommand` is false for `check` and `status`.
Result<Config> loadConfig(const CommandLineSettings& cli, bool needCommand);

} // namespace lockunit
