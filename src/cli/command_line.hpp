// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>
#include <vector>

#include "config/load.hpp"
#include "util/result.hpp"

namespace lockunit {

// The command line, before it is merged with the file: each value still as text. What it says
// about the configuration (the file, the options, the command) is its CommandLineSettings,
// which loadConfig() reads; the rest is for the action.
struct CommandLine : CommandLineSettings {
    enum class Action { Run, Check, Status, Cleanup, Help, Version };
    Action action = Action::Run;
    // status: --format=text|json|openmetrics|prometheus (--json: json); --all: every lock of
    // the config directory (/etc/lockunit/*.toml), as --conf=DIRECTORY does for any directory.
    std::string format = "text";
    bool all = false;
};

// Parses argv, the options as the option table (config/options.hpp) spells them. Errors are
// Errc::Usage.
Result<CommandLine> parseCommandLine(int argc, char** argv);

} // namespace lockunit
