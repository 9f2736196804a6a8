// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include "app/status.hpp"

using namespace lockunit;

namespace {

LockReport heldLock() {
    LockReport r;
    r.lock = "re\"ports\\";
    r.backend = "redis";
    r.capacity = 2;
    HolderRecord h;
    h.id = "node1:812:ab";
    h.host = "node1";
    h.unit = "a\nb.service";
    h.pid = 812;
    h.since = "2026-01-01T10:00:00Z";
    h.token = "17";
    LockState state;
    state.holders = {h};
    state.leaseLeft = std::chrono::milliseconds(2500);
    state.waiters = 3;
    r.state = state;
    return r;
}

} // namespace

TEST(Metrics, LabelValuesAreEscapedAndEveryFigureIsThere) {
    auto text = formatMetrics({heldLock()}, StatusFormat::OpenMetrics);
    const std::string lock = "{lock=\"re\\\"ports\\\\\",backend=\"redis\"}";
    EXPECT_NE(text.find("lockunit_up" + lock + " 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("lockunit_held" + lock + " 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("lockunit_capacity" + lock + " 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("lockunit_waiters" + lock + " 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("lockunit_lease_left_seconds" + lock + " 2.500\n"), std::string::npos);
    EXPECT_NE(text.find(",holder=\"node1:812:ab\"} 17\n"), std::string::npos) << text;
    EXPECT_NE(text.find("unit=\"a\\nb.service\",pid=\"812\""), std::string::npos) << text;
    EXPECT_NE(text.find("# TYPE lockunit_holder info\n"), std::string::npos) << text;
    EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n");
}

TEST(Metrics, AnUnreachableBackendIsUpZeroAndNothingElse) {
    LockReport down;
    down.lock = "down";
    down.backend = "etcd";
    auto text = formatMetrics({down}, StatusFormat::OpenMetrics);
    const std::string up = "lockunit_up{lock=\"down\",backend=\"etcd\"} 0\n";
    auto at = text.find(up);
    ASSERT_NE(at, std::string::npos) << text;
    EXPECT_EQ(text.find("lock=\"down\"", at + up.size()), std::string::npos) << text;
}

TEST(Metrics, PrometheusTextHasNoInfoTypeAndNoEof) {
    auto text = formatMetrics({heldLock()}, StatusFormat::Prometheus);
    EXPECT_NE(text.find("# TYPE lockunit_holder_info gauge\n"), std::string::npos) << text;
    EXPECT_EQ(text.find(" info\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("# UNIT"), std::string::npos) << text;
    EXPECT_EQ(text.find("# EOF"), std::string::npos) << text;
}

TEST(Metrics, ALeaseThatLastsAsLongAsItsHolderIsInfinite) {
    auto r = heldLock();
    r.state->leaseLeft = kInfinity;
    auto text = formatMetrics({r}, StatusFormat::OpenMetrics);
    EXPECT_NE(text.find("lockunit_lease_left_seconds{lock=\"re\\\"ports\\\\\",backend=\"redis\"} "
                        "+Inf\n"),
              std::string::npos)
        << text;
}
