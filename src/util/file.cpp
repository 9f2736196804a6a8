// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/file.hpp"

#include <cerrno>
#include <fcntl.h>

#include "util/fd.hpp"

namespace lockunit {

std::optional<std::string> readFile(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::nullopt;
        if (n == 0) return out;
        out.append(buf, static_cast<size_t>(n));
    }
}

} // namespace lockunit
