// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>
#include <string_view>

namespace lockunit {

// The name of a network or cluster filesystem, from statfs(2)'s f_type ("nfs", "cifs", …), or
// nullptr for a local one. On those, flock(2) is granted by a server that can lose it (a lease
// that expires during a partition, a server restart) while the holder, which does no I/O to
// renew it, notices nothing: the file backend refuses them unless the operator opts in.
const char* networkFilesystemName(unsigned long fsType);

// Every FUSE filesystem has one f_type, FUSE_SUPER_MAGIC: its kind is in the mount's type in
// /proc/self/mountinfo ("fuse.sshfs", "fuse.glusterfs", "fuseblk", …). Given that file's text,
// the directory's device (st_dev's major and minor) and its real path, returns that type when
// it names a network filesystem reached through FUSE ("fuse.sshfs", …), else "" (a local or
// an unknown FUSE filesystem, or no mount of that device). On most of them (sshfs for one)
// flock(2) is not even passed to the server: two machines would both hold the lock.
std::string networkFuseType(std::string_view mountinfo, unsigned major, unsigned minor,
                            std::string_view realPath);

} // namespace lockunit
