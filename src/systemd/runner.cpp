// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/runner.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/libsystemd.hpp"
#include "process/process_group.hpp"
#include "systemd/scope.hpp"
#include "util/log.hpp"

namespace lockunit {

Result<std::string> ownUnit(bool userManager) {
    auto sd = libsystemd::get();
    if (!sd) return sd.error();
    char* unit = nullptr;
    int r = userManager ? (*sd)->pidGetUserUnit(0, &unit) : (*sd)->pidGetUnit(0, &unit);
    if (r < 0 || !unit)
        return makeError(
            Errc::Unavailable,
            errnoMessage(std::string(userManager ? "sd_pid_get_user_unit" : "sd_pid_get_unit") +
                             "() found no unit for lockunit",
                         r < 0 ? -r : ENODATA));
    std::string name = unit;
    std::free(unit);
    if (!userManager) {
        // In a unit of a user's service manager, sd_pid_get_unit() names that manager's own
        // unit (user@UID.service), which every lockunit under it would share: a scope bound to
        // it survives a dead lockunit, and one lockunit's start-up would stop another's scope.
        char* userUnit = nullptr;
        if ((*sd)->pidGetUserUnit(0, &userUnit) >= 0 && userUnit) {
            std::string inUser = userUnit;
            std::free(userUnit);
            return makeError(Errc::Unavailable,
                             "lockunit runs in '" + inUser + "' of a user's service manager ('" +
                                 name + "'), which only --user (user = true) talks to");
        }
    }
    return name;
}

Result<std::unique_ptr<PayloadRunner>> makeRunner(const Config& config, Guard& guard) {
    const ScopeMode mode = config.scope.value;
    const bool user = config.user.value;
    auto processGroup = [&guard](const std::string& why) {
        log::info("running the payload in its own process group (" + why + ")");
        return std::unique_ptr<PayloadRunner>(std::make_unique<ProcessGroupRunner>(guard));
    };
    if (mode == ScopeMode::No) return processGroup("--scope=no");

    // Under systemd: started by a service manager (INVOCATION_ID), in a unit it can name.
    if (mode == ScopeMode::Auto && !std::getenv("INVOCATION_ID"))
        return processGroup("not started by systemd");
    // Not finding libsystemd is a broken installation, not a reason to go without a scope.
    if (auto sd = libsystemd::get(); !sd) return sd.error();
    auto unit = ownUnit(user);
    if (mode == ScopeMode::Auto) {
        if (!unit) return processGroup(unit.error().message);
    } else if (!unit) {
        return makeError(Errc::Unavailable,
                         "--scope=yes needs lockunit to run in a systemd unit (to bind the "
                         "payload's scope to it), but " +
                             unit.error().message);
    }

    // The scope module is part of the installation: failing to load it is an error even with
    // --scope=auto (not a reason to run the payload without a scope).
    if (auto r = ScopeRunner::load(); !r) return r.error();

    ScopeRunner::Options options;
    options.userBus = user;
    options.ownUnit = *unit;
    options.slice = config.slice.value;
    options.memoryMax = config.memoryMax.value;
    options.cpuQuota = config.cpuQuota.value;
    options.tasksMax = config.tasksMax.value;
    options.guard = &guard;
    options.properties = config.properties.value;
    auto runner = ScopeRunner::connect(std::move(options));
    if (!runner) {
        if (mode == ScopeMode::Auto)
            return processGroup(runner.error().message + "; no transient scope possible");
        return makeError(Errc::Unavailable, "--scope=yes: " + runner.error().message);
    }
    log::info("running the payload in transient scope '" + (*runner)->scopeName() +
              "', bound to '" + *unit + "'");
    return std::unique_ptr<PayloadRunner>(std::move(*runner));
}

} // namespace lockunit
