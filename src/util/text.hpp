// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string_view>
#include <vector>

namespace lockunit {

// The pieces of text between the separators, in order, empty pieces kept: "a,,b" → "a", "",
// "b"; "a," → "a", ""; "" → one empty piece. For lists where an empty element is an error the
// caller reports (hosts, signals) or means something (an empty PATH entry is ".").
// The pieces point into text: it must outlive them.
std::vector<std::string_view> split(std::string_view text, char separator);

// The pieces of text that each end at a separator (or at the end): as split(), without the
// empty piece after a last separator: "a\nb\n" → "a", "b"; "a\n\nb" → "a", "", "b"; "" → none.
// For lines of a message and "&"-joined queries.
std::vector<std::string_view> splitTerminated(std::string_view text, char separator);

} // namespace lockunit
