// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/file/fs_kind.hpp"

#include <vector>

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

namespace {

// A mountinfo field with its octal escapes (\040 for a space, \011, \012, \134) decoded.
std::string unescape(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
            s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out +=
                static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

// Whether mount point `mp` is `path` or one of its ancestors, by whole components.
bool holds(std::string_view mp, std::string_view path) {
    if (mp == "/") return true;
    return path.substr(0, mp.size()) == mp && (path.size() == mp.size() || path[mp.size()] == '/');
}

} // namespace

std::string networkFuseType(std::string_view mountinfo, unsigned major, unsigned minor,
                            std::string_view realPath) {
    // Network filesystems mounted through FUSE, by the type their client gives the mount.
    static constexpr std::string_view kNetworkFuse[] = {
        "fuse.sshfs", "fuse.glusterfs", "fuse.ceph-fuse", "fuse.ceph",
        "fuse.s3fs",  "fuse.rclone",    "fuse.gcsfuse",   "fuse.juicefs",
        "fuse.mfs",   "fuse.lizardfs",  "fuse.curlftpfs", "fuse.smbnetfs",
    };
    // Several mounts can show one device (bind mounts, one filesystem mounted twice). They
    // share one superblock and so one type; the mount whose mount point is the longest prefix
    // of the real path is the one the directory is reached through, and is taken, else (a path
    // no mount point of the device holds) the device's first mount.
    const std::string dev = std::to_string(major) + ":" + std::to_string(minor);
    std::string type, bestPoint;
    bool found = false, prefixed = false;
    size_t pos = 0;
    while (pos < mountinfo.size()) {
        size_t end = mountinfo.find('\n', pos);
        if (end == std::string_view::npos) end = mountinfo.size();
        const std::string_view line = mountinfo.substr(pos, end - pos);
        pos = end + 1;
        // ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS
        std::vector<std::string_view> f;
        for (size_t i = 0; i < line.size();) {
            size_t j = line.find(' ', i);
            if (j == std::string_view::npos) j = line.size();
            if (j > i) f.push_back(line.substr(i, j - i));
            i = j + 1;
        }
        if (f.size() < 8 || f[2] != dev) continue;
        size_t sep = 6;
        while (sep < f.size() && f[sep] != "-")
            ++sep;
        if (sep + 1 >= f.size()) continue;
        const std::string point = unescape(f[4]);
        const bool holdsPath = holds(point, realPath);
        const bool better = !found || (holdsPath && (!prefixed || point.size() > bestPoint.size()));
        if (!better) continue;
        found = true;
        prefixed = holdsPath;
        bestPoint = point;
        type = unescape(f[sep + 1]);
    }
    for (std::string_view n : kNetworkFuse)
        if (type == n) return type;
    return "";
}

} // namespace lockunit
