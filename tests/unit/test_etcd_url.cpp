// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include "backends/etcd/etcd_url.hpp"

using namespace lockunit;
using namespace lockunit::etcd;

TEST(EtcdUrl, ParsesSeveralEndpointsWithDefaultPort) {
    auto url = parseUrl("etcd", "10.0.0.1:2379,etcd-b,[::1]:3379/");
    ASSERT_TRUE(url) << url.error().message;
    EXPECT_FALSE(url->tls);
    ASSERT_EQ(url->endpoints.size(), 3u);
    EXPECT_EQ(url->endpoints[0].display(), "10.0.0.1:2379");
    EXPECT_EQ(url->endpoints[1].display(), "etcd-b:2379");
    EXPECT_EQ(url->endpoints[2].display(), "[::1]:3379");
}

TEST(EtcdUrl, EtcdsMeansTls) {
    auto url = parseUrl("etcds", "host:2379");
    ASSERT_TRUE(url);
    EXPECT_TRUE(url->tls);
}

TEST(EtcdUrl, RefusesMalformedUrlsAsConfigErrors) {
    for (const char* rest : {"", ",", "host:", "host:0", "host:65536", "host:12ab", "user:pw@host",
                             "host/path", "host?x=1", "[::1", "[zz]:1", "ho st:1", "a,,b"}) {
        auto url = parseUrl("etcd", rest);
        ASSERT_FALSE(url) << rest;
        EXPECT_EQ(url.error().code, Errc::Config) << rest;
    }
}

TEST(EtcdUrl, NeverRepeatsCredentialsInItsError) {
    auto url = parseUrl("etcd", "root:hunter2@host");
    ASSERT_FALSE(url);
    EXPECT_NE(url.error().message.find("password_file"), std::string::npos);
    EXPECT_EQ(url.error().message.find("hunter2"), std::string::npos) << url.error().message;
}

TEST(EtcdKeys, PrefixEndIsTheNextKeyAfterEveryKeyWithThePrefix) {
    EXPECT_EQ(prefixEnd("lockunit/jobs/"), "lockunit/jobs0");
    EXPECT_EQ(prefixEnd(std::string("a\xff", 2)), "b");
}

TEST(EtcdLease, TtlIsRoundedUpToWholeSeconds) {
    using std::chrono::milliseconds;
    EXPECT_EQ(ttlSeconds(milliseconds(15000)), 15);
    EXPECT_EQ(ttlSeconds(milliseconds(2500)), 3);
    EXPECT_EQ(ttlSeconds(milliseconds(1)), 1);
    EXPECT_EQ(leaseHex(0x694d7b1c2a3f0e12LL), "694d7b1c2a3f0e12");
}
