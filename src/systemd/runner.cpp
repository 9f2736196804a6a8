// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/runner.hpp"

#include "systemd/process_group.hpp"
#include "util/log.hpp"

namespace lockunit {

Result<std::unique_ptr<PayloadRunner>> makeRunner(const Config& config) {
    if (config.scope.value == ScopeMode::Yes)
        return makeError(Errc::Unavailable,
                         "--scope=yes: transient scopes are not supported by this build yet");
    log::debug("running the payload in its own process group");
    return std::unique_ptr<PayloadRunner>(std::make_unique<ProcessGroupRunner>());
}

} // namespace lockunit
