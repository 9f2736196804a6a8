// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include "backends/backend.hpp"

namespace lockunit {

// The rule a backend that talks to a server keeps while it waits (docs/design.md, "Waiting
// through server trouble"): until the server has answered once, Unavailable ends the wait
// (exit 69: a wrong address or a server that is down should be seen at once); once it has
// answered (a lease, or Busy), a later Unavailable — a restart, a failover, a network blip —
// is a pause: the backend reports Busy, says why, and tries again.
class ReachedOnce {
public:
    // The server answered.
    void mark() { reached_ = true; }
    // Marks it when an attempt's result is an answer from the server: a lease, or Busy.
    void note(const Result<Lease>& attempt) {
        if (attempt || attempt.error().code == Errc::Busy) reached_ = true;
    }
    explicit operator bool() const { return reached_; }
    // Whether the error is one to wait through: Unavailable, after the server answered once.
    bool excuses(const Error& error) const { return reached_ && error.code == Errc::Unavailable; }

private:
    bool reached_ = false;
};

} // namespace lockunit
