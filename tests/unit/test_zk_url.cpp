// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include "backends/zookeeper/zk_session.hpp"

using namespace lockunit;
using namespace lockunit::zk;

TEST(ZooKeeperUrl, GivesEveryHostItsPortAndKeepsTheChroot) {
    auto url = parseUrl("10.0.0.1:2181,zk-b,[::1]:3181/apps/locks/");
    ASSERT_TRUE(url) << url.error().message;
    EXPECT_EQ(url->hosts, "10.0.0.1:2181,zk-b:2181,[::1]:3181");
    EXPECT_EQ(url->chroot, "/apps/locks");
}

TEST(ZooKeeperUrl, ARootChrootIsNone) {
    for (const char* rest : {"h", "h/", "h:2181/"}) {
        auto url = parseUrl(rest);
        ASSERT_TRUE(url) << rest;
        EXPECT_EQ(url->chroot, "") << rest;
    }
}

TEST(ZooKeeperUrl, RefusesMalformedUrlsAsConfigErrors) {
    for (const char* rest :
         {"", ",", "h:", "h:0", "h:65536", "h:12ab", "a,,b", "[::1", "h/a//b", "alice:pw@h"}) {
        auto url = parseUrl(rest);
        ASSERT_FALSE(url) << rest;
        EXPECT_EQ(url.error().code, Errc::Config) << rest;
    }
}

TEST(ZooKeeperUrl, NeverRepeatsCredentialsInItsError) {
    auto url = parseUrl("alice:hunter2@h:2181");
    ASSERT_FALSE(url);
    EXPECT_NE(url.error().message.find("password_file"), std::string::npos);
    EXPECT_EQ(url.error().message.find("hunter2"), std::string::npos) << url.error().message;
}
