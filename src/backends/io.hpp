// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <memory>
#include <optional>
#include <poll.h>
#include <string>

#include "backends/backend.hpp"
#include "util/clock.hpp"

namespace lockunit::io {

// Waits until `fd` is ready for `events` (POLLIN/POLLOUT), the deadline passes
// (Errc::Unavailable, "timed out"), or the interrupt asks us to stop (Errc::Interrupted).
// `what` names the operation for the error message. fd < 0 waits only for time/interrupt.
Result<void> waitFor(int fd, short events, TimePoint deadline, Interrupt& interrupt,
                     const char* what);

// Sleeps until the deadline unless interrupted.
Result<void> sleepUntil(TimePoint deadline, Interrupt& interrupt);

// A host name looked up without blocking the loop: getaddrinfo_a() resolves it in glibc's
// helper thread, whose completion makes fd() readable, so a caller polls fd() beside its
// sockets and the Interrupt. A numeric address is done at once (fd() is then -1). The answer
// is one numeric address, IPv4 preferred ("10.0.0.5", "::1"). Destroying an unfinished lookup
// cancels it (or lets the helper finish into memory that the lookup no longer uses).
class HostLookup {
public:
    explicit HostLookup(const std::string& host);
    ~HostLookup();
    HostLookup(const HostLookup&) = delete;
    HostLookup& operator=(const HostLookup&) = delete;

    int fd() const;
    // nullopt while the lookup runs; then the address or Errc::Unavailable ("cannot resolve …").
    std::optional<Result<std::string>> result();

private:
    struct Shared;
    Shared* shared_ = nullptr;
    std::optional<Result<std::string>> done_;
};

// A HostLookup waited for, with the Interrupt, until the deadline.
Result<std::string> resolveHost(const std::string& host, TimePoint deadline, Interrupt& interrupt);

} // namespace lockunit::io
