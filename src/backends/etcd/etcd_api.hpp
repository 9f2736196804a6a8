// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// etcd's v3 API as JSON over HttpClient: error mapping (gRPC status → Errc) and user/password
// authentication (/v3/auth/authenticate; the token goes into the Authorization header and is
// renewed when etcd calls it invalid).

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backends/etcd/http_client.hpp"

namespace lockunit::etcd {

using Json = nlohmann::json;

struct Credentials {
    std::string user;
    std::string password;
};

// One API call: what to send and, after EtcdApi::call(), what came back. For etcd's streaming
// endpoints (lease keepalive) the result is the first message's "result" object.
struct ApiCall {
    std::string path;
    Json body;
    Result<Json> result = makeError(Errc::Unavailable, "not sent");
};

class EtcdApi {
public:
    EtcdApi(std::unique_ptr<HttpClient> http, std::optional<Credentials> credentials)
        : http_(std::move(http)), credentials_(std::move(credentials)) {}

    // Sends the calls concurrently; each gets its own result. Returns an error when the whole
    // batch was abandoned (deadline passed, stop requested); the calls then carry it too.
    Result<void> call(const std::vector<ApiCall*>& calls, TimePoint deadline, Interrupt& interrupt);
    Result<Json> call(const std::string& path, Json body, TimePoint deadline, Interrupt& interrupt);

    // Sends a call whose answer does not matter (see HttpClient::send).
    void send(const std::string& path, const Json& body, TimePoint deadline);

    HttpClient& http() { return *http_; }

private:
    Result<void> authenticate(TimePoint deadline, Interrupt& interrupt);

    std::unique_ptr<HttpClient> http_;
    std::optional<Credentials> credentials_;
    bool authenticated_ = false;
};

// Safe readers for etcd's JSON: int64 fields arrive as strings, default values are omitted.
long long jsonInt(const Json& object, const char* key);
std::string jsonString(const Json& object, const char* key);
bool jsonBool(const Json& object, const char* key);
const Json& jsonMember(const Json& object, const char* key); // null if missing
// A base64 field ("key", "value") decoded; empty if missing or malformed.
std::string jsonBytes(const Json& object, const char* key);

} // namespace lockunit::etcd
