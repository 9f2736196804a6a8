// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "util/duration.hpp"
#include "util/result.hpp"

namespace lockunit {

// The type of one key in a backend's config table ([redis], [etcd], …). SecretFile and
// TrustFile are paths, whose permissions the config checks (checkFilePermissions()).
enum class KeyType {
    String,
    Duration,
    Integer,
    Boolean,
    SecretFile, // only its owner may read it: a password, a private key
    TrustFile,  // only its owner may change it: the CAs and certificate we present or trust
};

// One key a backend accepts in its table; config validation, `check` and the man-page test all
// read these, so a key exists exactly when it is declared here.
struct KeySpec {
    std::string_view name;
    KeyType type;
    std::string_view defaultText; // as documented, e.g. "2s"
    std::string_view help;
};

// The validated values of one backend table. Keys that were not set fall back to the default
// passed by the reader.
class BackendSettings {
public:
    using Value = std::variant<std::string, Duration, long long, bool>;

    void set(const std::string& key, Value value, std::string origin);
    bool has(const std::string& key) const { return values_.count(key) != 0; }
    std::optional<std::string> string(const std::string& key) const;
    Duration duration(const std::string& key, Duration fallback) const;
    long long integer(const std::string& key, long long fallback) const;
    bool boolean(const std::string& key, bool fallback) const;
    // Where a key was set ("reports.toml:7:1"), for error messages.
    std::string origin(const std::string& key) const;
    std::vector<std::string> keys() const;
    std::string format(const std::string& key) const;

private:
    struct Entry {
        Value value;
        std::string origin;
    };
    std::map<std::string, Entry> values_;
};

// The keys every network backend shares, so that they read the same everywhere.
inline constexpr KeySpec kPasswordFileKey{"password_file", KeyType::SecretFile, "",
                                          "file whose first line is the password"};
inline constexpr KeySpec kPasswordCredentialKey{
    "password_credential", KeyType::String, "",
    "name of a systemd credential (LoadCredential=) holding the password"};

// The verdict on a file's permissions (docs/security.md): `refusal` if anyone but its owner
// could change a SecretFile or TrustFile, or anyone outside its owner and group could read a
// SecretFile, or its group could read a SecretFile of lockunit's own user (as ssh refuses a
// key); `warning` if its group could read a SecretFile of another owner (root's file shared
// with a service user through a group, which libpq accepts for a key). Pure, for the tests.
struct FileVerdict {
    std::string refusal, warning; // empty: none
};
FileVerdict judgeFileMode(KeyType type, unsigned mode, unsigned owner, unsigned self);

// stat()s the file and judges it; a file under $CREDENTIALS_DIRECTORY is trusted as systemd
// made it. Errors: Errc::Config (cannot stat, or the refusal); the value is the warning.
Result<std::string> checkFilePermissions(const std::string& path, KeyType type);

// Reads the secret named by `password_file` or `password_credential` (a file under
// $CREDENTIALS_DIRECTORY). No key set: nullopt. The secret never leaves the backend.
Result<std::optional<std::string>> loadPassword(const BackendSettings& settings);

// A config error about one key of a backend's table: "FILE:LINE:COL: TABLE.KEY: what".
Error settingError(const BackendSettings& s, const std::string& table, const std::string& key,
                   const std::string& what);

// The request_timeout key of a network backend's table (`fallback` if unset): more than 0 and
// under `renew`, or a hung request could delay the next renewal past it.
Result<Duration> requestTimeout(const BackendSettings& s, const std::string& table,
                                Duration fallback, Duration renew);

} // namespace lockunit
