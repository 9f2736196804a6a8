// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <limits>

#include "config/scope_properties.hpp"

using namespace lockunit;

TEST(ScopeProperties, ParseSizesAsSystemdDoes) {
    EXPECT_EQ(*parseByteSize("1048576"), 1048576u);
    EXPECT_EQ(*parseByteSize("2G"), 2ull << 30);
    EXPECT_EQ(*parseByteSize("1K"), 1024u);
    EXPECT_EQ(*parseByteSize("infinity"), std::numeric_limits<uint64_t>::max());
    EXPECT_FALSE(parseByteSize("99999999999999999T"));
    EXPECT_FALSE(parseByteSize("12Q"));
    EXPECT_EQ(*parseCpuQuota("50%"), 500'000u);
    EXPECT_FALSE(parseCpuQuota("50"));
    EXPECT_FALSE(parseCpuQuota("0%"));
    EXPECT_EQ(*parseTasksMax("64"), 64u);
}

TEST(ScopeProperties, TakeSystemdRunsSyntaxForEveryTypeLockunitMarshals) {
    auto value = [](const char* assignment) {
        auto p = parseScopeProperty(assignment);
        EXPECT_TRUE(p.ok()) << assignment << ": " << (p ? "" : p.error().message);
        return p ? *p : ScopeProperty{};
    };
    EXPECT_EQ(value("MemoryHigh=1G"), (ScopeProperty{"MemoryHigh", uint64_t{1} << 30}));
    EXPECT_EQ(value("MemoryMax=infinity"),
              (ScopeProperty{"MemoryMax", std::numeric_limits<uint64_t>::max()}));
    EXPECT_EQ(value("CPUQuota=20%"), (ScopeProperty{"CPUQuotaPerSecUSec", uint64_t{200'000}}));
    EXPECT_EQ(value("RuntimeMaxSec=1h 30min"),
              (ScopeProperty{"RuntimeMaxUSec", uint64_t{5'400'000'000}}));
    EXPECT_EQ(value("RuntimeMaxSec=90"), (ScopeProperty{"RuntimeMaxUSec", uint64_t{90'000'000}}));
    EXPECT_EQ(value("TasksAccounting=yes"), (ScopeProperty{"TasksAccounting", true}));
    EXPECT_EQ(value("Delegate=off"), (ScopeProperty{"Delegate", false}));
    EXPECT_EQ(value("CPUWeight=50"), (ScopeProperty{"CPUWeight", uint64_t{50}}));
    EXPECT_EQ(value("TasksMax=64"), (ScopeProperty{"TasksMax", uint64_t{64}}));
    EXPECT_EQ(value("Description=a = b"), (ScopeProperty{"Description", std::string("a = b")}));
    EXPECT_EQ(value("DevicePolicy=closed"), (ScopeProperty{"DevicePolicy", std::string("closed")}));
    EXPECT_EQ(value("Wants=a.service  b.service"),
              (ScopeProperty{"Wants", std::vector<std::string>{"a.service", "b.service"}}));
}

TEST(ScopeProperties, RefuseWhatLockunitCannotMarshalOrSetsItself) {
    auto why = [](const char* assignment) {
        auto p = parseScopeProperty(assignment);
        return p ? std::string("accepted") : p.error().message;
    };
    EXPECT_NE(why("MemoryHihg=1G").find("'MemoryHihg' is not a scope property lockunit can set"),
              std::string::npos);
    EXPECT_NE(why("AllowedCPUs=0-1").find("is not a scope property"), std::string::npos);
    EXPECT_NE(why("After=x.service").find("'After' is set by lockunit"), std::string::npos);
    EXPECT_NE(why("KillMode=process").find("'KillMode' is set by lockunit"), std::string::npos);
    EXPECT_NE(why("MemoryMax=50%").find("not a percentage"), std::string::npos);
    EXPECT_NE(why("CPUWeight=0").find("from 1 to 10000"), std::string::npos);
    EXPECT_NE(why("Delegate=maybe").find("Delegate='maybe': expected yes or no"),
              std::string::npos);
    EXPECT_NE(why("RuntimeMaxSec=3.").find("expected a time span"), std::string::npos);
    EXPECT_NE(why("DevicePolicy=open").find("expected one of auto closed strict"),
              std::string::npos);
    EXPECT_NE(why("MemoryHigh").find("expected NAME=VALUE"), std::string::npos);
}
