// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/zookeeper/zk_session.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <memory>
#include <poll.h>
#include <sys/socket.h>
#include <zookeeper/zookeeper.h>

#include "util/log.hpp"
#include "util/text.hpp"

namespace lockunit::zk {

// One request in flight. Owned by the session until its completion ran: a call abandoned by
// its deadline leaves it behind for the client to complete (or to fail with ZCLOSING).
struct Pending {
    Reply reply;
    bool done = false;
};

namespace {

// The client's last error line: its log callback has no context argument, and the line that
// explains why a session never connected (a refused connection) is logged by the client only.
std::string g_lastClientError;

Pending* pendingOf(const void* data) {
    return static_cast<Pending*>(const_cast<void*>(data));
}

void takeStat(Reply& r, const Stat* stat) {
    if (!stat) return;
    r.czxid = stat->czxid;
    r.version = stat->version;
}

void onVoid(int rc, const void* data) {
    pendingOf(data)->reply.rc = rc;
    pendingOf(data)->done = true;
}

void onStat(int rc, const Stat* stat, const void* data) {
    Pending* p = pendingOf(data);
    p->reply.rc = rc;
    takeStat(p->reply, stat);
    p->done = true;
}

void onCreate(int rc, const char* path, const Stat* stat, const void* data) {
    Pending* p = pendingOf(data);
    p->reply.rc = rc;
    if (path) p->reply.path = path;
    takeStat(p->reply, stat);
    p->done = true;
}

void onData(int rc, const char* value, int length, const Stat* stat, const void* data) {
    Pending* p = pendingOf(data);
    p->reply.rc = rc;
    if (value && length > 0) p->reply.data.assign(value, static_cast<size_t>(length));
    takeStat(p->reply, stat);
    p->done = true;
}

void onChildren(int rc, const String_vector* strings, const Stat* stat, const void* data) {
    Pending* p = pendingOf(data);
    p->reply.rc = rc;
    if (strings)
        for (int i = 0; i < strings->count; ++i)
            p->reply.children.emplace_back(strings->data[i]);
    takeStat(p->reply, stat);
    p->done = true;
}

// The reason in the client's last error line ("...: server refused to accept the client"),
// as " (REASON)"; empty if there is none.
std::string clientReason() {
    auto errno_at = g_lastClientError.find("errno=");
    if (errno_at == std::string::npos) return {};
    std::string reason = g_lastClientError.substr(errno_at);
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' '))
        reason.pop_back();
    return " (" + reason + ")";
}

constexpr Duration kPingSlack = std::chrono::milliseconds(5);

Duration millis(long long ms) {
    return std::chrono::milliseconds(std::max(0LL, ms));
}

} // namespace

Result<ZkUrl> parseUrl(const std::string& rest) {
    ZkUrl url;
    auto slash = rest.find('/');
    std::string hosts = rest.substr(0, slash);
    if (slash != std::string::npos) {
        url.chroot = rest.substr(slash);
        while (url.chroot.size() > 1 && url.chroot.back() == '/')
            url.chroot.pop_back();
        if (url.chroot == "/") url.chroot.clear();
        if (url.chroot.find("//") != std::string::npos)
            return makeError(Errc::Config,
                             "zookeeper: empty path component in chroot '" + url.chroot + "'");
    }
    if (hosts.find('@') != std::string::npos)
        return makeError(Errc::Config, "zookeeper: credentials do not go in the URL; use "
                                       "[zookeeper] user with password_file or "
                                       "password_credential");
    for (std::string_view piece : split(hosts, ',')) {
        std::string host(piece);
        if (host.empty())
            return makeError(Errc::Config, "zookeeper: expected host[:port][,host[:port]…]"
                                           "[/chroot], found an empty host in '" +
                                               rest + "'");
        const bool bracketed = host.front() == '[';
        auto close = bracketed ? host.find(']') : std::string::npos;
        if (bracketed && close == std::string::npos)
            return makeError(Errc::Config, "zookeeper: unclosed '[' in '" + rest + "'");
        auto colon = host.rfind(':');
        const bool hasPort =
            bracketed ? colon != std::string::npos && colon > close : colon != std::string::npos;
        if (hasPort) {
            std::string port = host.substr(colon + 1);
            if (port.empty() || port.size() > 5 ||
                !std::all_of(port.begin(), port.end(), ::isdigit) || std::stoi(port) == 0 ||
                std::stoi(port) > 65535)
                return makeError(Errc::Config,
                                 "zookeeper: bad port '" + port + "' in '" + rest + "'");
        }
        if (!url.hosts.empty()) url.hosts += ",";
        url.hosts += hasPort ? host : host + ":" + std::to_string(kDefaultPort);
    }
    return url;
}

Session::Session(ZkUrl url, Duration timeout, std::optional<std::string> digest)
    : url_(std::move(url)), requested_(timeout), digest_(std::move(digest)) {}

Session::~Session() {
    if (!zh_) return;
    // zookeeper_close() sends the close request and then waits up to 1.5 s for its answer,
    // which a server that does not answer would make hold up a stop. The answer is not needed
    // (the server ends the session, and deletes its ephemeral nodes, when it reads the
    // request): with its read side shut, the socket reads end-of-file and the client stops
    // waiting at once. It runs what is still pending with ZCLOSING; pending_ goes after.
    if (fd_ >= 0 && state_ == ZOO_CONNECTED_STATE) ::shutdown(fd_, SHUT_RD);
    zookeeper_close(zh_);
}

void Session::onLog(const char* message) {
    std::string line = message ? message : "";
    if (line.find("ERROR") != std::string::npos) g_lastClientError = line;
    if (log::verbose()) log::debug("zookeeper client: " + line);
}

void Session::onEvent(zhandle_t* zh, int type, int state, const char*, void*) {
    auto* self = static_cast<Session*>(const_cast<void*>(zoo_get_context(zh)));
    if (!self) return;
    if (type != ZOO_SESSION_EVENT) {
        self->watchFired_ = true;
        return;
    }
    self->state_ = state;
    if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) self->ended_ = true;
    // A reconnect re-registers the client's watches, but what happened while it was away is
    // only known by looking again; a session that ended needs a new one: both are a wake.
    if (state == ZOO_CONNECTED_STATE || self->ended_) self->watchFired_ = true;
}

Duration Session::timeout() const {
    return millis(zh_ ? zoo_recv_timeout(zh_) : 0);
}

Error Session::endedError() const {
    if (state_ == ZOO_AUTH_FAILED_STATE)
        return makeError(Errc::Refused, "ZooKeeper refused the authentication");
    return makeError(Errc::Lost, "ZooKeeper session expired");
}

Result<void> Session::connect(TimePoint deadline, Interrupt& interrupt) {
    static const bool quiet = [] {
        zoo_set_debug_level(log::verbose() ? ZOO_LOG_LEVEL_DEBUG : ZOO_LOG_LEVEL_ERROR);
        return true;
    }();
    (void)quiet;
    g_lastClientError.clear();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(requested_).count();
    zh_ = zookeeper_init2(url_.hosts.c_str(), &Session::onEvent, static_cast<int>(ms), nullptr,
                          this, 0, &Session::onLog);
    if (!zh_)
        return makeError(Errc::Unavailable,
                         errnoMessage("cannot start a ZooKeeper client for '" + url_.hosts + "'"));
    bool connected = false;
    for (;;) {
        connected = state_ == ZOO_CONNECTED_STATE;
        if (connected || ended_) break;
        auto r = step(deadline, interrupt, "ZooKeeper handshake");
        if (!r) {
            if (r.error().code != Errc::Unavailable || ended_) return r.error();
            if (handshakeSent_)
                return makeError(Errc::Unavailable,
                                 "no ZooKeeper session handshake completed with " + url_.hosts +
                                     " in time: a server accepted the connection but did not "
                                     "answer as ZooKeeper does (is it a ZooKeeper client "
                                     "port?)");
            return makeError(Errc::Unavailable,
                             "cannot reach ZooKeeper at " + url_.hosts + clientReason());
        }
    }
    if (ended_) return endedError();
    watchFired_ = false; // the handshake's own CONNECTED event is no wake
    if (!digest_) return {};
    auto auth = std::make_unique<Pending>();
    Pending* p = auth.get();
    pending_.push_back(std::move(auth));
    int rc =
        zoo_add_auth(zh_, "digest", digest_->data(), static_cast<int>(digest_->size()), onVoid, p);
    if (rc != ZOK)
        return makeError(Errc::Unavailable, std::string("ZooKeeper auth: ") + zerror(rc));
    if (auto r = driveUntil(p->done, deadline, interrupt, "ZooKeeper auth"); !r) return r;
    if (p->reply.rc != ZOK)
        return makeError(Errc::Refused,
                         std::string("ZooKeeper refused the digest auth: ") + zerror(p->reply.rc));
    return {};
}

Result<Reply> Session::call(Op op, const std::string& path, TimePoint deadline,
                            Interrupt& interrupt, const std::string& data, int version) {
    if (ended_) return endedError();
    pending_.remove_if([](const std::unique_ptr<Pending>& p) { return p->done; });
    pending_.push_back(std::make_unique<Pending>());
    Pending* p = pending_.back().get();
    const char* where = path.c_str();
    ACL_vector* acl = digest_ ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE;
    const int length = static_cast<int>(data.size());
    int rc = ZOK;
    switch (op) {
    case Op::Create:
    case Op::CreateSequential:
        rc = zoo_acreate2(zh_, where, data.data(), length, acl,
                          op == Op::Create ? 0 : ZOO_EPHEMERAL_SEQUENTIAL, onCreate, p);
        break;
    case Op::Delete:
        rc = zoo_adelete(zh_, where, version, onVoid, p);
        break;
    case Op::Exists:
    case Op::WatchExists:
        rc = zoo_aexists(zh_, where, op == Op::WatchExists, onStat, p);
        break;
    case Op::Get:
        rc = zoo_aget(zh_, where, 0, onData, p);
        break;
    case Op::Children:
    case Op::WatchChildren:
        rc = zoo_aget_children2(zh_, where, op == Op::WatchChildren, onChildren, p);
        break;
    }
    if (rc != ZOK) {
        p->done = true;
        if (rc == ZINVALIDSTATE) {
            ended_ = true;
            return endedError();
        }
        return makeError(Errc::Unavailable, "ZooKeeper request on '" + path + "': " + zerror(rc));
    }
    if (auto r = driveUntil(p->done, deadline, interrupt, "ZooKeeper request on '" + path + "'");
        !r)
        return r.error();
    if (p->reply.rc == ZSESSIONEXPIRED) {
        ended_ = true;
        return endedError();
    }
    if (p->reply.rc == ZCONNECTIONLOSS || p->reply.rc == ZOPERATIONTIMEOUT)
        return makeError(Errc::Unavailable,
                         "ZooKeeper request on '" + path + "': " + zerror(p->reply.rc));
    return p->reply;
}

bool Session::pump() {
    if (zh_ && !ended_) {
        NoInterrupt none;
        (void)step(BootClock::now(), none, "ZooKeeper");
    }
    bool fired = watchFired_;
    watchFired_ = false;
    return fired;
}

void Session::keepAlive(TimePoint deadline, Interrupt& interrupt) {
    if (!zh_ || ended_ || state_ != ZOO_CONNECTED_STATE) return;
    // A few milliseconds early is due: the client's own clock is in milliseconds, and a ping
    // that it sent later, from pump(), would have its answer wake the caller.
    if (BootClock::now() + kPingSlack < nextPing_) return;
    // The client sends its ping in the first step (a write it could not finish in one go
    // takes another); the first step that reads has its answer.
    for (int round = 0; round < 4; ++round) {
        auto read = step(deadline, interrupt, "ZooKeeper ping");
        if (!read || *read) break;
    }
}

Result<void> Session::driveUntil(const bool& done, TimePoint deadline, Interrupt& interrupt,
                                 const std::string& what) {
    while (!done) {
        if (ended_) return endedError();
        if (auto r = step(deadline, interrupt, what); !r) return r.error();
    }
    return {};
}

Result<bool> Session::step(TimePoint until, Interrupt& interrupt, const std::string& what) {
    int fd = -1, interest = 0;
    timeval tv{};
    int rc = zookeeper_interest(zh_, &fd, &interest, &tv);
    if (rc == ZINVALIDSTATE) {
        ended_ = true;
        return endedError();
    }
    if (rc != ZOK && log::verbose())
        log::debug(std::string("zookeeper client: ") + zerror(rc) + ", reconnecting");
    fd_ = fd;
    TimePoint now = BootClock::now();
    const TimePoint deadline = until;
    const Duration next = millis(tv.tv_sec * 1000LL + tv.tv_usec / 1000);
    // When the client's next ping is due (a little after, so that it is due by then).
    if (state_ == ZOO_CONNECTED_STATE) nextPing_ = now + next;
    until = std::min(until, now + next);
    short events = static_cast<short>(((interest & ZOOKEEPER_READ) ? POLLIN : 0) |
                                      ((interest & ZOOKEEPER_WRITE) ? POLLOUT : 0));
    pollfd p{events ? fd : -1, events, 0};
    if (auto r = interrupt.wait({&p, 1}, until, what.c_str()); !r) return r.error();
    int ready = 0;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) ready |= ZOOKEEPER_READ;
    if (p.revents & POLLOUT) ready |= ZOOKEEPER_WRITE;
    rc = zookeeper_process(zh_, ready);
    // The client's own codes say what happened to one connection; only its state says
    // whether the session ended.
    const int state = zoo_state(zh_);
    if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
        state_ = state;
        ended_ = true;
    }
    if (state == ZOO_ASSOCIATING_STATE) handshakeSent_ = true;
    if (!ready && BootClock::now() >= deadline)
        return makeError(Errc::Unavailable, what + ": timed out");
    return (ready & ZOOKEEPER_READ) != 0;
}

} // namespace lockunit::zk
