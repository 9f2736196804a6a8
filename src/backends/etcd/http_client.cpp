// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/etcd/http_client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <utility>

#include "backends/etcd/http_response.hpp"
#include "backends/io.hpp"
#include "util/module.hpp"

namespace lockunit::etcd {

namespace {

constexpr size_t kMaxResponse = 16 * 1024 * 1024;
// Idle connections kept per endpoint: enough for the next batch of concurrent calls.
constexpr size_t kIdlePerEndpoint = 4;
// How long the unanswered rest of a request that nobody waits for may take: generous, so
// that a keepalive's tail read at the next renewal does not cost its connection.
constexpr auto kBackgroundLimit = std::chrono::seconds(60);

int msUntil(TimePoint t, int cap) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(t - BootClock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, cap));
}

std::string errnoText(const char* what, int err) {
    return std::string(what) + ": " + std::strerror(err);
}

} // namespace

struct HttpClient::Transfer {
    Kind kind = Kind::Call;
    HttpCall* call = nullptr; // Kind::Call only
    std::string path, body;
    size_t endpoint = 0;
    size_t attempts = 0;         // endpoints this call tried before this one
    TimePoint deadline{};        // the call's (a background request's: when to give up)
    TimePoint attemptDeadline{}; // when to give up on this endpoint and try the next
    bool freshRetry = false;     // already retried once on a fresh connection
    Connection* connection = nullptr;
    std::string lineBuffer; // the stream's unfinished line
};

struct HttpClient::Connection {
    enum class State { Resolving, Connecting, Handshaking, Open, Dead };
    State state = State::Resolving;
    size_t endpoint = 0;
    bool stream = false;
    std::unique_ptr<io::HostLookup> lookup;
    UniqueFd fd;
    std::unique_ptr<TlsSession> tls;
    bool tlsWantsWrite = false; // the last TLS step waits for the socket to take data
    TimePoint connectBy{};      // connect (and TLS handshake) deadline
    std::string out;            // the request, and how much of it went out
    size_t outDone = 0;
    ResponseParser parser;
    std::string bodyError; // set from inside the parser: the body cannot be taken
    Transfer* transfer = nullptr;
    bool reused = false; // carried a response before this request

    bool connecting() const { return state < State::Open; }
    bool idle() const { return state == State::Open && !transfer && !stream; }
};

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<HttpClient>> HttpClient::create(HttpOptions options) {
    std::unique_ptr<HttpClient> client(new HttpClient(std::move(options)));
    if (auto r = client->init(); !r) return r.error();
    return client;
}

Result<void> HttpClient::init() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!epoll_.valid() || !event_.valid())
        return makeError(Errc::System, std::string("epoll/eventfd: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = event_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, event_.get(), &ev) < 0)
        return makeError(Errc::System, std::string("epoll_ctl: ") + std::strerror(errno));
    if (options_.url.tls) {
        auto factory = modules::symbol(kTlsModule, kTlsFactorySymbol);
        if (!factory) return makeError(factory.error().code, "etcds:// " + factory.error().message);
        TlsFiles files{options_.caFile, options_.certFile, options_.keyFile};
        std::string error;
        tls_.reset(reinterpret_cast<TlsContextFactory>(*factory)(files, &error));
        if (!tls_) return makeError(Errc::Config, "etcds:// " + error);
    }
    return {};
}

HttpClient::~HttpClient() = default;

std::string HttpClient::currentEndpoint() const {
    return options_.url.endpoints[current_].display();
}

void HttpClient::wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(event_.get(), &one, sizeof one);
}

// ---- transfers ----

Result<HttpClient::Transfer*> HttpClient::startTransfer(Kind kind, HttpCall* call,
                                                        const std::string& path,
                                                        const std::string& body, size_t endpoint,
                                                        TimePoint deadline, size_t attempts) {
    auto t = std::make_unique<Transfer>();
    t->kind = kind;
    t->call = call;
    t->attempts = attempts;
    t->path = path;
    t->body = body;
    t->endpoint = endpoint;
    const auto now = BootClock::now();
    t->deadline = kind == Kind::Background ? std::max(deadline, now + kBackgroundLimit) : deadline;
    // Each endpoint still untried gets an equal share of the time left: a member that
    // accepts the connection but does not answer (stopped, partitioned) costs only its share.
    const size_t untried =
        options_.url.endpoints.size() - std::min(attempts, options_.url.endpoints.size() - 1);
    t->attemptDeadline = deadline == TimePoint::max() || deadline <= now
                             ? deadline
                             : now + (deadline - now) / static_cast<long>(untried);
    if (call) call->endpoint = options_.url.endpoints[endpoint].display();

    Connection* c = nullptr;
    if (kind != Kind::Stream) {
        for (auto& candidate : connections_)
            if (candidate->idle() && candidate->endpoint == endpoint) {
                c = candidate.get();
                break;
            }
    }
    if (!c) {
        TimePoint connectBy = now + options_.connectTimeout;
        if (kind != Kind::Stream) connectBy = std::min(connectBy, deadline);
        c = openConnection(endpoint, kind == Kind::Stream, connectBy);
    }
    Transfer* raw = t.get();
    transfers_.push_back(std::move(t));
    assign(raw, c);
    return raw;
}

HttpClient::Connection* HttpClient::openConnection(size_t endpoint, bool stream,
                                                   TimePoint connectBy) {
    auto c = std::make_unique<Connection>();
    c->endpoint = endpoint;
    c->stream = stream;
    c->connectBy = connectBy;
    c->lookup = std::make_unique<io::HostLookup>(options_.url.endpoints[endpoint].host);
    c->parser.onBody = [this, conn = c.get()](std::string_view data) { onBody(*conn, data); };
    Connection* raw = c.get();
    connections_.push_back(std::move(c));
    return raw;
}

void HttpClient::assign(Transfer* t, Connection* c) {
    t->connection = c;
    c->transfer = t;
    c->parser.reset();
    c->bodyError.clear();
    c->outDone = 0;
    c->out =
        "POST " + t->path + " HTTP/1.1\r\nHost: " + options_.url.endpoints[t->endpoint].display() +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(t->body.size()) +
        "\r\n";
    if (!authorization_.empty()) c->out += "Authorization: " + authorization_ + "\r\n";
    c->out += "\r\n";
    c->out += t->body;
}

void HttpClient::removeTransfer(Transfer* t) {
    if (t == stream_) stream_ = nullptr;
    if (t->connection) t->connection->transfer = nullptr;
    auto it = std::find_if(transfers_.begin(), transfers_.end(),
                           [&](const auto& p) { return p.get() == t; });
    if (it != transfers_.end()) transfers_.erase(it);
}

void HttpClient::endTransfer(Transfer* t) {
    const bool stream = t->kind == Kind::Stream;
    removeTransfer(t);
    if (stream) streamEnded();
}

void HttpClient::failAttempt(Transfer* t, const std::string& why) {
    HttpCall* call = t->call;
    const size_t n = options_.url.endpoints.size();
    // The next endpoint for this call and, unless another call moved on already, for every
    // later call.
    if (current_ == t->endpoint) current_ = (current_ + 1) % n;
    call->failures += options_.url.endpoints[t->endpoint].display() + ": " + why;
    const size_t attempts = t->attempts + 1, next = (t->endpoint + 1) % n;
    const std::string path = t->path, body = t->body;
    const TimePoint deadline = t->deadline;
    if (t->connection) close(*t->connection); // a late answer must not be taken for another's
    removeTransfer(t);
    call->response.clear();
    if (attempts < n && BootClock::now() < deadline) {
        call->failures += "; ";
        auto again = startTransfer(Kind::Call, call, path, body, next, deadline, attempts);
        if (again) return;
        call->failures += again.error().message;
    }
    call->transportError = makeError(Errc::Unavailable, call->failures);
}

// ---- connections ----

void HttpClient::close(Connection& c) {
    if (c.stream) unpollStream();
    c.state = Connection::State::Dead;
    c.lookup.reset();
    c.tls.reset();
    c.fd.reset();
    if (c.transfer) c.transfer->connection = nullptr;
    c.transfer = nullptr;
}

void HttpClient::connectionFailed(Connection& c, const std::string& why) {
    Transfer* t = c.transfer;
    // A kept connection that the server closed while it was idle fails before any answer:
    // that says nothing about the server. The request goes again on a fresh connection, once.
    const bool stale = c.reused && !c.parser.started();
    close(c);
    if (!t) return;
    switch (t->kind) {
    case Kind::Call:
        if (stale && !t->freshRetry) {
            t->freshRetry = true;
            TimePoint connectBy = std::min(BootClock::now() + options_.connectTimeout, t->deadline);
            assign(t, openConnection(t->endpoint, false, connectBy));
            return;
        }
        failAttempt(t, why);
        return;
    case Kind::Background:
    case Kind::Stream:
        endTransfer(t);
        return;
    }
}

void HttpClient::advanceConnect(Connection& c, short revents) {
    const Endpoint& endpoint = options_.url.endpoints[c.endpoint];
    if (c.state == Connection::State::Resolving) {
        auto resolved = c.lookup->result();
        if (!resolved) return;
        if (!*resolved) return connectionFailed(c, resolved->error().message);
        if (c.stream) unpollStream(); // its fd closes now
        c.lookup.reset();
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
        addrinfo* address = nullptr;
        if (int r = ::getaddrinfo((*resolved)->c_str(), std::to_string(endpoint.port).c_str(),
                                  &hints, &address);
            r != 0)
            return connectionFailed(c, std::string("address: ") + ::gai_strerror(r));
        c.fd.reset(::socket(address->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!c.fd.valid()) {
            ::freeaddrinfo(address);
            return connectionFailed(c, errnoText("socket", errno));
        }
        int one = 1; // each request is one write; nothing gains from waiting for more
        ::setsockopt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int r = ::connect(c.fd.get(), address->ai_addr, address->ai_addrlen);
        int err = errno;
        ::freeaddrinfo(address);
        if (r < 0 && err != EINPROGRESS) return connectionFailed(c, errnoText("connect", err));
        c.state = Connection::State::Connecting;
        if (r < 0) return; // wait for POLLOUT
        revents = POLLOUT;
    }
    if (c.state == Connection::State::Connecting) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return;
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err != 0) return connectionFailed(c, errnoText("connect", err));
        if (!tls_) {
            c.state = Connection::State::Open;
            return;
        }
        std::string error;
        c.tls = tls_->session(c.fd.get(), endpoint.host, &error);
        if (!c.tls) return connectionFailed(c, "TLS: " + error);
        c.state = Connection::State::Handshaking;
    }
    if (c.state == Connection::State::Handshaking) {
        TlsIo io = c.tls->handshake();
        c.tlsWantsWrite = io.status == TlsIo::WantWrite;
        if (io.status == TlsIo::Done)
            c.state = Connection::State::Open;
        else if (io.status == TlsIo::Failed)
            connectionFailed(c, io.error);
        else if (io.status == TlsIo::Closed)
            connectionFailed(c, "TLS handshake: connection closed by the server");
    }
}

void HttpClient::flush(Connection& c) {
    while (c.state == Connection::State::Open && c.outDone < c.out.size()) {
        const char* data = c.out.data() + c.outDone;
        const size_t size = c.out.size() - c.outDone;
        if (c.tls) {
            TlsIo io = c.tls->write(data, size);
            c.tlsWantsWrite = io.status == TlsIo::WantWrite;
            if (io.status == TlsIo::Done) {
                c.outDone += io.bytes;
                continue;
            }
            if (io.status == TlsIo::Failed) return connectionFailed(c, io.error);
            if (io.status == TlsIo::Closed)
                return connectionFailed(c, "connection closed by the server");
            return;
        }
        ssize_t n = ::send(c.fd.get(), data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            c.outDone += static_cast<size_t>(n);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        return connectionFailed(c, errnoText("send", errno));
    }
}

void HttpClient::onBody(Connection& c, std::string_view data) {
    Transfer* t = c.transfer;
    if (!t || !c.bodyError.empty()) return;
    switch (t->kind) {
    case Kind::Background:
        return; // nobody waits for it
    case Kind::Call: {
        HttpCall* call = t->call;
        if (call->response.size() + data.size() > kMaxResponse) {
            c.bodyError = "answer larger than 16 MiB";
            return;
        }
        call->response.append(data);
        if (call->firstLine && call->response.find('\n') != std::string::npos) {
            // The answer is complete; the stream's end (which etcd's gateway sends a few ms
            // later) is read in the background, so that the connection stays reusable.
            call->status = c.parser.status();
            t->kind = Kind::Background;
            t->call = nullptr;
            t->deadline = BootClock::now() + kBackgroundLimit;
        }
        return;
    }
    case Kind::Stream: {
        t->lineBuffer.append(data);
        size_t start = 0;
        for (;;) {
            size_t nl = t->lineBuffer.find('\n', start);
            if (nl == std::string::npos) break;
            std::string_view line(t->lineBuffer.data() + start, nl - start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (!line.empty() && onLine_) onLine_(line);
            start = nl + 1;
        }
        t->lineBuffer.erase(0, start);
        if (t->lineBuffer.size() > kMaxResponse) c.bodyError = "stream line larger than 16 MiB";
        return;
    }
    }
}

void HttpClient::readAvailable(Connection& c) {
    char buffer[16 * 1024];
    while (c.state == Connection::State::Open) {
        size_t got = 0;
        bool eof = false;
        if (c.tls) {
            TlsIo io = c.tls->read(buffer, sizeof buffer);
            if (io.status == TlsIo::WantRead) return;
            if (io.status == TlsIo::WantWrite) {
                c.tlsWantsWrite = true;
                return;
            }
            if (io.status == TlsIo::Failed) return connectionFailed(c, io.error);
            eof = io.status == TlsIo::Closed;
            got = io.bytes;
        } else {
            ssize_t n = ::recv(c.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
                return connectionFailed(c, errnoText("recv", errno));
            }
            eof = n == 0;
            got = static_cast<size_t>(n);
        }
        if (!c.transfer) {
            // An idle connection that the server closed, or that says something unasked.
            close(c);
            return;
        }
        auto fed = eof ? c.parser.feedEof() : c.parser.feed(std::string_view(buffer, got));
        if (!c.bodyError.empty()) return connectionFailed(c, c.bodyError);
        if (!fed) return connectionFailed(c, fed.error().message);
        if (c.parser.complete()) return completed(c);
        if (eof) return connectionFailed(c, "connection closed");
    }
}

void HttpClient::completed(Connection& c) {
    Transfer* t = c.transfer;
    const long status = c.parser.status();
    const bool keep = c.parser.keepAlive() && !c.stream;
    c.transfer = nullptr;
    t->connection = nullptr;
    c.reused = true;
    c.out.clear();
    c.outDone = 0;
    size_t idle = 0;
    for (const auto& other : connections_)
        idle += other->idle() && other->endpoint == c.endpoint ? 1 : 0;
    if (!keep || idle > kIdlePerEndpoint) close(c);
    switch (t->kind) {
    case Kind::Background:
    case Kind::Stream:
        endTransfer(t);
        return;
    case Kind::Call:
        // 503 is etcd's gRPC Unavailable ("no leader", "leader changed"): another member may
        // do better. On the last endpoint, its answer is the outcome.
        if (status == 503 && t->attempts + 1 < options_.url.endpoints.size() &&
            BootClock::now() < t->deadline)
            return failAttempt(t, "HTTP 503");
        t->call->status = status;
        removeTransfer(t);
        return;
    }
}

void HttpClient::step(Connection& c, short revents) {
    if (c.connecting()) {
        advanceConnect(c, revents);
        if (c.state != Connection::State::Open) return;
        revents = POLLOUT; // just connected: the request can go
    }
    if (c.state != Connection::State::Open) return;
    c.tlsWantsWrite = false; // until a TLS step below says otherwise
    flush(c);
    // A TLS session may hold decrypted data that poll() cannot see: read until it wants more.
    if (c.state == Connection::State::Open && (revents & (POLLIN | POLLHUP | POLLERR) || c.tls))
        readAvailable(c);
}

void HttpClient::sweep(TimePoint now) {
    for (size_t i = 0; i < connections_.size(); ++i) {
        Connection& c = *connections_[i];
        if (c.connecting() && now >= c.connectBy) {
            auto ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(options_.connectTimeout);
            connectionFailed(c, "connect timed out (connect_timeout " + std::to_string(ms.count()) +
                                    " ms)");
        } else if (c.transfer && c.transfer->kind == Kind::Background &&
                   now >= c.transfer->deadline) {
            removeTransfer(c.transfer);
            close(c);
        }
    }
}

void HttpClient::purge() {
    std::erase_if(connections_, [](const auto& c) { return c->state == Connection::State::Dead; });
}

Result<void> HttpClient::driveAll(int timeoutMs, Interrupt* interrupt) {
    std::vector<pollfd> fds;
    std::vector<Connection*> which;
    for (auto& c : connections_) {
        short events = 0;
        int fd = c->fd.get();
        switch (c->state) {
        case Connection::State::Resolving:
            fd = c->lookup->fd();
            events = POLLIN;
            if (fd < 0) timeoutMs = 0; // answered at once: go on
            break;
        case Connection::State::Connecting:
            events = POLLOUT;
            break;
        case Connection::State::Handshaking:
            events = c->tlsWantsWrite ? POLLOUT : POLLIN;
            break;
        case Connection::State::Open:
            events = static_cast<short>(
                POLLIN | (c->outDone < c->out.size() || c->tlsWantsWrite ? POLLOUT : 0));
            break;
        case Connection::State::Dead:
            continue;
        }
        fds.push_back({fd, events, 0});
        which.push_back(c.get());
    }
    if (interrupt) fds.push_back({interrupt->fd(), POLLIN, 0});
    int r = fds.empty() ? 0 : ::poll(fds.data(), fds.size(), timeoutMs);
    if (r < 0 && errno != EINTR)
        return makeError(Errc::System, std::string("poll: ") + std::strerror(errno));
    if (interrupt && r > 0 && (fds.back().revents & POLLIN) && interrupt->stopRequested())
        return makeError(Errc::Interrupted, "interrupted");
    for (size_t i = 0; i < which.size(); ++i) {
        Connection& c = *which[i];
        if (c.state == Connection::State::Dead) continue;
        short revents = r > 0 ? fds[i].revents : 0;
        if (c.state == Connection::State::Resolving && fds[i].fd < 0) revents = POLLIN;
        if (revents) step(c, revents);
    }
    purge();
    updateStreamPoll();
    return {};
}

// ---- the public operations ----

Result<void> HttpClient::run(const std::vector<HttpCall*>& calls, TimePoint deadline,
                             Interrupt& interrupt) {
    // Every call transfer belongs to this run: earlier runs abandoned theirs.
    auto pending = [&] {
        return std::count_if(transfers_.begin(), transfers_.end(),
                             [](const auto& t) { return t->kind == Kind::Call; });
    };
    auto abandon = [&] {
        std::vector<Transfer*> unfinished;
        for (const auto& t : transfers_)
            if (t->kind == Kind::Call) unfinished.push_back(t.get());
        for (Transfer* t : unfinished) {
            if (t->connection) close(*t->connection);
            removeTransfer(t);
        }
        purge();
    };
    // Finish what earlier calls left running (the tails of early-answered streams), so that
    // their connections are free for these calls.
    if (auto r = driveAll(0, &interrupt); !r) return r.error();
    for (HttpCall* call : calls) {
        call->transportError.reset();
        call->failures.clear();
        call->status = 0;
        call->response.clear();
        auto t = startTransfer(Kind::Call, call, call->path, call->body, current_, deadline, 0);
        if (!t) {
            abandon();
            return t.error();
        }
    }
    for (;;) {
        const auto now = BootClock::now();
        // The deadline first: after a SIGSTOP nothing is sent or read once it has passed.
        if (now >= deadline) {
            abandon();
            std::string where = currentEndpoint();
            // A member that accepts but does not answer (partitioned, stopped, overloaded):
            // the next call tries the next one.
            current_ = (current_ + 1) % options_.url.endpoints.size();
            return makeError(Errc::Unavailable, "no answer from etcd at " + where + " in time");
        }
        // Calls whose endpoint took its share of the time without answering move on.
        std::vector<Transfer*> late;
        TimePoint wakeAt = deadline;
        for (const auto& t : transfers_) {
            if (t->kind != Kind::Call || t->attempts + 1 >= options_.url.endpoints.size()) continue;
            if (now >= t->attemptDeadline)
                late.push_back(t.get());
            else
                wakeAt = std::min(wakeAt, t->attemptDeadline);
        }
        for (Transfer* t : late)
            failAttempt(t, "no answer in time");
        sweep(now);
        purge();
        if (pending() == 0) return {};
        for (const auto& c : connections_)
            if (c->connecting()) wakeAt = std::min(wakeAt, c->connectBy);
        if (auto r = driveAll(msUntil(wakeAt, 1000), &interrupt); !r) {
            abandon();
            return r.error();
        }
    }
}

void HttpClient::send(const std::string& path, const std::string& body, TimePoint deadline) {
    if (!startTransfer(Kind::Background, nullptr, path, body, current_, deadline, 0)) return;
    (void)driveAll(0, nullptr); // on a kept connection, the request leaves now
}

Result<void> HttpClient::startStream(const std::string& path, const std::string& body,
                                     std::function<void(std::string_view)> onLine) {
    stopStream();
    onLine_ = std::move(onLine);
    auto t = startTransfer(Kind::Stream, nullptr, path, body, current_, TimePoint::max(), 0);
    if (!t) return t.error();
    stream_ = *t;
    (void)driveAll(0, nullptr); // starts connecting, so the socket exists to poll
    return {};
}

void HttpClient::stopStream() {
    if (!stream_) return;
    Transfer* t = stream_;
    if (t->connection) close(*t->connection);
    removeTransfer(t);
    purge();
    updateStreamPoll();
}

void HttpClient::streamEnded() {
    stream_ = nullptr;
    wake();
}

// The stream's connection in the wake epoll, watched for what it waits for: the lookup's
// completion, the connect, the request going out, then the answer.
void HttpClient::updateStreamPoll() {
    int fd = -1;
    uint32_t events = 0;
    if (stream_ && stream_->connection) {
        Connection& c = *stream_->connection;
        switch (c.state) {
        case Connection::State::Resolving:
            fd = c.lookup->fd();
            events = EPOLLIN;
            break;
        case Connection::State::Connecting:
            fd = c.fd.get();
            events = EPOLLOUT;
            break;
        case Connection::State::Handshaking:
        case Connection::State::Open:
            fd = c.fd.get();
            events =
                EPOLLIN | (c.tlsWantsWrite || c.outDone < c.out.size() ? uint32_t(EPOLLOUT) : 0u);
            break;
        case Connection::State::Dead:
            break;
        }
    }
    if (fd == streamPolledFd_ && events == streamPolledEvents_) return;
    unpollStream();
    if (fd < 0) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0) {
        streamPolledFd_ = fd;
        streamPolledEvents_ = events;
    }
}

// Called before the polled fd closes: its number may come back for another file at once.
void HttpClient::unpollStream() {
    if (streamPolledFd_ >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, streamPolledFd_, nullptr);
    streamPolledFd_ = -1;
    streamPolledEvents_ = 0;
}

void HttpClient::pump() {
    uint64_t value;
    while (::read(event_.get(), &value, sizeof value) > 0) {
    }
    sweep(BootClock::now());
    (void)driveAll(0, nullptr);
}

} // namespace lockunit::etcd
