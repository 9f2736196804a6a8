// SPDX-License-Identifier: LGPL-2.1-or-later
// The command line as flock(1) and getopt_long read it: long options as --name=VALUE or
// --name VALUE; short options clustered ("-nv"), a value either attached ("-w5") or the next
// argument ("-w 5"), the value-taking one ending its cluster ("-vw5" is -v -w 5). Options stop
// at "--" or at the first argument that is not one, so the command keeps its own flags.
#include "cli/command_line.hpp"

#include "config/options.hpp"

namespace lockunit {

namespace {

enum class Stop { No, Help, Version };

// Applies one cluster of short options ("-n", "-w5", "-nvw", "5"); says when -h or -V ends
// the parsing.
Result<Stop> takeShortCluster(CommandLine& cli, const std::string& arg, int& i, int argc,
                              char** argv) {
    for (size_t j = 1; j < arg.size(); ++j) {
        char c = arg[j];
        if (c == 'h') return Stop::Help;
        if (c == 'V') return Stop::Version;
        std::string flag = std::string("-") + c;
        auto opt = findShortOption(c);
        if (!opt)
            return makeError(Errc::Usage, "unknown option '" + flag + "' (see lockunit --help)");
        if (!opt->takesValue) {
            cli.options.push_back({opt->key, opt->fixedValue, flag});
            continue;
        }
        std::string value = arg.substr(j + 1);
        if (value.empty()) {
            if (i + 1 >= argc)
                return makeError(Errc::Usage, flag + " needs a value (see lockunit --help)");
            value = argv[++i];
        }
        cli.options.push_back({opt->key, value, flag});
        break;
    }
    return Stop::No;
}

Result<void> takeLong(CommandLine& cli, const std::string& arg, int& i, int argc, char** argv) {
    std::string flag = arg.substr(2), value;
    bool hasValue = false;
    if (auto eq = flag.find('='); eq != std::string::npos) {
        value = flag.substr(eq + 1);
        flag = flag.substr(0, eq);
        hasValue = true;
    }
    auto opt = flag == "conf" ? std::optional<OptionLookup>({"conf", true, ""}) : findOption(flag);
    if (!opt)
        return makeError(Errc::Usage, "unknown option '--" + flag + "' (see lockunit --help)");
    if (!opt->takesValue) {
        if (hasValue) return makeError(Errc::Usage, "--" + flag + " takes no value");
        cli.options.push_back({opt->key, opt->fixedValue, "--" + flag});
        return {};
    }
    if (!hasValue) {
        if (i + 1 >= argc)
            return makeError(Errc::Usage, "--" + flag + " needs a value (see lockunit --help)");
        value = argv[++i];
    }
    if (flag == "conf")
        cli.confPath = value;
    else
        cli.options.push_back({opt->key, value, "--" + flag});
    return {};
}

} // namespace

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
        if (arg == "--help") arg = "-h";
        if (arg == "--version") arg = "-V";
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
        if (arg[1] == '-') {
            if (auto r = takeLong(cli, arg, i, argc, argv); !r) return r.error();
            continue;
        }
        auto stop = takeShortCluster(cli, arg, i, argc, argv);
        if (!stop) return stop.error();
        if (*stop != Stop::No) {
            cli.action =
                *stop == Stop::Help ? CommandLine::Action::Help : CommandLine::Action::Version;
            return cli;
        }
    }
    for (; i < argc; ++i)
        cli.command.emplace_back(argv[i]);
    return cli;
}

} // namespace lockunit
