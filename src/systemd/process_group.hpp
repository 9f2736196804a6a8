// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include "systemd/payload.hpp"

namespace lockunit {

// The payload in its own process group, for machines without systemd (a laptop, a container).
// lockunit is a child subreaper, so a payload's daemonized descendants come back to it and are
// stopped too. If lockunit is SIGKILLed, PR_SET_PDEATHSIG kills the main process; its own
// children then survive — scope mode has no such gap.
class ProcessGroupRunner final : public PayloadRunner {
public:
    Result<pid_t> start(const LaunchSpec& spec, Interrupt& interrupt,
                        TimePoint releaseBefore) override;
    void forward(int sig, bool toAll) override;
    void stop() override;
    void reap() override { reaper_.reap(); }
    std::optional<int> mainExit() const override { return reaper_.mainExit(); }
    bool finished() const override;
    std::optional<TimePoint> nextTimeout() const override;
    void onTimeout(TimePoint now) override;
    std::string where() const override;

private:
    void signalEverything(int sig) const;

    ChildReaper reaper_;
    pid_t pgid_ = -1;
    int stopSignal_ = 15;
    Duration stopTimeout_{};
    std::optional<TimePoint> killAt_;
};

} // namespace lockunit
