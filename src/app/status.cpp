// SPDX-License-Identifier: LGPL-2.1-or-later
#include "app/status.hpp"

#include <ctime>
#include <sstream>

#include "supervisor/supervisor.hpp"
#include "util/log.hpp"

namespace lockunit {
namespace {

inline constexpr int kExitFree = 3; // like `systemctl is-active`: not running, no error

std::string jsonString(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += '\\', out += c;
        else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else
            out += c;
    }
    return out + "\"";
}

std::string scheme(const Config& config) {
    const std::string& url = config.backend.value;
    return url.substr(0, url.find("://"));
}

// "3m12s" since a holder's "2026-11-26T04:08:47Z", or empty if that does not parse.
std::string heldFor(const std::string& since) {
    std::tm tm{};
    const char* end = ::strptime(since.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end) return "";
    std::time_t then = ::timegm(&tm), now = std::time(nullptr);
    if (then == -1 || now < then) return "";
    return formatDuration(std::chrono::seconds(now - then));
}

void printJson(const Config& config, const LockState& state) {
    std::ostringstream out;
    out << "{\"lock\":" << jsonString(config.name.value)
        << ",\"backend\":" << jsonString(scheme(config))
        << ",\"held\":" << (state.holders.empty() ? "false" : "true")
        << ",\"capacity\":" << config.holders.value << ",\"holders\":[";
    for (size_t i = 0; i < state.holders.size(); ++i) {
        const auto& h = state.holders[i];
        out << (i ? "," : "") << "{\"id\":" << jsonString(h.id)
            << ",\"host\":" << jsonString(h.host) << ",\"unit\":" << jsonString(h.unit)
            << ",\"pid\":" << h.pid << ",\"since\":" << jsonString(h.since)
            << ",\"token\":" << jsonString(h.token)
            << ",\"starts_at\":" << (h.startsAt.empty() ? "null" : jsonString(h.startsAt)) << "}";
    }
    out << "],\"lease_left_ms\":";
    if (state.leaseLeft && *state.leaseLeft != kInfinity)
        out << state.leaseLeft->count();
    else
        out << "null";
    out << ",\"lease_expires\":";
    if (!state.leaseLeft || state.holders.empty())
        out << "null";
    else
        out << (*state.leaseLeft == kInfinity ? "false" : "true");
    out << ",\"waiters\":";
    if (state.waiters)
        out << *state.waiters;
    else
        out << "null";
    out << ",\"not_granted\":"
        << (state.notGranted.empty() ? "null" : jsonString(state.notGranted));
    out << "}\n";
    log::printOut(out.str());
}

void printText(const Config& config, const LockState& state) {
    std::ostringstream out;
    const bool held = !state.holders.empty();
    out << "lock '" << config.name.value << "' on " << config.backend.value << ": "
        << (held ? "held" : "free");
    if (config.holders.value > 1)
        out << " (" << state.holders.size() << " of " << config.holders.value << " slots taken)";
    if (!state.notGranted.empty()) out << ", but " << state.notGranted;
    out << "\n";
    for (const auto& h : state.holders) {
        out << "  holder: " << h.host << (h.unit.empty() ? "" : "/" + h.unit) << ", pid " << h.pid
            << ", since " << h.since;
        if (auto d = heldFor(h.since); !d.empty()) out << " (" << d << " ago)";
        out << ", token " << (h.token.empty() ? "none" : h.token) << "\n";
        if (!h.startsAt.empty())
            out << "          lock-delay: its payload starts at " << h.startsAt
                << " (the previous holder ended without a release)\n";
        out << "          id " << h.id << "\n";
    }
    if (held) {
        if (!state.leaseLeft)
            out << "  lease left: unknown\n";
        else if (*state.leaseLeft == kInfinity)
            out << "  lease left: does not expire while the holder lives\n";
        else
            out << "  lease left: " << formatDuration(*state.leaseLeft) << "\n";
    }
    if (state.waiters)
        out << "  waiters: " << *state.waiters << "\n";
    else
        out << "  waiters: unknown (the " << scheme(config) << " backend cannot count them)\n";
    log::printOut(out.str());
}

} // namespace

int printStatus(const Config& config, LockBackend& backend, bool json) {
    NoInterrupt none;
    auto state = backend.inspect(none);
    if (!state) return printStatusError(config, state.error(), json, exitcode::Unavailable);
    if (json)
        printJson(config, *state);
    else
        printText(config, *state);
    return state->holders.empty() ? kExitFree : exitcode::Ok;
}

int printStatusError(const Config& config, const Error& error, bool json, int exitCode) {
    std::string message = "cannot ask backend '" + scheme(config) + "' about lock '" +
                          config.name.value + "': " + error.message;
    log::error(message);
    if (json)
        log::printOut("{\"lock\":" + jsonString(config.name.value) + ",\"backend\":" +
                      jsonString(scheme(config)) + ",\"error\":" + jsonString(message) + "}\n");
    return exitCode;
}

} // namespace lockunit
