// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <memory>

#include "config/config.hpp"
#include "systemd/payload.hpp"

namespace lockunit {

// Chooses how the payload runs (--scope): a transient systemd scope, or a process group.
Result<std::unique_ptr<PayloadRunner>> makeRunner(const Config& config);

} // namespace lockunit
