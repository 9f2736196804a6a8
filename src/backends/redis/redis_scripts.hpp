// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// The Lua scripts of the redis backends. Each runs atomically on the server, so a check and the
// write that depends on it can never be split by another client.
//
// The value of a lock key is the holder's record (HolderRecord::serialize, "id=…\nhost=…\n…
// token=N\n"): waiters and `lockunit status` read it, and extend/release compare it whole, so
// only the holder that wrote it can extend or delete it.
//
// The fence key never expires. A token is the counter's INCR, raised to the server's clock in
// microseconds and to one more than the highest token the client has seen when either is
// higher (a hybrid logical clock). So tokens keep increasing even when the counter goes back:
// lost (a restart without persistence, a failover to a replica that missed the last INCR) or
// older (a master restarted from an older RDB snapshot, which the sentinels may keep as the
// master and resync the replicas from), as long as the server clocks are not set back.

namespace lockunit::redis::scripts {

// clang-format off

// INCRs the fence key (KEYS[2]); if that is below the server's TIME in µs or not above SEEN
// (the highest token the client has seen, "" if none), stores the higher of the two (+1 for
// SEEN) instead. Leaves the new token in `token`. (Lua numbers are doubles: exact up to 2^53,
// i.e. clocks until the year 2255.)
#define LOCKUNIT_REDIS_NEXT_TOKEN(SEEN)                                                            \
    "local tok = redis.call('INCR', KEYS[2])\n"                                                    \
    "local clock = redis.call('TIME')\n"                                                           \
    "local floor = tonumber(clock[1]) * 1000000 + tonumber(clock[2])\n"                            \
    "local seen = tonumber(" SEEN ")\n"                                                            \
    "if seen and seen + 1 > floor then floor = seen + 1 end\n"                                     \
    "if tok < floor then\n"                                                                        \
    "  tok = floor\n"                                                                              \
    "  redis.call('SET', KEYS[2], string.format('%d', tok))\n"                                     \
    "end\n"                                                                                        \
    "local token = string.format('%d', tok)\n"

// Refuses to grant on a server that has been up for less than ARG ms: it may have restarted
// without its data, and the holder whose key it lost only notices at its next renewal.
#define LOCKUNIT_REDIS_YOUNG(ARG)                                                                  \
    "local up = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))\n" \
    "if up and up * 1000 < tonumber(" ARG ") then\n"                                               \
    "  return {2, '', tonumber(" ARG ") - up * 1000}\n"                                            \
    "end\n"

// KEYS: lock, fence, released. ARGV: holder id, ttl ms, record without its token line, min
// uptime ms, highest token seen ("" if none).
// → {1, record, last token, last released record} acquired (the token handed out before ours,
//   and the record a release left in KEYS[3], '' when missing: the lock-delay), {1, record}
//   already ours (a retried call), {0, holder record, pttl ms} busy, {2, '', ms} the server is
//   too young to grant.
inline constexpr const char* kAcquire =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  if string.sub(cur, 1, string.len(ARGV[1]) + 4) == 'id=' .. ARGV[1] .. '\\n' then\n"
    "    redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "    return {1, cur}\n"
    "  end\n"
    "  return {0, cur, redis.call('PTTL', KEYS[1])}\n"
    "end\n" LOCKUNIT_REDIS_YOUNG("ARGV[4]")
    "local last = redis.call('GET', KEYS[2]) or ''\n" LOCKUNIT_REDIS_NEXT_TOKEN("ARGV[5]")
    "local rec = ARGV[3] .. 'token=' .. token .. '\\n'\n"
    "redis.call('SET', KEYS[1], rec, 'PX', ARGV[2])\n"
    "return {1, rec, last, redis.call('GET', KEYS[3]) or ''}\n";

// KEYS: lock. ARGV: our record, ttl ms. → 1 extended, 0 not ours (lost).
inline constexpr const char* kExtend =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n";

// KEYS: lock, released. ARGV: our record, channel, ms the mark lasts (0: no mark, an undone
// attempt). → 1 released (marked, waiters told), 0 not ours. The mark, our record in KEYS[2],
// is how the next holder tells this release from a key that vanished otherwise (lock-delay).
inline constexpr const char* kRelease =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3]) end\n"
    "  redis.call('PUBLISH', ARGV[2], 'released')\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

// → the server's INFO memory text (maxmemory, maxmemory_policy), also where CONFIG is disabled.
inline constexpr const char* kMemoryInfo = "return redis.call('INFO', 'memory')\n";

// KEYS: lock. → {record or '', pttl ms}
inline constexpr const char* kInspect =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then v = '' end\n"
    "return {v, redis.call('PTTL', KEYS[1])}\n";

// Semaphores (holders = N): KEYS[1] is a sorted set of holder ids scored with the server time
// (ms) at which each lease ends; KEYS[3] a hash id → record. Expired members are pruned first.
#define LOCKUNIT_REDIS_SEM_NOW                                                                     \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
#define LOCKUNIT_REDIS_SEM_PRUNE                                                                   \
    "local nowText = string.format('%d', now)\n"                                               \
    "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowText)) do\n"                   \
    "  redis.call('HDEL', KEYS[3], m)\n"                                                           \
    "end\n"                                                                                        \
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowText)\n"

// KEYS: set, fence, records. ARGV: holder id, ttl ms, record without token, limit, min uptime,
// highest token seen ("" if none).
// → {1, record} acquired (or already ours), {0, '', ms until the first slot may free up} busy.
inline constexpr const char* kSemAcquire =
    "if redis.replicate_commands then redis.replicate_commands() end\n" LOCKUNIT_REDIS_SEM_NOW
        LOCKUNIT_REDIS_SEM_PRUNE
    "local ends = string.format('%d', now + tonumber(ARGV[2]))\n"
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) then\n"
    "  redis.call('ZADD', KEYS[1], ends, ARGV[1])\n"
    "  return {1, redis.call('HGET', KEYS[3], ARGV[1])}\n"
    "end\n"
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then\n"
    "  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "  return {0, '', tonumber(first[2]) - now}\n"
    "end\n" LOCKUNIT_REDIS_YOUNG("ARGV[5]") LOCKUNIT_REDIS_NEXT_TOKEN("ARGV[6]")
    "local rec = ARGV[3] .. 'token=' .. token .. '\\n'\n"
    "redis.call('ZADD', KEYS[1], ends, ARGV[1])\n"
    "redis.call('HSET', KEYS[3], ARGV[1], rec)\n"
    "return {1, rec}\n";

// KEYS: set, (unused), records. ARGV: holder id, ttl ms. → 1 extended, 0 lost.
inline constexpr const char* kSemExtend =
    "if redis.replicate_commands then redis.replicate_commands() end\n" LOCKUNIT_REDIS_SEM_NOW
    "local s = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "if s and tonumber(s) > now then\n"
    "  redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

// KEYS: set, (unused), records. ARGV: holder id, channel. → 1 released, 0 was not held.
inline constexpr const char* kSemRelease =
    "local n = redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "redis.call('HDEL', KEYS[3], ARGV[1])\n"
    "if n == 1 then redis.call('PUBLISH', ARGV[2], 'released') end\n"
    "return n\n";

// KEYS: set, (unused), records. → {record1, ms left 1, record2, ms left 2, …}
inline constexpr const char* kSemInspect =
    LOCKUNIT_REDIS_SEM_NOW
    "local out = {}\n"
    "local live = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf', 'WITHSCORES')\n"
    "for i = 1, #live, 2 do\n"
    "  local rec = redis.call('HGET', KEYS[3], live[i])\n"
    "  if not rec then rec = 'id=' .. live[i] .. '\\n' end\n"
    "  table.insert(out, rec)\n"
    "  table.insert(out, tonumber(live[i + 1]) - now)\n"
    "end\n"
    "return out\n";

// Redlock, per node. KEYS: lock, released. ARGV: our value, ttl ms, min uptime ms.
// → {1, last released value or '', INFO memory} set (or already ours; the caller refuses the
//   node if it may evict the key), {0, holder's value} held by another, {2, '', ms} too young to
//   vote.
inline constexpr const char* kRedlockAcquire =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur and cur ~= ARGV[1] then return {0, cur} end\n" LOCKUNIT_REDIS_YOUNG("ARGV[3]")
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return {1, redis.call('GET', KEYS[2]) or '', redis.call('INFO', 'memory')}\n";

#undef LOCKUNIT_REDIS_NEXT_TOKEN
#undef LOCKUNIT_REDIS_SEM_NOW
#undef LOCKUNIT_REDIS_SEM_PRUNE
#undef LOCKUNIT_REDIS_YOUNG

// clang-format on

} // namespace lockunit::redis::scripts
