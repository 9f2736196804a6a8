// SPDX-License-Identifier: LGPL-2.1-or-later
// The etcd module's own HTTP handling: the response parser on byte sequences, and the client
// against a scripted HTTP peer on a loopback socket (the protocol edge cases a real etcd never
// produces on demand). The integration suite proves the client against real etcd.
#include <arpa/inet.h>
#include <atomic>
#include <functional>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "backends/etcd/http_client.hpp"
#include "backends/etcd/http_response.hpp"
#include "backends/io.hpp"

using namespace lockunit;
using namespace lockunit::etcd;
using namespace std::chrono_literals;

namespace {

struct Parsed {
    ResponseParser parser;
    std::string body;
    Parsed() {
        parser.onBody = [this](std::string_view d) { body.append(d); };
    }
};

const std::string kChunked = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "6\r\n{\"a\":1\r\n2\r\n}\n\r\n8\r\n{\"b\":2}\n\r\n0\r\n\r\n";

} // namespace

TEST(EtcdHttpResponse, ParsesAChunkedBodySplitAtEveryByte) {
    Parsed p;
    for (char c : kChunked) {
        ASSERT_FALSE(p.parser.complete());
        auto r = p.parser.feed(std::string_view(&c, 1));
        ASSERT_TRUE(r) << r.error().message;
    }
    EXPECT_TRUE(p.parser.complete());
    EXPECT_EQ(p.parser.status(), 200);
    EXPECT_TRUE(p.parser.keepAlive());
    EXPECT_EQ(p.body, "{\"a\":1}\n{\"b\":2}\n");
}

TEST(EtcdHttpResponse, ParsesContentLengthAndIsReusableAfterReset) {
    Parsed p;
    ASSERT_TRUE(p.parser.feed("HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!"));
    EXPECT_TRUE(p.parser.complete());
    EXPECT_EQ(p.parser.status(), 404);
    EXPECT_EQ(p.body, "nope!");
    p.parser.reset();
    p.body.clear();
    ASSERT_TRUE(
        p.parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"));
    EXPECT_TRUE(p.parser.complete());
    EXPECT_FALSE(p.parser.keepAlive());
    EXPECT_EQ(p.body, "{}");
}

TEST(EtcdHttpResponse, AMalformedResponseIsAClearError) {
    Parsed p;
    auto r = p.parser.feed("SMTP ready\r\n");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::Refused);
    EXPECT_NE(r.error().message.find("malformed HTTP response"), std::string::npos)
        << r.error().message;
    Parsed bad;
    r = bad.parser.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("malformed HTTP response"), std::string::npos);
}

TEST(EtcdHttpResponse, BytesAfterACompleteResponseAreAnError) {
    Parsed p;
    auto r = p.parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("after an HTTP response"), std::string::npos);
}

TEST(EtcdHttpResponse, AConnectionClosedMidBodyIsCutShort) {
    Parsed p;
    ASSERT_TRUE(p.parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"a\""));
    auto r = p.parser.feedEof();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::Unavailable);
    EXPECT_NE(r.error().message.find("middle of the body"), std::string::npos);
    Parsed nothing;
    r = nothing.parser.feedEof();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("before an answer"), std::string::npos);
}

TEST(EtcdHttpResponse, ABodyThatRunsToTheCloseEndsThere) {
    Parsed p;
    ASSERT_TRUE(p.parser.feed("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"));
    EXPECT_FALSE(p.parser.complete());
    ASSERT_TRUE(p.parser.feedEof());
    EXPECT_TRUE(p.parser.complete());
    EXPECT_EQ(p.body, "all of it");
}

// ---- the client against a scripted peer ----

namespace {

// Reads one request (headers and Content-Length body); false on EOF.
bool readRequest(int fd, std::string* request = nullptr) {
    std::string in;
    char buf[4096];
    for (;;) {
        auto end = in.find("\r\n\r\n");
        if (end != std::string::npos) {
            size_t length = 0;
            auto at = in.find("Content-Length: ");
            if (at != std::string::npos && at < end) length = std::stoul(in.substr(at + 16));
            if (in.size() >= end + 4 + length) {
                if (request) *request = in;
                return true;
            }
        }
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) return false;
        in.append(buf, static_cast<size_t>(n));
    }
}

void writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) return;
        data.remove_prefix(static_cast<size_t>(n));
    }
}

// A loopback HTTP peer: each accepted connection is handed to `script` (in order: the first
// connection to scripts[0], …; the last script serves every later connection).
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
    int accepted() const { return accepted_; }

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
            workers.emplace_back([s, fd] {
                s(fd);
                ::close(fd);
            });
        }
        for (auto& w : workers)
            w.join();
    }

    std::vector<Script> scripts_;
    int listener_ = -1, port_ = 0;
    std::atomic<int> accepted_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// Answers every request on the connection with `answer` until the client closes it.
Peer::Script answerEach(std::string answer) {
    return [answer](int fd) {
        while (readRequest(fd))
            writeAll(fd, answer);
    };
}

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";

std::unique_ptr<HttpClient> client(const std::vector<int>& ports) {
    HttpOptions options;
    for (int port : ports)
        options.url.endpoints.push_back(Endpoint{"127.0.0.1", port});
    auto made = HttpClient::create(options);
    EXPECT_TRUE(made) << made.error().message;
    return std::move(*made);
}

TimePoint in(Duration d) {
    return BootClock::now() + d;
}

// The call every test makes: a range request, whose answer the peer scripts.
HttpCall rangeCall() {
    HttpCall call;
    call.path = "/v3/kv/range";
    call.body = "{}";
    return call;
}

bool readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
}

} // namespace

TEST(EtcdHttpClient, TakesAChunkedAnswerWrittenInPiecesAndReusesTheConnection) {
    Peer peer({[](int fd) {
        while (readRequest(fd)) {
            for (size_t i = 0; i < kChunked.size(); i += 7) {
                writeAll(fd, kChunked.substr(i, 7));
                std::this_thread::sleep_for(1ms);
            }
        }
    }});
    auto http = client({peer.port()});
    NoInterrupt never;
    for (int round = 0; round < 3; ++round) {
        HttpCall call = rangeCall();
        ASSERT_TRUE(http->run({&call}, in(5s), never));
        ASSERT_FALSE(call.transportError) << call.transportError->message;
        EXPECT_EQ(call.status, 200);
        EXPECT_EQ(call.response, "{\"a\":1}\n{\"b\":2}\n");
    }
    EXPECT_EQ(peer.accepted(), 1);
}

TEST(EtcdHttpClient, AConnectionClosedMidBodyFailsOverToTheNextEndpoint) {
    Peer broken({[](int fd) {
        readRequest(fd);
        writeAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"partial\":");
    }});
    Peer good({answerEach(kOk)});
    auto http = client({broken.port(), good.port()});
    NoInterrupt never;
    HttpCall call = rangeCall();
    ASSERT_TRUE(http->run({&call}, in(5s), never));
    ASSERT_FALSE(call.transportError) << call.transportError->message;
    EXPECT_EQ(call.status, 200);
    EXPECT_EQ(call.response, "{\"ok\":true}");
    EXPECT_NE(call.failures.find("middle of the body"), std::string::npos) << call.failures;
    EXPECT_EQ(http->currentEndpoint(), "127.0.0.1:" + std::to_string(good.port()));
}

TEST(EtcdHttpClient, AMalformedAnswerOnTheOnlyEndpointIsAClearTransportError) {
    Peer peer({[](int fd) {
        readRequest(fd);
        writeAll(fd, "220 smtp.example.org ESMTP\r\n");
    }});
    auto http = client({peer.port()});
    NoInterrupt never;
    HttpCall call = rangeCall();
    ASSERT_TRUE(http->run({&call}, in(5s), never));
    ASSERT_TRUE(call.transportError);
    EXPECT_EQ(call.transportError->code, Errc::Unavailable);
    EXPECT_NE(call.transportError->message.find("malformed HTTP response"), std::string::npos)
        << call.transportError->message;
}

TEST(EtcdHttpClient, AKeptConnectionThatTheServerClosesIsReplacedUnnoticed) {
    // The first connection answers once and closes when the next request arrives (as a server
    // whose idle timeout struck just then); the second call goes again on a fresh connection.
    Peer peer({[](int fd) {
                   readRequest(fd);
                   writeAll(fd, kOk);
                   readRequest(fd);
               },
               answerEach(kOk)});
    auto http = client({peer.port()});
    NoInterrupt never;
    for (int round = 0; round < 3; ++round) {
        HttpCall call = rangeCall();
        ASSERT_TRUE(http->run({&call}, in(5s), never));
        ASSERT_FALSE(call.transportError) << call.transportError->message;
        EXPECT_EQ(call.status, 200);
        EXPECT_EQ(call.failures, "");
    }
    EXPECT_EQ(peer.accepted(), 2);
}

TEST(EtcdHttpClient, AStreamSplitAcrossWritesComesOutLineByLineAndItsEndWakes) {
    std::atomic<bool> finish{false};
    Peer peer({[&](int fd) {
        readRequest(fd);
        writeAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        // One line in two chunks, each chunk in two writes; then two lines in one chunk.
        for (std::string piece :
             {"6\r\n{\"n\":1", "\r\n", "2\r\n}\n", "\r\n", "10\r\n{\"n\":2}\n{\"n\":3}\n\r\n"}) {
            writeAll(fd, piece);
            std::this_thread::sleep_for(5ms);
        }
        while (!finish)
            std::this_thread::sleep_for(5ms);
        writeAll(fd, "0\r\n\r\n");
    }});
    auto http = client({peer.port()});
    std::vector<std::string> lines;
    ASSERT_TRUE(http->startStream("/v3/watch", "{}",
                                  [&](std::string_view line) { lines.emplace_back(line); }));
    ASSERT_TRUE(http->streamActive());
    auto until = in(5s);
    while (lines.size() < 3 && BootClock::now() < until) {
        if (readable(http->wakeFd(), 100)) http->pump();
    }
    EXPECT_EQ(lines, (std::vector<std::string>{"{\"n\":1}", "{\"n\":2}", "{\"n\":3}"}));
    EXPECT_TRUE(http->streamActive());
    finish = true;
    until = in(5s);
    while (http->streamActive() && BootClock::now() < until) {
        if (readable(http->wakeFd(), 100)) http->pump();
    }
    EXPECT_FALSE(http->streamActive());
}

TEST(EtcdHttpClient, AStreamThatCannotConnectEndsAndWakes) {
    int port;
    {
        Peer gone({answerEach(kOk)});
        port = gone.port();
    }
    auto http = client({port});
    ASSERT_TRUE(http->startStream("/v3/watch", "{}", [](std::string_view) {}));
    auto until = in(5s);
    while (http->streamActive() && BootClock::now() < until) {
        if (readable(http->wakeFd(), 100)) http->pump();
    }
    EXPECT_FALSE(http->streamActive());
}

TEST(EtcdHttpClient, AnUnansweredCallEndsAtItsDeadline) {
    Peer silent({[](int fd) {
        readRequest(fd);
        std::this_thread::sleep_for(600ms);
    }});
    auto http = client({silent.port()});
    NoInterrupt never;
    HttpCall call = rangeCall();
    auto t0 = BootClock::now();
    auto r = http->run({&call}, in(300ms), never);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::Unavailable);
    EXPECT_LT(BootClock::now() - t0, 2s);
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
