// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// A small gRPC client for etcd's v3 API: HTTP/2 by nghttp2 (Debian's libnghttp2, no other
// dependencies) on non-blocking sockets of its own; the messages are serialized by the caller
// (protobuf-lite, etcd_rpc.proto). Every wait is one Interrupt::wait() on its sockets,
// every call has a deadline, and calls fail over between the configured endpoints. The
// calls share one HTTP/2 connection to the current endpoint, kept open between calls. One
// long-lived stream (a watch) runs beside them on a connection of its own, so that its socket,
// together with an eventfd for messages already read, is a wake fd that only the stream makes
// readable. Host names are looked up with io::HostLookup, never blocking. etcds:// speaks TLS
// (ALPN "h2") through lockunit-etcd-tls.so (tls.hpp), loaded only then.

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

struct GrpcOptions {
    EtcdUrl url;
    std::string caFile, certFile, keyFile; // TLS (etcds://); empty = system CAs / no client cert
    Duration connectTimeout = std::chrono::seconds(1);
};

// One call: a method and one request message; after GrpcClient::run(), its outcome. A call
// on a streaming method (etcd's lease keepalive) sends its one message and half-closes; the
// first message back is the answer.
struct GrpcCall {
    std::string method;  // "/etcdserverpb.KV/Range"
    std::string request; // the serialized request message

    std::optional<Error> transportError; // set when no gRPC answer came
    int status = -1;                     // grpc-status: 0 = OK
    std::string message;                 // grpc-message (decoded), when status != 0
    std::string response;                // status 0: the serialized response message
    std::string endpoint;                // the endpoint that answered (or failed last)
    std::string failures;                // "host:port: why; " for every endpoint that failed
};

// gRPC status codes that matter to lockunit.
enum GrpcStatus {
    kGrpcOk = 0,
    kGrpcInvalidArgument = 3,
    kGrpcNotFound = 5,
    kGrpcPermissionDenied = 7,
    kGrpcUnimplemented = 12,
    kGrpcUnavailable = 14,
    kGrpcUnauthenticated = 16,
};

class GrpcClient {
public:
    static Result<std::unique_ptr<GrpcClient>> create(GrpcOptions options);
    ~GrpcClient();
    GrpcClient(const GrpcClient&) = delete;
    GrpcClient& operator=(const GrpcClient&) = delete;

    // The auth token sent with every later call and stream ("" = none).
    void setToken(std::string token) { token_ = std::move(token); }

    // Runs the calls concurrently on the current endpoint. A call that fails to connect, loses
    // its connection, is refused by the server (RST_STREAM, GOAWAY), answered UNAVAILABLE or
    // gets no answer within its share of the time (the time left divided among the endpoints
    // it has not tried) is retried on the next endpoint, each endpoint at most once per call.
    // Returns when every call has an outcome (in the GrpcCall), or with Errc::Unavailable when
    // the deadline passes / Errc::Interrupted on a stop request; then every unfinished call is
    // abandoned (its stream cancelled).
    Result<void> run(const std::vector<GrpcCall*>& calls, TimePoint deadline, Interrupt& interrupt);

    // Sends a call whose answer nobody waits for (read and dropped during later calls).
    void send(const std::string& method, const std::string& request, TimePoint deadline);

    // A streaming call on its own connection, each message handed to onMessage (called from
    // inside pump() or run(); it must not call back into the client except wake()). It ends
    // when the server ends it or stopStream() is called; its end makes the wake fd readable.
    void startStream(const std::string& method, const std::string& request,
                     std::function<void(std::string_view)> onMessage);
    void stopStream();
    bool streamActive() const { return stream_ != nullptr; }

    // Readable when the stream's socket has data or wake() was called.
    int wakeFd() const { return epoll_.get(); }
    // Makes wakeFd() readable until the next pump().
    void wake();
    // Drives the connections without blocking and resets the wake event.
    void pump();

    std::string currentEndpoint() const;
    size_t endpointCount() const { return options_.url.endpoints.size(); }

    struct Rpc;
    struct Connection;

private:
    enum class Kind { Call, Stream, Background };

    explicit GrpcClient(GrpcOptions options);
    Result<void> init();
    Rpc* startRpc(Kind kind, GrpcCall* call, const std::string& method, const std::string& request,
                  size_t endpoint, TimePoint deadline, size_t attempts);
    Connection* connectionFor(size_t endpoint, bool stream, TimePoint connectBy);
    Connection* openConnection(size_t endpoint, bool stream, TimePoint connectBy);
    void submit(Rpc* rpc);
    // Drops a call's RPC and starts its next attempt on `endpoint`.
    Rpc* restart(Rpc* rpc, size_t endpoint, size_t attempts);
    // One attempt of a call failed: retries it on the next endpoint, if any is left and time
    // remains; otherwise the call gets its outcome (the failures).
    void failAttempt(Rpc* rpc, const std::string& why);
    // The attempt goes again on a fresh connection to the same member, once, within the same
    // share of the time: the server refused its stream before acting on it (GOAWAY), or a kept
    // connection turned out closed before any answer.
    void retryOnFreshConnection(Rpc* rpc);
    // Drops an RPC, cancelling its HTTP/2 stream if it is still open.
    void removeRpc(Rpc* rpc);
    // Acts on what the HTTP/2 callbacks recorded: answered, failed and ended RPCs.
    void settle();
    void finish(Rpc* rpc);
    Result<void> driveAll(int timeoutMs, Interrupt* interrupt);
    void step(Connection& c, short revents);
    void advanceConnect(Connection& c, short revents);
    void startSession(Connection& c);
    void flush(Connection& c);
    void readAvailable(Connection& c);
    std::string endedWhy(const Connection& c, const std::string& what) const;
    void connectionFailed(Connection& c, const std::string& why);
    void close(Connection& c);
    void sweep(TimePoint now);
    void purge();
    void updateStreamPoll();
    void unpollStream();

    GrpcOptions options_;
    std::unique_ptr<TlsContext> tls_; // etcds:// only
    size_t current_ = 0;
    std::string token_;
    std::vector<std::unique_ptr<Rpc>> rpcs_;
    std::vector<std::unique_ptr<Connection>> connections_;
    Rpc* stream_ = nullptr;
    std::function<void(std::string_view)> onMessage_;
    int streamPolledFd_ = -1;
    uint32_t streamPolledEvents_ = 0;
    UniqueFd epoll_, event_;
};

// grpc-message is percent-encoded (gRPC over HTTP/2): "%20" → " ".
std::string decodeGrpcMessage(std::string_view text);

} // namespace lockunit::etcd
