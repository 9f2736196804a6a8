// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/runner.hpp"

#include <cstdlib>

#include "systemd/process_group.hpp"
#include "systemd/scope.hpp"
#include "util/log.hpp"

namespace lockunit {

Result<std::unique_ptr<PayloadRunner>> makeRunner(const Config& config) {
    const ScopeMode mode = config.scope.value;
    const bool user = config.user.value;
    auto processGroup = [](const std::string& why) {
        log::info("running the payload in its own process group (" + why + ")");
        return std::unique_ptr<PayloadRunner>(std::make_unique<ProcessGroupRunner>());
    };
    if (mode == ScopeMode::No) return processGroup("--scope=no");

    // Under systemd: started by a service manager (INVOCATION_ID), in a unit it can name.
    auto unit = ownUnit(user);
    if (mode == ScopeMode::Auto) {
        if (!std::getenv("INVOCATION_ID")) return processGroup("not started by systemd");
        if (!unit) return processGroup(unit.error().message);
    } else if (!unit) {
        return makeError(Errc::Unavailable,
                         "--scope=yes needs lockunit to run in a systemd unit (to bind the "
                         "payload's scope to it), but " +
                             unit.error().message);
    }

    ScopeRunner::Options options;
    options.userBus = user;
    options.ownUnit = *unit;
    options.slice = config.slice.value;
    options.memoryMax = config.memoryMax.value;
    options.cpuQuota = config.cpuQuota.value;
    options.tasksMax = config.tasksMax.value;
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
