// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <string>

#include "backends/file/fs_kind.hpp"

using lockunit::networkFilesystemName;

TEST(FsKind, NetworkFilesystemsAreNamed) {
    EXPECT_EQ(std::string(networkFilesystemName(NFS_SUPER_MAGIC)), "nfs");
    EXPECT_EQ(std::string(networkFilesystemName(CIFS_SUPER_MAGIC)), "cifs");
    EXPECT_EQ(std::string(networkFilesystemName(SMB2_SUPER_MAGIC)), "smb2");
    EXPECT_EQ(std::string(networkFilesystemName(CEPH_SUPER_MAGIC)), "ceph");
    EXPECT_EQ(std::string(networkFilesystemName(V9FS_MAGIC)), "9p");
    // statfs's f_type is a signed long: CIFS's magic comes back sign-extended.
    EXPECT_EQ(std::string(networkFilesystemName(static_cast<unsigned long>(
                  static_cast<long>(static_cast<int>(CIFS_SUPER_MAGIC))))),
              "cifs");
}

TEST(FsKind, LocalFilesystemsAreNot) {
    for (unsigned long local : std::initializer_list<unsigned long>{
             EXT4_SUPER_MAGIC, TMPFS_MAGIC, BTRFS_SUPER_MAGIC, XFS_SUPER_MAGIC,
             OVERLAYFS_SUPER_MAGIC, FUSE_SUPER_MAGIC})
        EXPECT_EQ(networkFilesystemName(local), nullptr) << std::hex << local;
}
