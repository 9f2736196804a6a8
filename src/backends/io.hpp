// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <poll.h>

#include "backends/backend.hpp"
#include "util/clock.hpp"

namespace lockunit::io {

// Waits until `fd` is ready for `events` (POLLIN/POLLOUT), the deadline passes
// (Errc::Unavailable, "timed out"), or the interrupt asks us to stop (Errc::Interrupted).
// `what` names the operation for the error message. fd < 0 waits only for time/interrupt.
Result<void> waitFor(int fd, short events, TimePoint deadline, Interrupt& interrupt,
                     const char* what);

// Sleeps until the deadline unless interrupted.
Result<void> sleepUntil(TimePoint deadline, Interrupt& interrupt);

} // namespace lockunit::io
