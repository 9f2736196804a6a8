// SPDX-License-Identifier: LGPL-2.1-or-later
// lockunit: run a command only while holding a distributed lock.

#include <cstdio>
#include <exception>

#include "app/app.hpp"
#include "util/exitcode.hpp"
#include "util/log.hpp"

int main(int argc, char** argv) {
    try {
        return lockunit::runApp(argc, argv);
    } catch (const std::exception& e) {
        lockunit::log::error(std::string("internal error: ") + e.what());
        return lockunit::exitcode::Software;
    }
}
