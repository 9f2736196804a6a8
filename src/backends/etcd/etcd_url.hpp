// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// The pure pieces of the etcd backend: URL parsing, key ranges, TTL rounding.

#include <string>
#include <string_view>
#include <vector>

#include "util/duration.hpp"
#include "util/result.hpp"

namespace lockunit::etcd {

struct Endpoint {
    std::string host; // as written; IPv6 literals without brackets
    int port = 2379;
    // "127.0.0.1:2379", for messages
    std::string display() const;
};

struct EtcdUrl {
    bool tls = false; // etcds://
    std::vector<Endpoint> endpoints;
};

// Parses "etcd://HOST[:PORT][,HOST[:PORT]…][/]" (or etcds://). HOST is a name, an IPv4
// address or a bracketed IPv6 address; PORT defaults to 2379. Credentials, paths and queries
// are refused: secrets belong in password_file, the key prefix in [etcd] prefix.
Result<EtcdUrl> parseUrl(std::string_view scheme, std::string_view rest);

// The end of the key range that holds every key starting with `prefix` ("a/" → "a0").
std::string prefixEnd(std::string prefix);

// etcd lease TTLs are whole seconds: the configured ttl rounded up, at least 1.
long long ttlSeconds(Duration ttl);

// A lease ID as etcd's own tools print it: lowercase hex, no padding.
std::string leaseHex(long long id);

} // namespace lockunit::etcd
