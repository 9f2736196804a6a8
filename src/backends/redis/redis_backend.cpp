// SPDX-License-Identifier: LGPL-2.1-or-later
//
// redis://[USER@]HOST[:PORT][/DB], unix:///path/redis.sock[?db=N] and
// redis+sentinel://S1[:PORT],S2,…/MASTERNAME[/DB] — a lock on one Redis master.
//
// Keys (PREFIX = key_prefix, "lockunit:" by default):
//   PREFIX NAME            the lock: the holder's record, with a PX expiry of one ttl
//   PREFIX NAME:fence      the fencing counter, never expires
//   PREFIX NAME:released   the channel a release is PUBLISHed on
//   PREFIX NAME:holders    holders = N: sorted set of holder ids scored with lease end (server ms)
//   PREFIX NAME:records    holders = N: hash of holder id → record
//
// A waiter keeps a second connection SUBSCRIBEd to the channel and offers its socket as
// wakeFd(): a graceful release wakes it at once. Otherwise it re-checks when the holder's lease
// would run out if not renewed (that is how a crashed holder's lock is taken over), at the
// latest every 10 s (every 1 s without a subscription). No lock is granted by a server that
// has been up for less than one ttl: it may have restarted and lost a holder's key, and that
// holder only notices at its next renewal. With min_replicas = N, an acquire or a renewal
// counts only once WAIT says N replicas have the key (see replicated()): a failover to a
// replica that never got it is what grants a lock twice. Nor is one granted by a server that may
// evict keys (maxmemory set, a maxmemory-policy other than noeviction): the lock key has an expiry,
// so every volatile-* and allkeys-* policy may drop it while its holder runs (see evictionRisk()).

#include <algorithm>
#include <charconv>
#include <poll.h>

#include "backends/reached_once.hpp"
#include "backends/redis/redis_common.hpp"
#include "backends/redis/redis_scripts.hpp"
#include "backends/redis/redis_url.hpp"
#include "backends/registry.hpp"
#include "util/module.hpp"

namespace lockunit {
namespace redis {

std::unique_ptr<LockBackend> makeRedlock(RedisUrl url, Login login, Timeouts timeouts,
                                         std::string prefix, const BackendParams& p);

namespace {

constexpr Duration kPollWithoutSubscription = std::chrono::seconds(1);
constexpr Duration kPollWithSubscription = std::chrono::seconds(10);
constexpr Duration kMinRetry = std::chrono::milliseconds(20);
constexpr Duration kBusyInfoFresh = std::chrono::milliseconds(250);

const Script& script(const char* text) {
    // One Script (and SHA-1) per text, computed once.
    static std::vector<std::unique_ptr<Script>> all;
    for (const auto& s : all)
        if (s->text == text) return *s;
    all.push_back(std::make_unique<Script>(text));
    return *all.back();
}

class RedisBackend final : public LockBackend {
public:
    RedisBackend(RedisUrl url, Login login, Timeouts timeouts, std::string prefix,
                 const BackendParams& p, int minReplicas)
        : url_(std::move(url)), login_(std::move(login)), timeouts_(timeouts), self_(p.self),
          ttl_(p.ttl), holders_(p.holders), minReplicas_(minReplicas) {
        std::string base = prefix + p.lockName;
        lockKey_ = holders_ > 1 ? base + ":holders" : base;
        fenceKey_ = base + ":fence";
        recordsKey_ = base + ":records";
        channel_ = releasedKey_ = base + ":released"; // a channel and a key: two namespaces
        self_.stopBudget = noticedAtRenewal(p);
        login_.requireMaster = url_.kind == RedisUrl::Kind::Sentinel;
        // A young server may have lost a holder's key: wait out one ttl plus drift.
        minUptime_ = ttl_ + clockDrift(ttl_);
        // Release mode (the lock guard): handoff() of the holder whose key release() deletes.
        if (!p.adopt.empty()) {
            (holders_ > 1 ? self_.id : record_) = p.adopt;
            held_ = true;
        }
    }

    Result<Lease> tryAcquire(Interrupt& interrupt) override {
        const TimePoint deadline = BootClock::now() + timeouts_.command;
        auto lease = evictionRisk(deadline, interrupt);
        if (lease) lease = attempt(deadline, interrupt);
        if (!lease && lease.error().code == Errc::Busy && !sub_.isOpen()) {
            // Subscribe, then look again: a release between our attempt and the SUBSCRIBE
            // would otherwise go unheard until the next poll.
            if (auto s = subscribe(deadline, interrupt); !s && s.error().code == Errc::Interrupted)
                return s.error();
            if (sub_.isOpen()) lease = attempt(deadline, interrupt);
        }
        if (lease) {
            sub_.close();
            reachedOnce_.mark();
            return lease;
        }
        Error err = lease.error();
        if (err.code == Errc::Busy || err.code == Errc::Interrupted) {
            reachedOnce_.mark();
            return err;
        }
        // Once a waiter has reached Redis, a lost connection is a pause, not the end: keep
        // waiting (and say why). Refused logins and bad configuration stay fatal.
        if (reachedOnce_.excuses(err)) {
            retry_ = kPollWithoutSubscription + jitter(std::chrono::milliseconds(100));
            busyState_.reset();
            waitReason_ = err.message + "; retrying";
            return makeError(Errc::Busy, waitReason_);
        }
        return err;
    }

    Result<Lease> renew(Interrupt& interrupt) override {
        if (!held_) return makeError(Errc::Lost, "not held");
        const TimePoint deadline = BootClock::now() + timeouts_.command;
        Result<Reply> r = holders_ > 1 ? eval(script(scripts::kSemExtend), semKeys(),
                                              {self_.id, ms(ttl_)}, deadline, interrupt)
                                       : eval(script(scripts::kExtend), {lockKey_},
                                              {record_, ms(ttl_)}, deadline, interrupt);
        if (!r) return r.error();
        if (r->asInteger() == 1) {
            if (auto w = replicated(deadline, interrupt); !w) return w.error();
            return Lease{ttl_, token_};
        }
        held_ = false;
        return makeError(Errc::Lost, "key '" + lockKey_ + "' on " + main_.target().describe() +
                                         " no longer names us (it expired, was deleted, or "
                                         "Redis lost its data)");
    }

    Result<void> release(Interrupt& interrupt) override {
        if (!held_) return {};
        const TimePoint deadline = BootClock::now() + timeouts_.command;
        Result<Reply> r = holders_ > 1 ? eval(script(scripts::kSemRelease), semKeys(),
                                              {self_.id, channel_}, deadline, interrupt)
                                       : eval(script(scripts::kRelease), {lockKey_, releasedKey_},
                                              {record_, channel_, ms(releaseMarkLasts(ttl_))},
                                              deadline, interrupt);
        if (!r) return r.error();
        held_ = false;
        return {};
    }

    Result<LockState> inspect(Interrupt& interrupt) override {
        // Right after a busy attempt the acquire script has told us who holds the lock.
        if (busyState_ && BootClock::now() - busyAt_ < kBusyInfoFresh) return *busyState_;
        const TimePoint deadline = BootClock::now() + timeouts_.command;
        LockState state;
        if (holders_ > 1) {
            auto r = eval(script(scripts::kSemInspect), semKeys(), {}, deadline, interrupt);
            if (!r) return r.error();
            for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
                state.holders.push_back(HolderRecord::parse(r->elements[i].str));
                Duration left(r->elements[i + 1].asInteger());
                if (!state.leaseLeft || left < *state.leaseLeft) state.leaseLeft = left;
            }
        } else {
            auto r = eval(script(scripts::kInspect), {lockKey_}, {}, deadline, interrupt);
            if (!r) return r.error();
            if (r->elements.size() == 2 && !r->elements[0].str.empty()) {
                state.holders.push_back(HolderRecord::parse(r->elements[0].str));
                if (r->elements[1].asInteger(-1) >= 0)
                    state.leaseLeft = Duration(r->elements[1].asInteger());
            }
        }
        if (state.holders.empty())
            if (auto info = call(main_, {"INFO", "server"}, deadline, interrupt); info) {
                auto at = info->str.find("uptime_in_seconds:");
                const Duration up =
                    at == std::string::npos
                        ? minUptime_
                        : std::chrono::seconds(std::atoll(info->str.c_str() + at + 18));
                if (up < minUptime_) state.notGranted = youngServer(minUptime_ - up);
            }
        // Every waiting lockunit subscribes to the channel: its subscriber count is the number
        // of waiters.
        if (auto n = call(main_, {"PUBSUB", "NUMSUB", channel_}, deadline, interrupt);
            n && n->elements.size() == 2)
            state.waiters = static_cast<int>(n->elements[1].asInteger());
        return state;
    }

    int wakeFd() const override { return sub_.fd(); }

    void drainWake() override {
        // Release messages (or an EOF, which closes the subscription) – their content does
        // not matter: the supervisor tries to acquire next anyway.
        while (sub_.isOpen()) {
            auto r = sub_.advance(POLLIN);
            if (!r || !*r) break;
        }
    }

    Duration retryInterval() const override { return retry_; }
    std::string waitReason() const override { return waitReason_; }
    // What release mode needs to delete exactly our key or slot (the compare-and-delete
    // scripts compare it): the record we stored, or for a semaphore our holder id.
    std::string handoff() const override {
        return held_ ? (holders_ > 1 ? self_.id : record_) : std::string();
    }

private:
    std::vector<std::string> semKeys() const { return {lockKey_, fenceKey_, recordsKey_}; }

    // Refuses a server that may evict the lock key. A refusal, not a warning: a key evicted
    // while its holder runs lets a waiter start a second payload at once, and the holder hears
    // of it only at its next renewal; a mutual-exclusion tool must not run on that. INFO
    // memory (through a script, so that the master is followed as for every operation) also
    // works where CONFIG is disabled, as on managed services. Checked before every attempt: a
    // policy changed while a lock is held is seen by the next acquire.
    Result<Lease> evictionRisk(TimePoint deadline, Interrupt& interrupt) {
        auto r = eval(script(scripts::kMemoryInfo), {}, {}, deadline, interrupt);
        if (!r) return r.error();
        if (auto ok = refuseEviction(r->str, main_.target().describe(), lockKey_); !ok)
            return ok.error();
        return Lease{};
    }

    // min_replicas: WAIT until that many replicas acknowledged our writes (the key), within
    // what is left of the call's deadline. Fewer: Errc::Unavailable, so that an acquire is
    // not used (the waiter tries again) and a renewal does not move the deadline.
    Result<void> replicated(TimePoint deadline, Interrupt& interrupt) {
        if (minReplicas_ <= 0) return {};
        const auto left = std::chrono::duration_cast<Duration>(deadline - BootClock::now());
        const Duration budget = std::max<Duration>(left - left / 4, Duration(1));
        auto r =
            call(main_, {"WAIT", std::to_string(minReplicas_), ms(budget)}, deadline, interrupt);
        if (!r) return r.error();
        const long long acked = r->asInteger(-1);
        if (acked >= minReplicas_) return {};
        return makeError(Errc::Unavailable,
                         "redis " + main_.target().describe() + ": the lock key reached " +
                             std::to_string(std::max(acked, 0LL)) + " replica(s) within " +
                             formatDuration(budget) + ", min_replicas is " +
                             std::to_string(minReplicas_) +
                             (r->isError() ? " (" + r->str + ")" : std::string()));
    }

    std::string youngServer(Duration left) const {
        const auto s =
            std::max<long long>(std::chrono::ceil<std::chrono::seconds>(left).count(), 0);
        return "redis " + main_.target().describe() +
               " started less than one ttl ago and may have lost a holder's key: it grants no "
               "lock until " +
               formatWallTime(std::time(nullptr) + s);
    }

    Result<Lease> attempt(TimePoint deadline, Interrupt& interrupt) {
        HolderRecord rec = self_;
        rec.since = formatWallTime(std::time(nullptr));
        const std::string prefix = recordWithoutToken(rec);
        Result<Reply> r =
            holders_ > 1
                ? eval(script(scripts::kSemAcquire), semKeys(),
                       {self_.id, ms(ttl_), prefix, std::to_string(holders_), ms(minUptime_),
                        seenText()},
                       deadline, interrupt)
                : eval(script(scripts::kAcquire), {lockKey_, fenceKey_, releasedKey_},
                       {self_.id, ms(ttl_), prefix, ms(minUptime_), seenText()}, deadline,
                       interrupt);
        if (!r) return r.error();
        const auto& e = r->elements;
        if (r->type != Reply::Type::Array || e.empty())
            return makeError(Errc::Refused, "redis " + main_.target().describe() +
                                                ": unexpected answer from the acquire script");
        const long long status = e[0].asInteger(-1);
        if (status == 1 && e.size() >= 2) {
            record_ = e[1].str;
            token_ = HolderRecord::parse(record_).token;
            see(token_);
            held_ = true;
            busyState_.reset();
            if (auto w = replicated(deadline, interrupt); !w) {
                // Not on enough replicas: give it back rather than start on it.
                [[maybe_unused]] auto r = release(interrupt);
                held_ = false;
                reachedOnce_.mark(); // the server works: keep waiting
                return w.error();
            }
            Lease lease{ttl_, token_};
            if (e.size() >= 4) addDelayForUnreleased(lease, e[2].str, e[3].str);
            seen_ = {};
            return lease;
        }
        Duration wait = e.size() >= 3 ? Duration(e[2].asInteger(-1)) : Duration(-1);
        const Duration cap = sub_.isOpen() ? kPollWithSubscription : kPollWithoutSubscription;
        // pttl -1: a key without expiry (set by hand); -2: gone since the script ran.
        if (wait.count() == -1) wait = cap;
        retry_ = std::clamp(wait, kMinRetry, cap) + jitter(std::chrono::milliseconds(20));
        busyAt_ = BootClock::now();
        if (status == 2) {
            busyState_.reset();
            waitReason_ = youngServer(wait);
            return makeError(Errc::Busy, waitReason_);
        }
        waitReason_.clear();
        LockState state;
        if (e.size() >= 2 && !e[1].str.empty()) {
            if (holders_ == 1) seen_ = HolderRecord::parse(e[1].str);
            state.holders.push_back(HolderRecord::parse(e[1].str));
            see(state.holders.back().token);
            if (wait.count() >= 0) state.leaseLeft = wait;
        }
        busyState_ = holders_ > 1 ? std::nullopt : std::optional<LockState>(state);
        return makeError(Errc::Busy, "held");
    }

    // The lock-delay (docs/backends/redis.md, "Lock-delay"). A release leaves its record in
    // the released key, so when the token handed out last (`last`, read by the acquire script
    // before ours) is the token of that record, the last holder released the lock. Otherwise
    // its key vanished without a release (a DEL, a FLUSHALL, an expiry, a restart without the
    // data, which also loses the fence: `last` empty). A waiter that saw no holder does not wait;
    // one that saw a holder waits its stop budget, also when another took and lost the lock
    // between two of its looks (then the last holder is known only by its token).
    void addDelayForUnreleased(Lease& lease, const std::string& last, const std::string& released) {
        if (seen_.id.empty() || (!last.empty() && HolderRecord::parse(released).token == last))
            return;
        addLockDelay(lease, "key",
                     last.empty() || last == seen_.token ? seen_.describe() : "with token " + last,
                     seen_.stopBudget);
    }

    // The highest fencing token this instance has seen (its own grants, the holders named by
    // busy answers): every acquire asks for a higher one, so a counter that went back (a
    // master restarted from an older snapshot, a failover to a replica that missed the last
    // INCR) cannot hand out a token we already saw, even with a server clock behind.
    void see(const std::string& token) {
        unsigned long long v = 0;
        const char* end = token.data() + token.size();
        if (auto [p, ec] = std::from_chars(token.data(), end, v); ec == std::errc() && p == end)
            highestToken_ = std::max(highestToken_, v);
    }
    std::string seenText() const {
        return highestToken_ ? std::to_string(highestToken_) : std::string();
    }

    // Behind sentinels, asks which server is the master before every operation: after a
    // failover the old master may take writes for seconds until the sentinels demote it, and
    // a holder that kept renewing there would let its key expire on the real master. When no
    // sentinel answers, the current connection is kept.
    Result<void> followMaster(TimePoint deadline, Interrupt& interrupt) {
        if (url_.kind != RedisUrl::Kind::Sentinel) return {};
        auto now = BootClock::now();
        auto master = resolveMaster(now + (deadline - now) / 2, interrupt);
        if (!master) {
            if (master.error().code == Errc::Interrupted || !main_.isOpen()) return master.error();
            return {};
        }
        if (main_.isOpen() && !(*master == main_.target())) main_.close();
        master_ = *master;
        return {};
    }

    // (Re)connects the command connection to the master (or the configured server).
    Result<void> connect(TimePoint deadline, Interrupt& interrupt) {
        const TimePoint connectBy = std::min(deadline, BootClock::now() + timeouts_.connect);
        Target target = url_.kind == RedisUrl::Kind::Sentinel ? master_ : url_.nodes.front();
        return main_.open(target, login_, connectBy, interrupt);
    }

    Result<Target> resolveMaster(TimePoint deadline, Interrupt& interrupt) {
        std::string problems;
        const size_t n = url_.nodes.size();
        // The last sentinel that answered keeps its connection between operations; if that
        // connection went stale, the same sentinel is asked once more on a new one.
        bool staleRetried = false;
        for (size_t k = 0; k < n;) {
            const size_t i = (sentinel_ + k) % n;
            Connection& s = sentinelConn_;
            const bool reused = s.isOpen() && s.used();
            // Each sentinel gets an equal share of what is left, so one hung sentinel cannot
            // eat the whole budget.
            auto now = BootClock::now();
            TimePoint own = now + (deadline - now) / static_cast<long>(n - k);
            Result<Reply> r = makeError(Errc::Unavailable, "");
            if (!s.isOpen())
                if (auto o = s.open(url_.nodes[i], Login{}, own, interrupt); !o) r = o.error();
            if (s.isOpen())
                r = call(s, {"SENTINEL", "get-master-addr-by-name", url_.masterName}, own,
                         interrupt);
            if (!r && r.error().code == Errc::Interrupted) return r.error();
            if (!r && reused && !staleRetried) {
                staleRetried = true;
                continue;
            }
            if (r && r->type == Reply::Type::Array && r->elements.size() == 2) {
                sentinel_ = i;
                Target t;
                t.host = r->elements[0].str;
                t.port = static_cast<int>(r->elements[1].asInteger());
                return t;
            }
            s.close();
            problems += (problems.empty() ? "" : "; ") +
                        (r ? "sentinel " + url_.nodes[i].describe() +
                                 (r->isError() ? " answered " + r->str
                                               : " does not know master '" + url_.masterName + "'")
                           : r.error().message);
            ++k;
        }
        return makeError(Errc::Unavailable,
                         "no sentinel named the master of '" + url_.masterName + "': " + problems);
    }

    // Runs a script on the master, (re)connecting first when needed. A failure on a connection
    // that had worked before (a restart, a failover, an idle timeout) is retried once on a new
    // one within the same deadline; every script is safe to run twice.
    Result<Reply> eval(const Script& s, const std::vector<std::string>& keys,
                       const std::vector<std::string>& args, TimePoint deadline,
                       Interrupt& interrupt) {
        for (int tries = 0;; ++tries) {
            if (auto f = followMaster(deadline, interrupt); !f) return f.error();
            const bool reused = main_.isOpen() && main_.used();
            if (!main_.isOpen())
                if (auto c = connect(deadline, interrupt); !c) return c.error();
            auto r = runScript(main_, s, keys, args, deadline, interrupt);
            const bool again = tries == 0 && BootClock::now() < deadline;
            if (!r) {
                if (r.error().code == Errc::Unavailable && reused && again) continue;
                return r.error();
            }
            if (r->errorIs("READONLY")) {
                // The server we talk to became a replica: find the new master.
                main_.close();
                if (again) continue;
                return makeError(Errc::Unavailable, "redis " + main_.target().describe() +
                                                        " is read-only (a replica): " + r->str);
            }
            if (r->isError()) {
                // LOADING, BUSY, OOM, MASTERDOWN…: the server cannot serve us right now.
                main_.close();
                return makeError(Errc::Unavailable,
                                 "redis " + main_.target().describe() + ": " + r->str);
            }
            return r;
        }
    }

    Result<void> subscribe(TimePoint deadline, Interrupt& interrupt) {
        if (!main_.isOpen()) return makeError(Errc::Unavailable, "not connected");
        Login plain = login_;
        plain.db = 0; // channels are not per database
        plain.requireMaster = false;
        const TimePoint connectBy = std::min(deadline, BootClock::now() + timeouts_.connect);
        if (auto o = sub_.open(main_.target(), plain, connectBy, interrupt); !o) return o;
        auto r = call(sub_, {"SUBSCRIBE", channel_}, deadline, interrupt);
        if (!r) return r.error();
        if (r->type != Reply::Type::Array || r->elements.empty() ||
            r->elements[0].str != "subscribe") {
            sub_.close();
            return makeError(Errc::Unavailable, "SUBSCRIBE failed");
        }
        return {};
    }

    RedisUrl url_;
    Login login_;
    Timeouts timeouts_;
    HolderRecord self_;
    Duration ttl_, minUptime_{};
    int minReplicas_ = 0;
    std::string waitReason_; // see waitReason()
    int holders_;
    std::string lockKey_, fenceKey_, recordsKey_, channel_, releasedKey_;
    HolderRecord seen_; // the last holder a busy attempt saw (a mutex's lock-delay)

    Connection main_, sub_, sentinelConn_;
    Target master_;
    size_t sentinel_ = 0;
    bool held_ = false;
    ReachedOnce reachedOnce_;
    std::string record_, token_;
    unsigned long long highestToken_ = 0; // see see()
    Duration retry_ = kPollWithoutSubscription;
    std::optional<LockState> busyState_;
    TimePoint busyAt_{};
};

} // namespace

Result<std::unique_ptr<LockBackend>> create(const BackendParams& p) {
    static const BackendSettings none;
    const BackendSettings& settings = p.settings ? *p.settings : none;
    auto url = parseRedisUrl(p.scheme, p.rest);
    if (!url) return url.error();
    auto timeouts = readTimeouts(settings, p.renew);
    if (!timeouts) return timeouts.error();
    auto password = loadPassword(settings);
    if (!password) return password.error();
    Login login;
    login.user = url->user;
    login.password = *password;
    login.db = url->db;
    std::string prefix = settings.string("key_prefix").value_or("lockunit:");
    const long long minReplicas = settings.integer("min_replicas", 0);
    if (minReplicas < 0 || minReplicas > 100)
        return makeError(Errc::Config, settings.origin("min_replicas") + ": min_replicas " +
                                           std::to_string(minReplicas) +
                                           " must be between 0 and 100");
    if (url->kind == RedisUrl::Kind::Redlock) {
        if (minReplicas != 0)
            return makeError(Errc::Config,
                             settings.origin("min_replicas") +
                                 ": min_replicas is for redis:// and redis+sentinel://; redlock's "
                                 "servers are independent masters");
        if (p.holders != 1)
            return makeError(Errc::Config,
                             "redlock does not do holders = " + std::to_string(p.holders) +
                                 " (only 1); use redis:// for a semaphore");
        return makeRedlock(std::move(*url), std::move(login), *timeouts, prefix, p);
    }
    return std::unique_ptr<LockBackend>(std::make_unique<RedisBackend>(
        std::move(*url), std::move(login), *timeouts, prefix, p, static_cast<int>(minReplicas)));
}

} // namespace redis

LOCKUNIT_MODULE(redis, BackendModule) {
    static const BackendModule module{{
        BackendInfo{
            {"redis", "unix", "redis+sentinel"},
            "redis",
            "Redis (single server, Unix socket, or a master found through Sentinel): SET NX PX + "
            "fencing counter, release published to waiters",
            redis::keySpecs(),
            redis::create,
        },
        BackendInfo{
            {"redlock"},
            "redlock",
            "Redlock over N independent Redis servers (quorum N/2+1); no fencing token",
            redis::keySpecs(),
            redis::create,
        },
    }};
    return &module;
}

} // namespace lockunit
