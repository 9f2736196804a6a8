// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/io.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <signal.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace lockunit::io {

Result<void> waitFor(int fd, short events, TimePoint deadline, Interrupt& interrupt,
                     const char* what) {
    for (;;) {
        if (BootClock::now() >= deadline) {
            if (fd < 0) return {};
            return makeError(Errc::Unavailable, std::string(what) + ": timed out");
        }
        pollfd p{fd, events, 0};
        if (auto r = interrupt.wait({&p, 1}, deadline, what); !r) return r;
        if (fd >= 0 && p.revents) return {};
    }
}

Result<void> sleepUntil(TimePoint deadline, Interrupt& interrupt) {
    return waitFor(-1, 0, deadline, interrupt, "sleep");
}

// What the lookup and glibc's helper thread share. Two references: the HostLookup's and the
// completion notification's; the last one to let go frees it.
struct HostLookup::Shared {
    std::string name;
    addrinfo hints{};
    gaicb cb{};
    sigevent notify{};
    int event = -1;
    std::atomic<int> refs{2};

    void release() {
        if (refs.fetch_sub(1) != 1) return;
        if (cb.ar_result) ::freeaddrinfo(cb.ar_result);
        if (event >= 0) ::close(event);
        delete this;
    }
    static void completed(sigval value) {
        auto* self = static_cast<Shared*>(value.sival_ptr);
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(self->event, &one, sizeof one);
        self->release();
    }
};

namespace {

Result<std::string> lookupError(const std::string& host, int code) {
    return makeError(Errc::Unavailable, "cannot resolve '" + host + "': " + ::gai_strerror(code));
}

} // namespace

HostLookup::HostLookup(const std::string& host) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) == 0) {
        ::freeaddrinfo(res);
        done_ = host;
        return;
    }
    auto* s = new Shared;
    s->name = host;
    s->event = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->event < 0) {
        done_ = makeError(Errc::System, errnoMessage("eventfd"));
        delete s;
        return;
    }
    s->hints.ai_socktype = SOCK_STREAM;
    s->cb.ar_name = s->name.c_str();
    s->cb.ar_request = &s->hints;
    s->notify.sigev_notify = SIGEV_THREAD;
    s->notify.sigev_notify_function = &Shared::completed;
    s->notify.sigev_value.sival_ptr = s;
    gaicb* list[1] = {&s->cb};
    if (int r = ::getaddrinfo_a(GAI_NOWAIT, list, 1, &s->notify); r != 0) {
        done_ = lookupError(host, r);
        ::close(s->event);
        delete s;
        return;
    }
    shared_ = s;
}

HostLookup::~HostLookup() {
    if (!shared_) return;
    // A request cancelled before it ran never notifies: its reference is ours to drop.
    if (::gai_error(&shared_->cb) == EAI_INPROGRESS && ::gai_cancel(&shared_->cb) == EAI_CANCELED)
        shared_->release();
    shared_->release();
}

int HostLookup::fd() const {
    return shared_ ? shared_->event : -1;
}

std::optional<Result<std::string>> HostLookup::result() {
    if (done_ || !shared_) return done_;
    int r = ::gai_error(&shared_->cb);
    if (r == EAI_INPROGRESS) return std::nullopt;
    if (r != 0) {
        done_ = lookupError(shared_->name, r);
        return done_;
    }
    const addrinfo* pick = shared_->cb.ar_result;
    for (const addrinfo* a = pick; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    char buf[NI_MAXHOST] = {};
    int n = pick ? ::getnameinfo(pick->ai_addr, pick->ai_addrlen, buf, sizeof buf, nullptr, 0,
                                 NI_NUMERICHOST)
                 : EAI_NONAME;
    done_ = n != 0 ? lookupError(shared_->name, n) : Result<std::string>(std::string(buf));
    return done_;
}

Result<std::string> resolveHost(const std::string& host, TimePoint deadline, Interrupt& interrupt) {
    HostLookup lookup(host);
    for (;;) {
        if (auto r = lookup.result()) return *r;
        auto waited =
            waitFor(lookup.fd(), POLLIN, deadline, interrupt, ("resolving '" + host + "'").c_str());
        if (!waited) return waited.error();
    }
}

} // namespace lockunit::io
