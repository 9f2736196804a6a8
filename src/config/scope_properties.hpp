// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <variant>
#include <vector>

#include "util/duration.hpp"
#include "util/result.hpp"

namespace lockunit {

// The pure half of scope mode: the scope's name and its properties, without D-Bus. It sits in
// config/, below systemd/, because the config checks each --property with parseScopeProperty().

// Escapes text for use inside a unit name exactly as `systemd-escape` does: '/' becomes '-',
// and every byte that is not an ASCII letter, digit, ':', '_' or '.' (and a leading '.')
// becomes "\xNN". The mapping is injective, so two units never share a scope name.
std::string escapeUnitNamePart(std::string_view text);

// The payload scope of the unit `ownUnit`: "lockunit-" + systemd-escape(ownUnit) + ".scope",
// e.g. "lockunit-lockunit\x40reports.service.scope" for lockunit@reports.service. Deterministic,
// so that a stale scope of a crashed run can be found and stopped. A name that would exceed
// systemd's 255-character limit is shortened and ends in a hash of the whole unit name.
std::string scopeNameFor(std::string_view ownUnit);

// A D-Bus property value in the shapes StartTransientUnit takes: s, b, i, t, au, as.
using PropertyValue = std::variant<std::string, bool, int32_t, uint64_t, std::vector<uint32_t>,
                                   std::vector<std::string>>;
struct ScopeProperty {
    std::string name;
    PropertyValue value;
    bool operator==(const ScopeProperty&) const = default;
};

struct ScopeSettings {
    pid_t pid = -1;          // the lock guard: the scope's first process, the payload's parent
    std::string ownUnit;     // BindsTo= (never After=: the scope's start job would wait for us)
    std::string description; // "lockunit payload of lock 'x': /usr/bin/cmd …"
    int stopSignal = 15;
    Duration stopTimeout = std::chrono::seconds(5);
    // From the config, empty if unset; validated there.
    std::string slice, memoryMax, cpuQuota, tasksMax;
    std::vector<std::string> properties; // --property NAME=VALUE, in order
};

// The property array of StartTransientUnit for the payload's scope.
Result<std::vector<ScopeProperty>> scopeProperties(const ScopeSettings& settings);

// "512M" → 536870912 (1024-based K, M, G, T, as systemd reads MemoryMax=), "infinity" →
// UINT64_MAX.
Result<uint64_t> parseByteSize(std::string_view text);
// "150%" → 1500000 (CPUQuotaPerSecUSec).
Result<uint64_t> parseCpuQuota(std::string_view text);
// "64" → 64, "infinity" → UINT64_MAX.
Result<uint64_t> parseTasksMax(std::string_view text);

// One `--property NAME=VALUE` as `systemd-run --scope -p` reads it, in systemd's syntax:
// "MemoryHigh=1G" → {"MemoryHigh", t 1073741824}, "CPUQuota=20%" → {"CPUQuotaPerSecUSec",
// t 200000}, "RuntimeMaxSec=1h 30min" → {"RuntimeMaxUSec", t …}, "Wants=a.service b.service"
// → {"Wants", as […]}. Only properties whose D-Bus type lockunit marshals (b, t, s, as) and
// that lockunit does not set itself; anything else is Errc::Config saying why.
Result<ScopeProperty> parseScopeProperty(std::string_view assignment);
// The names parseScopeProperty() takes, for messages and completions.
std::vector<std::string> scopePropertyNames();

} // namespace lockunit
