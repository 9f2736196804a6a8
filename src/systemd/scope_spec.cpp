// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/scope_spec.hpp"

#include <cstdio>

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
    // After lockunit's own, so that they win where both set one (Description=, Slice=, …).
    for (const auto& assignment : s.properties) {
        auto p = parseScopeProperty(assignment);
        if (!p) return p.error();
        props.push_back(std::move(*p));
    }
    return props;
}

} // namespace lockunit
