// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>
#include <string_view>

namespace lockunit::redis {

// SHA-1 of `data` as 40 lowercase hex digits: the name EVALSHA knows a script by. (Only used
// to address scripts, never for security.)
std::string sha1Hex(std::string_view data);

} // namespace lockunit::redis
