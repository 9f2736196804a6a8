// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include "backends/backend.hpp"
#include "config/config.hpp"

namespace lockunit {

// `lockunit status`: who holds the lock, since when, with which token; the lease's time left
// and the number of waiters where the backend can tell. Text, or one JSON object with --json.
// Exit 0 if held, 3 if free, 69 if the backend cannot be asked.
int printStatus(const Config& config, LockBackend& backend, bool json);

// The answer when the backend could not even be created (or asked): the message on stderr,
// and with --json also {"lock":…,"backend":…,"error":…} on stdout. Returns `exitCode`.
int printStatusError(const Config& config, const Error& error, bool json, int exitCode);

} // namespace lockunit
