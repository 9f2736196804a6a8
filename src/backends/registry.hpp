// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.hpp"
#include "backends/settings.hpp"

namespace lockunit {

// One backend as the registry knows it. Each backend folder registers itself with
// LOCKUNIT_REGISTER_BACKEND; the library is linked whole so that no registration is dropped.
struct BackendInfo {
    std::vector<std::string_view> schemes; // URL schemes it serves: {"redis", "unix"}
    std::string_view table;                // its config table: "redis" → [redis]
    std::string_view summary;              // one line for --help and errors
    std::vector<KeySpec> keys;             // the keys its table accepts
    std::function<Result<std::unique_ptr<LockBackend>>(const BackendParams&)> create;
};

namespace backends {

bool add(BackendInfo info);
const BackendInfo* byScheme(std::string_view scheme);
const BackendInfo* byTable(std::string_view table);
std::vector<const BackendInfo*> all();
// "etcd, file, postgres, redis, …", every registered scheme, sorted.
std::string schemeList();
std::vector<std::string> schemes();

// Splits "scheme://rest" and creates the backend for it.
Result<std::unique_ptr<LockBackend>> create(BackendParams params);

} // namespace backends
} // namespace lockunit

#define LOCKUNIT_CONCAT_(a, b) a##b
#define LOCKUNIT_CONCAT(a, b) LOCKUNIT_CONCAT_(a, b)
#define LOCKUNIT_REGISTER_BACKEND(...)                                                            \
    [[maybe_unused]] static const bool LOCKUNIT_CONCAT(lockunitRegistered_, __LINE__) =            \
        ::lockunit::backends::add(__VA_ARGS__)
