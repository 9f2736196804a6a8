// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <poll.h>
#include <span>

#include "util/clock.hpp"
#include "util/event_loop.hpp"
#include "util/result.hpp"

namespace lockunit {

// The wait under every I/O call of a backend or of the D-Bus runner: it lets the call give way
// to a stop request (invariant 4: SIGTERM is acted on within 100 ms in every state) and to the
// lease deadline (no backend call can hold up the deadline rule). It is EventLoop::wait() of
// the loop the call runs in (docs/architecture.md, "One event loop").
class Interrupt {
public:
    virtual ~Interrupt() = default;
    // Waits until one of `fds` is ready (revents), `until` passes (CLOCK_BOOTTIME; all revents
    // 0), or a stop asks the call to give way: Errc::Interrupted, "WHAT: interrupted".
    virtual Result<void> wait(std::span<pollfd> fds, TimePoint until, const char* what) = 0;
};

// An Interrupt that never fires, for callers with nothing to be interrupted by.
class NoInterrupt final : public Interrupt {
public:
    Result<void> wait(std::span<pollfd> fds, TimePoint until, const char* what) override {
        return standaloneLoop().wait(fds, until, [] { return false; }, what);
    }
};

} // namespace lockunit
