// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/etcd/etcd_api.hpp"

#include "util/log.hpp"

namespace lockunit::etcd {

namespace {

bool isInvalidToken(const Error& e) {
    return e.message.find("invalid auth token") != std::string::npos ||
           e.message.find("auth token is not found") != std::string::npos;
}

Error grpcError(int code, const std::string& message, const std::string& endpoint,
                bool haveCredentials) {
    std::string text = "etcd at " + endpoint + ": " + message;
    switch (code) {
    case kGrpcNotFound:
        return makeError(Errc::Lost, text);
    case kGrpcInvalidArgument:
    case kGrpcPermissionDenied:
    case kGrpcUnauthenticated:
    case kGrpcUnimplemented:
        if (!haveCredentials && (message.find("user name is empty") != std::string::npos ||
                                 message.find("invalid auth token") != std::string::npos))
            text += " (the server requires authentication: set [etcd] user and password_file "
                    "or password_credential)";
        return makeError(Errc::Refused, text);
    default:
        return makeError(Errc::Unavailable, text);
    }
}

// Turns one gRPC outcome into the serialized answer or an Error.
Result<std::string> interpret(GrpcCall& grpc, bool haveCredentials) {
    if (grpc.transportError)
        return makeError(grpc.transportError->code,
                         "cannot reach etcd (" + grpc.transportError->message + ")");
    if (grpc.status != kGrpcOk)
        return grpcError(grpc.status, grpc.message.empty() ? "gRPC status " +
                                                                 std::to_string(grpc.status)
                                                           : grpc.message,
                         grpc.endpoint, haveCredentials);
    return std::move(grpc.response);
}

} // namespace

Result<void> EtcdApi::authenticate(TimePoint deadline, Interrupt& interrupt) {
    grpc_->setToken("");
    etcdpb::AuthenticateRequest request;
    request.set_name(credentials_->user);
    request.set_password(credentials_->password);
    GrpcCall grpc;
    grpc.method = method::kAuthenticate;
    grpc.request = request.SerializeAsString();
    if (log::verbose()) log::debug("etcd: authenticating as '" + credentials_->user + "'");
    auto ran = grpc_->run({&grpc}, deadline, interrupt);
    if (!ran) return ran.error();
    const std::string endpoint = grpc.endpoint;
    auto answer = interpret(grpc, true);
    if (!answer) {
        if (answer.error().message.find("authentication is not enabled") != std::string::npos) {
            authenticated_ = true; // nothing to do: the server accepts everyone
            return {};
        }
        return makeError(
            answer.error().code == Errc::Unavailable ? Errc::Unavailable : Errc::Refused,
            "etcd refused user '" + credentials_->user + "': " + answer.error().message);
    }
    etcdpb::AuthenticateResponse response;
    if (!response.ParseFromString(*answer) || response.token().empty())
        return makeError(Errc::Refused, "etcd at " + endpoint + " returned no auth token");
    grpc_->setToken(response.token());
    authenticated_ = true;
    return {};
}

Result<void> EtcdApi::call(const std::vector<ApiCall*>& calls, TimePoint deadline,
                           Interrupt& interrupt) {
    auto failAll = [&](const Error& e) -> Result<void> {
        for (ApiCall* c : calls)
            c->result = e;
        return e;
    };
    for (int round = 0; round < 2; ++round) {
        if (credentials_ && !authenticated_) {
            if (auto r = authenticate(deadline, interrupt); !r) return failAll(r.error());
        }
        std::vector<GrpcCall> grpc(calls.size());
        std::vector<GrpcCall*> pointers;
        for (size_t i = 0; i < calls.size(); ++i) {
            grpc[i].method = calls[i]->method;
            grpc[i].request = calls[i]->request;
            pointers.push_back(&grpc[i]);
        }
        if (log::verbose())
            for (ApiCall* c : calls)
                log::debug("etcd: " + c->method + " via " + grpc_->currentEndpoint());
        if (auto r = grpc_->run(pointers, deadline, interrupt); !r) return failAll(r.error());
        bool tokenExpired = false;
        for (size_t i = 0; i < calls.size(); ++i) {
            calls[i]->result = interpret(grpc[i], credentials_.has_value());
            if (!calls[i]->result && credentials_ && isInvalidToken(calls[i]->result.error()))
                tokenExpired = true;
        }
        if (!tokenExpired || round == 1) return {};
        authenticated_ = false; // simple tokens expire when unused; get a new one and resend
    }
    return {};
}

void EtcdApi::send(const char* method, const google::protobuf::MessageLite& request,
                   TimePoint deadline) {
    if (credentials_ && !authenticated_) return; // no token yet: nothing sensible to send
    if (log::verbose())
        log::debug(std::string("etcd: ") + method + " via " + grpc_->currentEndpoint() +
                   " (unanswered)");
    grpc_->send(method, request.SerializeAsString(), deadline);
}

} // namespace lockunit::etcd
