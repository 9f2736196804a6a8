// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

namespace lockunit {

// The whole program, from argv to exit code: parse, load, then run, check or status.
int runApp(int argc, char** argv);

} // namespace lockunit
