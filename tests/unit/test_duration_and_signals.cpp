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

// The values are systemd 252's, from `systemd-analyze timespan`.
TEST(Duration, ReadsEverySpanAsSystemdDoes) {
    const std::pair<const char*, std::uint64_t> cases[] = {
        {"1.5s", 1'500'000},
        {"1m 30s", 90'000'000},
        {"1min30s", 90'000'000},
        {"500us", 500},
        {"2d", 172'800'000'000},
        {"5", 5'000'000},
        {"1.5", 1'500'000},
        {".5s", 500'000},
        {"1 2", 3'000'000},
        {"1s2", 3'000'000},
        {"5 s", 5'000'000},
        {"+5s", 5'000'000},
        {" 5s ", 5'000'000},
        {"1M", 2'629'800'000'000},
        {"1y", 31'557'600'000'000},
        {"1w", 604'800'000'000},
        {"3 weeks", 1'814'400'000'000},
        {"2 hours 1 minute", 7'260'000'000},
        {"1hr", 3'600'000'000},
        {"1day", 86'400'000'000},
        {"10usec", 10},
        {"10msec", 10'000},
        {"1 second", 1'000'000},
        {"2seconds", 2'000'000},
        {"1\u00b5s", 1},
        {"1\u03bcs", 1},
        {"0.0000001s", 0},
        {"1.25min", 75'000'000},
        {"infinity", kInfinityUsec},
        {" infinity ", kInfinityUsec},
    };
    for (const auto& [text, usec] : cases) {
        auto v = parseTimespanUsec(text);
        ASSERT_TRUE(v.ok()) << text << ": " << v.error().message;
        EXPECT_EQ(*v, usec) << text;
    }
}

TEST(Duration, RoundsASubMillisecondRestUp) {
    EXPECT_EQ(parseDuration("500us"), Duration(1));
    EXPECT_EQ(parseDuration("1.0005s"), Duration(1001));
    EXPECT_EQ(parseDuration("1.5s"), Duration(1500));
    EXPECT_EQ(parseDuration("15"), Duration(15s));
}

TEST(Duration, RefusesWhatSystemdRefusesAndSaysWhy) {
    const std::pair<const char*, const char*> cases[] = {
        {"", "empty"},
        {"  ", "empty"},
        {"s", "expected a number"},
        {"15x", "unknown unit at 'x'"},
        {"-1s", "negative"},
        {"3.", "followed by digits"},
        {"1.2.3", "unknown unit at '.3'"},
        {"inf", "expected a number"},
        {"1e3s", "unknown unit at 'e3s'"},
        {"infinity 5", "nothing may follow"},
        {"+.5s", "expected a number"},
        {"1S", "unknown unit"},
        {"99999999999999999999s", "too large"},
        {"600000y", "too large"},
    };
    for (const auto& [text, why] : cases) {
        auto v = parseTimespanUsec(text);
        ASSERT_FALSE(v.ok()) << text;
        EXPECT_NE(v.error().message.find(why), std::string::npos)
            << text << ": " << v.error().message;
    }
    EXPECT_FALSE(parseDuration("40y").has_value()); // beyond lockunit's 31 years
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
