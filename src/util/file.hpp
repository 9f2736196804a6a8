// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <optional>
#include <string>

namespace lockunit {

// The whole content of a (small) file, read with open/read: no iostream, whose first use builds
// the C++ locale and costs about half a megabyte of resident memory (docs/benchmarks.md).
// nullopt when it cannot be read; errno says why.
std::optional<std::string> readFile(const std::string& path);

} // namespace lockunit
