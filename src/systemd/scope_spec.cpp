// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/scope_spec.hpp"

#include <charconv>
#include <cstdio>
#include <limits>

namespace lockunit {

namespace {

constexpr size_t kUnitNameMax = 255; // systemd's UNIT_NAME_MAX minus the terminating NUL
constexpr std::string_view kPrefix = "lockunit-";
constexpr std::string_view kSuffix = ".scope";

bool plainChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
           c == '_' || c == '.';
}

uint64_t fnv1a(std::string_view s) {
    uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

Result<uint64_t> parseUnsigned(std::string_view text, const char* what) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        return makeError(Errc::Config,
                         std::string(what) + ": '" + std::string(text) + "' is not a number");
    return v;
}

} // namespace

std::string escapeUnitNamePart(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '/') {
            out += '-';
        } else if (plainChar(c) && !(i == 0 && c == '.')) {
            out += c;
        } else {
            char buf[5];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
            out += buf;
        }
    }
    return out;
}

std::string scopeNameFor(std::string_view ownUnit) {
    std::string escaped = escapeUnitNamePart(ownUnit);
    std::string name = std::string(kPrefix) + escaped + std::string(kSuffix);
    if (name.size() <= kUnitNameMax) return name;
    // "-" + 16 hex digits of the hash keep distinct long names distinct.
    char hash[18];
    std::snprintf(hash, sizeof hash, "-%016llx", static_cast<unsigned long long>(fnv1a(ownUnit)));
    size_t keep = kUnitNameMax - kPrefix.size() - kSuffix.size() - 17;
    // Never cut an escape sequence in half.
    size_t cut = keep;
    for (size_t back = 1; back <= 3 && back <= cut; ++back)
        if (escaped[cut - back] == '\\') cut -= back;
    return std::string(kPrefix) + escaped.substr(0, cut) + hash + std::string(kSuffix);
}

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
    auto n = parseUnsigned(text, "memory_max");
    if (!n) return n.error();
    if (*n > std::numeric_limits<uint64_t>::max() / factor)
        return makeError(Errc::Config, "memory_max: too large");
    return *n * factor;
}

Result<uint64_t> parseCpuQuota(std::string_view text) {
    if (text.empty() || text.back() != '%')
        return makeError(Errc::Config,
                         "cpu_quota: '" + std::string(text) + "' is not a percentage");
    text.remove_suffix(1);
    auto n = parseUnsigned(text, "cpu_quota");
    if (!n) return n.error();
    if (*n == 0 || *n > std::numeric_limits<uint64_t>::max() / 10'000)
        return makeError(Errc::Config, "cpu_quota: out of range");
    return *n * 10'000; // 100% = one CPU = 1 s of CPU time per second
}

Result<uint64_t> parseTasksMax(std::string_view text) {
    if (text == "infinity") return std::numeric_limits<uint64_t>::max();
    return parseUnsigned(text, "tasks_max");
}

Result<std::vector<ScopeProperty>> scopeProperties(const ScopeSettings& s) {
    std::vector<ScopeProperty> props;
    props.push_back({"Description", s.description});
    props.push_back({"PIDs", std::vector<uint32_t>{static_cast<uint32_t>(s.pid)}});
    if (!s.ownUnit.empty()) props.push_back({"BindsTo", std::vector<std::string>{s.ownUnit}});
    props.push_back({"CollectMode", std::string("inactive-or-failed")});
    props.push_back({"KillMode", std::string("control-group")});
    props.push_back({"KillSignal", static_cast<int32_t>(s.stopSignal)});
    props.push_back({"SendSIGKILL", true});
    props.push_back(
        {"TimeoutStopUSec",
         static_cast<uint64_t>(
             std::chrono::duration_cast<std::chrono::microseconds>(s.stopTimeout).count())});
    if (!s.slice.empty()) props.push_back({"Slice", s.slice});
    if (!s.memoryMax.empty()) {
        auto v = parseByteSize(s.memoryMax);
        if (!v) return v.error();
        props.push_back({"MemoryMax", *v});
    }
    if (!s.cpuQuota.empty()) {
        auto v = parseCpuQuota(s.cpuQuota);
        if (!v) return v.error();
        props.push_back({"CPUQuotaPerSecUSec", *v});
    }
    if (!s.tasksMax.empty()) {
        auto v = parseTasksMax(s.tasksMax);
        if (!v) return v.error();
        props.push_back({"TasksMax", *v});
    }
    return props;
}

} // namespace lockunit
