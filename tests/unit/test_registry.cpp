// SPDX-License-Identifier: LGPL-2.1-or-later
#include <algorithm>
#include <gtest/gtest.h>
#include <sstream>

#include "backends/registry.hpp"
#include "systemd/scope.hpp"
#include "util/module.hpp"

using namespace lockunit;

TEST(BackendRegistry, HoldsExactlyTheBackendsMesonEnabled) {
    std::vector<std::string> expected;
    std::stringstream list(LOCKUNIT_ENABLED_BACKENDS);
    std::string name;
    while (std::getline(list, name, ','))
        expected.push_back(name);
    std::sort(expected.begin(), expected.end());
    std::vector<std::string> registered;
    for (const auto* info : backends::all())
        registered.emplace_back(info->table);
    std::sort(registered.begin(), registered.end());
    EXPECT_EQ(registered, expected);
}

TEST(BackendRegistry, ModuleMapMatchesWhatEachModuleRegisters) {
    // The unit tests link every module's code, so each backend is registered here; meson's map
    // (which the program uses to pick a module to load) must name exactly its schemes/tables.
    for (const auto& module : backends::modules()) {
        for (const auto& scheme : module.schemes) {
            auto info = backends::byScheme(scheme);
            ASSERT_TRUE(info.ok() && *info) << module.name << " does not register " << scheme;
            EXPECT_NE(std::find(module.tables.begin(), module.tables.end(), (*info)->table),
                      module.tables.end())
                << scheme << " registers table " << (*info)->table;
        }
        for (const auto& table : module.tables) {
            auto info = backends::byTable(table);
            ASSERT_TRUE(info.ok() && *info)
                << module.name << " does not register [" << table << "]";
            for (auto scheme : (*info)->schemes)
                EXPECT_NE(std::find(module.schemes.begin(), module.schemes.end(), scheme),
                          module.schemes.end())
                    << "[" << table << "] serves " << scheme << ", missing from meson's map";
        }
    }
    // Only a build with every network backend left out (-Dredis=disabled …) has no module.
    EXPECT_EQ(backends::modules().empty(), std::string(LOCKUNIT_ENABLED_BACKENDS) == "file");
}

TEST(BackendRegistry, UnknownSchemeListsTheAvailableOnes) {
    BackendParams p;
    p.url = "etdc://localhost:2379";
    auto r = backends::create(p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Config);
    EXPECT_NE(r.error().message.find("unknown backend 'etdc'"), std::string::npos);
    EXPECT_NE(r.error().message.find("file"), std::string::npos);
}

TEST(BackendRegistry, EverySchemeMapsToOneBackend) {
    for (const auto& scheme : backends::schemes()) {
        int owners = 0;
        for (const auto* info : backends::all())
            owners +=
                static_cast<int>(std::count(info->schemes.begin(), info->schemes.end(), scheme));
        EXPECT_EQ(owners, 1) << scheme;
    }
}

TEST(ScopeModule, IsFoundInTheProgramWhenItsCodeIsLinked) {
    // The unit tests link the scope module's code, entry included: load() finds it in the
    // program and opens nothing (there is no lockunit-scope.so next to this program).
    auto r = ScopeRunner::load();
    EXPECT_TRUE(r.ok()) << r.error().message;
}

TEST(Modules, AModuleThatIsNowhereIsUnavailableWithTheReason) {
    auto r = modules::entry<ScopeModule>("no-such-module");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Unavailable);
    EXPECT_NE(r.error().message.find("lockunit-no-such-module.so"), std::string::npos)
        << r.error().message;
}
