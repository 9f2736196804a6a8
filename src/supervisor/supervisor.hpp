// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <optional>
#include <signal.h>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "config/config.hpp"
#include "process/guard.hpp"
#include "supervisor/lease.hpp"
#include "systemd/notify.hpp"
#include "systemd/notify_relay.hpp"
#include "process/payload.hpp"
#include "util/clock.hpp"
#include "util/exitcode.hpp"
#include "util/event_loop.hpp"
#include "util/signals.hpp"

namespace lockunit {

// The state machine of docs/design.md ("Lifecycle"): Waiting → Starting → Running → Stopping →
// Releasing, in one thread, on one EventLoop: the signalfd, the lease deadline's timer and the
// lock guard's socket (urgent: served inside backend calls too), the runner's fd, the backend's
// wake-up and loss fds, and the payload's notifications.
class Supervisor {
public:
    struct Deps {
        const Config& config;
        LockBackend& backend;
        PayloadRunner& runner;
        Notifier& notifier;
        const Clock& clock;
        SignalSource& signals;
        // The lock guard: holds the lock's fds, starts and reaps the payload for the runner.
        Guard& guard;
        // notify=relay: the payload's own NOTIFY_SOCKET, polled while the payload runs.
        NotifyRelay* relay = nullptr;
    };
    Supervisor(Deps deps, LaunchSpec spec, std::string holderId);

    // Runs to the end and returns lockunit's exit code.
    int run();

private:
    class SignalInterrupt;
    enum class Phase { Waiting, Running, Stopping, Releasing };

    // Each returns an exit code, or nullopt to go on to the next phase.
    std::optional<int> waitForLock();
    // The lock is ours but its previous holder ended without a release (Lease::delay): hold it,
    // renewing, until that holder's payload must be gone. nullopt: start the payload now;
    // kWaitAgain: the lock was lost meanwhile; otherwise an exit code.
    static constexpr int kWaitAgain = -1;
    std::optional<int> sitOutLockDelay(const Lease& lease, TimePoint giveUp);
    int runPayload();
    // The parts of runPayload(): start the payload (an exit code if that failed); stop it if
    // the lease, the guard or a stop request says so (the exit code); wait for its tree once
    // its main process exited (the exit code).
    std::optional<int> startPayload();
    std::optional<int> mustStopNow(TimePoint now);
    int payloadExited(int code);
    // Stops the payload; `lost`, when given, is logged as the "lost" event ("lost lock 'NAME':
    // LOST") once STATUS= says so.
    int stopPayload(int exitCode, const std::string& why, const std::string& lost = {});
    void logLost(const std::string& why);
    // Serves the runner and the guard until every process of the payload is gone, the lock
    // guard has left, and (scope mode) the scope has ended; or until `giveUp`.
    void waitUntilStopped(TimePoint giveUp = TimePoint::max());
    void releaseLock(bool takenAway);
    // A successful acquire or renewal: the new deadline, published to the lock guard too.
    void confirmLease(TimePoint sentAt, Duration validity);
    // Why the payload must stop now that is not the lease's own deadline: the lock guard is
    // gone, or it stopped the payload itself. Empty if neither.
    std::string guardTrouble() const;

    // What a round of the loop watches besides the signals, the lease deadline, the lock
    // guard and the runner: the backend's wake-up fd (waiting) or its loss fd (holding), and
    // the payload's notifications (notify=relay, holding).
    struct Watched {
        int wake = -1;
        int loss = -1;
        bool relay = false;
    };
    // One round of the loop: runs the callbacks of the sources that are ready, waking at
    // `until` (or the runner's next timeout) at the latest. The callbacks set holderChanged_
    // and lossEvent_; the runner's timeouts are served after it.
    void dispatch(TimePoint until, Watched watched);
    void dispatch(TimePoint until);
    // notify=relay: passes the payload's READY=1 / STATUS= on to systemd.
    void relayNotifications();
    void onSignal(int sig);
    void drainSignals(); // the signals pending now, without waiting
    void feedWatchdog(TimePoint now, bool confirmed);
    void showWaitingStatus(const std::string& reason);
    std::string backendScheme() const;

    Deps d_;
    LaunchSpec spec_;
    std::string holderId_;
    Phase phase_ = Phase::Waiting;
    LeaseDeadline lease_;
    std::string token_;
    std::string since_;
    pid_t payloadPid_ = -1;
    bool stopRequested_ = false;
    bool relayedReady_ = false;
    bool takenAway_ = false; // the backend said the lock is no longer ours
    std::string lastWaitReason_; // why a free lock was not granted (waitReason()), if it was
    bool holderChanged_ = false; // the backend's wake-up fd fired in the last round
    bool lossEvent_ = false;     // the backend's loss fd fired in the last round

    EventLoop loop_;
    EventLoop::Source signalSource_, guardSource_, deadlineTimer_, runnerSource_, relaySource_,
        wakeSource_, lossSource_;
    std::optional<Duration> watchdogInterval_;
    TimePoint nextWatchdog_{};
};

} // namespace lockunit
