// SPDX-License-Identifier: LGPL-2.1-or-later
#include <csignal>
#include <gtest/gtest.h>

#include "util/clock.hpp"
#include "util/duration.hpp"
#include "util/signals.hpp"

using namespace lockunit;
using namespace std::chrono_literals;

TEST(Duration, ParsesEveryUnitAndCombinations) {
    EXPECT_EQ(parseDuration("500ms"), Duration(500));
    EXPECT_EQ(parseDuration("15s"), Duration(15s));
    EXPECT_EQ(parseDuration("2m"), Duration(2min));
    EXPECT_EQ(parseDuration("1h"), Duration(1h));
    EXPECT_EQ(parseDuration("1m30s"), Duration(90s));
    EXPECT_EQ(parseDuration("0"), Duration::zero());
    EXPECT_EQ(parseDuration("infinity"), kInfinity);
}

TEST(Duration, RefusesAmbiguousOrMalformedText) {
    for (const char* bad : {"", "15", "s", "15x", "-1s", "1.5s", "15 s", "inf", "s15"})
        EXPECT_FALSE(parseDuration(bad).has_value()) << bad;
}

TEST(Duration, FormatsTheShortestExactSpelling) {
    EXPECT_EQ(formatDuration(Duration(90s)), "1m30s");
    EXPECT_EQ(formatDuration(Duration(250)), "250ms");
    EXPECT_EQ(formatDuration(kInfinity), "infinity");
    EXPECT_EQ(formatDuration(Duration::zero()), "0");
}

TEST(WallTime, IsUtcInIso8601) {
    EXPECT_EQ(formatWallTime(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(formatWallTime(951782400), "2000-02-29T00:00:00Z");
    EXPECT_EQ(formatWallTime(1795677243), "2026-11-26T07:14:03Z");
    EXPECT_EQ(formatWallTime(4102444799), "2099-12-31T23:59:59Z");
}

TEST(Signals, AcceptNamesWithOrWithoutSigAndNumbers) {
    EXPECT_EQ(parseSignal("SIGTERM"), SIGTERM);
    EXPECT_EQ(parseSignal("term"), SIGTERM);
    EXPECT_EQ(parseSignal("HUP"), SIGHUP);
    EXPECT_EQ(parseSignal("9"), SIGKILL);
    EXPECT_EQ(parseSignal("SIGRTMIN+2"), SIGRTMIN + 2);
    EXPECT_FALSE(parseSignal("SIGFOO").has_value());
    EXPECT_FALSE(parseSignal("0").has_value());
    EXPECT_EQ(signalName(SIGUSR1), "SIGUSR1");
}

TEST(Signals, ListsAreCommaSeparatedAndDeduplicated) {
    auto list = parseSignalList("SIGHUP,USR1,hup");
    ASSERT_TRUE(list.has_value());
    EXPECT_EQ(*list, (std::vector<int>{SIGHUP, SIGUSR1}));
    EXPECT_TRUE(parseSignalList("none")->empty());
    EXPECT_FALSE(parseSignalList("HUP,BOGUS").has_value());
}
