// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// A small HTTP/1.1 client for etcd's JSON gateway, on non-blocking sockets of its own and
// http-parser for the answers: every wait is one poll() that also watches the Interrupt's fd,
// every call has a deadline, and calls fail over between the configured endpoints. Idle
// connections are kept for the next calls (a few per endpoint); concurrent calls each get one.
// One long-lived streaming request (a watch) can run beside the calls on a connection of its
// own; its socket, together with an eventfd for events already read, makes the wake fd that
// the supervisor polls while it waits. Host names are looked up with io::HostLookup, never
// blocking. etcds:// speaks TLS through lockunit-etcd-tls.so (tls.hpp), loaded only then.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.hpp"
#include "backends/etcd/etcd_url.hpp"
#include "backends/etcd/tls.hpp"
#include "util/fd.hpp"

namespace lockunit::etcd {

struct HttpOptions {
    EtcdUrl url;
    std::string caFile, certFile, keyFile; // TLS (etcds://); empty = system CAs / no client cert
    Duration connectTimeout = std::chrono::seconds(1);
};

// One POST and, after HttpClient::run(), its outcome.
struct HttpCall {
    std::string path; // "/v3/kv/range"
    std::string body; // JSON
    // A streaming endpoint whose first line is the whole answer (etcd's lease keepalive):
    // the call completes with it.
    bool firstLine = false;

    std::optional<Error> transportError; // set when no HTTP answer came
    long status = 0;
    std::string response;
    std::string endpoint; // the endpoint that answered (or failed last), "host:port"
    std::string failures; // "host:port: why; " for every endpoint that failed this call
};

class HttpClient {
public:
    static Result<std::unique_ptr<HttpClient>> create(HttpOptions options);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // The token sent in the Authorization header ("" = none).
    void setAuthorization(std::string token) { authorization_ = std::move(token); }

    // Runs the calls concurrently on the current endpoint. A call that fails to connect, loses
    // its connection, is answered 503 or gets no answer within its share of the time (the
    // time left divided among the endpoints it has not tried) is retried on the next
    // endpoint, each endpoint at most once per call. Returns when every call has an outcome (in the
    // HttpCall), or with Errc::Unavailable when the deadline passes / Errc::Interrupted on a stop
    // request; then every unfinished call is abandoned.
    Result<void> run(const std::vector<HttpCall*>& calls, TimePoint deadline, Interrupt& interrupt);

    // Sends a request whose answer nobody waits for (it is read and dropped during later
    // calls); bounded by the deadline like any other.
    void send(const std::string& path, const std::string& body, TimePoint deadline);

    // A streaming POST on its own connection, fed line by line to onLine (called from inside
    // run()/pump(); it must not call back into the client except wake()). It ends when the
    // server ends it or stopStream() is called; its end makes the wake fd readable.
    Result<void> startStream(const std::string& path, const std::string& body,
                             std::function<void(std::string_view)> onLine);
    void stopStream();
    bool streamActive() const { return stream_ != nullptr; }

    // Readable when the stream's socket has data or wake() was called.
    int wakeFd() const { return epoll_.get(); }
    // Makes wakeFd() readable until the next pump().
    void wake();
    // Drives the transfers without blocking and resets the wake event.
    void pump();

    std::string currentEndpoint() const;
    size_t endpointCount() const { return options_.url.endpoints.size(); }

private:
    struct Transfer;
    struct Connection;
    enum class Kind { Call, Stream, Background };

    explicit HttpClient(HttpOptions options);
    Result<void> init();
    Result<Transfer*> startTransfer(Kind kind, HttpCall* call, const std::string& path,
                                    const std::string& body, size_t endpoint, TimePoint deadline,
                                    size_t attempts);
    Connection* openConnection(size_t endpoint, bool stream, TimePoint connectBy);
    void assign(Transfer* t, Connection* c);
    // One attempt of a call failed: retries it on the next endpoint, if any is left and time
    // remains; otherwise the call gets its outcome (the failures).
    void failAttempt(Transfer* t, const std::string& why);
    void removeTransfer(Transfer* t);
    // A background request or the stream is over, answered or not: drops it; the stream's end
    // wakes the waiter (streamEnded).
    void endTransfer(Transfer* t);
    // Polls every connection (and the Interrupt, if given) for up to timeoutMs and moves each
    // forward. Errc::Interrupted on a stop request.
    Result<void> driveAll(int timeoutMs, Interrupt* interrupt);
    void step(Connection& c, short revents);
    void advanceConnect(Connection& c, short revents);
    void flush(Connection& c);
    void readAvailable(Connection& c);
    void onBody(Connection& c, std::string_view data);
    void completed(Connection& c);
    void connectionFailed(Connection& c, const std::string& why);
    void close(Connection& c);
    // Gives up on connects and background answers that took too long.
    void sweep(TimePoint now);
    void purge();
    void streamEnded();
    void updateStreamPoll();
    void unpollStream();

    HttpOptions options_;
    std::unique_ptr<TlsContext> tls_; // etcds:// only
    size_t current_ = 0;
    std::string authorization_;
    std::vector<std::unique_ptr<Transfer>> transfers_;
    std::vector<std::unique_ptr<Connection>> connections_;
    Transfer* stream_ = nullptr;
    std::function<void(std::string_view)> onLine_;
    int streamPolledFd_ = -1;
    uint32_t streamPolledEvents_ = 0;
    UniqueFd epoll_, event_;
};

} // namespace lockunit::etcd
