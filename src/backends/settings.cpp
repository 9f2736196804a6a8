// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/settings.hpp"

#include <cstdlib>
#include <fstream>

namespace lockunit {

void BackendSettings::set(const std::string& key, Value value, std::string origin) {
    values_[key] = Entry{std::move(value), std::move(origin)};
}

std::optional<std::string> BackendSettings::string(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    if (auto s = std::get_if<std::string>(&it->second.value)) return *s;
    return std::nullopt;
}

Duration BackendSettings::duration(const std::string& key, Duration fallback) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    if (auto d = std::get_if<Duration>(&it->second.value)) return *d;
    return fallback;
}

long long BackendSettings::integer(const std::string& key, long long fallback) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    if (auto i = std::get_if<long long>(&it->second.value)) return *i;
    return fallback;
}

bool BackendSettings::boolean(const std::string& key, bool fallback) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    if (auto b = std::get_if<bool>(&it->second.value)) return *b;
    return fallback;
}

std::string BackendSettings::origin(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? std::string() : it->second.origin;
}

std::vector<std::string> BackendSettings::keys() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : values_)
        out.push_back(k);
    return out;
}

std::string BackendSettings::format(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) return {};
    const Value& v = it->second.value;
    if (auto s = std::get_if<std::string>(&v)) return "\"" + *s + "\"";
    if (auto d = std::get_if<Duration>(&v)) return "\"" + formatDuration(*d) + "\"";
    if (auto i = std::get_if<long long>(&v)) return std::to_string(*i);
    return std::get<bool>(v) ? "true" : "false";
}

namespace {

Result<std::string> readFirstLine(const std::string& path, const std::string& what) {
    std::ifstream in(path);
    if (!in) return makeError(Errc::Config, "cannot read " + what + " '" + path + "'");
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n'))
        line.pop_back();
    return line;
}

} // namespace

Result<std::optional<std::string>> loadPassword(const BackendSettings& settings) {
    if (auto file = settings.string("password_file")) {
        auto secret = readFirstLine(*file, "password_file");
        if (!secret) return secret.error();
        return std::optional<std::string>(*secret);
    }
    if (auto name = settings.string("password_credential")) {
        const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
        if (!dir)
            return makeError(
                Errc::Config,
                "password_credential '" + *name +
                    "' is set but $CREDENTIALS_DIRECTORY is not (use LoadCredential=)");
        auto secret = readFirstLine(std::string(dir) + "/" + *name, "credential");
        if (!secret) return secret.error();
        return std::optional<std::string>(*secret);
    }
    return std::optional<std::string>();
}

} // namespace lockunit
