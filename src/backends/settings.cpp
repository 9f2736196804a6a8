// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/settings.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.hpp"

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

FileVerdict judgeFileMode(KeyType type, unsigned mode, unsigned owner, unsigned self) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", mode & 07777);
    const std::string is = std::string(" (mode ") + octal + ")";
    const bool othersWrite = mode & (S_IWGRP | S_IWOTH);
    FileVerdict v;
    if (type != KeyType::SecretFile) {
        if (othersWrite)
            v.refusal = "can be changed by users other than its owner" + is + ": make it 0644";
        return v;
    }
    const std::string fix = ": make it 0600 (or 0640 and owned by root, to share it with a group)";
    if (othersWrite)
        v.refusal = "can be changed by users other than its owner" + is + fix;
    else if (mode & S_IROTH)
        v.refusal = "can be read by every user" + is + fix;
    else if ((mode & S_IRGRP) && owner == self)
        v.refusal = "can be read by its group" + is + ": make it 0600, as it is ours";
    else if (mode & S_IRGRP)
        v.warning = "can be read by its group" + is + "; used, as its owner (uid " +
                    std::to_string(owner) + ") shares it with the group on purpose";
    return v;
}

Result<std::string> checkFilePermissions(const std::string& path, KeyType type) {
    const char* creds = std::getenv("CREDENTIALS_DIRECTORY");
    if (creds && *creds && path.rfind(std::string(creds) + "/", 0) == 0) return std::string();
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0)
        return makeError(Errc::Config, errnoMessage("cannot read '" + path + "'"));
    auto v = judgeFileMode(type, st.st_mode, st.st_uid, ::geteuid());
    if (!v.refusal.empty()) return makeError(Errc::Config, "'" + path + "' " + v.refusal);
    return v.warning.empty() ? v.warning : "'" + path + "' " + v.warning;
}

namespace {

Result<std::string> readFirstLine(const std::string& path, const std::string& what) {
    auto text = readFile(path);
    if (!text) return makeError(Errc::Config, "cannot read " + what + " '" + path + "'");
    std::string line = text->substr(0, text->find('\n'));
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

Error settingError(const BackendSettings& s, const std::string& table, const std::string& key,
                   const std::string& what) {
    std::string at = s.origin(key);
    return makeError(Errc::Config, (at.empty() ? "" : at + ": ") + table + "." + key + ": " + what);
}

Result<Duration> requestTimeout(const BackendSettings& s, const std::string& table,
                                Duration fallback, Duration renew) {
    Duration timeout = s.duration("request_timeout", fallback);
    if (timeout <= Duration::zero())
        return settingError(s, table, "request_timeout", "must be more than 0");
    if (timeout >= renew)
        return settingError(s, table, "request_timeout",
                            formatDuration(timeout) + " must stay under renew " +
                                formatDuration(renew) +
                                ", or a hung request could delay the next renewal past it");
    return timeout;
}

} // namespace lockunit
