// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <optional>
#include <string>

#include "util/libsystemd.hpp"
#include "util/duration.hpp"
#include "util/result.hpp"

namespace lockunit {

// What lockunit tells its service manager (sd_notify). A seam for tests.
class Notifier {
public:
    virtual ~Notifier() = default;
    // One datagram, "KEY=VALUE" lines. Without $NOTIFY_SOCKET it goes nowhere.
    virtual void send(const std::string& state) = 0;
    // WatchdogSec= as systemd passed it to us, if it did.
    virtual std::optional<Duration> watchdogInterval() const = 0;

    void ready() { send("READY=1"); }
    void status(const std::string& text) { send("STATUS=" + escapeStatus(text)); }
    void watchdog() { send("WATCHDOG=1"); }
    void stopping(const std::string& text) { send("STOPPING=1\nSTATUS=" + escapeStatus(text)); }

    // systemd 252 (Debian 12) splits a notification's lines as words, which drops single
    // backslashes: the scope "lockunit-lockunit\x40reports.service.scope" would show as
    // "…lockunitx40reports…" (verified in a container). Doubling them shows them as written.
    static std::string escapeStatus(const std::string& text) {
        std::string out;
        for (char c : text) {
            if (c == '\\') out += '\\';
            out += c;
        }
        return out;
    }
    void extendTimeout(Duration d) {
        send("EXTEND_TIMEOUT_USEC=" + std::to_string(d.count() * 1000));
    }
};

// sd_notify() itself. libsystemd is loaded only if systemd gave us a $NOTIFY_SOCKET or
// $WATCHDOG_USEC (an error if it cannot be: the unit would wait for a READY=1 forever).
class SdNotifier final : public Notifier {
public:
    static Result<SdNotifier> create();
    void send(const std::string& state) override;
    std::optional<Duration> watchdogInterval() const override;

private:
    explicit SdNotifier(const libsystemd::Api* sd) : sd_(sd) {}
    const libsystemd::Api* sd_;
};

} // namespace lockunit
