// SPDX-License-Identifier: LGPL-2.1-or-later
#include "process/process_group.hpp"

namespace lockunit {

Result<pid_t> ProcessGroupRunner::start(const LaunchSpec& spec, Interrupt& interrupt,
                                        TimePoint releaseBefore) {
    // A pause between acquiring and here (SIGSTOP, suspend) may have eaten the lease. Nothing
    // has to happen between fork and exec here (no scope to enter), so the child exec()s at
    // once: a handshake would only add a wake-up of each side to every start.
    if (BootClock::now() >= releaseBefore)
        return makeError(Errc::Lost, "the lease ran out before the payload could start");
    return guard_.spawn(spec, spec.guardSlack, interrupt, releaseBefore);
}

bool ProcessGroupRunner::finished() const {
    return guard_.mainExit().has_value() && !guard_.treeLeft();
}

std::string ProcessGroupRunner::where() const {
    return "process group " + std::to_string(guard_.payload());
}

} // namespace lockunit
