// SPDX-License-Identifier: LGPL-2.1-or-later
#include "config/config.hpp"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <toml++/toml.h>
#include <unistd.h>
#include <variant>

#include "backends/registry.hpp"
#include "systemd/scope_spec.hpp"
#include "util/exitcode.hpp"
#include "util/signals.hpp"

namespace lockunit {

std::string Origin::describe() const {
    if (!file.empty()) return file + ":" + std::to_string(line) + ":" + std::to_string(column);
    if (!flag.empty()) return flag;
    return "default";
}

Duration Config::drift() const {
    return clockDrift(ttl.value);
}

Duration Config::margin() const {
    // Time to notice the deadline and to reap a killed payload, on a loaded machine.
    return std::chrono::milliseconds(500);
}

const BackendSettings& Config::backendSettings(const std::string& table) const {
    static const BackendSettings empty;
    auto it = backendTables.find(table);
    return it == backendTables.end() ? empty : it->second;
}

namespace {

// A value as it arrived, before it is checked: text from the command line; text, number,
// boolean or array from TOML.
using Raw = std::variant<std::string, long long, bool, std::vector<std::string>>;

std::string showRaw(const Raw& raw) {
    if (auto s = std::get_if<std::string>(&raw)) return "'" + *s + "'";
    if (auto i = std::get_if<long long>(&raw)) return "the integer " + std::to_string(*i);
    if (auto b = std::get_if<bool>(&raw)) return *b ? "true" : "false";
    return "an array";
}

// Checks one raw value and stores it; returns the complaint ("expected …, found …") if bad.
using Apply = std::function<std::optional<std::string>(Config&, const Raw&, const Origin&)>;

struct Option {
    const char* key;     // TOML key; the long option is the same with '-' for '_'
    char shortName;      // 0 if none
    const char* metavar; // nullptr: a flag that takes no value
    const char* help;
    bool onCommandLine;
    Apply apply;
};

std::optional<std::string> textOf(const Raw& raw, std::string& out) {
    if (auto s = std::get_if<std::string>(&raw)) {
        out = *s;
        return std::nullopt;
    }
    return "expected a string, found " + showRaw(raw);
}

// A span as systemd.time(7) reads it; a TOML integer is seconds, as a bare number is.
Result<Duration> spanOf(const Raw& raw) {
    if (auto i = std::get_if<long long>(&raw)) return parseSpan(std::to_string(*i));
    if (auto s = std::get_if<std::string>(&raw)) return parseSpan(*s);
    return makeError(Errc::Config, "not a time span");
}

std::string spanComplaint(const std::string& found, bool allowInfinity, const Error& why) {
    return std::string("expected a duration such as \"500ms\", \"15s\" or \"1m 30s\"") +
           (allowInfinity ? " (or \"infinity\")" : "") + ", found " + found + " (" + why.message +
           ")";
}

Apply durationOption(Setting<Duration> Config::*member, bool allowInfinity) {
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        auto d = spanOf(raw);
        if (d && !allowInfinity && *d == kInfinity)
            d = makeError(Errc::Config, "it may not be infinite");
        if (!d) return spanComplaint(showRaw(raw), allowInfinity, d.error());
        c.*member = {*d, o};
        return std::nullopt;
    };
}

Apply countOption(Setting<long long> Config::*member, long long min, long long max) {
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        long long n = 0;
        if (auto i = std::get_if<long long>(&raw))
            n = *i;
        else if (auto s = std::get_if<std::string>(&raw);
                 s && !s->empty() && std::all_of(s->begin(), s->end(), ::isdigit) && s->size() < 10)
            n = std::atoll(s->c_str());
        else
            return "expected a whole number, found " + showRaw(raw);
        if (n < min || n > max)
            return "expected a number from " + std::to_string(min) + " to " + std::to_string(max) +
                   ", found " + std::to_string(n);
        c.*member = {n, o};
        return std::nullopt;
    };
}

Apply stringOption(Setting<std::string> Config::*member) {
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        std::string text;
        if (auto err = textOf(raw, text)) return err;
        if (text.empty()) return std::string("expected a non-empty string, found ''");
        c.*member = {text, o};
        return std::nullopt;
    };
}

Apply signalOption(Setting<int> Config::*member) {
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        std::string text;
        if (auto err = textOf(raw, text)) return err;
        auto sig = parseSignal(text);
        if (!sig)
            return "expected a signal name such as \"SIGTERM\" or \"INT\", found " + showRaw(raw);
        c.*member = {*sig, o};
        return std::nullopt;
    };
}

Apply signalListOption(Setting<std::vector<int>> Config::*member) {
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        std::string joined;
        if (auto s = std::get_if<std::string>(&raw))
            joined = *s;
        else if (auto a = std::get_if<std::vector<std::string>>(&raw))
            for (const auto& e : *a)
                joined += (joined.empty() ? "" : ",") + e;
        else
            return "expected a list of signals such as \"SIGHUP,SIGUSR1\", found " + showRaw(raw);
        auto list = parseSignalList(joined);
        if (!list)
            return "expected a list of signals such as \"SIGHUP,SIGUSR1\", found " + showRaw(raw);
        for (int sig : *list)
            if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD)
                return signalName(sig) + " cannot be forwarded";
        c.*member = {*list, o};
        return std::nullopt;
    };
}

template <typename E>
Apply enumOption(Setting<E> Config::*member, std::vector<std::pair<const char*, E>> choices) {
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        std::string text, names;
        for (const auto& [n, v] : choices)
            names += std::string(names.empty() ? "" : ", ") + n;
        if (textOf(raw, text)) return "expected one of " + names + ", found " + showRaw(raw);
        for (const auto& [n, v] : choices)
            if (text == n) {
                c.*member = {v, o};
                return std::nullopt;
            }
        return "expected one of " + names + ", found " + showRaw(raw);
    };
}

Apply flagOption(Setting<bool> Config::*member) {
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        if (auto b = std::get_if<bool>(&raw)) {
            c.*member = {*b, o};
            return std::nullopt;
        }
        return "expected true or false, found " + showRaw(raw);
    };
}

Apply commandOption() {
    return [](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        auto a = std::get_if<std::vector<std::string>>(&raw);
        if (!a || a->empty() || a->front().empty())
            return "expected a non-empty array of strings such as [\"/usr/bin/x\", \"--flag\"], "
                   "found " +
                   (a ? std::string("an empty array") : showRaw(raw));
        c.command = {*a, o};
        return std::nullopt;
    };
}

// A size such as "512M", "2G", "1048576" or "infinity" (MemoryMax=, TasksMax= style).
Apply patternOption(Setting<std::string> Config::*member, const char* expected,
                    std::function<bool(const std::string&)> valid) {
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        std::string text;
        if (auto i = std::get_if<long long>(&raw))
            text = std::to_string(*i);
        else if (textOf(raw, text))
            return std::string("expected ") + expected + ", found " + showRaw(raw);
        if (!valid(text)) return std::string("expected ") + expected + ", found " + showRaw(raw);
        c.*member = {text, o};
        return std::nullopt;
    };
}

// Repeatable: the file's list first, then each --property, in order (a later one wins in
// systemd, as with systemd-run -p).
Apply propertyOption() {
    return [](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        std::vector<std::string> items;
        if (auto s = std::get_if<std::string>(&raw))
            items.push_back(*s);
        else if (auto a = std::get_if<std::vector<std::string>>(&raw))
            items = *a;
        else
            return "expected \"NAME=VALUE\" or an array of them, found " + showRaw(raw);
        for (const auto& item : items) {
            if (auto p = parseScopeProperty(item); !p) return p.error().message;
            c.properties.value.push_back(item);
        }
        c.properties.origin = o;
        return std::nullopt;
    };
}

// The busy code may be any exit code but lockunit's own, which mean something else.
Apply exitCodeOption(Setting<long long> Config::*member) {
    auto range = countOption(member, 0, 255);
    return [=](Config& c, const Raw& raw, const Origin& o) -> std::optional<std::string> {
        if (auto err = range(c, raw, o)) return err;
        for (int own : {exitcode::Usage, exitcode::Unavailable, exitcode::Software,
                        exitcode::Config, exitcode::Lost})
            if ((c.*member).value == own)
                return std::to_string(own) +
                       " is one of lockunit's own exit codes (64, 69, 70, 78, 79); choose another";
        return std::nullopt;
    };
}

bool allDigits(const std::string& s) {
    return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), ::isdigit);
}

const std::vector<Option>& options() {
    static const std::vector<Option> table = {
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

std::string flagName(const char* key) {
    std::string f = key;
    std::replace(f.begin(), f.end(), '_', '-');
    return f;
}

const Option* findByFlag(std::string_view flag) {
    for (const auto& o : options())
        if (o.onCommandLine && flagName(o.key) == flag) return &o;
    return nullptr;
}

const Option* findByKey(std::string_view key) {
    for (const auto& o : options())
        if (key == o.key) return &o;
    return nullptr;
}

// Collects errors; remembers whether any came from the config file.
struct Problems {
    std::vector<std::string> lines;
    bool fromFile = false;
    void add(const Origin& at, const std::string& what) {
        lines.push_back(at.describe() + ": " + what);
        if (!at.fromCommandLine()) fromFile = true;
    }
};

Origin originOf(const std::string& file, const toml::source_region& src) {
    Origin o;
    o.file = file;
    o.line = static_cast<int>(src.begin.line);
    o.column = static_cast<int>(src.begin.column);
    return o;
}

std::optional<Raw> rawOf(const toml::node& node) {
    if (auto s = node.as_string()) return Raw(s->get());
    if (auto i = node.as_integer()) return Raw(static_cast<long long>(i->get()));
    if (auto b = node.as_boolean()) return Raw(b->get());
    if (auto a = node.as_array()) {
        std::vector<std::string> items;
        for (const auto& e : *a) {
            if (!e.is_string()) return std::nullopt;
            items.push_back(e.as_string()->get());
        }
        return Raw(items);
    }
    return std::nullopt;
}

std::string tomlTypeName(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a floating-point number";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::date:
        return "a date";
    case toml::node_type::time:
        return "a time";
    case toml::node_type::date_time:
        return "a date-time";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::table:
        return "a table";
    default:
        return "nothing";
    }
}

std::string tableList() {
    std::string out;
    for (const auto& table : backends::tables())
        out += std::string(out.empty() ? "" : ", ") + "[" + table + "]";
    return out;
}

void loadBackendTable(Config& config, const BackendInfo& info, const toml::table& table,
                      const std::string& file, Problems& problems) {
    BackendSettings& settings = config.backendTables[std::string(info.table)];
    for (const auto& [k, node] : table) {
        std::string key(k.str());
        Origin at = originOf(file, node.source());
        Origin keyAt = originOf(file, k.source());
        auto spec = std::find_if(info.keys.begin(), info.keys.end(),
                                 [&](const KeySpec& s) { return s.name == key; });
        if (spec == info.keys.end()) {
            std::string known;
            for (const auto& s : info.keys)
                known += std::string(known.empty() ? "" : ", ") + std::string(s.name);
            problems.add(
                keyAt, std::string(info.table) + "." + key +
                           ": unknown key (known keys: " + (known.empty() ? "none" : known) + ")");
            continue;
        }
        std::string name = std::string(info.table) + "." + key + ": ";
        switch (spec->type) {
        case KeyType::String:
            if (auto s = node.as_string())
                settings.set(key, s->get(), at.describe());
            else
                problems.add(at, name + "expected a string, found " + tomlTypeName(node));
            break;
        case KeyType::SecretFile:
        case KeyType::TrustFile: {
            auto s = node.as_string();
            auto checked =
                s ? checkFilePermissions(s->get(), spec->type)
                  : makeError(Errc::Config, "expected a file name, found " + tomlTypeName(node));
            if (!checked)
                problems.add(at, name + checked.error().message);
            else if (!checked->empty())
                config.warnings.push_back(at.describe() + ": " + name + *checked);
            if (checked) settings.set(key, s->get(), at.describe());
            break;
        }
        case KeyType::Duration: {
            // Backend durations are timeouts: "infinity" would let a call outlast the lease.
            auto raw = rawOf(node);
            Result<Duration> d = raw ? spanOf(*raw) : makeError(Errc::Config, "not a time span");
            if (d && *d == kInfinity) d = makeError(Errc::Config, "it may not be infinite");
            if (d)
                settings.set(key, *d, at.describe());
            else
                problems.add(at, name + spanComplaint(raw ? showRaw(*raw) : tomlTypeName(node),
                                                      false, d.error()));
            break;
        }
        case KeyType::Integer:
            if (auto i = node.as_integer())
                settings.set(key, static_cast<long long>(i->get()), at.describe());
            else
                problems.add(at, name + "expected an integer, found " + tomlTypeName(node));
            break;
        case KeyType::Boolean:
            if (auto b = node.as_boolean())
                settings.set(key, b->get(), at.describe());
            else
                problems.add(at, name + "expected true or false, found " + tomlTypeName(node));
            break;
        }
    }
}

void loadFile(Config& config, const std::string& path, Problems& problems) {
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        Origin at;
        at.file = path;
        at.line = static_cast<int>(e.source().begin.line);
        at.column = static_cast<int>(e.source().begin.column);
        if (at.line == 0) {
            problems.lines.push_back(path + ": " + std::string(e.description()));
            problems.fromFile = true;
        } else {
            problems.add(at, "syntax error: " + std::string(e.description()));
        }
        return;
    }
    for (const auto& [k, node] : root) {
        std::string key(k.str());
        Origin at = originOf(path, node.source());
        Origin keyAt = originOf(path, k.source());
        if (auto table = node.as_table()) {
            auto info = backends::byTable(key);
            if (!info)
                problems.add(keyAt, "[" + key + "]: " + info.error().message);
            else if (*info)
                loadBackendTable(config, **info, *table, path, problems);
            else
                problems.add(keyAt,
                             "unknown table [" + key + "] (backend tables: " + tableList() + ")");
            continue;
        }
        const Option* opt = findByKey(key);
        if (!opt) {
            problems.add(keyAt, key + ": unknown key (see lockunit.toml(5))");
            continue;
        }
        auto raw = rawOf(node);
        if (!raw) {
            problems.add(at, key + ": unexpected " + tomlTypeName(node));
            continue;
        }
        if (auto err = opt->apply(config, *raw, at)) problems.add(at, key + ": " + *err);
    }
}

std::string basename(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string stem(const std::string& path) {
    std::string b = basename(path);
    auto dot = b.rfind('.');
    return dot == std::string::npos || dot == 0 ? b : b.substr(0, dot);
}

bool validName(const std::string& name) {
    if (name.empty() || name.size() > 200 || name[0] == '.' || name[0] == '-') return false;
    return std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '@' || c == ':';
    });
}

std::string defaultBackend() {
    if (::geteuid() == 0) return "file:///run/lock/lockunit";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg)
        return std::string("file://") + xdg + "/lockunit";
    return "file:///tmp/lockunit-" + std::to_string(::geteuid());
}

void validate(Config& c, bool needCommand, Problems& problems) {
    if (c.name.value.empty()) {
        if (!c.confPath.empty())
            c.name.value = stem(c.confPath);
        else if (!c.command.value.empty())
            c.name.value = basename(c.command.value.front());
    }
    if (c.name.value.empty() && needCommand) {
        // reported with the missing command below
    } else if (!validName(c.name.value) && !c.name.value.empty()) {
        problems.add(c.name.origin, "name: expected letters, digits and _ - . @ : (at most 200), "
                                    "found '" +
                                        c.name.value + "'");
    }
    if (c.backend.value.empty()) c.backend.value = defaultBackend();
    auto sep = c.backend.value.find("://");
    std::string scheme = sep == std::string::npos ? "" : c.backend.value.substr(0, sep);
    if (sep == std::string::npos)
        problems.add(c.backend.origin,
                     "backend: expected a URL such as redis://host:6379, found '" +
                         c.backend.value + "' (available: " + backends::schemeList() + ")");
    else if (auto known = backends::schemes();
             std::find(known.begin(), known.end(), scheme) == known.end())
        problems.add(c.backend.origin, "backend: unknown backend '" + scheme +
                                           "' (available: " + backends::schemeList() + ")");

    if (!c.renew.origin.isSet()) c.renew.value = c.ttl.value / 3;
    const Duration budget = c.renew.value + c.stopTimeout.value + c.margin() + c.drift();
    if (c.renew.value <= Duration::zero())
        problems.add(c.renew.origin, "renew: must be more than 0");
    else if (c.ttl.value <= Duration::zero())
        problems.add(c.ttl.origin, "ttl: must be more than 0");
    else if (budget >= c.ttl.value) {
        // Blame the value the operator set; the command line's when it is the only one.
        const Origin* blame = &c.ttl.origin;
        for (const Origin* o : {&c.ttl.origin, &c.stopTimeout.origin, &c.renew.origin})
            if (o->isSet() && !o->fromCommandLine()) blame = o;
        if (!blame->isSet())
            for (const Origin* o : {&c.ttl.origin, &c.stopTimeout.origin, &c.renew.origin})
                if (o->isSet()) blame = o;
        problems.add(*blame,
                     "ttl " + formatDuration(c.ttl.value) + " is too short: renew " +
                         formatDuration(c.renew.value) + " + stop_timeout " +
                         formatDuration(c.stopTimeout.value) + " + safety margin " +
                         formatDuration(c.margin() + c.drift()) + " = " + formatDuration(budget) +
                         " must stay under it, or the payload could outlive its lease (raise ttl "
                         "or lower renew/stop_timeout)");
    }
    if (needCommand && c.command.value.empty()) {
        Origin at;
        if (!c.confPath.empty()) {
            at.file = c.confPath;
            at.line = 1;
            at.column = 1;
        } else {
            at.flag = "command line";
        }
        problems.add(at,
                     "no command to run: give it after the options (lockunit [OPTIONS] -- "
                     "COMMAND [ARG...]) or as command = [\"/path\", \"arg\"] in the config file");
    }
}

} // namespace

std::optional<OptionLookup> findOption(std::string_view flag) {
    for (const auto& a : aliases())
        if (flag == a.flag)
            return OptionLookup{a.key, a.metavar != nullptr, a.value ? a.value : ""};
    const Option* opt = findByFlag(flag);
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
        if (info.metavar.find('|') != std::string::npos) {
            size_t start = 0, bar;
            while ((bar = info.metavar.find('|', start)) != std::string::npos) {
                info.choices.push_back(info.metavar.substr(start, bar - start));
                start = bar + 1;
            }
            info.choices.push_back(info.metavar.substr(start));
        }
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

Result<Config> loadConfig(const CommandLine& cli, bool needCommand) {
    Config config;
    Problems problems;
    config.confPath = cli.confPath;
    if (!cli.confPath.empty()) loadFile(config, cli.confPath, problems);
    for (const auto& [key, value, flag] : cli.options) {
        const Option* opt = findByKey(key);
        Origin at;
        at.flag = flag.empty() ? "--" + flagName(opt->key) : flag;
        Raw raw = opt->metavar ? Raw(value) : Raw(true);
        if (auto err = opt->apply(config, raw, at)) problems.add(at, *err);
    }
    if (!cli.command.empty()) {
        config.command.value = cli.command;
        config.command.origin.flag = "command line";
    }
    if (problems.lines.empty()) validate(config, needCommand, problems);
    if (problems.lines.empty()) return config;
    std::string text;
    for (const auto& line : problems.lines)
        text += (text.empty() ? "" : "\n") + line;
    return makeError(problems.fromFile ? Errc::Config : Errc::Usage, text);
}

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
