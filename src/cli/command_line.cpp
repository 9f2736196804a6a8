// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cli/command_line.hpp"

#include "config/config.hpp"

namespace lockunit {

Result<CommandLine> parseCommandLine(int argc, char** argv) {
    CommandLine cli;
    int i = 1;
    if (i < argc && std::string_view(argv[i]) == "check") {
        cli.action = CommandLine::Action::Check;
        ++i;
    } else if (i < argc && std::string_view(argv[i]) == "status") {
        cli.action = CommandLine::Action::Status;
        ++i;
    } else if (i < argc && std::string_view(argv[i]) == "cleanup") {
        cli.action = CommandLine::Action::Cleanup;
        ++i;
    }
    for (; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg.size() < 2 || arg[0] != '-') break; // the command starts here
        if (arg == "-h" || arg == "--help") {
            cli.action = CommandLine::Action::Help;
            return cli;
        }
        if (arg == "-V" || arg == "--version") {
            cli.action = CommandLine::Action::Version;
            return cli;
        }
        if (arg == "-v") {
            cli.options.emplace_back("verbose", "");
            continue;
        }
        if (cli.action == CommandLine::Action::Status && (arg == "--json" || arg == "--all")) {
            if (arg == "--json")
                cli.format = "json";
            else
                cli.all = true;
            continue;
        }
        if (cli.action == CommandLine::Action::Status && arg.rfind("--format=", 0) == 0) {
            cli.format = arg.substr(9);
            if (cli.format != "text" && cli.format != "json" && cli.format != "openmetrics" &&
                cli.format != "prometheus")
                return makeError(Errc::Usage, "--format: expected text, json, openmetrics or "
                                              "prometheus, found '" + cli.format + "'");
            continue;
        }
        if (arg.rfind("--", 0) != 0)
            return makeError(Errc::Usage, "unknown option '" + arg + "' (see lockunit --help)");
        std::string flag = arg.substr(2), value;
        bool hasValue = false;
        if (auto eq = flag.find('='); eq != std::string::npos) {
            value = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
            hasValue = true;
        }
        auto opt = flag == "conf" ? std::nullopt : findOption(flag);
        if (flag != "conf" && !opt)
            return makeError(Errc::Usage, "unknown option '--" + flag + "' (see lockunit --help)");
        bool takesValue = flag == "conf" || opt->takesValue;
        if (!takesValue) {
            if (hasValue) return makeError(Errc::Usage, "--" + flag + " takes no value");
            cli.options.emplace_back(opt->key, "");
            continue;
        }
        if (!hasValue) {
            if (i + 1 >= argc)
                return makeError(Errc::Usage, "--" + flag + " needs a value (see lockunit --help)");
            value = argv[++i];
        }
        if (flag == "conf")
            cli.confPath = value;
        else
            cli.options.emplace_back(opt->key, value);
    }
    for (; i < argc; ++i)
        cli.command.emplace_back(argv[i]);
    return cli;
}

} // namespace lockunit
