// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// The configuration and the options as text (print.cpp).

#include <string>

#include "config/config.hpp"

namespace lockunit {

// The resolved configuration as TOML, each value annotated with where it came from
// (`lockunit check`).
std::string formatConfig(const Config& config);

// The text of --help, generated from the option table.
std::string helpText();

} // namespace lockunit
