// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/event_loop.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <vector>

#include "util/signals.hpp"

namespace lockunit {

namespace {

// epoll data of what is not a source: the wake timer, and the fds of a wait() (kWaitFd + i).
constexpr uint64_t kWake = 0;
constexpr uint64_t kWaitFd = uint64_t{1} << 62;
// wait() is measured on CLOCK_BOOTTIME: its callers' deadlines are BootClock::now() + timeout.
const RealClock kBootClock;

int epollOrThrow() {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw std::runtime_error(errnoMessage("epoll_create1"));
    return fd;
}

int timerOrThrow() {
    int fd = ::timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) throw std::runtime_error(errnoMessage("timerfd_create"));
    return fd;
}

// False for an fd that is not open (EBADF); throws on anything else, which is a bug.
bool control(int epoll, int op, int fd, uint32_t events, uint64_t data) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = data;
    if (::epoll_ctl(epoll, op, fd, &ev) == 0 || op == EPOLL_CTL_DEL) return true;
    if (errno == EBADF) return false;
    throw std::runtime_error(errnoMessage("epoll_ctl"));
}

} // namespace

struct EventLoop::Entry {
    enum class Kind { Fd, Timer, Signals };
    Entry(Kind k, Priority p) : kind(k), priority(p) {}
    Kind kind;
    Priority priority;
    uint64_t id = 0;
    uint32_t events = EPOLLIN;
    int fd = -1;     // what is watched now (-1: nothing)
    UniqueFd owned;  // a timer's timerfd
    Callback callback;
    SignalSource* signals = nullptr;
    std::function<void(int)> onSignal;
};

EventLoop::Source::Source(Source&& other) noexcept
    : loop_(std::exchange(other.loop_, nullptr)), id_(other.id_) {}

EventLoop::Source& EventLoop::Source::operator=(Source&& other) noexcept {
    if (this != &other) {
        if (loop_) loop_->remove(id_);
        loop_ = std::exchange(other.loop_, nullptr);
        id_ = other.id_;
    }
    return *this;
}

EventLoop::Source::~Source() {
    if (loop_) loop_->remove(id_);
}

void EventLoop::Source::setFd(int fd) {
    setFd(fd, loop_->entries_.at(id_)->events);
}

void EventLoop::Source::setFd(int fd, uint32_t events) {
    auto& e = *loop_->entries_.at(id_);
    if (e.fd == fd && e.events == events) return;
    loop_->watch(e, -1);
    e.events = events;
    loop_->watch(e, fd);
}

void EventLoop::Source::setTime(TimePoint at) {
    loop_->arm(loop_->entries_.at(id_)->owned.get(), at, loop_->clock_);
}

EventLoop::EventLoop(const Clock& clock)
    : clock_(clock), all_(epollOrThrow()), urgent_(epollOrThrow()), wake_(timerOrThrow()) {
    control(all_.get(), EPOLL_CTL_ADD, wake_.get(), EPOLLIN, kWake);
    control(urgent_.get(), EPOLL_CTL_ADD, wake_.get(), EPOLLIN, kWake);
}

EventLoop::~EventLoop() = default;

uint64_t EventLoop::add(std::unique_ptr<Entry> entry) {
    const uint64_t id = nextId_++;
    Entry& e = *entry;
    e.id = id;
    entries_[id] = std::move(entry);
    const int fd = std::exchange(e.fd, -1);
    watch(e, fd);
    return id;
}

void EventLoop::watch(Entry& e, int fd) {
    for (int set : {all_.get(), e.priority == Priority::Urgent ? urgent_.get() : -1}) {
        if (set < 0) continue;
        if (e.fd >= 0) control(set, EPOLL_CTL_DEL, e.fd, 0, 0);
        // A descriptor its owner closed already (a client that dropped its socket and has not
        // made a new one) is not watched, as poll() would skip it; the owner's next call sees.
        if (fd >= 0 && !control(set, EPOLL_CTL_ADD, fd, e.events, e.id)) fd = -1;
    }
    e.fd = fd;
}

void EventLoop::remove(uint64_t id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    watch(*it->second, -1);
    entries_.erase(it);
}

EventLoop::Source EventLoop::addFd(int fd, uint32_t events, Callback callback, Priority priority) {
    auto e = std::make_unique<Entry>(Entry::Kind::Fd, priority);
    e->events = events;
    e->fd = fd;
    e->callback = std::move(callback);
    return Source(this, add(std::move(e)));
}

EventLoop::Source EventLoop::addTimer(Callback callback, Priority priority) {
    auto e = std::make_unique<Entry>(Entry::Kind::Timer, priority);
    e->owned.reset(timerOrThrow());
    e->fd = e->owned.get();
    e->callback = std::move(callback);
    return Source(this, add(std::move(e)));
}

EventLoop::Source EventLoop::addSignals(SignalSource& signals, std::function<void(int)> callback) {
    auto e = std::make_unique<Entry>(Entry::Kind::Signals, Priority::Urgent);
    e->fd = signals.fd();
    e->signals = &signals;
    e->onSignal = std::move(callback);
    return Source(this, add(std::move(e)));
}

void EventLoop::arm(int timerFd, TimePoint at, const Clock& clock) {
    itimerspec spec{};
    if (at != TimePoint::max()) {
        auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(at - clock.now());
        left = std::clamp<std::chrono::nanoseconds>(left, std::chrono::nanoseconds(1),
                                                    std::chrono::hours(24));
        spec.it_value.tv_sec = left.count() / 1'000'000'000;
        spec.it_value.tv_nsec = left.count() % 1'000'000'000;
    }
    ::timerfd_settime(timerFd, 0, &spec, nullptr);
}

int EventLoop::waitOn(Set set, TimePoint until, const Clock& clock, std::span<epoll_event> out) {
    const bool block = until > clock.now();
    if (block) arm(wake_.get(), until, clock);
    int n = ::epoll_wait(set == Set::All ? all_.get() : urgent_.get(), out.data(),
                         static_cast<int>(out.size()), block ? -1 : 0);
    if (n < 0 && errno != EINTR) throw std::runtime_error(errnoMessage("epoll_wait"));
    uint64_t expirations;
    [[maybe_unused]] auto r = ::read(wake_.get(), &expirations, sizeof expirations);
    return std::max(n, 0);
}

void EventLoop::run(uint64_t id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return; // removed by an earlier callback of this round
    Entry& e = *it->second;
    switch (e.kind) {
    case Entry::Kind::Timer: {
        uint64_t expirations;
        if (::read(e.fd, &expirations, sizeof expirations) != sizeof expirations) return;
        e.callback();
        break;
    }
    case Entry::Kind::Fd:
        e.callback();
        break;
    case Entry::Kind::Signals:
        for (int sig : e.signals->drain())
            e.onSignal(sig);
        break;
    }
}

void EventLoop::dispatch(TimePoint until) {
    epoll_event events[16];
    const int n = waitOn(Set::All, until, clock_, events);
    std::vector<uint64_t> ready;
    for (int i = 0; i < n; ++i)
        if (events[i].data.u64 != kWake) ready.push_back(events[i].data.u64);
    for (uint64_t id : ready)
        run(id);
}

Result<void> EventLoop::wait(std::span<pollfd> fds, TimePoint until,
                             const std::function<bool()>& stop, const char* what) {
    // An fd that is an urgent source already (the lock guard's socket, waited for by its own
    // spawn()) is served by that source's callback; the wait counts it as ready when it runs.
    std::vector<std::pair<uint64_t, size_t>> served;
    std::vector<int> added;
    struct Unwatch {
        int set;
        const std::vector<int>& fds;
        ~Unwatch() {
            for (int fd : fds)
                ::epoll_ctl(set, EPOLL_CTL_DEL, fd, nullptr);
        }
    } unwatch{urgent_.get(), added};
    for (auto& p : fds) {
        p.revents = 0;
        if (p.fd < 0) continue;
        const size_t i = static_cast<size_t>(&p - fds.data());
        epoll_event ev{};
        ev.events = static_cast<uint16_t>(p.events);
        ev.data.u64 = kWaitFd + i;
        if (::epoll_ctl(urgent_.get(), EPOLL_CTL_ADD, p.fd, &ev) == 0) {
            added.push_back(p.fd);
            continue;
        }
        if (errno == EBADF) { // as poll() says of an fd that is not open
            p.revents = POLLNVAL;
            return {};
        }
        if (errno != EEXIST)
            return makeError(Errc::System, errnoMessage(std::string(what) + ": epoll_ctl"));
        for (const auto& [id, e] : entries_)
            if (e->fd == p.fd && e->priority == Priority::Urgent) served.emplace_back(id, i);
    }
    for (;;) {
        epoll_event events[16];
        const int n = waitOn(Set::Urgent, until, kBootClock, events);
        bool mine = false, urgent = false;
        for (int i = 0; i < n; ++i) {
            const uint64_t data = events[i].data.u64;
            if (data >= kWaitFd) {
                fds[data - kWaitFd].revents = static_cast<short>(events[i].events);
                mine = true;
            } else if (data != kWake) {
                run(data);
                urgent = true;
                for (const auto& [id, index] : served)
                    if (id == data) {
                        fds[index].revents = static_cast<short>(events[i].events);
                        mine = true;
                    }
            }
        }
        if (urgent && stop())
            return makeError(Errc::Interrupted, std::string(what) + ": interrupted");
        if (mine || kBootClock.now() >= until) return {};
    }
}

EventLoop& standaloneLoop() {
    static RealClock clock;
    static EventLoop loop(clock);
    return loop;
}

} // namespace lockunit
