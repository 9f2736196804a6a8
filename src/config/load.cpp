// SPDX-License-Identifier: LGPL-2.1-or-later
// Loading: the TOML file read with toml++ (each value checked by its option's check, each
// backend table against that backend's declared keys), then the command line applied over
// it, then the checks across settings (validate.cpp). Every error carries the place it came
// from, "reports.toml:12:9" or "--ttl", and all of them are reported at once.
// The only file that includes toml++ (see meson.build: the parser is compiled once).
#include "config/load.hpp"

#include <algorithm>
#include <toml++/toml.h>

#include "backends/registry.hpp"
#include "config/options.hpp"
#include "config/validate.hpp"
#include "config/values.hpp"
#include "util/file.hpp"

namespace lockunit {

namespace {

Origin originOf(const std::string& file, const toml::source_region& src) {
    Origin o;
    o.file = file;
    o.line = static_cast<int>(src.begin.line);
    o.column = static_cast<int>(src.begin.column);
    return o;
}

std::optional<RawValue> rawOf(const toml::node& node) {
    if (auto s = node.as_string()) return RawValue(s->get());
    if (auto i = node.as_integer()) return RawValue(static_cast<long long>(i->get()));
    if (auto b = node.as_boolean()) return RawValue(b->get());
    if (auto a = node.as_array()) {
        std::vector<std::string> items;
        for (const auto& e : *a) {
            if (!e.is_string()) return std::nullopt;
            items.push_back(e.as_string()->get());
        }
        return RawValue(items);
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
    // Read without iostream (util/file.hpp: toml::parse_file would build the C++ locale).
    auto text = readFile(path);
    if (!text) {
        problems.lines.push_back(errnoMessage(path + ": cannot read it"));
        problems.fromFile = true;
        return;
    }
    try {
        root = toml::parse(*text, path);
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
        const OptionSpec* opt = findByKey(key);
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

} // namespace

Result<Config> loadConfig(const CommandLineSettings& cli, bool needCommand) {
    Config config;
    Problems problems;
    config.confPath = cli.confPath;
    if (!cli.confPath.empty()) loadFile(config, cli.confPath, problems);
    for (const auto& [key, value, flag] : cli.options) {
        const OptionSpec* opt = findByKey(key);
        Origin at;
        at.flag = flag.empty() ? "--" + flagName(opt->key) : flag;
        RawValue raw = opt->metavar ? RawValue(value) : RawValue(true);
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

} // namespace lockunit
