// SPDX-License-Identifier: LGPL-2.1-or-later
//
// file://DIR — a lock on one machine (or on a directory that several containers share).
//
// Slot K of lock NAME is DIR/NAME.lock (K = 0) or DIR/NAME.lock.K, held with flock(LOCK_EX) on
// an O_CLOEXEC descriptor, so the payload never inherits it. The lock guard keeps a duplicate
// of it until the payload's whole tree has exited, so a dead lockunit's lock passes only then.
// Files are never unlinked (unlinking a flock'd file lets two holders lock two different
// inodes); a holder checks that the path still names the inode it locked. The holder writes its
// record into its slot file and empties it before unlocking. The fencing token is a counter in
// DIR/NAME.fence, bumped under a short flock of its own and fsync'd. Waiters sleep on inotify
// (any close-after-write or replacement in DIR wakes them) and retry at least every second, for
// filesystems where inotify sees nothing (NFS). Only a waiter sets up that watch: closing an
// inotify descriptor waits for a kernel grace period (~8 ms, more than the rest of an
// uncontended run), which a lock that is free at once need not pay.
// A directory on a network filesystem is refused unless network_filesystems = true: there the
// flock is the server's, which can lose it, and a renewal here does no I/O to find out. All
// FUSE filesystems share one statfs type, so for FUSE the mount's type in /proc/self/mountinfo
// decides: the network ones that fs_kind.cpp lists (fuse.sshfs, fuse.glusterfs, …) are refused
// too. Some forward flocks to their server (glusterfs, ceph-fuse), as NFS does; others (sshfs,
// s3fs, rclone) keep them in this kernel, where two machines sharing DIR both get the lock. An
// unknown FUSE type is accepted.
//
// Who may touch the files: anyone who can open a lock file, even read-only, can flock it and
// so block the lock. The files are therefore 0600, or 0640 with the group of [file] group
// (whose members may then read them for `lockunit status`, and so could block the lock too),
// and an existing file is set to that mode and group when lockunit opens it; a file owned by
// another user is refused. DIR must be ours or root's and writable by nobody else, unless it
// is sticky (as /tmp), where only the owner can replace or remove a file; its files must still
// be ours. These checks use fstat() on the open descriptors, so no rename can race them.

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <linux/magic.h>
#include <sstream>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <vector>

#include "backends/file/fs_kind.hpp"
#include "backends/io.hpp"
#include "backends/registry.hpp"
#include "util/fd.hpp"
#include "util/file.hpp"
#include "util/module.hpp"

namespace lockunit {
namespace {

constexpr Duration kRetryInterval = std::chrono::seconds(1);
constexpr Duration kFenceTimeout = std::chrono::seconds(2);

const KeySpec kNetworkFilesystemsKey{
    "network_filesystems", KeyType::Boolean, "false",
    "accept a lock directory on a network filesystem (NFS, CIFS, Ceph, sshfs, GlusterFS, …), "
    "where the server can lose a lock without its holder noticing, or another machine does not "
    "see it"};

Error sysError(const std::string& what) {
    return makeError(Errc::Unavailable, errnoMessage(what));
}

Error refused(const std::string& what) {
    return makeError(Errc::Refused, what);
}

Result<void> makeDirs(const std::string& dir) {
    // Each prefix of an absolute path that ends before a '/', and the whole path.
    for (size_t end = 1; end <= dir.size(); ++end) {
        if (end < dir.size() && dir[end] != '/') continue;
        if (dir[end - 1] == '/') continue; // "//" or the root
        const std::string partial = dir.substr(0, end);
        if (::mkdir(partial.c_str(), 0755) < 0 && errno != EEXIST)
            return sysError("cannot create lock directory '" + partial + "'");
    }
    return {};
}

// Refuses a DIR in which someone else could replace our files: see the comment at the top.
Result<void> checkDir(const std::string& dir) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) < 0)
        return sysError("cannot open lock directory '" + dir + "'");
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
        return refused("lock directory '" + dir + "' belongs to uid " + std::to_string(st.st_uid) +
                       ", who could replace the lock files");
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
        return refused("lock directory '" + dir + "' can be written by others, who could " +
                       "replace the lock files (make it 0755, or sticky as /tmp is)");
    return {};
}

// Opens (creating) one of our files, and gives it our mode and group if it lacks them.
Result<UniqueFd> openOwned(const std::string& path, mode_t mode, gid_t group) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode));
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) < 0) return sysError("cannot open '" + path + "'");
    if (st.st_uid != ::geteuid())
        return refused("'" + path + "' belongs to uid " + std::to_string(st.st_uid) +
                       ", not to us (uid " + std::to_string(::geteuid()) +
                       "): someone else could hold or block the lock");
    if (group != static_cast<gid_t>(-1) && st.st_gid != group && ::fchown(fd.get(), -1, group) < 0)
        return sysError("cannot give '" + path + "' the group of [file] group");
    if ((st.st_mode & 07777) != mode && ::fchmod(fd.get(), mode) < 0)
        return sysError("cannot make '" + path + "' mode " + (mode == 0600 ? "0600" : "0640"));
    return fd;
}

bool sameInode(int fd, const std::string& path) {
    struct stat a {
    }, b{};
    if (::fstat(fd, &a) < 0 || ::stat(path.c_str(), &b) < 0) return false;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Result<std::string> readAll(int fd) {
    std::string out;
    char buf[4096];
    off_t off = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n < 0) return sysError("read");
        if (n == 0) return out;
        out.append(buf, static_cast<size_t>(n));
        off += n;
    }
}

// Overwrites, then cuts to length: a crash in between leaves the old text or the new one with a
// tail, never an empty file (which would restart the fencing token at 1). `durable`: fsync too
// (the token must survive a crash; the holder record is only for STATUS and need not).
Result<void> writeAll(int fd, const std::string& text, bool durable) {
    if (::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
        return sysError("write");
    if (::ftruncate(fd, static_cast<off_t>(text.size())) < 0) return sysError("truncate");
    if (durable && ::fsync(fd) < 0) return sysError("fsync");
    return {};
}

// Inodes that hold a flock right now, from /proc/locks ("1: FLOCK ADVISORY WRITE 1234
// 00:1f:5678 0 EOF"). Lets `status` and waiters tell a live holder from a stale record without
// touching the lock.
bool inodeIsFlocked(const struct stat& st) {
    std::ifstream in("/proc/locks");
    if (!in) return true; // cannot tell: trust the record
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string idx, kind, mode, rw, pid, dev;
        if (!(f >> idx >> kind)) continue;
        if (kind == "->") f >> kind; // a blocked waiter's line
        if (kind != "FLOCK" || !(f >> mode >> rw >> pid >> dev)) continue;
        auto c1 = dev.find(':'), c2 = dev.rfind(':');
        if (c1 == std::string::npos || c1 == c2) continue;
        unsigned long ino = std::stoul(dev.substr(c2 + 1));
        if (ino == st.st_ino) return true;
    }
    return false;
}

class FileBackend final : public LockBackend {
public:
    FileBackend(std::string dir, const BackendParams& p, gid_t group)
        : dir_(std::move(dir)), name_(p.lockName), holders_(p.holders), self_(p.self),
          waiting_(static_cast<size_t>(p.holders)), group_(group),
          mode_(group == static_cast<gid_t>(-1) ? 0600 : 0640) {}

    Result<void> init() {
        if (auto r = makeDirs(dir_); !r) return r;
        return checkDir(dir_);
    }

    Result<Lease> tryAcquire(Interrupt& interrupt) override {
        auto lease = attempt(interrupt);
        if (lease || lease.error().code != Errc::Busy || wake_.valid()) return lease;
        // Busy for the first time: we are a waiter from now on. Watch DIR, then look once more,
        // for a holder that left between that attempt and the watch (its close made no event).
        wake_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
        if (wake_.valid())
            ::inotify_add_watch(wake_.get(), dir_.c_str(),
                                IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM);
        return attempt(interrupt);
    }

    Result<Lease> renew(Interrupt&) override {
        if (!held_.valid()) return makeError(Errc::Lost, "not held");
        struct stat st {};
        if (::fstat(held_.get(), &st) < 0) return sysError("lock file '" + path_ + "'");
        if (!sameInode(held_.get(), path_))
            return makeError(Errc::Lost, "lock file '" + path_ + "' was removed or replaced");
        return Lease{kInfinity, token_};
    }

    Result<void> release(Interrupt&) override {
        if (!held_.valid()) return {};
        // Empty the record first, so that no waiter reads us as the holder after we unlock.
        // A failure here leaves a stale record, which inspect() recognises (no flock on it).
        [[maybe_unused]] int r = ::ftruncate(held_.get(), 0);
        // Unlocked explicitly: the lock guard's duplicate of this descriptor would otherwise
        // keep it until the guard closes that.
        ::flock(held_.get(), LOCK_UN);
        held_.reset();
        return {};
    }

    // The guard keeps the flock'd descriptor open until the payload's tree is gone. Releasing
    // is then closing it, which needs no handoff.
    std::vector<int> heldFds() const override {
        if (!held_.valid()) return {};
        return {held_.get()};
    }

    Result<LockState> inspect(Interrupt&) override {
        LockState state;
        for (int slot = 0; slot < holders_; ++slot) {
            std::string path = slotPath(slot);
            UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
            if (!fd.valid()) {
                if (errno == ENOENT) continue;
                return sysError("cannot open lock file '" + path + "'");
            }
            auto text = readAll(fd.get());
            if (!text)
                return makeError(Errc::Unavailable,
                                 "lock file '" + path + "': " + text.error().message);
            struct stat st {};
            if (text->empty() || ::fstat(fd.get(), &st) < 0 || !inodeIsFlocked(st)) continue;
            state.holders.push_back(HolderRecord::parse(*text));
        }
        // A flock lasts as long as its holder; waiters make LOCK_NB attempts, which the kernel
        // does not list, so they cannot be counted (waiters stays unknown).
        if (!state.holders.empty()) state.leaseLeft = kInfinity;
        return state;
    }

    int wakeFd() const override { return wake_.get(); }
    void drainWake() override {
        char buf[4096];
        while (::read(wake_.get(), buf, sizeof buf) > 0) {
        }
    }
    Duration retryInterval() const override { return kRetryInterval; }

private:
    // One flock(LOCK_NB) on each slot until one is ours.
    Result<Lease> attempt(Interrupt& interrupt) {
        for (int slot = 0; slot < holders_; ++slot) {
            std::string path = slotPath(slot);
            UniqueFd& fd = waiting_[slot];
            // A waiter keeps its descriptors open between attempts: only a holder's close (on
            // release or death) then makes the IN_CLOSE_WRITE that wakes the waiters.
            if (!fd.valid()) {
                auto opened = openOwned(path, mode_, group_);
                if (!opened) return opened.error();
                fd = std::move(*opened);
            }
            if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK) continue;
                return sysError("flock '" + path + "'");
            }
            // Someone may have replaced the file between our open() and flock(): then we hold
            // a lock on an inode nobody else will ever look at. Try this slot's new file.
            if (!sameInode(fd.get(), path)) {
                fd.reset();
                --slot;
                continue;
            }
            auto token = nextToken(interrupt);
            if (!token) {
                fd.reset(); // the slot is free again
                return token.error();
            }
            HolderRecord record = self_;
            record.token = *token;
            record.since = formatWallTime(std::time(nullptr));
            if (auto w = writeAll(fd.get(), record.serialize(), false); !w) {
                fd.reset();
                return makeError(Errc::Unavailable,
                                 "lock file '" + path + "': " + w.error().message);
            }
            held_ = std::move(fd);
            path_ = path;
            token_ = *token;
            waiting_.clear(); // we wait no more; let other waiters see those closes
            waiting_.resize(static_cast<size_t>(holders_));
            return Lease{kInfinity, token_};
        }
        return makeError(Errc::Busy, "held");
    }

    std::string slotPath(int slot) const {
        std::string p = dir_ + "/" + name_ + ".lock";
        return slot == 0 ? p : p + "." + std::to_string(slot);
    }

    // Bumps DIR/NAME.fence under its own short flock and returns the new value.
    Result<std::string> nextToken(Interrupt& interrupt) {
        std::string path = dir_ + "/" + name_ + ".fence";
        auto opened = openOwned(path, mode_, group_);
        if (!opened) return opened.error();
        UniqueFd fd = std::move(*opened);
        auto giveUp = BootClock::now() + kFenceTimeout;
        while (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK) return sysError("flock '" + path + "'");
            if (BootClock::now() >= giveUp)
                return makeError(Errc::Unavailable, "token file '" + path + "' stays locked");
            auto r = io::sleepUntil(BootClock::now() + std::chrono::milliseconds(2), interrupt);
            if (!r) return r.error();
        }
        auto text = readAll(fd.get());
        if (!text) return text.error();
        unsigned long long value = std::strtoull(text->c_str(), nullptr, 10) + 1;
        if (auto w = writeAll(fd.get(), std::to_string(value) + "\n", true); !w)
            return makeError(Errc::Unavailable, "token file '" + path + "': " + w.error().message);
        return std::to_string(value);
    }

    std::string dir_, name_;
    int holders_;
    HolderRecord self_;
    std::vector<UniqueFd> waiting_; // one per slot, kept open while we wait
    UniqueFd held_, wake_;
    std::string path_, token_;
    gid_t group_; // -1: none
    mode_t mode_;
};

const KeySpec kGroupKey{"group", KeyType::String, "",
                        "group that may read the lock files, for lockunit status (they are 0640 "
                        "then, else 0600)"};

Result<std::unique_ptr<LockBackend>> createFile(const BackendParams& p) {
    std::string dir = p.rest;
    while (dir.size() > 1 && dir.back() == '/')
        dir.pop_back();
    if (dir.empty() || dir[0] != '/')
        return makeError(Errc::Config, "file backend wants an absolute directory, as "
                                       "file:///run/lock/lockunit; found '" +
                                           p.url + "'");
    gid_t group = static_cast<gid_t>(-1);
    if (auto name = p.settings ? p.settings->string("group") : std::nullopt) {
        struct group* g = ::getgrnam(name->c_str());
        if (!g)
            return makeError(Errc::Config, p.settings->origin("group") +
                                               ": file.group: no group '" + *name + "'");
        group = g->gr_gid;
    }
    auto backend = std::make_unique<FileBackend>(dir, p, group);
    if (auto r = backend->init(); !r) return r.error();
    static const BackendSettings kNone;
    const BackendSettings& s = p.settings ? *p.settings : kNone;
    struct statfs fs {};
    if (::statfs(dir.c_str(), &fs) == 0 && !s.boolean("network_filesystems", false)) {
        const auto type = static_cast<unsigned long>(fs.f_type) & 0xFFFFFFFFUL;
        std::string kind;
        if (const char* name = networkFilesystemName(type)) kind = name;
        struct stat st {};
        char real[PATH_MAX];
        // A FUSE mount is named by its type in mountinfo (fs_kind.hpp); an unreadable one
        // leaves it accepted, as an unknown FUSE filesystem is.
        if (type == FUSE_SUPER_MAGIC && ::stat(dir.c_str(), &st) == 0 &&
            ::realpath(dir.c_str(), real))
            if (auto mountinfo = readFile("/proc/self/mountinfo"))
                kind = networkFuseType(*mountinfo, major(st.st_dev), minor(st.st_dev), real);
        if (!kind.empty())
            return makeError(Errc::Config,
                             "lock directory '" + dir + "' is on " + kind +
                                 ", a network filesystem: " +
                                 (type == FUSE_SUPER_MAGIC
                                      ? "a lock there is either its server's, which can "
                                        "lose it, or (sshfs and others that forward no lock) "
                                        "this machine's alone, which another machine sharing "
                                        "the directory never sees"
                                      : "its server can lose a lock while the holder, which "
                                        "renews without asking it, runs on") +
                                 "; use a network backend, or set network_filesystems = true in "
                                 "[file] to accept that");
    }
    return std::unique_ptr<LockBackend>(std::move(backend));
}

} // namespace

LOCKUNIT_MODULE(file, BackendModule) {
    static const BackendModule module{{
        BackendInfo{
            {"file"},
            "file",
            "flock(2) on DIR/NAME.lock; one machine, or containers sharing DIR",
            {kNetworkFilesystemsKey, kGroupKey},
            createFile,
        },
    }};
    return &module;
}

} // namespace lockunit
