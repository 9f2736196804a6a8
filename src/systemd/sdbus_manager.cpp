// SPDX-License-Identifier: LGPL-2.1-or-later
// SystemdManager over sdbus-c++ 1.2 (systemd/systemd_manager.hpp), part of the scope module:
// sdbus-c++ and its exceptions stay inside this file.
#include "systemd/systemd_manager.hpp"

#include <sdbus-c++/sdbus-c++.h>

namespace lockunit {
namespace {

constexpr const char* kService = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr const char* kUnit = "org.freedesktop.systemd1.Unit";
constexpr const char* kJob = "org.freedesktop.systemd1.Job";

// One D-Bus call to systemd; a start job for a scope is quick, these bounds are for a
// manager that does not answer at all.
constexpr auto kCallTimeout = std::chrono::seconds(10);

using DbusProperties = std::vector<sdbus::Struct<std::string, sdbus::Variant>>;
using DbusAux = std::vector<sdbus::Struct<std::string, DbusProperties>>;

DbusProperties toDbus(const std::vector<ScopeProperty>& props) {
    DbusProperties out;
    for (const auto& p : props)
        std::visit([&](const auto& v) { out.emplace_back(p.name, sdbus::Variant(v)); }, p.value);
    return out;
}

Error failure(const sdbus::Error& e) {
    return makeError(Errc::Unavailable, e.getMessage());
}

// The reply of a call that returns a job's object path.
auto jobReply(SystemdManager::ReplyHandler reply) {
    return [reply = std::move(reply)](const sdbus::Error* e, sdbus::ObjectPath job) {
        if (e)
            reply({e->getName(), e->getMessage(), {}});
        else
            reply({{}, {}, job});
    };
}

class SdbusManager final : public SystemdManager {
public:
    ~SdbusManager() override {
        manager_.reset(); // the proxy goes before the connection it refers to
    }

    void connect(bool userBus) {
        connection_ =
            userBus ? sdbus::createSessionBusConnection() : sdbus::createSystemBusConnection();
        connection_->setMethodCallTimeout(kCallTimeout);
        manager_ = sdbus::createProxy(*connection_, kService, kPath);
        // Subscribed before any job exists (sdbus-c++ 1.2 adds the match only in
        // finishRegistration()), so no JobRemoved of ours can be missed.
        manager_->uponSignal("JobRemoved")
            .onInterface(kManager)
            .call([this](uint32_t, const sdbus::ObjectPath& job, const std::string& unit,
                         const std::string& result) {
                if (jobRemoved_) jobRemoved_(job, unit, result);
            });
        manager_->finishRegistration();
        fd_ = connection_->getEventLoopPollData().fd;
    }

    Result<void> startTransientUnit(const std::string& name, const std::string& mode,
                                    const std::vector<ScopeProperty>& properties,
                                    ReplyHandler reply) override {
        try {
            manager_->callMethodAsync("StartTransientUnit")
                .onInterface(kManager)
                .withTimeout(kCallTimeout)
                .withArguments(name, mode, toDbus(properties), DbusAux{})
                .uponReplyInvoke(jobReply(std::move(reply)));
            return {};
        } catch (const sdbus::Error& e) {
            return failure(e);
        }
    }

    Result<void> stopUnit(const std::string& name, const std::string& mode,
                          ReplyHandler reply) override {
        try {
            manager_->callMethodAsync("StopUnit")
                .onInterface(kManager)
                .withTimeout(kCallTimeout)
                .withArguments(name, mode)
                .uponReplyInvoke(jobReply(std::move(reply)));
            return {};
        } catch (const sdbus::Error& e) {
            return failure(e);
        }
    }

    Result<void> killUnit(const std::string& name, const std::string& who, int signal,
                          ReplyHandler reply) override {
        try {
            manager_->callMethodAsync("KillUnit")
                .onInterface(kManager)
                .withTimeout(kCallTimeout)
                .withArguments(name, who, static_cast<int32_t>(signal))
                .uponReplyInvoke([reply = std::move(reply)](const sdbus::Error* e) {
                    if (e)
                        reply({e->getName(), e->getMessage(), {}});
                    else
                        reply({});
                });
            return {};
        } catch (const sdbus::Error& e) {
            return failure(e);
        }
    }

    Result<UnitState> unitState(const std::string& name) override {
        try {
            sdbus::ObjectPath unitPath;
            manager_->callMethod("GetUnit")
                .onInterface(kManager)
                .withTimeout(kCallTimeout)
                .withArguments(name)
                .storeResultsTo(unitPath);
            auto unit = sdbus::createProxy(*connection_, kService, unitPath);
            UnitState state;
            state.activeState =
                unit->getProperty("ActiveState").onInterface(kUnit).get<std::string>();
            auto job = unit->getProperty("Job")
                           .onInterface(kUnit)
                           .get<sdbus::Struct<uint32_t, sdbus::ObjectPath>>();
            if (std::get<0>(job) != 0) {
                auto jobProxy = sdbus::createProxy(*connection_, kService, std::get<1>(job));
                state.jobType =
                    jobProxy->getProperty("JobType").onInterface(kJob).get<std::string>();
            }
            return state;
        } catch (const sdbus::Error& e) {
            return failure(e);
        }
    }

    void onJobRemoved(JobRemovedHandler handler) override { jobRemoved_ = std::move(handler); }

    int fd() const override { return fd_; }

    Result<PollData> pollData() override {
        try {
            auto data = connection_->getEventLoopPollData();
            PollData out;
            out.events = data.events;
            if (auto rel = data.getRelativeTimeout())
                out.timeout = std::chrono::ceil<std::chrono::milliseconds>(*rel);
            return out;
        } catch (const sdbus::Error& e) {
            return failure(e);
        }
    }

    Result<void> dispatch() override {
        try {
            while (connection_->processPendingRequest()) {
            }
            return {};
        } catch (const sdbus::Error& e) {
            return failure(e);
        }
    }

private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> manager_;
    int fd_ = -1;
    JobRemovedHandler jobRemoved_;
};

} // namespace

Result<std::unique_ptr<SystemdManager>> connectSystemd(bool userBus) {
    auto manager = std::make_unique<SdbusManager>();
    try {
        manager->connect(userBus);
    } catch (const sdbus::Error& e) {
        return makeError(Errc::Unavailable,
                         std::string("cannot connect to the ") + (userBus ? "user" : "system") +
                             " bus: " + e.getMessage() + " (" + e.getName() + ")");
    }
    return std::unique_ptr<SystemdManager>(std::move(manager));
}

} // namespace lockunit
