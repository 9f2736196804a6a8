// SPDX-License-Identifier: LGPL-2.1-or-later
// The scope runner (src/systemd/scope.cpp) against a fake systemd manager, a fake lock guard and
// a fake clock: which calls it makes, with which arguments, in which order, and what it does when
// systemd fails it. The real D-Bus path is proven by tests/e2e under a real systemd.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <deque>
#include <map>
#include <poll.h>

#include "systemd/systemd_manager.hpp"

using namespace lockunit;
using namespace std::chrono_literals;

namespace {

constexpr const char* kScope = "lockunit-reports.service.scope";
constexpr const char* kNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit";
constexpr const char* kUnitExists = "org.freedesktop.systemd1.UnitExists";
constexpr const char* kDenied = "org.freedesktop.DBus.Error.AccessDenied";

using Log = std::vector<std::string>;

struct FakeClock final : Clock {
    TimePoint t = TimePoint(1000h);
    TimePoint now() const override { return t; }
};

// How systemd answers one call: an error, or a job that ends with `jobResult` (nullopt: never).
struct Answer {
    std::string errorName;
    std::optional<std::string> jobResult = "done";
};

// Records every call in the shared log, as "Method arg arg…", and answers each from its script
// (success and a job that ends "done" when the script is empty). Replies and JobRemoved arrive
// only from dispatch(), as on the bus. Every wait for the bus costs `tick` of the fake clock
// (0: the bus has no timeout of its own).
class FakeSystemd final : public SystemdManager {
public:
    FakeSystemd(Log& log, FakeClock& clock) : log_(log), clock_(clock) {}

    std::map<std::string, std::deque<Answer>> script;
    std::vector<ScopeProperty> started; // the properties of the last StartTransientUnit
    UnitState unit;
    bool unitUnreadable = false;
    bool broken = false;
    Duration tick = 1s;

    Result<void> startTransientUnit(const std::string& name, const std::string& mode,
                                    const std::vector<ScopeProperty>& properties,
                                    ReplyHandler reply) override {
        started = properties;
        return call("StartTransientUnit", name, name + " " + mode, std::move(reply));
    }
    Result<void> stopUnit(const std::string& name, const std::string& mode,
                          ReplyHandler reply) override {
        return call("StopUnit", name, name + " " + mode, std::move(reply));
    }
    Result<void> killUnit(const std::string& name, const std::string& who, int signal,
                          ReplyHandler reply) override {
        log_.push_back("KillUnit " + name + " " + who + " " + std::to_string(signal));
        pending_.push_back([reply] { reply({}); });
        return {};
    }
    Result<UnitState> unitState(const std::string& name) override {
        log_.push_back("GetUnit " + name);
        if (unitUnreadable) return makeError(Errc::Unavailable, "Access denied");
        return unit;
    }
    void onJobRemoved(JobRemovedHandler handler) override { jobRemoved_ = std::move(handler); }
    int fd() const override { return -1; } // poll() skips it
    Result<PollData> pollData() override {
        if (broken) return makeError(Errc::Unavailable, "Connection reset by peer");
        if (tick == 0s) return PollData{POLLIN, std::nullopt};
        clock_.t += tick;
        return PollData{POLLIN, std::optional<Duration>(0ms)};
    }
    Result<void> dispatch() override {
        if (broken) return makeError(Errc::Unavailable, "Connection reset by peer");
        while (!pending_.empty()) {
            auto next = std::move(pending_.front());
            pending_.pop_front();
            next();
        }
        return {};
    }

private:
    Result<void> call(const std::string& method, const std::string& unit, const std::string& args,
                      ReplyHandler reply) {
        log_.push_back(method + " " + args);
        Answer answer;
        if (auto& queue = script[method]; !queue.empty()) {
            answer = queue.front();
            queue.pop_front();
        }
        if (!answer.errorName.empty()) {
            pending_.push_back([reply, answer] { reply({answer.errorName, "refused", {}}); });
            return {};
        }
        const std::string job = "/org/freedesktop/systemd1/job/" + std::to_string(++jobs_);
        pending_.push_back([reply, job] { reply({{}, {}, job}); });
        if (answer.jobResult)
            pending_.push_back([this, job, unit, result = *answer.jobResult] {
                log_.push_back("JobRemoved " + job + " " + result);
                jobRemoved_(job, unit, result);
            });
        return {};
    }

    Log& log_;
    FakeClock& clock_;
    JobRemovedHandler jobRemoved_;
    std::deque<std::function<void()>> pending_;
    int jobs_ = 0;
};

class FakeGuard final : public PayloadGuard {
public:
    explicit FakeGuard(Log& log) : log_(log) {}
    std::optional<int> exit;
    bool tree = true;

    pid_t pid() const override { return 4242; }
    Result<pid_t> spawn(const LaunchSpec&, Duration, Interrupt&, TimePoint) override {
        log_.push_back("spawn");
        return 4243;
    }
    void signal(int sig, bool toAll) override {
        log_.push_back("signal " + std::to_string(sig) + (toAll ? " all" : " main"));
    }
    void stop(bool sendSignal) override {
        log_.push_back(sendSignal ? "guard stop" : "guard stop (systemd signals)");
    }
    void reap() override {}
    std::optional<int> mainExit() const override { return exit; }
    bool treeLeft() const override { return tree; }

private:
    Log& log_;
};

class ScopeRunnerTest : public ::testing::Test {
protected:
    ScopeRunnerTest() {
        auto fake = std::make_unique<FakeSystemd>(log_, clock_);
        systemd_ = fake.get();
        ScopeRunner::Options options;
        options.ownUnit = "reports.service";
        options.guard = &guard_;
        runner_ = makeScopeRunner(std::move(options), std::move(fake), clock_);
        spec_.path = "/bin/true";
        spec_.argv = {"true"};
        spec_.stopSignal = SIGTERM;
        spec_.stopTimeout = 5s;
    }

    Result<pid_t> start() { return runner_->start(spec_, never_, clock_.now() + 1h); }
    // Started, then the log cleared and the bus answering at once.
    void started() {
        ASSERT_TRUE(start().ok());
        log_.clear();
        systemd_->tick = 0s;
    }
    // Calls onTimeout() at `at` after the fake clock has moved there.
    void timeoutAt(TimePoint at) {
        clock_.t = at;
        runner_->onTimeout(at);
    }

    Log log_;
    FakeClock clock_;
    FakeGuard guard_{log_};
    FakeSystemd* systemd_;
    std::unique_ptr<ScopeRunner> runner_;
    LaunchSpec spec_;
    NoInterrupt never_;
};

std::string job(int n) {
    return "/org/freedesktop/systemd1/job/" + std::to_string(n);
}

} // namespace

// ---- start ----

TEST_F(ScopeRunnerTest, StartsTheScopeWithTheGuardInItAndOnlyThenThePayload) {
    auto pid = start();
    ASSERT_TRUE(pid.ok()) << pid.error().message;
    EXPECT_EQ(*pid, 4243);
    EXPECT_EQ(log_, (Log{"StartTransientUnit " + std::string(kScope) + " fail",
                         "JobRemoved " + job(1) + " done", "spawn"}));
    EXPECT_EQ(runner_->scopeName(), kScope);
    auto has = [&](const ScopeProperty& wanted) {
        for (const auto& p : systemd_->started)
            if (p == wanted) return true;
        return false;
    };
    EXPECT_TRUE(has({"PIDs", std::vector<uint32_t>{4242}}));
    EXPECT_TRUE(has({"BindsTo", std::vector<std::string>{"reports.service"}}));
}

TEST_F(ScopeRunnerTest, AFailedStartJobNeverStartsThePayload) {
    systemd_->script["StartTransientUnit"] = {{"", "failed"}};
    auto pid = start();
    ASSERT_FALSE(pid.ok());
    EXPECT_EQ(pid.error().code, Errc::Unavailable);
    EXPECT_NE(pid.error().message.find("start job ended with result 'failed'"), std::string::npos)
        << pid.error().message;
    EXPECT_EQ(std::count(log_.begin(), log_.end(), "spawn"), 0);
}

TEST_F(ScopeRunnerTest, AStartJobThatNeverEndsTimesOutWithoutStartingThePayload) {
    systemd_->script["StartTransientUnit"] = {{"", std::nullopt}};
    const TimePoint before = clock_.now();
    auto pid = start();
    ASSERT_FALSE(pid.ok());
    EXPECT_NE(pid.error().message.find("waiting for its start job: timed out"), std::string::npos)
        << pid.error().message;
    EXPECT_GE(clock_.now() - before, 15s);
    EXPECT_EQ(std::count(log_.begin(), log_.end(), "spawn"), 0);
}

TEST_F(ScopeRunnerTest, AStartTheManagerRefusesIsAnErrorWithItsName) {
    systemd_->script["StartTransientUnit"] = {{kDenied}};
    auto pid = start();
    ASSERT_FALSE(pid.ok());
    EXPECT_EQ(pid.error().code, Errc::Unavailable);
    EXPECT_NE(pid.error().message.find(kDenied), std::string::npos) << pid.error().message;
    EXPECT_EQ(log_.size(), 1u);
}

TEST_F(ScopeRunnerTest, AScopeNameStillLoadedIsStoppedThenStartedAgain) {
    systemd_->script["StartTransientUnit"] = {{kUnitExists}};
    ASSERT_TRUE(start().ok());
    const std::string scope = kScope;
    EXPECT_EQ(log_, (Log{"StartTransientUnit " + scope + " fail", "StopUnit " + scope + " replace",
                         "JobRemoved " + job(1) + " done", "StartTransientUnit " + scope + " fail",
                         "JobRemoved " + job(2) + " done", "spawn"}));
    EXPECT_TRUE(runner_->stoppedStale());
}

// ---- a stale scope of an earlier run ----

TEST_F(ScopeRunnerTest, PrepareStopsAStaleScopeAndWaitsForItsStopJob) {
    ASSERT_TRUE(runner_->prepare(never_).ok());
    EXPECT_EQ(log_, (Log{"StopUnit " + std::string(kScope) + " replace",
                         "JobRemoved " + job(1) + " done"}));
    EXPECT_TRUE(runner_->stoppedStale());
}

TEST_F(ScopeRunnerTest, PrepareWithNoStaleScopeStopsNothing) {
    systemd_->script["StopUnit"] = {{kNoSuchUnit}};
    ASSERT_TRUE(runner_->prepare(never_).ok());
    EXPECT_FALSE(runner_->stoppedStale());
}

TEST_F(ScopeRunnerTest, PrepareFailsWhenTheStaleScopeCannotBeStopped) {
    systemd_->script["StopUnit"] = {{kDenied}};
    auto r = runner_->prepare(never_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Unavailable);
    EXPECT_NE(r.error().message.find("cannot stop stale scope"), std::string::npos);
    EXPECT_FALSE(runner_->stoppedStale());
}

TEST_F(ScopeRunnerTest, PrepareGivesUpOnAStaleScopeThatNeverStops) {
    systemd_->script["StopUnit"] = {{"", std::nullopt}};
    auto r = runner_->prepare(never_);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("timed out"), std::string::npos) << r.error().message;
    EXPECT_FALSE(runner_->stoppedStale());
}

// ---- stop ----

TEST_F(ScopeRunnerTest, StopIsSystemdsStopJobAndEndsWhenTheGuardHasLeft) {
    started();
    runner_->stop();
    EXPECT_EQ(log_, (Log{"guard stop (systemd signals)",
                         "StopUnit " + std::string(kScope) + " replace"}));
    runner_->process();
    EXPECT_FALSE(runner_->finished()); // the guard is still in the scope
    guard_.exit = 0;
    guard_.tree = false;
    EXPECT_TRUE(runner_->finished());
    EXPECT_EQ(std::count_if(log_.begin(), log_.end(),
                            [](const std::string& l) { return l.starts_with("signal"); }),
              0);
}

TEST_F(ScopeRunnerTest, AStopThatSystemdDoesNotFinishEndsInSigkillJustAfterTheStopTimeout) {
    started();
    systemd_->script["StopUnit"] = {{"", std::nullopt}};
    const TimePoint stopped = clock_.now();
    runner_->stop();
    runner_->process();
    const TimePoint kill = stopped + spec_.stopTimeout + 200ms;
    ASSERT_EQ(runner_->nextTimeout(), kill);
    log_.clear();
    timeoutAt(kill - 1ms);
    EXPECT_TRUE(log_.empty());
    timeoutAt(kill);
    EXPECT_EQ(log_, (Log{"signal 9 all"}));
    // Again every 50 ms: the children of a killed parent come to the guard only after it died.
    EXPECT_EQ(runner_->nextTimeout(), kill + 50ms);
    timeoutAt(kill + 50ms);
    EXPECT_EQ(log_, (Log{"signal 9 all", "signal 9 all"}));
    // systemd never answered at all: lockunit stops waiting for it, and counts its own children.
    log_.clear();
    timeoutAt(stopped + spec_.stopTimeout + 15s);
    EXPECT_EQ(log_, (Log{"signal 15 all", "signal 18 all", "signal 9 all"}));
    guard_.exit = -9;
    guard_.tree = false;
    EXPECT_TRUE(runner_->finished());
}

TEST_F(ScopeRunnerTest, AStopUnitErrorFallsBackToSignalsAndSigkillAfterTheStopTimeout) {
    started();
    systemd_->script["StopUnit"] = {{kDenied}};
    const TimePoint stopped = clock_.now();
    runner_->stop();
    runner_->process();
    EXPECT_EQ(log_,
              (Log{"guard stop (systemd signals)", "StopUnit " + std::string(kScope) + " replace",
                   "signal 15 all", "signal 18 all"}));
    EXPECT_EQ(runner_->nextTimeout(), stopped + spec_.stopTimeout);
    log_.clear();
    timeoutAt(stopped + spec_.stopTimeout);
    EXPECT_EQ(log_, (Log{"signal 9 all"}));
}

TEST_F(ScopeRunnerTest, AScopeAlreadyGoneNeedsNoSignals) {
    started();
    systemd_->script["StopUnit"] = {{kNoSuchUnit}};
    runner_->stop();
    runner_->process();
    guard_.exit = 0;
    guard_.tree = false;
    EXPECT_TRUE(runner_->finished());
    EXPECT_EQ(log_.size(), 2u); // guard stop, StopUnit
}

TEST_F(ScopeRunnerTest, AFailedStopJobIsTriedThreeTimesThenSignalsTakeOver) {
    started();
    systemd_->script["StopUnit"] = {{"", "failed"}, {"", "failed"}, {"", "failed"}};
    runner_->stop();
    runner_->process();
    runner_->process();
    runner_->process();
    EXPECT_EQ(std::count(log_.begin(), log_.end(), "StopUnit " + std::string(kScope) + " replace"),
              3);
    EXPECT_EQ(log_.back(), "signal 18 all");
    EXPECT_EQ(log_[log_.size() - 2], "signal 15 all");
}

TEST_F(ScopeRunnerTest, ALostConnectionWhileStoppingFallsBackToSignals) {
    started();
    systemd_->script["StopUnit"] = {{"", std::nullopt}};
    runner_->stop();
    systemd_->broken = true;
    runner_->process();
    EXPECT_EQ(runner_->fd(), -1);
    EXPECT_EQ(log_.back(), "signal 18 all");
}

TEST_F(ScopeRunnerTest, AStopBeforeAnythingStartedIsFinishedAtOnce) {
    runner_->stop();
    EXPECT_TRUE(log_.empty());
    guard_.exit = 127;
    guard_.tree = false;
    EXPECT_TRUE(runner_->finished());
}

// ---- signals and the own unit ----

TEST_F(ScopeRunnerTest, ASignalForTheWholeTreeGoesThroughKillUnit) {
    started();
    runner_->forward(SIGHUP, true);
    runner_->forward(SIGUSR1, false);
    EXPECT_EQ(log_, (Log{"KillUnit " + std::string(kScope) + " all " + std::to_string(SIGHUP),
                         "signal " + std::to_string(SIGUSR1) + " main"}));
}

TEST_F(ScopeRunnerTest, OwnUnitIsStoppingWhileDeactivatingOrWithAStopJobQueued) {
    systemd_->unit = {"deactivating", ""};
    EXPECT_TRUE(runner_->ownUnitStopping());
    systemd_->unit = {"active", "stop"};
    EXPECT_TRUE(runner_->ownUnitStopping());
    systemd_->unit = {"active", "restart"};
    EXPECT_TRUE(runner_->ownUnitStopping());
    systemd_->unit = {"active", "reload"};
    EXPECT_FALSE(runner_->ownUnitStopping());
    systemd_->unit = {"active", ""};
    EXPECT_FALSE(runner_->ownUnitStopping());
    systemd_->unitUnreadable = true;
    EXPECT_FALSE(runner_->ownUnitStopping());
    EXPECT_EQ(log_.back(), "GetUnit reports.service");
}
