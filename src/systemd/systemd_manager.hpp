// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "systemd/scope.hpp"
#include "util/clock.hpp"

namespace lockunit {

// The part of systemd's manager (org.freedesktop.systemd1.Manager) that scope mode uses, over
// one bus connection: the seam between the scope runner's logic (scope.cpp) and sdbus-c++
// (sdbus_manager.cpp). Nothing here names a D-Bus library, so the unit tests
// (tests/unit/test_scope_runner.cpp) drive the runner against a fake manager.
//
// Replies and signals arrive only from dispatch(), which the runner calls from its own waits
// and from the supervisor's event loop (fd() and pollData() say when). Errors are values: the
// implementation catches its library's exceptions, and its messages are the library's text.
class SystemdManager {
public:
    // One asynchronous call's outcome: a D-Bus error (name and message), or the job object path
    // that StartTransientUnit and StopUnit return.
    struct Reply {
        std::string errorName, errorMessage;
        std::string job;
        bool failed() const { return !errorName.empty(); }
    };
    using ReplyHandler = std::function<void(const Reply&)>;
    // The signal JobRemoved(id, job, unit, result), for every job of every unit.
    using JobRemovedHandler = std::function<void(const std::string& job, const std::string& unit,
                                                 const std::string& result)>;
    // A unit's ActiveState, and the JobType of the job queued for it (empty: none).
    struct UnitState {
        std::string activeState;
        std::string jobType;
    };
    // What to poll fd() for, and the library's own timeout (nullopt: none).
    struct PollData {
        short events = 0;
        std::optional<Duration> timeout;
    };

    virtual ~SystemdManager() = default;

    // StartTransientUnit(name, mode, properties, no auxiliary units).
    virtual Result<void> startTransientUnit(const std::string& name, const std::string& mode,
                                            const std::vector<ScopeProperty>& properties,
                                            ReplyHandler reply) = 0;
    virtual Result<void> stopUnit(const std::string& name, const std::string& mode,
                                  ReplyHandler reply) = 0;
    virtual Result<void> killUnit(const std::string& name, const std::string& who, int signal,
                                  ReplyHandler reply) = 0;
    // Synchronous: GetUnit(unit), then its properties.
    virtual Result<UnitState> unitState(const std::string& unit) = 0;
    // Set once, before the first call: no JobRemoved of a job started later can be missed.
    virtual void onJobRemoved(JobRemovedHandler handler) = 0;

    virtual int fd() const = 0;
    virtual Result<PollData> pollData() = 0;
    // Runs the handlers of everything that has arrived. An error: the connection is broken.
    virtual Result<void> dispatch() = 0;
};

// Connects to the system bus (or the user's, with `userBus`) and subscribes to JobRemoved.
Result<std::unique_ptr<SystemdManager>> connectSystemd(bool userBus);

// The scope runner over a connected manager; `clock` is read for its own timeouts.
std::unique_ptr<ScopeRunner> makeScopeRunner(ScopeRunner::Options options,
                                             std::unique_ptr<SystemdManager> manager,
                                             const Clock& clock);

} // namespace lockunit
