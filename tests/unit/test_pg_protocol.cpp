// SPDX-License-Identifier: LGPL-2.1-or-later
// The postgres backend's documented key derivation and holder-record encoding: other tools
// (and operators reading pg_locks) rely on these exact values.

#include <ctime>
#include <gtest/gtest.h>

#include "backends/postgres/pg_protocol.hpp"
#include "util/clock.hpp"

using namespace lockunit;

TEST(PgProtocol, Fnv1aMatchesTheReferenceVectors) {
    EXPECT_EQ(pg::fnv1a64(""), 0xcbf29ce484222325ULL);
    EXPECT_EQ(pg::fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
    EXPECT_EQ(pg::fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(PgProtocol, AdvisoryKeyIsTheSignedHashOfThePrefixedName) {
    EXPECT_EQ(pg::advisoryKey("jobs", 0), 3811078153160527434LL);
    EXPECT_EQ(pg::advisoryKey("jobs", 1), -6904242501031179026LL); // "lockunit:jobs#1"
    EXPECT_NE(pg::advisoryKey("jobs", 1), pg::advisoryKey("jobs", 2));
}

TEST(PgProtocol, KeySplitsIntoClassIdAndObjIdAsPgLocksShowsIt) {
    int64_t key = pg::advisoryKey("jobs", 1);
    EXPECT_EQ(pg::keyClassId(key), 2687448070U);
    EXPECT_EQ(pg::keyObjId(key), 2330053870U);
}

TEST(PgProtocol, ChannelIsAPlainIdentifierFromSlotZero) {
    EXPECT_EQ(pg::channelName("jobs"), "lockunit_34e3ab636a628e4a");
}

TEST(PgProtocol, ApplicationNameRoundTripsTheHolderRecord) {
    HolderRecord self;
    self.host = "db-worker-3";
    self.unit = "reports.service";
    self.pid = 4242;
    self.stopBudget = std::chrono::milliseconds(10500);
    auto text = pg::encodeApplicationName(self, "17", 1700000000);
    EXPECT_EQ(text, "lockunit|17|1700000000|4242|10500|db-worker-3|reports.service");
    HolderRecord back;
    ASSERT_TRUE(pg::parseApplicationName(text, back));
    EXPECT_EQ(back.host, "db-worker-3");
    EXPECT_EQ(back.unit, "reports.service");
    EXPECT_EQ(back.pid, 4242);
    EXPECT_EQ(back.token, "17");
    EXPECT_EQ(back.since, "2023-11-14T22:13:20Z");
    EXPECT_EQ(back.stopBudget, std::chrono::milliseconds(10500));
}

TEST(PgProtocol, ApplicationNameFitsIn63BytesAndCutsTheUnitFirst) {
    HolderRecord self;
    self.host = std::string(40, 'h');
    self.unit = "a-rather-long-unit-name.service";
    self.pid = 1234567;
    auto text = pg::encodeApplicationName(self, "123456789", 1700000000);
    EXPECT_LE(text.size(), pg::kApplicationNameMax);
    HolderRecord back;
    ASSERT_TRUE(pg::parseApplicationName(text, back));
    EXPECT_EQ(back.host, self.host.substr(0, back.host.size()));
    EXPECT_EQ(back.pid, 1234567);
    EXPECT_EQ(back.token, "123456789");
}

TEST(PgProtocol, ApplicationNameReplacesSeparatorsAndNonAscii) {
    HolderRecord self;
    self.host = "we|ird\xc3\xa9";
    auto text = pg::encodeApplicationName(self, "", 0);
    EXPECT_EQ(text, "lockunit|||0|0|we?ird??|");
    HolderRecord back;
    EXPECT_FALSE(pg::parseApplicationName("psql", back));
    EXPECT_TRUE(pg::parseApplicationName(text, back));
    EXPECT_EQ(back.since, "");
}

TEST(PgProtocol, ApplicationNameCarriesTheEndOfALockDelayWhileItLasts) {
    HolderRecord self;
    self.host = "h";
    self.pid = 7;
    self.stopBudget = std::chrono::milliseconds(1500);
    const long future = static_cast<long>(std::time(nullptr)) + 60;
    auto text = pg::encodeApplicationName(self, "3", 1700000000, future);
    EXPECT_EQ(text, "lockunit|3|1700000000|7|1500@" + std::to_string(future) + "|h|");
    HolderRecord back;
    ASSERT_TRUE(pg::parseApplicationName(text, back));
    EXPECT_EQ(back.stopBudget, std::chrono::milliseconds(1500));
    EXPECT_EQ(back.startsAt, formatWallTime(static_cast<std::time_t>(future)));
    ASSERT_TRUE(pg::parseApplicationName(pg::encodeApplicationName(self, "3", 1700000000, 1000),
                                         back));
    EXPECT_EQ(back.startsAt, ""); // over
}

TEST(PgProtocol, SlotEventsRoundTripAndForeignPayloadsAreNotOurs) {
    pg::SlotEvent acquired{2, false, std::chrono::milliseconds(2500), "h1:42:00ff"};
    EXPECT_EQ(pg::encodeEvent(acquired), "acquired|2|2500|h1:42:00ff");
    pg::SlotEvent back;
    ASSERT_TRUE(pg::parseEvent(pg::encodeEvent(acquired), back));
    EXPECT_EQ(back.slot, 2);
    EXPECT_FALSE(back.released);
    EXPECT_EQ(back.budget, std::chrono::milliseconds(2500));
    EXPECT_EQ(back.holder, "h1:42:00ff");
    ASSERT_TRUE(pg::parseEvent("released|0|h1:42:00ff", back));
    EXPECT_TRUE(back.released);
    EXPECT_EQ(back.slot, 0);
    EXPECT_EQ(back.holder, "h1:42:00ff");
    EXPECT_FALSE(pg::parseEvent("", back));
    EXPECT_FALSE(pg::parseEvent("hello", back));
}
