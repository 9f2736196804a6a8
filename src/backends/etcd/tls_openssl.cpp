// SPDX-License-Identifier: LGPL-2.1-or-later
// lockunit-etcd-tls.so: the etcd gRPC client's TLS (etcds://) on OpenSSL, loaded only for
// etcds:// (see tls.hpp). Non-blocking throughout: every step says what it waits for.

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string>

#include "backends/etcd/tls.hpp"
#include "util/module.hpp"

namespace lockunit::etcd {
namespace {

// The most telling reason OpenSSL queued, or `fallback`.
std::string lastError(const char* fallback) {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        const char* reason = ERR_reason_error_string(e);
        out = reason ? reason : "error " + std::to_string(ERR_GET_REASON(e));
    }
    return out.empty() ? fallback : out;
}

class OpenSslSession final : public TlsSession {
public:
    explicit OpenSslSession(SSL* ssl) : ssl_(ssl) {}
    ~OpenSslSession() override { SSL_free(ssl_); } // no close_notify: the socket just closes

    TlsIo handshake() override {
        ERR_clear_error();
        int r = SSL_connect(ssl_);
        if (r == 1) return {};
        TlsIo io = outcome(r, "handshake failed");
        if (io.status == TlsIo::Failed) {
            long verify = SSL_get_verify_result(ssl_);
            if (verify != X509_V_OK)
                io.error += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
            io.error = "TLS handshake: " + io.error;
        }
        return io;
    }

    TlsIo read(char* buffer, size_t size) override {
        ERR_clear_error();
        size_t n = 0;
        int r = SSL_read_ex(ssl_, buffer, size, &n);
        if (r == 1) return {TlsIo::Done, n, {}};
        TlsIo io = outcome(r, "read failed");
        if (io.status == TlsIo::Failed) io.error = "TLS read: " + io.error;
        return io;
    }

    TlsIo write(const char* data, size_t size) override {
        ERR_clear_error();
        size_t n = 0;
        int r = SSL_write_ex(ssl_, data, size, &n);
        if (r == 1) return {TlsIo::Done, n, {}};
        TlsIo io = outcome(r, "write failed");
        if (io.status == TlsIo::Failed) io.error = "TLS write: " + io.error;
        return io;
    }

private:
    TlsIo outcome(int r, const char* fallback) {
        switch (SSL_get_error(ssl_, r)) {
        case SSL_ERROR_WANT_READ:
            return {TlsIo::WantRead, 0, {}};
        case SSL_ERROR_WANT_WRITE:
            return {TlsIo::WantWrite, 0, {}};
        case SSL_ERROR_ZERO_RETURN:
            return {TlsIo::Closed, 0, {}};
        case SSL_ERROR_SYSCALL:
            if (errno != 0) return {TlsIo::Failed, 0, std::strerror(errno)};
            return {TlsIo::Closed, 0, {}};
        default:
            return {TlsIo::Failed, 0, lastError(fallback)};
        }
    }

    SSL* ssl_;
};

class OpenSslContext final : public TlsContext {
public:
    explicit OpenSslContext(SSL_CTX* ctx) : ctx_(ctx) {}
    ~OpenSslContext() override { SSL_CTX_free(ctx_); }

    std::unique_ptr<TlsSession> session(int fd, const std::string& host,
                                        std::string* error) override {
        ERR_clear_error();
        SSL* ssl = SSL_new(ctx_);
        if (!ssl) {
            *error = lastError("SSL_new failed");
            return nullptr;
        }
        auto session = std::make_unique<OpenSslSession>(ssl);
        in6_addr any{};
        bool ip = ::inet_pton(AF_INET, host.c_str(), &any) == 1 ||
                  ::inet_pton(AF_INET6, host.c_str(), &any) == 1;
        // The certificate must name the host we asked for: its IP address or its DNS name
        // (with SNI for the latter).
        bool named = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1
                        : SSL_set1_host(ssl, host.c_str()) == 1 &&
                              SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
        if (!named || SSL_set_fd(ssl, fd) != 1) {
            *error = lastError("cannot set up the TLS session");
            return nullptr;
        }
        return session;
    }

private:
    SSL_CTX* ctx_;
};

std::unique_ptr<TlsContext> makeContext(const TlsFiles& files, std::string* error) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        *error = "TLS: " + lastError("cannot create a context");
        return nullptr;
    }
    auto fail = [&](const std::string& what) -> std::unique_ptr<TlsContext> {
        *error = what + ": " + lastError("failed");
        SSL_CTX_free(ctx);
        return nullptr;
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // A connection's end needs no close_notify: HTTP/2's framing tells what arrived whole.
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    // gRPC is HTTP/2, which over TLS is chosen by ALPN; without it etcd speaks HTTP/1.1.
    static const unsigned char kAlpnH2[] = {2, 'h', '2'};
    if (SSL_CTX_set_alpn_protos(ctx, kAlpnH2, sizeof kAlpnH2) != 0) return fail("TLS: ALPN");
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (files.caFile.empty()) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) return fail("TLS: the system's CAs");
    } else if (SSL_CTX_load_verify_locations(ctx, files.caFile.c_str(), nullptr) != 1) {
        return fail("TLS: ca_file '" + files.caFile + "'");
    }
    if (!files.certFile.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, files.certFile.c_str()) != 1)
            return fail("TLS: cert_file '" + files.certFile + "'");
        if (SSL_CTX_use_PrivateKey_file(ctx, files.keyFile.c_str(), SSL_FILETYPE_PEM) != 1)
            return fail("TLS: key_file '" + files.keyFile + "'");
        if (SSL_CTX_check_private_key(ctx) != 1)
            return fail("TLS: key_file '" + files.keyFile + "' does not match cert_file");
    }
    return std::make_unique<OpenSslContext>(ctx);
}

} // namespace

LOCKUNIT_MODULE(etcd_tls, TlsModule) {
    static const TlsModule module{&makeContext};
    return &module;
}

} // namespace lockunit::etcd
