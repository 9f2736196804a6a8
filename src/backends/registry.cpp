// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/registry.hpp"

#include <algorithm>

namespace lockunit::backends {
namespace {

std::vector<BackendInfo>& table() {
    static std::vector<BackendInfo> infos; // constructed on first use: safe from static init order
    return infos;
}

} // namespace

bool add(BackendInfo info) {
    table().push_back(std::move(info));
    return true;
}

const BackendInfo* byScheme(std::string_view scheme) {
    for (const auto& info : table())
        for (auto s : info.schemes)
            if (s == scheme) return &info;
    return nullptr;
}

const BackendInfo* byTable(std::string_view name) {
    for (const auto& info : table())
        if (info.table == name) return &info;
    return nullptr;
}

std::vector<const BackendInfo*> all() {
    std::vector<const BackendInfo*> out;
    for (const auto& info : table()) out.push_back(&info);
    std::sort(out.begin(), out.end(),
              [](auto* a, auto* b) { return a->schemes.front() < b->schemes.front(); });
    return out;
}

std::vector<std::string> schemes() {
    std::vector<std::string> out;
    for (const auto& info : table())
        for (auto s : info.schemes) out.emplace_back(s);
    std::sort(out.begin(), out.end());
    return out;
}

std::string schemeList() {
    std::string out;
    for (const auto& s : schemes()) out += (out.empty() ? "" : ", ") + s;
    return out;
}

Result<std::unique_ptr<LockBackend>> create(BackendParams params) {
    auto sep = params.url.find("://");
    if (sep == std::string::npos)
        return makeError(Errc::Config, "backend URL '" + params.url +
                                           "' has no scheme (expected SCHEME://…; available: " +
                                           schemeList() + ")");
    params.scheme = params.url.substr(0, sep);
    params.rest = params.url.substr(sep + 3);
    const BackendInfo* info = byScheme(params.scheme);
    if (!info)
        return makeError(Errc::Config, "unknown backend '" + params.scheme +
                                           "' (available: " + schemeList() + ")");
    return info->create(params);
}

} // namespace lockunit::backends
