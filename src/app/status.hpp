// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include "backends/backend.hpp"
#include "config/config.hpp"

namespace lockunit {

// `lockunit status`: who holds the lock. Exit 0 if held, 3 if free, 69 if the backend cannot
// be asked.
int printStatus(const Config& config, LockBackend& backend, bool json);

} // namespace lockunit
