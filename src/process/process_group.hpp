// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include "process/guard.hpp"
#include "process/payload.hpp"

namespace lockunit {

// The payload in its own process group, for machines without systemd (a laptop, a container).
// The lock guard starts it and stops it: the guard is a subreaper, so the payload's daemonized
// descendants stay in its tree and are stopped too, even after lockunit itself died.
class ProcessGroupRunner final : public PayloadRunner {
public:
    explicit ProcessGroupRunner(Guard& guard) : guard_(guard) {}
    Result<pid_t> start(const LaunchSpec& spec, Interrupt& interrupt,
                        TimePoint releaseBefore) override;
    void forward(int sig, bool toAll) override { guard_.signal(sig, toAll); }
    void stop() override { guard_.stop(true); }
    void reap() override { guard_.reap(); }
    std::optional<int> mainExit() const override { return guard_.mainExit(); }
    bool finished() const override;
    std::optional<TimePoint> nextTimeout() const override { return guard_.nextTimeout(); }
    void onTimeout(TimePoint now) override { guard_.onTimeout(now); }
    std::string where() const override;

private:
    Guard& guard_;
};

} // namespace lockunit
