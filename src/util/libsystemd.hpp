// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-login.h>

#include "util/result.hpp"

namespace lockunit::libsystemd {

// The few libsystemd functions lockunit calls, from libsystemd.so.0 loaded on first use.
//
// Linking libsystemd would load it and its own six libraries (libgcrypt, libgpg-error, liblzma,
// libzstd, liblz4, libcap) at every start: ~2 ms of a `lockunit --scope=no -- true` that
// is otherwise ~6 ms (mapping, relocation, and a larger process to fork and tear down).
// Callers ask for it only when there is a systemd to talk to: $NOTIFY_SOCKET or
// $WATCHDOG_USEC (notify.cpp), stderr connected to the journal (log.cpp), a unit to name
// (runner.cpp, the holder record). The types come from libsystemd's own headers.
struct Api {
    decltype(&::sd_notify) notify;
    decltype(&::sd_watchdog_enabled) watchdogEnabled;
    decltype(&::sd_journal_send_with_location) journalSendWithLocation;
    decltype(&::sd_pid_get_unit) pidGetUnit;
    decltype(&::sd_pid_get_user_unit) pidGetUserUnit;
};

// Loads libsystemd.so.0 once; Errc::Unavailable with the reason if it cannot be loaded.
Result<const Api*> get();

// True if the system was booted with systemd (what sd_booted() checks): only then can a
// process be in a unit, so only then is there a unit to look up.
bool booted();

} // namespace lockunit::libsystemd
