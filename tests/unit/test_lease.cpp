// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include "supervisor/lease.hpp"

using namespace lockunit;
using namespace std::chrono_literals;

namespace {
const TimePoint t0 = TimePoint(std::chrono::hours(100));
}

TEST(LeaseDeadline, CountsFromTheSendTimeMinusDrift) {
    LeaseDeadline lease(Duration(152), Duration(5s), Duration(500));
    lease.confirm(t0, Duration(15s));
    EXPECT_EQ(lease.deadline(), t0 + 15s - 152ms);
    EXPECT_EQ(lease.stopAt(), t0 + 15s - 152ms - 5s - 500ms);
    EXPECT_FALSE(lease.mustStop(lease.stopAt() - 1ms));
    EXPECT_TRUE(lease.mustStop(lease.stopAt()));
}

TEST(LeaseDeadline, IsMovedOnlyByAConfirmation) {
    LeaseDeadline lease(Duration(0), Duration(1s), Duration(0));
    lease.confirm(t0, Duration(10s));
    // Time passes without a successful renewal: the deadline stays where it was.
    EXPECT_TRUE(lease.mustStop(t0 + 9s));
    lease.confirm(t0 + 5s, Duration(10s));
    EXPECT_FALSE(lease.mustStop(t0 + 9s));
    EXPECT_EQ(lease.deadline(), t0 + 15s);
}

TEST(LeaseDeadline, NeverMovesBackwardsOnALateAnswer) {
    LeaseDeadline lease(Duration(0), Duration(1s), Duration(0));
    lease.confirm(t0 + 5s, Duration(10s));
    lease.confirm(t0, Duration(10s)); // an older call's answer, arriving late
    EXPECT_EQ(lease.deadline(), t0 + 15s);
}

TEST(LeaseDeadline, InfiniteValidityNeverForcesAStop) {
    LeaseDeadline lease(Duration(10), Duration(1s), Duration(500));
    lease.confirm(t0, kInfinity);
    EXPECT_TRUE(lease.infinite());
    EXPECT_FALSE(lease.mustStop(t0 + std::chrono::hours(10000)));
}

TEST(LeaseDeadline, RemembersWhenTheNewestConfirmingCallWasSent) {
    LeaseDeadline lease(Duration(0), Duration(1s), Duration(0));
    lease.confirm(t0 + 5s, Duration(10s));
    lease.confirm(t0, Duration(10s));
    EXPECT_EQ(lease.lastSent(), t0 + 5s); // renewals are scheduled from it
}

TEST(LeaseDeadline, SchedulesTheRenewalFromTheCall) {
    LeaseDeadline lease(Duration(152), Duration(5s), Duration(500));
    lease.confirm(t0, Duration(15s));
    EXPECT_EQ(lease.renewDue(5s, 15s), t0 + 5s);
    // A backend that rounds the ttl up (etcd: whole seconds) does not delay the renewal.
    LeaseDeadline rounded(Duration(152), Duration(5s), Duration(500));
    rounded.confirm(t0, Duration(16s));
    EXPECT_EQ(rounded.renewDue(5s, 15500ms), t0 + 5s);
}

TEST(LeaseDeadline, SchedulesTheRenewalFromAnEarlierConfirmation) {
    // The acquiring call reported a lease that a keepalive sent 3 s before it confirmed: the
    // renewal is due renew after that keepalive, keeping its usual margin to the stop time.
    LeaseDeadline lease(Duration(152), Duration(5s), Duration(500));
    lease.confirm(t0, Duration(12s));
    EXPECT_EQ(lease.renewDue(5s, 15s), t0 - 3s + 5s);
    EXPECT_EQ(lease.stopAt() - lease.renewDue(5s, 15s), 15s - 152ms - 5s - 500ms - 5s);
}
