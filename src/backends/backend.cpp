// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/backend.hpp"

#include <sstream>

namespace lockunit {

std::string HolderRecord::describe() const {
    std::string out = host.empty() ? std::string("unknown host") : host;
    if (!unit.empty())
        out += "/" + unit;
    else if (pid > 0)
        out += " pid " + std::to_string(pid);
    if (!since.empty()) out += " since " + since;
    if (!startsAt.empty()) out += ", in a lock-delay until " + startsAt;
    return out;
}

std::string HolderRecord::serialize() const {
    return "id=" + id + "\nhost=" + host + "\nunit=" + unit + "\npid=" + std::to_string(pid) +
           "\nsince=" + since + "\ntoken=" + token +
           "\nbudget_ms=" + std::to_string(stopBudget.count()) + "\n";
}

HolderRecord HolderRecord::parse(const std::string& text) {
    HolderRecord r;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string key = line.substr(0, eq), value = line.substr(eq + 1);
        if (key == "id")
            r.id = value;
        else if (key == "host")
            r.host = value;
        else if (key == "unit")
            r.unit = value;
        else if (key == "pid")
            r.pid = std::atol(value.c_str());
        else if (key == "since")
            r.since = value;
        else if (key == "token")
            r.token = value;
        else if (key == "budget_ms")
            r.stopBudget = Duration(std::atol(value.c_str()));
    }
    return r;
}

void addLockDelay(Lease& lease, const std::string& what, const std::string& previous,
                  Duration budget) {
    if (budget <= lease.delay) return;
    lease.delay = budget;
    lease.delayReason = "the " + what + " of its previous holder " + previous +
                        " ended without a release";
}

} // namespace lockunit
