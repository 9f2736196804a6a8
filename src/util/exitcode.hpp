// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

namespace lockunit {

// lockunit's exit codes (docs/guarantees.md, README "Exit codes"). The payload's own code
// passes through; the busy code can be changed (conflict_exit_code) to any but the others.
namespace exitcode {
inline constexpr int Ok = 0;
inline constexpr int Usage = 64;
inline constexpr int Unavailable = 69;
inline constexpr int Software = 70;
inline constexpr int Busy = 75;
inline constexpr int Config = 78;
inline constexpr int Lost = 79;
} // namespace exitcode

} // namespace lockunit
