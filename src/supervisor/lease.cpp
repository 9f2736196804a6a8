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

TimePoint LeaseDeadline::stopAt() const {
    if (infinite_) return TimePoint::max();
    return deadline_ - stopTimeout_ - margin_;
}

} // namespace lockunit
