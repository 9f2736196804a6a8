// SPDX-License-Identifier: LGPL-2.1-or-later
// One `--property NAME=VALUE` in systemd's syntax, turned into what StartTransientUnit takes.
// The table of the properties lockunit can marshal is kProperties below.
#include "config/scope_properties.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <optional>
#include <strings.h>

#include "util/duration.hpp"

namespace lockunit {

namespace {

Result<uint64_t> parseUnsigned(std::string_view text) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        return makeError(Errc::Config, "'" + std::string(text) + "' is not a number");
    return v;
}

// What a property's value is, in systemd's syntax, and how it goes over D-Bus.
enum class Kind {
    Boolean, // yes/no/true/false/on/off/1/0 → b
    Size,    // 512M, 1G, 1048576, infinity (1024-based) → t
    Tasks,   // 64, infinity → t
    Weight,  // 1..10000 → t
    Quota,   // 20%, 150% → t, in µs of CPU time per second
    Span,    // systemd.time(7) → t, in µs; the D-Bus name ends in USec
    Word,    // one of `choices`, or any text if there are none → s
    Slice,   // a unit name ending in .slice → s
    Units,   // unit names separated by spaces → as
    Managed, // lockunit sets it itself; `choices` says why
};

struct PropertySpec {
    std::string_view name; // as in systemd.resource-control(5) and systemd.scope(5)
    Kind kind;
    std::string_view dbusName = {}; // when it differs from the name
    std::string_view choices = {};  // Word: "a|b|c"; Managed: the reason
};

// The scope properties that `systemd-run --scope -p` takes and lockunit can marshal (D-Bus
// types b, t, s, as), as systemd 252 names them.
constexpr PropertySpec kProperties[] = {
    {"CPUAccounting", Kind::Boolean},
    {"MemoryAccounting", Kind::Boolean},
    {"IOAccounting", Kind::Boolean},
    {"TasksAccounting", Kind::Boolean},
    {"IPAccounting", Kind::Boolean},
    {"Delegate", Kind::Boolean},
    {"SendSIGHUP", Kind::Boolean},
    {"MemoryMin", Kind::Size},
    {"MemoryLow", Kind::Size},
    {"MemoryHigh", Kind::Size},
    {"MemoryMax", Kind::Size},
    {"MemorySwapMax", Kind::Size},
    {"TasksMax", Kind::Tasks},
    {"CPUWeight", Kind::Weight},
    {"StartupCPUWeight", Kind::Weight},
    {"IOWeight", Kind::Weight},
    {"StartupIOWeight", Kind::Weight},
    {"CPUQuota", Kind::Quota, "CPUQuotaPerSecUSec"},
    {"CPUQuotaPeriodSec", Kind::Span, "CPUQuotaPeriodUSec"},
    {"RuntimeMaxSec", Kind::Span, "RuntimeMaxUSec"},
    {"Description", Kind::Word},
    {"Slice", Kind::Slice},
    {"DevicePolicy", Kind::Word, {}, "auto|closed|strict"},
    {"ManagedOOMSwap", Kind::Word, {}, "auto|kill"},
    {"ManagedOOMMemoryPressure", Kind::Word, {}, "auto|kill"},
    {"ManagedOOMPreference", Kind::Word, {}, "none|avoid|omit"},
    {"Wants", Kind::Units},
    {"Requires", Kind::Units},
    {"Requisite", Kind::Units},
    {"BindsTo", Kind::Units},
    {"PartOf", Kind::Units},
    {"Conflicts", Kind::Units},
    {"Before", Kind::Units},
    {"After", Kind::Managed, {}, "the scope's start job would wait for lockunit's own start"},
    {"PIDs", Kind::Managed, {}, "lockunit puts the payload into the scope"},
    {"KillMode", Kind::Managed, {}, "lockunit's stop rule needs control-group"},
    {"KillSignal", Kind::Managed, {}, "use --stop-signal"},
    {"SendSIGKILL", Kind::Managed, {}, "lockunit's stop rule needs it"},
    {"TimeoutStopSec", Kind::Managed, {}, "use --stop-timeout"},
    {"CollectMode", Kind::Managed, {}, "lockunit needs the scope collected when it fails"},
};

std::optional<bool> parseBoolean(std::string_view v) {
    for (const char* yes : {"1", "yes", "y", "true", "t", "on"})
        if (v.size() == std::strlen(yes) && ::strncasecmp(v.data(), yes, v.size()) == 0)
            return true;
    for (const char* no : {"0", "no", "n", "false", "f", "off"})
        if (v.size() == std::strlen(no) && ::strncasecmp(v.data(), no, v.size()) == 0) return false;
    return std::nullopt;
}

Result<PropertyValue> parseValue(const PropertySpec& spec, std::string_view v) {
    auto number = [](Result<uint64_t> r) -> Result<PropertyValue> {
        if (!r) return r.error();
        return PropertyValue(*r);
    };
    switch (spec.kind) {
    case Kind::Boolean:
        if (auto b = parseBoolean(v)) return PropertyValue(*b);
        return makeError(Errc::Config, "expected yes or no");
    case Kind::Size:
        if (!v.empty() && v.back() == '%')
            return makeError(Errc::Config, "lockunit takes a size in bytes here, not a percentage");
        return number(parseByteSize(v));
    case Kind::Tasks:
        return number(parseTasksMax(v));
    case Kind::Weight: {
        auto n = parseUnsigned(v);
        if (!n || *n < 1 || *n > 10000)
            return makeError(Errc::Config, "expected a weight from 1 to 10000");
        return PropertyValue(*n);
    }
    case Kind::Quota:
        return number(parseCpuQuota(v));
    case Kind::Span: {
        auto usec = parseTimespanUsec(v);
        if (!usec) return makeError(Errc::Config, "expected a time span: " + usec.error().message);
        return PropertyValue(*usec);
    }
    case Kind::Word: {
        if (spec.choices.empty()) return PropertyValue(std::string(v));
        std::string choices(spec.choices);
        std::string bar = "|" + choices + "|";
        if (!v.empty() && bar.find("|" + std::string(v) + "|") != std::string::npos)
            return PropertyValue(std::string(v));
        std::replace(choices.begin(), choices.end(), '|', ' ');
        return makeError(Errc::Config, "expected one of " + choices);
    }
    case Kind::Slice:
        if (v.size() > 6 && v.substr(v.size() - 6) == ".slice")
            return PropertyValue(std::string(v));
        return makeError(Errc::Config, "expected a unit name ending in \".slice\"");
    case Kind::Units: {
        std::vector<std::string> units;
        size_t i = 0;
        while ((i = v.find_first_not_of(" \t", i)) != std::string_view::npos) {
            size_t end = std::min(v.find_first_of(" \t", i), v.size());
            units.emplace_back(v.substr(i, end - i));
            i = end;
        }
        if (units.empty()) return makeError(Errc::Config, "expected unit names");
        return PropertyValue(units);
    }
    case Kind::Managed:
        break; // refused by parseScopeProperty()
    }
    return makeError(Errc::Config, "unsupported");
}

} // namespace

Result<uint64_t> parseByteSize(std::string_view text) {
    if (text == "infinity") return std::numeric_limits<uint64_t>::max();
    uint64_t factor = 1;
    if (!text.empty()) {
        switch (text.back()) {
        case 'K':
            factor = 1ull << 10;
            break;
        case 'M':
            factor = 1ull << 20;
            break;
        case 'G':
            factor = 1ull << 30;
            break;
        case 'T':
            factor = 1ull << 40;
            break;
        default:
            break;
        }
        if (factor != 1) text.remove_suffix(1);
    }
    auto n = parseUnsigned(text);
    if (!n) return makeError(Errc::Config, "expected a size such as 512M, 2G or infinity");
    if (*n > std::numeric_limits<uint64_t>::max() / factor)
        return makeError(Errc::Config, "too large");
    return *n * factor;
}

Result<uint64_t> parseCpuQuota(std::string_view text) {
    if (text.empty() || text.back() != '%')
        return makeError(Errc::Config, "expected a percentage such as 150%");
    text.remove_suffix(1);
    auto n = parseUnsigned(text);
    if (!n) return makeError(Errc::Config, "expected a percentage such as 150%");
    if (*n == 0 || *n > std::numeric_limits<uint64_t>::max() / 10'000)
        return makeError(Errc::Config, "out of range");
    return *n * 10'000; // 100% = one CPU = 1 s of CPU time per second
}

Result<uint64_t> parseTasksMax(std::string_view text) {
    if (text == "infinity") return std::numeric_limits<uint64_t>::max();
    auto n = parseUnsigned(text);
    if (!n) return makeError(Errc::Config, "expected a number or infinity");
    return n;
}

Result<ScopeProperty> parseScopeProperty(std::string_view assignment) {
    auto eq = assignment.find('=');
    if (eq == std::string_view::npos || eq == 0)
        return makeError(Errc::Config,
                         "expected NAME=VALUE, found '" + std::string(assignment) + "'");
    std::string_view name = assignment.substr(0, eq), value = assignment.substr(eq + 1);
    auto spec = std::find_if(std::begin(kProperties), std::end(kProperties),
                             [&](const PropertySpec& p) { return p.name == name; });
    if (spec == std::end(kProperties)) {
        std::string known;
        for (const auto& n : scopePropertyNames())
            known += (known.empty() ? "" : ", ") + n;
        return makeError(Errc::Config,
                         "'" + std::string(name) +
                             "' is not a scope property lockunit can set (it can: " + known + ")");
    }
    if (spec->kind == Kind::Managed)
        return makeError(Errc::Config, "'" + std::string(name) + "' is set by lockunit (" +
                                           std::string(spec->choices) + ")");
    auto v = parseValue(*spec, value);
    if (!v)
        return makeError(Errc::Config,
                         std::string(name) + "='" + std::string(value) + "': " + v.error().message);
    return ScopeProperty{std::string(spec->dbusName.empty() ? spec->name : spec->dbusName), *v};
}

std::vector<std::string> scopePropertyNames() {
    std::vector<std::string> out;
    for (const auto& p : kProperties)
        if (p.kind != Kind::Managed) out.emplace_back(p.name);
    return out;
}

} // namespace lockunit
