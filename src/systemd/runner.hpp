// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include "process/guard.hpp"

#include <memory>
#include <string>

#include "config/config.hpp"
#include "process/payload.hpp"

namespace lockunit {

// The unit lockunit itself runs in: sd_pid_get_unit(), or sd_pid_get_user_unit() for the user
// manager. Errc::Unavailable when there is none (not started by systemd), and without
// userManager also when lockunit runs under a user's manager (the system unit is then that
// manager's user@UID.service, not lockunit's own).
Result<std::string> ownUnit(bool userManager);

// Chooses how the payload runs (--scope): a transient systemd scope, or a process group.
Result<std::unique_ptr<PayloadRunner>> makeRunner(const Config& config, Guard& guard);

} // namespace lockunit
