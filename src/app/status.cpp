// SPDX-License-Identifier: LGPL-2.1-or-later
#include "app/status.hpp"

#include <iostream>
#include <sstream>

#include "supervisor/supervisor.hpp"
#include "util/log.hpp"

namespace lockunit {
namespace {

std::string jsonString(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += c;
        else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += c;
    }
    return out + "\"";
}

} // namespace

int printStatus(const Config& config, LockBackend& backend, bool json) {
    NoInterrupt none;
    auto state = backend.inspect(none);
    if (!state) {
        log::error("cannot ask backend about lock '" + config.name.value + "': " +
                   state.error().message);
        return exitcode::Unavailable;
    }
    const bool held = !state->holders.empty();
    if (json) {
        std::ostringstream out;
        out << "{\"lock\":" << jsonString(config.name.value)
            << ",\"backend\":" << jsonString(config.backend.value.substr(0, config.backend.value.find("://")))
            << ",\"held\":" << (held ? "true" : "false") << ",\"holders\":[";
        for (size_t i = 0; i < state->holders.size(); ++i) {
            const auto& h = state->holders[i];
            out << (i ? "," : "") << "{\"id\":" << jsonString(h.id) << ",\"host\":" << jsonString(h.host)
                << ",\"unit\":" << jsonString(h.unit) << ",\"pid\":" << h.pid
                << ",\"since\":" << jsonString(h.since) << ",\"token\":" << jsonString(h.token) << "}";
        }
        out << "]";
        if (state->leaseLeft) out << ",\"lease_left_ms\":" << state->leaseLeft->count();
        if (state->waiters) out << ",\"waiters\":" << *state->waiters;
        out << "}\n";
        std::cout << out.str();
    } else {
        std::cout << "lock '" << config.name.value << "' on " << config.backend.value << ": "
                  << (held ? "held" : "free") << "\n";
        for (const auto& h : state->holders) {
            std::cout << "  holder: " << h.host << (h.unit.empty() ? "" : "/" + h.unit)
                      << " pid " << h.pid << " since " << h.since;
            if (!h.token.empty()) std::cout << " token " << h.token;
            std::cout << "\n";
        }
        if (state->leaseLeft) std::cout << "  lease left: " << formatDuration(*state->leaseLeft) << "\n";
        if (state->waiters) std::cout << "  waiters: " << *state->waiters << "\n";
    }
    return held ? 0 : 3;
}

} // namespace lockunit
