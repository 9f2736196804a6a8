// SPDX-License-Identifier: LGPL-2.1-or-later
// The Config type's own rules: where a setting came from, and the deadline rule's margins.
#include "config/config.hpp"

#include "backends/backend.hpp" // clockDrift()

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

} // namespace lockunit
