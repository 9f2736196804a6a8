// SPDX-License-Identifier: LGPL-2.1-or-later
#include "systemd/notify_relay.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/text.hpp"

namespace lockunit {

RelayedNotification parseNotification(std::string_view datagram) {
    RelayedNotification out;
    for (std::string_view line : splitTerminated(datagram, '\n')) {
        if (line == "READY=1")
            out.ready = true;
        else if (line.substr(0, 7) == "STATUS=")
            out.status = std::string(line.substr(7));
        else if (line.substr(0, 20) == "EXTEND_TIMEOUT_USEC=")
            out.extendTimeoutUsec = std::string(line.substr(20));
    }
    return out;
}

Result<std::unique_ptr<NotifyRelay>> NotifyRelay::create() {
    std::string base;
    if (const char* d = std::getenv("RUNTIME_DIRECTORY"); d && *d) {
        base = d;
        base = base.substr(0, base.find(':')); // several directories: the first
    } else if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) {
        base = x;
    } else if (::access("/run", W_OK) == 0) {
        base = "/run";
    } else {
        base = "/tmp";
    }
    std::unique_ptr<NotifyRelay> relay(new NotifyRelay());
    std::string templ = base + "/lockunit-notify.XXXXXX";
    if (!::mkdtemp(templ.data()))
        return makeError(Errc::System, errnoMessage("notify relay: mkdtemp in '" + base + "'"));
    relay->dir_ = templ;
    relay->path_ = templ + "/notify";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (relay->path_.size() >= sizeof addr.sun_path)
        return makeError(Errc::System, "notify relay: socket path '" + relay->path_ + "' too long");
    std::memcpy(addr.sun_path, relay->path_.c_str(), relay->path_.size() + 1);
    relay->fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!relay->fd_.valid()) return makeError(Errc::System, errnoMessage("notify relay: socket"));
    if (::bind(relay->fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        return makeError(Errc::System, errnoMessage("notify relay: bind '" + relay->path_ + "'"));
    return relay;
}

NotifyRelay::~NotifyRelay() {
    fd_.reset();
    if (!path_.empty()) ::unlink(path_.c_str());
    if (!dir_.empty()) ::rmdir(dir_.c_str());
}

std::vector<std::string> NotifyRelay::drain() {
    std::vector<std::string> out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        out.emplace_back(buf, static_cast<size_t>(n));
    }
    return out;
}

} // namespace lockunit
