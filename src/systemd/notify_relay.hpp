// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/fd.hpp"
#include "util/result.hpp"

namespace lockunit {

// What lockunit passes on to systemd from one of the payload's notifications (notify=relay).
// READY=1, STATUS= and EXTEND_TIMEOUT_USEC= are relayed; everything else (WATCHDOG=1, MAINPID=,
// STOPPING=1, …) is dropped: lockunit owns the watchdog and its own lifecycle.
struct RelayedNotification {
    bool ready = false;
    std::optional<std::string> status;
    std::optional<std::string> extendTimeoutUsec;
};
RelayedNotification parseNotification(std::string_view datagram);

// The payload's own NOTIFY_SOCKET in notify=relay mode: an AF_UNIX datagram socket in a
// private (0700) directory that lockunit creates and polls in its loop. systemd ignores
// notifications from the payload's scope (they are matched to units by cgroup), so lockunit
// relays them as its own.
class NotifyRelay {
public:
    // Under $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR, else /run (root), else /tmp.
    static Result<std::unique_ptr<NotifyRelay>> create();
    ~NotifyRelay();
    NotifyRelay(const NotifyRelay&) = delete;
    NotifyRelay& operator=(const NotifyRelay&) = delete;

    const std::string& path() const { return path_; } // the payload's NOTIFY_SOCKET
    int fd() const { return fd_.get(); }
    // Every datagram waiting on the socket (non-blocking).
    std::vector<std::string> drain();

private:
    NotifyRelay() = default;
    UniqueFd fd_;
    std::string dir_, path_;
};

} // namespace lockunit
