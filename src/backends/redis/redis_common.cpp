// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/redis/redis_common.hpp"

#include <algorithm>
#include <random>

#include "backends/redis/sha1.hpp"

namespace lockunit::redis {

std::vector<KeySpec> keySpecs() {
    return {kConnectTimeoutKey, kCommandTimeoutKey, kKeyPrefixKey,
            kMinReplicasKey,    kPasswordFileKey,   kPasswordCredentialKey};
}

Result<Timeouts> readTimeouts(const BackendSettings& settings, Duration renew) {
    Timeouts t;
    t.command = settings.duration("command_timeout",
                                  std::min<Duration>(std::chrono::seconds(2), renew / 2));
    t.connect = settings.duration("connect_timeout",
                                  std::min<Duration>({Duration(1000), renew / 2, t.command}));
    for (const auto& [key, value] :
         {std::pair{"command_timeout", t.command}, std::pair{"connect_timeout", t.connect}}) {
        if (value <= Duration::zero() || value >= renew)
            return makeError(Errc::Config,
                             settings.origin(key) + (settings.origin(key).empty() ? "" : ": ") +
                                 key + " " + formatDuration(value) +
                                 " must be more than 0 and under renew (" + formatDuration(renew) +
                                 "), or a hung server could hold up a renewal past the lease");
    }
    return t;
}

std::string recordWithoutToken(const HolderRecord& self) {
    // Only the token line goes: the lines after it (the stop budget) stay.
    std::string text = self.serialize();
    auto pos = text.rfind("\ntoken=");
    if (pos != std::string::npos) text.erase(pos + 1, text.find('\n', pos + 1) - pos);
    return text;
}

Result<void> refuseEviction(const std::string& info, const std::string& server,
                            const std::string& key) {
    auto field = [&](const std::string& name) {
        auto at = info.find("\n" + name + ":");
        if (at == std::string::npos) return std::string();
        at += name.size() + 2;
        return info.substr(at, info.find_first_of("\r\n", at) - at);
    };
    const std::string maxmemory = field("maxmemory"), policy = field("maxmemory_policy");
    if (maxmemory.empty() || maxmemory == "0" || policy == "noeviction" || policy.empty())
        return {};
    return makeError(Errc::Refused, "redis " + server + " may evict the lock key '" + key +
                                        "' while its holder runs (maxmemory " + maxmemory +
                                        " bytes, maxmemory-policy " + policy +
                                        "): set maxmemory-policy noeviction, or maxmemory 0, on it");
}

Script::Script(const char* t) : text(t), sha(sha1Hex(t)) {}

namespace {
std::vector<std::string> build(const char* verb, const std::string& body,
                               const std::vector<std::string>& keys,
                               const std::vector<std::string>& args) {
    std::vector<std::string> argv{verb, body, std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}
} // namespace

std::vector<std::string> evalShaArgs(const Script& s, const std::vector<std::string>& keys,
                                     const std::vector<std::string>& args) {
    return build("EVALSHA", s.sha, keys, args);
}

std::vector<std::string> evalArgs(const Script& s, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args) {
    return build("EVAL", s.text, keys, args);
}

Result<Reply> runScript(Connection& conn, const Script& s, const std::vector<std::string>& keys,
                        const std::vector<std::string>& args, TimePoint deadline,
                        Interrupt& interrupt) {
    auto reply = call(conn, evalShaArgs(s, keys, args), deadline, interrupt);
    if (reply && reply->errorIs("NOSCRIPT"))
        reply = call(conn, evalArgs(s, keys, args), deadline, interrupt);
    return reply;
}

Duration jitter(Duration max) {
    static std::mt19937_64 rng{std::random_device{}()};
    if (max <= Duration::zero()) return Duration::zero();
    return Duration(std::uniform_int_distribution<long long>(0, max.count() - 1)(rng));
}

} // namespace lockunit::redis
