// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/etcd/etcd_url.hpp"

#include <cctype>
#include <cstdio>

#include "util/text.hpp"

namespace lockunit::etcd {

std::string Endpoint::display() const {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

bool validHostChar(unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_';
}

Error urlError(std::string_view scheme, std::string_view rest, const std::string& why) {
    std::string shown(rest);
    if (auto at = shown.rfind('@'); at != std::string::npos) shown = "…" + shown.substr(at);
    return makeError(Errc::Config, "backend URL '" + std::string(scheme) + "://" + shown +
                                       "': " + why + " (expected " + std::string(scheme) +
                                       "://HOST:PORT[,HOST:PORT…])");
}

} // namespace

Result<EtcdUrl> parseUrl(std::string_view scheme, std::string_view rest) {
    EtcdUrl url;
    url.tls = scheme == "etcds";
    std::string_view list = rest;
    if (!list.empty() && list.back() == '/') list.remove_suffix(1);
    if (list.find('@') != std::string_view::npos)
        return urlError(scheme, rest,
                        "credentials do not belong in the URL; set [etcd] user and password_file "
                        "or password_credential");
    if (list.find_first_of("/?#") != std::string_view::npos)
        return urlError(scheme, rest,
                        "a path or query is not allowed; the key prefix is "
                        "[etcd] prefix");
    if (list.empty()) return urlError(scheme, rest, "no endpoint");
    for (std::string_view item : split(list, ',')) {
        Endpoint ep;
        std::string_view portText;
        if (item.empty()) return urlError(scheme, rest, "empty endpoint");
        if (item.front() == '[') {
            size_t close = item.find(']');
            if (close == std::string_view::npos)
                return urlError(scheme, rest, "unclosed '[' in '" + std::string(item) + "'");
            ep.host = std::string(item.substr(1, close - 1));
            std::string_view after = item.substr(close + 1);
            if (!after.empty()) {
                if (after.front() != ':')
                    return urlError(scheme, rest,
                                    "unexpected text after ']' in '" + std::string(item) + "'");
                portText = after.substr(1);
                if (portText.empty())
                    return urlError(scheme, rest, "empty port in '" + std::string(item) + "'");
            }
            if (ep.host.empty() ||
                ep.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos)
                return urlError(scheme, rest, "bad IPv6 address in '" + std::string(item) + "'");
        } else {
            size_t colon = item.find(':');
            ep.host = std::string(item.substr(0, colon));
            if (colon != std::string_view::npos) {
                portText = item.substr(colon + 1);
                if (portText.empty())
                    return urlError(scheme, rest, "empty port in '" + std::string(item) + "'");
            }
            if (ep.host.empty())
                return urlError(scheme, rest, "no host in '" + std::string(item) + "'");
            for (unsigned char c : ep.host)
                if (!validHostChar(c))
                    return urlError(scheme, rest, "bad host name '" + ep.host + "'");
        }
        if (!portText.empty()) {
            long port = 0;
            for (char c : portText) {
                if (!std::isdigit(static_cast<unsigned char>(c)) || port > 65535) {
                    port = -1;
                    break;
                }
                port = port * 10 + (c - '0');
            }
            if (port < 1 || port > 65535)
                return urlError(scheme, rest, "bad port '" + std::string(portText) + "'");
            ep.port = static_cast<int>(port);
        }
        url.endpoints.push_back(std::move(ep));
    }
    return url;
}

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string prefixEnd(std::string prefix) {
    while (!prefix.empty()) {
        unsigned char last = static_cast<unsigned char>(prefix.back());
        if (last < 0xff) {
            prefix.back() = static_cast<char>(last + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0'); // every key
}

long long ttlSeconds(Duration ttl) {
    long long ms = ttl.count();
    long long s = (ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

std::string leaseHex(long long id) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(id));
    return buf;
}

} // namespace lockunit::etcd
