// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/redis/redis_url.hpp"

#include <algorithm>
#include <cctype>

#include "util/text.hpp"

namespace lockunit::redis {

std::string Target::describe() const {
    if (!unixPath.empty()) return unixPath;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

namespace {

bool allDigits(const std::string& s) {
    return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), ::isdigit);
}

Error bad(const std::string& scheme, const std::string& what) {
    return makeError(Errc::Config, scheme + " URL: " + what);
}

// "HOST", "HOST:PORT", "[V6]", "[V6]:PORT".
Result<Target> parseHostPort(const std::string& scheme, const std::string& text, int defaultPort) {
    Target t;
    t.port = defaultPort;
    std::string portText;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string::npos) return bad(scheme, "unclosed '[' in host '" + text + "'");
        t.host = text.substr(1, close - 1);
        std::string after = text.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return bad(scheme, "expected ':PORT' after ']' in '" + text + "'");
            portText = after.substr(1);
            if (portText.empty()) return bad(scheme, "empty port in '" + text + "'");
        }
    } else {
        auto colon = text.find(':');
        t.host = text.substr(0, colon);
        if (colon != std::string::npos) {
            portText = text.substr(colon + 1);
            if (portText.empty()) return bad(scheme, "empty port in '" + text + "'");
        }
    }
    if (t.host.empty()) return bad(scheme, "a host is missing in '" + text + "'");
    for (char c : t.host)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
              c == ':' || c == '%'))
            return bad(scheme,
                       "invalid character '" + std::string(1, c) + "' in host '" + t.host + "'");
    if (!portText.empty()) {
        if (!allDigits(portText) || std::stoi(portText) < 1 || std::stoi(portText) > 65535)
            return bad(scheme, "port must be a number from 1 to 65535, found '" + portText + "'");
        t.port = std::stoi(portText);
    }
    return t;
}

Result<int> parseDb(const std::string& scheme, const std::string& text) {
    if (!allDigits(text))
        return bad(scheme, "database must be a number such as /0 or /2, found '" + text + "'");
    return std::stoi(text);
}

// Takes "USER@" off the front of the authority. "USER:PASSWORD@" is refused without echoing it.
Result<std::string> takeUser(const std::string& scheme, std::string& authority) {
    auto at = authority.rfind('@');
    if (at == std::string::npos) return std::string();
    std::string user = authority.substr(0, at);
    authority = authority.substr(at + 1);
    if (user.find(':') != std::string::npos)
        return bad(scheme, "a password does not belong in the URL (it would show in logs and "
                           "'ps'); write USER@HOST and set password_file or password_credential");
    if (user.empty()) return bad(scheme, "empty user name before '@'");
    return user;
}

} // namespace

Result<RedisUrl> parseRedisUrl(const std::string& scheme, const std::string& rest) {
    RedisUrl url;
    if (scheme == "unix") {
        // unix:///path/redis.sock[?db=N[&user=NAME]]
        std::string path = rest, query;
        if (auto q = rest.find('?'); q != std::string::npos) {
            path = rest.substr(0, q);
            query = rest.substr(q + 1);
        }
        if (path.empty() || path[0] != '/')
            return bad(scheme, "expected unix:///path/to/redis.sock, found 'unix://" + path + "'");
        Target t;
        t.unixPath = path;
        url.nodes.push_back(t);
        for (std::string_view pair : splitTerminated(query, '&')) {
            std::string kv(pair);
            auto eq = kv.find('=');
            std::string key = kv.substr(0, eq);
            std::string value = eq == std::string::npos ? "" : kv.substr(eq + 1);
            if (key == "db") {
                auto db = parseDb(scheme, value);
                if (!db) return db.error();
                url.db = *db;
            } else if (key == "user" && !value.empty()) {
                url.user = value;
            } else if (key == "password") {
                return bad(scheme, "a password does not belong in the URL; set password_file "
                                   "or password_credential");
            } else {
                return bad(scheme, "unknown parameter '" + key + "' (known: db, user)");
            }
        }
        return url;
    }

    std::string authority = rest, path;
    if (auto slash = rest.find('/'); slash != std::string::npos) {
        authority = rest.substr(0, slash);
        path = rest.substr(slash + 1);
    }
    auto user = takeUser(scheme, authority);
    if (!user) return user.error();
    url.user = *user;
    if (authority.empty()) return bad(scheme, "no host given");

    int defaultPort = kDefaultPort;
    if (scheme == "redis")
        url.kind = RedisUrl::Kind::Single;
    else if (scheme == "redis+sentinel") {
        url.kind = RedisUrl::Kind::Sentinel;
        defaultPort = kDefaultSentinelPort;
    } else if (scheme == "redlock")
        url.kind = RedisUrl::Kind::Redlock;
    else
        return bad(scheme, "not a redis scheme");

    for (std::string_view node : split(authority, ',')) {
        auto t = parseHostPort(scheme, std::string(node), defaultPort);
        if (!t) return t.error();
        url.nodes.push_back(*t);
    }
    if (url.kind == RedisUrl::Kind::Single && url.nodes.size() != 1)
        return bad(scheme, "redis:// takes one host; for several use redis+sentinel:// or "
                           "redlock://");
    for (size_t i = 0; i < url.nodes.size(); ++i)
        for (size_t j = i + 1; j < url.nodes.size(); ++j)
            if (url.nodes[i] == url.nodes[j])
                return bad(scheme, "node " + url.nodes[i].describe() + " is listed twice");

    std::string dbText;
    if (url.kind == RedisUrl::Kind::Sentinel) {
        auto slash = path.find('/');
        url.masterName = path.substr(0, slash);
        if (url.masterName.empty())
            return bad(scheme, "expected redis+sentinel://S1[:PORT],S2,.../MASTERNAME[/DB]; the "
                               "master name is missing");
        if (slash != std::string::npos) dbText = path.substr(slash + 1);
    } else {
        dbText = path;
    }
    if (!dbText.empty() && dbText.back() == '/') dbText.pop_back();
    if (!dbText.empty()) {
        auto db = parseDb(scheme, dbText);
        if (!db) return db.error();
        url.db = *db;
    }
    return url;
}

} // namespace lockunit::redis
