// SPDX-License-Identifier: LGPL-2.1-or-later
// The state machine with a fake backend and a fake clock; the payload is a real process in
// its own process group, because "dead before the deadline" is about real processes.

#include <csignal>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/io.hpp"
#include "supervisor/supervisor.hpp"
#include "process/process_group.hpp"

using namespace lockunit;
using namespace std::chrono_literals;

namespace {

bool alive(pid_t pid) {
    return pid > 0 && ::kill(pid, 0) == 0;
}

// A clock that can jump forward, as after a SIGSTOP or a suspend.
class JumpingClock final : public Clock {
public:
    TimePoint now() const override {
        TimePoint real = BootClock::now();
        if (jumpAt_ && real >= *jumpAt_) {
            offset_ += jumpBy_;
            jumpAt_.reset();
        }
        return real + offset_;
    }
    void jumpAfter(Duration delay, Duration by) {
        jumpAt_ = BootClock::now() + delay;
        jumpBy_ = by;
    }

private:
    mutable std::optional<TimePoint> jumpAt_;
    mutable Duration offset_{0};
    Duration jumpBy_{0};
};

class FakeNotifier final : public Notifier {
public:
    void send(const std::string& state) override { sent.push_back(state); }
    std::optional<Duration> watchdogInterval() const override { return watchdog; }
    bool saw(const std::string& fragment) const {
        for (const auto& s : sent)
            if (s.find(fragment) != std::string::npos) return true;
        return false;
    }
    std::vector<std::string> sent;
    std::optional<Duration> watchdog;
};

class FakeBackend final : public LockBackend {
public:
    Result<Lease> tryAcquire(Interrupt&) override {
        ++acquires;
        if (onAcquire) onAcquire();
        if (busy) return makeError(Errc::Busy, "held");
        Lease lease{validity, "7"};
        lease.delay = delay;
        lease.delayReason = "the session of its previous holder h1 ended without a release";
        return lease;
    }
    Result<Lease> renew(Interrupt& i) override {
        ++renews;
        if (onRenew) return onRenew(i);
        return Lease{validity, "7"};
    }
    Result<void> release(Interrupt&) override {
        ++releases;
        if (payloadPidFile.size()) {
            std::ifstream in(payloadPidFile);
            pid_t pid = 0;
            in >> pid;
            payloadAliveAtRelease = alive(pid);
        }
        return {};
    }
    Result<LockState> inspect(Interrupt& i) override {
        if (onInspect) return onInspect(i);
        return LockState{};
    }
    Duration retryInterval() const override { return retry; }

    Duration validity = 2s;
    Duration delay{};
    bool busy = false;
    std::function<Result<Lease>(Interrupt&)> onRenew;
    std::function<Result<LockState>(Interrupt&)> onInspect;
    std::function<void()> onAcquire;
    Duration retry = 50ms;
    int acquires = 0, renews = 0, releases = 0;
    std::string payloadPidFile;
    std::optional<bool> payloadAliveAtRelease;
};

class SupervisorTest : public ::testing::Test {
protected:
    void SetUp() override {
        ::prctl(PR_SET_CHILD_SUBREAPER, 1);
        char tmpl[] = "/tmp/lockunit-sup-XXXXXX";
        dir_ = mkdtemp(tmpl);
        pidFile_ = dir_ + "/payload.pid";
        backend_.payloadPidFile = pidFile_;
        config_.name.value = "unit";
        config_.backend.value = "fake://x";
        config_.ttl.value = 2s;
        config_.renew.value = 500ms;
        config_.stopTimeout.value = 500ms;
        config_.wait.value = kInfinity;
    }
    void TearDown() override {
        std::remove(pidFile_.c_str());
        rmdir(dir_.c_str());
    }
    // Runs a payload that writes its pid and sleeps, and returns lockunit's exit code.
    int run(const std::string& script = "exec sleep 30") {
        SignalSource signals(config_.forwardSignals.value);
        char* noArgs[] = {nullptr};
        auto guard = Guard::start(noArgs, environ);
        EXPECT_TRUE(guard.ok());
        ProcessGroupRunner runner(**guard);
        LaunchSpec spec;
        spec.path = "/bin/sh";
        spec.argv = {"sh", "-c", "echo $$ > " + pidFile_ + "; " + script};
        spec.stopSignal = config_.stopSignal.value;
        spec.stopTimeout = config_.stopTimeout.value;
        Supervisor s({config_, backend_, runner, notifier_, clock_, signals, **guard}, spec, "me");
        started_ = BootClock::now();
        int code = s.run();
        finished_ = BootClock::now();
        signals.drain();
        return code;
    }
    pid_t payloadPid() {
        std::ifstream in(pidFile_);
        pid_t pid = 0;
        in >> pid;
        return pid;
    }

    std::string dir_, pidFile_;
    Config config_;
    FakeBackend backend_;
    FakeNotifier notifier_;
    JumpingClock clock_;
    TimePoint started_{}, finished_{};
};

} // namespace

TEST_F(SupervisorTest, StopsThePayloadBeforeTheLeaseDeadlineWhenRenewalsFail) {
    backend_.onRenew = [](Interrupt&) -> Result<Lease> {
        return makeError(Errc::Unavailable, "timed out");
    };
    EXPECT_EQ(run(), exitcode::Lost);
    EXPECT_GE(backend_.renews, 1);
    // Acquired at ≥ started_: the payload had to be dead before started_ + validity − drift.
    EXPECT_LT(finished_, started_ + backend_.validity - config_.drift());
    EXPECT_FALSE(alive(payloadPid()));
    EXPECT_EQ(backend_.payloadAliveAtRelease, false);
    EXPECT_TRUE(notifier_.saw("STOPPING=1"));
}

TEST_F(SupervisorTest, AHungRenewalIsAbandonedAtTheStopTimeNotAtItsOwnTimeout) {
    // A backend whose renewal hangs for 10 s (a server that accepts and never answers, with a
    // command timeout longer than the budget left): the deadline rule must not wait for it.
    backend_.onRenew = [](Interrupt& interrupt) -> Result<Lease> {
        auto r = io::waitFor(-1, 0, BootClock::now() + 10s, interrupt, "renew");
        if (!r) return r.error();
        return makeError(Errc::Unavailable, "timed out");
    };
    EXPECT_EQ(run(), exitcode::Lost);
    EXPECT_EQ(backend_.renews, 1);
    EXPECT_LT(finished_, started_ + backend_.validity - config_.drift());
    EXPECT_FALSE(alive(payloadPid()));
}

TEST_F(SupervisorTest, APauseBetweenAcquiringAndStartingNeverStartsThePayload) {
    // Acquired, then paused for 5 s (the clock jumps) before the payload could start: the lease
    // is gone, so nothing may start, and that is a lost lock.
    backend_.onAcquire = [this] { clock_.jumpAfter(0ms, 5s); };
    EXPECT_EQ(run(), exitcode::Lost);
    EXPECT_EQ(payloadPid(), 0);
}

TEST_F(SupervisorTest, SigtermReadWhileAskingForTheHolderIsActedOnAtOnce) {
    backend_.busy = true;
    backend_.retry = 10s; // a long wait between attempts must not delay the stop
    backend_.onInspect = [](Interrupt& interrupt) -> Result<LockState> {
        ::kill(::getpid(), SIGTERM);
        auto r = io::waitFor(-1, 0, BootClock::now() + 5s, interrupt, "inspect");
        if (!r) return r.error();
        return LockState{};
    };
    EXPECT_EQ(run(), exitcode::Ok);
    EXPECT_LT(finished_ - started_, 500ms);
}

TEST_F(SupervisorTest, ChecksTheDeadlineBeforeAnyIoAfterAClockJump) {
    // 300 ms after start the clock jumps 10 s, as if lockunit had been SIGSTOPped: the first
    // renewal is due at 500 ms, but the lease is already gone, so no renewal may be tried.
    clock_.jumpAfter(300ms, 10s);
    EXPECT_EQ(run(), exitcode::Lost);
    EXPECT_EQ(backend_.renews, 0);
    EXPECT_FALSE(alive(payloadPid()));
}

TEST_F(SupervisorTest, RenewsKeepThePayloadRunning) {
    int renews = 0;
    backend_.onRenew = [&](Interrupt&) -> Result<Lease> {
        if (++renews == 6) ::kill(::getpid(), SIGTERM); // a stop request after ~3 s of renewals
        return Lease{2s, "7"};
    };
    EXPECT_EQ(run(), exitcode::Ok);
    EXPECT_GE(finished_ - started_, 2500ms); // outlived the first lease thanks to renewals
    EXPECT_EQ(backend_.releases, 1);
    EXPECT_EQ(backend_.payloadAliveAtRelease, false);
}

TEST_F(SupervisorTest, ALostLeaseStopsThePayloadThenReleasesAndExits79) {
    backend_.onRenew = [](Interrupt&) -> Result<Lease> {
        return makeError(Errc::Lost, "extend returned 0");
    };
    EXPECT_EQ(run(), exitcode::Lost);
    EXPECT_EQ(backend_.renews, 1);
    EXPECT_EQ(backend_.payloadAliveAtRelease, false);
}

TEST_F(SupervisorTest, PayloadExitCodePassesThroughAndLockIsReleased) {
    EXPECT_EQ(run("exit 3"), 3);
    EXPECT_EQ(backend_.releases, 1);
}

TEST_F(SupervisorTest, BusyWithWaitZeroExits75WithoutStartingAnything) {
    backend_.busy = true;
    config_.wait.value = Duration::zero();
    EXPECT_EQ(run(), exitcode::Busy);
    EXPECT_EQ(backend_.acquires, 1);
    EXPECT_EQ(payloadPid(), 0);
}

TEST_F(SupervisorTest, BusyRetriesUntilTheWaitRunsOut) {
    backend_.busy = true;
    config_.wait.value = 300ms;
    EXPECT_EQ(run(), exitcode::Busy);
    EXPECT_GE(backend_.acquires, 3); // retried every 50 ms
    EXPECT_GE(finished_ - started_, 300ms);
}

TEST_F(SupervisorTest, StandbyModeIsReadyBeforeTheLockAndRunningModeOnlyAfter) {
    backend_.onRenew = [](Interrupt&) -> Result<Lease> {
        ::kill(::getpid(), SIGTERM);
        return Lease{2s, "7"};
    };
    run();
    ASSERT_GE(notifier_.sent.size(), 2u);
    size_t ready = 0, active = 0;
    for (size_t i = 0; i < notifier_.sent.size(); ++i) {
        if (notifier_.sent[i] == "READY=1") ready = i;
        if (notifier_.sent[i].find("STATUS=active: holding 'unit' (token 7)") == 0) active = i;
    }
    EXPECT_LT(ready, active);

    notifier_.sent.clear();
    config_.notify.value = NotifyMode::Running;
    run();
    for (size_t i = 0; i < notifier_.sent.size(); ++i) {
        if (notifier_.sent[i] == "READY=1") ready = i;
        if (notifier_.sent[i].find("STATUS=active:") == 0) active = i;
    }
    EXPECT_GT(ready, active);
}

TEST_F(SupervisorTest, AWatchdogTooLongForTheLeaseIsWarnedAbout) {
    backend_.onRenew = [](Interrupt&) -> Result<Lease> {
        ::kill(::getpid(), SIGTERM);
        return Lease{2s, "7"};
    };
    notifier_.watchdog = 2s; // renew 500 ms + 2 s + stop 500 ms + margin ≥ ttl 2 s
    ::testing::internal::CaptureStderr();
    run();
    EXPECT_NE(
        ::testing::internal::GetCapturedStderr().find("WatchdogSec=2s is too long for ttl 2s"),
        std::string::npos);
    notifier_.watchdog = 200ms; // 500 ms + 200 ms + 500 ms + 522 ms < 2 s
    ::testing::internal::CaptureStderr();
    run();
    EXPECT_EQ(::testing::internal::GetCapturedStderr().find("too long"), std::string::npos);
}

TEST_F(SupervisorTest, WatchdogIsFedOnlyWhileTheLeaseIsConfirmed) {
    notifier_.watchdog = 200ms;
    backend_.onRenew = [](Interrupt&) -> Result<Lease> {
        return makeError(Errc::Unavailable, "timed out");
    };
    EXPECT_EQ(run(), exitcode::Lost);
    // Stopping starts at 2 s − 22 ms − 500 ms − 500 ms ≈ 978 ms: about 20 pings at 50 ms
    // (a quarter of WatchdogSec).
    int pings = 0;
    for (const auto& s : notifier_.sent)
        pings += s == "WATCHDOG=1";
    EXPECT_GE(pings, 8);
    EXPECT_LE(pings, 24);
    // None after STOPPING=1.
    bool stopping = false;
    for (const auto& s : notifier_.sent) {
        if (s.find("STOPPING=1") == 0) stopping = true;
        if (stopping) {
            EXPECT_NE(s, "WATCHDOG=1");
        }
    }
}

TEST_F(SupervisorTest, ALockDelayHoldsTheLockRenewingItBeforeThePayloadStarts) {
    backend_.delay = 1200ms;
    std::optional<TimePoint> firstRenew;
    backend_.onRenew = [&](Interrupt&) -> Result<Lease> {
        if (!firstRenew) firstRenew = BootClock::now();
        return Lease{2s, "7"};
    };
    const TimePoint t0 = BootClock::now();
    EXPECT_EQ(run("exit 0"), 0);
    std::ifstream in(pidFile_);
    ASSERT_TRUE(in.good());
    struct stat st {};
    ASSERT_EQ(::stat(pidFile_.c_str(), &st), 0);
    // The payload wrote its pid file only after the delay.
    const auto written = std::chrono::system_clock::time_point(
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec));
    const auto delayEnd = std::chrono::system_clock::now() - (BootClock::now() - t0) + 1200ms;
    EXPECT_GE(written, delayEnd - 20ms); // mtime granularity
    ASSERT_TRUE(firstRenew); // renew = 500 ms: renewed during the delay
    EXPECT_LT(*firstRenew - t0, 1200ms);
    EXPECT_TRUE(notifier_.saw("STATUS=lock-delay: holding 'unit'"));
    EXPECT_TRUE(notifier_.saw("ended without a release"));
}

TEST_F(SupervisorTest, SigtermDuringALockDelayReleasesAndNeverStartsThePayload) {
    backend_.delay = 5s;
    backend_.onRenew = [](Interrupt&) -> Result<Lease> {
        ::kill(::getpid(), SIGTERM);
        return Lease{2s, "7"};
    };
    EXPECT_EQ(run(), exitcode::Ok);
    EXPECT_LT(finished_ - started_, 2s);
    EXPECT_EQ(std::make_pair(payloadPid(), backend_.releases), std::make_pair(0, 1));
}

TEST_F(SupervisorTest, AWaitShorterThanTheLockDelayReleasesAndExits75) {
    backend_.delay = 5s;
    config_.wait.value = 1s;
    EXPECT_EQ(run(), exitcode::Busy);
    EXPECT_LT(finished_ - started_, 1s);
    EXPECT_EQ(std::make_pair(payloadPid(), backend_.releases), std::make_pair(0, 1));
}

TEST_F(SupervisorTest, ALockLostDuringItsDelayIsWaitedForAgain) {
    backend_.delay = 3s;
    int renews = 0;
    backend_.onRenew = [&](Interrupt&) -> Result<Lease> {
        if (++renews == 1) return makeError(Errc::Lost, "gone");
        return Lease{2s, "7"};
    };
    backend_.onAcquire = [&] {
        if (backend_.acquires == 2) backend_.delay = Duration::zero();
    };
    EXPECT_EQ(run("exit 4"), 4);
    EXPECT_EQ(backend_.acquires, 2);
    EXPECT_EQ(backend_.releases, 2); // the tidy-up after the loss, then the real release
}
