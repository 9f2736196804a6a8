// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace lockunit::log {

enum class Level { Error = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

// Set once by main: debug lines are shown only when verbose.
void setVerbose(bool verbose);
bool verbose();

// Writes one line to stderr. Under journald (JOURNAL_STREAM names our stderr) each line
// carries an "<N>" priority prefix; elsewhere it is prefixed with "lockunit: ".
void write(Level level, std::string_view message);

// Results for the operator on stdout, as they are (--help, --version, check, status). Not
// std::cout: a program that includes <iostream> builds the standard streams and the classic
// locale at every start (GCC 12), which `lockunit -- COMMAND` never uses.
void printOut(std::string_view text);

inline void error(std::string_view m) {
    write(Level::Error, m);
}
inline void warning(std::string_view m) {
    write(Level::Warning, m);
}
inline void notice(std::string_view m) {
    write(Level::Notice, m);
}
inline void info(std::string_view m) {
    write(Level::Info, m);
}
inline void debug(std::string_view m) {
    write(Level::Debug, m);
}

// The kinds of lock event. Each has a name (LOCKUNIT_EVENT=) and a MESSAGE_ID of its own, which
// units/lockunit.catalog explains for `journalctl -x`: an ID, once published, never changes.
enum class EventKind {
    Standby,      // waiting: another holder has the lock
    Acquired,     // the lock is ours and the payload runs
    RenewFailed,  // a renewal failed; the lease still holds, retrying
    Lost,         // the lease could not be kept: the payload is stopped (exit 79)
    Released,     // released after the payload ended
    Busy,         // wait = 0 and the lock is held: not started (exit 75)
    GaveUp,       // not acquired within `wait` (exit 75)
    GuardStopped, // the lock guard stopped the payload's tree (lockunit dead or stalled)
    GuardReleased, // the lock guard released the lock after the tree was gone
    LockDelay      // acquired a lock its last holder did not release: the payload waits
};
struct EventType {
    EventKind kind;
    std::string_view name;      // "renew-failed"
    std::string_view messageId; // 32 lowercase hex digits, systemd's MESSAGE_ID= form
};
// Every kind, in EventKind's order.
std::span<const EventType> eventTypes();
const EventType& eventType(EventKind kind);

// Who we are, for every event's fields: this holder's id (LOCKUNIT_HOLDER=) and the systemd unit
// we run in (LOCKUNIT_UNIT=; empty outside systemd). Set once, before the first event.
void setEventSource(std::string holderId, std::string unit);

// One lock event. Under journald it is sent with MESSAGE_ID= and structured fields
// (LOCKUNIT_LOCK=, LOCKUNIT_EVENT=, LOCKUNIT_TOKEN=, LOCKUNIT_BACKEND=, LOCKUNIT_HOLDER=,
// LOCKUNIT_UNIT=, and LOCKUNIT_PAYLOAD_PID= while a payload runs), so that
// `journalctl LOCKUNIT_LOCK=name` shows one lock's history and `journalctl -x` explains each
// entry; elsewhere it is a plain line.
struct Event {
    EventKind kind;
    std::string_view lock;
    std::string_view backendScheme;
    std::string_view token;
    long payloadPid = 0; // 0: no payload
};
void event(Level level, const Event& e, std::string_view message);

} // namespace lockunit::log
