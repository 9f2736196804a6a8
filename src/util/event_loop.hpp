// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <poll.h>
#include <span>
#include <sys/epoll.h>

#include "util/clock.hpp"
#include "util/fd.hpp"
#include "util/result.hpp"

namespace lockunit {

class SignalSource;

// lockunit's one event loop, shaped like sd-event: sources (a file descriptor, a CLOCK_BOOTTIME
// timer, the signalfd), each with a callback, run by dispatch(). docs/architecture.md ("One
// event loop") tells why it looks the way it does.
//
// Two kinds of waiting go through it, and it is the only place in the main process that waits
// (src/util/event_loop.cpp calls epoll_wait(), nothing else does; the lock guard, a process of
// its own, has its own):
// - dispatch(): the supervisor's loop. Runs the callback of every source that is ready, after
//   waking at the latest at `until`.
// - wait(): the primitive under every sequential I/O call (a backend's request, a D-Bus call):
//   waits for its own fds, and meanwhile runs only the *urgent* sources (signals, the lease
//   deadline, the lock guard), then asks `stop()` whether the call must give way. Sources that
//   are not urgent (a backend's wake-up fd, the payload's notifications) wait for the next
//   dispatch(), so no callback runs inside a backend call that it could re-enter.
class EventLoop {
public:
    using Callback = std::function<void()>;
    enum class Priority { Normal, Urgent };

    // A registered source; destroying it removes it from the loop.
    class Source {
    public:
        Source() = default;
        Source(Source&& other) noexcept;
        Source& operator=(Source&& other) noexcept;
        Source(const Source&) = delete;
        Source& operator=(const Source&) = delete;
        ~Source();
        // An fd source follows a descriptor that changes (a backend that reconnects); -1 pauses it.
        // With `events`, also what it waits for (sdbus-c++'s poll data changes between rounds).
        void setFd(int fd);
        void setFd(int fd, uint32_t events);
        // A timer fires once at `at` (on the loop's clock); TimePoint::max() disarms it.
        void setTime(TimePoint at);

    private:
        friend class EventLoop;
        Source(EventLoop* loop, uint64_t id) : loop_(loop), id_(id) {}
        EventLoop* loop_ = nullptr;
        uint64_t id_ = 0;
    };

    // `clock`: what timers and `until` are measured on (a test's fake clock may run ahead of
    // CLOCK_BOOTTIME; timers are armed relative to it).
    explicit EventLoop(const Clock& clock);
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    ~EventLoop();

    // `events`: EPOLLIN/EPOLLOUT (the same bits as POLLIN/POLLOUT). Level-triggered: the
    // callback reads what made the fd ready.
    [[nodiscard]] Source addFd(int fd, uint32_t events, Callback callback,
                               Priority priority = Priority::Normal);
    // Disarmed until setTime().
    [[nodiscard]] Source addTimer(Callback callback, Priority priority = Priority::Normal);
    // Each pending signal of the signalfd, oldest first. Always urgent: a stop request must
    // reach a backend call in progress.
    [[nodiscard]] Source addSignals(SignalSource& signals, std::function<void(int)> callback);

    // Runs the ready sources' callbacks, waiting for one until `until` at the latest.
    void dispatch(TimePoint until);

    // Waits until one of `fds` is ready (their revents say which), `until` (CLOCK_BOOTTIME, as
    // every I/O deadline) passes (all revents 0), or an urgent source ran and `stop()` says the call must give way (Errc::Interrupted,
    // "WHAT: interrupted"). `fds` with fd < 0 are left out; with none, it sleeps.
    Result<void> wait(std::span<pollfd> fds, TimePoint until, const std::function<bool()>& stop,
                      const char* what);

private:
    struct Entry;
    enum class Set { All, Urgent };
    uint64_t add(std::unique_ptr<Entry> entry);
    void remove(uint64_t id);
    void watch(Entry& entry, int fd);
    void arm(int timerFd, TimePoint at, const Clock& clock);
    // The one epoll_wait(): on `set`, until `until` on `clock`; the number of events in `out`.
    int waitOn(Set set, TimePoint until, const Clock& clock, std::span<epoll_event> out);
    void run(uint64_t id);

    const Clock& clock_;
    UniqueFd all_, urgent_; // epoll sets: every source; the urgent ones
    UniqueFd wake_;         // CLOCK_BOOTTIME timerfd for `until`, in both sets
    uint64_t nextId_ = 1;
    std::map<uint64_t, std::unique_ptr<Entry>> entries_;
};

// A source-less loop on the real clock, for a process with nothing to be interrupted by
// (`lockunit status`, release mode, tests).
EventLoop& standaloneLoop();

} // namespace lockunit
