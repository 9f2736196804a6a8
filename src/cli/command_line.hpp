// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "util/result.hpp"

namespace lockunit {

// The command line, before it is merged with the file: each value still as text.
struct CommandLine {
    enum class Action { Run, Check, Status, Cleanup, Help, Version };
    Action action = Action::Run;
    std::string confPath;
    struct Option {
        std::string key;   // the config key: "wait"
        std::string value; // as given: "5"; empty for a flag
        std::string flag;  // as spelled, for messages: "-w", "--timeout"
    };
    std::vector<Option> options; // in order
    std::vector<std::string> command;
    // status: --format=text|json|openmetrics|prometheus (--json: json); --all: every lock of
    // the config directory (/etc/lockunit/*.toml), as --conf=DIRECTORY does for any directory.
    std::string format = "text";
    bool all = false;
};

// Parses argv. Errors are Errc::Usage.
Result<CommandLine> parseCommandLine(int argc, char** argv);

} // namespace lockunit
