// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/postgres/pg_protocol.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace lockunit::pg {

uint64_t fnv1a64(const std::string& text) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

int64_t advisoryKey(const std::string& name, int slot) {
    std::string input = "lockunit:" + name;
    if (slot > 0) input += "#" + std::to_string(slot);
    return static_cast<int64_t>(fnv1a64(input)); // two's complement since C++20
}

uint32_t keyClassId(int64_t key) {
    return static_cast<uint32_t>(static_cast<uint64_t>(key) >> 32);
}
uint32_t keyObjId(int64_t key) {
    return static_cast<uint32_t>(static_cast<uint64_t>(key));
}

std::string channelName(const std::string& name) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx",
                  static_cast<unsigned long long>(fnv1a64("lockunit:" + name)));
    return std::string("lockunit_") + hex;
}

namespace {

std::string clean(const std::string& s) {
    std::string out = s;
    for (char& c : out) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u > 0x7e || c == '|') c = '?';
    }
    return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t p = s.find(sep, start);
        out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
        if (p == std::string::npos) return out;
        start = p + 1;
    }
}

} // namespace

std::string encodeApplicationName(const HolderRecord& self, const std::string& token, long since,
                                  long startsAt) {
    std::string head = "lockunit|" + clean(token) + "|" + (since > 0 ? std::to_string(since) : "") +
                       "|" + std::to_string(self.pid) + "|" +
                       std::to_string(self.stopBudget.count()) +
                       (startsAt > 0 ? "@" + std::to_string(startsAt) : std::string()) + "|";
    std::string host = clean(self.host), unit = clean(self.unit);
    // The host matters more than the unit: cut the unit first.
    size_t room = kApplicationNameMax > head.size() ? kApplicationNameMax - head.size() : 0;
    if (host.size() + 1 > room) host.resize(room > 0 ? room - 1 : 0);
    std::string out = head + host + "|" + unit;
    if (out.size() > kApplicationNameMax) out.resize(kApplicationNameMax);
    return out;
}

bool parseApplicationName(const std::string& text, HolderRecord& out) {
    auto f = split(text, '|');
    if (f.size() < 6 || f[0] != "lockunit") return false;
    out = HolderRecord{};
    out.token = f[1];
    if (!f[2].empty())
        out.since = formatWallTime(static_cast<std::time_t>(std::atol(f[2].c_str())));
    out.pid = std::atol(f[3].c_str());
    out.stopBudget = Duration(std::atol(f[4].c_str()));
    if (auto at = f[4].find('@'); at != std::string::npos) {
        const long until = std::atol(f[4].c_str() + at + 1);
        if (until > static_cast<long>(std::time(nullptr))) // a lock-delay that is over is not shown
            out.startsAt = formatWallTime(static_cast<std::time_t>(until));
    }
    out.host = f[5];
    if (f.size() > 6) out.unit = f[6];
    out.id = out.host + ":" + f[3];
    return true;
}

std::string encodeEvent(const SlotEvent& e) {
    std::string slot = std::to_string(e.slot);
    if (e.released) return "released|" + slot + "|" + e.holder;
    return "acquired|" + slot + "|" + std::to_string(e.budget.count()) + "|" + e.holder;
}

bool parseEvent(const std::string& payload, SlotEvent& out) {
    auto f = split(payload, '|');
    if (f.size() == 3 && f[0] == "released") {
        out = SlotEvent{std::atoi(f[1].c_str()), true, Duration::zero(), f[2]};
        return true;
    }
    if (f.size() == 4 && f[0] == "acquired") {
        out = SlotEvent{std::atoi(f[1].c_str()), false, Duration(std::atol(f[2].c_str())), f[3]};
        return true;
    }
    return false;
}

} // namespace lockunit::pg
