// SPDX-License-Identifier: LGPL-2.1-or-later
// The option table: every setting of lockunit once, with its config key, its command-line
// spelling, its help text and the check of its value (values.cpp). The command-line parser
// (src/cli/), the loader (load.cpp), --help (print.cpp) and the shell completions
// (src/completions/) all read it, so that an option is added in one place.
#include "config/options.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "config/values.hpp"
#include "util/text.hpp"

namespace lockunit {

namespace {

bool allDigits(const std::string& s) {
    return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), ::isdigit);
}

const std::vector<OptionSpec>& options() {
    static const std::vector<OptionSpec> table = {
        {"name", 0, "NAME", "lock name (default: the config file's stem, else the command's name)",
         true, stringOption(&Config::name)},
        {"backend", 0, "URL",
         "lock backend URL (default: file:///run/lock/lockunit for root, "
         "file://$XDG_RUNTIME_DIR/lockunit otherwise)",
         true, stringOption(&Config::backend)},
        {"ttl", 0, "DURATION", "lease time to live (default 15s)", true,
         durationOption(&Config::ttl, false)},
        {"renew", 0, "DURATION", "renew the lease this often (default ttl/3)", true,
         durationOption(&Config::renew, false)},
        {"wait", 0, "DURATION",
         "give up (exit 75) if not acquired within this; 0 = try once "
         "(default infinity)",
         true, durationOption(&Config::wait, true)},
        {"holders", 0, "N", "let N instances hold the lock at once (default 1)", true,
         countOption(&Config::holders, 1, 1000)},
        {"stop_signal", 0, "SIGNAL", "signal that asks the payload to stop (default SIGTERM)", true,
         signalOption(&Config::stopSignal)},
        {"stop_timeout", 0, "DURATION",
         "SIGKILL the payload this long after the stop signal "
         "(default 5s)",
         true, durationOption(&Config::stopTimeout, false)},
        {"forward_signals", 0, "LIST",
         "signals passed on to the payload (default "
         "SIGHUP,SIGUSR1,SIGUSR2; \"none\" for none)",
         true, signalListOption(&Config::forwardSignals)},
        {"forward_to", 0, "main|all",
         "forwarded signals reach the payload's main process or "
         "every process in its scope (default main)",
         true,
         enumOption(&Config::forwardTo, {{"main", ForwardTo::Main}, {"all", ForwardTo::All}})},
        {"notify", 0, "standby|running|relay",
         "when to report READY=1 to systemd "
         "(default standby)",
         true,
         enumOption(&Config::notify, {{"standby", NotifyMode::Standby},
                                      {"running", NotifyMode::Running},
                                      {"relay", NotifyMode::Relay}})},
        {"scope", 0, "auto|yes|no", "run the payload in a transient systemd scope (default auto)",
         true,
         enumOption(&Config::scope,
                    {{"auto", ScopeMode::Auto}, {"yes", ScopeMode::Yes}, {"no", ScopeMode::No}})},
        {"user", 0, nullptr, "talk to the user's service manager, not the system's", true,
         flagOption(&Config::user)},
        {"slice", 0, "SLICE", "slice for the payload's scope (scope mode)", true,
         patternOption(&Config::slice, "a unit name ending in \".slice\"",
                       [](const std::string& s) {
                           return s.size() > 6 && s.substr(s.size() - 6) == ".slice";
                       })},
        {"memory_max", 0, "BYTES", "MemoryMax= of the payload's scope, e.g. 512M (scope mode)",
         true,
         patternOption(&Config::memoryMax, "a size such as \"512M\", \"2G\" or \"infinity\"",
                       [](const std::string& s) {
                           if (s == "infinity") return true;
                           std::string digits = s;
                           if (!digits.empty() &&
                               std::string("KMGT").find(digits.back()) != std::string::npos)
                               digits.pop_back();
                           return allDigits(digits);
                       })},
        {"cpu_quota", 0, "PERCENT", "CPUQuota= of the payload's scope, e.g. 150% (scope mode)",
         true,
         patternOption(&Config::cpuQuota, "a percentage such as \"150%\"",
                       [](const std::string& s) {
                           return s.size() > 1 && s.back() == '%' &&
                                  allDigits(s.substr(0, s.size() - 1)) && std::atoll(s.c_str()) > 0;
                       })},
        {"tasks_max", 0, "N", "TasksMax= of the payload's scope (scope mode)", true,
         patternOption(&Config::tasksMax, "a number or \"infinity\"",
                       [](const std::string& s) {
                           return s == "infinity" || (allDigits(s) && std::atoll(s.c_str()) > 0);
                       })},
        {"description", 0, "TEXT",
         "Description= of the payload's scope (default: lockunit payload of lock 'NAME': COMMAND)",
         true, stringOption(&Config::description)},
        {"property", 'p', "NAME=VALUE",
         "set a property of the payload's scope as systemd-run -p does, e.g. MemoryHigh=1G "
         "(repeatable; scope mode)",
         true, propertyOption()},
        {"conflict_exit_code", 'E', "CODE",
         "exit with CODE when the lock is busy (default 75; not 64, 69, 70, 78 or 79)", true,
         exitCodeOption(&Config::conflictExitCode)},
        {"verbose", 'v', nullptr, "log debug messages", true, flagOption(&Config::verbose)},
        {"command", 0, nullptr, "the command to run, as an array (config file only)", false,
         commandOption()},
    };
    return table;
}

// Command-line spellings of flock(1) that stand for another option.
struct Alias {
    const char* flag;
    char shortName;
    const char* metavar; // nullptr: takes no value, stands for `value`
    const char* key;
    const char* value;
    const char* help;
};

const std::vector<Alias>& aliases() {
    static const std::vector<Alias> table = {
        {"nonblock", 'n', nullptr, "wait", "0",
         "try once, exit 75 if busy: --wait=0 (as flock -n)"},
        {"timeout", 'w', "SECS", "wait", nullptr, "the same as --wait (as flock -w)"},
    };
    return table;
}

const OptionSpec* findByFlag(std::string_view flag) {
    for (const auto& o : options())
        if (o.onCommandLine && flagName(o.key) == flag) return &o;
    return nullptr;
}

} // namespace

std::string flagName(const char* key) {
    std::string f = key;
    std::replace(f.begin(), f.end(), '_', '-');
    return f;
}

const OptionSpec* findByKey(std::string_view key) {
    for (const auto& o : options())
        if (key == o.key) return &o;
    return nullptr;
}

std::optional<OptionLookup> findOption(std::string_view flag) {
    for (const auto& a : aliases())
        if (flag == a.flag)
            return OptionLookup{a.key, a.metavar != nullptr, a.value ? a.value : ""};
    const OptionSpec* opt = findByFlag(flag);
    if (!opt) return std::nullopt;
    return OptionLookup{opt->key, opt->metavar != nullptr, ""};
}

std::optional<OptionLookup> findShortOption(char c) {
    for (const auto& o : commandLineOptions())
        if (o.shortName == c) return findOption(o.name);
    return std::nullopt;
}

std::vector<OptionInfo> commandLineOptions() {
    std::vector<OptionInfo> out;
    out.push_back({"conf", 0, "FILE", "read settings from this TOML file", {}});
    for (const auto& o : options()) {
        if (!o.onCommandLine) continue;
        OptionInfo info{flagName(o.key), o.shortName, o.metavar ? o.metavar : "", o.help, {}};
        if (info.metavar.find('|') != std::string::npos)
            for (auto choice : split(info.metavar, '|'))
                info.choices.emplace_back(choice);
        out.push_back(std::move(info));
    }
    for (const auto& a : aliases())
        out.push_back({a.flag, a.shortName, a.metavar ? a.metavar : "", a.help, {}});
    out.push_back({"format", 0, "FORMAT", "(status) text, json, openmetrics or prometheus", {}});
    out.push_back({"json", 0, "", "(status) the same as --format=json", {}});
    out.push_back({"all", 0, "", "(status) every lock of /etc/lockunit/*.toml", {}});
    out.push_back({"help", 'h', "", "show this help", {}});
    out.push_back({"version", 'V', "", "show the version", {}});
    return out;
}

std::vector<std::string> optionNames() {
    std::vector<std::string> out;
    for (const auto& o : commandLineOptions())
        out.push_back(o.name);
    return out;
}

std::vector<std::string> configKeys() {
    std::vector<std::string> out;
    for (const auto& o : options())
        out.emplace_back(o.key);
    return out;
}

} // namespace lockunit
