// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// etcd's v3 gRPC API over GrpcClient: the method paths, error mapping (gRPC status → Errc) and
// user/password authentication (Auth/Authenticate; the token goes with every call and is
// renewed when etcd calls it invalid). Messages are protobuf-lite (etcd_rpc.proto).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/etcd/etcd_rpc.pb.h"
#include "backends/etcd/grpc_client.hpp"

namespace lockunit::etcd {

namespace method {
inline constexpr const char* kRange = "/etcdserverpb.KV/Range";
inline constexpr const char* kTxn = "/etcdserverpb.KV/Txn";
inline constexpr const char* kWatch = "/etcdserverpb.Watch/Watch";
inline constexpr const char* kLeaseGrant = "/etcdserverpb.Lease/LeaseGrant";
inline constexpr const char* kLeaseRevoke = "/etcdserverpb.Lease/LeaseRevoke";
inline constexpr const char* kLeaseKeepAlive = "/etcdserverpb.Lease/LeaseKeepAlive";
inline constexpr const char* kLeaseTimeToLive = "/etcdserverpb.Lease/LeaseTimeToLive";
inline constexpr const char* kAuthenticate = "/etcdserverpb.Auth/Authenticate";
} // namespace method

struct Credentials {
    std::string user;
    std::string password;
};

// One API call: the method and request to send and, after EtcdApi::call(), the serialized
// answer (read it with parse<Response>()).
struct ApiCall {
    ApiCall(const char* method, const google::protobuf::MessageLite& request)
        : method(method), request(request.SerializeAsString()) {}

    std::string method;
    std::string request;
    Result<std::string> result = makeError(Errc::Unavailable, "not sent");
};

// An answer parsed, or Errc::Refused when it is not the message it should be.
template <class Response>
Result<Response> parse(const ApiCall& call) {
    if (!call.result) return call.result.error();
    Response response;
    if (!response.ParseFromString(*call.result))
        return makeError(Errc::Refused, "etcd sent an answer to " + call.method +
                                            " that is not a valid message");
    return response;
}

class EtcdApi {
public:
    EtcdApi(std::unique_ptr<GrpcClient> grpc, std::optional<Credentials> credentials)
        : grpc_(std::move(grpc)), credentials_(std::move(credentials)) {}

    // Sends the calls concurrently; each gets its own result. Returns an error when the whole
    // batch was abandoned (deadline passed, stop requested); the calls then carry it too.
    Result<void> call(const std::vector<ApiCall*>& calls, TimePoint deadline, Interrupt& interrupt);

    // One call, its answer parsed.
    template <class Response>
    Result<Response> call(const char* method, const google::protobuf::MessageLite& request,
                          TimePoint deadline, Interrupt& interrupt) {
        ApiCall c(method, request);
        [[maybe_unused]] auto r = call({&c}, deadline, interrupt);
        return parse<Response>(c);
    }

    // Sends a call whose answer does not matter (see GrpcClient::send).
    void send(const char* method, const google::protobuf::MessageLite& request,
              TimePoint deadline);

    GrpcClient& grpc() { return *grpc_; }

private:
    Result<void> authenticate(TimePoint deadline, Interrupt& interrupt);

    std::unique_ptr<GrpcClient> grpc_;
    std::optional<Credentials> credentials_;
    bool authenticated_ = false;
};

} // namespace lockunit::etcd
