// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/etcd/grpc_client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <utility>

#include "backends/io.hpp"
#include "util/module.hpp"

namespace lockunit::etcd {

namespace {

constexpr size_t kMaxMessage = 16 * 1024 * 1024;
// How long the unread rest of an answer that nobody waits for may take.
constexpr auto kBackgroundLimit = std::chrono::seconds(60);

int msUntil(TimePoint t, int cap) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(t - BootClock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, cap));
}

// A gRPC message on the wire: not compressed, 4-byte big-endian length, the bytes.
std::string framed(const std::string& message) {
    const auto n = static_cast<uint32_t>(message.size());
    std::string out{'\0', static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                    static_cast<char>(n >> 8), static_cast<char>(n)};
    return out + message;
}

nghttp2_nv header(std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NONE};
}

} // namespace

std::string decodeGrpcMessage(std::string_view text) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 &&
            hex(text[i + 2]) >= 0) {
            out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

// One HTTP/2 stream: a call's attempt, a background call, or the stream. The nghttp2
// callbacks only record what arrives; settle() acts on it outside nghttp2.
struct GrpcClient::Rpc {
    Kind kind = Kind::Call;
    GrpcCall* call = nullptr; // Kind::Call only
    std::string method, request;
    std::string body; // the framed request, and how much of it nghttp2 took
    size_t sent = 0;
    size_t endpoint = 0;
    size_t attempts = 0;         // endpoints this call tried before this one
    TimePoint deadline{};        // the call's (a background call's: when to give up)
    TimePoint attemptDeadline{}; // when to give up on this endpoint and try the next
    bool freshRetry = false;     // already retried once on a fresh connection
    Connection* connection = nullptr;
    int32_t streamId = -1; // -1: not submitted yet

    // Recorded by the callbacks.
    bool sawHeaders = false;
    int httpStatus = 0;
    int grpcStatus = -1;
    std::string grpcMessage;
    std::string buffer;                // bytes not yet cut into messages
    std::vector<std::string> messages; // complete messages not yet handed on
    std::string protocolError;
    bool closed = false;
    uint32_t closeCode = 0; // the HTTP/2 error code the stream closed with
};

struct GrpcClient::Connection {
    enum class State { Resolving, Connecting, Handshaking, Open, Dead };
    State state = State::Resolving;
    size_t endpoint = 0;
    bool stream = false; // carries the stream, nothing else
    std::unique_ptr<io::HostLookup> lookup;
    UniqueFd fd;
    std::unique_ptr<TlsSession> tls;
    bool tlsWantsWrite = false; // the last TLS step waits for the socket to take data
    TimePoint connectBy{};      // connect (and TLS handshake) deadline
    nghttp2_session* session = nullptr;
    std::string out; // bytes nghttp2 produced, and how much of them went out
    size_t outDone = 0;
    size_t received = 0;
    bool answered = false;  // carried an answer: a failure before the next answer may be stale
    bool goingAway = false; // the server sent GOAWAY: no new streams
    bool spokeHttp2 = false; // the server's SETTINGS arrived: it speaks HTTP/2

    ~Connection() {
        if (session) nghttp2_session_del(session);
    }
    bool connecting() const { return state < State::Open; }
    bool wantsWrite() const {
        return outDone < out.size() || tlsWantsWrite ||
               (session && nghttp2_session_want_write(session));
    }
};

namespace {

using Rpc = GrpcClient::Rpc;
using Connection = GrpcClient::Connection;

Rpc* rpcOf(nghttp2_session* session, int32_t stream) {
    return static_cast<Rpc*>(nghttp2_session_get_stream_user_data(session, stream));
}

int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
             size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Rpc* rpc = rpcOf(session, frame->hd.stream_id);
    if (!rpc) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    rpc->sawHeaders = true;
    if (n == ":status")
        rpc->httpStatus = std::atoi(std::string(v).c_str());
    else if (n == "grpc-status")
        rpc->grpcStatus = std::atoi(std::string(v).c_str());
    else if (n == "grpc-message")
        rpc->grpcMessage = decodeGrpcMessage(v);
    return 0;
}

int onData(nghttp2_session* session, uint8_t, int32_t stream, const uint8_t* data, size_t len,
           void*) {
    Rpc* rpc = rpcOf(session, stream);
    if (!rpc || !rpc->protocolError.empty()) return 0;
    rpc->buffer.append(reinterpret_cast<const char*>(data), len);
    while (rpc->buffer.size() >= 5) {
        const auto* p = reinterpret_cast<const unsigned char*>(rpc->buffer.data());
        const size_t size = size_t{p[1]} << 24 | size_t{p[2]} << 16 | size_t{p[3]} << 8 | p[4];
        if (p[0] != 0) {
            rpc->protocolError = "a compressed gRPC message (none was asked for)";
            return 0;
        }
        if (size > kMaxMessage) {
            rpc->protocolError = "a gRPC message larger than 16 MiB";
            return 0;
        }
        if (rpc->buffer.size() < 5 + size) break;
        rpc->messages.push_back(rpc->buffer.substr(5, size));
        rpc->buffer.erase(0, 5 + size);
    }
    return 0;
}

int onStreamClose(nghttp2_session* session, int32_t stream, uint32_t code, void*) {
    if (Rpc* rpc = rpcOf(session, stream)) {
        rpc->closed = true;
        rpc->closeCode = code;
    }
    return 0;
}

int onFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* c = static_cast<Connection*>(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) c->goingAway = true;
    if (frame->hd.type == NGHTTP2_SETTINGS) c->spokeHttp2 = true;
    return 0;
}

ssize_t readBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length,
                 uint32_t* flags, nghttp2_data_source*, void*) {
    Rpc* rpc = rpcOf(session, stream);
    if (!rpc) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; // abandoned: reset the stream
    const size_t n = std::min(length, rpc->body.size() - rpc->sent);
    std::memcpy(buf, rpc->body.data() + rpc->sent, n);
    rpc->sent += n;
    // Every request is one message, then the half-close: etcd's streaming methods (watch,
    // keepalive) go on answering after it.
    if (rpc->sent == rpc->body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
}

} // namespace

GrpcClient::GrpcClient(GrpcOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<GrpcClient>> GrpcClient::create(GrpcOptions options) {
    std::unique_ptr<GrpcClient> client(new GrpcClient(std::move(options)));
    if (auto r = client->init(); !r) return r.error();
    return client;
}

Result<void> GrpcClient::init() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!epoll_.valid() || !event_.valid())
        return makeError(Errc::System, errnoMessage("epoll/eventfd"));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = event_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, event_.get(), &ev) < 0)
        return makeError(Errc::System, errnoMessage("epoll_ctl"));
    if (options_.url.tls) {
        auto module = modules::entry<TlsModule>(kTlsModule);
        if (!module) return makeError(module.error().code, "etcds:// " + module.error().message);
        TlsFiles files{options_.caFile, options_.certFile, options_.keyFile};
        std::string error;
        tls_ = (*module)->context(files, &error);
        if (!tls_) return makeError(Errc::Config, "etcds:// " + error);
    }
    return {};
}

GrpcClient::~GrpcClient() {
    rpcs_.clear(); // before the sessions that point at them
    connections_.clear();
}

std::string GrpcClient::currentEndpoint() const {
    return options_.url.endpoints[current_].display();
}

void GrpcClient::wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(event_.get(), &one, sizeof one);
}

// ---- RPCs ----

GrpcClient::Rpc* GrpcClient::startRpc(Kind kind, GrpcCall* call, const std::string& method,
                                      const std::string& request, size_t endpoint,
                                      TimePoint deadline, size_t attempts) {
    auto rpc = std::make_unique<Rpc>();
    rpc->kind = kind;
    rpc->call = call;
    rpc->attempts = attempts;
    rpc->method = method;
    rpc->request = request;
    rpc->body = framed(request);
    rpc->endpoint = endpoint;
    const auto now = BootClock::now();
    rpc->deadline =
        kind == Kind::Background ? std::max(deadline, now + kBackgroundLimit) : deadline;
    // Each endpoint still untried gets an equal share of the time left: a member that
    // accepts the connection but does not answer (stopped, partitioned) costs only its share.
    const size_t untried =
        options_.url.endpoints.size() - std::min(attempts, options_.url.endpoints.size() - 1);
    rpc->attemptDeadline = deadline == TimePoint::max() || deadline <= now
                               ? deadline
                               : now + (deadline - now) / static_cast<long>(untried);
    if (call) call->endpoint = options_.url.endpoints[endpoint].display();
    TimePoint connectBy = now + options_.connectTimeout;
    if (kind != Kind::Stream) connectBy = std::min(connectBy, deadline);
    Rpc* raw = rpc.get();
    raw->connection = connectionFor(endpoint, kind == Kind::Stream, connectBy);
    rpcs_.push_back(std::move(rpc));
    // It leaves at the next flush (driveAll); on a connection still being set up, once the
    // session starts.
    if (raw->connection->state == Connection::State::Open) submit(raw);
    return raw;
}

GrpcClient::Connection* GrpcClient::connectionFor(size_t endpoint, bool stream,
                                                  TimePoint connectBy) {
    if (!stream)
        for (auto& c : connections_)
            if (!c->stream && c->endpoint == endpoint && c->state != Connection::State::Dead &&
                !c->goingAway)
                return c.get();
    return openConnection(endpoint, stream, connectBy);
}

GrpcClient::Connection* GrpcClient::openConnection(size_t endpoint, bool stream,
                                                   TimePoint connectBy) {
    auto c = std::make_unique<Connection>();
    c->endpoint = endpoint;
    c->stream = stream;
    c->connectBy = connectBy;
    c->lookup = std::make_unique<io::HostLookup>(options_.url.endpoints[endpoint].host);
    Connection* raw = c.get();
    connections_.push_back(std::move(c));
    return raw;
}

void GrpcClient::submit(Rpc* rpc) {
    Connection& c = *rpc->connection;
    const std::string authority = options_.url.endpoints[rpc->endpoint].display();
    std::vector<nghttp2_nv> headers{
        header(":method", "POST"),
        header(":scheme", options_.url.tls ? "https" : "http"),
        header(":path", rpc->method),
        header(":authority", authority),
        header("content-type", "application/grpc"),
        header("te", "trailers"),
    };
    if (!token_.empty()) headers.push_back(header("token", token_));
    nghttp2_data_provider body{};
    body.read_callback = readBody;
    const int32_t id =
        nghttp2_submit_request(c.session, nullptr, headers.data(), headers.size(), &body, rpc);
    if (id < 0) {
        rpc->protocolError = std::string("HTTP/2: ") + nghttp2_strerror(id);
        rpc->closed = true;
        return;
    }
    rpc->streamId = id;
}

void GrpcClient::removeRpc(Rpc* rpc) {
    if (rpc == stream_) stream_ = nullptr;
    Connection* c = rpc->connection;
    if (c && c->session && rpc->streamId >= 0) {
        nghttp2_session_set_stream_user_data(c->session, rpc->streamId, nullptr);
        if (!rpc->closed) // sent with the next flush
            nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, rpc->streamId,
                                      NGHTTP2_CANCEL);
    }
    auto it = std::find_if(rpcs_.begin(), rpcs_.end(), [&](const auto& p) { return p.get() == rpc; });
    if (it != rpcs_.end()) rpcs_.erase(it);
}

GrpcClient::Rpc* GrpcClient::restart(Rpc* rpc, size_t endpoint, size_t attempts) {
    GrpcCall* call = rpc->call;
    const std::string method = rpc->method, request = rpc->request;
    const TimePoint deadline = rpc->deadline;
    removeRpc(rpc);
    return startRpc(Kind::Call, call, method, request, endpoint, deadline, attempts);
}

void GrpcClient::failAttempt(Rpc* rpc, const std::string& why) {
    GrpcCall* call = rpc->call;
    const size_t n = options_.url.endpoints.size();
    // The next endpoint for this call and, unless another call moved on already, for every
    // later call.
    if (current_ == rpc->endpoint) current_ = (current_ + 1) % n;
    call->failures += options_.url.endpoints[rpc->endpoint].display() + ": " + why;
    call->response.clear();
    const size_t attempts = rpc->attempts + 1;
    if (attempts < n && BootClock::now() < rpc->deadline) {
        call->failures += "; ";
        restart(rpc, (rpc->endpoint + 1) % n, attempts);
        return;
    }
    removeRpc(rpc);
    call->transportError = makeError(Errc::Unavailable, call->failures);
}

void GrpcClient::retryOnFreshConnection(Rpc* rpc) {
    const TimePoint attemptDeadline = rpc->attemptDeadline; // still this member's share
    Rpc* again = restart(rpc, rpc->endpoint, rpc->attempts);
    again->freshRetry = true;
    again->attemptDeadline = attemptDeadline;
}

// A call's attempt that ended: its answer, or what went wrong.
void GrpcClient::finish(Rpc* rpc) {
    GrpcCall* call = rpc->call;
    if (!rpc->protocolError.empty()) return failAttempt(rpc, rpc->protocolError);
    if (!rpc->messages.empty() && rpc->httpStatus == 200) {
        if (rpc->connection) rpc->connection->answered = true;
        call->status = kGrpcOk;
        call->response = std::move(rpc->messages.front());
        if (rpc->closed || !rpc->connection) return removeRpc(rpc);
        // The rest of the answer (etcd's trailers) is read and dropped later.
        rpc->kind = Kind::Background;
        rpc->call = nullptr;
        rpc->messages.clear();
        rpc->deadline = BootClock::now() + kBackgroundLimit;
        return;
    }
    if (!rpc->closed) return; // not answered yet
    if (rpc->grpcStatus >= 0) {
        if (rpc->connection) rpc->connection->answered = true;
        // UNAVAILABLE is etcd's "no leader", "leader changed": another member may do better.
        // On the last endpoint, its answer is the outcome.
        if (rpc->grpcStatus == kGrpcUnavailable && rpc->attempts + 1 < endpointCount() &&
            BootClock::now() < rpc->deadline)
            return failAttempt(rpc, "etcd: " + rpc->grpcMessage);
        if (rpc->grpcStatus == kGrpcOk)
            return failAttempt(rpc, "an answer without a message");
        call->status = rpc->grpcStatus;
        call->message = rpc->grpcMessage;
        return removeRpc(rpc);
    }
    // A stream the server refused before acting on it (GOAWAY) goes again on a fresh
    // connection to the same member, once.
    if (rpc->closeCode == NGHTTP2_REFUSED_STREAM && !rpc->freshRetry)
        return retryOnFreshConnection(rpc);
    if (rpc->httpStatus != 0 && rpc->httpStatus != 200)
        return failAttempt(rpc, "HTTP " + std::to_string(rpc->httpStatus) +
                                    " and no gRPC status: is this an etcd 3.4+ client URL?");
    if (rpc->closeCode != 0)
        return failAttempt(rpc, std::string("the server reset the call (HTTP/2 ") +
                                    nghttp2_http2_strerror(rpc->closeCode) + ")");
    failAttempt(rpc, "the answer ended without a gRPC status");
}

void GrpcClient::settle() {
    std::vector<Rpc*> all;
    for (const auto& rpc : rpcs_)
        all.push_back(rpc.get());
    for (Rpc* rpc : all) {
        if (std::none_of(rpcs_.begin(), rpcs_.end(), [&](const auto& p) { return p.get() == rpc; }))
            continue; // removed while settling another
        switch (rpc->kind) {
        case Kind::Call:
            finish(rpc);
            break;
        case Kind::Background:
            if (rpc->closed) removeRpc(rpc);
            break;
        case Kind::Stream: {
            auto messages = std::move(rpc->messages);
            rpc->messages.clear();
            for (const std::string& m : messages)
                if (onMessage_) onMessage_(m);
            if (rpc->closed || !rpc->protocolError.empty()) {
                if (rpc->connection) close(*rpc->connection);
                removeRpc(rpc);
                wake();
            }
            break;
        }
        }
    }
}

// ---- connections ----

void GrpcClient::close(Connection& c) {
    if (c.stream) unpollStream();
    c.state = Connection::State::Dead;
    for (const auto& rpc : rpcs_)
        if (rpc->connection == &c) {
            // The session goes with the connection: the RPC's stream with it.
            rpc->connection = nullptr;
            rpc->streamId = -1;
        }
    if (c.session) {
        nghttp2_session_del(c.session);
        c.session = nullptr;
    }
    c.lookup.reset();
    c.tls.reset();
    c.fd.reset();
}

void GrpcClient::connectionFailed(Connection& c, const std::string& why) {
    // Calls whose answer arrived before the end (read in the same go) keep it: settle()
    // hands it on. Sending them again could apply a write twice.
    std::vector<Rpc*> affected;
    for (const auto& rpc : rpcs_)
        if (rpc->connection == &c &&
            !(rpc->kind == Kind::Call && (rpc->closed || !rpc->messages.empty())))
            affected.push_back(rpc.get());
    // A kept connection that the server closed while it was idle fails before any answer:
    // that says nothing about the server. Its calls go again on a fresh connection, once.
    const bool mayBeStale = c.answered;
    close(c);
    for (Rpc* rpc : affected) {
        switch (rpc->kind) {
        case Kind::Call:
            if (mayBeStale && !rpc->sawHeaders && !rpc->freshRetry)
                retryOnFreshConnection(rpc);
            else
                failAttempt(rpc, why);
            break;
        case Kind::Background:
            removeRpc(rpc);
            break;
        case Kind::Stream:
            removeRpc(rpc);
            wake();
            break;
        }
    }
}

void GrpcClient::advanceConnect(Connection& c, short revents) {
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
            return connectionFailed(c, errnoMessage("socket"));
        }
        int one = 1; // each request is one write; nothing gains from waiting for more
        ::setsockopt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int r = ::connect(c.fd.get(), address->ai_addr, address->ai_addrlen);
        int err = errno;
        ::freeaddrinfo(address);
        if (r < 0 && err != EINPROGRESS) return connectionFailed(c, errnoMessage("connect", err));
        c.state = Connection::State::Connecting;
        if (r < 0) return; // wait for POLLOUT
        revents = POLLOUT;
    }
    if (c.state == Connection::State::Connecting) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return;
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err != 0) return connectionFailed(c, errnoMessage("connect", err));
        if (!tls_) {
            startSession(c);
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
            startSession(c);
        else if (io.status == TlsIo::Failed)
            connectionFailed(c, io.error);
        else if (io.status == TlsIo::Closed)
            connectionFailed(c, "TLS handshake: connection closed by the server");
    }
}

// The connection is up: the HTTP/2 session starts, and the RPCs that waited for it go.
void GrpcClient::startSession(Connection& c) {
    nghttp2_session_callbacks* callbacks = nullptr;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) {
        return connectionFailed(c, "HTTP/2: out of memory");
    }
    nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onData);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrame);
    int r = nghttp2_session_client_new(&c.session, callbacks, &c);
    nghttp2_session_callbacks_del(callbacks);
    if (r != 0) {
        return connectionFailed(c, std::string("HTTP/2: ") + nghttp2_strerror(r));
    }
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    c.state = Connection::State::Open;
    for (const auto& rpc : rpcs_)
        if (rpc->connection == &c && rpc->streamId < 0) submit(rpc.get());
    flush(c);
}

void GrpcClient::flush(Connection& c) {
    while (c.state == Connection::State::Open) {
        if (c.outDone == c.out.size()) {
            c.out.clear();
            c.outDone = 0;
            // Everything nghttp2 has to send (the preface, requests, acks), in one write.
            while (c.out.size() < 64 * 1024) {
                const uint8_t* data = nullptr;
                ssize_t n = nghttp2_session_mem_send(c.session, &data);
                if (n < 0)
                    return connectionFailed(c, std::string("HTTP/2: ") +
                                                   nghttp2_strerror(static_cast<int>(n)));
                if (n == 0) break;
                c.out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
            }
            if (c.out.empty()) return;
        }
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
        return connectionFailed(c, errnoMessage("send"));
    }
}

void GrpcClient::readAvailable(Connection& c) {
    char buffer[16 * 1024];
    while (c.state == Connection::State::Open) {
        size_t got = 0;
        bool eof = false;
        if (c.tls) {
            TlsIo io = c.tls->read(buffer, sizeof buffer);
            if (io.status == TlsIo::WantRead) break;
            if (io.status == TlsIo::WantWrite) {
                c.tlsWantsWrite = true;
                break;
            }
            if (io.status == TlsIo::Failed) return connectionFailed(c, io.error);
            eof = io.status == TlsIo::Closed;
            got = io.bytes;
        } else {
            ssize_t n = ::recv(c.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
                return connectionFailed(c, errnoMessage("recv"));
            }
            eof = n == 0;
            got = static_cast<size_t>(n);
        }
        // An HTTP/1 server answers the HTTP/2 preface with a status line.
        if (c.received == 0 && std::string_view(buffer, got).starts_with("HTTP/1."))
            return connectionFailed(
                c, "the server speaks HTTP/1, not gRPC: is this an etcd 3.4+ client URL?");
        if (eof) return connectionFailed(c, endedWhy(c, "connection closed by the server"));
        c.received += got;
        ssize_t r = nghttp2_session_mem_recv(c.session, reinterpret_cast<const uint8_t*>(buffer),
                                             got);
        if (r < 0)
            return connectionFailed(
                c, endedWhy(c, std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(r))));
    }
    if (c.state != Connection::State::Open) return;
    flush(c); // acknowledgements, window updates
    if (c.state == Connection::State::Open && !nghttp2_session_want_read(c.session) &&
        !nghttp2_session_want_write(c.session))
        connectionFailed(c, endedWhy(c, "the server ended the connection (GOAWAY)"));
}

// Why a connection ended, for messages: a server that answered, but never in HTTP/2, is no
// etcd client port at all.
std::string GrpcClient::endedWhy(const Connection& c, const std::string& what) const {
    if (c.received > 0 && !c.spokeHttp2)
        return "the server does not speak HTTP/2 (gRPC): is this an etcd 3.4+ client URL?";
    return what;
}

void GrpcClient::step(Connection& c, short revents) {
    if (c.connecting()) {
        advanceConnect(c, revents);
        return;
    }
    if (c.state != Connection::State::Open) return;
    c.tlsWantsWrite = false; // until a TLS step below says otherwise
    flush(c);
    // A TLS session may hold decrypted data that poll() cannot see: read until it wants more.
    if (c.state == Connection::State::Open && (revents & (POLLIN | POLLHUP | POLLERR) || c.tls))
        readAvailable(c);
}

void GrpcClient::sweep(TimePoint now) {
    for (size_t i = 0; i < connections_.size(); ++i) {
        Connection& c = *connections_[i];
        if (c.connecting() && now >= c.connectBy) {
            auto ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(options_.connectTimeout);
            connectionFailed(c, "connect timed out (connect_timeout " + std::to_string(ms.count()) +
                                    " ms)");
        }
    }
    std::vector<Rpc*> late;
    for (const auto& rpc : rpcs_)
        if (rpc->kind == Kind::Background && now >= rpc->deadline) late.push_back(rpc.get());
    for (Rpc* rpc : late)
        removeRpc(rpc);
}

// Drops dead connections, and idle ones to a member the calls moved away from.
void GrpcClient::purge() {
    for (auto& c : connections_) {
        if (c->state == Connection::State::Dead || c->stream || c->endpoint == current_) continue;
        if (std::none_of(rpcs_.begin(), rpcs_.end(),
                         [&](const auto& rpc) { return rpc->connection == c.get(); }))
            close(*c);
    }
    std::erase_if(connections_, [](const auto& c) { return c->state == Connection::State::Dead; });
}

Result<void> GrpcClient::driveAll(int timeoutMs, Interrupt* interrupt) {
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
            events = static_cast<short>(POLLIN | (c->wantsWrite() ? POLLOUT : 0));
            break;
        case Connection::State::Dead:
            continue;
        }
        fds.push_back({fd, events, 0});
        which.push_back(c.get());
    }
    if (!fds.empty()) {
        NoInterrupt none;
        Interrupt& waiter = interrupt ? *interrupt : none;
        const TimePoint until = BootClock::now() + std::chrono::milliseconds(timeoutMs);
        if (auto r = waiter.wait(fds, until, "etcd"); !r) return r.error();
    }
    for (size_t i = 0; i < which.size(); ++i) {
        Connection& c = *which[i];
        if (c.state == Connection::State::Dead) continue;
        short revents = fds[i].revents;
        if (c.state == Connection::State::Resolving && fds[i].fd < 0) revents = POLLIN;
        if (revents) step(c, revents);
    }
    settle();
    purge();
    updateStreamPoll();
    return {};
}

// ---- the public operations ----

Result<void> GrpcClient::run(const std::vector<GrpcCall*>& calls, TimePoint deadline,
                             Interrupt& interrupt) {
    // Every call RPC belongs to this run: earlier runs abandoned theirs.
    auto pending = [&] {
        return std::count_if(rpcs_.begin(), rpcs_.end(),
                             [](const auto& rpc) { return rpc->kind == Kind::Call; });
    };
    auto abandon = [&] {
        std::vector<Rpc*> unfinished;
        for (const auto& rpc : rpcs_)
            if (rpc->kind == Kind::Call) unfinished.push_back(rpc.get());
        for (Rpc* rpc : unfinished)
            removeRpc(rpc);
        purge();
    };
    // Read what arrived since the last call (the ends of earlier answers, a server's GOAWAY),
    // so that these calls go on a connection that is still good.
    if (auto r = driveAll(0, &interrupt); !r) return r.error();
    for (GrpcCall* call : calls) {
        call->transportError.reset();
        call->failures.clear();
        call->status = -1;
        call->message.clear();
        call->response.clear();
        startRpc(Kind::Call, call, call->method, call->request, current_, deadline, 0);
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
        std::vector<Rpc*> late;
        TimePoint wakeAt = deadline;
        for (const auto& rpc : rpcs_) {
            if (rpc->kind != Kind::Call || rpc->attempts + 1 >= options_.url.endpoints.size())
                continue;
            if (now >= rpc->attemptDeadline)
                late.push_back(rpc.get());
            else
                wakeAt = std::min(wakeAt, rpc->attemptDeadline);
        }
        for (Rpc* rpc : late)
            failAttempt(rpc, "no answer in time");
        sweep(now);
        purge();
        if (pending() == 0) return {}; // driveAll() settled what arrived
        for (const auto& c : connections_)
            if (c->connecting()) wakeAt = std::min(wakeAt, c->connectBy);
        if (auto r = driveAll(msUntil(wakeAt, 1000), &interrupt); !r) {
            abandon();
            return r.error();
        }
    }
}

void GrpcClient::send(const std::string& method, const std::string& request,
                      TimePoint deadline) {
    startRpc(Kind::Background, nullptr, method, request, current_, deadline, 0);
    (void)driveAll(0, nullptr); // on an open connection, the request left already
}

void GrpcClient::startStream(const std::string& method, const std::string& request,
                             std::function<void(std::string_view)> onMessage) {
    stopStream();
    onMessage_ = std::move(onMessage);
    stream_ = startRpc(Kind::Stream, nullptr, method, request, current_, TimePoint::max(), 0);
    (void)driveAll(0, nullptr); // starts connecting, so the socket exists to poll
}

void GrpcClient::stopStream() {
    if (!stream_) return;
    Rpc* rpc = stream_;
    // The stream has its connection to itself: closing it ends the watch on etcd's side too.
    if (rpc->connection) close(*rpc->connection);
    removeRpc(rpc);
    purge();
    updateStreamPoll();
}

// The stream's connection in the wake epoll, watched for what it waits for: the lookup's
// completion, the connect, the request going out, then the answer.
void GrpcClient::updateStreamPoll() {
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
            events = EPOLLIN | (c.wantsWrite() ? uint32_t(EPOLLOUT) : 0u);
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
void GrpcClient::unpollStream() {
    if (streamPolledFd_ >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, streamPolledFd_, nullptr);
    streamPolledFd_ = -1;
    streamPolledEvents_ = 0;
}

void GrpcClient::pump() {
    uint64_t value;
    while (::read(event_.get(), &value, sizeof value) > 0) {
    }
    sweep(BootClock::now());
    (void)driveAll(0, nullptr);
}

} // namespace lockunit::etcd
