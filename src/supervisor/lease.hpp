// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include "util/clock.hpp"
#include "util/duration.hpp"

namespace lockunit {

// The deadline rule (docs/design.md, invariant 1). A lease confirmed by a call that was *sent* at
// time S with validity V is ours until S + V − drift on our own CLOCK_BOOTTIME; we start
// stopping the payload stop_timeout + margin before that, so that it is dead before anyone
// else can get the lock. Only a successful acquire/renew moves the deadline.
class LeaseDeadline {
public:
    LeaseDeadline(Duration drift, Duration stopTimeout, Duration margin)
        : drift_(drift), stopTimeout_(stopTimeout), margin_(margin) {}

    void confirm(TimePoint sentAt, Duration validity);
    bool infinite() const { return infinite_; }
    TimePoint deadline() const { return deadline_; }
    // When the newest confirming call was sent: renewals are scheduled from it.
    TimePoint lastSent() const { return lastSent_; }
    // When the first renewal after a confirmation is due: `renew` after the confirmation. A
    // validity shorter than the ttl means etcd's waiter reported what an earlier keepalive
    // confirmed (see Lease::validity): the renewal is then due `renew` after that keepalive,
    // not after the call, so that it keeps the margin a renewal normally has.
    TimePoint renewDue(Duration renew, Duration ttl) const;
    // When to start stopping the payload.
    TimePoint stopAt() const;
    bool mustStop(TimePoint now) const { return !infinite_ && now >= stopAt(); }

private:
    Duration drift_, stopTimeout_, margin_;
    bool infinite_ = false;
    TimePoint deadline_{};
    TimePoint lastSent_{};
};

} // namespace lockunit
