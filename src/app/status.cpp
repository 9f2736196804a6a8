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

// "3m12s" since a holder's "2026-11-26T04:08:47Z", or empty if that does not parse.
std::string heldFor(const std::string& since) {
    std::tm tm{};
    const char* end = ::strptime(since.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end) return "";
    std::time_t then = ::timegm(&tm), now = std::time(nullptr);
    if (then == -1 || now < then) return "";
    return formatDuration(std::chrono::seconds(now - then));
}

void printJson(const LockReport& report) {
    const LockState& state = *report.state;
    std::ostringstream out;
    out << "{\"lock\":" << jsonString(report.lock) << ",\"backend\":" << jsonString(report.backend)
        << ",\"held\":" << (state.holders.empty() ? "false" : "true")
        << ",\"capacity\":" << report.capacity << ",\"holders\":[";
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

void printText(const LockReport& report) {
    const LockState& state = *report.state;
    std::ostringstream out;
    const bool held = !state.holders.empty();
    out << "lock '" << report.lock << "' on " << report.url << ": " << (held ? "held" : "free");
    if (report.capacity > 1)
        out << " (" << state.holders.size() << " of " << report.capacity << " slots taken)";
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
        out << "  waiters: unknown (the " << report.backend << " backend cannot count them)\n";
    log::printOut(out.str());
}

// OpenMetrics / Prometheus text: a label value with \, " and newline escaped.
std::string labelValue(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\' || c == '"')
            out += '\\', out += c;
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string seconds(Duration d) {
    if (d == kInfinity) return "+Inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", std::chrono::duration<double>(d).count());
    return buf;
}

bool isNumber(const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// One metric family: its samples are added lock by lock, and it is printed whole, as both
// formats require (a family's samples together, after its TYPE and HELP).
struct Family {
    std::string name, type, unit, help;
    std::string samples;

    void add(const std::string& labels, const std::string& value, const std::string& suffix = "") {
        samples += name + suffix + "{" + labels + "} " + value + "\n";
    }
    std::string print(bool openMetrics) const {
        // node_exporter's parser knows no `info` type: there it is a gauge named *_info.
        const bool info = type == "info";
        std::string typeName = info && !openMetrics ? name + "_info" : name;
        std::string out = "# HELP " + typeName + " " + help + "\n";
        out += "# TYPE " + typeName + " " + (info && !openMetrics ? "gauge" : type) + "\n";
        if (openMetrics && !unit.empty()) out += "# UNIT " + name + " " + unit + "\n";
        return out + samples;
    }
};

} // namespace

std::string formatMetrics(const std::vector<LockReport>& reports, StatusFormat format) {
    Family up{"lockunit_up", "gauge", "",
              "Whether the lock's backend answered (1) or could not be reached (0).", ""};
    Family held{"lockunit_held", "gauge", "", "Whether the lock is held (1) or free (0).", ""};
    Family holders{"lockunit_holders", "gauge", "", "How many holders the lock has now.", ""};
    Family capacity{"lockunit_capacity", "gauge", "",
                    "How many holders the lock admits (the holders setting).", ""};
    Family waiters{"lockunit_waiters", "gauge", "",
                   "Instances waiting for the lock, where the backend can count them.", ""};
    Family token{"lockunit_fencing_token", "gauge", "",
                 "The fencing token of each holder's acquisition, where the backend has one.", ""};
    Family leaseLeft{"lockunit_lease_left_seconds", "gauge", "seconds",
                     "Time left on the holder's lease; +Inf while it lasts as long as the "
                     "holder (file).",
                     ""};
    Family holder{"lockunit_holder", "info", "", "Who holds the lock: one sample per holder.",
                  ""};
    for (const auto& r : reports) {
        const std::string lock = "lock=\"" + labelValue(r.lock) + "\",backend=\"" +
                                 labelValue(r.backend) + "\"";
        up.add(lock, r.state ? "1" : "0");
        if (!r.state) continue;
        const LockState& state = *r.state;
        held.add(lock, state.holders.empty() ? "0" : "1");
        holders.add(lock, std::to_string(state.holders.size()));
        capacity.add(lock, std::to_string(r.capacity));
        if (state.waiters) waiters.add(lock, std::to_string(*state.waiters));
        if (state.leaseLeft && !state.holders.empty()) leaseLeft.add(lock, seconds(*state.leaseLeft));
        for (const auto& h : state.holders) {
            const std::string id = lock + ",holder=\"" + labelValue(h.id) + "\"";
            if (isNumber(h.token)) token.add(id, h.token);
            holder.add(id + ",host=\"" + labelValue(h.host) + "\",unit=\"" + labelValue(h.unit) +
                           "\",pid=\"" + std::to_string(h.pid) + "\",since=\"" +
                           labelValue(h.since) + "\"",
                       "1", "_info");
        }
    }
    const bool openMetrics = format == StatusFormat::OpenMetrics;
    std::string out;
    for (const Family* f : {&up, &held, &holders, &capacity, &waiters, &token, &leaseLeft, &holder})
        out += f->print(openMetrics);
    return openMetrics ? out + "# EOF\n" : out;
}

int printStatus(const std::vector<LockReport>& reports, StatusFormat format) {
    for (const auto& r : reports)
        if (!r.state)
            log::error("cannot ask backend '" + r.backend + "' about lock '" + r.lock +
                       "': " + r.state.error().message);
    if (format == StatusFormat::OpenMetrics || format == StatusFormat::Prometheus) {
        log::printOut(formatMetrics(reports, format));
        return exitcode::Ok;
    }
    int code = exitcode::Ok;
    for (const auto& r : reports) {
        if (!r.state) {
            if (format == StatusFormat::Json)
                log::printOut("{\"lock\":" + jsonString(r.lock) +
                              ",\"backend\":" + jsonString(r.backend) + ",\"error\":" +
                              jsonString("cannot ask backend '" + r.backend + "' about lock '" +
                                         r.lock + "': " + r.state.error().message) +
                              "}\n");
            if (code == exitcode::Ok) code = r.errorExit;
        } else if (format == StatusFormat::Json)
            printJson(r);
        else
            printText(r);
    }
    // One lock: whether it is held, like `systemctl is-active`.
    if (reports.size() == 1 && code == exitcode::Ok && reports[0].state->holders.empty())
        return kExitFree;
    return code;
}

} // namespace lockunit
