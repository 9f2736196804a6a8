// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

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

// One lock event ("acquired", "renew-failed", "lost", "released", "standby"). Under journald it
// is sent with structured fields (LOCKUNIT_LOCK=, LOCKUNIT_EVENT=, LOCKUNIT_TOKEN=,
// LOCKUNIT_BACKEND=) so `journalctl LOCKUNIT_LOCK=name` shows one lock's history; elsewhere it
// is a plain line.
struct Event {
    std::string_view event;
    std::string_view lock;
    std::string_view backendScheme;
    std::string_view token;
};
void event(Level level, const Event& e, std::string_view message);

} // namespace lockunit::log
