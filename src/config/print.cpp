// SPDX-License-Identifier: LGPL-2.1-or-later
// Printing: the resolved configuration for `lockunit check` (TOML, each value annotated with
// where it came from) and the text of --help, generated from the option table.
#include "config/print.hpp"

#include <sstream>

#include "backends/registry.hpp"
#include "config/options.hpp"
#include "util/signals.hpp"

namespace lockunit {

namespace {

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    return out + "\"";
}

template <typename E>
const char* enumName(E v, std::initializer_list<std::pair<const char*, E>> names) {
    for (const auto& [n, e] : names)
        if (e == v) return n;
    return "?";
}

} // namespace

std::string formatConfig(const Config& c) {
    std::ostringstream out;
    auto line = [&](const char* key, const std::string& value, const Origin& origin) {
        out << key << " = " << value << "  # " << origin.describe() << "\n";
    };
    line("name", quote(c.name.value), c.name.origin);
    line("backend", quote(c.backend.value), c.backend.origin);
    line("ttl", quote(formatDuration(c.ttl.value)), c.ttl.origin);
    line("renew", quote(formatDuration(c.renew.value)), c.renew.origin);
    line("wait", quote(formatDuration(c.wait.value)), c.wait.origin);
    line("holders", std::to_string(c.holders.value), c.holders.origin);
    line("stop_signal", quote(signalName(c.stopSignal.value)), c.stopSignal.origin);
    line("stop_timeout", quote(formatDuration(c.stopTimeout.value)), c.stopTimeout.origin);
    std::string sigs;
    for (int s : c.forwardSignals.value)
        sigs += (sigs.empty() ? "" : ",") + signalName(s);
    line("forward_signals", quote(sigs.empty() ? "none" : sigs), c.forwardSignals.origin);
    line("forward_to",
         quote(enumName(c.forwardTo.value,
                        {std::pair{"main", ForwardTo::Main}, std::pair{"all", ForwardTo::All}})),
         c.forwardTo.origin);
    line("notify",
         quote(enumName(c.notify.value, {std::pair{"standby", NotifyMode::Standby},
                                         std::pair{"running", NotifyMode::Running},
                                         std::pair{"relay", NotifyMode::Relay}})),
         c.notify.origin);
    line("scope",
         quote(enumName(c.scope.value,
                        {std::pair{"auto", ScopeMode::Auto}, std::pair{"yes", ScopeMode::Yes},
                         std::pair{"no", ScopeMode::No}})),
         c.scope.origin);
    line("user", c.user.value ? "true" : "false", c.user.origin);
    if (!c.slice.value.empty()) line("slice", quote(c.slice.value), c.slice.origin);
    if (!c.memoryMax.value.empty())
        line("memory_max", quote(c.memoryMax.value), c.memoryMax.origin);
    if (!c.cpuQuota.value.empty()) line("cpu_quota", quote(c.cpuQuota.value), c.cpuQuota.origin);
    if (!c.tasksMax.value.empty()) line("tasks_max", quote(c.tasksMax.value), c.tasksMax.origin);
    if (!c.description.value.empty())
        line("description", quote(c.description.value), c.description.origin);
    if (!c.properties.value.empty()) {
        std::string list;
        for (const auto& p : c.properties.value)
            list += (list.empty() ? "" : ", ") + quote(p);
        line("property", "[" + list + "]", c.properties.origin);
    }
    line("conflict_exit_code", std::to_string(c.conflictExitCode.value), c.conflictExitCode.origin);
    std::string cmd;
    for (const auto& a : c.command.value)
        cmd += (cmd.empty() ? "" : ", ") + quote(a);
    if (!c.command.value.empty()) line("command", "[" + cmd + "]", c.command.origin);
    out << "# safety margin (drift + margin): " << formatDuration(c.drift() + c.margin()) << "\n";
    for (const auto& [table, settings] : c.backendTables) {
        out << "\n[" << table << "]\n";
        for (const auto& key : settings.keys())
            out << key << " = " << settings.format(key) << "  # " << settings.origin(key) << "\n";
    }
    return out.str();
}

std::string helpText() {
    std::ostringstream out;
    out << "Usage: lockunit [OPTIONS] [--] COMMAND [ARG...]\n"
           "       lockunit check --conf=FILE [OPTIONS]\n"
           "       lockunit status --conf=FILE|DIR | --all [OPTIONS] [--format=FORMAT]\n"
           "       lockunit cleanup [--user] [-v]   (ExecStopPost=: stop this unit's payload "
           "scope)\n\n"
           "Runs COMMAND only while holding a distributed lock, as a cluster singleton.\n\n"
           "Options (each is also a key in the config file, with _ for -, except the\n"
           "flock(1) spellings --nonblock and --timeout):\n";
    for (const auto& o : commandLineOptions()) {
        std::string left = "  ";
        left += o.shortName ? std::string("-") + o.shortName + ", " : "";
        left += "--" + o.name;
        if (!o.metavar.empty()) left += "=" + o.metavar;
        if (left.size() < 29)
            left.resize(29, ' ');
        else
            left += "\n" + std::string(29, ' ');
        out << left << o.help << "\n";
    }
    out << "\n"
           "Backends: "
        << backends::schemeList()
        << "\n"
           "Exit codes: the payload's own (128+N if killed by signal N); 0 after a requested "
           "stop;\n  64 usage, 69 backend unavailable, 75 lock busy, 78 bad config, 79 lock lost.\n"
           "See lockunit(1) and lockunit.toml(5).\n";
    return out.str();
}

} // namespace lockunit
