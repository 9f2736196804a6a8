// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "config/scope_properties.hpp"
#include "util/duration.hpp"
#include "util/result.hpp"

namespace lockunit {

// The pure half of scope mode: the scope's name and its properties, without D-Bus. The
// parsing of each property in systemd's syntax is config/scope_properties.hpp's, since the
// config checks --property with it.

// Escapes text for use inside a unit name exactly as `systemd-escape` does: '/' becomes '-',
// and every byte that is not an ASCII letter, digit, ':', '_' or '.' (and a leading '.')
// becomes "\xNN". The mapping is injective, so two units never share a scope name.
std::string escapeUnitNamePart(std::string_view text);

// The payload scope of the unit `ownUnit`: "lockunit-" + systemd-escape(ownUnit) + ".scope",
// e.g. "lockunit-lockunit\x40reports.service.scope" for lockunit@reports.service. Deterministic,
// so that a stale scope of a crashed run can be found and stopped. A name that would exceed
// systemd's 255-character limit is shortened and ends in a hash of the whole unit name.
std::string scopeNameFor(std::string_view ownUnit);

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

} // namespace lockunit
