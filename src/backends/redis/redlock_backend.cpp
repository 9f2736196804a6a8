// SPDX-License-Identifier: LGPL-2.1-or-later
//
// redlock://[USER@]H1[:PORT],H2,…[/DB] — Redlock over N independent Redis servers (no
// replication between them). The same random value (our holder record) is SET NX PX on every
// node in parallel; the lock is ours when a quorum of N/2+1 nodes said yes within the lease's
// validity. Extending counts only with a quorum inside validity; release goes to all nodes.
// Failed attempts are undone on every node and retried after a random delay, so that
// contenders do not keep splitting the votes.
//
// Validity: each node's key expires ttl after it received our command, which is no earlier
// than when the call began; lockunit counts the lease from the call's start (the supervisor
// then takes off the clock drift), which is Redlock's "ttl − elapsed − drift" counted from the
// end. An attempt that took longer than ttl − drift counts as failed.
//
// There is no fencing token: the nodes share no counter, and a token from one node's INCR
// would not be ordered across quorums. LOCKUNIT_TOKEN is empty.
//
// Every node that votes for us also sends its INFO memory, and a node that may evict the lock
// key is refused, as redis:// refuses its server (refuseEviction()): the attempt is undone.
//
// The lock-delay: a release leaves its value in KEY:released on each node (kRelease); a waiter
// remembers the value it saw on a quorum (the holder), and when it wins, the holder released
// if any node that voted for it shows that value there. If none does, the holder's keys
// vanished otherwise (DEL on a majority, expiry, restarts without data): it waits the holder's
// stop budget (docs/backends/redis.md).

#include <map>

#include "backends/redis/redis_common.hpp"
#include "backends/redis/redis_scripts.hpp"
#include "backends/redis/redis_url.hpp"

namespace lockunit::redis {
namespace {

const Script& acquireScript() {
    static const Script s(scripts::kRedlockAcquire);
    return s;
}
const Script& extendScript() {
    static const Script s(scripts::kExtend);
    return s;
}
const Script& releaseScript() {
    static const Script s(scripts::kRelease);
    return s;
}
const Script& inspectScript() {
    static const Script s(scripts::kInspect);
    return s;
}

class RedlockBackend final : public LockBackend {
public:
    RedlockBackend(RedisUrl url, Login login, Timeouts timeouts, std::string prefix,
                   const BackendParams& p)
        : login_(std::move(login)), timeouts_(timeouts), self_(p.self), ttl_(p.ttl) {
        for (const auto& t : url.nodes) {
            nodes_.push_back(std::make_unique<Connection>());
            targets_.push_back(t);
        }
        quorum_ = static_cast<int>(nodes_.size() / 2 + 1);
        key_ = prefix + p.lockName;
        channel_ = releasedKey_ = key_ + ":released"; // a channel and a key: two namespaces
        self_.stopBudget = noticedAtRenewal(p);
        drift_ = clockDrift(ttl_);
        // Release mode (the lock guard): the value of the holder whose keys release() deletes.
        if (!p.adopt.empty()) {
            value_ = p.adopt;
            held_ = true;
        }
    }

    // What release mode needs to delete exactly our keys: the value they hold.
    std::string handoff() const override { return held_ ? value_ : std::string(); }

    Result<Lease> tryAcquire(Interrupt& interrupt) override {
        const TimePoint start = BootClock::now();
        HolderRecord rec = self_;
        rec.since = formatWallTime(std::time(nullptr));
        value_ = rec.serialize();
        auto results = onAll(acquireScript(), {value_, ms(ttl_), ms(ttl_ + drift_)},
                             start + timeouts_.command, interrupt);
        if (!results) return results.error();
        int ok = 0, failed = 0;
        bool released = false;                 // a node that voted for us shows seen_'s release
        std::map<std::string, int> holderVotes; // value → nodes that hold it
        std::string problems;
        Result<void> evicting;
        for (size_t i = 0; i < results->size(); ++i) {
            auto& r = (*results)[i];
            if (!r) {
                ++failed;
                problems += (problems.empty() ? "" : "; ") + r.error().message;
                continue;
            }
            if (r->elements.size() < 2) continue;
            const long long status = r->elements[0].asInteger(-1);
            if (status == 1) {
                ++ok;
                released = released || r->elements[1].str == seen_;
                if (r->elements.size() >= 3 && evicting)
                    evicting = refuseEviction(r->elements[2].str, targets_[i].describe(), key_);
            } else if (status == 0) {
                ++holderVotes[r->elements[1].str];
            }
        }
        const Duration elapsed = std::chrono::duration_cast<Duration>(BootClock::now() - start);
        if (!evicting) {
            [[maybe_unused]] auto undone = releaseAll(false, interrupt);
            return evicting.error();
        }
        if (ok >= quorum_ && elapsed < ttl_ - drift_) {
            held_ = true;
            reachedQuorum_ = true;
            Lease lease{ttl_, ""};
            if (!seen_.empty() && !released) {
                const HolderRecord previous = HolderRecord::parse(seen_);
                addLockDelay(lease, "keys", previous.describe(), previous.stopBudget);
            }
            seen_.clear();
            return lease;
        }
        for (const auto& [value, votes] : holderVotes)
            if (votes >= quorum_) seen_ = value; // that value holds the lock
        // Undo whatever we got, on every node (a node that timed out may have said yes), with
        // no release mark: this was no holder.
        [[maybe_unused]] auto undone = releaseAll(false, interrupt);
        retry_ = std::chrono::milliseconds(300) + jitter(std::chrono::milliseconds(700));
        const int reachable = static_cast<int>(nodes_.size()) - failed;
        if (reachable < quorum_) {
            std::string why = "only " + std::to_string(reachable) + " of " +
                              std::to_string(nodes_.size()) + " redlock nodes answered (quorum " +
                              std::to_string(quorum_) + "): " + problems;
            // Once a quorum was reachable, losing it while waiting is a pause, not the end.
            if (reachedQuorum_) return makeError(Errc::Busy, why + "; retrying");
            return makeError(Errc::Unavailable, why);
        }
        reachedQuorum_ = true;
        if (ok >= quorum_)
            return makeError(Errc::Busy, "acquiring took " + formatDuration(elapsed) +
                                             ", longer than the lease's validity");
        return makeError(Errc::Busy, "held (" + std::to_string(ok) + " of " +
                                         std::to_string(nodes_.size()) + " nodes granted, " +
                                         std::to_string(quorum_) + " needed)");
    }

    Result<Lease> renew(Interrupt& interrupt) override {
        if (!held_) return makeError(Errc::Lost, "not held");
        const TimePoint start = BootClock::now();
        auto results =
            onAll(extendScript(), {value_, ms(ttl_)}, start + timeouts_.command, interrupt);
        if (!results) return results.error();
        int ok = 0, notOurs = 0;
        std::string problems;
        for (auto& r : *results) {
            if (!r)
                problems += (problems.empty() ? "" : "; ") + r.error().message;
            else if (r->type == Reply::Type::Integer && r->integer == 1)
                ++ok;
            else if (r->type == Reply::Type::Integer)
                ++notOurs;
        }
        const Duration elapsed = std::chrono::duration_cast<Duration>(BootClock::now() - start);
        if (ok >= quorum_ && elapsed < ttl_ - drift_) return Lease{ttl_, ""};
        const int n = static_cast<int>(nodes_.size());
        if (notOurs > n - quorum_) {
            held_ = false;
            return makeError(Errc::Lost, std::to_string(notOurs) + " of " + std::to_string(n) +
                                             " redlock nodes no longer hold our key: no quorum "
                                             "is possible");
        }
        return makeError(Errc::Unavailable, "extended on " + std::to_string(ok) + " of " +
                                                std::to_string(n) + " redlock nodes (quorum " +
                                                std::to_string(quorum_) + ")" +
                                                (problems.empty() ? "" : ": " + problems));
    }

    Result<void> release(Interrupt& interrupt) override {
        if (!held_) return {};
        held_ = false;
        return releaseAll(true, interrupt);
    }

    Result<LockState> inspect(Interrupt& interrupt) override {
        auto results = onAll(inspectScript(), {}, BootClock::now() + timeouts_.command, interrupt);
        if (!results) return results.error();
        std::map<std::string, std::pair<int, long long>> seen; // record → (nodes, min pttl)
        int answered = 0;
        for (auto& r : *results) {
            if (!r || r->elements.size() != 2) continue;
            ++answered;
            if (r->elements[0].str.empty()) continue;
            auto& s = seen[r->elements[0].str];
            long long pttl = r->elements[1].asInteger(-1);
            s.second = s.first == 0 ? pttl : std::min(s.second, pttl);
            ++s.first;
        }
        if (answered < quorum_)
            return makeError(Errc::Unavailable, "only " + std::to_string(answered) + " of " +
                                                    std::to_string(nodes_.size()) +
                                                    " redlock nodes answered");
        LockState state;
        for (const auto& [record, s] : seen)
            if (s.first >= quorum_) {
                state.holders.push_back(HolderRecord::parse(record));
                if (s.second >= 0) state.leaseLeft = Duration(s.second);
            }
        return state;
    }

    Duration retryInterval() const override { return retry_; }

private:
    // Runs one script on every node at once (opening connections as needed) and returns each
    // node's outcome. Without waiting for the others, a node that lost the script gets it again
    // by EVAL, and a node whose connection had worked before gets one more try on a new one.
    Result<std::vector<Result<Reply>>> onAll(const Script& s, const std::vector<std::string>& args,
                                             TimePoint deadline, Interrupt& interrupt) {
        const size_t n = nodes_.size();
        std::vector<std::optional<Result<Reply>>> out(n);
        std::vector<bool> full(n, false), retried(n, false), reused(n, false);
        std::vector<Connection*> conns;
        std::vector<size_t> index;
        auto send = [&](size_t i) -> Result<void> {
            Connection& c = *nodes_[i];
            if (!c.isOpen()) {
                auto connectBy = std::min(deadline, BootClock::now() + timeouts_.connect);
                if (auto o = c.open(targets_[i], login_, connectBy, interrupt); !o) return o;
            }
            reused[i] = c.used();
            const std::vector<std::string> keys{key_, releasedKey_};
            c.append(full[i] ? evalArgs(s, keys, args) : evalShaArgs(s, keys, args));
            return {};
        };
        for (size_t i = 0; i < n; ++i) {
            if (auto r = send(i); !r) {
                if (r.error().code == Errc::Interrupted) return r.error();
                out[i] = Result<Reply>(r.error());
                continue;
            }
            conns.push_back(nodes_[i].get());
            index.push_back(i);
        }
        auto followUp = [&](size_t k, const Result<Reply>& r) {
            const size_t i = index[k];
            if (r && r->errorIs("NOSCRIPT") && !full[i])
                full[i] = true;
            else if (!r && r.error().code == Errc::Unavailable && reused[i] && !retried[i] &&
                     BootClock::now() < deadline)
                retried[i] = true;
            else
                return false;
            return static_cast<bool>(send(i));
        };
        auto replies = waitEach(conns, deadline, interrupt, followUp);
        if (!replies) return replies.error();
        for (size_t k = 0; k < index.size(); ++k) {
            const size_t i = index[k];
            auto& r = (*replies)[k];
            if (r && r->isError())
                out[i] = Result<Reply>(makeError(
                    Errc::Unavailable, "redis " + targets_[i].describe() + ": " + r->str));
            else
                out[i] = std::move(r);
        }
        std::vector<Result<Reply>> all;
        for (size_t i = 0; i < n; ++i)
            all.push_back(std::move(*out[i]));
        return all;
    }

    // Deletes our value on every node; `mark`: leave the release mark (we held the lock).
    Result<void> releaseAll(bool mark, Interrupt& interrupt) {
        const std::string lasts = mark ? ms(releaseMarkLasts(ttl_)) : "0";
        auto results = onAll(releaseScript(), {value_, channel_, lasts},
                             BootClock::now() + timeouts_.command, interrupt);
        if (!results) return results.error();
        int answered = 0;
        std::string problems;
        for (auto& r : *results) {
            if (r)
                ++answered;
            else
                problems += (problems.empty() ? "" : "; ") + r.error().message;
        }
        if (answered == 0)
            return makeError(Errc::Unavailable, "no redlock node answered: " + problems);
        return {};
    }

    Login login_;
    Timeouts timeouts_;
    HolderRecord self_;
    Duration ttl_, drift_{};
    std::vector<std::unique_ptr<Connection>> nodes_;
    std::vector<Target> targets_;
    int quorum_ = 1;
    std::string key_, channel_, releasedKey_, value_;
    std::string seen_; // the value a quorum held at our last busy attempt (the lock-delay)
    bool held_ = false, reachedQuorum_ = false;
    Duration retry_ = std::chrono::seconds(1);
};

} // namespace

std::unique_ptr<LockBackend> makeRedlock(RedisUrl url, Login login, Timeouts timeouts,
                                         std::string prefix, const BackendParams& p) {
    return std::make_unique<RedlockBackend>(std::move(url), std::move(login), timeouts,
                                            std::move(prefix), p);
}

} // namespace lockunit::redis
