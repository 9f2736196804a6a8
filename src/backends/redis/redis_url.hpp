// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>
#include <vector>

#include "util/result.hpp"

namespace lockunit::redis {

// One place to connect to: a TCP host and port, or a Unix socket path.
struct Target {
    std::string host; // empty for a Unix socket
    int port = 0;
    std::string unixPath;

    // "10.0.0.5:6379", "[::1]:6379" or "/run/redis/redis.sock": for messages, never a secret.
    std::string describe() const;
    bool operator==(const Target&) const = default;
};

// What a redis-family URL says. Passwords are never part of it: they come from password_file
// or password_credential, so a URL with "user:password@" is refused.
struct RedisUrl {
    enum class Kind { Single, Sentinel, Redlock };
    Kind kind = Kind::Single;
    std::vector<Target> nodes; // Single: one; Sentinel: the sentinels; Redlock: the nodes
    std::string user;          // Redis 6 ACL user; empty = the default user
    std::string masterName;    // Sentinel only
    int db = 0;
};

inline constexpr int kDefaultPort = 6379;
inline constexpr int kDefaultSentinelPort = 26379;

// Parses the part after "scheme://" for the schemes redis, unix, redis+sentinel and redlock.
// Errors are Errc::Config and quote the URL only when it cannot contain a secret.
Result<RedisUrl> parseRedisUrl(const std::string& scheme, const std::string& rest);

} // namespace lockunit::redis
