// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// The checks across settings (validate.cpp), and the list of errors that loading collects.

#include <string>
#include <vector>

#include "config/config.hpp"

namespace lockunit {

// Collects errors; remembers whether any came from the config file.
struct Problems {
    std::vector<std::string> lines;
    bool fromFile = false;
    // "reports.toml:12:9: what", "--ttl: what".
    void add(const Origin& at, const std::string& what);
};

// Fills in the defaults that depend on other settings (name, backend, renew) and checks the
// settings together: a valid lock name, a known backend, renew + stop_timeout + margin under
// the ttl, and a command when `needCommand`.
void validate(Config& c, bool needCommand, Problems& problems);

} // namespace lockunit
