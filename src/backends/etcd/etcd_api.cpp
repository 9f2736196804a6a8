// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/etcd/etcd_api.hpp"

#include "util/log.hpp"

namespace lockunit::etcd {

namespace {

const Json kNull;

// gRPC status codes that etcd's gateway passes on in {"code": N}.
enum GrpcCode {
    kInvalidArgument = 3,
    kDeadlineExceeded = 4,
    kNotFound = 5,
    kPermissionDenied = 7,
    kFailedPrecondition = 9,
    kUnimplemented = 12,
    kUnavailable = 14,
    kUnauthenticated = 16,
};

bool isInvalidToken(const Error& e) {
    return e.message.find("invalid auth token") != std::string::npos ||
           e.message.find("auth token is not found") != std::string::npos;
}

Error grpcError(long long code, const std::string& message, const std::string& endpoint,
                bool haveCredentials) {
    std::string text = "etcd at " + endpoint + ": " + message;
    switch (code) {
    case kNotFound:
        return makeError(Errc::Lost, text);
    case kInvalidArgument:
    case kPermissionDenied:
    case kUnauthenticated:
    case kUnimplemented:
        if (!haveCredentials && (message.find("user name is empty") != std::string::npos ||
                                 message.find("invalid auth token") != std::string::npos))
            text += " (the server requires authentication: set [etcd] user and password_file "
                    "or password_credential)";
        return makeError(Errc::Refused, text);
    default:
        return makeError(Errc::Unavailable, text);
    }
}

// Turns one HTTP outcome into the answer's JSON or an Error.
Result<Json> interpret(const HttpCall& http, bool haveCredentials) {
    if (http.transportError)
        return makeError(http.transportError->code,
                         "cannot reach etcd (" + http.transportError->message + ")");
    // A streaming endpoint answers one JSON object per line; we send one request, so the
    // first line is the answer.
    std::string_view text = http.response;
    if (auto nl = text.find('\n'); nl != std::string_view::npos) text = text.substr(0, nl);
    Json answer = Json::parse(text, nullptr, false);
    if (answer.is_discarded() || !answer.is_object()) {
        std::string what = http.status == 200 ? "an answer that is not JSON"
                                              : "HTTP " + std::to_string(http.status);
        return makeError(Errc::Refused, "etcd at " + http.endpoint + " sent " + what +
                                            "; is this an etcd 3.4+ client URL?");
    }
    if (http.status != 200) {
        long long code = jsonInt(answer, "code");
        std::string message = jsonString(answer, "message");
        if (message.empty()) message = jsonString(answer, "error");
        if (message.empty()) message = "HTTP " + std::to_string(http.status);
        return grpcError(code, message, http.endpoint, haveCredentials);
    }
    if (const Json& error = jsonMember(answer, "error"); error.is_object()) {
        long long code = jsonInt(error, "grpc_code");
        return grpcError(code, jsonString(error, "message"), http.endpoint, haveCredentials);
    }
    if (const Json& result = jsonMember(answer, "result"); result.is_object()) return result;
    return answer;
}

} // namespace

long long jsonInt(const Json& object, const char* key) {
    const Json& v = jsonMember(object, key);
    if (v.is_number_integer()) return v.get<long long>();
    if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        char* end = nullptr;
        long long n = std::strtoll(s.c_str(), &end, 10);
        return end && *end == '\0' ? n : 0;
    }
    return 0;
}

std::string jsonString(const Json& object, const char* key) {
    const Json& v = jsonMember(object, key);
    return v.is_string() ? v.get<std::string>() : std::string();
}

bool jsonBool(const Json& object, const char* key) {
    const Json& v = jsonMember(object, key);
    return v.is_boolean() && v.get<bool>();
}

const Json& jsonMember(const Json& object, const char* key) {
    if (!object.is_object()) return kNull;
    auto it = object.find(key);
    return it == object.end() ? kNull : *it;
}

std::string jsonBytes(const Json& object, const char* key) {
    auto decoded = base64Decode(jsonString(object, key));
    return decoded ? *decoded : std::string();
}

Result<void> EtcdApi::authenticate(TimePoint deadline, Interrupt& interrupt) {
    http_->setAuthorization("");
    HttpCall http;
    http.path = "/v3/auth/authenticate";
    http.body = Json{{"name", credentials_->user}, {"password", credentials_->password}}.dump(
        -1, ' ', false, Json::error_handler_t::replace);
    if (log::verbose()) log::debug("etcd: authenticating as '" + credentials_->user + "'");
    auto ran = http_->run({&http}, deadline, interrupt);
    if (!ran) return ran.error();
    auto answer = interpret(http, true);
    if (!answer) {
        if (answer.error().message.find("authentication is not enabled") != std::string::npos) {
            authenticated_ = true; // nothing to do: the server accepts everyone
            return {};
        }
        return makeError(
            answer.error().code == Errc::Unavailable ? Errc::Unavailable : Errc::Refused,
            "etcd refused user '" + credentials_->user + "': " + answer.error().message);
    }
    std::string token = jsonString(*answer, "token");
    if (token.empty())
        return makeError(Errc::Refused, "etcd at " + http.endpoint + " returned no auth token");
    http_->setAuthorization(token);
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
        std::vector<HttpCall> http(calls.size());
        std::vector<HttpCall*> pointers;
        for (size_t i = 0; i < calls.size(); ++i) {
            http[i].path = calls[i]->path;
            http[i].body = calls[i]->body.dump(-1, ' ', false, Json::error_handler_t::replace);
            http[i].firstLine = calls[i]->path == "/v3/lease/keepalive";
            pointers.push_back(&http[i]);
        }
        if (log::verbose())
            for (ApiCall* c : calls)
                log::debug("etcd: " + c->path + " via " + http_->currentEndpoint());
        if (auto r = http_->run(pointers, deadline, interrupt); !r) return failAll(r.error());
        bool tokenExpired = false;
        for (size_t i = 0; i < calls.size(); ++i) {
            calls[i]->result = interpret(http[i], credentials_.has_value());
            if (!calls[i]->result && credentials_ && isInvalidToken(calls[i]->result.error()))
                tokenExpired = true;
        }
        if (!tokenExpired || round == 1) return {};
        authenticated_ = false; // simple tokens expire when unused; get a new one and resend
    }
    return {};
}

void EtcdApi::send(const std::string& path, const Json& body, TimePoint deadline) {
    if (credentials_ && !authenticated_) return; // no token yet: nothing sensible to send
    if (log::verbose())
        log::debug("etcd: " + path + " via " + http_->currentEndpoint() + " (unanswered)");
    http_->send(path, body.dump(-1, ' ', false, Json::error_handler_t::replace), deadline);
}

Result<Json> EtcdApi::call(const std::string& path, Json body, TimePoint deadline,
                           Interrupt& interrupt) {
    ApiCall c{path, std::move(body)};
    [[maybe_unused]] auto r = call({&c}, deadline, interrupt);
    return c.result;
}

} // namespace lockunit::etcd
