// SPDX-License-Identifier: LGPL-2.1-or-later
//
// postgres://… and postgresql://… (libpq connection URIs) — PostgreSQL session-level advisory
// locks.
//
// Each lockunit keeps one dedicated session. Slot K of lock NAME is the advisory lock whose
// bigint key is advisoryKey(NAME, K) (FNV-1a-64, see pg_protocol.hpp); holders = N means N
// slots, taken with pg_try_advisory_lock in order. The server drops a session's advisory locks
// the moment the session ends, so a holder that dies frees the lock as soon as the server
// sees the connection close; TCP keepalives and tcp_user_timeout (both ends, derived from the
// ttl) bound how long a vanished client's session can linger, and never end it before the
// client's own deadline. A renewal is a probe of pg_locks that our backend still holds the
// key; a lost session or a failed probe is Errc::Lost. Waiters LISTEN on the lock's channel and
// a releasing holder NOTIFYs it in the statement that unlocks, so the next one tries at once;
// they also retry every second. The fencing token is nextval() of SCHEMA.lockunit_fence,
// created when missing (and permitted). The holder record is the session's application_name,
// which inspect() reads from pg_stat_activity joined to pg_locks: it exists exactly as long as
// the lock does and needs no privilege beyond LOGIN.
//
// Every call goes through Connection, which uses libpq's asynchronous API only.

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>

#include "backends/postgres/pg_connection.hpp"
#include "backends/postgres/pg_protocol.hpp"
#include "backends/reached_once.hpp"
#include "backends/registry.hpp"
#include "util/module.hpp"

namespace lockunit {
namespace {

using namespace std::chrono_literals;

constexpr Duration kRetryInterval = 1s;
constexpr Duration kDefaultConnectTimeout = 5s;
constexpr Duration kDefaultQueryTimeout = 2s;

const KeySpec kConnectTimeoutKey{
    "connect_timeout", KeyType::Duration, "5s",
    "how long one connection attempt (TCP, TLS, authentication) may take"};
const KeySpec kQueryTimeoutKey{"query_timeout", KeyType::Duration, "2s",
                               "how long one statement may take; at most renew/2 by default, "
                               "and it must be shorter than renew"};
const KeySpec kSchemaKey{"schema", KeyType::String, "public",
                         "schema of the fencing-token sequence lockunit_fence"};

// Quotes an SQL identifier: "name" with embedded quotes doubled.
std::string quoteIdent(const std::string& s) {
    std::string out = "\"";
    for (char c : s)
        out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

long ceilSeconds(Duration d) {
    return std::max<long>(1, static_cast<long>((d.count() + 999) / 1000));
}

// Replaces the password of a URI ("scheme://user:PASSWORD@host") in a message.
std::string redact(std::string message, const std::string& url) {
    auto start = url.find("://");
    if (start == std::string::npos) return message;
    start += 3;
    auto at = url.find('@', start);
    if (at == std::string::npos) return message;
    auto colon = url.find(':', start);
    if (colon == std::string::npos || colon > at) return message;
    std::string secret = url.substr(colon + 1, at - colon - 1);
    if (secret.empty()) return message;
    for (auto p = message.find(secret); p != std::string::npos; p = message.find(secret, p))
        message.replace(p, secret.size(), "****");
    return message;
}

class PostgresBackend final : public LockBackend {
public:
    PostgresBackend(const BackendParams& p, pg::ConnParams params, std::string schema,
                    Duration connectTimeout, Duration queryTimeout)
        : name_(p.lockName), holders_(std::max(1, p.holders)), ttl_(p.ttl), self_(p.self),
          params_(std::move(params)), schema_(std::move(schema)), connectTimeout_(connectTimeout),
          queryTimeout_(queryTimeout), channel_(pg::channelName(p.lockName)) {
        for (int slot = 0; slot < holders_; ++slot)
            keys_.push_back(pg::advisoryKey(name_, slot));
        if (auto bar = p.adopt.find('|'); bar != std::string::npos) {
            adoptSlot_ = std::atoi(p.adopt.substr(0, bar).c_str());
            adoptId_ = p.adopt.substr(bar + 1);
        }
    }

    Result<Lease> tryAcquire(Interrupt& interrupt) override {
        if (blocking_) return awaitGrant(interrupt);
        if (auto c = ensureConnected(interrupt, true); !c) return waitingError(c.error());
        if (auto n = conn_.consume(); !n) return waitingError(n.error());
        absorbEvents();
        // A release's NOTIFY that arrives while our own query is in flight is read by libpq
        // with the query's answer, so the socket never turns readable for it: if one came in,
        // try again at once instead of sleeping until the next retry.
        for (int round = 0; round < 3; ++round) {
            for (int slot = 0; slot < holders_; ++slot) {
                auto r = conn_.exec("SELECT pg_try_advisory_lock($1::bigint)",
                                    {std::to_string(keys_[slot])}, queryDeadline(), interrupt);
                if (!r) {
                    // We cannot tell whether the lock was taken: end the session, which frees it.
                    conn_.close();
                    return waitingError(r.error());
                }
                if (std::string(PQgetvalue(r->get(), 0, 0)) != "t") continue;
                heldSlot_ = slot;
                return completeAcquire(interrupt);
            }
            // A mutex waits in the server's queue for the lock: see startBlocking().
            if (holders_ == 1) return startBlocking(interrupt);
            if (auto n = conn_.consume(); !n) return waitingError(n.error());
            if (absorbEvents() == 0) break;
        }
        return busy();
    }

    Result<Lease> renew(Interrupt& interrupt) override {
        if (heldSlot_ < 0) return makeError(Errc::Lost, "not held");
        if (!conn_.connected())
            return makeError(Errc::Lost, "the session that held the advisory lock is gone");
        if (auto n = conn_.consume(); !n) return lostSession(n.error());
        absorbEvents(); // a semaphore's other holders come and go meanwhile
        const int64_t key = keys_[heldSlot_];
        auto r =
            conn_.exec("SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' "
                       "AND pid = pg_backend_pid() AND granted AND objsubid = 1 "
                       "AND classid = $1::oid AND objid = $2::oid",
                       {std::to_string(pg::keyClassId(key)), std::to_string(pg::keyObjId(key))},
                       queryDeadline(), interrupt);
        if (!r) {
            if (!conn_.connected()) return lostSession(r.error());
            if (r.error().code == Errc::Interrupted) return r.error();
            return makeError(Errc::Unavailable, "lock probe: " + r.error().message);
        }
        if (std::string(PQgetvalue(r->get(), 0, 0)) != "1")
            return makeError(Errc::Lost,
                             "PostgreSQL at " + conn_.target() + " no longer lists advisory lock " +
                                 std::to_string(key) + " for our session (backend pid " +
                                 std::to_string(conn_.backendPid()) + ")");
        return Lease{ttl_, token_};
    }

    Result<void> release(Interrupt& interrupt) override {
        if (!adoptId_.empty()) {
            // Release mode: the lock guard keeps the old session open until we have said
            // "released" on a session of our own; its closing then frees the lock.
            auto c = ensureConnected(interrupt, false);
            auto r = c ? announce(pg::SlotEvent{adoptSlot_, true, {}, adoptId_}, interrupt)
                       : Result<void>(c.error());
            conn_.close();
            return r;
        }
        if (heldSlot_ >= 0 && conn_.connected()) {
            // "released" first, in a transaction of its own: a waiter that the unlock wakes has
            // that event before its grant (see withLockDelay()). Then unlock, and wake the waiters
            // of a semaphore, which LISTEN instead of queueing. If the event does not get
            // through, closing the session below frees the lock as an unclean end would.
            if (announce(pg::SlotEvent{heldSlot_, true, {}, self_.id}, interrupt)) [[maybe_unused]]
                auto r = conn_.exec("SELECT pg_advisory_unlock($1::bigint), pg_notify($2, '')",
                                    {std::to_string(keys_[heldSlot_]), channel_}, queryDeadline(),
                                    interrupt);
        }
        heldSlot_ = -1;
        conn_.close();
        return {};
    }

    Result<LockState> inspect(Interrupt& interrupt) override {
        if (blocking_) return seen_; // the session waits in the lock's queue
        if (auto c = ensureConnected(interrupt, false); !c) return c.error();
        return lookupHolders(interrupt);
    }

    // The session holds the lock until it closes: the guard keeps it open as long as the
    // payload's tree lives; release mode then only has to say "released" (see release()).
    std::vector<int> heldFds() const override {
        if (heldSlot_ < 0 || !conn_.connected()) return {};
        return {conn_.socket()};
    }
    std::string handoff() const override {
        return heldSlot_ < 0 ? std::string() : std::to_string(heldSlot_) + "|" + self_.id;
    }

    int wakeFd() const override { return heldSlot_ < 0 ? conn_.socket() : -1; }
    void drainWake() override {
        if (conn_.connected()) [[maybe_unused]]
            auto n = conn_.consume(); // closes a dead session
    }
    // While we hold the lock, the session's socket turns readable when the server ends the
    // session (pg_terminate_backend, a restart): the supervisor probes at once.
    int watchFd() const override { return heldSlot_ >= 0 ? conn_.socket() : -1; }
    // A NOTIFY that libpq read together with the answer of another statement (the holder
    // lookup for STATUS, say) never makes the socket readable: then try again at once.
    Duration retryInterval() const override {
        return conn_.notificationPending() ? Duration::zero() : kRetryInterval;
    }

private:
    // Who holds which slot, from pg_locks and pg_stat_activity. What it sees is also the last
    // event of each held slot (see withLockDelay()), until the channel says otherwise.
    Result<LockState> lookupHolders(Interrupt& interrupt) {
        std::string classIds = "{", objIds = "{";
        for (size_t i = 0; i < keys_.size(); ++i) {
            classIds += (i ? "," : "") + std::to_string(pg::keyClassId(keys_[i]));
            objIds += (i ? "," : "") + std::to_string(pg::keyObjId(keys_[i]));
        }
        auto r = conn_.exec("SELECT l.pid, a.application_name, l.classid, l.objid "
                            "FROM pg_catalog.pg_locks l "
                            "LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
                            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                            "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE "
                            "datname = current_database()) "
                            "AND (l.classid, l.objid) IN (SELECT * FROM unnest($1::oid[], "
                            "$2::oid[])) ORDER BY l.pid",
                            {classIds + "}", objIds + "}"}, queryDeadline(), interrupt);
        if (!r)
            return makeError(r.error().code == Errc::Interrupted ? Errc::Interrupted
                                                                 : Errc::Unavailable,
                             "reading pg_locks: " + r.error().message);
        LockState state;
        for (int row = 0; row < PQntuples(r->get()); ++row) {
            HolderRecord h;
            std::string app = PQgetvalue(r->get(), row, 1);
            if (!pg::parseApplicationName(app, h)) {
                // Someone else's session holds our key (or a pooler renamed ours).
                h.host = "PostgreSQL backend pid " + std::string(PQgetvalue(r->get(), row, 0));
                h.id = app;
            }
            const uint32_t classId = std::strtoul(PQgetvalue(r->get(), row, 2), nullptr, 10);
            const uint32_t objId = std::strtoul(PQgetvalue(r->get(), row, 3), nullptr, 10);
            for (int slot = 0; slot < holders_; ++slot)
                if (pg::keyClassId(keys_[slot]) == classId && pg::keyObjId(keys_[slot]) == objId)
                    lastEvent_[slot] = pg::SlotEvent{slot, false, h.stopBudget, h.describe()};
            state.holders.push_back(std::move(h));
        }
        absorbEvents(); // those read with the answer came after it
        return state;
    }

    // A mutex waits in the server's own queue: pg_advisory_lock, sent without waiting for its
    // answer, so the server wakes us the moment the lock is free, also when its holder's
    // session ends without a release (no NOTIFY then). The supervisor polls the socket (the
    // wake fd) and calls tryAcquire() again, which collects the answer in awaitGrant(). The
    // statement may wait for as long as it takes: statement_timeout is off for it and set
    // back by the same statement once the lock is ours (lock_timeout stays 0: the session takes
    // no other lock that could wait). A waiter that gives up exits, and the
    // server ends its session (and its place in the queue) when it next writes to it.
    Result<Lease> startBlocking(Interrupt& interrupt) {
        auto seen = lookupHolders(interrupt);
        if (!seen) return waitingError(seen.error());
        seen_ = std::move(*seen);
        if (!timeoutOff_) {
            // lock_timeout too: a server default would end the wait with an error (55P03).
            auto r = conn_.exec("SELECT set_config('statement_timeout', '0', false), "
                                "set_config('lock_timeout', '0', false)",
                                {}, queryDeadline(), interrupt);
            if (!r) return waitingError(r.error());
            timeoutOff_ = true;
        }
        auto sent = conn_.send(
            "SELECT pg_advisory_lock($1::bigint), set_config('statement_timeout', $2, false)",
            {std::to_string(keys_[0]), std::to_string(queryTimeout_.count())}, queryDeadline(),
            interrupt);
        if (!sent) return waitingError(sent.error());
        blocking_ = true;
        return busy();
    }

    Result<Lease> awaitGrant(Interrupt& interrupt) {
        auto answer = conn_.answer();
        if (!answer) return busy();
        blocking_ = false;
        if (!*answer) return waitingError(answer->error());
        timeoutOff_ = false;
        heldSlot_ = 0;
        return completeAcquire(interrupt);
    }

    Error busy() const {
        return makeError(Errc::Busy, "held (advisory lock " + std::to_string(keys_[0]) +
                                         (holders_ > 1 ? " and its other slots" : "") + ")");
    }

    // Reads the lock's channel into lastEvent_ (ours are left out); returns how many
    // notifications came, ours and empty ones included.
    size_t absorbEvents() {
        auto payloads = conn_.takeNotifications();
        for (const auto& payload : payloads) {
            pg::SlotEvent e;
            if (pg::parseEvent(payload, e) && e.holder != self_.id) lastEvent_[e.slot] = e;
        }
        return payloads.size();
    }

    // The lock-delay (docs/backends/postgres.md, "Lock-delay"). The server grants our slot only
    // once its last holder unlocked it or its session ended. A clean release says "released"
    // before it unlocks, so that event is queued for us before our grant, and the server
    // sends it to us before the answer of our next statement (a session that waits gets its
    // notifications as soon as it is idle again). So when the last event of our slot is still
    // "acquired" (or what lookupHolders() saw), that holder's session ended without a release:
    // its payload may be stopping for up to its stop budget.
    // While the delay lasts, the holder record says when the payload starts, for `lockunit
    // status` (a failure to say so changes nothing else).
    Lease withLockDelay(Lease lease, long since, Interrupt& interrupt) {
        absorbEvents();
        auto it = lastEvent_.find(heldSlot_);
        if (it == lastEvent_.end() || it->second.released || it->second.budget <= Duration::zero())
            return lease;
        addLockDelay(lease, "session", it->second.holder, it->second.budget);
        const long until = static_cast<long>(std::time(nullptr)) +
                           std::chrono::ceil<std::chrono::seconds>(lease.delay).count();
        [[maybe_unused]] auto r = conn_.exec(
            "SELECT set_config('application_name', $1, false)",
            {pg::encodeApplicationName(self_, token_, since, until)}, queryDeadline(), interrupt);
        return lease;
    }

    Result<void> announce(const pg::SlotEvent& e, Interrupt& interrupt) {
        auto r = conn_.exec("SELECT pg_notify($1, $2)", {channel_, pg::encodeEvent(e)},
                            queryDeadline(), interrupt);
        if (!r) return r.error();
        return {};
    }

    std::string sequence() const { return quoteIdent(schema_) + ".lockunit_fence"; }
    TimePoint queryDeadline() const { return BootClock::now() + queryTimeout_; }

    Result<void> ensureConnected(Interrupt& interrupt, bool listen) {
        if (!conn_.connected()) {
            listening_ = blocking_ = timeoutOff_ = false;
            auto c = conn_.connect(params_, BootClock::now() + connectTimeout_, interrupt);
            if (!c) return c.error();
        }
        if (listen && !listening_) {
            auto r = conn_.exec(("LISTEN " + channel_).c_str(), {}, queryDeadline(), interrupt);
            if (!r) {
                conn_.close();
                return makeError(r.error().code, "LISTEN " + channel_ + ": " + r.error().message);
            }
            listening_ = true;
            reachedOnce_.mark();
        }
        return {};
    }

    // While waiting, a session that fails after it once worked (a server restart, a network
    // blip) is not a reason to give up: report Busy and reconnect on the next attempt. The
    // first failure, or an answer that will not change (authentication), ends the wait.
    Error waitingError(const Error& e) {
        if (e.code == Errc::Interrupted || !reachedOnce_) return e;
        // SQL errors end the wait too (permission denied on pg_try_advisory_lock will not go
        // away), except those of a server in trouble: a cancelled statement (57…), a broken
        // connection (08…), resources (53…), a rolled-back transaction (40…).
        if (e.code == Errc::Refused) {
            const std::string cls = conn_.sqlState().substr(0, 2);
            if (cls != "57" && cls != "08" && cls != "53" && cls != "40") return e;
        }
        conn_.close();
        return makeError(Errc::Busy, "not connected (" + e.message + "); retrying");
    }

    Result<Lease> lostSession(const Error& e) {
        conn_.close();
        return makeError(Errc::Lost, e.message + " (the server drops a session's advisory locks "
                                                 "when the session ends)");
    }

    // The lock is ours: take a fencing token and publish the holder record. If any of this
    // fails on the wire, end the session (which frees the lock) and report the failure.
    Result<Lease> completeAcquire(Interrupt& interrupt) {
        const long since = static_cast<long>(std::time(nullptr));
        // The usual case in one round trip (the handover's critical path): token and record.
        // format() puts the token after "lockunit|"; a record made longer than 63 bytes by the
        // token loses the end of its unit name, as the server cuts application_name.
        std::string tmpl;
        for (char c : pg::encodeApplicationName(self_, "", since))
            tmpl += c == '%' ? "%%" : std::string(1, c);
        tmpl.insert(std::string("lockunit|").size(), "%s");
        const std::string acquired =
            pg::encodeEvent(pg::SlotEvent{heldSlot_, false, self_.stopBudget, self_.id});
        auto fast =
            conn_.exec("SELECT v::text, set_config('application_name', format($2, v), false), "
                       "pg_notify($3, $4) FROM nextval($1::regclass) AS v",
                       {sequence(), tmpl, channel_, acquired}, queryDeadline(), interrupt);
        if (fast) {
            token_ = PQgetvalue(fast->get(), 0, 0);
            return withLockDelay(Lease{ttl_, token_}, since, interrupt);
        }
        if (!conn_.connected() || fast.error().code != Errc::Refused) {
            heldSlot_ = -1;
            conn_.close();
            return waitingError(fast.error());
        }
        // An SQL error: the sequence is missing or not ours to use. Try to create it, or take
        // the lock without a token and say why.
        std::string warning;
        auto token = nextToken(interrupt, warning);
        if (!token) {
            heldSlot_ = -1;
            conn_.close();
            return waitingError(token.error());
        }
        token_ = *token;
        auto app = pg::encodeApplicationName(self_, token_, since);
        auto r = conn_.exec("SELECT set_config('application_name', $1, false), pg_notify($2, $3)",
                            {app, channel_, acquired}, queryDeadline(), interrupt);
        if (!r && (!conn_.connected() || r.error().code == Errc::Interrupted ||
                   r.error().code == Errc::Unavailable)) {
            heldSlot_ = -1;
            conn_.close();
            return waitingError(r.error());
        }
        return withLockDelay(Lease{ttl_, token_, warning}, since, interrupt);
    }

    // nextval() of SCHEMA.lockunit_fence. An SQL error (no such sequence and no right to create
    // it, no USAGE on it) gives an empty token and a warning; a lost session is an error.
    Result<std::string> nextToken(Interrupt& interrupt, std::string& warning) {
        const std::string seq = sequence();
        auto next = [&] {
            return conn_.exec("SELECT nextval($1::regclass)::text", {seq}, queryDeadline(),
                              interrupt);
        };
        auto r = next();
        if (!r && r.error().code == Errc::Refused && conn_.sqlState() == "42P01") {
            // Missing: create it (CACHE 1, so that values are handed out in order across sessions).
            auto c = conn_.exec(("CREATE SEQUENCE IF NOT EXISTS " + seq + " CACHE 1").c_str(), {},
                                queryDeadline(), interrupt);
            if (!c && c.error().code != Errc::Refused) return c.error();
            r = next(); // also after a failed CREATE: a concurrent holder may have made it
            if (!r && r.error().code == Errc::Refused && !c)
                r = makeError(Errc::Refused, "cannot create it: " + c.error().message);
        }
        if (r) return std::string(PQgetvalue(r->get(), 0, 0));
        if (r.error().code != Errc::Refused) return r.error();
        warning = "no fencing token: sequence " + seq + ": " + r.error().message +
                  " (create it once as a privileged role: CREATE SEQUENCE " + seq +
                  "; GRANT USAGE ON SEQUENCE " + seq + " TO <role>)";
        return std::string();
    }

    std::string name_;
    int holders_;
    Duration ttl_;
    HolderRecord self_;
    pg::ConnParams params_;
    std::string schema_;
    Duration connectTimeout_, queryTimeout_;
    std::string channel_;
    std::vector<int64_t> keys_;

    pg::Connection conn_;
    bool listening_ = false;
    ReachedOnce reachedOnce_;
    bool blocking_ = false;                  // pg_advisory_lock is in flight (startBlocking())
    bool timeoutOff_ = false;                // statement_timeout is 0 on the session for it
    LockState seen_;                         // the holders seen before it was sent
    std::map<int, pg::SlotEvent> lastEvent_; // per slot, the last one not ours
    int heldSlot_ = -1;
    std::string token_;
    int adoptSlot_ = -1; // release mode: the slot and holder id of handoff()
    std::string adoptId_;
};

Result<std::unique_ptr<LockBackend>> createPostgres(const BackendParams& p) {
    static const BackendSettings kNone;
    const BackendSettings& s = p.settings ? *p.settings : kNone;

    Duration queryTimeout =
        s.duration("query_timeout", std::min<Duration>(kDefaultQueryTimeout, p.renew / 2));
    if (queryTimeout <= Duration::zero() || queryTimeout >= p.renew)
        return makeError(Errc::Config, s.origin("query_timeout") + ": postgres.query_timeout " +
                                           formatDuration(queryTimeout) +
                                           " must be more than 0 and shorter than renew (" +
                                           formatDuration(p.renew) + ")");
    Duration connectTimeout = s.duration("connect_timeout", kDefaultConnectTimeout);
    if (connectTimeout <= Duration::zero())
        return makeError(Errc::Config, s.origin("connect_timeout") +
                                           ": postgres.connect_timeout must be more than 0");
    std::string schema = s.string("schema").value_or("public");
    if (schema.empty())
        return makeError(Errc::Config, s.origin("schema") + ": postgres.schema must not be empty");
    auto password = loadPassword(s);
    if (!password) return password.error();

    char* err = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(p.url.c_str(), &err);
    if (!parsed) {
        std::string msg = err ? pg::oneLine(err) : std::string("out of memory");
        if (err) PQfreemem(err);
        return makeError(Errc::Config, "invalid PostgreSQL connection URI: " + redact(msg, p.url));
    }

    // From the ttl: the client notices a dead server, and the server a vanished client, about
    // one ttl after the last sign of life, never sooner (the lease deadline passes first).
    const long idle = ceilSeconds(p.ttl / 2), interval = ceilSeconds(p.ttl / 6);
    const std::string userTimeoutMs = std::to_string(p.ttl.count());
    const std::string serverOptions =
        "-c tcp_keepalives_idle=" + std::to_string(idle) +
        " -c tcp_keepalives_interval=" + std::to_string(interval) +
        " -c tcp_keepalives_count=3 -c tcp_user_timeout=" + userTimeoutMs +
        " -c statement_timeout=" + std::to_string(queryTimeout.count()) +
        " -c idle_session_timeout=0 -c idle_in_transaction_session_timeout=0";

    pg::ConnParams params;
    std::string userOptions;
    for (PQconninfoOption* o = parsed; o->keyword; ++o) {
        if (!o->val) continue;
        std::string k = o->keyword;
        if (k == "options")
            userOptions = o->val;
        else if (k == "application_name" || k == "fallback_application_name" || k == "keepalives" ||
                 k == "keepalives_idle" || k == "keepalives_interval" || k == "keepalives_count" ||
                 k == "tcp_user_timeout" || (k == "password" && *password))
            continue; // ours win
        else
            params.emplace_back(k, o->val);
    }
    PQconninfoFree(parsed);
    params.emplace_back("options",
                        userOptions.empty() ? serverOptions : userOptions + " " + serverOptions);
    params.emplace_back("application_name", pg::encodeApplicationName(p.self, "", 0));
    params.emplace_back("keepalives", "1");
    params.emplace_back("keepalives_idle", std::to_string(idle));
    params.emplace_back("keepalives_interval", std::to_string(interval));
    params.emplace_back("keepalives_count", "3");
    params.emplace_back("tcp_user_timeout", userTimeoutMs);
    params.emplace_back("connect_timeout", std::to_string(ceilSeconds(connectTimeout)));
    if (*password) params.emplace_back("password", **password);

    return std::unique_ptr<LockBackend>(std::make_unique<PostgresBackend>(
        p, std::move(params), schema, connectTimeout, queryTimeout));
}

} // namespace

LOCKUNIT_MODULE(postgres, BackendModule) {
    static const BackendModule module{{
        BackendInfo{
            {"postgres", "postgresql"},
            "postgres",
            "PostgreSQL session advisory locks (pg_try_advisory_lock) on a dedicated session",
            {kConnectTimeoutKey, kQueryTimeoutKey, kSchemaKey, kPasswordFileKey, kPasswordCredentialKey},
            createPostgres,
        },
    }};
    return &module;
}

} // namespace lockunit
