// SPDX-License-Identifier: LGPL-2.1-or-later
// The event loop (src/util/event_loop.cpp): sources and their callbacks, dispatch(), and the
// wait() under every I/O call, with real pipes and timers.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include "util/event_loop.hpp"
#include "util/fd.hpp"

using namespace lockunit;
using namespace std::chrono_literals;

namespace {

struct Pipe {
    UniqueFd read, write;
    Pipe() {
        int fds[2];
        EXPECT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        read.reset(fds[0]);
        write.reset(fds[1]);
    }
    void put() { EXPECT_EQ(::write(write.get(), "x", 1), 1); }
    void take() {
        char c;
        while (::read(read.get(), &c, 1) == 1) {
        }
    }
};

class EventLoopTest : public ::testing::Test {
protected:
    RealClock clock_;
    EventLoop loop_{clock_};
};

TEST_F(EventLoopTest, AnFdSourceRunsOnlyWhenItsFdIsReady) {
    Pipe p;
    int runs = 0;
    auto source = loop_.addFd(p.read.get(), EPOLLIN, [&] {
        ++runs;
        p.take();
    });
    loop_.dispatch(BootClock::now() + 20ms);
    EXPECT_EQ(runs, 0);
    p.put();
    loop_.dispatch(BootClock::now() + 1s);
    EXPECT_EQ(runs, 1);
}

TEST_F(EventLoopTest, DispatchWakesAtUntilWithNothingReady) {
    const auto start = BootClock::now();
    loop_.dispatch(start + 50ms);
    const auto took = BootClock::now() - start;
    EXPECT_GE(took, 50ms);
    EXPECT_LT(took, 2s);
}

TEST_F(EventLoopTest, ATimerFiresOnceAtItsTimeAndNotWhenDisarmed) {
    int fired = 0;
    auto timer = loop_.addTimer([&] { ++fired; });
    timer.setTime(BootClock::now() + 30ms);
    loop_.dispatch(BootClock::now() + 2s);
    EXPECT_EQ(fired, 1);
    timer.setTime(BootClock::now() + 10ms);
    timer.setTime(TimePoint::max()); // disarmed
    loop_.dispatch(BootClock::now() + 60ms);
    EXPECT_EQ(fired, 1);
}

TEST_F(EventLoopTest, ARemovedSourceNoLongerRuns) {
    Pipe p;
    int runs = 0;
    {
        auto source = loop_.addFd(p.read.get(), EPOLLIN, [&] { ++runs; });
    }
    p.put();
    loop_.dispatch(BootClock::now() + 20ms);
    EXPECT_EQ(runs, 0);
}

TEST_F(EventLoopTest, SetFdFollowsANewDescriptorAndNewEvents) {
    Pipe p;
    int runs = 0;
    auto source = loop_.addFd(-1, EPOLLIN, [&] { ++runs; });
    // The write end of an empty pipe is writable: with EPOLLOUT it is ready, with EPOLLIN not.
    source.setFd(p.write.get(), EPOLLIN);
    loop_.dispatch(BootClock::now() + 20ms);
    EXPECT_EQ(runs, 0);
    source.setFd(p.write.get(), EPOLLOUT);
    loop_.dispatch(BootClock::now() + 1s);
    EXPECT_EQ(runs, 1);
    source.setFd(-1);
    loop_.dispatch(BootClock::now() + 20ms);
    EXPECT_EQ(runs, 1);
}

TEST_F(EventLoopTest, AClosedFdIsSkippedAsPollSkipsIt) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ::close(fds[0]);
    ::close(fds[1]);
    int runs = 0;
    auto source = loop_.addFd(-1, EPOLLIN, [&] { ++runs; });
    EXPECT_NO_THROW(source.setFd(fds[0]));
    loop_.dispatch(BootClock::now() + 20ms);
    EXPECT_EQ(runs, 0);
    pollfd w{fds[0], POLLIN, 0};
    auto r = loop_.wait({&w, 1}, BootClock::now() + 1s, [] { return false; }, "closed");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(w.revents, POLLNVAL);
}

TEST_F(EventLoopTest, WaitReturnsWhenItsFdIsReadyOrItsTimeIsUp) {
    Pipe p;
    pollfd w{p.read.get(), POLLIN, 0};
    const auto start = BootClock::now();
    ASSERT_TRUE(loop_.wait({&w, 1}, start + 40ms, [] { return false; }, "read").ok());
    EXPECT_EQ(w.revents, 0);
    EXPECT_GE(BootClock::now() - start, 40ms);
    p.put();
    ASSERT_TRUE(loop_.wait({&w, 1}, BootClock::now() + 5s, [] { return false; }, "read").ok());
    EXPECT_TRUE(w.revents & POLLIN);
}

TEST_F(EventLoopTest, WaitRunsUrgentSourcesAndGivesWayWhenStopSaysSo) {
    Pipe stopPipe, data;
    bool stop = false;
    auto urgent = loop_.addFd(
        stopPipe.read.get(), EPOLLIN,
        [&] {
            stopPipe.take();
            stop = true;
        },
        EventLoop::Priority::Urgent);
    stopPipe.put();
    pollfd w{data.read.get(), POLLIN, 0};
    auto r = loop_.wait({&w, 1}, BootClock::now() + 5s, [&] { return stop; }, "request");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Interrupted);
    EXPECT_EQ(r.error().message, "request: interrupted");
}

TEST_F(EventLoopTest, WaitLeavesNormalSourcesForTheNextDispatch) {
    Pipe normal, data;
    int runs = 0;
    auto source = loop_.addFd(normal.read.get(), EPOLLIN, [&] {
        ++runs;
        normal.take();
    });
    normal.put();
    pollfd w{data.read.get(), POLLIN, 0};
    ASSERT_TRUE(loop_.wait({&w, 1}, BootClock::now() + 30ms, [] { return true; }, "call").ok());
    EXPECT_EQ(runs, 0); // no callback re-enters the caller of wait()
    loop_.dispatch(BootClock::now() + 1s);
    EXPECT_EQ(runs, 1);
}

TEST_F(EventLoopTest, TheUrgentDeadlineTimerEndsAWaitAtItsTime) {
    bool past = false;
    auto deadline = loop_.addTimer([&] { past = true; }, EventLoop::Priority::Urgent);
    deadline.setTime(BootClock::now() + 50ms);
    Pipe data;
    pollfd w{data.read.get(), POLLIN, 0};
    const auto start = BootClock::now();
    auto r = loop_.wait({&w, 1}, start + 10s, [&] { return past; }, "renew");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Interrupted);
    EXPECT_LT(BootClock::now() - start, 5s);
}

TEST_F(EventLoopTest, WaitingOnAnFdThatIsAnUrgentSourceCountsItReadyWhenTheSourceRuns) {
    Pipe p;
    int runs = 0;
    auto source = loop_.addFd(
        p.read.get(), EPOLLIN,
        [&] {
            ++runs;
            p.take();
        },
        EventLoop::Priority::Urgent);
    p.put();
    pollfd w{p.read.get(), POLLIN, 0};
    ASSERT_TRUE(loop_.wait({&w, 1}, BootClock::now() + 5s, [] { return false; }, "spawn").ok());
    EXPECT_EQ(runs, 1);
    EXPECT_TRUE(w.revents & POLLIN);
}

} // namespace
