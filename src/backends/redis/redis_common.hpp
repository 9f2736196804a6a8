// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// Pieces the redis, redis+sentinel and redlock backends share: their config keys, timeouts,
// key names and scripts run by EVALSHA with a NOSCRIPT fallback.

#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/redis/redis_connection.hpp"
#include "backends/settings.hpp"

namespace lockunit::redis {

inline constexpr KeySpec kConnectTimeoutKey{
    "connect_timeout", KeyType::Duration, "min(1s, renew/2, command_timeout)",
    "give up on a TCP/Unix connect plus login (AUTH, SELECT) after this long; must stay under "
    "renew"};
inline constexpr KeySpec kCommandTimeoutKey{
    "command_timeout", KeyType::Duration, "min(2s, renew/2)",
    "give up on one lock operation (acquire, extend, release) after this long, counting any "
    "reconnect; must stay under renew"};
inline constexpr KeySpec kKeyPrefixKey{"key_prefix", KeyType::String, "lockunit:",
                                       "prefix of every Redis key and channel lockunit uses"};

inline constexpr KeySpec kMinReplicasKey{
    "min_replicas", KeyType::Integer, "0",
    "redis, redis+sentinel: after acquiring and after every renewal, WAIT until this many "
    "replicas have the lock key before the payload starts or the renewal counts"};

std::vector<KeySpec> keySpecs();

struct Timeouts {
    Duration connect{};
    Duration command{};
};
// Reads connect_timeout/command_timeout, defaulting from `renew`; Errc::Config if not < renew.
Result<Timeouts> readTimeouts(const BackendSettings& settings, Duration renew);

// The record we store without its token line (the acquire script appends it).
std::string recordWithoutToken(const HolderRecord& self);

// A script and its SHA-1, run with EVALSHA and, when the server answers NOSCRIPT (restart,
// SCRIPT FLUSH, failover), with EVAL, which also loads it for next time.
struct Script {
    explicit Script(const char* text);
    std::string text, sha;
};
std::vector<std::string> evalShaArgs(const Script& s, const std::vector<std::string>& keys,
                                     const std::vector<std::string>& args);
std::vector<std::string> evalArgs(const Script& s, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args);

// Runs a script on one connection (which must be open), with the NOSCRIPT fallback.
Result<Reply> runScript(Connection& conn, const Script& s, const std::vector<std::string>& keys,
                        const std::vector<std::string>& args, TimePoint deadline,
                        Interrupt& interrupt);

// Refuses a server that may evict the lock key, from its INFO memory text (maxmemory set, a
// maxmemory-policy other than noeviction): the key has an expiry, so every volatile-* and
// allkeys-* policy may drop it while its holder runs. Errc::Refused naming `server` and `key`.
Result<void> refuseEviction(const std::string& infoMemory, const std::string& server,
                            const std::string& key);

// How long the mark of a release lasts (kRelease): long enough for every waiter to see it
// when it takes the lock next.
inline Duration releaseMarkLasts(Duration ttl) {
    return 3 * ttl;
}

// Milliseconds as Redis wants them.
inline std::string ms(Duration d) {
    return std::to_string(d.count());
}

// A small random duration in [0, max), for jitter.
Duration jitter(Duration max);

} // namespace lockunit::redis
