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

// One backend as the registry knows it.
struct BackendInfo {
    std::vector<std::string_view> schemes; // URL schemes it serves: {"redis", "unix"}
    std::string_view table;                // its config table: "redis" → [redis]
    std::string_view summary;              // one line for --help and errors
    std::vector<KeySpec> keys;             // the keys its table accepts
    std::function<Result<std::unique_ptr<LockBackend>>(const BackendParams&)> create;
};

// The descriptor of a backend module (util/module.hpp): the backends it serves. Each backend
// folder defines one, LOCKUNIT_MODULE(NAME, BackendModule); the file backend's is built in.
struct BackendModule {
    std::vector<BackendInfo> backends;
};

// A backend built as a module (a shared object loaded on first use), as meson lists it: the
// module's name and the URL schemes and config tables it serves.
struct ModuleInfo {
    std::string name;
    std::vector<std::string> schemes;
    std::vector<std::string> tables;
};

namespace backends {

// The backend for a URL scheme or a config table, loading its module if needed; nullptr if no
// backend has it, an error if its module cannot be loaded.
Result<const BackendInfo*> byScheme(std::string_view scheme);
Result<const BackendInfo*> byTable(std::string_view table);
// Every backend, all modules loaded.
std::vector<const BackendInfo*> all();
// The scheme of a backend URL, which names its backend: "redis" for "redis://host:6379/0". A
// text without "://" is returned whole (the config's check has refused it by the time a running
// lockunit asks).
std::string urlScheme(std::string_view url);
// "etcd, etcds, file, postgres, …": every scheme, built in or in a module, sorted. Loads nothing.
std::string schemeList();
std::vector<std::string> schemes();
std::vector<std::string> tables();
const std::vector<ModuleInfo>& modules();
Result<void> load(const ModuleInfo& module);
// Splits "scheme://rest" and creates the backend for it.
Result<std::unique_ptr<LockBackend>> create(BackendParams params);

} // namespace backends
} // namespace lockunit
