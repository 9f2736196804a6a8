// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "util/libsystemd.hpp"

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

namespace {

constexpr EventType kEventTypes[] = {
    {EventKind::Standby, "standby", "5355c6cd903d44fb9804ae4073650a4f"},
    {EventKind::Acquired, "acquired", "7e590123ec844726a91f47d3cc63e546"},
    {EventKind::RenewFailed, "renew-failed", "e76283684e0d4a42ade440b6ad15ecf7"},
    {EventKind::Lost, "lost", "8223e2f204394b2eafd4e6f6dff91855"},
    {EventKind::Released, "released", "8f4927b5bb6f49cbb8166500ef42b813"},
    {EventKind::Busy, "busy", "9289cb42172a48efa127dfa72e9393a2"},
    {EventKind::GaveUp, "gave-up", "7aba16ec2aa34f5d8c10b9e831118f70"},
    {EventKind::GuardStopped, "guard-stopped", "103da1bfe51a4193a66278188472e104"},
    {EventKind::GuardReleased, "guard-released", "95691533460345628bb7f13ac4c0fbb1"},
    {EventKind::LockDelay, "lock-delay", "bcb336c8e892442290fdbfabafc510de"},
};

std::string gHolderId, gUnit;

} // namespace

std::span<const EventType> eventTypes() {
    return kEventTypes;
}

const EventType& eventType(EventKind kind) {
    return kEventTypes[static_cast<size_t>(kind)];
}

void setEventSource(std::string holderId, std::string unit) {
    gHolderId = std::move(holderId);
    gUnit = std::move(unit);
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
    const EventType& type = eventType(e.kind);
    std::string msg(message), lock(e.lock), scheme(e.backendScheme), token(e.token),
        id(type.messageId), name(type.name), pid = std::to_string(e.payloadPid);
    // sd_journal_send(), as its macro expands: with the code location. The payload's PID goes
    // last, so that when there is none the list simply ends before it.
    int r = (*sd)->journalSendWithLocation(
        "CODE_FILE=" __FILE__, "CODE_LINE=" _SD_STRINGIFY(__LINE__), __func__, "MESSAGE=%s",
        msg.c_str(), "MESSAGE_ID=%s", id.c_str(), "PRIORITY=%d", static_cast<int>(level),
        "SYSLOG_IDENTIFIER=lockunit", "LOCKUNIT_LOCK=%s", lock.c_str(), "LOCKUNIT_EVENT=%s",
        name.c_str(), "LOCKUNIT_BACKEND=%s", scheme.c_str(), "LOCKUNIT_TOKEN=%s", token.c_str(),
        "LOCKUNIT_HOLDER=%s", gHolderId.c_str(), "LOCKUNIT_UNIT=%s", gUnit.c_str(),
        e.payloadPid > 0 ? "LOCKUNIT_PAYLOAD_PID=%s" : nullptr, pid.c_str(), nullptr);
    if (r < 0) write(level, message);
}

} // namespace lockunit::log
