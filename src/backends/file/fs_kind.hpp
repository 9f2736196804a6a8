// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

namespace lockunit {

// The name of a network or cluster filesystem, from statfs(2)'s f_type ("nfs", "cifs", …), or
// nullptr for a local one. On those, flock(2) is granted by a server that can lose it (a lease
// that expires during a partition, a server restart) while the holder, which does no I/O to
// renew it, notices nothing: the file backend refuses them unless the operator opts in.
const char* networkFilesystemName(unsigned long fsType);

} // namespace lockunit
