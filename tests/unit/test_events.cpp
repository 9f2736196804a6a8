// SPDX-License-Identifier: LGPL-2.1-or-later
#include <algorithm>
#include <fstream>
#include <gtest/gtest.h>
#include <set>
#include <string>

#include "util/log.hpp"

using namespace lockunit;

TEST(LockEvents, EachKindHasItsOwnNameAndMessageId) {
    std::set<std::string_view> names, ids;
    size_t index = 0;
    for (const auto& type : log::eventTypes()) {
        EXPECT_EQ(static_cast<size_t>(type.kind), index++) << type.name; // in EventKind's order
        EXPECT_EQ(&log::eventType(type.kind), &type);
        EXPECT_TRUE(names.insert(type.name).second) << type.name;
        EXPECT_TRUE(ids.insert(type.messageId).second) << type.messageId;
        ASSERT_EQ(type.messageId.size(), 32u) << type.name;
        EXPECT_TRUE(std::all_of(type.messageId.begin(), type.messageId.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        })) << type.messageId;
    }
    EXPECT_EQ(static_cast<size_t>(log::EventKind::LockDelay) + 1, log::eventTypes().size());
}

TEST(LockEvents, TheCatalogExplainsEveryMessageIdAndNoOther) {
    std::ifstream catalog(LOCKUNIT_CATALOG);
    ASSERT_TRUE(catalog) << LOCKUNIT_CATALOG;
    std::set<std::string> inCatalog, inCode;
    std::string line;
    while (std::getline(catalog, line))
        if (line.rfind("-- ", 0) == 0) inCatalog.insert(line.substr(3));
    for (const auto& type : log::eventTypes())
        inCode.emplace(type.messageId);
    EXPECT_EQ(inCatalog, inCode);
}
