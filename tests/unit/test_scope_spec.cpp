// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <limits>

#include "systemd/scope_spec.hpp"

using namespace lockunit;

namespace {

const ScopeProperty* find(const std::vector<ScopeProperty>& props, const std::string& name) {
    for (const auto& p : props)
        if (p.name == name) return &p;
    return nullptr;
}

} // namespace

TEST(ScopeName, EscapesLikeSystemdEscape) {
    // What `systemd-escape 'lockunit@reports.service'` prints.
    EXPECT_EQ(escapeUnitNamePart("lockunit@reports.service"), "lockunit\\x40reports.service");
    EXPECT_EQ(escapeUnitNamePart("my-app.service"), "my\\x2dapp.service");
    EXPECT_EQ(escapeUnitNamePart("a/b"), "a-b");
    EXPECT_EQ(escapeUnitNamePart(".hidden"), "\\x2ehidden");
    EXPECT_EQ(escapeUnitNamePart("x:y_z.service"), "x:y_z.service");
    EXPECT_EQ(escapeUnitNamePart("a\\b"), "a\\x5cb");
}

TEST(ScopeName, IsDerivedFromTheOwnUnit) {
    EXPECT_EQ(scopeNameFor("reports.service"), "lockunit-reports.service.scope");
    EXPECT_EQ(scopeNameFor("lockunit@reports.service"),
              "lockunit-lockunit\\x40reports.service.scope");
}

TEST(ScopeName, KeepsDistinctUnitsApart) {
    // '@' and '_' (or '-' and '/') must not collapse into one name.
    EXPECT_NE(scopeNameFor("a@b.service"), scopeNameFor("a_b.service"));
    EXPECT_NE(scopeNameFor("a-b.service"), scopeNameFor("a\\x2db.service"));
}

TEST(ScopeName, StaysWithinTheUnitNameLimit) {
    std::string longA(240, 'a'), longB = longA;
    longA += "-1.service";
    longB += "-2.service";
    auto a = scopeNameFor(longA), b = scopeNameFor(longB);
    EXPECT_LE(a.size(), 255u);
    EXPECT_NE(a, b);
    EXPECT_EQ(a.substr(0, 9), "lockunit-");
    EXPECT_EQ(a.substr(a.size() - 6), ".scope");
    // A long run of escapes is never cut inside one "\xNN".
    std::string dashes(200, '-');
    auto c = scopeNameFor(dashes + ".service");
    EXPECT_LE(c.size(), 255u);
    auto body = c.substr(9, c.size() - 9 - 6 - 17);
    EXPECT_EQ(body.size() % 4, 0u) << body;
}

TEST(ScopeProperties, CarryBindsToAndNeverAfter) {
    ScopeSettings s;
    s.pid = 4242;
    s.ownUnit = "lockunit@reports.service";
    s.description = "lockunit payload of lock 'reports': /bin/x";
    auto props = scopeProperties(s);
    ASSERT_TRUE(props);
    auto bindsTo = find(*props, "BindsTo");
    ASSERT_NE(bindsTo, nullptr);
    EXPECT_EQ(std::get<std::vector<std::string>>(bindsTo->value),
              std::vector<std::string>{"lockunit@reports.service"});
    EXPECT_EQ(find(*props, "After"), nullptr);
    EXPECT_EQ(std::get<std::vector<uint32_t>>(find(*props, "PIDs")->value),
              std::vector<uint32_t>{4242});
    EXPECT_EQ(std::get<std::string>(find(*props, "CollectMode")->value), "inactive-or-failed");
    EXPECT_EQ(std::get<std::string>(find(*props, "Description")->value), s.description);
    // Optional settings are absent when unset.
    EXPECT_EQ(find(*props, "Slice"), nullptr);
    EXPECT_EQ(find(*props, "MemoryMax"), nullptr);
}

TEST(ScopeProperties, MapStopSettings) {
    ScopeSettings s;
    s.pid = 1;
    s.stopSignal = 2;
    s.stopTimeout = std::chrono::milliseconds(7500);
    auto props = scopeProperties(s);
    ASSERT_TRUE(props);
    EXPECT_EQ(std::get<int32_t>(find(*props, "KillSignal")->value), 2);
    EXPECT_EQ(std::get<bool>(find(*props, "SendSIGKILL")->value), true);
    EXPECT_EQ(std::get<uint64_t>(find(*props, "TimeoutStopUSec")->value), 7'500'000u);
}

TEST(ScopeProperties, MapResourceLimits) {
    ScopeSettings s;
    s.pid = 1;
    s.slice = "singletons.slice";
    s.memoryMax = "512M";
    s.cpuQuota = "150%";
    s.tasksMax = "infinity";
    auto props = scopeProperties(s);
    ASSERT_TRUE(props);
    EXPECT_EQ(std::get<std::string>(find(*props, "Slice")->value), "singletons.slice");
    EXPECT_EQ(std::get<uint64_t>(find(*props, "MemoryMax")->value), 512ull << 20);
    EXPECT_EQ(std::get<uint64_t>(find(*props, "CPUQuotaPerSecUSec")->value), 1'500'000u);
    EXPECT_EQ(std::get<uint64_t>(find(*props, "TasksMax")->value),
              std::numeric_limits<uint64_t>::max());
}

TEST(ScopeProperties, ComeAfterLockunitsOwnSoTheyWin) {
    ScopeSettings s;
    s.pid = 1;
    s.description = "lockunit payload";
    s.properties = {"Description=reports", "MemoryHigh=1G"};
    auto props = scopeProperties(s);
    ASSERT_TRUE(props);
    EXPECT_EQ(props->at(props->size() - 2), (ScopeProperty{"Description", std::string("reports")}));
    EXPECT_EQ(props->back(), (ScopeProperty{"MemoryHigh", uint64_t{1} << 30}));
}
