// SPDX-License-Identifier: LGPL-2.1-or-later
// The rules every backend shares: the URL scheme, the clock drift, the "reached once" rule.
#include <gtest/gtest.h>

#include "backends/reached_once.hpp"
#include "backends/registry.hpp"

using namespace lockunit;
using namespace std::chrono_literals;

TEST(UrlScheme, IsWhatComesBeforeTheSeparator) {
    EXPECT_EQ(backends::urlScheme("redis://127.0.0.1:6379/0"), "redis");
    EXPECT_EQ(backends::urlScheme("redis+sentinel://a,b/mymaster"), "redis+sentinel");
    EXPECT_EQ(backends::urlScheme("file:///run/lock/x"), "file");
    EXPECT_EQ(backends::urlScheme("postgres://u@h/db?x=a://b"), "postgres");
}

TEST(UrlScheme, IsEmptyForAUrlThatStartsWithTheSeparator) {
    EXPECT_EQ(backends::urlScheme("://host"), "");
}

TEST(UrlScheme, IsTheWholeTextWithoutASeparator) {
    EXPECT_EQ(backends::urlScheme(""), "");
    EXPECT_EQ(backends::urlScheme("redis"), "redis");
    EXPECT_EQ(backends::urlScheme("redis:/host"), "redis:/host");
}

TEST(ClockDrift, IsOnePercentOfTheTtlPlusTwoMilliseconds) {
    EXPECT_EQ(clockDrift(Duration(15s)), Duration(152));
    EXPECT_EQ(clockDrift(Duration(3s)), Duration(32));
    EXPECT_EQ(clockDrift(Duration(0)), Duration(2));
    EXPECT_EQ(clockDrift(Duration(150)), Duration(3)); // 1.5 ms rounds down
}

namespace {
Result<Lease> failed(Errc code) {
    return makeError(code, "x");
}
} // namespace

TEST(ReachedOnce, ExcusesNothingBeforeTheServerAnswered) {
    ReachedOnce reached;
    EXPECT_FALSE(reached);
    EXPECT_FALSE(reached.excuses(makeError(Errc::Unavailable, "connect: refused")));
    reached.note(failed(Errc::Unavailable));
    reached.note(failed(Errc::Refused));
    reached.note(failed(Errc::Interrupted));
    EXPECT_FALSE(reached);
}

TEST(ReachedOnce, ExcusesUnavailableOnceALeaseOrBusyCameBack) {
    ReachedOnce leased, busy;
    leased.note(Lease{Duration(15s), "1"});
    busy.note(failed(Errc::Busy));
    for (const ReachedOnce* r : {&leased, &busy}) {
        EXPECT_TRUE(*r);
        EXPECT_TRUE(r->excuses(makeError(Errc::Unavailable, "timeout")));
    }
}

TEST(ReachedOnce, NeverExcusesAnAnswerThatWillNotChange) {
    ReachedOnce reached;
    reached.mark();
    EXPECT_TRUE(reached);
    for (Errc code : {Errc::Refused, Errc::Config, Errc::Lost, Errc::Interrupted, Errc::System})
        EXPECT_FALSE(reached.excuses(makeError(code, "x")));
}

TEST(ReachedOnce, StaysReachedAfterLaterTrouble) {
    ReachedOnce reached;
    reached.note(failed(Errc::Busy));
    reached.note(failed(Errc::Unavailable));
    EXPECT_TRUE(reached.excuses(makeError(Errc::Unavailable, "x")));
}
