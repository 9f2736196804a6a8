// SPDX-License-Identifier: LGPL-2.1-or-later
// The etcd module's own gRPC client against a scripted HTTP/2 server on a loopback socket
// (nghttp2's server session in a thread of the test): the protocol edge cases a real etcd never
// produces on demand. The integration suite proves the client against real etcd.
#include <arpa/inet.h>
#include <atomic>
#include <cstring>
#include <deque>
#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <optional>
#include <poll.h>
#include <set>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "backends/etcd/grpc_client.hpp"
#include "backends/io.hpp"

using namespace lockunit;
using namespace lockunit::etcd;
using namespace std::chrono_literals;

namespace {

TimePoint in(Duration d) {
    return BootClock::now() + d;
}

bool readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
}

// Waits up to 5 s for `done`.
bool eventually(const std::function<bool()>& done) {
    auto until = in(5s);
    while (!done()) {
        if (BootClock::now() > until) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

void writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) return;
        data.remove_prefix(static_cast<size_t>(n));
    }
}

// One gRPC message: a flag byte (0: not compressed), the length (4 bytes, big-endian), the bytes.
std::string frame(std::string_view message) {
    auto n = static_cast<uint32_t>(message.size());
    std::string out{'\0', char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
    return out.append(message);
}

// The message in a body that holds exactly one.
std::optional<std::string> oneMessage(std::string_view body) {
    if (body.size() < 5 || body[0] != 0) return std::nullopt;
    uint32_t n = 0;
    for (size_t i = 1; i < 5; ++i)
        n = n << 8 | static_cast<uint8_t>(body[i]);
    if (body.size() != 5 + n) return std::nullopt;
    return std::string(body.substr(5));
}

// The same, for comparisons: anything else becomes a description that matches no message.
std::string unframe(std::string_view body) {
    return oneMessage(body).value_or("<not one gRPC message: " + std::to_string(body.size()) +
                                     " bytes>");
}

// A request as the server received it.
struct Request {
    int32_t stream = 0;
    std::map<std::string, std::string> headers;
    std::string body; // with its gRPC framing

    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? "<none>" : it->second;
    }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// The server side of one HTTP/2 connection on a blocking socket: request() reads until a
// request is complete (its stream half-closed, or one whole gRPC message in, as a watch sends
// it), and the answers go out as scripted. Every write is flushed at once.
class H2 {
public:
    size_t maxData = 16384; // bytes per DATA frame
    size_t slice = 0;       // bytes per write(), 1 ms apart (0: every frame in one write)

    explicit H2(int fd) : fd_(fd) {
        nghttp2_session_callbacks* cb;
        nghttp2_session_callbacks_new(&cb);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
        nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onData);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrame);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
        nghttp2_session_server_new(&session_, cb, this);
        nghttp2_session_callbacks_del(cb);
        nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
        flush();
    }
    ~H2() { nghttp2_session_del(session_); }
    H2(const H2&) = delete;
    H2& operator=(const H2&) = delete;

    // The next complete request; nullopt when the client closes the connection or after `wait`.
    std::optional<Request> request(Duration wait = 10s) {
        auto until = in(wait);
        while (ready_.empty()) {
            if (BootClock::now() >= until || !receive(until)) return std::nullopt;
        }
        Request r = requests_[ready_.front()];
        ready_.pop_front();
        return r;
    }

    // The HTTP/2 error code with which the client closed `stream` (8: CANCEL), once it has;
    // nullopt if it has not within `wait`.
    std::optional<uint32_t> closedWith(int32_t stream, Duration wait = 10s) {
        auto until = in(wait);
        while (!closed_.count(stream)) {
            if (BootClock::now() >= until || !receive(until)) return std::nullopt;
        }
        return closed_[stream];
    }

    void headers(int32_t stream) {
        nghttp2_data_provider data{};
        data.read_callback = readData;
        submit(stream, {{":status", "200"}, {"content-type", "application/grpc"}}, &data);
        flush();
    }
    // Raw bytes for the stream's body (frame() makes a message of them).
    void send(int32_t stream, std::string_view bytes) {
        out_[stream].data.append(bytes);
        nghttp2_session_resume_data(session_, stream);
        flush();
    }
    // grpc-message is given as it goes on the wire (percent-encoded).
    void trailers(int32_t stream, int status, const std::string& message = "") {
        Outgoing& o = out_[stream];
        o.trailers = {{"grpc-status", std::to_string(status)}};
        if (!message.empty()) o.trailers.emplace_back("grpc-message", message);
        o.end = true;
        nghttp2_session_resume_data(session_, stream);
        flush();
    }
    void answer(int32_t stream, std::string_view message) {
        headers(stream);
        send(stream, frame(message));
        trailers(stream, kGrpcOk);
    }
    // A trailers-only response: one HEADERS frame with the status, which ends the stream.
    void trailersOnly(int32_t stream, int status, const std::string& message) {
        submit(stream,
               {{":status", "200"},
                {"content-type", "application/grpc"},
                {"grpc-status", std::to_string(status)},
                {"grpc-message", message}},
               nullptr);
        flush();
    }
    void reset(int32_t stream, uint32_t code) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, code);
        flush();
    }
    // GOAWAY (NO_ERROR): the streams after `lastStream` were not acted on.
    void goaway(int32_t lastStream) {
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, lastStream, NGHTTP2_NO_ERROR, nullptr,
                              0);
        flush();
    }

private:
    struct Outgoing {
        std::string data;
        bool end = false;
        Headers trailers;
    };

    static std::vector<nghttp2_nv> nvs(const Headers& headers) {
        std::vector<nghttp2_nv> out;
        for (auto& [name, value] : headers) {
            out.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                           reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                           value.size(), NGHTTP2_NV_FLAG_NONE});
        }
        return out;
    }
    void submit(int32_t stream, const Headers& headers, nghttp2_data_provider* data) {
        auto nv = nvs(headers);
        int rv = nghttp2_submit_response(session_, stream, nv.data(), nv.size(), data);
        EXPECT_EQ(rv, 0) << nghttp2_strerror(rv);
    }

    // Reads once (waiting until `until`) and answers what the session must (SETTINGS ACK, …);
    // false on EOF or a broken session.
    bool receive(TimePoint until) {
        auto left = std::chrono::duration_cast<Duration>(until - BootClock::now()).count();
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 0))) != 1) return true;
        char buf[16384];
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n <= 0) return false;
        auto used = nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buf),
                                             static_cast<size_t>(n));
        if (used < 0) return false;
        flush();
        return true;
    }

    void flush() {
        const uint8_t* data;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
            std::string_view bytes(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
            if (slice == 0) {
                writeAll(fd_, bytes);
                continue;
            }
            for (size_t i = 0; i < bytes.size(); i += slice) {
                writeAll(fd_, bytes.substr(i, slice));
                std::this_thread::sleep_for(1ms);
            }
        }
    }

    void ready(int32_t stream) {
        if (delivered_.insert(stream).second) ready_.push_back(stream);
    }

    static H2& self(void* user) { return *static_cast<H2*>(user); }

    static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            self(user).requests_[frame->hd.stream_id].stream = frame->hd.stream_id;
        return 0;
    }
    static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                        void* user) {
        self(user)
            .requests_[frame->hd.stream_id]
            .headers[std::string(reinterpret_cast<const char*>(name), namelen)] =
            std::string(reinterpret_cast<const char*>(value), valuelen);
        return 0;
    }
    static int onData(nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len,
                      void* user) {
        std::string& body = self(user).requests_[stream].body;
        body.append(reinterpret_cast<const char*>(data), len);
        if (oneMessage(body)) self(user).ready(stream);
        return 0;
    }
    static int onFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        bool request = frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS;
        if (request && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            self(user).ready(frame->hd.stream_id);
        return 0;
    }
    static int onStreamClose(nghttp2_session*, int32_t stream, uint32_t error, void* user) {
        self(user).closed_[stream] = error;
        return 0;
    }
    // Hands out the stream's pending bytes, maxData at a time; waits (DEFERRED) for more until
    // trailers() ends the body, then sends the trailers.
    static ssize_t readData(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length,
                            uint32_t* flags, nghttp2_data_source*, void* user) {
        Outgoing& o = self(user).out_[stream];
        size_t n = std::min({length, o.data.size(), self(user).maxData});
        std::memcpy(buf, o.data.data(), n);
        o.data.erase(0, n);
        if (!o.data.empty()) return static_cast<ssize_t>(n);
        if (!o.end) return n > 0 ? static_cast<ssize_t>(n) : ssize_t{NGHTTP2_ERR_DEFERRED};
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        auto nv = nvs(o.trailers);
        nghttp2_submit_trailer(session, stream, nv.data(), nv.size());
        return static_cast<ssize_t>(n);
    }

    int fd_;
    nghttp2_session* session_ = nullptr;
    std::map<int32_t, Request> requests_;
    std::deque<int32_t> ready_;
    std::set<int32_t> delivered_;
    std::map<int32_t, uint32_t> closed_;
    std::map<int32_t, Outgoing> out_;
};

// A loopback server: each accepted connection is handed to a script (the first connection to
// scripts[0], …; the last script serves every later connection). When a script returns, the
// peer half-closes the connection (FIN) and reads until the client closes its side.
class Peer {
public:
    using Script = std::function<void(int fd)>;
    explicit Peer(std::vector<Script> scripts) : scripts_(std::move(scripts)) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(listener_, 16);
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~Peer() {
        stop_ = true;
        thread_.join();
        ::close(listener_);
    }
    int port() const { return port_; }
    std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
    int accepted() const { return accepted_; }
    // Connections whose script has returned (and whose FIN is sent).
    int finished() const { return finished_; }

private:
    void serve() {
        std::vector<std::thread> workers;
        while (!stop_) {
            pollfd p{listener_, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            size_t i = static_cast<size_t>(accepted_++);
            Script s = scripts_[std::min(i, scripts_.size() - 1)];
            workers.emplace_back([this, s, fd] {
                s(fd);
                ::shutdown(fd, SHUT_WR);
                ++finished_;
                char buf[4096];
                while (readable(fd, 10000) && ::read(fd, buf, sizeof buf) > 0) {
                }
                ::close(fd);
            });
        }
        for (auto& w : workers)
            w.join();
    }

    std::vector<Script> scripts_;
    int listener_ = -1, port_ = 0;
    std::atomic<int> accepted_{0}, finished_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// A script that speaks HTTP/2.
Peer::Script http2(std::function<void(H2&)> script) {
    return [script](int fd) {
        H2 h2(fd);
        script(h2);
    };
}

// Answers every request on the connection with "answer to " and its message.
Peer::Script answerEach() {
    return http2([](H2& h2) {
        while (auto r = h2.request())
            h2.answer(r->stream, "answer to " + unframe(r->body));
    });
}

// Answers every request with a trailers-only error.
Peer::Script failWith(int status, std::string message) {
    return http2([status, message](H2& h2) {
        while (auto r = h2.request())
            h2.trailersOnly(r->stream, status, message);
    });
}

std::unique_ptr<GrpcClient> client(const std::vector<const Peer*>& peers) {
    GrpcOptions options;
    for (const Peer* peer : peers)
        options.url.endpoints.push_back(Endpoint{"127.0.0.1", peer->port()});
    auto made = GrpcClient::create(options);
    EXPECT_TRUE(made) << made.error().message;
    return std::move(*made);
}

const std::string kRange = "/etcdserverpb.KV/Range";

GrpcCall rangeCall(std::string request = "range") {
    GrpcCall call;
    call.method = kRange;
    call.request = std::move(request);
    return call;
}

// Pumps the client whenever its wake fd is readable, until `done` or 5 s have passed.
void pumpUntil(GrpcClient& grpc, const std::function<bool()>& done) {
    auto until = in(5s);
    while (!done() && BootClock::now() < until) {
        if (readable(grpc.wakeFd(), 100)) grpc.pump();
    }
}

} // namespace

TEST(EtcdGrpcClient, TakesAnAnswerWrittenInPiecesAndReusesTheConnection) {
    Peer peer({http2([](H2& h2) {
        h2.maxData = 4; // the 5-byte prefix and the message cut across DATA frames
        h2.slice = 5;   // and every frame across writes
        while (auto r = h2.request())
            h2.answer(r->stream, "answer to " + unframe(r->body));
    })});
    auto grpc = client({&peer});
    NoInterrupt never;
    for (int round = 0; round < 3; ++round) {
        GrpcCall call = rangeCall("range " + std::to_string(round));
        auto r = grpc->run({&call}, in(10s), never);
        ASSERT_TRUE(r) << r.error().message;
        ASSERT_FALSE(call.transportError) << call.transportError->message;
        EXPECT_EQ(call.status, kGrpcOk);
        EXPECT_EQ(call.response, "answer to range " + std::to_string(round));
        EXPECT_EQ(call.endpoint, peer.endpoint());
        EXPECT_EQ(call.failures, "");
    }
    EXPECT_EQ(peer.accepted(), 1);
}

TEST(EtcdGrpcClient, MultiplexesConcurrentCallsOnOneConnection) {
    // The peer answers nothing until all three requests are in, then answers them backwards:
    // only calls sent side by side on the one connection get their answers.
    Peer peer({http2([](H2& h2) {
        std::vector<Request> requests;
        while (requests.size() < 3) {
            auto r = h2.request(5s);
            if (!r) return;
            requests.push_back(*r);
        }
        for (auto r = requests.rbegin(); r != requests.rend(); ++r)
            h2.answer(r->stream, "answer to " + unframe(r->body));
        while (h2.request()) {
        }
    })});
    auto grpc = client({&peer});
    NoInterrupt never;
    GrpcCall a = rangeCall("a"), b = rangeCall("b"), c = rangeCall("c");
    auto r = grpc->run({&a, &b, &c}, in(15s), never);
    ASSERT_TRUE(r) << r.error().message;
    for (GrpcCall* call : {&a, &b, &c}) {
        ASSERT_FALSE(call->transportError)
            << call->request << ": " << call->transportError->message;
        EXPECT_EQ(call->status, kGrpcOk) << call->request;
        EXPECT_EQ(call->response, "answer to " + call->request);
    }
    EXPECT_EQ(peer.accepted(), 1);
}

TEST(EtcdGrpcClient, ATrailersOnlyErrorGivesItsStatusAndDecodedMessageWithoutFailover) {
    Peer peer({failWith(kGrpcNotFound, "etcdserver:%20requested%20lease%20not%20found")});
    Peer spare({answerEach()});
    auto grpc = client({&peer, &spare});
    NoInterrupt never;
    GrpcCall call = rangeCall();
    auto r = grpc->run({&call}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(call.transportError) << call.transportError->message;
    EXPECT_EQ(call.status, kGrpcNotFound);
    EXPECT_EQ(call.message, "etcdserver: requested lease not found");
    EXPECT_EQ(call.response, "");
    EXPECT_EQ(call.endpoint, peer.endpoint());
    EXPECT_EQ(spare.accepted(), 0); // an answer, not a failure: no other endpoint is asked
}

TEST(EtcdGrpcClient, UnavailableFailsOverToTheNextEndpoint) {
    Peer down({failWith(kGrpcUnavailable, "etcdserver:%20leader%20changed")});
    Peer up({answerEach()});
    auto grpc = client({&down, &up});
    NoInterrupt never;
    GrpcCall call = rangeCall();
    auto r = grpc->run({&call}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(call.transportError) << call.transportError->message;
    EXPECT_EQ(call.status, kGrpcOk);
    EXPECT_EQ(call.response, "answer to range");
    EXPECT_EQ(call.endpoint, up.endpoint());
    EXPECT_NE(call.failures.find(down.endpoint()), std::string::npos) << call.failures;
    EXPECT_NE(call.failures.find("leader changed"), std::string::npos) << call.failures;
    EXPECT_EQ(grpc->currentEndpoint(), up.endpoint());
}

TEST(EtcdGrpcClient, AConnectionClosedMidAnswerFailsOverToTheNextEndpoint) {
    Peer broken({http2([](H2& h2) {
        auto r = h2.request();
        if (!r) return;
        h2.headers(r->stream);
        h2.send(r->stream, frame("the whole answer").substr(0, 9)); // and the connection ends
    })});
    Peer good({answerEach()});
    auto grpc = client({&broken, &good});
    NoInterrupt never;
    GrpcCall call = rangeCall();
    auto r = grpc->run({&call}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(call.transportError) << call.transportError->message;
    EXPECT_EQ(call.status, kGrpcOk);
    EXPECT_EQ(call.response, "answer to range");
    EXPECT_EQ(call.endpoint, good.endpoint());
    EXPECT_NE(call.failures.find(broken.endpoint()), std::string::npos) << call.failures;
    EXPECT_EQ(grpc->currentEndpoint(), good.endpoint());
}

TEST(EtcdGrpcClient, ACallTheServerResetsFailsOverToTheNextEndpoint) {
    Peer resets({http2([](H2& h2) {
        while (auto r = h2.request())
            h2.reset(r->stream, NGHTTP2_INTERNAL_ERROR);
    })});
    Peer good({answerEach()});
    auto grpc = client({&resets, &good});
    NoInterrupt never;
    GrpcCall call = rangeCall();
    auto r = grpc->run({&call}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(call.transportError) << call.transportError->message;
    EXPECT_EQ(call.response, "answer to range");
    EXPECT_EQ(call.endpoint, good.endpoint());
    EXPECT_NE(call.failures.find(resets.endpoint()), std::string::npos) << call.failures;
    EXPECT_NE(call.failures.find("INTERNAL_ERROR"), std::string::npos) << call.failures;
}

TEST(EtcdGrpcClient, ACallRefusedByGoawayGoesAgainOnAFreshConnection) {
    // The server answers one call, then says GOAWAY for the next one (it was closing the
    // connection as the call arrived): that call was not acted on and may go again.
    Peer peer({http2([](H2& h2) {
                   auto first = h2.request();
                   if (!first) return;
                   h2.answer(first->stream, "first");
                   if (!h2.request()) return;
                   h2.goaway(first->stream);
                   while (h2.request()) {
                   }
               }),
               answerEach()});
    auto grpc = client({&peer});
    NoInterrupt never;
    GrpcCall first = rangeCall();
    auto r = grpc->run({&first}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(first.response, "first");
    GrpcCall second = rangeCall();
    r = grpc->run({&second}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(second.transportError) << second.transportError->message;
    EXPECT_EQ(second.response, "answer to range");
    EXPECT_EQ(second.failures, "");
    EXPECT_EQ(peer.accepted(), 2);
}

TEST(EtcdGrpcClient, AnAnswerFollowedAtOnceByTheConnectionsCloseStillCounts) {
    // A member shutting down finishes the calls it has and closes: the answer and the close
    // may arrive in one read.
    Peer answersThenCloses({http2([](H2& h2) {
                                if (auto r = h2.request()) h2.answer(r->stream, "the answer");
                            }),
                            http2([](H2& h2) {
                                if (auto r = h2.request())
                                    h2.trailersOnly(r->stream, kGrpcNotFound, "not%20found");
                            })});
    auto grpc = client({&answersThenCloses});
    NoInterrupt never;
    GrpcCall call = rangeCall();
    auto r = grpc->run({&call}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(call.transportError) << call.transportError->message;
    EXPECT_EQ(call.status, kGrpcOk);
    EXPECT_EQ(call.response, "the answer");
    GrpcCall next = rangeCall();
    r = grpc->run({&next}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(next.transportError) << next.transportError->message;
    EXPECT_EQ(next.status, kGrpcNotFound);
    EXPECT_EQ(next.message, "not found");
}

TEST(EtcdGrpcClient, AnHttp1ServerOnTheOnlyEndpointIsAClearTransportError) {
    // What an HTTP/1.1-only server (a proxy, etcd's peer port behind one) answers to the
    // HTTP/2 connection preface.
    Peer peer({[](int fd) {
        if (!readable(fd, 10000)) return;
        char buf[4096];
        if (::read(fd, buf, sizeof buf) <= 0) return;
        writeAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Connection: close\r\n\r\n400 Bad Request");
    }});
    auto grpc = client({&peer});
    NoInterrupt never;
    GrpcCall call = rangeCall();
    auto r = grpc->run({&call}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(call.transportError);
    const std::string& why = call.transportError->message;
    EXPECT_NE(why.find("HTTP/1"), std::string::npos) << why;
    EXPECT_NE(why.find("is this an etcd"), std::string::npos) << why;
    EXPECT_NE(why.find(peer.endpoint()), std::string::npos) << why;
    EXPECT_EQ(call.status, -1);
}

namespace {

// The server ends a kept connection while it is idle (with GOAWAY, or by dropping it): the
// next call goes on a new connection without a failure.
void expectAKeptConnectionEndedWhileIdleIsReplacedUnnoticed(bool goaway) {
    std::atomic<bool> idle{false};
    Peer peer({http2([&](H2& h2) {
                   auto r = h2.request();
                   if (!r) return;
                   h2.answer(r->stream, "first");
                   eventually([&] { return idle.load(); });
                   if (goaway) h2.goaway(r->stream);
               }),
               answerEach()});
    auto grpc = client({&peer});
    NoInterrupt never;
    GrpcCall first = rangeCall();
    auto r = grpc->run({&first}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(first.response, "first");
    idle = true;
    ASSERT_TRUE(eventually([&] { return peer.finished() == 1; }));
    GrpcCall second = rangeCall();
    r = grpc->run({&second}, in(10s), never);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(second.transportError) << second.transportError->message;
    EXPECT_EQ(second.status, kGrpcOk);
    EXPECT_EQ(second.response, "answer to range");
    EXPECT_EQ(second.failures, "");
    EXPECT_EQ(peer.accepted(), 2);
}

} // namespace

TEST(EtcdGrpcClient, AKeptConnectionTheServerEndsWithGoawayWhileIdleIsReplacedUnnoticed) {
    expectAKeptConnectionEndedWhileIdleIsReplacedUnnoticed(true);
}

TEST(EtcdGrpcClient, AKeptConnectionTheServerDropsWhileIdleIsReplacedUnnoticed) {
    expectAKeptConnectionEndedWhileIdleIsReplacedUnnoticed(false);
}

TEST(EtcdGrpcClient, AStreamSplitAcrossWritesDeliversItsMessagesInOrderAndItsEndWakes) {
    std::atomic<bool> finish{false};
    std::mutex lock;
    Request seen;
    Peer peer({http2([&](H2& h2) {
        auto r = h2.request();
        if (!r) return;
        {
            std::lock_guard hold(lock);
            seen = *r;
        }
        h2.headers(r->stream);
        // Two messages in DATA frames of 7 bytes, each frame in writes of 3 bytes: the second
        // message begins in the middle of a frame and of a write.
        h2.maxData = 7;
        h2.slice = 3;
        h2.send(r->stream, frame("event one") + frame("event two"));
        eventually([&] { return finish.load(); });
        h2.trailers(r->stream, kGrpcOk);
    })});
    auto grpc = client({&peer});
    std::vector<std::string> messages;
    grpc->startStream("/etcdserverpb.Watch/Watch", "watch",
                      [&](std::string_view m) { messages.emplace_back(m); });
    ASSERT_TRUE(grpc->streamActive());
    pumpUntil(*grpc, [&] { return messages.size() >= 2; });
    EXPECT_EQ(messages, (std::vector<std::string>{"event one", "event two"}));
    {
        std::lock_guard hold(lock);
        EXPECT_EQ(seen.header(":path"), "/etcdserverpb.Watch/Watch");
        EXPECT_EQ(unframe(seen.body), "watch");
    }
    EXPECT_TRUE(grpc->streamActive());
    EXPECT_FALSE(readable(grpc->wakeFd(), 200)) << "woken with nothing to do";
    finish = true;
    pumpUntil(*grpc, [&] { return !grpc->streamActive(); });
    EXPECT_FALSE(grpc->streamActive());
    EXPECT_EQ(messages.size(), 2u);
}

TEST(EtcdGrpcClient, AStreamThatCannotConnectEndsAndWakes) {
    auto gone = std::make_unique<Peer>(std::vector<Peer::Script>{answerEach()});
    auto grpc = client({gone.get()});
    gone.reset(); // nothing listens on its port now
    grpc->startStream("/etcdserverpb.Watch/Watch", "watch", [](std::string_view) {});
    ASSERT_TRUE(grpc->streamActive());
    pumpUntil(*grpc, [&] { return !grpc->streamActive(); });
    EXPECT_FALSE(grpc->streamActive());
}

TEST(EtcdGrpcClient, WakeMakesTheWakeFdReadableUntilTheNextPump) {
    Peer peer({answerEach()});
    auto grpc = client({&peer});
    EXPECT_FALSE(readable(grpc->wakeFd(), 0));
    grpc->wake();
    EXPECT_TRUE(readable(grpc->wakeFd(), 0));
    EXPECT_TRUE(readable(grpc->wakeFd(), 0));
    grpc->pump();
    EXPECT_FALSE(readable(grpc->wakeFd(), 0));
}

TEST(EtcdGrpcClient, AnUnansweredCallEndsAtItsDeadlineAndIsCancelled) {
    std::atomic<int> cancelled{-1};
    Peer silent({http2([&](H2& h2) {
        auto r = h2.request();
        if (!r) return;
        if (auto error = h2.closedWith(r->stream)) cancelled = static_cast<int>(*error);
    })});
    auto grpc = client({&silent});
    NoInterrupt never;
    GrpcCall call = rangeCall();
    auto t0 = BootClock::now();
    auto r = grpc->run({&call}, in(300ms), never);
    auto tookMs = std::chrono::duration_cast<Duration>(BootClock::now() - t0).count();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::Unavailable);
    EXPECT_GE(tookMs, 250);
    EXPECT_LT(tookMs, 3000);
    // The abandoned call's stream is reset (CANCEL) once the client next drives its connections.
    grpc->pump();
    EXPECT_TRUE(eventually([&] { return cancelled != -1; }));
    EXPECT_EQ(cancelled, NGHTTP2_CANCEL);
}

TEST(EtcdGrpcClient, EveryCallAfterSetTokenCarriesTheToken) {
    std::mutex lock;
    std::vector<Request> seen;
    Peer peer({http2([&](H2& h2) {
        while (auto r = h2.request()) {
            {
                std::lock_guard hold(lock);
                seen.push_back(*r);
            }
            h2.answer(r->stream, "answer to " + unframe(r->body));
        }
    })});
    auto grpc = client({&peer});
    NoInterrupt never;
    for (std::string token : {"", "abc"}) {
        grpc->setToken(token);
        GrpcCall call = rangeCall();
        auto r = grpc->run({&call}, in(10s), never);
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(call.response, "answer to range");
    }
    std::lock_guard hold(lock);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].header("token"), "<none>");
    EXPECT_EQ(seen[1].header("token"), "abc");
    for (const Request& r : seen) {
        EXPECT_EQ(r.header(":method"), "POST");
        EXPECT_EQ(r.header(":path"), kRange);
        EXPECT_EQ(r.header("content-type"), "application/grpc");
        EXPECT_EQ(r.header("te"), "trailers");
        EXPECT_EQ(r.body, frame("range"));
    }
}

TEST(EtcdGrpcMessage, DecodesPercentEscapesAndKeepsMalformedOnesAsTheyAre) {
    EXPECT_EQ(decodeGrpcMessage("a%20b%3Ac"), "a b:c");
    EXPECT_EQ(decodeGrpcMessage("%e2%9c%93 done"), "\xe2\x9c\x93 done");
    EXPECT_EQ(decodeGrpcMessage("plain text"), "plain text");
    EXPECT_EQ(decodeGrpcMessage("100%"), "100%");
    EXPECT_EQ(decodeGrpcMessage("50%2"), "50%2");
    EXPECT_EQ(decodeGrpcMessage("%zz%2G%%20"), "%zz%2G% ");
    EXPECT_EQ(decodeGrpcMessage(""), "");
}

TEST(HostLookup, ResolvesNumericAddressesAtOnceAndNamesWithoutBlocking) {
    io::HostLookup numeric("127.0.0.1");
    ASSERT_TRUE(numeric.result());
    EXPECT_EQ(**numeric.result(), "127.0.0.1");
    NoInterrupt never;
    auto name = io::resolveHost("localhost", in(5s), never);
    ASSERT_TRUE(name) << name.error().message;
    EXPECT_TRUE(*name == "127.0.0.1" || *name == "::1") << *name;
    auto bad = io::resolveHost("no-such-host.invalid", in(5s), never);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("no-such-host.invalid"), std::string::npos);
}
