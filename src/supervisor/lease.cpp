// SPDX-License-Identifier: LGPL-2.1-or-later
#include "supervisor/lease.hpp"

#include <algorithm>

namespace lockunit {

void LeaseDeadline::confirm(TimePoint sentAt, Duration validity) {
    lastSent_ = std::max(lastSent_, sentAt);
    if (validity == kInfinity) {
        infinite_ = true;
        return;
    }
    infinite_ = false;
    // A late answer to an earlier call never moves the deadline backwards.
    deadline_ = std::max(deadline_, sentAt + validity - drift_);
}

TimePoint LeaseDeadline::renewDue(Duration renew, Duration ttl) const {
    if (infinite_) return lastSent_ + renew;
    // deadline_ = (confirmation + ttl − drift) for a lease confirmed with the full ttl.
    return std::min(lastSent_ + renew, deadline_ + drift_ - ttl + renew);
}

TimePoint LeaseDeadline::stopAt() const {
    if (infinite_) return TimePoint::max();
    return deadline_ - stopTimeout_ - margin_;
}

} // namespace lockunit
