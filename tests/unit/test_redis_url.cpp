// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include "backends/redis/redis_common.hpp"
#include "backends/redis/redis_url.hpp"
#include "backends/redis/sha1.hpp"

using namespace lockunit;
using namespace lockunit::redis;

TEST(RedisUrl, TakesHostPortAndDatabase) {
    auto u = parseRedisUrl("redis", "10.0.0.5:6380/2");
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_EQ(u->kind, RedisUrl::Kind::Single);
    ASSERT_EQ(u->nodes.size(), 1u);
    EXPECT_EQ(u->nodes[0].host, "10.0.0.5");
    EXPECT_EQ(u->nodes[0].port, 6380);
    EXPECT_EQ(u->db, 2);
    EXPECT_TRUE(u->user.empty());
}

TEST(RedisUrl, DefaultsToPort6379AndDatabase0) {
    auto u = parseRedisUrl("redis", "cache.example.com");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->nodes[0].port, 6379);
    EXPECT_EQ(u->db, 0);
}

TEST(RedisUrl, TakesAnAclUserAndBracketedIpv6) {
    auto u = parseRedisUrl("redis", "alice@[::1]:7000");
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_EQ(u->user, "alice");
    EXPECT_EQ(u->nodes[0].host, "::1");
    EXPECT_EQ(u->nodes[0].describe(), "[::1]:7000");
}

TEST(RedisUrl, RefusesAPasswordWithoutEchoingIt) {
    auto u = parseRedisUrl("redis", "alice:hunter2@host");
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().code, Errc::Config);
    EXPECT_EQ(u.error().message.find("hunter2"), std::string::npos);
    EXPECT_NE(u.error().message.find("password_file"), std::string::npos);
}

TEST(RedisUrl, RefusesBadPortsDatabasesAndSeveralHosts) {
    EXPECT_FALSE(parseRedisUrl("redis", "host:0"));
    EXPECT_FALSE(parseRedisUrl("redis", "host:70000"));
    EXPECT_FALSE(parseRedisUrl("redis", "host:"));
    EXPECT_FALSE(parseRedisUrl("redis", "host/x"));
    EXPECT_FALSE(parseRedisUrl("redis", "a,b"));
    EXPECT_FALSE(parseRedisUrl("redis", ""));
}

TEST(RedisUrl, UnixSocketWithDatabaseAndUser) {
    auto u = parseRedisUrl("unix", "/run/redis/redis.sock?db=3&user=bob");
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_EQ(u->nodes[0].unixPath, "/run/redis/redis.sock");
    EXPECT_EQ(u->db, 3);
    EXPECT_EQ(u->user, "bob");
    EXPECT_FALSE(parseRedisUrl("unix", "relative.sock"));
    EXPECT_FALSE(parseRedisUrl("unix", "/x.sock?password=a"));
    EXPECT_FALSE(parseRedisUrl("unix", "/x.sock?color=blue"));
}

TEST(RedisUrl, SentinelListWithMasterNameAndDatabase) {
    auto u = parseRedisUrl("redis+sentinel", "s1,s2:5000,s3/mymaster/4");
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_EQ(u->kind, RedisUrl::Kind::Sentinel);
    ASSERT_EQ(u->nodes.size(), 3u);
    EXPECT_EQ(u->nodes[0].port, 26379);
    EXPECT_EQ(u->nodes[1].port, 5000);
    EXPECT_EQ(u->masterName, "mymaster");
    EXPECT_EQ(u->db, 4);
    EXPECT_FALSE(parseRedisUrl("redis+sentinel", "s1,s2"));
}

TEST(RedisUrl, RedlockNodesMustBeDistinct) {
    auto u = parseRedisUrl("redlock", "a:1,b:2,c:3");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->kind, RedisUrl::Kind::Redlock);
    EXPECT_EQ(u->nodes.size(), 3u);
    EXPECT_FALSE(parseRedisUrl("redlock", "a:1,a:1,b"));
}

TEST(RedisTimeouts, DefaultUnderRenewAndRejectSettingsNotUnderRenew) {
    BackendSettings none;
    auto t = readTimeouts(none, std::chrono::seconds(1));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->command, std::chrono::milliseconds(500));
    EXPECT_EQ(t->connect, std::chrono::milliseconds(500));
    auto big = readTimeouts(none, std::chrono::seconds(10));
    EXPECT_EQ(big->command, std::chrono::seconds(2));
    EXPECT_EQ(big->connect, std::chrono::seconds(1));
    BackendSettings s;
    s.set("command_timeout", Duration(std::chrono::seconds(1)), "x.toml:3:1");
    auto bad = readTimeouts(s, std::chrono::seconds(1));
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::Config);
}

TEST(RedisRecord, IsStoredWithoutItsTokenLine) {
    HolderRecord r;
    r.id = "h:1:ab";
    r.host = "h";
    r.pid = 1;
    r.stopBudget = std::chrono::milliseconds(5500);
    std::string text = recordWithoutToken(r);
    EXPECT_EQ(text.find("token="), std::string::npos);
    EXPECT_EQ(text.rfind("id=h:1:ab\n", 0), 0u);
    EXPECT_EQ(HolderRecord::parse(text + "token=42\n").token, "42");
    // The lines after the token's (the stop budget, for the lock-delay) stay.
    EXPECT_EQ(HolderRecord::parse(text).stopBudget, std::chrono::milliseconds(5500));
}

TEST(Sha1, MatchesKnownDigests) {
    EXPECT_EQ(sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(sha1Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    EXPECT_EQ(sha1Hex(std::string(1000, 'a')).size(), 40u);
}
