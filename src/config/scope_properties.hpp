// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "util/result.hpp"

namespace lockunit {

// The scope's properties in systemd's syntax, as the config checks them and scope mode sends
// them (systemd/scope_spec.hpp builds the whole array). Pure: no D-Bus.

// A D-Bus property value in the shapes StartTransientUnit takes: s, b, i, t, au, as.
using PropertyValue = std::variant<std::string, bool, int32_t, uint64_t, std::vector<uint32_t>,
                                   std::vector<std::string>>;
struct ScopeProperty {
    std::string name;
    PropertyValue value;
    bool operator==(const ScopeProperty&) const = default;
};

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
