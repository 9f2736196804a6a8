// SPDX-License-Identifier: LGPL-2.1-or-later
//
// zookeeper://HOST:PORT[,HOST:PORT…][/CHROOT] (and zk://) — the classic ZooKeeper lock recipe
// (Curator's InterProcessMutex and InterProcessSemaphore), on the single-threaded C client.
//
// Each contender opens a session whose timeout is the ttl and creates an ephemeral sequential
// node CHROOT/lockunit/NAME/lock-TAG-0000000042, with its holder record as the node's data.
// TAG is random per contender, so that a create whose answer was lost (a CONNECTION_LOSS) is
// found again among the children instead of queueing twice. Nodes are served in sequence
// order: a contender holds one of the `holders` slots when its node is one of the `holders`
// lowest. A waiter sets a watch on the node just before its own (holders = 1; with more
// slots, on the children of the lock), so a release wakes exactly the next in line, at once.
// After every wake it reads the children again, which also shows whether its own node still
// exists (a session that expired while waiting loses it: it queues again with a new session).
//
// The deadline: ZooKeeper expires a session when it has heard nothing from the client for the
// negotiated session timeout, so a reply to a request sent at S proves the session (and our
// ephemeral node) lives until at least S + timeout. The validity of an acquire or renew is
// the timeout counted from the start of the call; a servers' min/maxSessionTimeout may clamp
// the timeout, and one that breaks the deadline rule is refused (exit 78). A CONNECTION_LOSS
// is not a loss: the client reconnects with the same session while the deadline runs.
// SESSION_EXPIRED is (Errc::Lost). Renew is an exists() on the own node (gone: lost).
// The fencing token is the own node's czxid (see docs/backends/zookeeper.md for why it
// increases strictly). Release deletes the own node at its version, then closes the session.
//
// Idle waiters send nothing but the client's pings: the supervisor's wake fd is the client's
// socket, and tryAcquire() only sends the ping, when due, until a watch fires.

#include <algorithm>
#include <ctime>
#include <random>
#include <sstream>
#include <zookeeper/zookeeper.h>

#include "backends/reached_once.hpp"
#include "backends/registry.hpp"
#include "util/module.hpp"
#include "backends/zookeeper/zk_session.hpp"

namespace lockunit {
namespace {

using namespace std::chrono_literals;
using zk::Reply;
using zk::Session;
using Op = zk::Session::Op;

constexpr Duration kDefaultRequestTimeout = 2s;
constexpr Duration kDefaultConnectTimeout = 2s;
constexpr Duration kMaxRetryInterval = 1s;
constexpr Duration kMinRetryInterval = 10ms;

struct Settings {
    zk::ZkUrl url;
    Duration requestTimeout{};
    Duration connectTimeout{};
    std::optional<std::string> digest; // "user:password"
};

// The sequence number ZooKeeper appended to a node's name.
long long sequenceOf(const std::string& name) {
    auto dash = name.rfind('-');
    if (dash == std::string::npos) return -1;
    try {
        return std::stoll(name.substr(dash + 1));
    } catch (...) {
        return -1;
    }
}

std::vector<std::string> inQueueOrder(std::vector<std::string> children) {
    std::erase_if(children, [](const std::string& c) { return sequenceOf(c) < 0; });
    std::sort(children.begin(), children.end(), [](const std::string& a, const std::string& b) {
        return sequenceOf(a) < sequenceOf(b);
    });
    return children;
}

std::string randomTag() {
    std::random_device rd;
    std::ostringstream out;
    out << std::hex << rd() << rd();
    return out.str();
}

Error replyError(const Reply& r, const std::string& path) {
    if (r.rc == ZNOAUTH)
        return makeError(Errc::Refused, "ZooKeeper denied access to '" + path +
                                            "' (NOAUTH): wrong [zookeeper] user or password?");
    return makeError(Errc::Unavailable,
                     "ZooKeeper request on '" + path + "' failed: " + zerror(r.rc));
}

class ZooKeeperBackend final : public LockBackend {
public:
    ZooKeeperBackend(const BackendParams& p, Settings s)
        : settings_(std::move(s)), base_(settings_.url.chroot + "/lockunit/" + p.lockName),
          prefix_("lock-" + randomTag() + "-"), holders_(std::max(1, p.holders)), ttl_(p.ttl),
          budget_(p.deadlineBudget), self_(p.self), adopt_(p.adopt),
          retryInterval_(std::min<Duration>(kMaxRetryInterval, p.renew / 2)) {}

    Result<Lease> tryAcquire(Interrupt& interrupt) override {
        const TimePoint start = BootClock::now();
        auto lease = attempt(start, interrupt);
        reachedOnce_.note(lease);
        // A check that failed half-way may have consumed the wake without setting the next
        // watch: look again at the next attempt instead of only pinging.
        if (!lease && lease.error().code != Errc::Busy) watching_ = false;
        // Trouble after we reached the ensemble once (a leader election, a reconnect): keep
        // waiting; only a first attempt that never got through is fatal (exit 69).
        if (!lease && reachedOnce_.excuses(lease.error()))
            return makeError(Errc::Busy, "waiting; " + lease.error().message);
        if (!lease && lease.error().code == Errc::Lost)
            return makeError(Errc::Busy, "waiting; queueing again: " + lease.error().message);
        return lease;
    }

    Result<Lease> renew(Interrupt& interrupt) override {
        if (!holding_ || !session_) return makeError(Errc::Lost, "not held");
        const TimePoint start = BootClock::now();
        auto r = session_->call(Op::Exists, node_, start + settings_.requestTimeout, interrupt);
        if (!r) return r.error();
        if (r->rc == ZNONODE || (r->rc == ZOK && r->czxid != czxid_))
            return makeError(Errc::Lost, "node '" + node_ + "' was deleted from ZooKeeper");
        if (r->rc != ZOK) return replyError(*r, node_);
        return Lease{session_->timeout(), std::to_string(czxid_)};
    }

    Result<void> release(Interrupt& interrupt) override {
        const TimePoint deadline = BootClock::now() + settings_.requestTimeout;
        if (!adopt_.empty()) return releaseAdopted(deadline, interrupt);
        holding_ = false;
        if (!session_ || node_.empty()) return {};
        Result<void> out;
        if (!session_->ended()) {
            auto r = session_->call(Op::Delete, node_, deadline, interrupt, {}, version_);
            if (!r)
                out = r.error();
            else if (r->rc != ZOK && r->rc != ZNONODE)
                out = replyError(*r, node_);
        }
        node_.clear();
        session_.reset(); // closing the session removes the node too, if the delete failed
        return out;
    }

    Result<LockState> inspect(Interrupt& interrupt) override {
        const TimePoint deadline = BootClock::now() + settings_.requestTimeout;
        if (auto s = ensureSession(BootClock::now() + settings_.connectTimeout, interrupt); !s)
            return s.error();
        auto children = session_->call(Op::Children, base_, deadline, interrupt);
        if (!children) return children.error();
        LockState state;
        state.waiters = 0;
        if (children->rc == ZNONODE) return state;
        if (children->rc != ZOK) return replyError(*children, base_);
        auto queue = inQueueOrder(children->children);
        for (const std::string& name : queue) {
            if (static_cast<int>(state.holders.size()) >= holders_) break;
            auto got = session_->call(Op::Get, base_ + "/" + name, deadline, interrupt);
            if (!got) return got.error();
            if (got->rc != ZOK) continue; // released meanwhile
            HolderRecord r = HolderRecord::parse(got->data);
            r.token = std::to_string(got->czxid);
            state.holders.push_back(r);
        }
        state.waiters = static_cast<int>(queue.size() - state.holders.size());
        return state;
    }

    std::string handoff() const override {
        if (!holding_) return {};
        return node_ + " " + std::to_string(czxid_) + " " + std::to_string(version_);
    }

    int wakeFd() const override { return session_ ? session_->fd() : -1; }
    void drainWake() override {
        if (session_ && session_->pump()) watching_ = false;
    }
    int watchFd() const override { return holding_ && session_ ? session_->fd() : -1; }
    Duration retryInterval() const override {
        if (!watching_) return retryInterval_;
        const TimePoint due = session_ ? session_->nextPing() : BootClock::now();
        return std::max<Duration>(std::chrono::ceil<Duration>(due - BootClock::now()),
                                  kMinRetryInterval);
    }

private:
    Result<void> ensureSession(TimePoint deadline, Interrupt& interrupt) {
        if (session_ && !session_->ended()) return {};
        node_.clear();
        created_ = false;
        session_ = std::make_unique<Session>(settings_.url, ttl_, settings_.digest);
        if (auto r = session_->connect(deadline, interrupt); !r) {
            session_.reset();
            return r.error();
        }
        return {};
    }

    // A session to lock with: the timeout the servers granted must keep the deadline rule.
    Result<void> checkTimeout() const {
        const Duration timeout = session_->timeout();
        if (budget_ <= Duration::zero() || timeout > budget_) return {};
        return makeError(Errc::Config,
                         "ZooKeeper negotiated a session timeout of " + formatDuration(timeout) +
                             " for ttl " + formatDuration(ttl_) +
                             " (its minSessionTimeout/maxSessionTimeout bound it), but renew + "
                             "stop_timeout + safety margin = " +
                             formatDuration(budget_) +
                             " must stay under it: lower ttl or raise the servers' "
                             "maxSessionTimeout");
    }

    Result<Lease> attempt(TimePoint start, Interrupt& interrupt) {
        const TimePoint deadline = start + settings_.requestTimeout;
        if (auto s = ensureSession(start + settings_.connectTimeout, interrupt); !s)
            return s.error();
        if (auto t = checkTimeout(); !t) return t.error();
        if (watching_) {
            // Queued and watched: only the client's ping is due now and then. ZooKeeper
            // delivers every watch or reconnects (which counts as a wake), so nothing else.
            session_->keepAlive(deadline, interrupt);
            if (!session_->pump()) return busy();
        }
        for (int round = 0; round < 4; ++round) {
            watching_ = false;
            if (node_.empty())
                if (auto r = enqueue(deadline, interrupt); !r) return r.error();
            auto children = session_->call(holders_ == 1 ? Op::Children : Op::WatchChildren, base_,
                                           deadline, interrupt);
            if (!children) return children.error();
            if (children->rc != ZOK) return replyError(*children, base_);
            auto queue = inQueueOrder(children->children);
            const std::string own = node_.substr(base_.size() + 1);
            auto at = std::find(queue.begin(), queue.end(), own);
            if (at == queue.end()) {
                node_.clear(); // deleted by someone: queue again
                continue;
            }
            const auto index = at - queue.begin();
            if (index < holders_) {
                holding_ = true;
                return Lease{session_->timeout(), std::to_string(czxid_)};
            }
            behind_ = *(at - 1);
            if (holders_ == 1) {
                // The node just before ours: its deletion is our turn (or its holder's end).
                auto watched =
                    session_->call(Op::WatchExists, base_ + "/" + behind_, deadline, interrupt);
                if (!watched) return watched.error();
                if (watched->rc == ZNONODE) continue; // gone meanwhile: look again
                if (watched->rc != ZOK) return replyError(*watched, behind_);
            }
            watching_ = true;
            session_->keepAlive(deadline, interrupt);
            if (!session_->pump()) return busy();
        }
        return busy();
    }

    Error busy() const { return makeError(Errc::Busy, "held; waiting behind '" + behind_ + "'"); }

    // Creates our node (and the lock's parents when missing), or finds the one that an
    // earlier create whose answer was lost made.
    Result<void> enqueue(TimePoint deadline, Interrupt& interrupt) {
        if (created_) {
            auto children = session_->call(Op::Children, base_, deadline, interrupt);
            if (!children) return children.error();
            for (const std::string& name : children->children)
                if (name.rfind(prefix_, 0) == 0)
                    return adoptOwn(base_ + "/" + name, deadline, interrupt);
        }
        HolderRecord record = self_;
        record.since = formatWallTime(std::time(nullptr));
        for (int round = 0; round < 2; ++round) {
            created_ = true;
            auto r = session_->call(Op::CreateSequential, base_ + "/" + prefix_, deadline,
                                    interrupt, record.serialize());
            if (!r) return r.error();
            if (r->rc == ZOK) {
                node_ = r->path;
                czxid_ = r->czxid;
                version_ = r->version;
                return {};
            }
            created_ = false;
            if (r->rc != ZNONODE || round > 0) return replyError(*r, base_);
            if (auto p = createParents(deadline, interrupt); !p) return p;
        }
        return {};
    }

    Result<void> adoptOwn(const std::string& path, TimePoint deadline, Interrupt& interrupt) {
        auto r = session_->call(Op::Exists, path, deadline, interrupt);
        if (!r) return r.error();
        if (r->rc != ZOK) return replyError(*r, path);
        node_ = path;
        czxid_ = r->czxid;
        version_ = r->version;
        return {};
    }

    Result<void> createParents(TimePoint deadline, Interrupt& interrupt) {
        for (size_t slash = base_.find('/', 1);; slash = base_.find('/', slash + 1)) {
            const std::string path = base_.substr(0, slash);
            auto r = session_->call(Op::Create, path, deadline, interrupt);
            if (!r) return r.error();
            if (r->rc != ZOK && r->rc != ZNODEEXISTS) return replyError(*r, path);
            if (slash == std::string::npos) return {};
        }
    }

    // Release mode: delete exactly the node that handoff() named, if it is still that node.
    Result<void> releaseAdopted(TimePoint deadline, Interrupt& interrupt) {
        std::istringstream in(adopt_);
        std::string path;
        long long czxid = 0;
        int version = 0;
        if (!(in >> path >> czxid >> version) || path.rfind(base_ + "/", 0) != 0)
            return makeError(Errc::Usage,
                             "not a ZooKeeper lock node of this lock: '" + adopt_ + "'");
        if (auto s = ensureSession(BootClock::now() + settings_.connectTimeout, interrupt); !s)
            return s;
        auto found = session_->call(Op::Exists, path, deadline, interrupt);
        if (!found) return found.error();
        if (found->rc == ZNONODE || (found->rc == ZOK && found->czxid != czxid)) return {};
        if (found->rc != ZOK) return replyError(*found, path);
        auto r = session_->call(Op::Delete, path, deadline, interrupt, {}, version);
        if (!r) return r.error();
        if (r->rc != ZOK && r->rc != ZNONODE) return replyError(*r, path);
        return {};
    }

    const Settings settings_;
    const std::string base_, prefix_;
    const int holders_;
    const Duration ttl_, budget_;
    const HolderRecord self_;
    const std::string adopt_;
    const Duration retryInterval_;

    std::unique_ptr<Session> session_;
    std::string node_; // our lock node's full path; empty = not queued
    long long czxid_ = 0;
    int version_ = 0;
    bool created_ = false; // a create was sent in this session (its answer may have been lost)
    bool holding_ = false;
    ReachedOnce reachedOnce_;
    // Queued, with a watch on what we wait for, and no event since: an attempt only pings.
    bool watching_ = false;
    std::string behind_;
};

// ---- configuration ----

constexpr KeySpec kKeys[] = {
    {"request_timeout", KeyType::Duration, "2s (at most renew/2)",
     "deadline of every request to ZooKeeper; must be under renew"},
    {"connect_timeout", KeyType::Duration, "2s",
     "deadline of a session's handshake with the ensemble, every host tried included"},
    {"user", KeyType::String, "", "user for ZooKeeper digest authentication"},
    kPasswordFileKey,
    kPasswordCredentialKey,
};

Error settingError(const BackendSettings& s, const std::string& key, const std::string& what) {
    return settingError(s, "zookeeper", key, what);
}

Result<Settings> readSettings(const BackendParams& p) {
    static const BackendSettings empty;
    const BackendSettings& s = p.settings ? *p.settings : empty;
    Settings out;
    auto url = zk::parseUrl(p.rest);
    if (!url) return url.error();
    out.url = *url;
    auto timeout = requestTimeout(
        s, "zookeeper", std::min<Duration>(kDefaultRequestTimeout, p.renew / 2), p.renew);
    if (!timeout) return timeout.error();
    out.requestTimeout = *timeout;
    out.connectTimeout = s.duration("connect_timeout", kDefaultConnectTimeout);
    if (out.connectTimeout <= Duration::zero())
        return settingError(s, "connect_timeout", "must be more than 0");
    auto password = loadPassword(s);
    if (!password) return password.error();
    auto user = s.string("user");
    if (user && (user->empty() || user->find(':') != std::string::npos))
        return settingError(s, "user", "must be a non-empty name without ':'");
    if (user && !*password)
        return settingError(s, "user",
                            "is set but neither password_file nor password_credential is");
    if (!user && *password)
        return settingError(s, s.has("password_file") ? "password_file" : "password_credential",
                            "a password needs [zookeeper] user");
    if (user) out.digest = *user + ":" + **password;
    return out;
}

Result<std::unique_ptr<LockBackend>> createZooKeeper(const BackendParams& p) {
    auto settings = readSettings(p);
    if (!settings) return settings.error();
    return std::unique_ptr<LockBackend>(
        std::make_unique<ZooKeeperBackend>(p, std::move(*settings)));
}

} // namespace

LOCKUNIT_MODULE(zookeeper, BackendModule) {
    static const BackendModule module{{
        BackendInfo{
            {"zookeeper", "zk"},
            "zookeeper",
            "ZooKeeper session + ephemeral sequential nodes, the next in line watching its predecessor",
            {std::begin(kKeys), std::end(kKeys)},
            createZooKeeper,
        },
    }};
    return &module;
}

} // namespace lockunit
