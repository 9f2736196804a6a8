// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <memory>
#include <string>

#include "process/guard.hpp"
#include "process/payload.hpp"
#include "systemd/scope_spec.hpp"

namespace lockunit {

// Scope mode: the payload in its own transient scope, created over D-Bus (docs/design.md
// "systemd facts"): StartTransientUnit with PIDs=[the lock guard] moves the guard into a new
// scope, and once that start job has finished with "done" the guard starts the payload, which
// is so born inside it. The scope is bound to lockunit's own unit (BindsTo=), so it goes down
// with lockunit however lockunit dies, and the guard in it sees to the order of that (the
// tree first, the lock after). Stopping is StopUnit(scope): KillSignal= to every process in
// the cgroup (the guard ignores it), SIGKILL from the guard after stop_timeout, from systemd
// (TimeoutStopUSec=) a margin later. Once the guard has reaped the payload's last process it
// exits, the scope ends, and only then is the lock released.
//
// D-Bus runs on lockunit's event loop: fd(), events() and nextTimeout() (sdbus-c++'s poll
// data) make a source of the supervisor's loop; process() and onTimeout() are its callbacks.
//
// The implementation is the module lockunit-scope.so, loaded only when a payload runs in a scope
// or `cleanup` stops one: loading libsdbus-c++ costs every start about 2 ms, which a run in a
// process group need not pay. scope.cpp holds the logic and talks to systemd through the
// SystemdManager seam (systemd_manager.hpp), which sdbus_manager.cpp implements over sdbus-c++:
// the library and its exceptions stay in that file, and the unit tests drive scope.cpp against
// a fake manager.
class ScopeRunner : public PayloadRunner {
public:
    struct Options {
        bool userBus = false; // the user's manager (--user) rather than the system's
        std::string ownUnit;  // BindsTo=, and where the scope's name comes from
        std::string slice, memoryMax, cpuQuota, tasksMax;
        PayloadGuard* guard = nullptr; // starts and reaps the payload; not needed for prepare()
        std::vector<std::string> properties; // --property NAME=VALUE, validated by the config
    };

    // Loads the scope module unless it is loaded already (or linked in, as in the unit tests).
    // Errc::Unavailable, with the reason, if it cannot be loaded.
    static Result<void> load();
    // Loads the module if needed, connects to the bus and subscribes to JobRemoved; nothing is
    // started yet.
    static Result<std::unique_ptr<ScopeRunner>> connect(Options options);

    const std::string& scopeName() const { return scope_; }
    // True if prepare() found and stopped a stale scope.
    bool stoppedStale() const { return stoppedStale_; }

protected:
    explicit ScopeRunner(std::string scope) : scope_(std::move(scope)) {}
    std::string scope_;
    bool stoppedStale_ = false;
};

// The scope module's descriptor (util/module.hpp): LOCKUNIT_MODULE(scope, ScopeModule) in
// scope.cpp.
struct ScopeModule {
    Result<std::unique_ptr<ScopeRunner>> (*connect)(ScopeRunner::Options options);
};

} // namespace lockunit
