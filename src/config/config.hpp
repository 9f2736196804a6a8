// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// The configuration as the rest of lockunit sees it: one validated Config. How it is made, one
// job per file: options.hpp (the option table), load.hpp (loadConfig(): the TOML file and the
// command line), values.hpp and validate.hpp (the checks of one value, and across values),
// print.hpp (`lockunit check` and --help), scope_properties.hpp (the scope's properties).

#include <map>
#include <string>
#include <vector>

#include "backends/settings.hpp"
#include "util/duration.hpp"

namespace lockunit {

enum class NotifyMode { Standby, Running, Relay };
enum class ScopeMode { Auto, Yes, No };
enum class ForwardTo { Main, All };

// Where a setting's value came from, so that an error can point at it.
struct Origin {
    std::string file; // config file, when set there
    int line = 0, column = 0;
    std::string flag; // "--ttl", when set on the command line
    bool isSet() const { return !file.empty() || !flag.empty(); }
    bool fromCommandLine() const { return !flag.empty(); }
    // "reports.toml:12:9", "--ttl", or "default".
    std::string describe() const;
};

template <typename T> struct Setting {
    Setting() = default;
    Setting(T v) : value(std::move(v)) {}
    Setting(T v, Origin o) : value(std::move(v)), origin(std::move(o)) {}
    T value{};
    Origin origin;
};

// One validated configuration: every option of the command line and the config file, merged
// (the command line wins), defaulted and checked. Nothing else in lockunit reads either source.
struct Config {
    std::string confPath; // --conf, empty if none

    Setting<std::string> name;    // lock name
    Setting<std::string> backend; // URL
    Setting<Duration> ttl{std::chrono::seconds(15)};
    Setting<Duration> renew;
    Setting<Duration> wait{kInfinity};
    Setting<long long> holders{1};
    Setting<int> stopSignal{15};
    Setting<Duration> stopTimeout{std::chrono::seconds(5)};
    Setting<std::vector<int>> forwardSignals{{1, 10, 12}};
    Setting<NotifyMode> notify{NotifyMode::Standby};
    Setting<ScopeMode> scope{ScopeMode::Auto};
    Setting<ForwardTo> forwardTo{ForwardTo::Main};
    Setting<bool> user{false};
    Setting<bool> verbose{false};
    Setting<long long> conflictExitCode{75}; // the exit code when the lock is busy
    Setting<std::vector<std::string>> command;

    // Transient scope properties (scope mode only).
    Setting<std::string> slice;
    Setting<std::string> memoryMax;               // "512M", "infinity"
    Setting<std::string> cpuQuota;                // "150%"
    Setting<std::string> tasksMax;                // "64", "infinity"
    Setting<std::string> description;             // Description=; empty: lockunit's own
    Setting<std::vector<std::string>> properties; // "NAME=VALUE" as systemd-run -p, validated

    // One table per backend that the file configured ([redis], [etcd], …), validated against
    // that backend's declared keys.
    std::map<std::string, BackendSettings> backendTables;
    // What is allowed but unwise ("reports.toml:7:1: redis.password_file: … can be read by its
    // group …"); the program logs them.
    std::vector<std::string> warnings;

    // The safety margin of the deadline rule (docs/design.md, invariant 1).
    Duration drift() const;
    Duration margin() const;
    const BackendSettings& backendSettings(const std::string& table) const;
};

} // namespace lockunit
