// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// The TLS seam of the etcd gRPC client (grpc_client.hpp). Plain etcd:// never needs it;
// etcds:// gets it from lockunit-etcd-tls.so (OpenSSL), a part of the etcd module that is
// dlopen()ed only then, so a lock on plain etcd maps neither libssl nor libcrypto.

#include <cstddef>
#include <memory>
#include <string>

namespace lockunit::etcd {

// What one non-blocking step of a TLS session did.
struct TlsIo {
    enum Status { Done, WantRead, WantWrite, Closed, Failed };
    Status status = Done;
    size_t bytes = 0;  // read(), write(): how many
    std::string error; // Failed: why, for messages
};

// TLS over one connected, non-blocking socket that the caller owns and polls.
class TlsSession {
public:
    virtual ~TlsSession() = default;
    // Done once the handshake (including the server's certificate check) has succeeded.
    virtual TlsIo handshake() = 0;
    virtual TlsIo read(char* buffer, size_t size) = 0;
    virtual TlsIo write(const char* data, size_t size) = 0;
};

struct TlsFiles {
    std::string caFile;   // empty: the system's CAs
    std::string certFile; // client certificate; empty: none
    std::string keyFile;
};

// The CA and client certificate, loaded once; a session per connection.
class TlsContext {
public:
    virtual ~TlsContext() = default;
    // `host` is checked against the server's certificate (a name or an IP address).
    virtual std::unique_ptr<TlsSession> session(int fd, const std::string& host,
                                                std::string* error) = 0;
};

// The descriptor of lockunit-etcd-tls.so (util/module.hpp): LOCKUNIT_MODULE(etcd_tls, TlsModule)
// in tls_openssl.cpp.
struct TlsModule {
    // The CA and client certificate of `files`; nullptr, and *error set, when they cannot be
    // loaded.
    std::unique_ptr<TlsContext> (*context)(const TlsFiles& files, std::string* error);
};
inline constexpr const char* kTlsModule = "etcd-tls";

} // namespace lockunit::etcd
