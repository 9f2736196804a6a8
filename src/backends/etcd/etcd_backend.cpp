// SPDX-License-Identifier: LGPL-2.1-or-later
//
// etcd://HOST:PORT[,HOST:PORT…] (etcds:// for TLS) — a fair queue on etcd v3, spoken in
// etcd's native gRPC with our own small client (grpc_client.hpp, HTTP/2 by nghttp2).
//
// Each contender grants a lease with the configured ttl (rounded up to whole seconds: etcd
// knows no less) and puts PREFIX NAME/<lease-hex> with that lease, in a txn that only creates
// the key (create_revision == 0). Keys are served in create-revision order: a contender holds
// one of the `holders` slots when fewer than `holders` keys of the lock have a lower
// create-revision. A waiter watches the deletion of the key just below its own (holders = 1;
// with more slots, any deletion under the lock's prefix), so a release wakes exactly the next
// in line; the watch's socket is the wake fd. Release markers (below) are not queue keys.
// Every check compares our own key's create-revision in the same txn: etcd 3.4's own recipe
// misses that a waiter's lease can expire while it waits, and then takes the vanished key for a
// held lock.
//
// A waiter keeps its lease alive with a keepalive every `renew` and otherwise relies on the
// watch: it checks its place again only when the watch reports a deletion, when the watch ended
// or runs on another endpoint than the requests (a failover), and as a safety net every
// kSafetyNetCheck. A wake-up is used up only by a check that etcd answered: one that timed out
// (and failed over all the way back to the watch's member, which leaves the watch looking
// sound) is tried again at the next attempt. The check after a wake is one round trip: the
// validity it reports is that of the last keepalive etcd confirmed (counted from when that
// keepalive was sent), which the own-key compare in the same txn proves still stands; a
// keepalive goes with it only when one is due anyway. That txn only reads, so etcd answers it
// without a raft round or a disk write.
// A waiter that gives up revokes its lease (its key goes with it). Once it holds, the holder
// record in its key gets the time of acquisition and the token, written without holding up
// the payload. The fencing token is the own key's create-revision: cluster-wide and strictly
// increasing.
// Renew is a keepalive (TTL 0 or none: lost) plus a read of the own key (gone: lost).
//
// Release and the lock-delay (docs/backends/etcd.md, "Lock-delay"): a holder's release is one
// txn that, while its key still has its lease, deletes the key and puts the release marker
// KEY/released under the same lease (etcd_release.hpp): one revision, one raft write, and the
// watch event that wakes the next in line. The lease's revoke follows kRevokeHoldOff later, so
// that the next in line's check (a linearizable read) does not wait for etcd to apply it; it
// removes the marker. A waiter watches the range from the key below to that key's marker, with
// the previous values (prev_kv): a key deleted in the revision that put its marker was
// released; one deleted without it, with its holder record carrying a token (written once it
// held), ended otherwise — its lease revoked by someone else or expired, the key deleted — and
// its payload may still be stopping. When such a key was below ours, the waiter that gets its
// turn waits out that holder's stop budget (addLockDelay) before its payload starts. A key
// deleted with kReleasedValue was released by a lockunit from before the marker. Markers are
// not queue keys: every read of the lock's keys leaves them out (isMarker), and a limited read
// whose places markers took is done again over every key before ours (txnQueue).

#include <algorithm>
#include <ctime>
#include <map>
#include <optional>
#include <string_view>
#include <unistd.h>

#include "backends/etcd/etcd_api.hpp"
#include "backends/etcd/etcd_release.hpp"
#include "backends/io.hpp"
#include "backends/reached_once.hpp"
#include "backends/registry.hpp"
#include "util/module.hpp"
#include "util/log.hpp"

namespace lockunit {
namespace {

using etcd::ApiCall;
using etcd::EtcdApi;
namespace method = etcd::method;
namespace pb = etcdpb;

constexpr Duration kDefaultRequestTimeout = std::chrono::seconds(2);
constexpr Duration kDefaultConnectTimeout = std::chrono::seconds(1);
constexpr Duration kMaxRetryInterval = std::chrono::seconds(1);
// How often an idle waiter checks its place although the watch said nothing: only a watch that
// stays connected but silently stops reporting would need it.
constexpr Duration kSafetyNetCheck = std::chrono::seconds(30);
constexpr Duration kMinRetryInterval = std::chrono::milliseconds(10);
constexpr Duration kGiveUpBudget = std::chrono::milliseconds(500);
// Between two attempts at a release that etcd could not take (no leader for a moment).
constexpr Duration kReleaseRetry = std::chrono::milliseconds(100);
// Between a release's txn and the revoke of its lease (docs/backends/etcd.md, "Lock-delay").
constexpr Duration kRevokeHoldOff = std::chrono::milliseconds(5);

struct KeyValue {
    std::string key;
    std::string value;
    long long createRevision = 0;
    long long lease = 0;
};

std::vector<KeyValue> parseKvs(const pb::RangeResponse& range) {
    std::vector<KeyValue> out;
    for (const pb::KeyValue& kv : range.kvs())
        out.push_back(KeyValue{kv.key(), kv.value(), kv.create_revision(), kv.lease()});
    return out;
}

// The keys that the n-th response of a txn answer read; none if it is not a range.
std::vector<KeyValue> txnRange(const pb::TxnResponse& txn, int n) {
    if (txn.responses_size() <= n) return {};
    return parseKvs(txn.responses(n).response_range());
}

// The queue keys that the n-th response of a txn answer read, release markers left out; none
// when markers took places under the range's limit and keys past it went unread.
std::optional<std::vector<KeyValue>> txnQueue(const pb::TxnResponse& txn, int n) {
    std::vector<KeyValue> out = txnRange(txn, n);
    const size_t read = out.size();
    std::erase_if(out, [](const KeyValue& kv) { return etcd::isMarker(kv.key); });
    const bool more = txn.responses_size() > n && txn.responses(n).response_range().more();
    if (out.size() < read && more) return std::nullopt;
    return out;
}

pb::RequestOp rangeOp(pb::RangeRequest range) {
    pb::RequestOp op;
    *op.mutable_request_range() = std::move(range);
    return op;
}

pb::RequestOp deleteOp(const std::string& key) {
    pb::RequestOp op;
    op.mutable_request_delete_range()->set_key(key);
    return op;
}

pb::RequestOp putOp(const std::string& key, const std::string& value, long long lease) {
    pb::RequestOp op;
    pb::PutRequest* put = op.mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    put->set_lease(lease);
    return op;
}

pb::RangeRequest keyOnly(const std::string& key) {
    pb::RangeRequest range;
    range.set_key(key);
    range.set_keys_only(true);
    return range;
}

struct Settings {
    etcd::EtcdUrl url;
    std::string prefix = "lockunit/";
    Duration requestTimeout{};
    Duration connectTimeout{};
    std::string caFile, certFile, keyFile;
    std::optional<etcd::Credentials> credentials;
};

class EtcdBackend final : public LockBackend {
public:
    EtcdBackend(const BackendParams& p, Settings s, std::unique_ptr<EtcdApi> api)
        : api_(std::move(api)), prefix_(s.prefix + p.lockName + "/"),
          prefixEnd_(etcd::prefixEnd(prefix_)), holders_(p.holders), self_(p.self),
          ttlSeconds_(etcd::ttlSeconds(p.ttl)), requestTimeout_(s.requestTimeout),
          retryInterval_(std::min<Duration>(kMaxRetryInterval, p.renew / 2)), renew_(p.renew) {
        self_.stopBudget = noticedAtRenewal(p);
        // Release mode: the dead holder's key is released as the holder would have (one txn
        // deletes it and puts its marker) and its lease revoked, and nothing else.
        if (!p.adopt.empty()) {
            lease_ = std::strtoll(p.adopt.c_str(), nullptr, 10);
            key_ = prefix_ + etcd::leaseHex(lease_);
            holding_ = true;
        }
    }

    ~EtcdBackend() override {
        // A waiter that gives up (wait expired, stop requested) leaves no key behind to hold
        // up the queue until its lease runs out. Bounded: we are on our way out.
        NoInterrupt none;
        [[maybe_unused]] auto r =
            dropKeyAndLease(BootClock::now() + std::min(requestTimeout_, kGiveUpBudget), none);
    }

    Result<Lease> tryAcquire(Interrupt& interrupt) override {
        const TimePoint start = BootClock::now();
        idle_ = false;
        auto lease = attempt(start, start + requestTimeout_, interrupt);
        // Queued and watched: nothing to do before the next keepalive unless the watch wakes
        // us. Anything else (etcd trouble, no watch) is retried soon.
        nextDue_ = idle_ ? confirmedAt_ + renew_ : start + retryInterval_;
        reachedOnce_.note(lease);
        // Trouble with etcd after we queued (a leader election, a failover): keep our place
        // and keep waiting; the lease keeps our key for its ttl, and if it ran out we queue
        // again. Only a first attempt that never got through is fatal (exit 69).
        if (!lease && reachedOnce_.excuses(lease.error()))
            return makeError(Errc::Busy, "waiting; etcd did not answer: " + lease.error().message);
        return lease;
    }

    Result<Lease> renew(Interrupt& interrupt) override {
        if (!holding_ || lease_ == 0) return makeError(Errc::Lost, "not held");
        // The watch we waited on, left open by tryAcquire() so that closing it (and etcd
        // cancelling it) did not compete with the payload's start.
        api_->grpc().stopStream();
        const TimePoint deadline = BootClock::now() + requestTimeout_;
        ApiCall keep = keepaliveCall();
        ApiCall own(method::kRange, keyOnly(key_));
        auto ran = api_->call({&keep, &own}, deadline, interrupt);
        if (!ran) return ran.error();
        auto ttl = keepaliveTtl(keep);
        if (!ttl) return ttl.error();
        auto range = etcd::parse<pb::RangeResponse>(own);
        if (!range) return range.error();
        auto kvs = parseKvs(*range);
        if (kvs.empty() || kvs.front().createRevision != myRevision_)
            return makeError(Errc::Lost, "key '" + key_ + "' was deleted from etcd");
        return Lease{*ttl, std::to_string(myRevision_)};
    }

    Result<void> release(Interrupt& interrupt) override {
        // During a leader election every member answers UNAVAILABLE for a moment: try again,
        // for at most one ttl (by then the lease has run out anyway, and a revoke of a lease
        // etcd no longer has counts as done), so that a stop right after a leader restart
        // still hands the lock over at once.
        const long long lease = lease_;
        const bool holding = holding_;
        const TimePoint expires = BootClock::now() + std::chrono::seconds(ttlSeconds_);
        for (;;) {
            const TimePoint now = BootClock::now();
            auto r = dropKeyAndLease(std::min(now + requestTimeout_, expires), interrupt);
            if (r || r.error().code != Errc::Unavailable ||
                now + kReleaseRetry + requestTimeout_ / 4 >= expires)
                return r;
            lease_ = lease; // dropKeyAndLease() forgot them
            holding_ = holding;
            if (auto w = io::sleepUntil(now + kReleaseRetry, interrupt); !w) return w;
        }
    }

    // Our lease: revoking it frees exactly our key.
    std::string handoff() const override {
        return holding_ && lease_ ? std::to_string(lease_) : std::string();
    }

    Result<LockState> inspect(Interrupt& interrupt) override {
        const TimePoint deadline = BootClock::now() + requestTimeout_;
        pb::RangeRequest all;
        all.set_key(prefix_);
        all.set_range_end(prefixEnd_);
        all.set_sort_order(pb::RangeRequest::ASCEND);
        all.set_sort_target(pb::RangeRequest::CREATE);
        all.set_limit(1000);
        auto range = api_->call<pb::RangeResponse>(method::kRange, all, deadline, interrupt);
        if (!range) return range.error();
        LockState state;
        auto kvs = parseKvs(*range);
        long long count = std::max<long long>(range->count(), static_cast<long long>(kvs.size()));
        long long firstLease = 0;
        for (const KeyValue& kv : kvs) {
            // A release's marker is no contender. (One past the first 1000 keys counts as a
            // waiter for the milliseconds it exists.)
            if (etcd::isMarker(kv.key)) {
                --count;
                continue;
            }
            if (static_cast<int>(state.holders.size()) >= holders_) continue;
            HolderRecord r = HolderRecord::parse(kv.value);
            r.token = std::to_string(kv.createRevision);
            state.holders.push_back(r);
            if (!firstLease) firstLease = kv.lease;
        }
        state.waiters = static_cast<int>(count - static_cast<long long>(state.holders.size()));
        if (firstLease) {
            pb::LeaseTimeToLiveRequest request;
            request.set_id(firstLease);
            auto ttl = api_->call<pb::LeaseTimeToLiveResponse>(method::kLeaseTimeToLive, request,
                                                               deadline, interrupt);
            if (ttl) state.leaseLeft = std::chrono::seconds(std::max<long long>(0, ttl->ttl()));
        }
        return state;
    }

    int wakeFd() const override { return api_->grpc().wakeFd(); }
    void drainWake() override { api_->grpc().pump(); }
    Duration retryInterval() const override {
        return std::max(kMinRetryInterval,
                        std::chrono::ceil<Duration>(nextDue_ - BootClock::now()));
    }

private:
    // Where our key stands in the queue, as one txn saw it.
    struct Position {
        bool ownKey = false;         // our key still exists with our create-revision
        bool complete = true;        // false: the keys before ours were not (all) read
        std::vector<KeyValue> below; // keys with a lower create-revision, nearest first
        long long revision = 0;      // the store revision the txn saw
    };

    ApiCall keepaliveCall() const {
        pb::LeaseKeepAliveRequest request;
        request.set_id(lease_);
        return ApiCall(method::kLeaseKeepAlive, request);
    }

    // A keepalive answer: the lease's TTL, or Errc::Lost when etcd no longer has the lease.
    Result<Duration> keepaliveTtl(const ApiCall& keep) const {
        if (!keep.result) {
            if (keep.result.error().code == Errc::Lost)
                return makeError(Errc::Lost, "etcd lease " + etcd::leaseHex(lease_) +
                                                 " is gone: " + keep.result.error().message);
            return keep.result.error();
        }
        auto answer = etcd::parse<pb::LeaseKeepAliveResponse>(keep);
        if (!answer) return answer.error();
        long long ttl = answer->ttl();
        if (ttl <= 0)
            return makeError(Errc::Lost, "etcd lease " + etcd::leaseHex(lease_) +
                                             " expired (keepalive answered TTL 0)");
        return Duration(std::chrono::seconds(ttl));
    }

    std::string record(long long revision) const {
        HolderRecord r = self_;
        r.since = formatWallTime(std::time(nullptr));
        if (revision) r.token = std::to_string(revision);
        return r.serialize();
    }

    pb::RangeRequest rangeBelow(long long maxCreateRevision, long long limit) const {
        pb::RangeRequest range;
        range.set_key(prefix_);
        range.set_range_end(prefixEnd_);
        range.set_sort_order(pb::RangeRequest::DESCEND);
        range.set_sort_target(pb::RangeRequest::CREATE);
        range.set_limit(limit);
        range.set_keys_only(true); // their keys and create-revisions are all we need
        if (maxCreateRevision > 0) range.set_max_create_revision(maxCreateRevision);
        return range;
    }

    void compareOwnKey(pb::TxnRequest& txn, long long revision) const {
        pb::Compare* compare = txn.add_compare();
        compare->set_key(key_);
        compare->set_target(pb::Compare::CREATE);
        compare->set_result(pb::Compare::EQUAL);
        compare->set_create_revision(revision);
    }

    // Creates our key (if it does not exist yet) and reads the keys before it, in one txn.
    ApiCall enqueueCall() const {
        pb::TxnRequest txn;
        compareOwnKey(txn, 0);
        *txn.add_success() = putOp(key_, record(0), lease_);
        *txn.add_success() = rangeOp(rangeBelow(0, holders_ + 1));
        pb::RangeRequest own;
        own.set_key(key_);
        *txn.add_failure() = rangeOp(own);
        return ApiCall(method::kTxn, txn);
    }

    // Reads the keys before ours, if ours still exists, in one txn: the nearest `holders`, or
    // all of them (readAll: an earlier read missed some, release markers taking their places
    // under its limit). It only reads, so etcd answers it without a raft round or a disk
    // write: the holder record is written after the payload started (writeRecord).
    ApiCall checkCall(bool readAll) const {
        pb::TxnRequest txn;
        compareOwnKey(txn, myRevision_);
        *txn.add_success() = rangeOp(rangeBelow(myRevision_ - 1, readAll ? 0 : holders_));
        return ApiCall(method::kTxn, txn);
    }

    Result<Position> parseEnqueue(const pb::TxnResponse& txn) {
        Position pos;
        pos.revision = txn.header().revision();
        if (txn.succeeded()) {
            myRevision_ = pos.revision; // created by this txn
            pos.ownKey = true;
            auto queue = txnQueue(txn, 1);
            pos.complete = queue.has_value(); // if not, the caller checks our place next
            for (const KeyValue& kv : queue.value_or(std::vector<KeyValue>{}))
                if (kv.key != key_) pos.below.push_back(kv);
            return pos;
        }
        // It existed already: an earlier attempt of ours created it but its answer was lost.
        auto own = txnRange(txn, 0);
        if (own.empty() || own.front().lease != lease_)
            return makeError(Errc::Refused, "key '" + key_ + "' exists with another lease");
        myRevision_ = own.front().createRevision;
        pos.ownKey = true;
        pos.complete = false; // the caller checks our place next
        return pos;
    }

    Position parseCheck(const pb::TxnResponse& txn) const {
        Position pos;
        pos.revision = txn.header().revision();
        pos.ownKey = txn.succeeded();
        if (!pos.ownKey) return pos;
        auto queue = txnQueue(txn, 0);
        pos.complete = queue.has_value();
        pos.below = queue.value_or(std::vector<KeyValue>{});
        return pos;
    }

    // The watch can be trusted to report the deletion we wait for: it runs, has not ended,
    // and talks to the endpoint our requests go to (after a failover the old member may be
    // cut off from the cluster and report nothing).
    bool watchHealthy() const {
        auto& grpc = api_->grpc();
        return grpc.streamActive() && !watchBroken_ && !watchKey_.empty() &&
               watchEndpoint_ == grpc.currentEndpoint();
    }

    Error busyBehind() const {
        return makeError(Errc::Busy, "held; waiting behind key '" + behind_ + "'");
    }

    // etcd confirmed the lease with a keepalive or grant sent at `sentAt` (or later).
    void confirmLease(TimePoint sentAt, Duration ttl) {
        confirmedAt_ = sentAt;
        leaseTtl_ = ttl;
    }

    Result<Lease> attempt(TimePoint start, TimePoint deadline, Interrupt& interrupt) {
        const bool queued = lease_ != 0 && myRevision_ != 0;
        const bool keepaliveDue = lease_ != 0 && start >= confirmedAt_ + renew_;
        const bool checkDue =
            !queued || wakePending() || !watchHealthy() || start >= lastCheck_ + kSafetyNetCheck;
        if (!checkDue) {
            // Idle in the queue: the watch is our eyes; only the lease needs keeping alive.
            if (keepaliveDue) {
                ApiCall keep = keepaliveCall();
                if (auto r = api_->call({&keep}, deadline, interrupt); !r) return r.error();
                auto ttl = keepaliveTtl(keep);
                if (ttl) confirmLease(start, *ttl);
                else if (ttl.error().code != Errc::Lost) return ttl.error();
                else forgetLease(); // expired while we waited: queue again, at the back
            }
            if (lease_ != 0) {
                idle_ = true;
                return busyBehind();
            }
        }
        // Whether a grant or keepalive sent during this call confirmed the lease. Without
        // one, the last confirmed keepalive counts, but only together with our own key found
        // in the same txn as the check: the key lives only as long as the lease.
        bool fresh = false;
        bool keepaliveNeeded = false; // our key vanished: is the lease still there?
        bool readAll = false;         // a read of the keys before ours was incomplete
        for (int round = 0; round < 4; ++round) {
            if (lease_ == 0) {
                auto granted = grant(deadline, interrupt);
                if (!granted) return granted.error();
                confirmLease(start, *granted);
                fresh = true;
            }
            // The wake-ups this check answers, if it gets through: one that times out (etcd
            // slow to answer) leaves them owed, and the next attempt checks again, although the
            // failover may have come back to the watch's member and the watch looks healthy.
            const unsigned long wakesBefore = wakes_;
            ApiCall queue = myRevision_ == 0 ? enqueueCall() : checkCall(readAll);
            ApiCall keep = keepaliveCall();
            // A keepalive goes along only when one is due: a wake-up costs one round trip.
            const bool keepalive = !fresh && (keepaliveNeeded || start >= confirmedAt_ + renew_);
            std::vector<ApiCall*> calls{&queue};
            if (keepalive) calls.push_back(&keep);
            if (auto r = api_->call(calls, deadline, interrupt); !r) return r.error();
            if (keepalive) {
                auto ttl = keepaliveTtl(keep);
                if (!ttl) {
                    if (ttl.error().code != Errc::Lost) return ttl.error();
                    forgetLease(); // expired while we waited: queue again, at the back
                    continue;
                }
                confirmLease(start, *ttl);
                fresh = true;
            }
            auto txn = etcd::parse<pb::TxnResponse>(queue);
            if (!txn) return txn.error();
            Position pos;
            if (myRevision_ == 0) {
                auto parsed = parseEnqueue(*txn);
                if (!parsed) return parsed.error();
                pos = *parsed;
            } else {
                pos = parseCheck(*txn);
            }
            if (pos.ownKey && !pos.complete) {
                readAll = true; // the next round reads every key before ours
                continue;
            }
            if (!pos.ownKey) {
                myRevision_ = 0; // our key is gone (its lease ran out, or it was deleted)
                keepaliveNeeded = true;
                continue;
            }
            // Our key exists, so the lease did when etcd ran the txn: the TTL that the last
            // keepalive (or grant) confirmed still counts from when that was sent.
            // (Rounded down: never more than proven.)
            const Duration validity =
                std::chrono::floor<Duration>(confirmedAt_ + leaseTtl_ - start);
            lastCheck_ = start;
            wakesAnswered_ = wakesBefore;
            if (static_cast<int>(pos.below.size()) < holders_) {
                // Our turn: the check that said so also found our own key, in the same txn.
                // The holder record gets its time of acquisition and its token without holding
                // up the payload; it says who holds the lock, and its token tells a waiter that
                // this key held it (the lock-delay); its compare keeps it from ever recreating
                // a key that is gone.
                writeRecord(deadline);
                watchKey_.clear(); // its stream is closed by the first renew() or release()
                holding_ = true;
                Lease lease{validity, std::to_string(myRevision_)};
                for (const auto& [revision, holder] : unreleased_)
                    if (revision < myRevision_)
                        addLockDelay(lease, "etcd lease", holder.describe(), holder.stopBudget);
                unreleased_.clear();
                return lease;
            }
            behind_ = pos.below.front().key;
            watch(pos);
            if (!wakePending()) {
                idle_ = watchHealthy();
                return busyBehind();
            }
            // The watch saw a deletion while we were asking: look again at once.
        }
        return makeError(Errc::Busy, "held");
    }

    Result<Duration> grant(TimePoint deadline, Interrupt& interrupt) {
        pb::LeaseGrantRequest request;
        request.set_ttl(ttlSeconds_);
        auto answer =
            api_->call<pb::LeaseGrantResponse>(method::kLeaseGrant, request, deadline, interrupt);
        if (!answer) return answer.error();
        long long id = answer->id(), ttl = answer->ttl();
        const std::string& error = answer->error();
        if (id == 0 || ttl <= 0)
            return makeError(Errc::Refused,
                             "etcd granted no lease" + (error.empty() ? "" : ": " + error));
        lease_ = id;
        key_ = prefix_ + etcd::leaseHex(id);
        myRevision_ = 0;
        return Duration(std::chrono::seconds(ttl));
    }

    // Rewrites our holder record (time of acquisition, token) if our key still exists.
    void writeRecord(TimePoint deadline) {
        pb::TxnRequest txn;
        compareOwnKey(txn, myRevision_);
        *txn.add_success() = putOp(key_, record(myRevision_), lease_);
        api_->send(method::kTxn, txn, deadline);
    }

    // Watches the deletion of the key just before ours and the put of its release marker
    // (with more than one slot: every key of this lock), from just after the revision the check
    // saw, so nothing slips between. Nothing else sorts between a key and its marker: lease
    // ids are hex digits, all of them above '/'.
    void watch(const Position& pos) {
        std::string key = holders_ == 1 ? pos.below.front().key : prefix_;
        auto& grpc = api_->grpc();
        if (watchHealthy() && key == watchKey_) return;
        pb::WatchRequest request;
        pb::WatchCreateRequest* create = request.mutable_create_request();
        create->set_key(key);
        create->set_range_end(holders_ == 1 ? etcd::markerKey(key) + '\0' : prefixEnd_);
        create->set_start_revision(pos.revision + 1);
        create->set_prev_kv(true); // a deleted key's last value: a holder record or not
        watchBroken_ = false;
        if (log::verbose())
            log::debug("etcd: watching '" + key + "' via " + grpc.currentEndpoint());
        grpc.startStream(method::kWatch, request.SerializeAsString(),
                         [this](std::string_view m) { onWatchMessage(m); });
        watchKey_ = key;
        watchEndpoint_ = grpc.currentEndpoint();
    }

    void onWatchMessage(std::string_view message) {
        pb::WatchResponse response;
        const bool parsed = response.ParseFromArray(message.data(), static_cast<int>(message.size()));
        const bool ended = !parsed || response.canceled();
        if (ended) watchBroken_ = true;
        const std::vector<etcd::Deletion> gone = etcd::deletions(response);
        for (const etcd::Deletion& d : gone) {
            if (d.released || !d.value) continue;
            // A holder record with a token: the key held the lock and was not released.
            HolderRecord holder = HolderRecord::parse(*d.value);
            if (!holder.token.empty()) unreleased_[d.createRevision] = holder;
        }
        // Puts (markers, records, keys queueing) and the markers' own deletions wake nobody.
        if (!gone.empty() || ended) {
            if (log::verbose())
                log::debug(ended ? "etcd: the watch ended" + (response.cancel_reason().empty()
                                                                  ? std::string()
                                                                  : ": " + response.cancel_reason())
                                 : "etcd: the watch reported a deletion");
            ++wakes_;
            api_->grpc().wake();
        }
    }

    void forgetLease() {
        lease_ = 0;
        myRevision_ = 0;
        holding_ = false;
    }

    Result<void> dropKeyAndLease(TimePoint deadline, Interrupt& interrupt) {
        api_->grpc().stopStream();
        watchKey_.clear();
        if (lease_ == 0) return {};
        // A holder's release: its key goes and its marker comes in one txn (see the top), the
        // one write before the next in line is woken.
        if (holding_) {
            pb::TxnRequest txn;
            pb::Compare* compare = txn.add_compare();
            compare->set_key(key_);
            compare->set_target(pb::Compare::LEASE);
            compare->set_result(pb::Compare::EQUAL);
            compare->set_lease(lease_);
            *txn.add_success() = deleteOp(key_);
            *txn.add_success() =
                putOp(etcd::markerKey(key_), std::string(etcd::kReleasedValue), lease_);
            ApiCall release(method::kTxn, txn);
            auto ran = api_->call({&release}, deadline, interrupt);
            if (!ran || (!release.result && release.result.error().code == Errc::Unavailable)) {
                forgetLease(); // release() tries again while etcd cannot take it
                return ran ? release.result.error() : ran.error();
            }
            // The txn woke the next in line, whose check is a read that etcd answers once it
            // has applied every write committed before it: a revoke sent at once would mostly
            // be one of them. A moment's wait keeps it off that path. (Not applied, the key not
            // ours any more, say: nobody to wait for; revoke anyway.)
            auto answer = etcd::parse<pb::TxnResponse>(release);
            if (answer && answer->succeeded()) {
                [[maybe_unused]] auto slept =
                    io::sleepUntil(BootClock::now() + kRevokeHoldOff, interrupt);
            }
        }
        // The revoke removes the marker. (Where etcd refused the txn, it deletes the key: a
        // waiter then waits out its delay.)
        pb::LeaseRevokeRequest request;
        request.set_id(lease_);
        ApiCall revoke(method::kLeaseRevoke, request);
        auto ran = api_->call({&revoke}, deadline, interrupt);
        forgetLease(); // whatever happened, the lease runs out by itself
        if (!ran) return ran.error();
        // Lost: etcd no longer has the lease, so neither the key.
        if (!revoke.result && revoke.result.error().code != Errc::Lost)
            return revoke.result.error();
        return {};
    }

    std::unique_ptr<EtcdApi> api_;
    const std::string prefix_, prefixEnd_;
    const int holders_;
    HolderRecord self_;
    const long long ttlSeconds_;
    const Duration requestTimeout_, retryInterval_, renew_;

    long long lease_ = 0;
    std::string key_;
    long long myRevision_ = 0; // our key's create-revision; 0 = not queued
    bool holding_ = false;
    ReachedOnce reachedOnce_;
    TimePoint confirmedAt_{}; // when the newest keepalive (or grant) etcd confirmed was sent
    Duration leaseTtl_{};     // the TTL it confirmed
    TimePoint lastCheck_{};   // when the newest check of our place was sent
    TimePoint nextDue_{};     // when the supervisor should call tryAcquire() again
    bool idle_ = false;       // queued and watched: nothing to do before nextDue_
    std::string behind_;      // the key just before ours
    std::string watchKey_, watchEndpoint_;
    bool watchBroken_ = false;
    // Deletions (and ends) the watch reported, and how many of them a check that got through
    // answered: a wake-up is consumed only by a check that etcd answered, never by one that
    // failed.
    unsigned long wakes_ = 0, wakesAnswered_ = 0;
    bool wakePending() const { return wakes_ != wakesAnswered_; }
    // Keys that held the lock and were deleted without a release while we waited, by their
    // create-revision: the lock-delay we owe when our turn comes.
    std::map<long long, HolderRecord> unreleased_;
};

// ---- configuration ----

constexpr KeySpec kKeys[] = {
    {"prefix", KeyType::String, "lockunit/",
     "key prefix; lock NAME queues under PREFIX NAME/ (used as is: end it with '/')"},
    {"request_timeout", KeyType::Duration, "2s (at most renew/2)",
     "deadline of every request to etcd, failover included; must be under renew"},
    {"connect_timeout", KeyType::Duration, "1s", "deadline of one TCP/TLS connection attempt"},
    {"ca_file", KeyType::TrustFile, "", "CA certificates to verify the server (etcds://)"},
    {"cert_file", KeyType::TrustFile, "", "client certificate for TLS client auth (etcds://)"},
    {"key_file", KeyType::SecretFile, "", "private key of cert_file (etcds://)"},
    {"user", KeyType::String, "", "etcd user for password authentication"},
    kPasswordFileKey,
    kPasswordCredentialKey,
};

Error settingError(const BackendSettings& s, const std::string& key, const std::string& what) {
    return settingError(s, "etcd", key, what);
}

Result<Settings> readSettings(const BackendParams& p) {
    static const BackendSettings empty;
    const BackendSettings& s = p.settings ? *p.settings : empty;
    Settings out;
    auto url = etcd::parseUrl(p.scheme, p.rest);
    if (!url) return url.error();
    out.url = *url;
    if (auto prefix = s.string("prefix")) {
        if (prefix->empty()) return settingError(s, "prefix", "must not be empty");
        out.prefix = *prefix;
    }
    auto timeout =
        requestTimeout(s, "etcd", std::min<Duration>(kDefaultRequestTimeout, p.renew / 2), p.renew);
    if (!timeout) return timeout.error();
    out.requestTimeout = *timeout;
    out.connectTimeout = s.duration("connect_timeout", kDefaultConnectTimeout);
    if (out.connectTimeout <= Duration::zero())
        return settingError(s, "connect_timeout", "must be more than 0");
    out.connectTimeout = std::min(out.connectTimeout, out.requestTimeout);
    for (const char* key : {"ca_file", "cert_file", "key_file"}) {
        auto path = s.string(key);
        if (!path) continue;
        if (!out.url.tls)
            return settingError(s, key, "is only used with etcds:// (TLS); the URL is " + p.url);
        if (::access(path->c_str(), R_OK) != 0)
            return settingError(s, key, "cannot read '" + *path + "'");
    }
    out.caFile = s.string("ca_file").value_or("");
    out.certFile = s.string("cert_file").value_or("");
    out.keyFile = s.string("key_file").value_or("");
    if (out.certFile.empty() != out.keyFile.empty())
        return settingError(s, out.certFile.empty() ? "key_file" : "cert_file",
                            "cert_file and key_file go together");
    auto password = loadPassword(s);
    if (!password) return password.error();
    auto user = s.string("user");
    if (user && user->empty()) return settingError(s, "user", "must not be empty");
    if (user && !*password)
        return settingError(s, "user",
                            "is set but neither password_file nor "
                            "password_credential is");
    if (!user && *password)
        return settingError(s, s.has("password_file") ? "password_file" : "password_credential",
                            "a password needs [etcd] user");
    if (user) out.credentials = etcd::Credentials{*user, **password};
    return out;
}

Result<std::unique_ptr<LockBackend>> createEtcd(const BackendParams& p) {
    auto settings = readSettings(p);
    if (!settings) return settings.error();
    etcd::GrpcOptions options;
    options.url = settings->url;
    options.caFile = settings->caFile;
    options.certFile = settings->certFile;
    options.keyFile = settings->keyFile;
    options.connectTimeout = settings->connectTimeout;
    auto grpc = etcd::GrpcClient::create(options);
    if (!grpc) return grpc.error();
    auto api = std::make_unique<EtcdApi>(std::move(*grpc), settings->credentials);
    return std::unique_ptr<LockBackend>(
        std::make_unique<EtcdBackend>(p, std::move(*settings), std::move(api)));
}

} // namespace

LOCKUNIT_MODULE(etcd, BackendModule) {
    static const BackendModule module{{
        BackendInfo{
            {"etcd", "etcds"},
            "etcd",
            "etcd v3 lease + fair queue of keys ordered by create-revision (gRPC)",
            {std::begin(kKeys), std::end(kKeys)},
            createEtcd,
        },
    }};
    return &module;
}

} // namespace lockunit
