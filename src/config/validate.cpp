// SPDX-License-Identifier: LGPL-2.1-or-later
// The checks across settings, once every value has passed its own check (values.cpp): the
// defaults that depend on other settings (the lock name, the backend URL, renew), a name
// systemd and the backends accept, a backend lockunit has, the deadline rule's budget
// (docs/design.md, invariant 1) and a command to run.
#include "config/validate.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <unistd.h>

#include "backends/registry.hpp"

namespace lockunit {

void Problems::add(const Origin& at, const std::string& what) {
    lines.push_back(at.describe() + ": " + what);
    if (!at.fromCommandLine()) fromFile = true;
}

namespace {

std::string basename(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string stem(const std::string& path) {
    std::string b = basename(path);
    auto dot = b.rfind('.');
    return dot == std::string::npos || dot == 0 ? b : b.substr(0, dot);
}

bool validName(const std::string& name) {
    if (name.empty() || name.size() > 200 || name[0] == '.' || name[0] == '-') return false;
    return std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '@' || c == ':';
    });
}

std::string defaultBackend() {
    if (::geteuid() == 0) return "file:///run/lock/lockunit";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg)
        return std::string("file://") + xdg + "/lockunit";
    return "file:///tmp/lockunit-" + std::to_string(::geteuid());
}

} // namespace

void validate(Config& c, bool needCommand, Problems& problems) {
    if (c.name.value.empty()) {
        if (!c.confPath.empty())
            c.name.value = stem(c.confPath);
        else if (!c.command.value.empty())
            c.name.value = basename(c.command.value.front());
    }
    if (c.name.value.empty() && needCommand) {
        // reported with the missing command below
    } else if (!validName(c.name.value) && !c.name.value.empty()) {
        problems.add(c.name.origin, "name: expected letters, digits and _ - . @ : (at most 200), "
                                    "found '" +
                                        c.name.value + "'");
    }
    if (c.backend.value.empty()) c.backend.value = defaultBackend();
    const bool hasScheme = c.backend.value.find("://") != std::string::npos;
    const std::string scheme = hasScheme ? backends::urlScheme(c.backend.value) : "";
    if (!hasScheme)
        problems.add(c.backend.origin,
                     "backend: expected a URL such as redis://host:6379, found '" +
                         c.backend.value + "' (available: " + backends::schemeList() + ")");
    else if (auto known = backends::schemes();
             std::find(known.begin(), known.end(), scheme) == known.end())
        problems.add(c.backend.origin, "backend: unknown backend '" + scheme +
                                           "' (available: " + backends::schemeList() + ")");

    if (!c.renew.origin.isSet()) c.renew.value = c.ttl.value / 3;
    const Duration budget = c.renew.value + c.stopTimeout.value + c.margin() + c.drift();
    if (c.renew.value <= Duration::zero())
        problems.add(c.renew.origin, "renew: must be more than 0");
    else if (c.ttl.value <= Duration::zero())
        problems.add(c.ttl.origin, "ttl: must be more than 0");
    else if (budget >= c.ttl.value) {
        // Blame the value the operator set; the command line's when it is the only one.
        const Origin* blame = &c.ttl.origin;
        for (const Origin* o : {&c.ttl.origin, &c.stopTimeout.origin, &c.renew.origin})
            if (o->isSet() && !o->fromCommandLine()) blame = o;
        if (!blame->isSet())
            for (const Origin* o : {&c.ttl.origin, &c.stopTimeout.origin, &c.renew.origin})
                if (o->isSet()) blame = o;
        problems.add(*blame,
                     "ttl " + formatDuration(c.ttl.value) + " is too short: renew " +
                         formatDuration(c.renew.value) + " + stop_timeout " +
                         formatDuration(c.stopTimeout.value) + " + safety margin " +
                         formatDuration(c.margin() + c.drift()) + " = " + formatDuration(budget) +
                         " must stay under it, or the payload could outlive its lease (raise ttl "
                         "or lower renew/stop_timeout)");
    }
    if (needCommand && c.command.value.empty()) {
        Origin at;
        if (!c.confPath.empty()) {
            at.file = c.confPath;
            at.line = 1;
            at.column = 1;
        } else {
            at.flag = "command line";
        }
        problems.add(at,
                     "no command to run: give it after the options (lockunit [OPTIONS] -- "
                     "COMMAND [ARG...]) or as command = [\"/path\", \"arg\"] in the config file");
    }
}

} // namespace lockunit
