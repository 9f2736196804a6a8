// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "systemd/libsystemd.hpp"

namespace lockunit::log {
namespace {

bool gVerbose = false;

// True when stderr is the journal stream systemd connected us to.
bool stderrIsJournal() {
    static const bool result = [] {
        const char* js = std::getenv("JOURNAL_STREAM");
        if (!js) return false;
        unsigned long long dev = 0, ino = 0;
        if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
        struct stat st {};
        if (fstat(STDERR_FILENO, &st) < 0) return false;
        return st.st_dev == dev && st.st_ino == ino;
    }();
    return result;
}

} // namespace

void setVerbose(bool verbose) {
    gVerbose = verbose;
}
bool verbose() {
    return gVerbose;
}

void write(Level level, std::string_view message) {
    if (level == Level::Debug && !gVerbose) return;
    std::string line;
    if (stderrIsJournal())
        line = "<" + std::to_string(static_cast<int>(level)) + ">";
    else
        line = "lockunit: ";
    line.append(message);
    line.push_back('\n');
    // One write() per line so that lines from concurrent instances never interleave.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

void printOut(std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
}

void event(Level level, const Event& e, std::string_view message) {
    if (!stderrIsJournal()) {
        write(level, message);
        return;
    }
    auto sd = libsystemd::get();
    if (!sd) {
        write(level, message);
        return;
    }
    std::string msg(message), lock(e.lock), ev(e.event), scheme(e.backendScheme), token(e.token);
    // sd_journal_send(), as its macro expands: with the code location.
    int r = (*sd)->journalSendWithLocation(
        "CODE_FILE=" __FILE__, "CODE_LINE=" _SD_STRINGIFY(__LINE__), __func__, "MESSAGE=%s",
        msg.c_str(), "PRIORITY=%d", static_cast<int>(level), "SYSLOG_IDENTIFIER=lockunit",
        "LOCKUNIT_LOCK=%s", lock.c_str(), "LOCKUNIT_EVENT=%s", ev.c_str(), "LOCKUNIT_BACKEND=%s",
        scheme.c_str(), "LOCKUNIT_TOKEN=%s", token.c_str(), nullptr);
    if (r < 0) write(level, message);
}

} // namespace lockunit::log
