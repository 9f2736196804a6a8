// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/file/fs_kind.hpp"

namespace lockunit {

const char* networkFilesystemName(unsigned long fsType) {
    // Magic numbers from linux/magic.h and the filesystems' own headers.
    struct Kind {
        unsigned long magic;
        const char* name;
    };
    static constexpr Kind kNetwork[] = {
        {0x6969, "nfs"},        {0xFF534D42, "cifs"}, {0xFE534D42, "smb2"},  {0x517B, "smb"},
        {0x00C36400, "ceph"},   {0x5346414F, "afs"},  {0x6B414653, "afs"},   {0x01021997, "9p"},
        {0x0BD00BD0, "lustre"}, {0x01161970, "gfs2"}, {0x7461636F, "ocfs2"}, {0x47504653, "gpfs"},
        {0x564C, "ncp"},
    };
    for (const auto& k : kNetwork)
        if (k.magic == (fsType & 0xFFFFFFFFUL)) return k.name;
    return nullptr;
}

} // namespace lockunit
