// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backends/settings.hpp"
#include "cli/command_line.hpp"
#include "util/duration.hpp"
#include "util/result.hpp"

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

// Reads the file (if any), applies the command line over it, fills in defaults and validates.
// Errors (all of them, one per line) are Errc::Config, or Errc::Usage when every one of them
// came from the command line. `needCommand` is false for `check` and `status`.
Result<Config> loadConfig(const CommandLine& cli, bool needCommand);

// The resolved configuration as TOML, each value annotated with where it came from.
std::string formatConfig(const Config& config);

// The text of --help, generated from the option table.
std::string helpText();

// Every long option --help lists (without "--"), for the man-page test.
std::vector<std::string> optionNames();
// Every top-level config key.
std::vector<std::string> configKeys();

} // namespace lockunit
