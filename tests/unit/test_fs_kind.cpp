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

using lockunit::networkFuseType;

// /proc/self/mountinfo of a machine with an sshfs mount, its bind mount, an ntfs-3g disk
// (fuseblk), lxcfs and a glusterfs volume whose mount point has a space in it.
const char* const kMountinfo =
    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n"
    "25 22 0:22 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755\n"
    "40 22 0:40 / /mnt/ssh rw,nosuid,nodev,relatime shared:20 - fuse.sshfs "
    "alice@nas:/srv rw,user_id=0,group_id=0\n"
    "41 25 0:40 /locks /run/locks rw,nosuid,nodev,relatime shared:20 - fuse.sshfs "
    "alice@nas:/srv rw,user_id=0,group_id=0\n"
    "42 22 8:17 / /media/usb rw,nosuid,nodev,relatime shared:21 - fuseblk /dev/sdb1 "
    "rw,user_id=0,group_id=0,default_permissions,allow_other,blksize=4096\n"
    "43 22 0:43 / /var/lib/lxcfs rw,nosuid,nodev,relatime shared:22 - fuse.lxcfs lxcfs "
    "rw,user_id=0,group_id=0,allow_other\n"
    "44 22 0:44 / /mnt/shared\\040data rw,relatime shared:23 master:7 - fuse.glusterfs "
    "gl1:/vol rw,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072\n";

TEST(FsKind, NetworkFuseMountsAreNamedByTheirType) {
    EXPECT_EQ(networkFuseType(kMountinfo, 0, 40, "/mnt/ssh/locks"), "fuse.sshfs");
    EXPECT_EQ(networkFuseType(kMountinfo, 0, 40, "/mnt/ssh"), "fuse.sshfs");
    // A mount point with a space is written \040 in mountinfo (its decoding is pinned below);
    // the optional fields before the " - " separator (shared:, master:) vary in number.
    EXPECT_EQ(networkFuseType(kMountinfo, 0, 44, "/mnt/shared data/lockunit"), "fuse.glusterfs");
}

TEST(FsKind, LocalAndUnknownFuseMountsAreNot) {
    EXPECT_EQ(networkFuseType(kMountinfo, 8, 17, "/media/usb/locks"), ""); // ntfs-3g, exfat
    EXPECT_EQ(networkFuseType(kMountinfo, 0, 43, "/var/lib/lxcfs"), "");   // a local FUSE one
    EXPECT_EQ(networkFuseType(kMountinfo, 0, 99, "/mnt/ssh/locks"), "");   // no such device
    EXPECT_EQ(networkFuseType(kMountinfo, 259, 2, "/mnt/ssh/locks"), "");  // the device decides
    EXPECT_EQ(networkFuseType("", 0, 40, "/mnt/ssh"), "");
    EXPECT_EQ(networkFuseType("garbage\n\n1 2 0:40\n", 0, 40, "/mnt/ssh"), "");
    EXPECT_EQ(networkFuseType("1 2 0:40 / /mnt/ssh rw a fuse.sshfs x rw", 0, 40, "/mnt/ssh"), "");
    const std::string custom = "50 22 0:50 / /mnt/x rw - fuse.myfs myfs rw\n";
    EXPECT_EQ(networkFuseType(custom, 0, 50, "/mnt/x"), "");
}

TEST(FsKind, OfSeveralMountsOfOneDeviceTheLongestMountPointHoldingThePathIsTaken) {
    // The sshfs device is mounted at /mnt/ssh and bind-mounted at /run/locks.
    EXPECT_EQ(networkFuseType(kMountinfo, 0, 40, "/run/locks/lockunit"), "fuse.sshfs");
    // Mounts of one device share one superblock, so in a real mountinfo they have one type;
    // lines that disagree show which line the rule takes: the longest mount point that holds
    // the path, by whole components (/srv/a does not hold /srv/ab), …
    const std::string info = "60 22 0:60 / /srv rw - fuse.lxcfs x rw\n"
                             "61 60 0:60 / /srv/a/b rw - fuse.sshfs x rw\n"
                             "62 60 0:60 / /srv/a rw - fuse.lxcfs x rw\n"
                             "63 60 0:60 / /srv/ab/c rw - fuse.lxcfs x rw\n";
    EXPECT_EQ(networkFuseType(info, 0, 60, "/srv/a/b/locks"), "fuse.sshfs");
    EXPECT_EQ(networkFuseType(info, 0, 60, "/srv/a/b"), "fuse.sshfs");
    EXPECT_EQ(networkFuseType(info, 0, 60, "/srv/a/bc"), "");
    EXPECT_EQ(networkFuseType(info, 0, 60, "/srv/ab"), "");
    // Mount points are compared decoded: /srv/a\040b is "/srv/a b".
    const std::string spaced = "80 22 0:80 / /srv rw - fuse.lxcfs x rw\n"
                               "81 80 0:80 / /srv/a\\040b rw - fuse.sshfs x rw\n";
    EXPECT_EQ(networkFuseType(spaced, 0, 80, "/srv/a b/locks"), "fuse.sshfs");
    EXPECT_EQ(networkFuseType(spaced, 0, 80, "/srv/a\\040b/locks"), "");
    // … and, when no mount point of the device holds the path, the device's first line.
    const std::string elsewhere = "70 22 0:70 / /mnt/one rw - fuse.sshfs x rw\n"
                                  "71 22 0:70 / /mnt/two rw - fuse.lxcfs x rw\n";
    EXPECT_EQ(networkFuseType(elsewhere, 0, 70, "/somewhere/else"), "fuse.sshfs");
}
