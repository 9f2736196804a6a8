// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/text.hpp"

namespace lockunit {

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> pieces;
    size_t start = 0;
    for (;;) {
        size_t end = text.find(separator, start);
        if (end == std::string_view::npos) {
            pieces.push_back(text.substr(start));
            return pieces;
        }
        pieces.push_back(text.substr(start, end - start));
        start = end + 1;
    }
}

std::vector<std::string_view> splitTerminated(std::string_view text, char separator) {
    std::vector<std::string_view> pieces = split(text, separator);
    if (pieces.back().empty()) pieces.pop_back();
    return pieces;
}

} // namespace lockunit
